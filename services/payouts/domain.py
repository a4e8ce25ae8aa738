"""Premium rules: the dated rate table and the premium a delivery earns.

Pure Python. A premium is the delivered fine weight times the rate in force on the delivery
date, rounded half-even to the cent once, at the end.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.values import Standard, premium_cents


class ObligationStatus(enum.StrEnum):
    CALCULATED = "CALCULATED"
    FUNDED = "FUNDED"
    APPROVED = "APPROVED"
    SUBMITTED = "SUBMITTED"
    PAID = "PAID"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    ON_HOLD = "ON_HOLD"


@dataclass(frozen=True)
class PremiumRate:
    standard: Standard
    usd_per_kg: Decimal
    effective_from: date


# The published Fairmined premiums; finance extends the table with later rates.
INITIAL_RATES = (
    PremiumRate(Standard.FAIRMINED, Decimal("4000"), date(2014, 1, 1)),
    PremiumRate(Standard.FAIRMINED_ECOLOGICAL, Decimal("6000"), date(2014, 1, 1)),
)


def rate_in_force(rates: list[PremiumRate], standard: Standard, on: date) -> PremiumRate | None:
    """The latest rate for `standard` that took effect on or before `on`; None if there is none."""
    candidates = [r for r in rates if r.standard is standard and r.effective_from <= on]
    return max(candidates, key=lambda r: r.effective_from) if candidates else None


@dataclass
class Obligation:
    id: str
    order_id: str
    producer_id: str
    buyer_id: str
    standard: Standard
    fine_mg: int
    usd_per_kg: Decimal
    amount_cents: int
    currency: str
    delivered_on: date
    status: ObligationStatus = ObligationStatus.CALCULATED


def obligation_for(*, obligation_id: str, order_id: str, producer_id: str, buyer_id: str,
                   standard: Standard, fine_mg: int, delivered_on: date,
                   rates: list[PremiumRate]) -> Obligation | None:
    """The premium owed on a delivery, or None when its standard carries no premium (CRAFT)."""
    rate = rate_in_force(rates, standard, delivered_on)
    if rate is None:
        return None
    return Obligation(
        id=obligation_id, order_id=order_id, producer_id=producer_id, buyer_id=buyer_id,
        standard=standard, fine_mg=fine_mg, usd_per_kg=rate.usd_per_kg,
        amount_cents=premium_cents(fine_mg, rate.usd_per_kg), currency="USD",
        delivered_on=delivered_on)
