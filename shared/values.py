"""Exact value types for gold and money: grams, fineness, fine weight, amounts in minor units.

Weights are integer milligrams and fineness integer tenths of a per mille, so that every
sum, comparison and database column is exact; money is integer cents with a currency.
"""

from __future__ import annotations

import enum
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MILLIGRAMS_PER_GRAM = 1000
GRAMS_PER_TROY_OUNCE = Decimal("31.1034768")
MAX_FINENESS = Decimal("999.9")
# No artisanal lot, order or delivery comes near ten tonnes; anything above is a typo or an
# attack, and refusing it keeps every product of weights far inside a 64-bit column.
MAX_GRAMS = Decimal(10_000_000)
MAX_NUMBER_LENGTH = 32


class Standard(enum.StrEnum):
    FAIRMINED = "FAIRMINED"
    FAIRMINED_ECOLOGICAL = "FAIRMINED_ECOLOGICAL"
    CRAFT = "CRAFT"


def _decimal(value: object, field: str) -> Decimal:
    if isinstance(value, float):
        # A float has already lost exactness; refuse it rather than guess.
        raise ValueError(f"{field} must be a decimal string, not a float")
    if len(str(value)) > MAX_NUMBER_LENGTH:
        raise ValueError(f"{field} is too long to be a number")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field} must be a decimal number") from None
    if not result.is_finite():
        raise ValueError(f"{field} must be a finite number")
    return result


def grams_to_mg(value: object, field: str = "weight") -> int:
    """Parse grams given to at most three decimals (milligrams) into integer milligrams."""
    grams = _decimal(value, field)
    if grams.as_tuple().exponent < -3:  # type: ignore[operator]
        raise ValueError(f"{field} has more than three decimals (milligrams)")
    if grams <= 0:
        raise ValueError(f"{field} must be greater than zero")
    if grams > MAX_GRAMS:
        raise ValueError(f"{field} must be at most 10,000,000 g (ten tonnes)")
    return int(grams * MILLIGRAMS_PER_GRAM)


def mg_to_grams(mg: int) -> Decimal:
    return (Decimal(mg) / MILLIGRAMS_PER_GRAM).quantize(Decimal("0.001"))


def format_grams(mg: int) -> str:
    return str(mg_to_grams(mg))


def fineness_to_tenths(value: object, field: str = "fineness") -> int:
    """Parse a fineness in per mille with at most one decimal, 0 < f <= 999.9."""
    fineness = _decimal(value, field)
    if fineness.as_tuple().exponent < -1:  # type: ignore[operator]
        raise ValueError(f"{field} has more than one decimal")
    if not Decimal(0) < fineness <= MAX_FINENESS:
        raise ValueError(f"{field} must be above 0 and at most 999.9 per mille")
    return int(fineness * 10)


def format_fineness(tenths: int) -> str:
    return str((Decimal(tenths) / 10).quantize(Decimal("0.1")))


def fine_weight_mg(gross_mg: int, fineness_tenths: int) -> int:
    """Fine gold in a lot: gross weight x fineness, rounded half-even to the milligram.

    Fineness is in tenths of a per mille, so the exact product is divided by 10,000.
    """
    exact = Decimal(gross_mg) * Decimal(fineness_tenths) / Decimal(10_000)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def format_money(cents: int) -> str:
    return str(cents_to_decimal(cents))


def premium_cents(fine_mg: int, usd_per_kg: Decimal) -> int:
    """The premium on a fine weight at a rate per kilogram, rounded half-even to the cent, once."""
    exact_usd = Decimal(fine_mg) * usd_per_kg / Decimal(1_000_000)
    return int((exact_usd * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
