"""PENDING orders that get no answer: asked again, then rejected, with nobody acting, on the real
RabbitMQ and PostgreSQL. The orders service's clock is moved, never slept on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kombu import Connection, Queue
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import create_engine, text

from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from shared.clock import clock_of
from tests.helpers import eventually, rpc_as
from tests.integration.test_orders_lifecycle import (
    FAST_TIMERS,
    available,
    certified_producer,
    order_as,
    publish,
    statuses,
    tap,
)

LISTINGS_ORDER_QUEUE = "evt-orders-order_placed--listings.on_order_placed"


@pytest.fixture
def config(veta_config: dict[str, Any]) -> dict[str, Any]:
    return {**veta_config, "ORDERS": {**FAST_TIMERS, "retry_after_seconds": 30,
                                      "pending_timeout_seconds": 300}}


@pytest.fixture
def system(runner_factory: Any, config: dict[str, Any]) -> Any:
    runner = runner_factory(config, CertificationService, ListingsService, OrdersService)
    runner.start()
    return runner


@pytest.fixture
def orders_db(database_urls: dict[str, str]) -> Any:
    engine = create_engine(database_urls["orders"])
    yield engine
    engine.dispose()


def attempts(engine: Any, order_id: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT attempts FROM orders WHERE id = :id"),
                                      {"id": order_id}).scalar_one())


def request_sent(engine: Any, order_id: str) -> bool:
    """The order's order_placed is out of the outbox (asking again re-queues that row)."""
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT o.sent_at IS NOT NULL FROM outbox o JOIN orders r "
            "ON o.event_id = r.placed_event_id WHERE r.id = :id"), {"id": order_id}).scalar())


def waiting_in_listings_queue(config: dict[str, Any]) -> int:
    with Connection(config["AMQP_URI"]) as connection:
        declared = Queue(LISTINGS_ORDER_QUEUE, durable=True)(connection.default_channel)
        return int(declared.queue_declare(passive=True).message_count)


def start_clock(system: Any) -> Any:
    """Pin the orders service's clock now; the test moves it on."""
    clock = clock_of(get_container(system, OrdersService))
    clock.move_to(datetime.now(UTC))
    return clock


def sweep_twice(system: Any) -> None:
    """Wait until a sweep of pending orders has run from start to end after this call."""
    for _ in range(2):
        with entrypoint_waiter(get_container(system, OrdersService), "sweep_pending_orders"):
            pass


def place(config: dict[str, Any], lot_id: str, grams: str = "100.000") -> dict[str, Any]:
    with rpc_as(config, Role.BUYER, "refinery-1") as rpc:
        return dict(rpc.orders.place_order({"buyer_id": "refinery-1", "listing_id": lot_id,
                                            "fine_weight": grams}))


def test_an_order_whose_request_was_lost_is_asked_again_and_confirmed(
        system: Any, config: dict[str, Any], container_factory: Any, orders_db: Any) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    get_container(system, ListingsService).stop()
    with Connection(config["AMQP_URI"]) as connection:
        # The request goes nowhere: as if listings' queue had been lost with the broker.
        Queue(LISTINGS_ORDER_QUEUE)(connection.default_channel).delete()
    clock = start_clock(system)
    with tap(config, "orders", "order_placed") as requests:
        order = place(config, lot["id"])
        eventually(lambda: requests.of("order_placed", order_id=order["id"]))
        listings = container_factory(ListingsService, config)
        listings.start()
        clock.move_to(clock.pinned + timedelta(seconds=31))
        with entrypoint_waiter(get_container(system, OrdersService), "on_listing_reserved"):
            first, again = eventually(lambda: len(found := requests.of(
                "order_placed", order_id=order["id"])) == 2 and found)
    assert again["event_id"] == first["event_id"]  # the same request, asked again
    assert attempts(orders_db, order["id"]) == 2
    confirmed = order_as(config, Role.BUYER, "refinery-1", order["id"])
    assert statuses(confirmed) == ["PENDING", "CONFIRMED"]
    assert available(config, lot["id"]) == "815.000"


def test_asking_again_while_listings_is_down_never_reserves_twice(
        system: Any, config: dict[str, Any], container_factory: Any, orders_db: Any) -> None:
    """The first request still waits in listings' queue when orders asks again: listings
    gets both, applies the first and skips the second (same event id)."""
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    get_container(system, ListingsService).stop()
    clock = start_clock(system)
    order = place(config, lot["id"], "300.000")
    # Each request must have left the outbox before the next is asked for: asking again
    # while the row still waits there sends it once, not twice.
    eventually(lambda: request_sent(orders_db, order["id"]))
    clock.move_to(clock.pinned + timedelta(seconds=31))
    eventually(lambda: attempts(orders_db, order["id"]) == 2)
    eventually(lambda: request_sent(orders_db, order["id"]))
    clock.move_to(clock.pinned + timedelta(seconds=31))
    eventually(lambda: attempts(orders_db, order["id"]) == 3)
    # At least our three requests wait (the run's database also holds other tests' pending
    # orders, which the moved clock asks about again).
    eventually(lambda: waiting_in_listings_queue(config) >= 3)
    with entrypoint_waiter(get_container(system, OrdersService), "on_listing_reserved"):
        container_factory(ListingsService, config).start()
    eventually(lambda: waiting_in_listings_queue(config) == 0)
    assert available(config, lot["id"]) == "615.000"  # 915 g less one reservation of 300 g
    assert statuses(order_as(config, Role.BUYER, "refinery-1", order["id"])) == [
        "PENDING", "CONFIRMED"]


def test_an_order_nobody_answers_is_rejected_after_the_timeout(
        system: Any, config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    get_container(system, ListingsService).stop()
    clock = start_clock(system)
    with tap(config, "orders", "order_rejected") as events:
        order = place(config, lot["id"])
        clock.move_to(clock.pinned + timedelta(seconds=299))
        sweep_twice(system)  # a whole sweep ran at 299 s
        assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "PENDING"
        clock.move_to(clock.pinned + timedelta(seconds=1))
        [rejected] = eventually(lambda: events.of("order_rejected", order_id=order["id"]))
    reason = "no answer about the lot within 300 s; the order was not reserved"
    assert rejected["reason"] == reason
    after = order_as(config, Role.BUYER, "refinery-1", order["id"])
    assert statuses(after) == ["PENDING", "REJECTED"]
    assert (after["history"][-1]["actor"], after["reason"]) == ("orders", reason)


def test_gold_reserved_after_the_timeout_goes_back_to_the_lot(
        system: Any, config: dict[str, Any], container_factory: Any) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    get_container(system, ListingsService).stop()
    clock = start_clock(system)
    with tap(config, "orders", "order_rejected", "order_cancelled") as events:
        order = place(config, lot["id"], "500.000")
        clock.move_to(clock.pinned + timedelta(seconds=300))
        eventually(lambda: events.of("order_rejected", order_id=order["id"]))
        # listings comes back and, not knowing, reserves the order's gold.
        with entrypoint_waiter(get_container(system, OrdersService), "on_listing_reserved"):
            container_factory(ListingsService, config).start()
        [given_back] = eventually(lambda: events.of("order_cancelled", order_id=order["id"]))
    assert given_back["reason"] == "reservation arrived after the order was rejected"
    eventually(lambda: available(config, lot["id"]) == "915.000")
    assert order_as(config, Role.BUYER, "refinery-1", order["id"])["status"] == "REJECTED"
