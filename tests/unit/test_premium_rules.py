"""Premium rules (services/payouts/domain.py): the dated rate table and the obligation owed."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.payouts.domain import (
    INITIAL_RATES,
    Obligation,
    ObligationStatus,
    PremiumRate,
    obligation_for,
    rate_in_force,
)
from shared.values import Standard

CHANGE = date(2027, 1, 1)
NEW_RATE = PremiumRate(Standard.FAIRMINED, Decimal("4500"), CHANGE)
RATES = [*INITIAL_RATES, NEW_RATE]


def owed(standard: Standard, fine_mg: int, delivered_on: date = date(2026, 6, 15),
         rates: list[PremiumRate] | None = None) -> Obligation | None:
    return obligation_for(obligation_id="ob-1", order_id="o-1", producer_id="p-1",
                          buyer_id="b-1", standard=standard, fine_mg=fine_mg,
                          delivered_on=delivered_on,
                          rates=list(INITIAL_RATES) if rates is None else rates)


# --- the rate table -------------------------------------------------------------------------

def test_initial_rates_are_the_published_fairmined_premiums() -> None:
    by_standard = {r.standard: r.usd_per_kg for r in INITIAL_RATES}
    assert by_standard == {Standard.FAIRMINED: Decimal("4000"),
                           Standard.FAIRMINED_ECOLOGICAL: Decimal("6000")}


def test_a_delivery_the_day_before_a_rate_change_uses_the_old_rate() -> None:
    rate = rate_in_force(RATES, Standard.FAIRMINED, CHANGE - timedelta(days=1))
    assert rate is not None
    assert rate.usd_per_kg == Decimal("4000")


def test_a_delivery_on_the_day_of_a_rate_change_uses_the_new_rate() -> None:
    assert rate_in_force(RATES, Standard.FAIRMINED, CHANGE) is NEW_RATE
    assert rate_in_force(RATES, Standard.FAIRMINED, CHANGE + timedelta(days=400)) is NEW_RATE


def test_the_table_order_does_not_matter() -> None:
    assert rate_in_force(list(reversed(RATES)), Standard.FAIRMINED, CHANGE) is NEW_RATE
    older = rate_in_force(list(reversed(RATES)), Standard.FAIRMINED, CHANGE - timedelta(days=1))
    assert older is not None and older.usd_per_kg == Decimal("4000")


def test_a_rate_change_for_one_standard_leaves_the_others_alone() -> None:
    rate = rate_in_force(RATES, Standard.FAIRMINED_ECOLOGICAL, CHANGE)
    assert rate is not None
    assert rate.usd_per_kg == Decimal("6000")


def test_no_rate_is_in_force_before_the_first_takes_effect() -> None:
    assert rate_in_force(RATES, Standard.FAIRMINED, date(2013, 12, 31)) is None
    first = rate_in_force(RATES, Standard.FAIRMINED, date(2014, 1, 1))
    assert first is not None and first.usd_per_kg == Decimal("4000")


def test_a_future_rate_is_not_in_force_yet() -> None:
    future = PremiumRate(Standard.FAIRMINED, Decimal("9999"), date(2099, 1, 1))
    rate = rate_in_force([*INITIAL_RATES, future], Standard.FAIRMINED, date(2026, 6, 15))
    assert rate is not None and rate.usd_per_kg == Decimal("4000")


def test_craft_has_no_rate() -> None:
    assert rate_in_force(RATES, Standard.CRAFT, date(2026, 6, 15)) is None


def test_craft_deliveries_owe_no_premium() -> None:
    assert owed(Standard.CRAFT, 915_000) is None


def test_a_delivery_before_any_rate_owes_no_premium() -> None:
    assert owed(Standard.FAIRMINED, 915_000, date(2013, 6, 1)) is None


# --- obligations ----------------------------------------------------------------------------

def test_fairmined_obligation_on_915_grams_is_usd_3660() -> None:
    obligation = owed(Standard.FAIRMINED, 915_000)
    assert obligation == Obligation(
        id="ob-1", order_id="o-1", producer_id="p-1", buyer_id="b-1",
        standard=Standard.FAIRMINED, fine_mg=915_000, usd_per_kg=Decimal("4000"),
        amount_cents=366_000, currency="USD", delivered_on=date(2026, 6, 15),
        status=ObligationStatus.CALCULATED)


def test_fairmined_ecological_obligation_on_915_grams_is_usd_5490() -> None:
    obligation = owed(Standard.FAIRMINED_ECOLOGICAL, 915_000)
    assert obligation is not None
    assert obligation.usd_per_kg == Decimal("6000")
    assert obligation.amount_cents == 549_000
    assert obligation.currency == "USD"


@pytest.mark.parametrize(
    ("standard", "fine_mg", "cents"),
    [
        (Standard.FAIRMINED, 123_457, 49_383),            # USD 493.828 -> 493.83
        (Standard.FAIRMINED, 914_001, 365_600),           # USD 3656.004 -> 3656.00
        (Standard.FAIRMINED, 1, 0),                       # 0.4 cent -> 0
        (Standard.FAIRMINED, 2, 1),                       # 0.8 cent -> 1
        (Standard.FAIRMINED_ECOLOGICAL, 123_457, 74_074),  # USD 740.742 -> 740.74
        (Standard.FAIRMINED_ECOLOGICAL, 914_001, 548_401),  # USD 5484.006 -> 5484.01
        (Standard.FAIRMINED_ECOLOGICAL, 1, 1),             # 0.6 cent -> 1
        (Standard.FAIRMINED_ECOLOGICAL, 12_345_678, 7_407_407),  # USD 74074.068 -> 74074.07
    ],
)
def test_obligation_amounts_are_exact_to_the_cent(standard: Standard, fine_mg: int,
                                                  cents: int) -> None:
    obligation = owed(standard, fine_mg)
    assert obligation is not None
    assert obligation.amount_cents == cents
    assert obligation.fine_mg == fine_mg


def test_obligation_uses_the_rate_in_force_on_the_delivery_date() -> None:
    before = owed(Standard.FAIRMINED, 1_000_000, CHANGE - timedelta(days=1), RATES)
    on = owed(Standard.FAIRMINED, 1_000_000, CHANGE, RATES)
    assert before is not None and on is not None
    assert (before.usd_per_kg, before.amount_cents) == (Decimal("4000"), 400_000)
    assert (on.usd_per_kg, on.amount_cents) == (Decimal("4500"), 450_000)
    assert on.delivered_on == CHANGE


def test_obligation_rounds_half_even_once_at_a_rate_with_ties() -> None:
    rates = [PremiumRate(Standard.FAIRMINED, Decimal("5000"), date(2020, 1, 1))]
    one = owed(Standard.FAIRMINED, 1, rates=rates)      # 0.5 cent -> 0
    three = owed(Standard.FAIRMINED, 3, rates=rates)    # 1.5 cents -> 2
    assert one is not None and three is not None
    assert (one.amount_cents, three.amount_cents) == (0, 2)
