"""The geometry behind the console's drawings, kept out of the templates: a mine site on a
world grid from its coordinates (no tile service), premiums per producer and month, and a
reconciliation run's payouts on Veta's books beside Stripe's.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from gateway.console.i18n import to_decimal

GRID_DEGREES = 30


def site_map(latitude: str | None, longitude: str | None) -> dict[str, Any] | None:
    """Where a site sits on an equirectangular world of 360 x 180 units, or None."""
    lat, lon = to_decimal(latitude), to_decimal(longitude)
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {
        "x": str(lon + 180), "y": str(90 - lat),
        "latitude": f"{abs(lat)}° {'N' if lat >= 0 else 'S'}",
        "longitude": f"{abs(lon)}° {'E' if lon >= 0 else 'W'}",
        "meridians": list(range(0, 361, GRID_DEGREES)),
        "parallels": list(range(0, 181, GRID_DEGREES)),
        # The tropics and the equator help place a point with no coastline drawn.
        "equator": 90, "tropics": ["66.56", "113.44"],
    }


def premium_chart(payouts: list[dict[str, Any]]) -> dict[str, Any]:
    """Premiums per month (of delivery) and producer, as bars scaled to the largest."""
    sums: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for payout in payouts:
        if payout["status"] == "REVERSED":
            continue
        producer = (payout.get("producer") or {}).get("name") or payout["orderId"]
        amount = to_decimal(payout["amount"]["amount"]) or Decimal(0)
        key = (payout["deliveredOn"][:7], producer, payout["amount"]["currency"])
        sums[key] += amount
    largest = max(sums.values(), default=Decimal(0))
    months: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (month, producer, currency), amount in sorted(sums.items()):
        share = (amount * 100 / largest) if largest else Decimal(0)
        months[month].append({"producer": producer, "currency": currency,
                              "amount": {"amount": str(amount), "currency": currency},
                              "percent": str(share.quantize(Decimal("0.1")))})
    return {"months": sorted(months.items(), reverse=True)}


def paid_pairs(totals: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """A reconciliation run's premiums paid out (transfers less reversals) per group (a
    producer, a month), Veta's books beside Stripe's, as pairs of bars.

    Bars are scaled to the largest amount in their currency; a negative total (more reversed
    than transferred in that group) draws no bar, its figure still says so. With `limit`, the
    largest groups are kept and the rest are added up into one row per currency whose key is
    None, with `folded` saying how many groups it holds.
    """
    def paid(row: dict[str, Any], side: str) -> Decimal:
        return to_decimal(row[side]["amount"]) or Decimal(0)

    rows = [{"key": row["key"], "currency": row["currency"], "veta": paid(row, "vetaPaid"),
             "stripe": paid(row, "stripePaid"), "discrepancies": int(row["discrepancies"]),
             "folded": 0} for row in totals]
    if limit is not None and len(rows) > limit:
        rows.sort(key=lambda row: max(abs(row["veta"]), abs(row["stripe"])), reverse=True)
        kept, rest = rows[:limit], rows[limit:]
        others: dict[str, dict[str, Any]] = {}
        for row in rest:
            other = others.setdefault(row["currency"], {
                "key": None, "currency": row["currency"], "veta": Decimal(0),
                "stripe": Decimal(0), "discrepancies": 0, "folded": 0})
            other["veta"] += row["veta"]
            other["stripe"] += row["stripe"]
            other["discrepancies"] += row["discrepancies"]
            other["folded"] += 1
        rows = kept + list(others.values())
    largest: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        largest[row["currency"]] = max(largest[row["currency"]], row["veta"], row["stripe"])

    def percent(amount: Decimal, currency: str) -> str:
        top = largest[currency]
        share = amount * 100 / top if top > 0 and amount > 0 else Decimal(0)
        return str(share.quantize(Decimal("0.1")))

    return [{**row, "veta": {"amount": str(row["veta"]), "currency": row["currency"]},
             "stripe": {"amount": str(row["stripe"]), "currency": row["currency"]},
             "veta_percent": percent(row["veta"], row["currency"]),
             "stripe_percent": percent(row["stripe"], row["currency"]),
             "differs": row["veta"] != row["stripe"]} for row in rows]
