"""Events the orders service raises: each step of an order's saga, and sourcing commitments."""

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
    carrier: str | None = None
    export_permit: str | None = None


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
    """The buyer cancelled; listings releases any reservation the order holds.

    Orders also raises it again, with a new event id, when a reservation reaches an order
    that is already CANCELLED or REJECTED (a late answer): listings releases it by order id.
    """

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


class OrderHoldPlaced(OrdersEvent):
    """A confirmed order waits: the producer's certificate for its standard is not valid."""

    type = "order_hold_placed"
    order_id: str
    buyer_id: str
    listing_id: str
    producer_id: str
    standard: Standard
    reason: str


class OrderHoldReleased(OrdersEvent):
    """The producer is in good standing again: the order is CONFIRMED and may ship."""

    type = "order_hold_released"
    order_id: str
    buyer_id: str
    listing_id: str
    producer_id: str
    standard: Standard


class OrderSettled(OrdersEvent):
    """The premium on a delivered order was paid: the order is closed."""

    type = "order_settled"
    order_id: str
    buyer_id: str
    producer_id: str


class CommitmentEvent(OrdersEvent):
    """Common facts of a sourcing commitment."""

    commitment_id: str
    buyer_id: str


class CommitmentTerms(CommitmentEvent):
    fine_weight: str
    standards: list[Standard]
    period_start: date
    period_end: date
    countries: list[str]
    producer_ids: list[str]
    price_ceiling_percent: str | None = None
    """At most this share of the LBMA price, e.g. "99.00"; none: any price."""


class CommitmentCreated(CommitmentTerms):
    """A buyer committed to source a quantity of fine gold over a period."""

    type = "commitment_created"


class CommitmentAmended(CommitmentTerms):
    """A commitment's terms changed; the fields carry the new terms."""

    type = "commitment_amended"


class CommitmentProgressed(CommitmentEvent):
    """A delivered order drew the commitment down (`drawn` may be part of the delivery)."""

    type = "commitment_progressed"
    order_id: str
    drawn_fine_weight: str
    delivered_fine_weight: str
    remaining_fine_weight: str
    percentage: str


class CommitmentFulfilled(CommitmentEvent):
    """Everything committed has been delivered."""

    type = "commitment_fulfilled"
    fine_weight: str
    fulfilled_on: date


class CommitmentLapsed(CommitmentEvent):
    """The period ended before the commitment was fulfilled (found by a timer)."""

    type = "commitment_lapsed"
    fine_weight: str
    delivered_fine_weight: str
    remaining_fine_weight: str
    period_end: date


class CommitmentCancelled(CommitmentEvent):
    """The buyer withdrew the commitment; what was delivered stays on record."""

    type = "commitment_cancelled"
    delivered_fine_weight: str
    reason: str
