"""The gateway's own promises: limits refuse cheaply, pages batch their RPC, tokens are checked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from shared.caller import Role
from tests.helpers import GraphQL, lot_input, rpc_as, validity


@pytest.fixture
def system(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, GatewayService)
    runner.start()
    return runner


def test_a_page_of_lots_costs_two_rpc_calls_whatever_its_size(
        system: Any, veta_config: dict[str, Any]) -> None:
    listings = get_container(system, ListingsService)
    producers = []
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        for n in range(3):
            producer = rpc.certification.register_producer(
                {"name": f"Cooperativa Lote {n}", "country": "PE", "region": "Puno"})
            with entrypoint_waiter(listings, "on_certification_granted"):
                rpc.certification.grant_certification({
                    "producer_id": producer["id"], "standard": "CRAFT",
                    "certificate_number": f"CRAFT-{producer['id'][:8]}", **validity()})
            producers.append(producer["id"])
    for n in range(6):
        producer = producers[n % 3]
        with rpc_as(veta_config, Role.PRODUCER, producer) as rpc:
            rpc.listings.publish_listing(lot_input(producer, "CRAFT", gross=f"{100 + n}.000"))

    query = """query ($n: Int) { listings(first: $n, filter: {standard: [CRAFT], country: "CO"}) {
      edges { node { id certificationStatus producer { name certifications { standard } } } } } }"""
    client = GraphQL(veta_config)
    small = client.run(query, {"n": 2}, role=Role.BUYER, organisation="refinery-b")
    large = client.run(query, {"n": 50}, role=Role.BUYER, organisation="refinery-b")
    assert len(small["data"]["listings"]["edges"]) == 2
    assert len(large["data"]["listings"]["edges"]) >= 6
    # One search, one batch of producers, whether the page holds 2 lots or 50.
    assert small["extensions"]["rpcCalls"] == 2
    assert large["extensions"]["rpcCalls"] == 2


def test_queries_beyond_the_limits_are_refused_before_anything_runs(
        system: Any, veta_config: dict[str, Any]) -> None:
    client = GraphQL(veta_config)
    # Three pages of 100 orders, each with its history, lot, producer and certificates:
    # 3 x (1 + 100 x 18) = 5,403, over the limit of 5,000.
    page = """orders(first: 100) { edges { node { id history { toStatus actor at }
        listing { id producer { name certifications {
          id standard status validFrom validUntil certificateNumber } } } } } }"""
    expensive = "{ a: " + page + " b: " + page + " c: " + page + " }"
    body = client.run(expensive, role=Role.ADMIN)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cost 5403, above the limit of 5000" in body["errors"][0]["message"]
    assert body["extensions"]["rpcCalls"] == 0

    cheap = expensive.replace("first: 100", "first: 5")
    body = client.run(cheap, role=Role.ADMIN)
    # Not refused for its cost: it runs, and finds the orders service is not in this system.
    assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"

    response = client.post("{ me { role } }" + " " * (70 * 1024))
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_introspection_can_be_turned_off(runner_factory: Any,
                                         veta_config: dict[str, Any]) -> None:
    config = {**veta_config, "GRAPHQL": {"introspection": False}}
    runner_factory(config, GatewayService).start()
    body = GraphQL(config).run("{ __schema { queryType { name } } }", role=Role.ADMIN)
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()


class _Jwks(BaseHTTPRequestHandler):
    document: bytes = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def identity_provider() -> Iterator[tuple[str, Any]]:
    """A local OpenID Connect issuer's JWKS endpoint, with one RSA signing key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    _Jwks.document = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig",
                                           "alg": "RS256"}]}).encode()
    server = HTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", key
    server.shutdown()


def test_production_tokens_are_verified_against_the_issuers_keys(
        runner_factory: Any, veta_config: dict[str, Any],
        identity_provider: tuple[str, Any]) -> None:
    jwks_url, key = identity_provider
    config = {**veta_config, "JWT": {"secret": None, "jwks_url": jwks_url,
                                     "issuer": "https://id.veta.example", "audience": "veta-api"}}
    runner_factory(config, GatewayService).start()
    client = GraphQL(config)

    def signed(**overrides: Any) -> str:
        claims = {"sub": "ana", "iss": "https://id.veta.example", "aud": "veta-api",
                  "exp": int(time.time()) + 600, "veta_role": "FINANCE", **overrides}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    ok = client.post("{ me { role subject } }", bearer=signed())
    assert ok.json()["data"]["me"] == {"role": "FINANCE", "subject": "ana"}
    for refused in (signed(aud="someone-else"), signed(exp=int(time.time()) - 10),
                    signed(iss="https://evil.example"),
                    jwt.encode({"sub": "x"}, "a-shared-secret-long-enough-for-hs256",
                               algorithm="HS256")):
        response = client.post("{ me { role } }", bearer=refused)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_producer_token_must_name_its_organisation(system: Any,
                                                     veta_config: dict[str, Any]) -> None:
    forged = jwt.encode({"sub": "p", "iss": "veta", "aud": "veta", "veta_role": "PRODUCER",
                         "exp": int(time.time()) + 60}, veta_config["JWT"]["secret"],
                        algorithm="HS256")
    response = requests.post(GraphQL(veta_config).url, json={"query": "{ me { role } }"},
                             headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert response.status_code == 401
