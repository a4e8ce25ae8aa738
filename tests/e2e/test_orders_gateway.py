"""Orders through the GraphQL gateway over HTTP: every mutation, the orders query with filters
and pages, and who may see and do what."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from tests.helpers import GraphQL
from tests.integration.test_orders_lifecycle import certified_producer, publish

ORDER_FIELDS = """
  id status reason cancelledBy buyerId producerId standard
  fineWeight { grams } priceBasis { percentOfLbma fixing }
  shipmentReference carrier exportPermit deliveredOn
  deliveredFineWeight { grams } deliveryDifference { grams }
  listing { id } history { fromStatus toStatus actor reason }
"""

PLACE = f"""
mutation ($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{ order {{ {ORDER_FIELDS} }} errors {{ field code message }} }}
}}"""

MUTATIONS = {name: f"""
mutation ($input: {name[0].upper() + name[1:]}Input!) {{
  {name}(input: $input) {{ order {{ {ORDER_FIELDS} }} errors {{ field code message }} }}
}}""" for name in ("cancelOrder", "declineOrder", "markOrderShipped", "confirmDelivery")}

ORDER = f"query ($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"

ORDERS = """
query ($filter: OrderFilter, $first: Int, $after: String) {
  orders(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id status buyerId } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture
def system(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, OrdersService,
                            GatewayService)
    runner.start()
    return runner


@pytest.fixture
def client(veta_config: dict[str, Any]) -> GraphQL:
    return GraphQL(veta_config)


def new_buyer() -> str:
    return f"refinery-{uuid.uuid4().hex[:8]}"


def place(system: Any, client: GraphQL, buyer: str, lot_id: str, grams: str,
          answer: str = "on_listing_reserved", **extra: Any) -> dict[str, Any]:
    with entrypoint_waiter(get_container(system, OrdersService), answer):
        body = client.run(PLACE, {"input": {"buyerId": buyer, "listingId": lot_id,
                                             "fineWeight": grams, **extra}},
                          role=Role.BUYER, organisation=buyer)
    assert body["data"]["placeOrder"]["errors"] == [], body
    order: dict[str, Any] = body["data"]["placeOrder"]["order"]
    return order


def act(client: GraphQL, mutation: str, role: Role, org: str | None,
        **input: Any) -> dict[str, Any]:
    body = client.run(MUTATIONS[mutation], {"input": input}, role=role, organisation=org)
    payload: dict[str, Any] = body["data"][mutation]
    return payload


def order(client: GraphQL, order_id: str, role: Role, org: str | None) -> dict[str, Any]:
    return client.run(ORDER, {"id": order_id}, role=role, organisation=org)


def test_an_order_goes_from_placement_to_delivery_with_its_price_and_shipment(
        system: Any, veta_config: dict[str, Any], client: GraphQL) -> None:
    producer, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)
    buyer = new_buyer()
    placed = place(system, client, buyer, lot["id"], "400.000",
                   priceBasis={"percentOfLbma": "98.50", "fixing": "AM"})
    assert placed["priceBasis"] == {"percentOfLbma": "98.50", "fixing": "AM"}
    shipped = act(client, "markOrderShipped", Role.PRODUCER, producer, orderId=placed["id"],
                  shipmentReference="AWB-77", carrier="Brink's",
                  exportPermit="ANM-EXP-2027-0042")
    assert shipped["errors"] == []
    assert (shipped["order"]["carrier"], shipped["order"]["exportPermit"]) == (
        "Brink's", "ANM-EXP-2027-0042")
    delivered = act(client, "confirmDelivery", Role.BUYER, buyer, orderId=placed["id"],
                    receivedGrossWeight="437.000", receivedFineness="914.6")
    assert delivered["errors"] == []
    got = delivered["order"]
    # 437.000 g at 914.6 per mille = 399.680 g, 0.320 g short of the 400 g ordered.
    assert (got["status"], got["deliveredFineWeight"], got["deliveryDifference"]) == (
        "DELIVERED", {"grams": "399.680"}, {"grams": "-0.320"})
    assert got["deliveredOn"] is not None
    assert [(s["fromStatus"], s["toStatus"]) for s in got["history"]] == [
        (None, "PENDING"), ("PENDING", "CONFIRMED"), ("CONFIRMED", "SHIPPED"),
        ("SHIPPED", "DELIVERED")]


def test_a_buyer_cancels_and_a_producer_declines_through_the_gateway(
        system: Any, veta_config: dict[str, Any], client: GraphQL) -> None:
    producer, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)
    buyer = new_buyer()
    first = place(system, client, buyer, lot["id"], "100.000")
    second = place(system, client, buyer, lot["id"], "100.000")

    refused = act(client, "declineOrder", Role.BUYER, buyer, orderId=first["id"],
                  reason="buyers cancel instead")
    assert refused == {"order": None, "errors": [
        {"field": None, "code": "FORBIDDEN", "message": "a BUYER may not do this"}]}

    cancelled = act(client, "cancelOrder", Role.BUYER, buyer, orderId=first["id"],
                    reason="budget cut")
    assert cancelled["errors"] == []
    assert (cancelled["order"]["status"], cancelled["order"]["cancelledBy"],
            cancelled["order"]["reason"]) == ("CANCELLED", "BUYER", "budget cut")

    empty = act(client, "declineOrder", Role.PRODUCER, producer, orderId=second["id"],
                reason="")
    assert empty["errors"][0]["field"] == "reason"
    declined = act(client, "declineOrder", Role.PRODUCER, producer, orderId=second["id"],
                   reason="assay disagreement")
    assert (declined["order"]["status"], declined["order"]["cancelledBy"]) == (
        "CANCELLED", "PRODUCER")
    last = declined["order"]["history"][-1]
    assert (last["fromStatus"], last["toStatus"], last["reason"]) == (
        "CONFIRMED", "CANCELLED", "assay disagreement")

    again = act(client, "cancelOrder", Role.BUYER, buyer, orderId=second["id"])
    assert again["errors"] == [{"field": "status", "code": "CONFLICT",
                                "message": "an order that is CANCELLED cannot be cancelled"}]


def test_orders_are_seen_by_their_buyer_and_the_producer_of_the_lot_only(
        system: Any, veta_config: dict[str, Any], client: GraphQL) -> None:
    producer, _ = certified_producer(system, veta_config)
    stranger, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)
    buyer, other = new_buyer(), new_buyer()
    mine = place(system, client, buyer, lot["id"], "10.000")
    theirs = place(system, client, other, lot["id"], "10.000")

    body = order(client, theirs["id"], Role.BUYER, buyer)
    assert body["data"]["order"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert order(client, mine["id"], Role.BUYER, buyer)["data"]["order"]["id"] == mine["id"]

    def ids(role: Role, org: str | None) -> set[str]:
        body = client.run(ORDERS, {"filter": {"listingId": lot["id"]}}, role=role,
                          organisation=org)
        return {edge["node"]["id"] for edge in body["data"]["orders"]["edges"]}

    assert ids(Role.BUYER, buyer) == {mine["id"]}
    assert ids(Role.PRODUCER, producer) == {mine["id"], theirs["id"]}
    assert ids(Role.PRODUCER, stranger) == set()
    body = client.run(ORDERS, {}, role=Role.CERTIFIER)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    shipped = act(client, "markOrderShipped", Role.PRODUCER, stranger, orderId=mine["id"],
                  shipmentReference="AWB-1")
    assert shipped["errors"][0]["code"] == "NOT_FOUND"


def test_orders_are_filtered_by_status_lot_and_day_and_paged_newest_first(
        system: Any, veta_config: dict[str, Any], client: GraphQL) -> None:
    producer, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)
    other_lot = publish(system, veta_config, producer)
    buyer = new_buyer()
    placed = [place(system, client, buyer, lot["id"], "10.000") for _ in range(3)]
    elsewhere = place(system, client, buyer, other_lot["id"], "10.000")
    rejected = place(system, client, buyer, lot["id"], "5000.000",
                     answer="on_reservation_rejected")

    def page(filter: dict[str, Any], first: int = 20,
             after: str | None = None) -> dict[str, Any]:
        body = client.run(ORDERS, {"filter": filter, "first": first, "after": after},
                          role=Role.BUYER, organisation=buyer)
        connection: dict[str, Any] = body["data"]["orders"]
        return connection

    first = page({"listingId": lot["id"], "status": ["CONFIRMED"]}, first=2)
    rest = page({"listingId": lot["id"], "status": ["CONFIRMED"]}, first=2,
                after=first["pageInfo"]["endCursor"])
    assert first["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]
    assert [e["node"]["id"] for e in first["edges"] + rest["edges"]] == [
        o["id"] for o in reversed(placed)]
    assert [e["node"]["id"] for e in page({"status": ["REJECTED"]})["edges"]] == [
        rejected["id"]]
    assert [e["node"]["id"] for e in page({"listingId": other_lot["id"]})["edges"]] == [
        elsewhere["id"]]
    assert page({"placedTo": "2001-01-01"})["edges"] == []
    assert len(page({"placedFrom": "2001-01-01"})["edges"]) == 5

    body = client.run(ORDERS, {"first": 101}, role=Role.BUYER, organisation=buyer)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}
