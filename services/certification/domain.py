"""Certification rules: who a producer is, which standards it holds, and on which days.

Pure Python: no nameko, no database, no clock. Dates and instants are passed in by the caller.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from shared.errors import Conflict, InvalidInput
from shared.values import Standard

EXPIRY_WARNING = timedelta(days=30)
"""How long before a certificate's last day its holder and buyers are warned."""


class CertificationStatus(enum.StrEnum):
    APPLICANT = "APPLICANT"
    CERTIFIED = "CERTIFIED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"


LIVE = frozenset({CertificationStatus.CERTIFIED, CertificationStatus.SUSPENDED})
"""Statuses a certificate can still leave; EXPIRED and WITHDRAWN are final."""


def site_key(name: str) -> str:
    """Mine-site names compare without case, accents or repeated spaces ("Río" is "rio")."""
    folded = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True)
class MineSite:
    name: str
    municipality: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    mineral: str = "gold"


@dataclass(frozen=True)
class Contact:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass
class Producer:
    id: str
    name: str
    country: str
    region: str
    mine_sites: list[MineSite] = field(default_factory=list)
    contact: Contact = field(default_factory=Contact)
    stripe_account_id: str | None = None
    version: int = 1

    def site_names(self) -> set[str]:
        return {site_key(s.name) for s in self.mine_sites}


def check_mine_sites(sites: list[MineSite]) -> None:
    """Mine-site names identify sites in certificate scopes, so they are unique per producer."""
    seen: set[str] = set()
    for index, site in enumerate(sites):
        key = site_key(site.name)
        if key in seen:
            raise InvalidInput(f"mine site {site.name!r} is listed twice",
                               field=f"mine_sites.{index}.name")
        seen.add(key)


def update_producer(producer: Producer, live_scopes: list[tuple[str, ...]], *,
                    name: str | None = None, country: str | None = None,
                    region: str | None = None, mine_sites: list[MineSite] | None = None,
                    contact: Contact | None = None,
                    stripe_account_id: str | None = None) -> Producer:
    """The producer with the given fields changed; a site a live certificate covers stays."""
    if mine_sites is not None:
        check_mine_sites(mine_sites)
        kept = {site_key(s.name) for s in mine_sites}
        for scope in live_scopes:
            for site in scope:
                if site_key(site) not in kept:
                    raise Conflict(f"mine site {site!r} is covered by a live certificate; "
                                   "withdraw or let it expire first", field="mine_sites")
    return replace(
        producer,
        name=name if name is not None else producer.name,
        country=country if country is not None else producer.country,
        region=region if region is not None else producer.region,
        mine_sites=list(mine_sites) if mine_sites is not None else producer.mine_sites,
        contact=contact if contact is not None else producer.contact,
        stripe_account_id=(stripe_account_id if stripe_account_id is not None
                           else producer.stripe_account_id),
        version=producer.version + 1)


@dataclass(frozen=True)
class Change:
    """One entry of a certificate's history: who moved it, from what, to what, when and why."""

    certification_id: str
    version: int
    from_status: CertificationStatus | None
    to_status: CertificationStatus
    at: datetime
    actor: str
    reason: str | None = None


@dataclass
class Certification:
    id: str
    producer_id: str
    standard: Standard
    certificate_number: str
    valid_from: date
    valid_until: date
    status: CertificationStatus
    certifier: str | None = None
    scope: tuple[str, ...] = ()
    """Mine-site names the certificate covers; empty covers every site of the producer."""
    version: int = 1
    expiry_warned: bool = False

    def is_valid_on(self, day: date) -> bool:
        return (self.status is CertificationStatus.CERTIFIED
                and self.valid_from <= day <= self.valid_until)

    def overlaps(self, valid_from: date, valid_until: date) -> bool:
        return self.valid_from <= valid_until and valid_from <= self.valid_until

    def covers(self, site_name: str) -> bool:
        return not self.scope or site_key(site_name) in {site_key(s) for s in self.scope}

    # --- transitions: each returns the history entry it adds -------------------------------

    def _move(self, to: CertificationStatus, at: datetime, actor: str,
              reason: str | None) -> Change:
        before = self.status
        self.status = to
        self.version += 1
        return Change(certification_id=self.id, version=self.version, from_status=before,
                      to_status=to, at=at, actor=actor, reason=reason)

    def _refuse_unless_live(self, action: str) -> None:
        if self.status is CertificationStatus.WITHDRAWN:
            raise Conflict(f"a withdrawn certificate cannot be {action}",
                           field="certification_id")
        if self.status is CertificationStatus.EXPIRED:
            raise Conflict(f"an expired certificate cannot be {action}; grant a new one",
                           field="certification_id")

    def suspend(self, at: datetime, actor: str, reason: str) -> Change:
        self._refuse_unless_live("suspended")
        if self.status is not CertificationStatus.CERTIFIED:
            raise Conflict(f"only a certified certificate can be suspended; this one is "
                           f"{self.status.lower()}", field="certification_id")
        if at.date() > self.valid_until:
            raise Conflict(f"the certificate's validity ended on {self.valid_until}",
                           field="certification_id")
        return self._move(CertificationStatus.SUSPENDED, at, actor, reason)

    def reinstate(self, at: datetime, actor: str, reason: str | None) -> Change:
        self._refuse_unless_live("reinstated")
        if self.status is not CertificationStatus.SUSPENDED:
            raise Conflict("only a suspended certificate can be reinstated",
                           field="certification_id")
        if at.date() > self.valid_until:
            raise Conflict(f"the certificate's validity ended on {self.valid_until}; "
                           "it expires instead", field="certification_id")
        return self._move(CertificationStatus.CERTIFIED, at, actor, reason)

    def withdraw(self, at: datetime, actor: str, reason: str) -> Change:
        self._refuse_unless_live("withdrawn")
        return self._move(CertificationStatus.WITHDRAWN, at, actor, reason)

    def is_due_to_expire(self, today: date) -> bool:
        return self.status in LIVE and today > self.valid_until

    def expire(self, at: datetime, actor: str) -> Change:
        if not self.is_due_to_expire(at.date()):
            raise Conflict(f"the certificate is valid until {self.valid_until}",
                           field="certification_id")
        return self._move(CertificationStatus.EXPIRED, at, actor,
                          f"validity ended on {self.valid_until}")

    def is_due_for_warning(self, today: date) -> bool:
        return (self.status is CertificationStatus.CERTIFIED and not self.expiry_warned
                and self.valid_until - EXPIRY_WARNING <= today <= self.valid_until)


def grant(existing: list[Certification], *, certification_id: str, producer_id: str,
          standard: Standard, certificate_number: str, valid_from: date,
          valid_until: date, certifier: str | None = None, scope: tuple[str, ...] = (),
          site_names: set[str] | None = None, today: date | None = None) -> Certification:
    """A new certificate, refused if its validity is empty or overlaps a live one.

    `site_names` (the producer's registered sites, as `site_key`s) checks the scope;
    `today` refuses a certificate whose validity has already ended.
    """
    if valid_until < valid_from:
        raise InvalidInput("validity cannot end before it starts", field="valid_until")
    if today is not None and valid_until < today:
        raise InvalidInput("the validity has already ended", field="valid_until")
    if site_names is not None:
        for index, site in enumerate(scope):
            if site_key(site) not in site_names:
                raise InvalidInput(f"{site!r} is not one of the producer's mine sites",
                                   field=f"scope.{index}")
    for other in existing:
        if other.certificate_number == certificate_number and other.standard is standard:
            raise Conflict(f"certificate {certificate_number} is already recorded",
                           field="certificate_number")
        if (other.standard is standard and other.status is not CertificationStatus.WITHDRAWN
                and other.overlaps(valid_from, valid_until)):
            raise Conflict(f"the producer already holds {standard} from {other.valid_from} "
                           f"to {other.valid_until}", field="valid_from")
    return Certification(
        id=certification_id, producer_id=producer_id, standard=standard,
        certificate_number=certificate_number, valid_from=valid_from,
        valid_until=valid_until, status=CertificationStatus.CERTIFIED, certifier=certifier,
        scope=tuple(scope),
    )


def status_on(certifications: list[Certification], standard: Standard,
              day: date) -> CertificationStatus | None:
    """The status a producer holds for `standard` on `day`, or None if it never applied."""
    relevant = [c for c in certifications if c.standard is standard]
    if not relevant:
        return None
    if any(c.is_valid_on(day) for c in relevant):
        return CertificationStatus.CERTIFIED
    current = [c for c in relevant if c.valid_from <= day]
    if not current:
        return CertificationStatus.APPLICANT
    latest = max(current, key=lambda c: c.valid_from)
    if latest.status is CertificationStatus.CERTIFIED and day > latest.valid_until:
        return CertificationStatus.EXPIRED
    return latest.status


def end_of(day: date) -> datetime:
    """A date asked about stands for the close of that day (UTC)."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def as_it_stood(certification: Certification, history: list[Change],
                at: datetime) -> Certification | None:
    """The certificate as recorded at instant `at`, rebuilt from its history.

    The grant is effective over its whole validity (a certifier may record it late), so a
    certificate granted after `at` with validity covering `at` counts as certified then; every
    later change (suspension, reinstatement, expiry, withdrawal) counts from when it was made.
    Returns None for a certificate whose validity starts after `at` and had not been granted.
    """
    own = sorted((c for c in history if c.certification_id == certification.id),
                 key=lambda c: c.version)
    if not own:
        return certification
    granted = own[0]
    status = granted.to_status
    for change in own[1:]:
        if change.at <= at:
            status = change.to_status
    if granted.at > at and certification.valid_from > at.date():
        return None
    return replace(certification, status=status)


def status_at(certifications: list[Certification], history: list[Change],
              standard: Standard, at: datetime) -> CertificationStatus | None:
    """The status a producer held for `standard` at instant `at`, from the recorded history."""
    then = [c for c in (as_it_stood(c, history, at) for c in certifications
                        if c.standard is standard) if c is not None]
    return status_on(then, standard, at.date())
