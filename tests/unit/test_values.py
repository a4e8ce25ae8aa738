"""Exact value types: grams, fineness, fine weight and premiums (shared/values.py)."""

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.values import (
    GRAMS_PER_TROY_OUNCE,
    MAX_FINENESS,
    Standard,
    cents_to_decimal,
    fine_weight_mg,
    fineness_to_tenths,
    format_fineness,
    format_grams,
    format_money,
    grams_to_mg,
    mg_to_grams,
    premium_cents,
)

milligrams = st.integers(min_value=1, max_value=10_000_000_000)  # up to ten tonnes
fineness_tenths = st.integers(min_value=1, max_value=9999)


# --- constants ------------------------------------------------------------------------------

def test_troy_ounce_and_maximum_fineness_are_the_documented_constants() -> None:
    assert Decimal("31.1034768") == GRAMS_PER_TROY_OUNCE
    assert Decimal("999.9") == MAX_FINENESS


def test_standards_are_the_three_named_schemes() -> None:
    assert {s.value for s in Standard} == {"FAIRMINED", "FAIRMINED_ECOLOGICAL", "CRAFT"}


# --- fine weight ----------------------------------------------------------------------------

def test_fine_weight_of_a_kilogram_dore_bar_at_915_per_mille_is_915_grams() -> None:
    gross = grams_to_mg("1000.000")
    fineness = fineness_to_tenths("915.0")
    assert fine_weight_mg(gross, fineness) == 915_000
    assert format_grams(fine_weight_mg(gross, fineness)) == "915.000"


def test_fine_weight_is_exact_when_the_product_is_whole_milligrams() -> None:
    # 123.456 g at 999.9 per mille = 123.4436544 g -> 123.444 g
    assert fine_weight_mg(123_456, 9999) == 123_444
    # 2.000 g at 500.0 per mille = 1.000 g exactly
    assert fine_weight_mg(2000, 5000) == 1000


@pytest.mark.parametrize(
    ("gross_mg", "tenths", "exact", "expected"),
    [
        # 0.100 g at 915.0 per mille = 91.5 mg: tie, 91 is odd -> rounds up to the even 92
        (100, 9150, Decimal("91.5"), 92),
        # 0.300 g at 915.0 per mille = 274.5 mg: tie, 274 is even -> stays at 274
        (300, 9150, Decimal("274.5"), 274),
        # 1000.001 g at 500.0 per mille = 500000.5 mg -> 500000 (even)
        (1_000_001, 5000, Decimal("500000.5"), 500_000),
        # 1000.003 g at 500.0 per mille = 500001.5 mg -> 500002 (even)
        (1_000_003, 5000, Decimal("500001.5"), 500_002),
        # 0.001 g at 500.0 per mille = 0.5 mg -> 0 (even)
        (1, 5000, Decimal("0.5"), 0),
        # 0.003 g at 500.0 per mille = 1.5 mg -> 2 (even)
        (3, 5000, Decimal("1.5"), 2),
    ],
)
def test_fine_weight_rounds_half_even_to_the_milligram_on_exact_ties(
        gross_mg: int, tenths: int, exact: Decimal, expected: int) -> None:
    assert Decimal(gross_mg) * Decimal(tenths) / Decimal(10_000) == exact
    assert fine_weight_mg(gross_mg, tenths) == expected


def test_fine_weight_rounds_to_nearest_milligram_off_ties() -> None:
    # 0.101 g at 915.0 = 92.415 mg -> 92; 0.102 g at 915.0 = 93.33 mg -> 93
    assert fine_weight_mg(101, 9150) == 92
    # 0.1 g at 914.9 = 91.49 mg -> 91 (just below a tie that would go up to even)
    assert fine_weight_mg(100, 9149) == 91
    # 0.3 g at 915.1 = 274.53 mg -> 275 (just above a tie that would go down to even)
    assert fine_weight_mg(300, 9151) == 275


@given(milligrams, fineness_tenths)
def test_fine_weight_never_exceeds_gross(gross_mg: int, tenths: int) -> None:
    fine = fine_weight_mg(gross_mg, tenths)
    assert 0 <= fine <= gross_mg


@given(milligrams, fineness_tenths, fineness_tenths)
def test_fine_weight_is_monotonic_in_fineness(gross_mg: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert fine_weight_mg(gross_mg, low) <= fine_weight_mg(gross_mg, high)


@given(milligrams, milligrams, fineness_tenths)
def test_fine_weight_is_monotonic_in_gross(a: int, b: int, tenths: int) -> None:
    low, high = sorted((a, b))
    assert fine_weight_mg(low, tenths) <= fine_weight_mg(high, tenths)


@given(milligrams, fineness_tenths)
def test_fine_weight_is_within_half_a_milligram_of_the_exact_product(
        gross_mg: int, tenths: int) -> None:
    exact = Decimal(gross_mg) * tenths / 10_000
    fine = fine_weight_mg(gross_mg, tenths)
    assert abs(Decimal(fine) - exact) <= Decimal("0.5")
    assert fine == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# --- grams ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "mg"),
    [
        ("1000.000", 1_000_000),
        ("1000", 1_000_000),
        ("0.001", 1),
        ("12.3", 12_300),
        ("12.34", 12_340),
        ("12.345", 12_345),
        ("1e-3", 1),
        ("1E+3", 1_000_000),
        (" 5.5 ", 5_500),
        ("9999999.999", 9_999_999_999),
    ],
)
def test_grams_parse_to_exact_milligrams(text: str, mg: int) -> None:
    assert grams_to_mg(text) == mg


def test_grams_accept_ints_and_decimals() -> None:
    assert grams_to_mg(1000) == 1_000_000
    assert grams_to_mg(Decimal("0.250")) == 250


@pytest.mark.parametrize("text", ["0.0001", "1.2345", "1000.0005", "1e-4"])
def test_grams_refuse_more_than_three_decimals(text: str) -> None:
    with pytest.raises(ValueError, match="three decimals"):
        grams_to_mg(text)


@pytest.mark.parametrize("value", ["0", "0.000", "-1", "-0.001", "-0", 0, -5])
def test_grams_must_be_greater_than_zero(value: object) -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        grams_to_mg(value)


@pytest.mark.parametrize("value", [1.5, 1000.0, 0.1, float("nan"), float("inf")])
def test_grams_refuse_floats(value: float) -> None:
    with pytest.raises(ValueError, match="not a float"):
        grams_to_mg(value)


@pytest.mark.parametrize("text", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf"])
def test_grams_refuse_non_finite_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="finite"):
        grams_to_mg(text)


@pytest.mark.parametrize("text", ["", "abc", "1,000.000", "1 000", "12g", "True"])
def test_grams_refuse_text_that_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="decimal number"):
        grams_to_mg(text)


def test_grams_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^received_gross_weight "):
        grams_to_mg("0", "received_gross_weight")


@given(milligrams)
def test_parsing_formatted_grams_gives_back_the_same_milligrams(mg: int) -> None:
    text = format_grams(mg)
    assert grams_to_mg(text) == mg
    assert len(text.split(".")[1]) == 3


@given(milligrams)
def test_mg_to_grams_has_three_places_and_is_exact(mg: int) -> None:
    grams = mg_to_grams(mg)
    assert grams.as_tuple().exponent == -3
    assert grams * 1000 == mg


def test_format_grams_examples() -> None:
    assert format_grams(915_000) == "915.000"
    assert format_grams(1) == "0.001"
    assert format_grams(1_234_567) == "1234.567"


# --- fineness -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "tenths"),
    [("915.0", 9150), ("915", 9150), ("999.9", 9999), ("0.1", 1), ("750.5", 7505), (915, 9150)],
)
def test_fineness_parses_to_tenths_of_a_per_mille(text: object, tenths: int) -> None:
    assert fineness_to_tenths(text) == tenths


@pytest.mark.parametrize("text", ["0", "0.0", "-1", "1000", "1000.0", "999.95", "1e4"])
def test_fineness_must_be_above_zero_and_at_most_999_9(text: str) -> None:
    with pytest.raises(ValueError):
        fineness_to_tenths(text)


def test_fineness_just_above_maximum_is_refused_with_the_range_message() -> None:
    with pytest.raises(ValueError, match=r"at most 999\.9"):
        fineness_to_tenths("1000.0")
    with pytest.raises(ValueError, match="above 0"):
        fineness_to_tenths("0.0")


@pytest.mark.parametrize("text", ["915.05", "0.05", "999.99"])
def test_fineness_refuses_more_than_one_decimal(text: str) -> None:
    with pytest.raises(ValueError, match="more than one decimal"):
        fineness_to_tenths(text)


@pytest.mark.parametrize("value", [915.0, "NaN", "Infinity", "abc"])
def test_fineness_refuses_floats_and_non_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        fineness_to_tenths(value)


@given(fineness_tenths)
def test_parsing_formatted_fineness_gives_back_the_same_tenths(tenths: int) -> None:
    text = format_fineness(tenths)
    assert fineness_to_tenths(text) == tenths
    assert len(text.split(".")[1]) == 1


def test_format_fineness_examples() -> None:
    assert format_fineness(9150) == "915.0"
    assert format_fineness(9999) == "999.9"
    assert format_fineness(1) == "0.1"


# --- money ----------------------------------------------------------------------------------

def test_fairmined_premium_on_915_grams_is_3660_dollars() -> None:
    cents = premium_cents(915_000, Decimal("4000"))
    assert cents == 366_000
    assert format_money(cents) == "3660.00"


def test_fairmined_ecological_premium_on_915_grams_is_5490_dollars() -> None:
    cents = premium_cents(915_000, Decimal("6000"))
    assert cents == 549_000
    assert format_money(cents) == "5490.00"


def test_premium_on_a_kilogram_is_the_rate() -> None:
    assert premium_cents(1_000_000, Decimal("4000")) == 400_000
    assert premium_cents(1_000_000, Decimal("6000")) == 600_000


def test_premium_rounds_to_the_nearest_cent_off_ties() -> None:
    # 1 mg at USD 4,000/kg = 0.4 cent -> 0; 2 mg = 0.8 cent -> 1; 123.457 g -> 493.828 -> 493.83
    assert premium_cents(1, Decimal("4000")) == 0
    assert premium_cents(2, Decimal("4000")) == 1
    assert premium_cents(123_457, Decimal("4000")) == 49_383
    # 123.457 g at 6,000/kg = USD 740.742 -> 740.74
    assert premium_cents(123_457, Decimal("6000")) == 74_074


@pytest.mark.parametrize(
    ("fine_mg", "rate", "expected"),
    [
        (1, Decimal("5000"), 0),       # 0.5 cent -> 0 (even)
        (3, Decimal("5000"), 2),       # 1.5 cents -> 2 (even)
        (5, Decimal("5000"), 2),       # 2.5 cents -> 2 (even)
        (7, Decimal("5000"), 4),       # 3.5 cents -> 4 (even)
        (1_000, Decimal("4.5"), 0),    # 1 g at USD 4.50/kg = 0.45 cent -> 0
        (5_000, Decimal("1"), 0),      # 0.5 cent -> 0
        (15_000, Decimal("1"), 2),     # 1.5 cents -> 2
        (100_001, Decimal("5000"), 50_000),  # USD 500.005 -> 500.00 (even)
        (100_003, Decimal("5000"), 50_002),  # USD 500.015 -> 500.02 (even)
    ],
)
def test_premium_rounds_half_even_at_the_cent_on_ties(
        fine_mg: int, rate: Decimal, expected: int) -> None:
    assert premium_cents(fine_mg, rate) == expected


def test_premium_is_rounded_once_from_exact_values_not_from_rounded_intermediates() -> None:
    # 1 g at USD 14.9875/kg: exact premium is 1.49875 cents.
    fine_mg, rate = 1_000, Decimal("14.9875")
    exact_cents = Decimal(fine_mg) * rate / Decimal(10_000)
    assert exact_cents == Decimal("1.49875")
    # Rounding an intermediate (to hundredths of a cent) first turns it into a tie: 1.50 -> 2.
    double_rounded = exact_cents.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN)
    assert double_rounded == 2
    # Rounding the exact value once gives 1.
    assert premium_cents(fine_mg, rate) == 1


def test_premium_is_not_computed_from_a_per_gram_rate_rounded_to_the_cent() -> None:
    # USD 4,123.456/kg is 4.123456/g; a per-gram rate rounded to 4.12 would give USD 4,120.00
    # on a kilogram. The exact premium is USD 4,123.456 -> 4,123.46.
    rate = Decimal("4123.456")
    rounded_per_gram = (rate / 1000).quantize(Decimal("0.01"))
    assert int(rounded_per_gram * 1000 * 100) == 412_000
    assert premium_cents(1_000_000, rate) == 412_346


def test_premium_sum_of_parts_may_differ_from_premium_of_the_whole() -> None:
    # Three 1 mg deliveries at 5,000/kg are 0.5 cent each -> 0 each, but 3 mg is 1.5 -> 2:
    # the premium is computed on each delivery's exact weight, never on rounded parts.
    assert sum(premium_cents(1, Decimal("5000")) for _ in range(3)) == 0
    assert premium_cents(3, Decimal("5000")) == 2


@given(st.integers(min_value=0, max_value=10**12),
       st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=4))
def test_premium_is_the_exact_product_rounded_half_even_once(fine_mg: int, rate: Decimal) -> None:
    exact_cents = Decimal(fine_mg) * rate / Decimal(10_000)
    cents = premium_cents(fine_mg, rate)
    assert isinstance(cents, int)
    assert abs(Decimal(cents) - exact_cents) <= Decimal("0.5")
    assert cents == int(exact_cents.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@given(st.integers(min_value=0, max_value=10**14))
def test_money_formats_with_two_places_and_round_trips(cents: int) -> None:
    text = format_money(cents)
    assert len(text.split(".")[1]) == 2
    assert Decimal(text) * 100 == cents
    assert cents_to_decimal(cents) == Decimal(text)


def test_format_money_examples() -> None:
    assert format_money(366_000) == "3660.00"
    assert format_money(1) == "0.01"
    assert format_money(0) == "0.00"


@pytest.mark.parametrize("text", ["10000000.001", "1e9", "9" * 40])
def test_weights_beyond_ten_tonnes_or_absurdly_long_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"ten tonnes|too long"):
        grams_to_mg(text)
