"""The console's drawings are computed from the API's exact decimal strings, never floats."""

from __future__ import annotations

from typing import Any

from gateway.console.drawings import paid_pairs, premium_chart, site_map


def test_a_site_is_placed_on_the_world_grid_and_a_bad_coordinate_draws_nothing() -> None:
    drawn = site_map("6.2442", "-75.5812")
    assert drawn is not None
    assert (drawn["x"], drawn["y"]) == ("104.4188", "83.7558")
    assert (drawn["latitude"], drawn["longitude"]) == ("6.2442° N", "75.5812° W")
    assert drawn["meridians"][-1] == 360 and drawn["parallels"][-1] == 180
    assert site_map(None, "-75.5") is None
    assert site_map("91", "0") is None
    assert site_map("0", "-180.1") is None


def payout(month: str, producer: str, amount: str, status: str = "PAID") -> dict[str, Any]:
    return {"status": status, "orderId": f"order-{producer}", "deliveredOn": f"{month}-15",
            "producer": {"name": producer}, "amount": {"amount": amount, "currency": "USD"}}


def test_premiums_add_up_per_month_and_producer_scaled_to_the_largest() -> None:
    chart = premium_chart([
        payout("2026-10", "Filo de Oro", "1000.10"), payout("2026-10", "Filo de Oro", "999.90"),
        payout("2026-10", "La Llanada", "500.00"), payout("2026-11", "La Llanada", "250.00"),
        payout("2026-11", "La Llanada", "9999.99", status="REVERSED"),
    ])
    november, october = chart["months"]
    assert november[0] == "2026-11" and october[0] == "2026-10"
    filo, llanada = october[1]
    assert filo["amount"] == {"amount": "2000.00", "currency": "USD"}
    assert (filo["percent"], llanada["percent"]) == ("100.0", "25.0")
    assert november[1][0]["percent"] == "12.5"  # a reversed premium was never earned


def total(key: str, veta: str, stripe: str, discrepancies: int = 0) -> dict[str, Any]:
    return {"key": key, "currency": "USD", "vetaPaid": {"amount": veta},
            "stripePaid": {"amount": stripe}, "discrepancies": discrepancies}


def test_veta_and_stripe_side_by_side_with_the_differences_marked() -> None:
    first, second = paid_pairs([total("a", "400.00", "400.00"),
                                total("b", "100.00", "80.00", discrepancies=1)])
    assert first["veta"] == {"amount": "400.00", "currency": "USD"}
    assert (first["veta_percent"], first["stripe_percent"], first["differs"]) == \
        ("100.0", "100.0", False)
    assert (second["veta_percent"], second["stripe_percent"], second["differs"]) == \
        ("25.0", "20.0", True)
    assert second["discrepancies"] == 1


def test_more_reversed_than_paid_draws_no_bar_but_says_the_figure() -> None:
    [row] = paid_pairs([total("a", "-50.00", "-50.00")])
    assert row["veta"]["amount"] == "-50.00" and row["veta_percent"] == "0.0"


def test_beyond_the_limit_the_smallest_groups_are_added_up_into_one_row() -> None:
    rows = paid_pairs([total("a", "10.00", "10.00"), total("b", "300.00", "300.00"),
                       total("c", "20.00", "25.00", discrepancies=1),
                       total("d", "200.00", "200.00")], limit=2)
    assert [row["key"] for row in rows] == ["b", "d", None]
    others = rows[-1]
    assert others["folded"] == 2 and others["discrepancies"] == 1
    assert (others["veta"]["amount"], others["stripe"]["amount"]) == ("30.00", "35.00")
