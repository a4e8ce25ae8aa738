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
