"""Steps 1 to 6 of the walking skeleton, through the GraphQL endpoint over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from shared.caller import Role
from tests.helpers import GraphQL, validity


@pytest.fixture
def gateway(runner_factory: Any, veta_config: dict[str, Any]) -> Any:
    runner = runner_factory(veta_config, CertificationService, ListingsService, OrdersService,
                            PayoutsService, GatewayService)
    runner.start()
    client = GraphQL(veta_config)
    client.runner = runner  # type: ignore[attr-defined]
    return client


REGISTER = """
mutation ($input: RegisterProducerInput!) {
  registerProducer(input: $input) {
    producer { id name country region }
    errors { field code message }
  }
}"""

GRANT = """
mutation ($input: GrantCertificationInput!) {
  grantCertification(input: $input) {
    producer { id certifications { standard status validToday certificateNumber } }
    errors { field code message }
  }
}"""

PUBLISH = """
mutation ($input: PublishListingInput!) {
  publishListing(input: $input) {
    listing { id status fineWeight { grams unit } availableFineWeight { grams } }
    errors { field code message }
  }
}"""

SEARCH = """
query ($filter: ListingFilter) {
  listings(filter: $filter, first: 10) {
    edges { node { id fineness producer { name } certificationStatus } }
    pageInfo { hasNextPage endCursor }
  }
}"""

PLACE = """
mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { field code message } }
}"""

ORDER = """
query ($id: ID!) {
  order(id: $id) {
    id status fineWeight { grams } deliveredFineWeight { grams }
    deliveryDifference { grams } listing { id } history { fromStatus toStatus }
  }
}"""

SHIP = """
mutation ($input: MarkOrderShippedInput!) {
  markOrderShipped(input: $input) { order { status } errors { code message } }
}"""

DELIVER = """
mutation ($input: ConfirmDeliveryInput!) {
  confirmDelivery(input: $input) {
    order { status deliveredFineWeight { grams } } errors { field code message }
  }
}"""

PAYOUTS = """
query ($producerId: ID) {
  payouts(producerId: $producerId) {
    edges { node { orderId standard status amount { amount currency }
                   ratePerKg { amount } fineWeight { grams } producer { name } } }
  }
}"""


def test_a_cooperative_lists_gold_a_buyer_orders_it_and_a_premium_is_owed(
        gateway: GraphQL) -> None:
    runner = gateway.runner  # type: ignore[attr-defined]
    # 1. A certifier registers the cooperative.
    body = gateway.run(REGISTER, {"input": {"name": "Cooperativa Aurífera Río Verde",
                                            "country": "CO", "region": "Antioquia"}},
                       role=Role.CERTIFIER)
    assert body["data"]["registerProducer"]["errors"] == []
    producer = body["data"]["registerProducer"]["producer"]
    assert producer["country"] == "CO"

    # 2. ... and grants it Fairmined Ecological; listings learns of it by event.
    dates = validity()
    with entrypoint_waiter(get_container(runner, ListingsService), "on_certification_granted"):
        body = gateway.run(GRANT, {"input": {
            "producerId": producer["id"], "standard": "FAIRMINED_ECOLOGICAL",
            "certificateNumber": "FME-CO-0001", "validFrom": dates["valid_from"],
            "validUntil": dates["valid_until"]}}, role=Role.CERTIFIER)
    assert body["data"]["grantCertification"]["errors"] == []
    [held] = body["data"]["grantCertification"]["producer"]["certifications"]
    assert held == {"standard": "FAIRMINED_ECOLOGICAL", "status": "CERTIFIED",
                    "validToday": True, "certificateNumber": "FME-CO-0001"}

    # 3. The cooperative publishes a doré bar; its fine weight is computed exactly.
    lot_input = {
        "producerId": producer["id"], "standard": "FAIRMINED_ECOLOGICAL", "form": "DORE",
        "grossWeight": "1000.000", "fineness": "915.0", "mercuryFree": True,
        "assayReference": "LAB-MED-2211",
        "mineSite": {"name": "Mina La Esperanza", "region": "Antioquia", "country": "CO",
                     "latitude": "6.2442", "longitude": "-75.5812"}}
    body = gateway.run(PUBLISH, {"input": lot_input}, role=Role.PRODUCER,
                       organisation=producer["id"])
    assert body["data"]["publishListing"]["errors"] == []
    lot = body["data"]["publishListing"]["listing"]
    assert lot["fineWeight"] == {"grams": "915.000", "unit": "g"}
    assert lot["status"] == "PUBLISHED"

    # 4. A buyer finds it by standard, fineness and country, with the producer resolved.
    body = gateway.run(SEARCH, {"filter": {"standard": ["FAIRMINED_ECOLOGICAL"],
                                           "minFineness": "900.0", "country": "CO"}},
                       role=Role.BUYER, organisation="refinery-alpine")
    found = [e["node"] for e in body["data"]["listings"]["edges"] if e["node"]["id"] == lot["id"]]
    assert found == [{"id": lot["id"], "fineness": "915.0",
                      "producer": {"name": "Cooperativa Aurífera Río Verde"},
                      "certificationStatus": "CERTIFIED"}]
    body = gateway.run(SEARCH, {"filter": {"standard": ["FAIRMINED_ECOLOGICAL"],
                                           "minFineness": "950.0"}},
                       role=Role.BUYER, organisation="refinery-alpine")
    assert lot["id"] not in [e["node"]["id"] for e in body["data"]["listings"]["edges"]]

    # 5. The buyer orders 400 g of fine gold; the saga confirms it.
    with entrypoint_waiter(get_container(runner, OrdersService), "on_listing_reserved"):
        body = gateway.run(PLACE, {"input": {"buyerId": "refinery-alpine",
                                             "listingId": lot["id"], "fineWeight": "400.000"}},
                           role=Role.BUYER, organisation="refinery-alpine")
    placed = body["data"]["placeOrder"]
    assert placed["errors"] == [] and placed["order"]["status"] == "PENDING"
    order_id = placed["order"]["id"]
    body = gateway.run(ORDER, {"id": order_id}, role=Role.BUYER,
                       organisation="refinery-alpine")
    assert body["data"]["order"]["status"] == "CONFIRMED"
    assert body["data"]["order"]["listing"] == {"id": lot["id"]}

    # The producer ships it.
    body = gateway.run(SHIP, {"input": {"orderId": order_id, "shipmentReference": "AWB-77"}},
                       role=Role.PRODUCER, organisation=producer["id"])
    assert body["data"]["markOrderShipped"] == {"order": {"status": "SHIPPED"}, "errors": []}

    # 6. The buyer confirms delivery with its own assay; payouts owes the premium.
    with entrypoint_waiter(get_container(runner, PayoutsService), "on_order_delivered"):
        body = gateway.run(DELIVER, {"input": {"orderId": order_id,
                                               "receivedGrossWeight": "437.500",
                                               "receivedFineness": "914.6"}},
                           role=Role.BUYER, organisation="refinery-alpine")
    assert body["data"]["confirmDelivery"]["errors"] == []
    # 437.500 g x 914.6 per mille = 400.1375 g, half-even to the milligram: 400.138 g.
    assert body["data"]["confirmDelivery"]["order"] == {
        "status": "DELIVERED", "deliveredFineWeight": {"grams": "400.138"}}

    body = gateway.run(PAYOUTS, {"producerId": producer["id"]}, role=Role.FINANCE)
    [payout] = [e["node"] for e in body["data"]["payouts"]["edges"]]
    # 400.138 g x USD 6,000 per kg = USD 2,400.828, half-even to the cent: 2,400.83.
    assert payout == {"orderId": order_id, "standard": "FAIRMINED_ECOLOGICAL",
                      "status": "CALCULATED", "amount": {"amount": "2400.83", "currency": "USD"},
                      "ratePerKg": {"amount": "6000"}, "fineWeight": {"grams": "400.138"},
                      "producer": {"name": "Cooperativa Aurífera Río Verde"}}


def test_bad_input_comes_back_as_typed_errors_naming_the_field(gateway: GraphQL) -> None:
    body = gateway.run(REGISTER, {"input": {"name": "Cooperativa X", "country": "XX",
                                            "region": "Nowhere"}}, role=Role.CERTIFIER)
    assert body["data"]["registerProducer"] == {"producer": None, "errors": [{
        "field": "country", "code": "BAD_USER_INPUT",
        "message": "must be an ISO 3166-1 alpha-2 country code, such as CO or PE"}]}


def test_roles_are_checked_at_the_gateway(gateway: GraphQL) -> None:
    body = gateway.run(REGISTER, {"input": {"name": "Cooperativa Y", "country": "PE",
                                            "region": "Puno"}},
                       role=Role.BUYER, organisation="refinery-alpine")
    assert body["data"]["registerProducer"]["errors"][0]["code"] == "FORBIDDEN"

    response = gateway.post("{ me { role } }")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = gateway.post("{ me { role } }", bearer="not-a-token")
    assert response.status_code == 401


def test_graphiql_is_served_on_get(gateway: GraphQL) -> None:
    import requests

    page = requests.get(gateway.url, timeout=10)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
