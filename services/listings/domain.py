"""Listing rules: what a lot is, when it may be published, and how its gold is reserved.

Pure Python. Weights are integer milligrams, fineness integer tenths of a per mille.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from shared.errors import Conflict, Forbidden, InvalidInput
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


@dataclass(frozen=True)
class HeldCertification:
    """Listings' own copy of a producer's certificate, kept from certification events."""

    certification_id: str
    producer_id: str
    standard: Standard
    valid_from: date
    valid_until: date
    status: str

    def is_valid_on(self, day: date) -> bool:
        return self.status == "CERTIFIED" and self.valid_from <= day <= self.valid_until


def can_publish(held: list[HeldCertification], producer_id: str, standard: Standard,
                today: date) -> bool:
    return any(c.producer_id == producer_id and c.standard is standard and c.is_valid_on(today)
               for c in held)


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
        self.status = LotStatus.SOLD_OUT if self.available_mg == 0 else LotStatus.PARTIALLY_RESERVED


def publish(*, lot_id: str, producer_id: str, standard: Standard, form: LotForm, gross_mg: int,
            fineness_tenths: int, mine_site: MineSite, mercury_free: bool,
            assay_reference: str, held: list[HeldCertification], today: date) -> Lot:
    """A published lot, refused unless its producer holds `standard` today."""
    if standard is Standard.FAIRMINED_ECOLOGICAL and not mercury_free:
        raise InvalidInput("Fairmined Ecological gold must be mercury-free",
                           field="mercury_free")
    if not can_publish(held, producer_id, standard, today):
        raise Forbidden(f"the producer is not certified for {standard} today", field="standard")
    return Lot(id=lot_id, producer_id=producer_id, standard=standard, form=form,
               gross_mg=gross_mg, fineness_tenths=fineness_tenths, mine_site=mine_site,
               mercury_free=mercury_free, assay_reference=assay_reference,
               status=LotStatus.PUBLISHED)
