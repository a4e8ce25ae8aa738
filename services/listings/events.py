"""Events the listings service raises: lots published, and the answers to reservation requests."""

from __future__ import annotations

from shared.events import Event
from shared.values import Standard


class ListingsEvent(Event):
    source = "listings"


class ListingPublished(ListingsEvent):
    """A producer put a lot of certified gold on the market."""

    type = "listing_published"
    listing_id: str
    producer_id: str
    standard: Standard
    form: str
    gross_weight: str
    fineness: str
    fine_weight: str
    country: str
    mercury_free: bool


class ListingReserved(ListingsEvent):
    """Fine gold was set aside in a lot for an order."""

    type = "listing_reserved"
    order_id: str
    listing_id: str
    producer_id: str
    standard: Standard
    fine_weight: str
    available_fine_weight: str


class ReservationRejected(ListingsEvent):
    """A lot could not reserve what an order asked for."""

    type = "reservation_rejected"
    order_id: str
    listing_id: str
    reason: str


class ListingSuspended(ListingsEvent):
    """A lot went off the market because its producer no longer holds the standard for it."""

    type = "listing_suspended"
    listing_id: str
    producer_id: str
    standard: Standard
    certification_id: str | None = None
    reason: str


class ListingReinstated(ListingsEvent):
    """A suspended lot is back on the market; `status` is what its remaining gold gives it."""

    type = "listing_reinstated"
    listing_id: str
    producer_id: str
    standard: Standard
    certification_id: str | None = None
    status: str
    available_fine_weight: str


class ListingWithdrawn(ListingsEvent):
    """The producer took a lot off the market; reservations already made stand."""

    type = "listing_withdrawn"
    listing_id: str
    producer_id: str
    standard: Standard
    reason: str | None = None


class ReservationReleased(ListingsEvent):
    """An order was cancelled or declined and its gold went back to the lot."""

    type = "reservation_released"
    order_id: str
    listing_id: str
    fine_weight: str
    available_fine_weight: str
