"""The order saga across all four services over the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from sqlalchemy import create_engine, text

from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from shared.caller import Role
from shared.errors import Conflict, InvalidInput
from tests.helpers import lot_input, rpc_as, validity


@pytest.fixture
def system(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, OrdersService,
                            PayoutsService)
    runner.start()
    return runner


def certified_producer(system: Any, config: dict[str, Any], standard: str) -> str:
    with rpc_as(config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": "Cooperativa Río Verde", "country": "CO", "region": "Antioquia"})
        listings = get_container(system, ListingsService)
        with entrypoint_waiter(listings, "on_certification_granted"):
            rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": standard,
                "certificate_number": f"FM-{producer['id'][:8]}", **validity()})
    return str(producer["id"])


def place(system: Any, config: dict[str, Any], buyer: str, listing_id: str,
          fine_weight: str, answer: str = "on_listing_reserved") -> dict[str, Any]:
    """Place an order and wait until orders has handled listings' `answer` to it."""
    orders = get_container(system, OrdersService)
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        with entrypoint_waiter(orders, answer):
            order = rpc.orders.place_order(
                {"buyer_id": buyer, "listing_id": listing_id, "fine_weight": fine_weight})
        return dict(rpc.orders.get_orders([order["id"]])[0])


def test_listing_is_refused_until_listings_hears_of_the_certificate(
        system: Any, veta_config: dict[str, Any]) -> None:
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": "Cooperativa Sin Sello", "country": "PE", "region": "Puno"})
    with rpc_as(veta_config, Role.PRODUCER, producer["id"]) as rpc, \
            pytest.raises(Conflict) as refused:
        rpc.listings.publish_listing(lot_input(producer["id"]))
    assert refused.value.field == "standard"


def test_an_order_is_confirmed_delivered_and_earns_its_premium(
        system: Any, veta_config: dict[str, Any]) -> None:
    producer = certified_producer(system, veta_config, "FAIRMINED")
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        lot = rpc.listings.publish_listing(lot_input(producer))
    assert lot["fine_weight"] == "915.000"

    order = place(system, veta_config, "refinery-1", lot["id"], "500.000")
    assert order["status"] == "CONFIRMED"
    assert order["producer_id"] == producer and order["standard"] == "FAIRMINED"
    with rpc_as(veta_config, Role.BUYER, "refinery-1") as rpc:
        assert rpc.listings.get_listings([lot["id"]])[0]["available_fine_weight"] == "415.000"

    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        shipped = rpc.orders.mark_order_shipped(
            {"order_id": order["id"], "shipment_reference": "AWB-123"})
    assert shipped["status"] == "SHIPPED"

    payouts = get_container(system, PayoutsService)
    with rpc_as(veta_config, Role.BUYER, "refinery-1") as rpc, \
            entrypoint_waiter(payouts, "on_order_delivered"):
        delivered = rpc.orders.confirm_delivery({
            "order_id": order["id"], "received_gross_weight": "546.000",
            "received_fineness": "914.0"})
    # 546.000 g at 914.0 per mille is 499.044 g of fine gold, 0.956 g short of the order.
    assert delivered["delivered_fine_weight"] == "499.044"
    assert delivered["delivery_difference"] == "-0.956"

    with rpc_as(veta_config, Role.FINANCE) as rpc:
        page = rpc.payouts.list_obligations(producer_id=producer)
    [obligation] = [item["node"] for item in page["items"]]
    # 499.044 g x USD 4,000 per kg = USD 1,996.176, half-even to the cent.
    assert obligation["amount"] == "1996.18"
    assert obligation["currency"] == "USD"
    assert obligation["order_id"] == order["id"]
    assert obligation["status"] == "CALCULATED"


def test_an_order_for_more_than_is_available_is_rejected(
        system: Any, veta_config: dict[str, Any]) -> None:
    producer = certified_producer(system, veta_config, "FAIRMINED_ECOLOGICAL")
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        lot = rpc.listings.publish_listing(lot_input(producer, "FAIRMINED_ECOLOGICAL"))
    order = place(system, veta_config, "jeweller-7", lot["id"], "915.001",
                  answer="on_reservation_rejected")
    assert order["status"] == "REJECTED"
    assert order["reason"] == "not enough fine gold available"
    assert [step["to"] for step in order["history"]] == ["PENDING", "REJECTED"]


def test_bad_input_names_the_field_and_writes_nothing(
        system: Any, veta_config: dict[str, Any], database_urls: dict[str, str]) -> None:
    engine = create_engine(database_urls["listings"])
    with engine.connect() as connection:
        before = connection.execute(text("SELECT count(*) FROM lots")).scalar_one()
    producer = certified_producer(system, veta_config, "FAIRMINED")
    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc, \
            pytest.raises(InvalidInput) as refused:
        rpc.listings.publish_listing(lot_input(producer, fineness="1000.0",
                                               gross="12.3456"))
    fields = {problem["field"] for problem in refused.value.problems}
    assert fields == {"gross_weight", "fineness"}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM lots")).scalar_one() == before
    engine.dispose()
