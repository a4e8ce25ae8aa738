"""Certificates drive lots, and orders give gold back, over real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import create_engine, text

from services.certification.events import (
    CertificationExpired,
    CertificationGranted,
    CertificationReinstated,
    CertificationSuspended,
    CertificationWithdrawn,
)
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.events import OrderCancelled, OrderDeclined, OrderPlaced
from shared.caller import Role
from shared.errors import Conflict
from shared.events import Event
from shared.values import Standard
from tests.helpers import eventually, lot_input, rpc_as, validity


@pytest.fixture
def listings(container_factory: Any, veta_config: dict[str, Any]) -> Any:
    container = container_factory(ListingsService, veta_config)
    container.start()
    return container


@pytest.fixture
def db(database_urls: dict[str, str]) -> Any:
    engine = create_engine(database_urls["listings"])
    yield engine
    engine.dispose()


def granted(producer_id: str, standard: Standard = Standard.FAIRMINED) -> CertificationGranted:
    today = date.today()
    return CertificationGranted(
        certification_id=str(uuid.uuid4()), producer_id=producer_id, standard=standard,
        certificate_number=f"FM-{uuid.uuid4().hex[:6]}", valid_from=today - timedelta(days=30),
        valid_until=today + timedelta(days=300), version=1)


def change(cls: type[Any], grant: CertificationGranted, version: int) -> Any:
    return cls(certification_id=grant.certification_id, producer_id=grant.producer_id,
               standard=grant.standard, version=version, valid_from=grant.valid_from,
               valid_until=grant.valid_until, scope=[], reason=f"step {version}")


def deliver(config: dict[str, Any], listings: Any, event: Event, handler: str) -> None:
    with entrypoint_waiter(listings, handler):
        event_dispatcher(config)(event.source, event.type, event.envelope())


def publish(config: dict[str, Any], producer_id: str, count: int, **lot: Any) -> list[str]:
    with rpc_as(config, Role.PRODUCER, producer_id) as rpc:
        return [rpc.listings.publish_listing(lot_input(producer_id, **lot))["id"]
                for _ in range(count)]


def statuses(config: dict[str, Any], ids: list[str]) -> dict[str, str]:
    with rpc_as(config, Role.ADMIN) as rpc:
        return {lot["id"]: lot["status"] for lot in rpc.listings.get_listings(ids)}


def outbox_count(db: Any, event_type: str, ids: list[str]) -> int:
    with db.connect() as connection:
        return int(connection.execute(text(
            "SELECT count(*) FROM outbox WHERE event_type = :t "
            "AND payload->>'listing_id' = ANY(:ids)"), {"t": event_type, "ids": ids}
        ).scalar_one())


def test_suspension_takes_a_producers_lots_under_that_standard_off_the_market_and_back(
        runner_factory: Any, veta_config: dict[str, Any], db: Any) -> None:
    runner = runner_factory(veta_config, CertificationService, ListingsService)
    runner.start()
    listings = get_container(runner, ListingsService)
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": "Cooperativa Cascada", "country": "PE", "region": "Puno"})
        certificates = {}
        for standard in ("FAIRMINED", "CRAFT"):
            with entrypoint_waiter(listings, "on_certification_granted"):
                view = rpc.certification.grant_certification({
                    "producer_id": producer["id"], "standard": standard,
                    "certificate_number": f"{standard}-{producer['id'][:6]}", **validity()})
            certificates[standard] = next(c["id"] for c in view["certifications"]
                                          if c["standard"] == standard)
    fairmined = publish(veta_config, producer["id"], 3)
    [craft] = publish(veta_config, producer["id"], 1, standard="CRAFT")
    deliver(veta_config, listings, OrderPlaced(order_id=str(uuid.uuid4()), buyer_id="b-1",
                                               listing_id=fairmined[0], fine_weight="15.000"),
            "on_order_placed")

    with rpc_as(veta_config, Role.CERTIFIER) as rpc, \
            entrypoint_waiter(listings, "on_certification_suspended"):
        rpc.certification.suspend_certification(
            {"certification_id": certificates["FAIRMINED"], "reason": "audit finding"})
    assert statuses(veta_config, [*fairmined, craft]) == {
        **{lot: "SUSPENDED" for lot in fairmined}, craft: "PUBLISHED"}
    with rpc_as(veta_config, Role.BUYER, "b-1") as rpc:
        found = rpc.listings.search_listings({"producer_id": producer["id"]})
    assert [item["node"]["id"] for item in found["items"]] == [craft]
    assert outbox_count(db, "listing_suspended", fairmined) == 3
    with rpc_as(veta_config, Role.PRODUCER, producer["id"]) as rpc, \
            pytest.raises(Conflict):
        rpc.listings.update_listing({"listing_id": fairmined[1], "export_permit": "EX-1"})

    with rpc_as(veta_config, Role.CERTIFIER) as rpc, \
            entrypoint_waiter(listings, "on_certification_reinstated"):
        rpc.certification.reinstate_certification(
            {"certification_id": certificates["FAIRMINED"], "reason": "corrected"})
    assert statuses(veta_config, fairmined) == {
        fairmined[0]: "PARTIALLY_RESERVED", fairmined[1]: "PUBLISHED",
        fairmined[2]: "PUBLISHED"}
    assert outbox_count(db, "listing_reinstated", fairmined) == 3

    with rpc_as(veta_config, Role.CERTIFIER) as rpc, \
            entrypoint_waiter(listings, "on_certification_withdrawn"):
        rpc.certification.withdraw_certification(
            {"certification_id": certificates["CRAFT"], "reason": "child labour found"})
    assert statuses(veta_config, [craft]) == {craft: "SUSPENDED"}


def test_shuffled_tripled_certificate_events_end_in_the_right_state(
        listings: Any, veta_config: dict[str, Any], db: Any) -> None:
    stories: dict[str, tuple[list[type[Any]], str]] = {
        # what happens to the certificate after its grant -> the lots' final status
        "reinstated": ([CertificationSuspended, CertificationReinstated], "PUBLISHED"),
        "suspended again": ([CertificationSuspended, CertificationReinstated,
                             CertificationSuspended], "SUSPENDED"),
        "withdrawn": ([CertificationSuspended, CertificationWithdrawn], "SUSPENDED"),
        "expired while suspended": ([CertificationSuspended, CertificationExpired],
                                    "SUSPENDED"),
        "reinstated twice": ([CertificationSuspended, CertificationReinstated,
                              CertificationSuspended, CertificationReinstated], "PUBLISHED"),
    }
    deliveries: list[Event] = []
    expected: dict[str, str] = {}
    for final_cls, final_status in stories.values():
        producer_id = str(uuid.uuid4())
        grant = granted(producer_id)
        deliver(veta_config, listings, grant, "on_certification_granted")
        for lot in publish(veta_config, producer_id, 2):
            expected[lot] = final_status
        story = [grant] + [change(cls, grant, version)
                           for version, cls in enumerate(final_cls, start=2)]
        deliveries += story * 3
    random.Random(20261127).shuffle(deliveries)

    dispatch = event_dispatcher(veta_config)
    for event in deliveries:
        dispatch(event.source, event.type, event.envelope())

    wanted = {str(e.event_id) for e in deliveries}

    def all_applied() -> bool:
        with db.connect() as connection:
            applied = set(connection.execute(text(
                "SELECT event_id FROM applied_events WHERE event_id = ANY(:ids)"),
                {"ids": list(wanted)}).scalars())
        return applied == wanted

    eventually(all_applied, timeout=20)
    assert statuses(veta_config, list(expected)) == expected


def test_a_cancelled_or_declined_order_gives_its_gold_back_exactly_once(
        listings: Any, veta_config: dict[str, Any], db: Any) -> None:
    producer_id = str(uuid.uuid4())
    deliver(veta_config, listings, granted(producer_id), "on_certification_granted")
    [lot] = publish(veta_config, producer_id, 1)  # 915.000 g of fine gold

    first = OrderPlaced(order_id=str(uuid.uuid4()), buyer_id="b-1", listing_id=lot,
                        fine_weight="400.000")
    deliver(veta_config, listings, first, "on_order_placed")
    cancelled = OrderCancelled(order_id=first.order_id, buyer_id="b-1", listing_id=lot,
                               fine_weight="400.000", reason="changed plans")
    for _ in range(3):
        deliver(veta_config, listings, cancelled, "on_order_cancelled")
    again = OrderCancelled(order_id=first.order_id, buyer_id="b-1", listing_id=lot,
                           fine_weight="400.000", reason="a second cancellation")
    deliver(veta_config, listings, again, "on_order_cancelled")

    with rpc_as(veta_config, Role.ADMIN) as rpc:
        [after] = rpc.listings.get_listings([lot])
    assert (after["available_fine_weight"], after["status"]) == ("915.000", "PUBLISHED")
    with db.connect() as connection:
        [released] = connection.execute(text(
            "SELECT payload FROM outbox WHERE event_type = 'reservation_released' "
            "AND payload->>'order_id' = :o"), {"o": first.order_id}).scalars().all()
    assert released["fine_weight"] == "400.000"
    assert released["available_fine_weight"] == "915.000"

    whole = OrderPlaced(order_id=str(uuid.uuid4()), buyer_id="b-2", listing_id=lot,
                        fine_weight="915.000")
    deliver(veta_config, listings, whole, "on_order_placed")
    assert statuses(veta_config, [lot]) == {lot: "SOLD_OUT"}
    deliver(veta_config, listings, OrderDeclined(
        order_id=whole.order_id, buyer_id="b-2", listing_id=lot, fine_weight="915.000",
        reason="cannot ship this month"), "on_order_declined")
    assert statuses(veta_config, [lot]) == {lot: "PUBLISHED"}


def test_an_order_cancelled_before_its_placement_arrives_never_reserves(
        listings: Any, veta_config: dict[str, Any], db: Any) -> None:
    producer_id = str(uuid.uuid4())
    deliver(veta_config, listings, granted(producer_id), "on_certification_granted")
    [lot] = publish(veta_config, producer_id, 1)
    order_id = str(uuid.uuid4())
    deliver(veta_config, listings, OrderCancelled(
        order_id=order_id, buyer_id="b-1", listing_id=lot, fine_weight="100.000",
        reason="too slow"), "on_order_cancelled")
    deliver(veta_config, listings, OrderPlaced(
        order_id=order_id, buyer_id="b-1", listing_id=lot, fine_weight="100.000"),
        "on_order_placed")
    with rpc_as(veta_config, Role.ADMIN) as rpc:
        [after] = rpc.listings.get_listings([lot])
    assert after["available_fine_weight"] == "915.000"
    with db.connect() as connection:
        [rejected] = connection.execute(text(
            "SELECT payload FROM outbox WHERE event_type = 'reservation_rejected' "
            "AND payload->>'order_id' = :o"), {"o": order_id}).scalars().all()
    assert "cancelled" in rejected["reason"]


def test_a_producers_new_name_reaches_its_lots_for_free_text_search(
        listings: Any, veta_config: dict[str, Any]) -> None:
    from services.certification.events import ProducerRegistered, ProducerUpdated

    producer_id = str(uuid.uuid4())
    marker = uuid.uuid4().hex[:8]
    deliver(veta_config, listings, ProducerRegistered(
        producer_id=producer_id, name=f"Cooperativa Vieja {marker}", country="CO",
        region="Nariño", version=1), "on_producer_registered")
    deliver(veta_config, listings, granted(producer_id), "on_certification_granted")
    [lot] = publish(veta_config, producer_id, 1)
    newer = ProducerUpdated(producer_id=producer_id, name=f"Cooperativa Aurífera {marker}",
                            country="CO", region="Nariño", version=3)
    older = ProducerUpdated(producer_id=producer_id, name=f"Nombre Intermedio {marker}",
                            country="CO", region="Nariño", version=2)
    deliver(veta_config, listings, newer, "on_producer_updated")
    deliver(veta_config, listings, older, "on_producer_updated")  # late, and ignored

    with rpc_as(veta_config, Role.BUYER, "b-1") as rpc:
        def ids(words: str) -> list[str]:
            page = rpc.listings.search_listings({"text": words})
            return [item["node"]["id"] for item in page["items"]]

        assert ids(f"aurifera {marker}") == [lot]
        assert ids(f"AURÍFERA {marker} esperanza") == [lot]
        assert ids(f"intermedio {marker}") == []
        [seen] = rpc.listings.get_listings([lot])
    assert seen["producer_name"] == f"Cooperativa Aurífera {marker}"
