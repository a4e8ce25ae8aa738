"""The geometry behind the console's two drawings, kept out of the templates: a mine site on a
world grid from its coordinates (no tile service), and premiums per producer and month.
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
