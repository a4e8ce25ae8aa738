"""No oversell: fifty buyers race for one lot through the gateway over HTTP, against PostgreSQL
and RabbitMQ; the lot never gives out more fine gold than it holds."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import eventlet
import pytest
import requests
from eventlet.event import Event

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from shared.values import format_grams
from tests.helpers import GraphQL, eventually, token
from tests.integration.test_orders_lifecycle import certified_producer, publish

BUYERS = 50

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { field code message } }
}"""

ORDERS = """
query ($filter: OrderFilter, $after: String) {
  orders(filter: $filter, first: 100, after: $after) {
    edges { node { id buyerId status fineWeight { grams } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

LISTING = """
query ($id: ID!) { listing(id: $id) { fineWeight { grams } availableFineWeight { grams } } }
"""


@pytest.fixture
def system(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, OrdersService,
                            GatewayService)
    runner.start()
    return runner


def test_fifty_buyers_racing_for_one_lot_never_get_more_than_it_holds(
        system: Any, veta_config: dict[str, Any]) -> None:
    producer, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)  # 1000.000 g at 915.0: 915.000 g fine
    client = GraphQL(veta_config)
    rng = random.Random(20270101)
    wanted = {f"racer-{n:02d}": format_grams(rng.randint(20_000, 60_000))
              for n in range(BUYERS)}
    assert sum(Decimal(g) for g in wanted.values()) > Decimal("915.000") * 2

    ready: list[str] = []
    start = Event()

    def buy(buyer: str) -> dict[str, Any]:
        session = requests.Session()  # each buyer its own connection
        headers = {"Authorization": f"Bearer {token(veta_config, Role.BUYER, buyer)}"}
        ready.append(buyer)
        start.wait()
        response = session.post(client.url, headers=headers, timeout=60, json={
            "query": PLACE, "variables": {"input": {
                "buyerId": buyer, "listingId": lot["id"], "fineWeight": wanted[buyer]}}})
        assert response.status_code == 200, response.text
        placed: dict[str, Any] = response.json()["data"]["placeOrder"]
        return placed

    pool = eventlet.GreenPool(BUYERS)
    racers = [pool.spawn(buy, buyer) for buyer in wanted]
    eventually(lambda: len(ready) == BUYERS)
    start.send()
    placed = [racer.wait() for racer in racers]
    assert all(p["errors"] == [] and p["order"]["status"] == "PENDING" for p in placed)

    def every_order() -> list[dict[str, Any]]:
        found, after = [], None
        while True:
            body = client.run(ORDERS, {"filter": {"listingId": lot["id"]}, "after": after},
                              role=Role.ADMIN)
            page = body["data"]["orders"]
            found += [edge["node"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    orders = eventually(lambda: (found := every_order()) and all(
        o["status"] != "PENDING" for o in found) and found, timeout=60)
    assert len(orders) == BUYERS
    assert {o["status"] for o in orders} == {"CONFIRMED", "REJECTED"}  # a real race
    for order in orders:
        assert order["fineWeight"]["grams"] == wanted[order["buyerId"]]
    confirmed = sum(Decimal(o["fineWeight"]["grams"]) for o in orders
                    if o["status"] == "CONFIRMED")
    listing = client.run(LISTING, {"id": lot["id"]}, role=Role.ADMIN)["data"]["listing"]
    fine = Decimal(listing["fineWeight"]["grams"])
    assert confirmed <= fine
    assert confirmed == fine - Decimal(listing["availableFineWeight"]["grams"])
    # Every rejected order asked for more than was left when its turn came.
    smallest_rejected = min(Decimal(o["fineWeight"]["grams"]) for o in orders
                            if o["status"] == "REJECTED")
    assert smallest_rejected > fine - confirmed
