"""Tokens and callers that must get nowhere: at the gateway, and at each service behind it.

A missing, expired, foreign, forged or tampered token is refused at the door; a real token
acting for another organisation is refused on real objects; and a call that skips the
gateway with a forged caller in the nameko context is refused by the service itself
(shared.caller). Nothing refused changes a row in any database.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from nameko.standalone.rpc import ClusterRpcProxy

from shared.caller import CALLER_CONTEXT_KEY, Role
from shared.errors import Conflict, Forbidden, NotFound
from tests.helpers import GraphQL, eventually, lot_input, rpc_as, token, validity
from tests.reliability.harness import Databases, free_port_pair
from veta.services import SERVICE_CLASSES

ME = "{ me { role organisation } }"
REGISTER = """mutation ($input: RegisterProducerInput!) {
  registerProducer(input: $input) { producer { id } errors { field code message } } }"""
REGISTRATION = {"input": {"name": "Cooperativa Intrusa", "country": "CO", "region": "Cauca"}}


@dataclass
class World:
    """Two certified producers with a lot each, and buyer X's confirmed order from each."""

    config: dict[str, Any]
    client: GraphQL
    databases: Databases
    producers: tuple[str, str]
    lots: tuple[str, str]
    orders: tuple[str, str]
    certificates: tuple[str, str]
    buyers: tuple[str, str] = ("buyer-x", "buyer-y")

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        return self.databases.fingerprint()


@pytest.fixture
def world(runner_factory: Any, veta_config: dict[str, Any],
          database_urls: dict[str, str]) -> Iterator[World]:
    # Payouts serves Stripe's webhooks on the port after the gateway's: both must be free.
    veta_config = {**veta_config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port_pair()}"}
    runner_factory(veta_config, *SERVICE_CLASSES.values()).start()
    producers, lots, orders, certificates = [], [], [], []
    for name in ("Cooperativa A", "Cooperativa B"):
        with rpc_as(veta_config, Role.CERTIFIER) as rpc:
            producer = rpc.certification.register_producer(
                {"name": name, "country": "CO", "region": "Antioquia"})["id"]
            granted = rpc.certification.grant_certification({
                "producer_id": producer, "standard": "FAIRMINED",
                "certificate_number": f"FM-{producer[:8]}", **validity()})
        with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
            def published(rpc: Any = rpc, producer: str = producer) -> str | None:
                try:
                    return str(rpc.listings.publish_listing(lot_input(producer))["id"])
                except Conflict:  # listings has not heard of the certificate yet
                    return None
            lot = eventually(published, timeout=20)
        with rpc_as(veta_config, Role.BUYER, "buyer-x") as rpc:
            order = rpc.orders.place_order({"buyer_id": "buyer-x", "listing_id": lot,
                                            "fine_weight": "100.000"})["id"]
            eventually(lambda rpc=rpc, order=order:
                       rpc.orders.get_orders([order])[0]["status"] == "CONFIRMED",
                       timeout=20)
        producers.append(producer)
        lots.append(lot)
        orders.append(order)
        certificates.append(granted["certifications"][0]["id"])
    databases = Databases.attach(database_urls)
    # Let the events of the set-up run their course before anything is compared.
    eventually(lambda: not sum(databases.unsent().values()), timeout=20)
    yield World(veta_config, GraphQL(veta_config), databases, (producers[0], producers[1]),
                (lots[0], lots[1]), (orders[0], orders[1]),
                (certificates[0], certificates[1]))


def signed(config: dict[str, Any], key: Any = None, algorithm: str = "HS256",
           headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    claims = {"sub": "mallory", "iss": "veta", "aud": "veta", "iat": int(time.time()),
              "exp": int(time.time()) + 600, "veta_role": "CERTIFIER", **overrides}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, config["JWT"]["secret"] if key is None else key,
                      algorithm=algorithm, headers=headers)


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def tampered(config: dict[str, Any]) -> str:
    """A genuine BUYER token whose claims were edited to ADMIN, signature kept."""
    header, _, signature = token(config, Role.BUYER, "buyer-x").split(".")
    claims = {"sub": "mallory", "iss": "veta", "aud": "veta", "exp": int(time.time()) + 600,
              "veta_role": "ADMIN"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{body}.{signature}"


def test_tokens_missing_expired_foreign_forged_or_tampered_are_refused(world: World) -> None:
    config = world.config
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": signed(config, exp=int(time.time()) - 30),
        "not valid yet": signed(config, nbf=int(time.time()) + 3600),
        "for another audience": signed(config, aud="someone-else"),
        "from another issuer": signed(config, iss="https://evil.example"),
        "signed with another secret": signed(config, key="another-secret-that-is-long-enough"),
        "signed with an RSA key of its own": signed(config, key=other_key, algorithm="RS256"),
        "HS512 with our secret": signed(config, algorithm="HS512"),
        "unsigned (alg none)": unsigned({"sub": "mallory", "iss": "veta", "aud": "veta",
                                         "exp": int(time.time()) + 600,
                                         "veta_role": "ADMIN"}),
        "without expiry": signed(config, exp=None),
        "without subject": signed(config, sub=None),
        "a BUYER's claims edited to ADMIN": tampered(config),
        "BUYER re-signed as ADMIN with a guessed key": signed(
            config, key="veta-secret-guess-0123456789abcdef", veta_role="ADMIN",
            veta_org="buyer-x"),
        "two roles in a list": signed(config, veta_role=["BUYER", "ADMIN"], veta_org="buyer-x"),
        "two roles in a string": signed(config, veta_role="BUYER,ADMIN", veta_org="buyer-x"),
        "a role in lower case": signed(config, veta_role="admin"),
        "an unknown role": signed(config, veta_role="SUPERUSER"),
        "not a JWT": "not-a-token",
    }
    before = world.fingerprint()
    wrong = {}
    for name, bearer in refused.items():
        for query, variables in ((ME, {}), (REGISTER, REGISTRATION)):
            response = world.client.post(query, variables, bearer)
            code = response.json()["errors"][0]["extensions"]["code"] \
                if response.status_code == 401 else None
            if (response.status_code, code) != (401, "UNAUTHENTICATED"):
                wrong[name] = (response.status_code, response.text[:200])
    for header in ("Basic bWFsbG9yeTpzZWNyZXQ=", "Bearer", f"Token {token(config, Role.ADMIN)}"):
        response = world.client.post(ME, {}, None) if not header else __import__(
            "requests").post(world.client.url, json={"query": ME},
                             headers={"Authorization": header}, timeout=10)
        if response.status_code != 401:
            wrong[header[:12]] = (response.status_code, response.text[:200])
    assert wrong == {}
    # No token at all: nothing is known of the caller, and nothing is allowed.
    body = world.client.post(REGISTER, REGISTRATION).json()
    assert body["data"]["registerProducer"]["errors"][0]["code"] == "UNAUTHENTICATED"
    assert world.client.post(ME).json()["errors"][0]["extensions"]["code"] == \
        "UNAUTHENTICATED"
    assert world.fingerprint() == before


def test_extra_role_claims_grant_nothing_beyond_the_one_role(world: World) -> None:
    """A BUYER token (correctly signed) that also claims other roles stays a BUYER."""
    bearer = signed(world.config, veta_role="BUYER", veta_org="buyer-x",
                    veta_roles=["ADMIN", "CERTIFIER"], roles=["ADMIN"], role="ADMIN",
                    scope="admin", groups=["veta-admins"])
    before = world.fingerprint()
    me = world.client.post(ME, {}, bearer).json()["data"]["me"]
    assert me == {"role": "BUYER", "organisation": "buyer-x"}
    body = world.client.post(REGISTER, REGISTRATION, bearer).json()
    assert body["data"]["registerProducer"]["errors"][0]["code"] == "FORBIDDEN"
    assert world.fingerprint() == before


def gateway_attempts(world: World) -> dict[str, tuple[Role, str, str, dict[str, Any]]]:
    """Producer A, and buyer Y, acting on producer B's and buyer X's real objects."""
    (a, b), (_, lot_b), (_, order_b) = world.producers, world.lots, world.orders
    order_step = "mutation ($input: %sInput!) { %s(input: $input) { errors { code } } }"
    listing_step = ("mutation ($input: %s!) { %s(input: $input) { listing { id } "
                    "errors { code } } }")
    return {
        "publishListing": (Role.PRODUCER, a, listing_step % ("PublishListingInput",
                                                             "publishListing"),
                           {"producerId": b, "standard": "FAIRMINED", "form": "DORE",
                            "grossWeight": "10.000", "fineness": "900.0",
                            "mineSite": {"name": "Mina", "region": "Antioquia",
                                         "country": "CO"},
                            "mercuryFree": True, "assayReference": "LAB-X"}),
        "updateListing": (Role.PRODUCER, a, listing_step % ("UpdateListingInput",
                                                            "updateListing"),
                          {"listingId": lot_b, "assayLab": "Lab of A"}),
        "withdrawListing": (Role.PRODUCER, a, listing_step % ("WithdrawListingInput",
                                                              "withdrawListing"),
                            {"listingId": lot_b}),
        "markOrderShipped": (Role.PRODUCER, a, order_step % ("MarkOrderShipped",
                                                             "markOrderShipped"),
                             {"orderId": order_b, "shipmentReference": "AWB-A"}),
        "declineOrder": (Role.PRODUCER, a, order_step % ("DeclineOrder", "declineOrder"),
                         {"orderId": order_b, "reason": "not mine to decline"}),
        "updateProducer": (Role.PRODUCER, a, """mutation ($input: UpdateProducerInput!) {
            updateProducer(input: $input) { errors { code } } }""",
                           {"producerId": b, "contact": {"email": "a@example.org"}}),
        "cancelOrder": (Role.BUYER, "buyer-y", order_step % ("CancelOrder", "cancelOrder"),
                        {"orderId": order_b}),
        "confirmDelivery": (Role.BUYER, "buyer-y", order_step % ("ConfirmDelivery",
                                                                 "confirmDelivery"),
                            {"orderId": order_b, "receivedGrossWeight": "100.000",
                             "receivedFineness": "900.0"}),
    }


def test_a_real_token_cannot_act_for_another_organisation(world: World) -> None:
    before = world.fingerprint()
    allowed = {}
    for mutation, (role, organisation, query, fields) in gateway_attempts(world).items():
        body = world.client.run(query, {"input": fields}, role=role, organisation=organisation)
        codes = [e["code"] for e in (body["data"][mutation] or {}).get("errors", [])]
        if not codes or not set(codes) <= {"FORBIDDEN", "NOT_FOUND"}:
            allowed[mutation] = body
    assert allowed == {}
    (_, b), (_, order_b) = world.producers, world.orders
    seen = world.client.run('query ($id: ID!) { order(id: $id) { id } }', {"id": order_b},
                            role=Role.PRODUCER, organisation=world.producers[0])
    assert seen["data"]["order"] is None
    assert seen["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    seen = world.client.run('query ($id: ID!) { order(id: $id) { id } }', {"id": order_b},
                            role=Role.BUYER, organisation="buyer-y")
    assert seen["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    premiums = world.client.run('query ($p: ID) { payouts(producerId: $p) { edges { '
                                'node { id } } } }', {"p": b}, role=Role.PRODUCER,
                                organisation=world.producers[0])
    assert premiums["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert world.fingerprint() == before


@contextmanager
def forged(config: dict[str, Any], caller: dict[str, Any] | None) -> Iterator[Any]:
    """The services' RPC with any caller at all in the context: no gateway, no token."""
    context = {} if caller is None else {CALLER_CONTEXT_KEY: caller}
    with ClusterRpcProxy(config, context_data=context, timeout=20) as rpc:
        yield rpc


def test_each_service_refuses_a_forged_caller_on_its_own(world: World) -> None:
    """Defence in depth: a call that skips the gateway gains nothing from its context."""
    (a, b), (_, lot_b), (_, order_b) = world.producers, world.lots, world.orders
    cert_b = world.certificates[1]
    producer_a = {"subject": "mallory", "role": "PRODUCER", "organisation": a}
    buyer_y = {"subject": "mallory", "role": "BUYER", "organisation": "buyer-y"}
    attempts: list[tuple[str, dict[str, Any] | None, Any]] = [
        ("a buyer publishes a lot", buyer_y,
         lambda rpc: rpc.listings.publish_listing(lot_input(b))),
        ("producer A publishes for B", producer_a,
         lambda rpc: rpc.listings.publish_listing(lot_input(b))),
        ("producer A withdraws B's lot", producer_a,
         lambda rpc: rpc.listings.withdraw_listing({"listing_id": lot_b})),
        ("producer A ships B's order", producer_a,
         lambda rpc: rpc.orders.mark_order_shipped({"order_id": order_b,
                                                    "shipment_reference": "AWB-1"})),
        ("producer A declines B's order", producer_a,
         lambda rpc: rpc.orders.decline_order({"order_id": order_b, "reason": "mine now"})),
        ("buyer Y cancels X's order", buyer_y,
         lambda rpc: rpc.orders.cancel_order({"order_id": order_b})),
        ("buyer Y places an order for X", buyer_y,
         lambda rpc: rpc.orders.place_order({"buyer_id": "buyer-x", "listing_id": lot_b,
                                             "fine_weight": "1.000"})),
        ("a producer grants itself a certificate", producer_a,
         lambda rpc: rpc.certification.grant_certification({
             "producer_id": a, "standard": "FAIRMINED_ECOLOGICAL",
             "certificate_number": "SELF-1", **validity()})),
        ("a producer suspends its rival's certificate", producer_a,
         lambda rpc: rpc.certification.suspend_certification({
             "certification_id": cert_b, "reason": "rival"})),
        ("a certifier settles an order", {"subject": "c", "role": "CERTIFIER"},
         lambda rpc: rpc.orders.settle_order({"order_id": order_b})),
        ("producer A reads B's premiums", producer_a,
         lambda rpc: rpc.payouts.list_obligations(b, 10)),
        ("an administrator approves a payout", {"subject": "root", "role": "ADMIN"},
         lambda rpc: rpc.payouts.approve_payout({"payout_id": str(uuid.uuid4())})),
        ("a buyer adds a premium rate", buyer_y,
         lambda rpc: rpc.payouts.add_premium_rate({
             "standard": "FAIRMINED", "usd_per_kg": "1", "effective_from": "2020-01-01"})),
        ("no caller registers a producer", None,
         lambda rpc: rpc.certification.register_producer(REGISTRATION["input"])),
        ("no caller places an order", None,
         lambda rpc: rpc.orders.place_order({"buyer_id": "buyer-x", "listing_id": lot_b,
                                             "fine_weight": "1.000"})),
        ("a buyer of no organisation places an order", {"subject": "m", "role": "BUYER"},
         lambda rpc: rpc.orders.place_order({"buyer_id": "buyer-x", "listing_id": lot_b,
                                             "fine_weight": "1.000"})),
    ]
    before = world.fingerprint()
    let_through, answers = {}, {}
    for name, caller, call in attempts:
        with forged(world.config, caller) as rpc:
            try:
                let_through[name] = call(rpc)
            except (Forbidden, NotFound) as refusal:
                answers[name] = type(refusal).__name__
    assert let_through == {}
    assert world.fingerprint() == before
    assert answers["no caller registers a producer"] == "Forbidden"


def test_a_malformed_caller_in_the_context_is_refused_not_left_unanswered(
        world: World) -> None:
    """A context no gateway would send: refused at once as FORBIDDEN, not left to time out."""
    malformed = {"an unknown role": {"subject": "m", "role": "SUPERUSER"},
                 "no subject": {"role": "ADMIN"}, "a string": "ADMIN", "a list": ["ADMIN"]}
    before = world.fingerprint()
    answers = {}
    for name, caller in malformed.items():
        with ClusterRpcProxy(world.config, context_data={CALLER_CONTEXT_KEY: caller},
                             timeout=3) as rpc:
            try:
                rpc.certification.register_producer(REGISTRATION["input"])
                answers[name] = "let through"
            except Exception as answer:
                answers[name] = type(answer).__name__
    assert answers == dict.fromkeys(malformed, "Forbidden")
    assert world.fingerprint() == before
