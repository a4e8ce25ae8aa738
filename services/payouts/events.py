"""Events the payouts service raises: premiums owed and their progress to the cooperative."""

from __future__ import annotations

from shared.events import Event
from shared.values import Standard


class PayoutsEvent(Event):
    source = "payouts"


class PremiumObligationCreated(PayoutsEvent):
    """A delivery earned a premium that the cooperative is owed."""

    type = "premium_obligation_created"
    obligation_id: str
    order_id: str
    producer_id: str
    standard: Standard
    fine_weight: str
    usd_per_kg: str
    amount: str
    currency: str
