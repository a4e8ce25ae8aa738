"""Events the orders service raises: each step of an order's saga."""

from __future__ import annotations

from datetime import date

from shared.events import Event
from shared.values import Standard


class OrdersEvent(Event):
    source = "orders"


class OrderPlaced(OrdersEvent):
    """A buyer asked for fine gold from a lot; listings will reserve it or refuse."""

    type = "order_placed"
    order_id: str
    buyer_id: str
    listing_id: str
    fine_weight: str


class OrderConfirmed(OrdersEvent):
    """Listings reserved the gold: the order stands."""

    type = "order_confirmed"
    order_id: str
    buyer_id: str
    listing_id: str
    producer_id: str
    standard: Standard
    fine_weight: str


class OrderRejected(OrdersEvent):
    """Listings could not reserve the gold; `reason` says why."""

    type = "order_rejected"
    order_id: str
    buyer_id: str
    listing_id: str
    reason: str


class OrderShipped(OrdersEvent):
    """The producer sent the gold."""

    type = "order_shipped"
    order_id: str
    shipment_reference: str


class OrderDelivered(OrdersEvent):
    """The buyer received the gold and assayed it; the premium is owed on what arrived."""

    type = "order_delivered"
    order_id: str
    buyer_id: str
    listing_id: str
    producer_id: str
    standard: Standard
    ordered_fine_weight: str
    received_gross_weight: str
    received_fineness: str
    delivered_fine_weight: str
    delivered_on: date


class OrderCancelled(OrdersEvent):
    """The buyer cancelled (or a timeout did); listings releases any reservation."""

    type = "order_cancelled"
    order_id: str
    buyer_id: str
    listing_id: str
    fine_weight: str
    reason: str


class OrderDeclined(OrdersEvent):
    """The producer declined a confirmed order before shipping; listings releases it."""

    type = "order_declined"
    order_id: str
    buyer_id: str
    listing_id: str
    fine_weight: str
    reason: str
