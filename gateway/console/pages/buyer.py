"""A buyer's pages: search certified lots, a lot with its producer and mine site, placing an
order, following it, confirming delivery with the receiving assay, and sourcing commitments
with their progress and the lots that would fill what remains.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from babel import Locale
from babel.numbers import format_percent
from werkzeug.wrappers import Response

from gateway.console import api, drawings
from gateway.console.i18n import Formats, decimal_input, to_decimal
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

COMMITMENT_TERMS = """
  id status standards countries priceCeiling periodStart periodEnd reason
  fineWeight { grams } producers { id name }
  progress {
    committed { grams } ordered { grams } delivered { grams } remaining { grams }
    expected { grams } percentage elapsedShare pace
  }
"""

COMMITMENTS = """
query Commitments($after: String) {
  commitments(first: 50, after: $after) {
    edges { node {""" + COMMITMENT_TERMS + """} }
    pageInfo { hasNextPage endCursor }
  }
}"""

COMMITMENT = """
query Commitment($id: ID!) {
  commitment(id: $id) {""" + COMMITMENT_TERMS + """
    producerIds createdAt
    drawdowns {
      orderId deliveredOn fineWeight { grams }
      order { id listing { id mineSite { name } producer { name } } }
    }
    lotsToFillRemainder(first: 10) {
      listing {
        id standard form fineness mercuryFree availableFineWeight { grams }
        mineSite { name region country } producer { id name }
      }
      suggestedFineWeight { grams } fillsRemainder
    }
  }
}"""

PRODUCERS = """
query Producers {
  producers(first: 100) { edges { node { id name country } } }
}"""

CREATE_COMMITMENT = """
mutation CreateCommitment($input: CreateCommitmentInput!) {
  createCommitment(input: $input) { commitment { id status } errors { field code message } }
}"""

AMEND_COMMITMENT = """
mutation AmendCommitment($input: AmendCommitmentInput!) {
  amendCommitment(input: $input) { commitment { id status } errors { field code message } }
}"""

CANCEL_COMMITMENT = """
mutation CancelCommitment($input: CancelCommitmentInput!) {
  cancelCommitment(input: $input) { commitment { id status } errors { field code message } }
}"""

COMMITMENT_FIELDS = {"fineWeight", "standards", "periodStart", "periodEnd", "countries",
                     "producerIds", "priceCeiling"}
# Lists whose items the API may refuse one by one ("countries.1"): shown beside the list.
LIST_FIELDS = ("standards", "countries", "producerIds")
DEFAULT_PERIOD_DAYS = 90


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
    if values is None and visit.request.args.get("fineWeight"):
        # Followed from a commitment: the order form starts at what the commitment needs.
        mark = Formats(visit.language).decimal_mark
        values = {"fineWeight": visit.request.args["fineWeight"].replace(".", mark)}
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
    data = visit.api.query(COMMITMENTS, after=visit.request.args.get("after") or None)
    found = [edge["node"] for edge in data["commitments"]["edges"]]
    return visit.render("buyer/commitments.html", commitments=found,
                        bars={c["id"]: progress_bar(c["progress"], visit.language)
                              for c in found},
                        page_info=data["commitments"]["pageInfo"],
                        may_create=api.offers_mutation("createCommitment"))


def new_commitment(visit: Visit) -> Response:
    if not api.offers_mutation("createCommitment"):
        return not_offered(visit)
    if visit.request.method == "GET":
        today = date.today()
        # The form names its request when it is drawn, so that sending it twice (a double
        # click, or again after the answer was lost) makes one commitment; a refused form
        # is drawn again with the key it was sent with.
        values: dict[str, Any] = {
            "standards": [], "producerIds": [], "periodStart": today.isoformat(),
            "periodEnd": (today + timedelta(days=DEFAULT_PERIOD_DAYS)).isoformat(),
            "idempotencyKey": str(uuid.uuid4())}
        return _commitment_form(visit, values)
    values = form_terms(visit)
    values["idempotencyKey"] = visit.form.get("idempotencyKey") or str(uuid.uuid4())
    terms = commitment_input(values)
    terms.update(buyerId=visit.organisation, periodStart=values["periodStart"],
                 idempotencyKey=values["idempotencyKey"])
    outcome = visit.api.mutate(CREATE_COMMITMENT, form_fields(terms), input=terms)
    if outcome.ok:
        return visit.redirect(f"/commitments/{outcome.result['id']}",
                              flash="commitment-created")
    return _commitment_form(visit, values, outcome, status=422)


def _commitment_form(visit: Visit, values: dict[str, Any], outcome: api.Outcome | None = None,
                     status: int = 200) -> Response:
    return visit.render("buyer/commitment_form.html", status=status, values=values,
                        standards=STANDARDS, producers=_producers(visit),
                        errors=beside_lists(outcome.by_field) if outcome else {},
                        general=outcome.general if outcome else [])


def commitment(visit: Visit, commitment_id: str, action: str | None = None,
               values: dict[str, Any] | None = None, outcome: api.Outcome | None = None,
               status: int = 200) -> Response:
    if not api.offers_query("commitment"):
        return not_offered(visit)
    found = visit.api.query(COMMITMENT, id=commitment_id)["commitment"]
    if found is None:
        return refused(visit, 404, "NOT_FOUND")
    active = found["status"] == "ACTIVE"
    return visit.render(
        "buyer/commitment.html", status=status, commitment=found,
        bar=progress_bar(found["progress"], visit.language),
        ceiling=percent(visit.language, found["priceCeiling"]) if found["priceCeiling"] else None,
        amending=values if action == "amend" and values else amend_values(
            found, Formats(visit.language)),
        cancelling=values if action == "cancel" and values else {},
        standards=STANDARDS, producers=_producers(visit) if active else [],
        errors={action: beside_lists(outcome.by_field)} if action and outcome else {},
        general={action: outcome.general} if action and outcome else {},
        may_amend=active and api.offers_mutation("amendCommitment"),
        may_cancel=active and api.offers_mutation("cancelCommitment"))


def commitment_action(visit: Visit, commitment_id: str, action: str) -> Response:
    if action == "amend" and api.offers_mutation("amendCommitment"):
        values = form_terms(visit)
        terms = {"commitmentId": commitment_id, **commitment_input(values)}
        if "priceCeiling" not in terms:
            # An emptied ceiling field lifts the ceiling (leaving it out would keep it).
            terms["removePriceCeiling"] = True
        outcome = visit.api.mutate(AMEND_COMMITMENT, form_fields(terms), input=terms)
        flash = "commitment-amended"
    elif action == "cancel" and api.offers_mutation("cancelCommitment"):
        values = {"reason": visit.form.get("reason", "")}
        cancel: dict[str, Any] = {"commitmentId": commitment_id}
        if values["reason"].strip():
            cancel["reason"] = values["reason"]
        outcome = visit.api.mutate(CANCEL_COMMITMENT, {"reason"}, input=cancel)
        flash = "commitment-cancelled"
    else:
        return not_offered(visit)
    if outcome.ok:
        return visit.redirect(f"/commitments/{commitment_id}", flash=flash)
    return commitment(visit, commitment_id, action, values, outcome, status=422)


def _producers(visit: Visit) -> list[dict[str, Any]]:
    """Cooperatives a commitment may be limited to (the first hundred the API lists)."""
    data = visit.api.query(PRODUCERS)
    return [edge["node"] for edge in data["producers"]["edges"]]


def form_terms(visit: Visit) -> dict[str, Any]:
    """The commitment form as typed, lists as lists, to show again if the API refuses it."""
    form = visit.request.form
    values: dict[str, Any] = {name: form.get(name, "") for name in (
        "fineWeight", "periodStart", "periodEnd", "countries", "priceCeiling")}
    values["standards"] = [s for s in form.getlist("standards") if s in STANDARDS]
    values["producerIds"] = form.getlist("producerIds")
    return values


def commitment_input(values: dict[str, Any]) -> dict[str, Any]:
    """What a commitment form says, as the fields CreateCommitmentInput and
    AmendCommitmentInput share; an empty ceiling is left out."""
    terms: dict[str, Any] = {
        "fineWeight": decimal_input(values["fineWeight"]), "standards": values["standards"],
        "periodEnd": values["periodEnd"],
        "countries": [code for code in re.split(r"[\s,;]+", values["countries"].upper())
                      if code],
        "producerIds": values["producerIds"]}
    if values["priceCeiling"].strip():
        terms["priceCeiling"] = decimal_input(values["priceCeiling"])
    return terms


def form_fields(terms: dict[str, Any]) -> set[str]:
    """The form's fields, and each item of its lists, so the API's error about one item
    ("countries.1") is kept with its field rather than shown above the form."""
    items = {f"{name}.{index}" for name in LIST_FIELDS
             for index in range(len(terms.get(name) or []))}
    return COMMITMENT_FIELDS | items


def beside_lists(by_field: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for name, messages in by_field.items():
        head = name.split(".", 1)[0]
        merged.setdefault(head if head in LIST_FIELDS else name, []).extend(messages)
    return merged


def amend_values(found: dict[str, Any], formats: Formats) -> dict[str, Any]:
    """A commitment's terms as its amend form shows them, decimals with the language's mark."""
    return {"fineWeight": found["fineWeight"]["grams"].replace(".", formats.decimal_mark),
            "periodEnd": found["periodEnd"], "standards": found["standards"],
            "countries": ", ".join(found["countries"]),
            "producerIds": [p["id"] for p in found["producers"]],
            "priceCeiling": (found["priceCeiling"] or "").replace(".", formats.decimal_mark)}


def progress_bar(progress: dict[str, Any], language: str) -> dict[str, str]:
    """Where the bar's parts end, in % of the committed weight (0 to 100), and the
    percentage delivered as the language writes it. Exact decimals, never floats."""
    committed = to_decimal(progress["committed"]["grams"]) or Decimal(0)

    def share(weight: dict[str, str]) -> str:
        grams = to_decimal(weight["grams"]) or Decimal(0)
        if committed <= 0:
            return "0"
        part = min(max(grams * 100 / committed, Decimal(0)), Decimal(100))
        return str(part.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))

    return {"delivered": share(progress["delivered"]), "ordered": share(progress["ordered"]),
            "expected": share(progress["expected"]),
            "percent": percent(language, progress["percentage"]),
            "elapsed": percent(language, str((to_decimal(progress["elapsedShare"])
                                              or Decimal(0)) * 100))}


def percent(language: str, value: str) -> str:
    """A percentage with two decimals, the way the language writes it ("40.01%", "40,01 %")."""
    locale = Locale.parse(language)
    pattern = locale.percent_formats[None].pattern.replace("0", "0.00", 1)
    return str(format_percent((to_decimal(value) or Decimal(0)) / 100, format=pattern,
                              locale=locale))
