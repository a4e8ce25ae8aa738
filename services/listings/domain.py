"""Listing rules: what a lot is, when it may be published, edited, suspended, and reserved.

Pure Python. Weights are integer milligrams, fineness integer tenths of a per mille, prices
a differential in per mille against the LBMA price of the day.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from shared.errors import Conflict, InvalidInput
from shared.values import Standard, fine_weight_mg


class LotForm(enum.StrEnum):
    DORE = "DORE"
    GRAIN = "GRAIN"
    NUGGET = "NUGGET"
    CAST_BAR = "CAST_BAR"


class LotStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    PARTIALLY_RESERVED = "PARTIALLY_RESERVED"
    SOLD_OUT = "SOLD_OUT"
    WITHDRAWN = "WITHDRAWN"
    SUSPENDED = "SUSPENDED"


ORDERABLE = frozenset({LotStatus.PUBLISHED, LotStatus.PARTIALLY_RESERVED})
ON_THE_MARKET = frozenset({*ORDERABLE, LotStatus.SOLD_OUT})
"""Lots a certificate's suspension takes off the market (a sold-out lot may get gold back)."""
PUBLIC = frozenset({*ON_THE_MARKET})
"""Statuses anyone may see; drafts, withdrawn and suspended lots only their producer."""
EDITABLE = frozenset({LotStatus.DRAFT, LotStatus.PUBLISHED})

FAIRMINED_MINIMUM_PERMILLE = -50
"""Fairmined's minimum price: at least 95% of the LBMA price, i.e. a discount of at most 50‰."""
FAIRMINED_STANDARDS = frozenset({Standard.FAIRMINED, Standard.FAIRMINED_ECOLOGICAL})

RELIED_ON = frozenset({"standard", "form", "gross_mg", "fineness_tenths", "mine_site",
                       "mercury_free", "assay_reference", "assay_lab", "extraction_from",
                       "extraction_until"})
"""What a buyer ordered on: frozen once the lot has had a reservation."""


def fold(text: str) -> str:
    """Text for matching: no case, no accents, single spaces ("Río  Verde" is "rio verde")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True)
class HeldCertification:
    """Listings' own copy of a producer's certificate, kept from certification events."""

    certification_id: str
    producer_id: str
    standard: Standard
    valid_from: date
    valid_until: date
    status: str
    scope: tuple[str, ...] = ()
    """Mine-site names covered; empty covers every site of the producer."""
    version: int | None = None
    changed_at: datetime | None = None

    def is_valid_on(self, day: date) -> bool:
        return self.status == "CERTIFIED" and self.valid_from <= day <= self.valid_until

    def covers(self, site_name: str) -> bool:
        return not self.scope or fold(site_name) in {fold(s) for s in self.scope}

    def is_older_than(self, version: int | None, at: datetime) -> bool:
        """Whether a change stamped (`version`, `at`) is newer than what this copy holds.

        Versions order one certificate's changes exactly; an event without one (raised before
        versions existed) falls back to when it occurred.
        """
        if version is not None and self.version is not None:
            return version > self.version
        return self.changed_at is None or at > self.changed_at

    def changed(self, status: str, version: int | None, at: datetime) -> HeldCertification:
        return replace(self, status=status, version=version, changed_at=at)


def can_publish(held: list[HeldCertification], producer_id: str, standard: Standard,
                today: date) -> bool:
    return any(c.producer_id == producer_id and c.standard is standard and c.is_valid_on(today)
               for c in held)


def covering(held: Iterable[HeldCertification], producer_id: str, standard: Standard,
             site_name: str, today: date) -> bool:
    """Whether a certificate valid today covers gold from `site_name`."""
    return any(c.producer_id == producer_id and c.standard is standard
               and c.is_valid_on(today) and c.covers(site_name) for c in held)


@dataclass(frozen=True)
class MineSite:
    name: str
    region: str
    country: str
    latitude: str | None = None
    longitude: str | None = None


@dataclass
class Lot:
    id: str
    producer_id: str
    standard: Standard
    form: LotForm
    gross_mg: int
    fineness_tenths: int
    mine_site: MineSite
    mercury_free: bool
    assay_reference: str
    status: LotStatus
    available_mg: int = -1
    assay_lab: str | None = None
    extraction_from: date | None = None
    extraction_until: date | None = None
    export_permit: str | None = None
    price_basis_permille: int = 0
    """Asking price as a differential against LBMA: -30 is LBMA less 3.0%, +10 LBMA plus 1.0%."""
    ever_reserved: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.available_mg < 0:
            self.available_mg = self.fine_mg

    @property
    def fine_mg(self) -> int:
        return fine_weight_mg(self.gross_mg, self.fineness_tenths)

    def refusal(self, fine_mg: int) -> str | None:
        """Why an order for `fine_mg` cannot be reserved now, or None if it can."""
        if self.status not in ORDERABLE:
            return f"lot is {self.status.lower()}"
        if fine_mg <= 0:
            return "fine weight must be positive"
        if fine_mg > self.available_mg:
            return "not enough fine gold available"
        return None

    def reserve(self, fine_mg: int) -> None:
        """Set `fine_mg` aside for an order; never more than is available."""
        reason = self.refusal(fine_mg)
        if reason is not None:
            raise Conflict(reason, field="fine_weight")
        self.available_mg -= fine_mg
        self.ever_reserved = True
        self.status = (LotStatus.SOLD_OUT if self.available_mg == 0
                       else LotStatus.PARTIALLY_RESERVED)

    def release(self, fine_mg: int) -> None:
        """Give back gold an order no longer needs; a lot off the market stays off it."""
        self.available_mg = min(self.fine_mg, self.available_mg + fine_mg)
        if self.status in ON_THE_MARKET:
            self.status = status_for(self.fine_mg, self.available_mg)

    def withdraw(self) -> None:
        """The producer takes what is left off the market; reservations already made stand."""
        if self.status in (LotStatus.WITHDRAWN, LotStatus.SOLD_OUT):
            raise Conflict(f"a {self.status.lower().replace('_', ' ')} lot cannot be withdrawn",
                           field="listing_id")
        self.status = LotStatus.WITHDRAWN

    def publish(self, held: list[HeldCertification], today: date) -> None:
        if self.status is not LotStatus.DRAFT:
            raise Conflict(f"only a draft can be published; this lot is "
                           f"{self.status.lower()}", field="listing_id")
        check_certified(held, self.producer_id, self.standard, self.mine_site, today)
        self.status = LotStatus.PUBLISHED

    def edit(self, changes: dict[str, object], held: list[HeldCertification],
             today: date) -> None:
        """Apply a producer's changes to a draft or published lot, or refuse them all."""
        if self.status not in EDITABLE:
            raise Conflict(f"a {self.status.lower().replace('_', ' ')} lot cannot be edited",
                           field="listing_id")
        frozen = sorted(name for name in changes if name in RELIED_ON
                        and getattr(self, name) != changes[name])
        if frozen and self.ever_reserved:
            raise Conflict(f"{frozen[0]} cannot change: buyers have ordered from this lot",
                           field=frozen[0])
        edited = replace(self, **changes)  # type: ignore[arg-type]
        check_content(edited.standard, edited.mercury_free, edited.price_basis_permille,
                      edited.extraction_from, edited.extraction_until, today)
        if edited.status is LotStatus.PUBLISHED:
            check_certified(held, edited.producer_id, edited.standard, edited.mine_site, today)
        # No reservation ever: all the (possibly new) fine gold is available.
        edited.available_mg = edited.fine_mg if not self.ever_reserved else self.available_mg
        for name in ("standard", "form", "gross_mg", "fineness_tenths", "mine_site",
                     "mercury_free", "assay_reference", "assay_lab", "extraction_from",
                     "extraction_until", "export_permit", "price_basis_permille",
                     "available_mg"):
            setattr(self, name, getattr(edited, name))


def status_for(fine_mg: int, available_mg: int) -> LotStatus:
    """The market status a lot's remaining gold gives it."""
    if available_mg <= 0:
        return LotStatus.SOLD_OUT
    return LotStatus.PUBLISHED if available_mg >= fine_mg else LotStatus.PARTIALLY_RESERVED


def check_content(standard: Standard, mercury_free: bool, price_basis_permille: int,
                  extraction_from: date | None, extraction_until: date | None,
                  today: date) -> None:
    """Rules on what a lot says about itself, whatever its producer holds."""
    if standard is Standard.FAIRMINED_ECOLOGICAL and not mercury_free:
        raise InvalidInput("Fairmined Ecological gold must be mercury-free",
                           field="mercury_free")
    if standard in FAIRMINED_STANDARDS and price_basis_permille < FAIRMINED_MINIMUM_PERMILLE:
        raise InvalidInput("Fairmined gold may not be offered below 95% of the LBMA price "
                           "(a discount of at most 50 per mille)", field="price_basis_permille")
    if extraction_from is not None and extraction_until is not None \
            and extraction_until < extraction_from:
        raise InvalidInput("the extraction period cannot end before it starts",
                           field="extraction_until")
    for name, day in (("extraction_from", extraction_from),
                      ("extraction_until", extraction_until)):
        if day is not None and day > today:
            raise InvalidInput("gold cannot have been extracted in the future", field=name)


def check_certified(held: list[HeldCertification], producer_id: str, standard: Standard,
                    site: MineSite, today: date) -> None:
    # A conflict with the producer's certification, not a question of who is asking: the
    # same call succeeds once the certificate is granted, so it is not FORBIDDEN.
    if not can_publish(held, producer_id, standard, today):
        raise Conflict(f"the producer is not certified for {standard} today", field="standard")
    if not covering(held, producer_id, standard, site.name, today):
        raise Conflict(f"the {standard} certificate does not cover the mine site "
                        f"{site.name!r}", field="mine_site.name")


def draft(*, lot_id: str, producer_id: str, standard: Standard, form: LotForm, gross_mg: int,
          fineness_tenths: int, mine_site: MineSite, mercury_free: bool,
          assay_reference: str, today: date, assay_lab: str | None = None,
          extraction_from: date | None = None, extraction_until: date | None = None,
          export_permit: str | None = None, price_basis_permille: int = 0) -> Lot:
    """A draft lot: its own content is checked now, its producer's certificate on publishing."""
    check_content(standard, mercury_free, price_basis_permille, extraction_from,
                  extraction_until, today)
    return Lot(id=lot_id, producer_id=producer_id, standard=standard, form=form,
               gross_mg=gross_mg, fineness_tenths=fineness_tenths, mine_site=mine_site,
               mercury_free=mercury_free, assay_reference=assay_reference,
               status=LotStatus.DRAFT, assay_lab=assay_lab, extraction_from=extraction_from,
               extraction_until=extraction_until, export_permit=export_permit,
               price_basis_permille=price_basis_permille)


def publish(*, lot_id: str, producer_id: str, standard: Standard, form: LotForm, gross_mg: int,
            fineness_tenths: int, mine_site: MineSite, mercury_free: bool,
            assay_reference: str, held: list[HeldCertification], today: date,
            assay_lab: str | None = None, extraction_from: date | None = None,
            extraction_until: date | None = None, export_permit: str | None = None,
            price_basis_permille: int = 0) -> Lot:
    """A published lot, refused unless its producer holds `standard` today for its site."""
    lot = draft(lot_id=lot_id, producer_id=producer_id, standard=standard, form=form,
                gross_mg=gross_mg, fineness_tenths=fineness_tenths, mine_site=mine_site,
                mercury_free=mercury_free, assay_reference=assay_reference, today=today,
                assay_lab=assay_lab, extraction_from=extraction_from,
                extraction_until=extraction_until, export_permit=export_permit,
                price_basis_permille=price_basis_permille)
    lot.publish(held, today)
    return lot


# --- the cascade from certificates to lots ------------------------------------------------

@dataclass(frozen=True)
class LotStanding:
    """The little a cascade needs to know of each of a producer's lots under one standard."""

    id: str
    status: LotStatus
    site_name: str
    fine_mg: int
    available_mg: int


@dataclass(frozen=True)
class Cascade:
    suspend: list[str]
    restore: dict[str, LotStatus]


def cascade(lots: Iterable[LotStanding], held: list[HeldCertification], producer_id: str,
            standard: Standard, today: date) -> Cascade:
    """Which lots go off the market and which come back, given the certificates held now.

    Derived from the state, not from the event that triggered it, so that any order of
    delivery ends in the same place.
    """
    suspend: list[str] = []
    restore: dict[str, LotStatus] = {}
    for lot in lots:
        covered = covering(held, producer_id, standard, lot.site_name, today)
        if lot.status in ON_THE_MARKET and not covered:
            suspend.append(lot.id)
        elif lot.status is LotStatus.SUSPENDED and covered:
            restore[lot.id] = status_for(lot.fine_mg, lot.available_mg)
    return Cascade(suspend=suspend, restore=restore)
