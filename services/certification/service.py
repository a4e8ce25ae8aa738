"""Certification service entrypoints: producers, certificates and their lifecycle, lookups.

Each entrypoint validates its input, checks the caller, runs the rule from `domain` inside
one unit of work and returns plain dicts. Events leave through the outbox. A timer expires
certificates whose validity ended, and warns 30 days ahead, without anyone acting.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import Annotated, Any

from nameko.timer import timer
from pydantic import AfterValidator, Field, StringConstraints

from services.certification import domain, store
from services.certification.events import (
    CertificationChanged,
    CertificationExpired,
    CertificationExpiring,
    CertificationGranted,
    CertificationReinstated,
    CertificationSuspended,
    CertificationWithdrawn,
    MineSiteFacts,
    ProducerRegistered,
    ProducerUpdated,
)
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Forbidden, InvalidInput, NotFound, VetaError
from shared.messaging import Database, rpc
from shared.observability import Operations
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase, UnitOfWork
from shared.validation import Command, CountryCode, Identifier, Name, Reference, parse
from shared.values import Standard

log = logging.getLogger(__name__)

MAX_BATCH = 500
EXPIRY_CHECK_SECONDS = 300
"""Validity is by the day; a check every five minutes (and one at start) is prompt enough."""
TIMER_BATCH = 200
TIMER_ACTOR = "veta-expiry-timer"

Latitude = Annotated[str, StringConstraints(pattern=r"^-?\d{1,2}(\.\d{1,6})?$")]
Longitude = Annotated[str, StringConstraints(pattern=r"^-?\d{1,3}(\.\d{1,6})?$")]


def _no_nul(text: str) -> str:
    # PostgreSQL cannot store a NUL character: refuse it here, by field, not as a 500.
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    return text


Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000),
                   AfterValidator(_no_nul)]


class MineSiteInput(Command):
    name: Name
    municipality: Name | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    mineral: Name = "gold"


class ContactInput(Command):
    name: Name | None = None
    email: Annotated[str, StringConstraints(
        max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class RegisterProducer(Command):
    name: Name
    country: CountryCode
    region: Name
    mine_sites: list[MineSiteInput] = Field(default_factory=list, max_length=100)
    contact: ContactInput | None = None


class UpdateProducer(Command):
    producer_id: Identifier
    name: Name | None = None
    country: CountryCode | None = None
    region: Name | None = None
    mine_sites: list[MineSiteInput] | None = Field(default=None, max_length=100)
    contact: ContactInput | None = None
    stripe_account_id: Annotated[str, StringConstraints(
        pattern=r"^acct_[A-Za-z0-9]{1,58}$")] | None = None


class GrantCertification(Command):
    producer_id: Identifier
    standard: Standard
    certificate_number: Reference
    valid_from: date
    valid_until: date
    certifier: Name | None = None
    scope: list[Name] = Field(default_factory=list, max_length=100)


class ChangeCertification(Command):
    certification_id: Identifier
    reason: Reason


class ReinstateCertification(Command):
    certification_id: Identifier
    reason: Reason | None = None


class StatusQuestion(Command):
    producer_id: Identifier
    standard: Standard
    at: Annotated[str, StringConstraints(max_length=40)]

    def instant(self) -> datetime:
        """A date stands for the close of that day; an instant must carry its offset."""
        try:
            if len(self.at) == 10:
                return domain.end_of(date.fromisoformat(self.at))
            when = datetime.fromisoformat(self.at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("must be an ISO 8601 date or instant", field="at") from None
        if when.tzinfo is None:
            raise InvalidInput("give the instant with its offset, e.g. 2026-05-01T12:00:00Z",
                               field="at")
        return when


class ProducerIds(Command):
    ids: list[Identifier] = Field(max_length=MAX_BATCH)


def site_view(site: domain.MineSite) -> dict[str, Any]:
    return {"name": site.name, "municipality": site.municipality, "latitude": site.latitude,
            "longitude": site.longitude, "mineral": site.mineral}


def change_view(change: domain.Change) -> dict[str, Any]:
    return {"version": change.version,
            "from": str(change.from_status) if change.from_status else None,
            "to": str(change.to_status), "at": change.at.isoformat(), "actor": change.actor,
            "reason": change.reason}


def certification_view(c: domain.Certification, history: list[domain.Change],
                       today: date) -> dict[str, Any]:
    return {"id": c.id, "producer_id": c.producer_id, "standard": str(c.standard),
            "certificate_number": c.certificate_number, "certifier": c.certifier,
            "scope": list(c.scope), "valid_from": c.valid_from.isoformat(),
            "valid_until": c.valid_until.isoformat(), "status": str(c.status),
            "valid_today": c.is_valid_on(today), "version": c.version,
            "history": [change_view(h) for h in history if h.certification_id == c.id]}


def producer_view(row: store.ProducerRow, certifications: list[domain.Certification],
                  history: list[domain.Change], today: date) -> dict[str, Any]:
    producer = row.to_domain()
    return {
        "id": producer.id, "name": producer.name, "country": producer.country,
        "region": producer.region,
        "mine_sites": [site_view(s) for s in producer.mine_sites],
        "contact": store.contact_json(producer.contact),
        "stripe_account_id": producer.stripe_account_id,
        "created_at": row.created_at.isoformat(),
        "updated_at": (row.updated_at or row.created_at).isoformat(),
        "certifications": [certification_view(c, history, today)
                           for c in certifications if c.producer_id == producer.id],
    }


def sites_from(inputs: list[MineSiteInput]) -> list[domain.MineSite]:
    return [domain.MineSite(name=s.name, municipality=s.municipality, latitude=s.latitude,
                            longitude=s.longitude, mineral=s.mineral) for s in inputs]


def site_facts(sites: list[domain.MineSite]) -> list[MineSiteFacts]:
    return [MineSiteFacts(**site_view(s)) for s in sites]


class CertificationService(Operations):
    name = "certification"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    # --- producers ------------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def register_producer(self, data: dict[str, Any]) -> dict[str, Any]:
        required(self.caller).require(Role.CERTIFIER)
        command = parse(RegisterProducer, data)
        sites = sites_from(command.mine_sites)
        domain.check_mine_sites(sites)
        contact = (domain.Contact(**command.contact.model_dump()) if command.contact
                   else domain.Contact())
        producer = domain.Producer(id=str(uuid.uuid4()), name=command.name,
                                   country=command.country, region=command.region,
                                   mine_sites=sites, contact=contact)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row = store.ProducerRow.from_domain(producer, now)
            uow.session.add(row)
            uow.raise_event(ProducerRegistered(
                producer_id=producer.id, name=producer.name, country=producer.country,
                region=producer.region, mine_sites=site_facts(sites),
                version=producer.version, occurred_at=now))
            return producer_view(row, [], [], now.date())

    @rpc(expected_exceptions=VetaError)
    def update_producer(self, data: dict[str, Any]) -> dict[str, Any]:
        """Certifiers change anything but payouts' account; a producer its own contact only;
        finance (payouts onboarding) only the Stripe connected account."""
        caller = required(self.caller)
        command = parse(UpdateProducer, data)
        changing = command.model_dump(exclude_unset=True, exclude={"producer_id"})
        self._may_update(caller, command.producer_id, set(changing))
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row = uow.session.get(store.ProducerRow, command.producer_id, with_for_update=True)
            if row is None:
                raise NotFound("no such producer", field="producer_id")
            certifications = store.certifications_of(uow.session, [row.id])
            live_scopes = [c.scope for c in certifications if c.status in domain.LIVE]
            updated = domain.update_producer(
                row.to_domain(), live_scopes, name=command.name, country=command.country,
                region=command.region,
                mine_sites=(sites_from(command.mine_sites)
                            if command.mine_sites is not None else None),
                contact=(domain.Contact(**command.contact.model_dump())
                         if command.contact is not None else None),
                stripe_account_id=command.stripe_account_id)
            row.update_from(updated, now)
            uow.raise_event(ProducerUpdated(
                producer_id=row.id, name=updated.name, country=updated.country,
                region=updated.region, mine_sites=site_facts(updated.mine_sites),
                version=updated.version, occurred_at=now))
            history = store.history_of(uow.session, [c.id for c in certifications])
            return producer_view(row, certifications, history, now.date())

    @staticmethod
    def _may_update(caller: Caller, producer_id: str, fields: set[str]) -> None:
        if caller.role is Role.ADMIN:
            return
        if caller.role is Role.CERTIFIER:
            allowed = {"name", "country", "region", "mine_sites", "contact"}
        elif caller.role is Role.FINANCE:
            allowed = {"stripe_account_id"}
        elif caller.role is Role.PRODUCER and caller.organisation == producer_id:
            allowed = {"contact"}
        else:
            raise Forbidden(f"a {caller.role} may not update this producer")
        refused = sorted(fields - allowed)
        if refused:
            raise Forbidden(f"a {caller.role} may not change {refused[0]}", field=refused[0])

    @rpc(expected_exceptions=VetaError)
    def get_producers(self, ids: list[str]) -> list[dict[str, Any]]:
        """Producers with their certifications, in one call for a whole page of ids."""
        required(self.caller)
        command = parse(ProducerIds, {"ids": ids})
        unique = list(dict.fromkeys(command.ids))
        with self.db.reading() as session:
            rows = store.producer_rows(session, unique)
            certifications = store.certifications_of(session, unique)
            history = store.history_of(session, [c.id for c in certifications])
        today = self.clock.today()
        return [self._shown(producer_view(row, certifications, history, today))
                for row in rows]

    @rpc(expected_exceptions=VetaError)
    def list_producers(self, first: int | None = None, after: str | None = None
                       ) -> dict[str, Any]:
        required(self.caller)
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.page_of_producers(session, size + 1, decode_cursor(after))
            ids = [row.id for row in rows]
            certifications = store.certifications_of(session, ids)
            history = store.history_of(session, [c.id for c in certifications])
        today = self.clock.today()
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": self._shown(producer_view(row, certifications, history, today))}
                      for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }

    def _shown(self, view: dict[str, Any]) -> dict[str, Any]:
        """The payout account is for finance, certifiers and the producer itself."""
        caller = self.caller
        if caller is None or not (
                caller.role in (Role.ADMIN, Role.FINANCE, Role.CERTIFIER)
                or (caller.role is Role.PRODUCER and caller.organisation == view["id"])):
            view["stripe_account_id"] = None
            view["contact"] = {"name": None, "email": None, "phone": None}
        return view

    # --- certificates ---------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def grant_certification(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        caller.require(Role.CERTIFIER)
        command = parse(GrantCertification, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            producer = uow.session.get(store.ProducerRow, command.producer_id,
                                       with_for_update=True)
            if producer is None:
                raise NotFound("no such producer", field="producer_id")
            existing = store.certifications_of(uow.session, [producer.id])
            certification = domain.grant(
                existing, certification_id=str(uuid.uuid4()), producer_id=producer.id,
                standard=command.standard, certificate_number=command.certificate_number,
                valid_from=command.valid_from, valid_until=command.valid_until,
                certifier=command.certifier, scope=tuple(command.scope),
                site_names=producer.to_domain().site_names(), today=now.date())
            change = domain.Change(
                certification_id=certification.id, version=certification.version,
                from_status=None, to_status=certification.status, at=now,
                actor=caller.subject, reason="granted")
            uow.session.add(store.CertificationRow.from_domain(certification))
            uow.session.flush()
            uow.session.add(store.HistoryRow.from_domain(change))
            uow.raise_event(CertificationGranted(
                certification_id=certification.id, producer_id=producer.id,
                standard=certification.standard,
                certificate_number=certification.certificate_number,
                valid_from=certification.valid_from, valid_until=certification.valid_until,
                certifier=certification.certifier, scope=list(certification.scope),
                version=certification.version, occurred_at=now))
            all_of_them = [*existing, certification]
            history = [*store.history_of(uow.session, [c.id for c in existing]), change]
            return producer_view(producer, all_of_them, history, now.date())

    @rpc(expected_exceptions=VetaError)
    def suspend_certification(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(ChangeCertification, data)
        return self._transition(command.certification_id, CertificationSuspended,
                                lambda c, at, who: c.suspend(at, who, command.reason))

    @rpc(expected_exceptions=VetaError)
    def reinstate_certification(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(ReinstateCertification, data)
        return self._transition(command.certification_id, CertificationReinstated,
                                lambda c, at, who: c.reinstate(at, who, command.reason))

    @rpc(expected_exceptions=VetaError)
    def withdraw_certification(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(ChangeCertification, data)
        return self._transition(command.certification_id, CertificationWithdrawn,
                                lambda c, at, who: c.withdraw(at, who, command.reason))

    def _transition(self, certification_id: str, event_cls: type[CertificationChanged],
                    move: Any) -> dict[str, Any]:
        caller = required(self.caller)
        caller.require(Role.CERTIFIER)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row = uow.session.get(store.CertificationRow, certification_id,
                                  with_for_update=True)
            if row is None:
                raise NotFound("no such certificate", field="certification_id")
            certification = row.to_domain()
            change: domain.Change = move(certification, now, caller.subject)
            self._record(uow, row, certification, change, event_cls)
            producer = uow.session.get(store.ProducerRow, row.producer_id)
            assert producer is not None
            certifications = store.certifications_of(uow.session, [producer.id])
            history = store.history_of(uow.session, [c.id for c in certifications])
            return producer_view(producer, certifications, history, now.date())

    @staticmethod
    def _record(uow: UnitOfWork, row: store.CertificationRow,
                certification: domain.Certification, change: domain.Change,
                event_cls: type[CertificationChanged], **facts: Any) -> None:
        row.update_from(certification)
        uow.session.add(store.HistoryRow.from_domain(change))
        uow.raise_event(event_cls(
            certification_id=certification.id, producer_id=certification.producer_id,
            standard=certification.standard, reason=change.reason, version=change.version,
            certificate_number=certification.certificate_number,
            valid_from=certification.valid_from, valid_until=certification.valid_until,
            scope=list(certification.scope), actor=change.actor, occurred_at=change.at,
            **facts))

    @rpc(expected_exceptions=VetaError)
    def certification_status(self, producer_id: str, standard: str,
                             at: str | None = None) -> dict[str, Any]:
        """The status `producer_id` held for `standard` at instant or date `at` (default now),
        answered from the recorded history; a date stands for the close of that day."""
        required(self.caller)
        now = self.clock.now()
        question = parse(StatusQuestion, {"producer_id": producer_id, "standard": standard,
                                          "at": at or now.isoformat()})
        when = question.instant()
        with self.db.reading() as session:
            if session.get(store.ProducerRow, question.producer_id) is None:
                raise NotFound("no such producer", field="producer_id")
            certifications = store.certifications_of(session, [question.producer_id])
            history = store.history_of(session, [c.id for c in certifications])
        status = domain.status_at(certifications, history, question.standard, when)
        return {"producer_id": question.producer_id, "standard": str(question.standard),
                "at": when.isoformat(), "status": str(status) if status else None}

    # --- the expiry timer -----------------------------------------------------------------

    @timer(interval=EXPIRY_CHECK_SECONDS, eager=True)
    def expire_certificates(self) -> dict[str, int]:
        """Expire every live certificate whose validity ended, and warn of those ending soon.

        Looks at everything overdue, not just yesterday's, so it catches up after downtime;
        claims rows with SKIP LOCKED so replicas never transition one certificate twice.
        """
        now = self.clock.now()
        expired = warned = 0
        while (batch := self._expire_batch(now)) > 0:
            expired += batch
        while (batch := self._warn_batch(now)) > 0:
            warned += batch
        if expired or warned:
            log.info("expiry timer: %d expired, %d warned", expired, warned)
        return {"expired": expired, "warned": warned}

    def _expire_batch(self, now: datetime) -> int:
        with self.db.unit_of_work() as uow:
            rows = store.claim_due_for_expiry(uow.session, now.date(), TIMER_BATCH)
            for row in rows:
                certification = row.to_domain()
                change = certification.expire(now, TIMER_ACTOR)
                self._record(uow, row, certification, change, CertificationExpired)
            return len(rows)

    def _warn_batch(self, now: datetime) -> int:
        with self.db.unit_of_work() as uow:
            rows = store.claim_due_for_warning(uow.session, now.date(), TIMER_BATCH)
            for row in rows:
                row.expiry_warned = True
                uow.raise_event(CertificationExpiring(
                    certification_id=row.id, producer_id=row.producer_id,
                    standard=Standard(row.standard), version=row.version,
                    certificate_number=row.certificate_number, valid_from=row.valid_from,
                    valid_until=row.valid_until, scope=list(row.scope or []),
                    actor=TIMER_ACTOR, occurred_at=now,
                    reason=f"validity ends on {row.valid_until}"))
            return len(rows)
