"""Certifiers, cooperatives and buyers through GraphQL over HTTP: lifecycle, lots, batching."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from shared.caller import Role
from tests.helpers import GraphQL, eventually, validity


@pytest.fixture
def gateway(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, GatewayService)
    runner.start()
    client = GraphQL(veta_config)
    client.listings = get_container(runner, ListingsService)  # type: ignore[attr-defined]
    return client


PRODUCER = "producer { id name mineSites { name municipality } certifications { id status " \
           "scope certifier history { fromStatus toStatus actor reason } } }"
REGISTER = "mutation ($i: RegisterProducerInput!) { registerProducer(input: $i) { " \
           + PRODUCER + " errors { field code message } } }"
GRANT = "mutation ($i: GrantCertificationInput!) { grantCertification(input: $i) { " \
        + PRODUCER + " errors { field code message } } }"
SUSPEND = "mutation ($i: CertificationChangeInput!) { suspendCertification(input: $i) { " \
          + PRODUCER + " errors { field code message } } }"
REINSTATE = "mutation ($i: CertificationChangeInput!) { reinstateCertification(input: $i) {" \
            + PRODUCER + " errors { field code message } } }"
WITHDRAW = "mutation ($i: CertificationChangeInput!) { withdrawCertification(input: $i) { " \
           + PRODUCER + " errors { field code message } } }"
UPDATE_PRODUCER = "mutation ($i: UpdateProducerInput!) { updateProducer(input: $i) { " \
                  + PRODUCER + " errors { field code message } } }"
LISTING = "listing { id status producerName priceBasisPermille fineWeight { grams } " \
          "mineSite { name } } errors { field code message }"
DRAFT = "mutation ($i: PublishListingInput!) { createListingDraft(input: $i) { " \
        + LISTING + " } }"
PUBLISH = "mutation ($i: PublishListingInput!) { publishListing(input: $i) { " + LISTING + " } }"
PUBLISH_DRAFT = "mutation ($i: ListingIdInput!) { publishListingDraft(input: $i) { " \
                + LISTING + " } }"
UPDATE = "mutation ($i: UpdateListingInput!) { updateListing(input: $i) { " + LISTING + " } }"
WITHDRAW_LOT = "mutation ($i: WithdrawListingInput!) { withdrawListing(input: $i) { " \
               + LISTING + " } }"
SEARCH = """query ($f: ListingFilter, $s: ListingSort, $after: String) {
  listings(filter: $f, sort: $s, first: 2, after: $after) {
    edges { node { id status fineness } } pageInfo { hasNextPage endCursor } } }"""
STATUS_AT = """query ($p: ID!, $s: Standard!, $at: String) {
  certificationStatus(producerId: $p, standard: $s, at: $at) { status at } }"""


def lot(producer_id: str, site: str = "Mina La Esperanza", **extra: Any) -> dict[str, Any]:
    return {"producerId": producer_id, "standard": "FAIRMINED", "form": "DORE",
            "grossWeight": "1000.000", "fineness": "915.0", "mercuryFree": True,
            "assayReference": "LAB-1", "assayLab": "SGS Medellín", "priceBasisPermille": -30,
            "mineSite": {"name": site, "region": "Antioquia", "country": "CO"}, **extra}


def ok(body: dict[str, Any], field: str) -> Any:
    assert "errors" not in body, body
    assert body["data"][field]["errors"] == [], body["data"][field]
    return body["data"][field]


def test_a_certificate_and_its_lots_live_through_graphql(gateway: GraphQL) -> None:
    listings = gateway.listings  # type: ignore[attr-defined]
    name = f"Cooperativa Aurífera {uuid.uuid4().hex[:6]}"
    producer = ok(gateway.run(REGISTER, {"i": {
        "name": name, "country": "CO", "region": "Antioquia",
        "mineSites": [{"name": "Mina La Esperanza", "municipality": "Segovia"},
                      {"name": "Mina El Limón"}]}}, role=Role.CERTIFIER),
        "registerProducer")["producer"]
    assert producer["mineSites"][0] == {"name": "Mina La Esperanza", "municipality": "Segovia"}
    with entrypoint_waiter(listings, "on_certification_granted"):
        granted = ok(gateway.run(GRANT, {"i": {
            "producerId": producer["id"], "standard": "FAIRMINED", "certificateNumber":
            f"FM-{producer['id'][:6]}", "certifier": "ARM", "scope": ["Mina La Esperanza"],
            "validFrom": validity()["valid_from"], "validUntil": validity()["valid_until"]}},
            role=Role.CERTIFIER), "grantCertification")
    [certificate] = granted["producer"]["certifications"]
    assert certificate["scope"] == ["Mina La Esperanza"] and certificate["certifier"] == "ARM"

    as_producer: dict[str, Any] = {"role": Role.PRODUCER, "organisation": producer["id"]}
    draft = ok(gateway.run(DRAFT, {"i": lot(producer["id"])}, **as_producer),
               "createListingDraft")["listing"]
    assert draft["status"] == "DRAFT" and draft["priceBasisPermille"] == -30
    published = ok(gateway.run(PUBLISH_DRAFT, {"i": {"listingId": draft["id"]}},
                               **as_producer), "publishListingDraft")["listing"]
    assert published["status"] == "PUBLISHED"
    body = gateway.run(PUBLISH, {"i": lot(producer["id"], "Mina El Limón")}, **as_producer)
    assert body["data"]["publishListing"]["errors"] == [{
        "field": "mineSite.name", "code": "CONFLICT",
        "message": "the FAIRMINED certificate does not cover the mine site 'Mina El Limón'"}]
    body = gateway.run(PUBLISH, {"i": lot(producer["id"], priceBasisPermille=-51)},
                       **as_producer)
    assert body["data"]["publishListing"]["errors"][0]["field"] == "priceBasisPermille"
    second = ok(gateway.run(PUBLISH, {"i": lot(producer["id"], fineness="999.0")},
                            **as_producer), "publishListing")["listing"]
    edited = ok(gateway.run(UPDATE, {"i": {"listingId": second["id"],
                                           "grossWeight": "2000.000"}}, **as_producer),
                "updateListing")["listing"]
    assert edited["fineWeight"] == {"grams": "1998.000"}
    body = gateway.run(UPDATE, {"i": {"listingId": second["id"], "exportPermit": "X"}},
                       role=Role.PRODUCER, organisation="another-coop")
    assert body["data"]["updateListing"]["errors"][0]["code"] == "FORBIDDEN"

    # A buyer pages through the producer's lots by fineness.
    as_buyer: dict[str, Any] = {"role": Role.BUYER, "organisation": "refinery-1"}
    first = gateway.run(SEARCH, {"f": {"producerId": producer["id"]}, "s": "FINENESS"},
                        **as_buyer)["data"]["listings"]
    assert [e["node"]["fineness"] for e in first["edges"]] == ["999.0", "915.0"]
    assert first["pageInfo"]["hasNextPage"] is False

    # Suspension takes both off the market; reinstatement brings them back.
    with entrypoint_waiter(listings, "on_certification_suspended"):
        suspended = ok(gateway.run(SUSPEND, {"i": {"certificationId": certificate["id"],
                                                   "reason": "audit"}}, role=Role.CERTIFIER),
                       "suspendCertification")
    assert suspended["producer"]["certifications"][0]["status"] == "SUSPENDED"
    found = gateway.run(SEARCH, {"f": {"producerId": producer["id"]}}, **as_buyer)
    assert found["data"]["listings"]["edges"] == []
    with entrypoint_waiter(listings, "on_certification_reinstated"):
        ok(gateway.run(REINSTATE, {"i": {"certificationId": certificate["id"]}},
                       role=Role.CERTIFIER), "reinstateCertification")
    found = gateway.run(SEARCH, {"f": {"producerId": producer["id"]}}, **as_buyer)
    assert len(found["data"]["listings"]["edges"]) == 2
    ok(gateway.run(WITHDRAW_LOT, {"i": {"listingId": second["id"]}}, **as_producer),
       "withdrawListing")

    answer = gateway.run(STATUS_AT, {"p": producer["id"], "s": "FAIRMINED"},
                         role=Role.BUYER, organisation="refinery-1")
    assert answer["data"]["certificationStatus"]["status"] == "CERTIFIED"

    with entrypoint_waiter(listings, "on_certification_withdrawn"):
        withdrawn = ok(gateway.run(WITHDRAW, {"i": {"certificationId": certificate["id"],
                                                    "reason": "fraud"}},
                                   role=Role.CERTIFIER), "withdrawCertification")
    history = withdrawn["producer"]["certifications"][0]["history"]
    assert [(h["fromStatus"], h["toStatus"]) for h in history] == [
        (None, "CERTIFIED"), ("CERTIFIED", "SUSPENDED"), ("SUSPENDED", "CERTIFIED"),
        ("CERTIFIED", "WITHDRAWN")]
    body = gateway.run(REINSTATE, {"i": {"certificationId": certificate["id"]}},
                       role=Role.CERTIFIER)
    assert body["data"]["reinstateCertification"]["errors"][0]["code"] == "CONFLICT"

    # A new legal name reaches the lots by event.
    ok(gateway.run(UPDATE_PRODUCER, {"i": {"producerId": producer["id"],
                                           "name": name + " Renovada"}}, role=Role.CERTIFIER),
       "updateProducer")

    def renamed() -> bool:
        body = gateway.run("query ($id: ID!) { listing(id: $id) { producerName } }",
                           {"id": published["id"]}, **as_buyer)
        return bool(body["data"]["listing"]["producerName"] == name + " Renovada")

    eventually(renamed)


NESTED_PRODUCERS = """{ producers(first: 4) { edges { node { name
  lots(first: 5) { id producer { name certifications { status } } } } } } }"""
NESTED_LISTINGS = """query ($f: ListingFilter) { listings(filter: $f, first: 20) { edges { node {
  id producer { name certifications { status } lots { id status } } } } } }"""


def test_nested_producers_and_lots_cost_a_constant_number_of_rpc_calls(
        gateway: GraphQL) -> None:
    listings = gateway.listings  # type: ignore[attr-defined]
    region = f"Region {uuid.uuid4().hex[:6]}"
    for number in range(4):
        producer = ok(gateway.run(REGISTER, {"i": {
            "name": f"Cooperativa {number}", "country": "PE", "region": region}},
            role=Role.CERTIFIER), "registerProducer")["producer"]
        with entrypoint_waiter(listings, "on_certification_granted"):
            ok(gateway.run(GRANT, {"i": {
                "producerId": producer["id"], "standard": "FAIRMINED",
                "certificateNumber": f"FM-{producer['id'][:8]}",
                "validFrom": validity()["valid_from"],
                "validUntil": validity()["valid_until"]}}, role=Role.CERTIFIER),
                "grantCertification")
        for _ in range(3):
            ok(gateway.run(PUBLISH, {"i": lot(producer["id"], mineSite={
                "name": "Mina", "region": region, "country": "PE"})},
                role=Role.PRODUCER, organisation=producer["id"]), "publishListing")

    as_buyer: dict[str, Any] = {"role": Role.BUYER, "organisation": "refinery-1"}
    body = gateway.run(NESTED_PRODUCERS, **as_buyer)
    assert "errors" not in body, body
    nodes = [e["node"] for e in body["data"]["producers"]["edges"]]
    assert [len(n["lots"]) for n in nodes] == [3, 3, 3, 3]
    assert all(lot["producer"]["name"] == n["name"] for n in nodes for lot in n["lots"])
    # list_producers, then every producer's lots in one call; lot.producer is cached.
    assert body["extensions"]["rpcCalls"] == 2

    body = gateway.run(NESTED_LISTINGS, {"f": {"region": region}}, **as_buyer)
    assert "errors" not in body, body
    edges = body["data"]["listings"]["edges"]
    assert len(edges) == 12
    assert all(len(e["node"]["producer"]["lots"]) == 3 for e in edges)
    # search, then all producers in one call, then all their lots in one call.
    assert body["extensions"]["rpcCalls"] == 3
