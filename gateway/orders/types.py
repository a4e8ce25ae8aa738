"""GraphQL types for buyers' orders and their saga."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.certification.types import Standard
from gateway.context import context
from gateway.listings.types import Listing
from gateway.scalars import Date, DateTime, Weight


class OrderStatus(graphene.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    ON_HOLD = "ON_HOLD"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"


class OrderParty(graphene.Enum):
    """Who ended an order: the buyer cancelled it, or the producer declined it."""

    BUYER = "BUYER"
    PRODUCER = "PRODUCER"


class LbmaFixing(graphene.Enum):
    AM = "AM"
    PM = "PM"


class PriceBasis(graphene.ObjectType):
    """The agreed price: a share of an LBMA gold fixing on the delivery date."""

    percent_of_lbma = graphene.String(required=True, description="e.g. \"98.50\"")
    fixing = graphene.Field(LbmaFixing, required=True)


class OrderTransition(graphene.ObjectType):
    from_status = graphene.Field(OrderStatus)
    to_status = graphene.Field(OrderStatus, required=True)
    actor = graphene.String(required=True)
    at = DateTime(required=True)
    reason = graphene.String()

    @staticmethod
    def resolve_from_status(step: dict[str, Any], _info: Any) -> str | None:
        return step["from"]

    @staticmethod
    def resolve_to_status(step: dict[str, Any], _info: Any) -> str:
        return str(step["to"])


class Order(graphene.ObjectType):
    id = graphene.ID(required=True)
    buyer_id = graphene.ID(required=True)
    listing = graphene.Field(Listing)
    producer_id = graphene.ID()
    standard = graphene.Field(Standard)
    status = graphene.Field(OrderStatus, required=True)
    fine_weight = graphene.Field(Weight, required=True, description="Fine gold ordered")
    reason = graphene.String(description="Why it was rejected, declined, cancelled or held")
    price_basis = graphene.Field(PriceBasis, description="None until a price is agreed")
    cancelled_by = graphene.Field(OrderParty)
    shipment_reference = graphene.String(description="The carrier's tracking reference")
    carrier = graphene.String()
    export_permit = graphene.String()
    received_gross_weight = graphene.Field(Weight)
    received_fineness = graphene.String()
    delivered_fine_weight = graphene.Field(Weight)
    delivery_difference = graphene.Field(
        Weight, description="Delivered minus ordered fine weight (negative if short)")
    delivered_on = Date()
    history = graphene.List(graphene.NonNull(OrderTransition), required=True)
    created_at = DateTime(required=True)
    updated_at = DateTime(required=True)

    @staticmethod
    def resolve_listing(order: dict[str, Any], info: Any) -> Any:
        return context(info).listings.get(order["listing_id"])

    @staticmethod
    def resolve_fine_weight(order: dict[str, Any], _info: Any) -> Any:
        return Weight.of(order["fine_weight"])

    @staticmethod
    def resolve_received_gross_weight(order: dict[str, Any], _info: Any) -> Any:
        return Weight.of(order["received_gross_weight"])

    @staticmethod
    def resolve_delivered_fine_weight(order: dict[str, Any], _info: Any) -> Any:
        return Weight.of(order["delivered_fine_weight"])

    @staticmethod
    def resolve_delivery_difference(order: dict[str, Any], _info: Any) -> Any:
        return Weight.of(order["delivery_difference"])


class OrderConnection(graphene.relay.Connection):
    class Meta:
        node = Order
