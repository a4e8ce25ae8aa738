"""A buyer's pages: search certified lots, a lot with its producer and mine site, placing an
order, following it, confirming delivery with the receiving assay, and commitments.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from gateway.console import api, drawings
from gateway.console.i18n import decimal_input
from gateway.console.pages.access import not_offered, refused
from gateway.console.web import Visit

STANDARDS = ["FAIRMINED", "FAIRMINED_ECOLOGICAL", "CRAFT"]
PAGE_SIZE = 20

SEARCH = """
query Search($filter: ListingFilter, $first: Int, $after: String) {
  listings(filter: $filter, first: $first, after: $after) {
    edges { node {
      id standard form fineness status certificationStatus mercuryFree
      availableFineWeight { grams } mineSite { name region country }
      producer { id name }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

LOT = """
query Lot($id: ID!) {
  listing(id: $id) {
    id standard form fineness status certificationStatus mercuryFree assayReference createdAt
    grossWeight { grams } fineWeight { grams } availableFineWeight { grams }
    mineSite { name region country latitude longitude }
    producer {
      id name country region
      certifications { id standard certificateNumber validFrom validUntil status validToday }
    }
  }
}"""

ORDERS = """
query Orders($after: String) {
  orders(first: 50, after: $after) {
    edges { node {
      id status standard fineWeight { grams } deliveredFineWeight { grams } createdAt
      listing { id producer { name } mineSite { name country } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id buyerId status standard reason shipmentReference receivedFineness createdAt updatedAt
    fineWeight { grams } receivedGrossWeight { grams } deliveredFineWeight { grams }
    deliveryDifference { grams }
    listing { id form fineness producer { id name } mineSite { name region country } }
    history { fromStatus toStatus actor at }
  }
}"""

PLACE = """
mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { field code message } }
}"""

DELIVER = """
mutation Deliver($input: ConfirmDeliveryInput!) {
  confirmDelivery(input: $input) { order { id status } errors { field code message } }
}"""

CANCEL = """
mutation Cancel($input: CancelOrderInput!) {
  cancelOrder(input: $input) { order { id status } errors { field code message } }
}"""

# Built against the names the API keeps (docs); shown only once the API serves them.
COMMITMENTS = """
query Commitments {
  commitments(first: 50) {
    edges { node { id status standards fineWeight { grams } periodStart periodEnd } }
  }
}"""


def search(visit: Visit) -> Response:
    args = visit.request.args
    chosen = [s for s in args.getlist("standard") if s in STANDARDS]
    criteria = {"standard": chosen, "minFineness": args.get("minFineness", "").strip(),
                "country": args.get("country", "").strip().upper()}
    filter_: dict[str, Any] = {}
    if chosen:
        filter_["standard"] = chosen
    if criteria["minFineness"]:
        filter_["minFineness"] = decimal_input(str(criteria["minFineness"]))
    if criteria["country"]:
        filter_["country"] = criteria["country"]
    errors: dict[str, list[str]] = {}
    lots: list[dict[str, Any]] = []
    page_info: dict[str, Any] = {"hasNextPage": False, "endCursor": None}
    try:
        data = visit.api.query(SEARCH, filter=filter_, first=PAGE_SIZE,
                               after=args.get("after") or None)
        lots = [edge["node"] for edge in data["listings"]["edges"]]
        page_info = data["listings"]["pageInfo"]
    except api.ApiError as refusal:
        if refusal.code != "BAD_USER_INPUT":
            raise
        # A filter the API refused is shown beside that filter, like any form field.
        field = (refusal.field or "").removeprefix("filter.")
        errors.setdefault(field if field in criteria else "", []).append(refusal.message)
    following = {key: value for key, value in criteria.items() if value}
    return visit.render("buyer/search.html", status=422 if errors else 200, lots=lots,
                        criteria=criteria, standards=STANDARDS, errors=errors,
                        page_info=page_info, following=following,
                        first_page=not args.get("after"))


def lot(visit: Visit, lot_id: str, values: dict[str, str] | None = None,
        errors: dict[str, list[str]] | None = None, general: list[str] | None = None,
        status: int = 200) -> Response:
    found = visit.api.query(LOT, id=lot_id)["listing"]
    if found is None:
        return refused(visit, 404, "NOT_FOUND")
    site = found["mineSite"]
    return visit.render("buyer/lot.html", status=status, lot=found,
                        map=drawings.site_map(site.get("latitude"), site.get("longitude")),
                        values=values or {}, errors=errors or {}, general=general or [])


def place_order(visit: Visit, lot_id: str) -> Response:
    values = dict(visit.form)
    outcome = visit.api.mutate(PLACE, {"fineWeight"}, input={
        "buyerId": visit.organisation, "listingId": lot_id,
        "fineWeight": decimal_input(values.get("fineWeight", ""))})
    if outcome.ok:
        return visit.redirect(f"/orders/{outcome.result['id']}", flash="order-placed")
    return lot(visit, lot_id, values, outcome.by_field, outcome.general, status=422)


def orders(visit: Visit) -> Response:
    data = visit.api.query(ORDERS, after=visit.request.args.get("after") or None)
    return visit.render("buyer/orders.html",
                        orders=[edge["node"] for edge in data["orders"]["edges"]],
                        page_info=data["orders"]["pageInfo"])


def order(visit: Visit, order_id: str, values: dict[str, str] | None = None,
          errors: dict[str, list[str]] | None = None, general: list[str] | None = None,
          status: int = 200) -> Response:
    found = visit.api.query(ORDER, id=order_id)["order"]
    if found is None:
        return refused(visit, 404, "NOT_FOUND")
    return visit.render("buyer/order.html", status=status, order=found, values=values or {},
                        errors=errors or {}, general=general or [],
                        may_cancel=api.offers_mutation("cancelOrder"))


def order_action(visit: Visit, order_id: str, action: str) -> Response:
    values = dict(visit.form)
    if action == "delivery":
        outcome = visit.api.mutate(DELIVER, {"receivedGrossWeight", "receivedFineness"}, input={
            "orderId": order_id,
            "receivedGrossWeight": decimal_input(values.get("receivedGrossWeight", "")),
            "receivedFineness": decimal_input(values.get("receivedFineness", ""))})
        flash = "delivery-confirmed"
    elif action == "cancel" and api.offers_mutation("cancelOrder"):
        cancel: dict[str, Any] = {"orderId": order_id}
        if values.get("reason", "").strip():
            cancel["reason"] = values["reason"]
        outcome = visit.api.mutate(CANCEL, {"reason"}, input=cancel)
        flash = "order-cancelled"
    else:
        return not_offered(visit)
    if outcome.ok:
        return visit.redirect(f"/orders/{order_id}", flash=flash)
    return order(visit, order_id, values, outcome.by_field, outcome.general, status=422)


def commitments(visit: Visit) -> Response:
    if not api.offers_query("commitments"):
        return not_offered(visit)
    data = visit.api.query(COMMITMENTS)
    return visit.render("buyer/commitments.html",
                        commitments=[edge["node"] for edge in data["commitments"]["edges"]])
