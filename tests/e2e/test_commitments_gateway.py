"""Sourcing commitments through the GraphQL gateway over HTTP: create, follow progress, find
the lots that would fill the remainder, amend, cancel, who sees them, and the idempotency key
that makes a request sent again (by the client, or by the broker) one commitment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from kombu import Connection, Producer, Queue
from nameko.rpc import get_rpc_exchange

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from tests.helpers import GraphQL, eventually, rpc_as
from tests.integration.test_orders_lifecycle import certified_producer, place, publish, tap

COMMITMENT_FIELDS = """
  id buyerId status reason fineWeight { grams } standards countries producerIds
  producers { id } priceCeiling periodStart periodEnd
  progress { committed { grams } ordered { grams } delivered { grams } remaining { grams }
             expected { grams } percentage elapsedShare pace }
  drawdowns { orderId order { id status } fineWeight { grams } deliveredOn }
"""

MUTATIONS = {name: f"""
mutation ($input: {name[0].upper() + name[1:]}Input!) {{
  {name}(input: $input) {{
    commitment {{ {COMMITMENT_FIELDS} }} errors {{ field code message }}
  }}
}}""" for name in ("createCommitment", "amendCommitment", "cancelCommitment")}

COMMITMENT = f"query ($id: ID!) {{ commitment(id: $id) {{ {COMMITMENT_FIELDS} }} }}"

FILL = """
query ($id: ID!, $first: Int) {
  commitment(id: $id) {
    lotsToFillRemainder(first: $first) {
      listing { id availableFineWeight { grams } mineSite { country } producer { id } }
      suggestedFineWeight { grams } fillsRemainder
    }
  }
}"""

COMMITMENTS = """
query ($filter: CommitmentFilter, $first: Int, $after: String) {
  commitments(filter: $filter, first: $first, after: $after) {
    edges { node { id status } } pageInfo { hasNextPage endCursor }
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


@pytest.fixture
def buyer() -> str:
    return f"jeweller-{uuid.uuid4().hex[:8]}"


def days(start: int, end: int) -> dict[str, str]:
    today = date.today()
    return {"periodStart": (today + timedelta(days=start)).isoformat(),
            "periodEnd": (today + timedelta(days=end)).isoformat()}


def mutate(client: GraphQL, name: str, buyer: str, **input: Any) -> dict[str, Any]:
    body = client.run(MUTATIONS[name], {"input": input}, role=Role.BUYER, organisation=buyer)
    payload: dict[str, Any] = body["data"][name]
    return payload


def create(client: GraphQL, buyer: str, **terms: Any) -> dict[str, Any]:
    payload = mutate(client, "createCommitment", buyer, buyerId=buyer,
                     **{"fineWeight": "500.000", "standards": ["FAIRMINED"], **days(-30, 60),
                        **terms})
    assert payload["errors"] == [], payload
    commitment: dict[str, Any] = payload["commitment"]
    return commitment


def test_a_buyer_commits_receives_gold_and_follows_its_progress(
        system: Any, veta_config: dict[str, Any], client: GraphQL, buyer: str) -> None:
    producer, _ = certified_producer(system, veta_config)
    lot = publish(system, veta_config, producer)
    created = create(client, buyer, countries=["CO"], producerIds=[producer],
                     priceCeiling="99.00")
    assert (created["status"], created["countries"], created["producers"],
            created["priceCeiling"]) == ("ACTIVE", ["CO"], [{"id": producer}], "99.00")
    # 30 of the period's 91 days are over: 164.835 g of 500 g expected by now.
    assert created["progress"] == {
        "committed": {"grams": "500.000"}, "ordered": {"grams": "0.000"},
        "delivered": {"grams": "0.000"}, "remaining": {"grams": "500.000"},
        "expected": {"grams": "164.835"}, "percentage": "0.00", "elapsedShare": "0.3297",
        "pace": "BEHIND"}

    order = place(system, veta_config, buyer, lot["id"], "200.000",
                  price_basis={"percent_of_lbma": "98.00"})
    with_order = client.run(COMMITMENT, {"id": created["id"]}, role=Role.BUYER,
                            organisation=buyer)["data"]["commitment"]
    assert with_order["progress"]["ordered"] == {"grams": "200.000"}

    with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "A"})
    with rpc_as(veta_config, Role.BUYER, buyer) as rpc:
        rpc.orders.confirm_delivery({"order_id": order["id"],
                                     "received_gross_weight": "218.579",
                                     "received_fineness": "915.0"})  # 200.000 g
    after = client.run(COMMITMENT, {"id": created["id"]}, role=Role.BUYER,
                       organisation=buyer)["data"]["commitment"]
    assert (after["progress"]["delivered"], after["progress"]["remaining"],
            after["progress"]["percentage"], after["progress"]["pace"]) == (
        {"grams": "200.000"}, {"grams": "300.000"}, "40.00", "ON_TRACK")
    [drawdown] = after["drawdowns"]
    assert (drawdown["order"], drawdown["fineWeight"]) == (
        {"id": order["id"], "status": "DELIVERED"}, {"grams": "200.000"})


def test_the_lots_that_would_fill_the_remainder_come_best_first(
        system: Any, veta_config: dict[str, Any], client: GraphQL, buyer: str) -> None:
    producer, _ = certified_producer(system, veta_config)
    big = publish(system, veta_config, producer, gross="1000.000")  # 915.000 g fine
    just_enough = publish(system, veta_config, producer, gross="600.000")  # 549.000 g
    small = publish(system, veta_config, producer, gross="200.000")  # 183.000 g
    smaller = publish(system, veta_config, producer, gross="100.000")  # 91.500 g
    peruvian = publish(system, veta_config, producer, gross="800.000", mine_site={
        "name": "Socavón Santa Rosa", "region": "Puno", "country": "PE"})  # 732.000 g
    created = create(client, buyer, countries=["CO"], producerIds=[producer])
    body = client.run(FILL, {"id": created["id"], "first": 10}, role=Role.BUYER,
                      organisation=buyer)
    suggestions = body["data"]["commitment"]["lotsToFillRemainder"]
    assert [(s["listing"]["id"], s["suggestedFineWeight"]["grams"], s["fillsRemainder"])
            for s in suggestions] == [
        (just_enough["id"], "500.000", True), (big["id"], "500.000", True),
        (small["id"], "183.000", False), (smaller["id"], "91.500", False)]
    assert peruvian["id"] not in {s["listing"]["id"] for s in suggestions}
    assert {s["listing"]["producer"]["id"] for s in suggestions} == {producer}
    assert body["extensions"]["rpcCalls"] <= 3  # the commitment, one search, its producers

    both = mutate(client, "amendCommitment", buyer, commitmentId=created["id"],
                  countries=["CO", "PE"])["commitment"]
    body = client.run(FILL, {"id": both["id"], "first": 3}, role=Role.BUYER,
                      organisation=buyer)
    # 49 g, 232 g and 415 g would be left over: the closest fit first.
    assert [s["listing"]["id"] for s in body["data"]["commitment"]["lotsToFillRemainder"]] \
        == [just_enough["id"], peruvian["id"], big["id"]]


def test_a_commitment_is_amended_and_cancelled_with_typed_errors(
        client: GraphQL, system: Any, buyer: str) -> None:
    created = create(client, buyer)
    wrong = mutate(client, "amendCommitment", buyer, commitmentId=created["id"],
                   fineWeight="0", priceCeiling="abc")
    assert {(e["field"], e["code"]) for e in wrong["errors"]} == {
        ("fineWeight", "BAD_USER_INPUT"), ("priceCeiling", "BAD_USER_INPUT")}
    amended = mutate(client, "amendCommitment", buyer, commitmentId=created["id"],
                     fineWeight="750.000", standards=["FAIRMINED", "CRAFT"])
    assert amended["errors"] == []
    assert (amended["commitment"]["fineWeight"], amended["commitment"]["standards"]) == (
        {"grams": "750.000"}, ["CRAFT", "FAIRMINED"])
    other = mutate(client, "cancelCommitment", "refinery-else", commitmentId=created["id"])
    assert other["errors"][0]["code"] == "NOT_FOUND"
    cancelled = mutate(client, "cancelCommitment", buyer, commitmentId=created["id"],
                       reason="merged with another programme")
    assert (cancelled["commitment"]["status"], cancelled["commitment"]["reason"]) == (
        "CANCELLED", "merged with another programme")
    body = client.run(FILL, {"id": created["id"]}, role=Role.BUYER, organisation=buyer)
    assert body["data"]["commitment"]["lotsToFillRemainder"] == []


def test_commitments_are_listed_for_their_buyer_and_named_producers_only(
        system: Any, veta_config: dict[str, Any], client: GraphQL, buyer: str) -> None:
    producer, _ = certified_producer(system, veta_config)
    named = create(client, buyer, producerIds=[producer])
    later = create(client, buyer, **days(400, 500))
    mutate(client, "cancelCommitment", buyer, commitmentId=later["id"])

    def ids(role: Role, org: str | None, **variables: Any) -> list[str]:
        body = client.run(COMMITMENTS, variables, role=role, organisation=org)
        return [e["node"]["id"] for e in body["data"]["commitments"]["edges"]]

    assert ids(Role.BUYER, buyer) == [later["id"], named["id"]]
    assert ids(Role.BUYER, buyer, filter={"status": ["ACTIVE"]}) == [named["id"]]
    assert ids(Role.BUYER, buyer, filter={"activeFrom": days(300, 300)["periodStart"]}) == [
        later["id"]]
    assert ids(Role.BUYER, buyer, first=1, after=None) == [later["id"]]
    assert ids(Role.PRODUCER, producer) == [named["id"]]
    assert ids(Role.BUYER, "refinery-else") == []
    body = client.run(COMMITMENT, {"id": named["id"]}, role=Role.BUYER,
                      organisation="refinery-else")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    refused = mutate(client, "createCommitment", buyer, buyerId="someone-else",
                     fineWeight="1.000", standards=["CRAFT"], **days(0, 10))
    assert refused["errors"][0]["code"] == "FORBIDDEN"
    body = client.run(COMMITMENTS, {}, role=Role.CERTIFIER)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- the idempotency key ----------------------------------------------------------------------


def refusal(client: GraphQL, buyer: str, **input: Any) -> list[tuple[str, str]]:
    payload = mutate(client, "createCommitment", buyer, **{
        "buyerId": buyer, "fineWeight": "500.000", "standards": ["FAIRMINED"],
        **days(-30, 60), **input})
    return [(e["field"], e["code"]) for e in payload["errors"]]


def test_a_commitment_sent_again_with_its_key_is_one_and_the_key_is_checked(
        client: GraphQL, system: Any, buyer: str) -> None:
    first = create(client, buyer, idempotencyKey="programme-2027")
    again = create(client, buyer, idempotencyKey="programme-2027")
    assert again["id"] == first["id"]
    assert refusal(client, buyer, idempotencyKey="programme-2027", fineWeight="501.000") == [
        ("idempotencyKey", "CONFLICT")]
    # Checked as placeOrder's key is: 1 to 64 characters, none of them control characters.
    for wrong in ("", "   ", "k" * 65, "line\nbreak", "nul\x00"):
        assert refusal(client, buyer, idempotencyKey=wrong) == [
            ("idempotencyKey", "BAD_USER_INPUT")], wrong
    longest = create(client, buyer, idempotencyKey="k" * 64)
    body = client.run(COMMITMENTS, {}, role=Role.BUYER, organisation=buyer)
    assert {e["node"]["id"] for e in body["data"]["commitments"]["edges"]} == {
        first["id"], longest["id"]}


class RpcCalls:
    """The calls to one service method, copied off the broker as the service receives them,
    to deliver one again as RabbitMQ does when the service died before acknowledging it."""

    def __init__(self, config: dict[str, Any], routing_key: str) -> None:
        self.connection = Connection(config["AMQP_URI"])
        self.exchange = get_rpc_exchange(config)
        channel = self.connection.default_channel
        self.exchange(channel).declare()
        tag = uuid.uuid4().hex
        self.calls = Queue(f"test-calls-{tag}", exchange=self.exchange,
                           routing_key=routing_key, auto_delete=True)(channel)
        self.reply_to = f"test-replies-{tag}"
        self.replies = Queue(self.reply_to, exchange=self.exchange,
                             routing_key=self.reply_to, auto_delete=True)(channel)
        self.calls.declare()
        self.replies.declare()

    def taken(self) -> Any:
        return eventually(lambda: self.calls.get(no_ack=True))

    def deliver_again(self, call: Any) -> dict[str, Any]:
        """The call as it was sent (body, caller headers), answered to a queue of ours."""
        Producer(self.connection.default_channel).publish(
            call.body, exchange=self.exchange, routing_key=call.delivery_info["routing_key"],
            headers=call.headers, content_type=call.content_type,
            content_encoding=call.content_encoding, reply_to=self.reply_to,
            correlation_id=call.properties["correlation_id"])
        reply: dict[str, Any] = eventually(lambda: self.replies.get(no_ack=True)).payload
        self.taken()  # our own copy of the delivery, which is no call of the client's
        return reply

    def close(self) -> None:
        self.calls.delete()
        self.replies.delete()
        self.connection.release()


@contextmanager
def rpc_calls(config: dict[str, Any], routing_key: str) -> Iterator[RpcCalls]:
    calls = RpcCalls(config, routing_key)
    try:
        yield calls
    finally:
        calls.close()


def test_the_gateway_names_each_call_so_a_redelivered_one_makes_no_second_commitment(
        client: GraphQL, system: Any, veta_config: dict[str, Any], buyer: str) -> None:
    with rpc_calls(veta_config, "orders.create_commitment") as calls, \
            tap(veta_config, "orders", "commitment_created", "commitment_cancelled") as events:
        made = create(client, buyer)  # the client sends no key
        call = calls.taken()
        [sent] = call.payload["args"]
        assert sent["idempotency_key"]  # made up by the gateway for this call
        # orders committed, then (say) died before acknowledging: RabbitMQ delivers it again.
        redelivered = calls.deliver_again(call)
        assert (redelivered["error"], redelivered["result"]["id"]) == (None, made["id"])
        # Another call without a key is another request, with a key of its own.
        other = create(client, buyer)
        assert calls.taken().payload["args"][0]["idempotency_key"] != sent["idempotency_key"]
        body = client.run(COMMITMENTS, {}, role=Role.BUYER, organisation=buyer)
        mutate(client, "cancelCommitment", buyer, commitmentId=made["id"])
        eventually(lambda: events.of("commitment_cancelled", commitment_id=made["id"]))
        # The relay publishes in outbox order: a second commitment_created would be here.
        created = events.of("commitment_created", commitment_id=made["id"])
    assert other["id"] != made["id"]
    assert [e["node"]["id"] for e in body["data"]["commitments"]["edges"]] == [
        other["id"], made["id"]]
    assert len(created) == 1
