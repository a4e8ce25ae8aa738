"""Every order transition past the happy path, across the services over the real RabbitMQ and
PostgreSQL: cancel, decline, holds from certification events, late reservations, settlement."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from kombu import Connection, Queue, binding
from nameko.standalone.events import event_dispatcher, get_event_exchange
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import create_engine, text

from services.certification.events import (
    CertificationChanged,
    CertificationExpired,
    CertificationGranted,
    CertificationReinstated,
    CertificationSuspended,
    CertificationWithdrawn,
)
from services.certification.service import CertificationService
from services.listings.events import ListingReserved
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.events import PremiumTransferred
from shared.caller import Role
from shared.clock import clock_of
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.values import Standard
from tests.helpers import eventually, lot_input, rpc_as, validity

FAST_TIMERS = {"sweep_seconds": 0.05, "review_seconds": 0.05}


@pytest.fixture
def config(veta_config: dict[str, Any]) -> dict[str, Any]:
    return {**veta_config, "ORDERS": dict(FAST_TIMERS)}


@pytest.fixture
def system(runner_factory: Any, config: dict[str, Any]) -> Any:
    # No payouts: nothing here needs it, and it would take a web port.
    runner = runner_factory(config, CertificationService, ListingsService, OrdersService)
    runner.start()
    return runner


class EventTap:
    """What a service publishes, read straight off the broker through a queue of our own."""

    def __init__(self, config: dict[str, Any], source: str, *types: str) -> None:
        self.connection = Connection(config["AMQP_URI"])
        exchange = get_event_exchange(source, config)
        exchange(self.connection.default_channel).declare()
        self.queue = Queue(f"test-tap-{uuid.uuid4().hex}", auto_delete=True,
                           bindings=[binding(exchange, routing_key=t) for t in types])
        self.bound = self.queue(self.connection.default_channel)
        self.bound.declare()
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while (message := self.bound.get(no_ack=True)) is not None:
            self.seen.append(message.payload)
        return self.seen

    def of(self, event_type: str, **facts: Any) -> list[dict[str, Any]]:
        return [e for e in self.drain() if e["type"] == event_type
                and all(e.get(k) == v for k, v in facts.items())]

    def close(self) -> None:
        self.bound.delete()
        self.connection.release()


@contextmanager
def tap(config: dict[str, Any], source: str, *types: str) -> Iterator[EventTap]:
    listener = EventTap(config, source, *types)
    try:
        yield listener
    finally:
        listener.close()


def orders_of(system: Any) -> Any:
    return get_container(system, OrdersService)


def certified_producer(system: Any, config: dict[str, Any],
                       standard: str = "FAIRMINED") -> tuple[str, str]:
    """A registered producer holding `standard`; listings and orders have both heard."""
    with rpc_as(config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": "Cooperativa Río Verde", "country": "CO", "region": "Antioquia"})
        with entrypoint_waiter(get_container(system, ListingsService),
                               "on_certification_granted"), \
                entrypoint_waiter(orders_of(system), "on_certification_granted"):
            held = rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": standard,
                "certificate_number": f"FM-{producer['id'][:8]}", **validity()})
    [certificate] = [c for c in held["certifications"] if c["standard"] == standard]
    return str(producer["id"]), str(certificate["id"])


def publish(system: Any, config: dict[str, Any], producer: str, standard: str = "FAIRMINED",
            **overrides: Any) -> dict[str, Any]:
    """A published lot that orders also knows of (it keeps the lot's country)."""
    with rpc_as(config, Role.PRODUCER, producer) as rpc, \
            entrypoint_waiter(orders_of(system), "on_listing_published"):
        return dict(rpc.listings.publish_listing(lot_input(producer, standard, **overrides)))


def place(system: Any, config: dict[str, Any], buyer: str, lot_id: str, grams: str,
          answer: str = "on_listing_reserved", **extra: Any) -> dict[str, Any]:
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        with entrypoint_waiter(orders_of(system), answer):
            order = rpc.orders.place_order(
                {"buyer_id": buyer, "listing_id": lot_id, "fine_weight": grams, **extra})
        return dict(rpc.orders.get_orders([order["id"]])[0])


def order_as(config: dict[str, Any], role: Role, org: str | None,
             order_id: str) -> dict[str, Any]:
    with rpc_as(config, role, org) as rpc:
        return dict(rpc.orders.get_orders([order_id])[0])


def available(config: dict[str, Any], lot_id: str) -> str:
    with rpc_as(config, Role.ADMIN) as rpc:
        return str(rpc.listings.get_listings([lot_id])[0]["available_fine_weight"])


def certification_event(system: Any, config: dict[str, Any], event: CertificationChanged,
                        handler: str) -> None:
    """Raise a certification fact on the broker, as certification would, and wait for orders.

    Published straight to certification's exchange so that these tests pin down what orders
    does with the fact, whichever way certification comes to raise it.
    """
    dispatch = event_dispatcher(config)
    with entrypoint_waiter(orders_of(system), handler):
        dispatch("certification", event.type, event.envelope())


def change(cls: type[CertificationChanged], producer: str, certificate: str, version: int,
           standard: str = "FAIRMINED", **extra: Any) -> CertificationChanged:
    return cls(certification_id=certificate, producer_id=producer,
               standard=Standard(standard), reason="audit finding: mercury use",
               version=version, **extra)


def review_twice(system: Any) -> None:
    """Wait until a review of holds has run from start to end after this call."""
    for _ in range(2):
        with entrypoint_waiter(orders_of(system), "review_holds"):
            pass


def statuses(order: dict[str, Any]) -> list[str]:
    return [step["to"] for step in order["history"]]


# --- cancel ---------------------------------------------------------------------------------

def test_a_buyer_cancels_a_confirmed_order_and_orders_asks_listings_to_release_it(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "300.000")
    with tap(config, "orders", "order_cancelled") as events, \
            rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        cancelled = rpc.orders.cancel_order({"order_id": order["id"],
                                             "reason": "found gold closer to home"})
        [event] = eventually(lambda: events.of("order_cancelled", order_id=order["id"]))
    assert cancelled["status"] == "CANCELLED" and cancelled["cancelled_by"] == "BUYER"
    assert statuses(cancelled) == ["PENDING", "CONFIRMED", "CANCELLED"]
    last = cancelled["history"][-1]
    assert (last["actor"], last["reason"]) == ("test-buyer", "found gold closer to home")
    assert (event["listing_id"], event["fine_weight"], event["buyer_id"]) == (
        lot["id"], "300.000", "refinery-1")


def test_only_the_buyer_of_an_order_can_cancel_it_and_not_once_shipped(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    with rpc_as(config, Role.BUYER, "refinery-2") as rpc, pytest.raises(NotFound):
        rpc.orders.cancel_order({"order_id": order["id"]})
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        with pytest.raises(Forbidden):
            rpc.orders.cancel_order({"order_id": order["id"]})
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "AWB-1"})
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc, pytest.raises(Conflict) as refused:
        rpc.orders.cancel_order({"order_id": order["id"]})
    assert refused.value.message == "an order that is SHIPPED cannot be cancelled"
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "SHIPPED"


def test_a_reservation_that_arrives_after_the_buyer_cancelled_is_given_back(
        system: Any, config: dict[str, Any]) -> None:
    """The race: cancelled while PENDING, then listings reserves. Orders must not keep the
    gold, so it asks listings to release it again (listings releases by order id)."""
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    listings = get_container(system, ListingsService)
    listings.stop()  # listings is slow: the order waits in its queue
    with tap(config, "orders", "order_cancelled") as events:
        with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
            order = rpc.orders.place_order({"buyer_id": "refinery-1", "listing_id": lot["id"],
                                            "fine_weight": "200.000"})
            cancelled = rpc.orders.cancel_order({"order_id": order["id"]})
        assert statuses(cancelled) == ["PENDING", "CANCELLED"]
        late = ListingReserved(order_id=order["id"], listing_id=lot["id"],
                               producer_id=producer, standard=Standard.FAIRMINED,
                               fine_weight="200.000", available_fine_weight="715.000")
        with entrypoint_waiter(orders_of(system), "on_listing_reserved"):
            event_dispatcher(config)("listings", late.type, late.envelope())
        first, again = eventually(lambda: len(found := events.of(
            "order_cancelled", order_id=order["id"])) == 2 and found)
    assert first["event_id"] != again["event_id"]
    assert again["reason"] == "reservation arrived after the order was cancelled"
    assert again["fine_weight"] == "200.000"
    after = order_as(config, Role.BUYER, "refinery-1", order["id"])
    assert statuses(after) == ["PENDING", "CANCELLED"]


# --- decline --------------------------------------------------------------------------------

def test_the_producer_declines_a_confirmed_order_with_a_reason(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        with pytest.raises(InvalidInput) as missing:
            rpc.orders.decline_order({"order_id": order["id"], "reason": ""})
        assert missing.value.field == "reason"
        with tap(config, "orders", "order_declined") as events:
            declined = rpc.orders.decline_order(
                {"order_id": order["id"], "reason": "the river flooded the mine road"})
            [event] = eventually(lambda: events.of("order_declined", order_id=order["id"]))
    assert (declined["status"], declined["cancelled_by"]) == ("CANCELLED", "PRODUCER")
    assert declined["reason"] == "the river flooded the mine road"
    assert (event["reason"], event["fine_weight"]) == ("the river flooded the mine road",
                                                       "100.000")
    assert declined["history"][-1]["actor"] == "test-producer"


def test_only_the_producer_of_the_lot_declines_and_only_before_shipping(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    other, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    with rpc_as(config, Role.PRODUCER, other) as rpc, pytest.raises(NotFound):
        rpc.orders.decline_order({"order_id": order["id"], "reason": "not mine"})
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc, pytest.raises(Forbidden):
        rpc.orders.decline_order({"order_id": order["id"], "reason": "buyers cancel"})
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "AWB-9",
                                       "carrier": "Brink's",
                                       "export_permit": "ANM-EXP-2027-0042"})
        with pytest.raises(Conflict):
            rpc.orders.decline_order({"order_id": order["id"], "reason": "too late"})
    shipped = order_as(config, Role.BUYER, "refinery-1", order["id"])
    assert (shipped["status"], shipped["carrier"], shipped["export_permit"]) == (
        "SHIPPED", "Brink's", "ANM-EXP-2027-0042")


# --- holds ----------------------------------------------------------------------------------

def test_a_suspension_holds_confirmed_orders_and_reinstatement_releases_them(
        system: Any, config: dict[str, Any]) -> None:
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    confirmed = place(system, config, "refinery-1", lot["id"], "100.000")
    shipped = place(system, config, "refinery-1", lot["id"], "100.000")
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": shipped["id"],
                                       "shipment_reference": "AWB-2"})

    with tap(config, "orders", "order_hold_placed", "order_hold_released") as events:
        certification_event(system, config, change(CertificationSuspended, producer,
                                                   certificate, 2),
                            "on_certification_suspended")
        held = order_as(config, Role.BUYER, "refinery-1", confirmed["id"])
        assert held["status"] == "ON_HOLD"
        assert held["reason"] == ("the producer's FAIRMINED certification is suspended: "
                                  "audit finding: mercury use")
        assert held["history"][-1]["actor"] == "certification"
        # Gold in transit is not held: it left the mine while the producer was certified.
        assert order_as(config, Role.BUYER, "refinery-1", shipped["id"])["status"] == "SHIPPED"
        with rpc_as(config, Role.PRODUCER, producer) as rpc, pytest.raises(Conflict):
            rpc.orders.mark_order_shipped({"order_id": confirmed["id"],
                                           "shipment_reference": "AWB-3"})

        certification_event(system, config, change(CertificationReinstated, producer,
                                                   certificate, 3),
                            "on_certification_reinstated")
        released = order_as(config, Role.BUYER, "refinery-1", confirmed["id"])
        assert statuses(released) == ["PENDING", "CONFIRMED", "ON_HOLD", "CONFIRMED"]
        assert released["reason"] is None
        eventually(lambda: events.of("order_hold_released", order_id=confirmed["id"]))
        [placed] = events.of("order_hold_placed")
    assert (placed["order_id"], placed["producer_id"], placed["standard"]) == (
        confirmed["id"], producer, "FAIRMINED")


def test_a_suspension_of_another_standard_holds_nothing(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config, "FAIRMINED")
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    certification_event(system, config, change(CertificationSuspended, producer, "craft-cert",
                                               2, standard="CRAFT"),
                        "on_certification_suspended")
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "CONFIRMED"


def test_a_stale_reinstatement_arriving_after_a_newer_suspension_changes_nothing(
        system: Any, config: dict[str, Any]) -> None:
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    certification_event(system, config, change(CertificationSuspended, producer, certificate,
                                               4), "on_certification_suspended")
    certification_event(system, config, change(CertificationReinstated, producer, certificate,
                                               3), "on_certification_reinstated")
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "ON_HOLD"


def test_a_held_order_can_be_cancelled_by_the_buyer(
        system: Any, config: dict[str, Any]) -> None:
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    certification_event(system, config, change(CertificationWithdrawn, producer, certificate,
                                               2), "on_certification_withdrawn")
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        cancelled = rpc.orders.cancel_order({"order_id": order["id"],
                                             "reason": "the producer lost its certificate"})
    assert statuses(cancelled) == ["PENDING", "CONFIRMED", "ON_HOLD", "CANCELLED"]


def test_an_order_confirmed_while_its_producer_is_suspended_goes_straight_on_hold(
        system: Any, config: dict[str, Any]) -> None:
    """listings may reserve before it hears of an expiry; orders then holds the order."""
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    get_container(system, ListingsService).stop()  # it has not heard of the expiry yet
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        order = rpc.orders.place_order({"buyer_id": "refinery-1", "listing_id": lot["id"],
                                        "fine_weight": "100.000"})
    certification_event(system, config, change(CertificationExpired, producer, certificate, 2,
                                               valid_until="2027-01-01"),
                        "on_certification_expired")
    reserved = ListingReserved(order_id=order["id"], listing_id=lot["id"],
                               producer_id=producer, standard=Standard.FAIRMINED,
                               fine_weight="100.000", available_fine_weight="815.000")
    with entrypoint_waiter(orders_of(system), "on_listing_reserved"):
        event_dispatcher(config)("listings", reserved.type, reserved.envelope())
    held = order_as(config, Role.BUYER, "refinery-1", order["id"])
    assert statuses(held) == ["PENDING", "CONFIRMED", "ON_HOLD"]
    assert held["reason"] == "the producer's FAIRMINED certification is expired"


def test_a_renewed_certificate_releases_orders_held_by_an_expiry(
        system: Any, config: dict[str, Any]) -> None:
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    certification_event(system, config, change(CertificationExpired, producer, certificate, 2,
                                               valid_until="2027-01-01"),
                        "on_certification_expired")
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "ON_HOLD"
    renewal = CertificationGranted.model_validate({
        "certification_id": str(uuid.uuid4()), "producer_id": producer,
        "standard": "FAIRMINED", "certificate_number": "FM-RENEW", "version": 1,
        **validity(days_before=1)})
    dispatch = event_dispatcher(config)
    with entrypoint_waiter(orders_of(system), "on_certification_granted"):
        dispatch("certification", renewal.type, renewal.envelope())
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "CONFIRMED"


def test_a_renewal_granted_ahead_of_time_releases_held_orders_on_its_first_day(
        system: Any, config: dict[str, Any]) -> None:
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    certification_event(system, config, change(CertificationSuspended, producer, certificate,
                                               2), "on_certification_suspended")
    clock = clock_of(orders_of(system))
    today = datetime.now(UTC)
    clock.move_to(today)
    renewal = CertificationGranted.model_validate({
        "certification_id": str(uuid.uuid4()), "producer_id": producer,
        "standard": "FAIRMINED", "certificate_number": "FM-NEXT", "version": 1,
        "valid_from": (today + timedelta(days=1)).date().isoformat(),
        "valid_until": (today + timedelta(days=400)).date().isoformat()})
    with entrypoint_waiter(orders_of(system), "on_certification_granted"):
        event_dispatcher(config)("certification", renewal.type, renewal.envelope())
    review_twice(system)
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "ON_HOLD"
    clock.move_to(today + timedelta(days=1))
    eventually(lambda: order_as(config, Role.BUYER, "refinery-1",
                                order["id"])["status"] == "CONFIRMED")


def test_a_confirmed_order_a_suspension_missed_is_held_by_the_review(
        system: Any, config: dict[str, Any], database_urls: dict[str, str]) -> None:
    """The safety net: whatever slipped between a suspension and its holds is caught."""
    producer, certificate = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    engine = create_engine(database_urls["orders"])
    with engine.begin() as connection:  # as if the suspension had been applied, holds lost
        connection.execute(text("UPDATE known_certificates SET status = 'SUSPENDED' "
                                "WHERE certification_id = :id"), {"id": certificate})
    engine.dispose()
    held = eventually(lambda: (found := order_as(config, Role.BUYER, "refinery-1",
                                                 order["id"]))["status"] == "ON_HOLD" and found)
    assert held["reason"] == "the producer's FAIRMINED certification is suspended"


# --- price basis ----------------------------------------------------------------------------

def test_an_order_records_its_agreed_price_basis(system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000",
                  price_basis={"percent_of_lbma": "98.50", "fixing": "AM"})
    assert order["price_basis"] == {"percent_of_lbma": "98.50", "fixing": "AM"}


def test_fairmined_gold_cannot_be_ordered_below_95_percent_of_lbma(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc, \
            pytest.raises(InvalidInput) as refused:
        rpc.orders.place_order({"buyer_id": "refinery-1", "listing_id": lot["id"],
                                "fine_weight": "1.000",
                                "price_basis": {"percent_of_lbma": "94.99"}})
    assert refused.value.field == "price_basis.percent_of_lbma"
    with rpc_as(config, Role.ADMIN) as rpc:
        assert rpc.orders.list_orders({"listing_id": lot["id"]})["items"] == []


# --- settlement and who sees what -----------------------------------------------------------

def test_finance_settles_a_delivered_order(system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-1", lot["id"], "100.000")
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "A"})
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        with pytest.raises(Forbidden):
            rpc.orders.settle_order({"order_id": order["id"]})
        delivered = rpc.orders.confirm_delivery({"order_id": order["id"],
                                                 "received_gross_weight": "109.290",
                                                 "received_fineness": "915.0"})
    assert delivered["delivered_on"] is not None
    with rpc_as(config, Role.FINANCE) as rpc, tap(config, "orders", "order_settled") as events:
        settled = rpc.orders.settle_order({"order_id": order["id"]})
        eventually(lambda: events.of("order_settled", order_id=order["id"]))
    assert statuses(settled) == ["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "SETTLED"]


def test_a_delivered_order_settles_by_itself_when_its_premium_is_transferred(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    order = place(system, config, "refinery-3", lot["id"], "100.000")
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "B"})
    with rpc_as(config, Role.BUYER, "refinery-3") as rpc:
        rpc.orders.confirm_delivery({"order_id": order["id"], "received_gross_weight": "109.290",
                                     "received_fineness": "915.0"})
    transferred = PremiumTransferred(
        obligation_id=str(uuid.uuid4()), order_id=order["id"], producer_id=producer,
        standard=Standard.FAIRMINED, amount="400.00", currency="USD", transfer_id="tr_1")
    orders = get_container(system, OrdersService)
    for _ in range(2):  # a redelivery settles nothing twice
        with entrypoint_waiter(orders, "on_premium_transferred"):
            event_dispatcher(config)("payouts", transferred.type, transferred.envelope())
    with rpc_as(config, Role.FINANCE) as rpc:
        [settled] = rpc.orders.get_orders([order["id"]])
    assert statuses(settled) == ["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "SETTLED"]
    assert settled["history"][-1]["actor"] == "payouts"


def test_a_producer_sees_orders_for_its_lots_even_pending_and_buyers_only_their_own(
        system: Any, config: dict[str, Any], database_urls: dict[str, str]) -> None:
    producer, _ = certified_producer(system, config)
    other, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    mine = place(system, config, "refinery-1", lot["id"], "10.000")
    theirs = place(system, config, "refinery-2", lot["id"], "10.000")
    # Orders knew the lot from listing_published, so the producer is on the order at once.
    engine = create_engine(database_urls["orders"])
    with engine.connect() as connection:
        producer_at_placement = connection.execute(text(
            "SELECT producer_id FROM orders WHERE id = :id"), {"id": mine["id"]}).scalar_one()
    engine.dispose()
    assert producer_at_placement == producer
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        assert [o["id"] for o in rpc.orders.get_orders([mine["id"], theirs["id"]])] == \
            [mine["id"]]
        page = rpc.orders.list_orders({"listing_id": lot["id"]})
        assert [item["node"]["id"] for item in page["items"]] == [mine["id"]]
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        page = rpc.orders.list_orders({"listing_id": lot["id"]})
        assert {item["node"]["id"] for item in page["items"]} == {mine["id"], theirs["id"]}
    with rpc_as(config, Role.PRODUCER, other) as rpc:
        assert rpc.orders.list_orders({"listing_id": lot["id"]})["items"] == []
        assert rpc.orders.get_orders([mine["id"]]) == []
    with rpc_as(config, Role.CERTIFIER) as rpc, pytest.raises(Forbidden):
        rpc.orders.list_orders()


def test_orders_filter_by_status_and_day_and_page_with_cursors(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    buyer = f"refinery-{uuid.uuid4().hex[:8]}"  # orders outlive a test: count only ours
    placed = [place(system, config, buyer, lot["id"], "10.000") for _ in range(3)]
    rejected = place(system, config, buyer, lot["id"], "9999.000",
                     answer="on_reservation_rejected")
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        first = rpc.orders.list_orders({"status": ["CONFIRMED"]}, first=2)
        rest = rpc.orders.list_orders({"status": ["CONFIRMED"]}, first=2,
                                      after=first["items"][-1]["cursor"])
        only_rejected = rpc.orders.list_orders({"status": ["REJECTED"]})
        today = placed[0]["created_at"][:10]
        on_the_day = rpc.orders.list_orders({"placed_from": today, "placed_to": today})
        before = rpc.orders.list_orders({"placed_to": "2000-01-01"})
        with pytest.raises(InvalidInput) as backwards:
            rpc.orders.list_orders({"placed_from": today, "placed_to": "2000-01-01"})
    assert backwards.value.field == "placed_to"
    assert first["has_next_page"] and not rest["has_next_page"]
    newest_first = [o["id"] for o in reversed(placed)]
    assert [i["node"]["id"] for i in first["items"] + rest["items"]] == newest_first
    assert [i["node"]["id"] for i in only_rejected["items"]] == [rejected["id"]]
    assert len(on_the_day["items"]) == 4 and before["items"] == []


def test_placing_an_order_again_with_its_idempotency_key_returns_the_same_order(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    request = {"buyer_id": "refinery-4", "listing_id": lot["id"], "fine_weight": "10.000",
               "idempotency_key": "po-2026-0042"}
    with rpc_as(config, Role.BUYER, "refinery-4") as rpc:
        first = rpc.orders.place_order(request)
        again = rpc.orders.place_order(request)  # a retry, or the broker's redelivery
        assert again["id"] == first["id"]
        with pytest.raises(Conflict) as reused:
            rpc.orders.place_order({**request, "fine_weight": "11.000"})
        assert reused.value.field == "idempotency_key"
        page = rpc.orders.list_orders(first=100)
    assert [o["node"]["id"] for o in page["items"]
            if o["node"]["listing_id"] == lot["id"]] == [first["id"]]


def test_orders_placed_together_under_one_key_make_one_order_raised_once(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    buyer = f"refinery-{uuid.uuid4().hex[:8]}"
    request = {"buyer_id": buyer, "listing_id": lot["id"], "fine_weight": "10.000",
               "idempotency_key": "double-click"}

    def ask(_: int) -> dict[str, Any]:
        with rpc_as(config, Role.BUYER, buyer) as rpc:
            return dict(rpc.orders.place_order(request))

    with tap(config, "orders", "order_placed", "order_cancelled") as events:
        # A double click, or a retry racing the first attempt still in flight: each waits
        # for the other's transaction instead of failing on the order's id.
        answers = list(eventlet.GreenPool().imap(ask, range(6)))
        order_id = answers[0]["id"]
        with rpc_as(config, Role.BUYER, buyer) as rpc:
            cancelled = rpc.orders.cancel_order({"order_id": order_id})
            page = rpc.orders.list_orders({"listing_id": lot["id"]})
        # The relay publishes in outbox order: a second order_placed would be out by now.
        eventually(lambda: events.of("order_cancelled", order_id=order_id))
        placed = events.of("order_placed", order_id=order_id)
    assert {a["id"] for a in answers} == {order_id}
    assert [i["node"]["id"] for i in page["items"]] == [order_id]
    assert [step["from"] for step in cancelled["history"]].count(None) == 1
    assert len(placed) == 1


def test_a_key_that_names_another_buyers_order_is_refused_without_revealing_it(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    buyer = f"refinery-{uuid.uuid4().hex[:8]}"
    # ("refinery-…", "lot-7/po-1") and ("refinery-…/lot-7", "po-1") derive the same order id.
    theirs = {"buyer_id": buyer, "listing_id": lot["id"], "fine_weight": "10.000",
              "idempotency_key": "lot-7/po-1"}
    other = f"{buyer}/lot-7"
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        placed = rpc.orders.place_order(theirs)
        with pytest.raises(Conflict) as own_reuse:
            rpc.orders.place_order({**theirs, "fine_weight": "11.000"})
    refusals = []
    with rpc_as(config, Role.BUYER, other) as rpc:
        # The same lot and weight are refused like any other: nothing can be guessed at.
        for weight in ("10.000", "11.000"):
            with pytest.raises(Conflict) as refused:
                rpc.orders.place_order({**theirs, "buyer_id": other, "fine_weight": weight,
                                        "idempotency_key": "po-1"})
            refusals.append(refused.value)
        assert rpc.orders.list_orders()["items"] == []
        assert rpc.orders.get_orders([placed["id"]]) == []
    for refusal in refusals:
        assert (refusal.field, refusal.message) == ("idempotency_key",
                                                    own_reuse.value.message)
        assert not {placed["id"], buyer, lot["id"], producer} & set(refusal.message.split())
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        again = rpc.orders.place_order(theirs)
    assert (again["id"], again["buyer_id"], again["fine_weight"]) == (placed["id"], buyer,
                                                                     "10.000")
