"""GraphQL types for premium obligations and payouts."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.certification.types import Producer, Standard
from gateway.context import context
from gateway.scalars import Date, DateTime, Money, Weight


class ObligationStatus(graphene.Enum):
    CALCULATED = "CALCULATED"
    FUNDED = "FUNDED"
    APPROVED = "APPROVED"
    SUBMITTED = "SUBMITTED"
    PAID = "PAID"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    ON_HOLD = "ON_HOLD"


class Payout(graphene.ObjectType):
    """The premium a delivery earned for its cooperative, and where its payment stands."""

    id = graphene.ID(required=True)
    order_id = graphene.ID(required=True)
    producer = graphene.Field(Producer)
    standard = graphene.Field(Standard, required=True)
    fine_weight = graphene.Field(Weight, required=True)
    rate_per_kg = graphene.Field(Money, required=True,
                                 description="The premium per kg of fine gold in force")
    amount = graphene.Field(Money, required=True)
    delivered_on = Date(required=True)
    status = graphene.Field(ObligationStatus, required=True)
    created_at = DateTime(required=True)

    @staticmethod
    def resolve_producer(obligation: dict[str, Any], info: Any) -> Any:
        return context(info).producers.get(obligation["producer_id"])

    @staticmethod
    def resolve_fine_weight(obligation: dict[str, Any], _info: Any) -> Any:
        return Weight.of(obligation["fine_weight"])

    @staticmethod
    def resolve_rate_per_kg(obligation: dict[str, Any], _info: Any) -> Any:
        return {"amount": obligation["usd_per_kg"], "currency": "USD"}

    @staticmethod
    def resolve_amount(obligation: dict[str, Any], _info: Any) -> Any:
        return {"amount": obligation["amount"], "currency": obligation["currency"]}


class PayoutConnection(graphene.relay.Connection):
    class Meta:
        node = Payout
