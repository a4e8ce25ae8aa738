"""A cooperative's pages: its certifications (warned before they expire), its lots (drafted,
edited, published, withdrawn), the orders for them with what it can do next, and the premiums
it has earned.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Response

from gateway.console import api
from gateway.console.i18n import Formats, decimal_input, to_decimal
from gateway.console.pages.access import not_offered, refused
from gateway.console.web import Visit

EXPIRY_WARNING_DAYS = 30
STANDARDS = ["FAIRMINED", "FAIRMINED_ECOLOGICAL", "CRAFT"]
LOT_STATUSES = ["DRAFT", "PUBLISHED", "PARTIALLY_RESERVED", "SOLD_OUT", "WITHDRAWN",
                "SUSPENDED"]

COOPERATIVE = """
query Cooperative($id: ID!) {
  producer(id: $id) {
    id name country region
    certifications { id standard certificateNumber validFrom validUntil status validToday }
  }
  orders(first: 50) {
    edges { node {
      id status standard fineWeight { grams } shipmentReference reason createdAt
      deliveredFineWeight { grams } listing { id form mineSite { name } }
    } }
  }
  payouts(producerId: $id, first: 100) {
    edges { node {
      id orderId standard fineWeight { grams } amount { amount currency } status deliveredOn
    } }
    pageInfo { hasNextPage }
  }
}"""

PRODUCER = """
query Producer($id: ID!) {
  producer(id: $id) { id name country region certifications { standard validToday } }
}"""

# Drafts come back only because the filter names the cooperative itself.
OWN_LOTS = """
query OwnLots($filter: ListingFilter) {
  listings(filter: $filter, first: 50) {
    edges { node {
      id standard form fineness status grossWeight { grams } fineWeight { grams }
      availableFineWeight { grams } mineSite { name } createdAt
    } }
  }
}"""

PUBLISH = """
mutation Publish($input: PublishListingInput!) {
  publishListing(input: $input) { listing { id } errors { field code message } }
}"""

SHIP = """
mutation Ship($input: MarkOrderShippedInput!) {
  markOrderShipped(input: $input) { order { id status } errors { field code message } }
}"""

DECLINE = """
mutation Decline($input: DeclineOrderInput!) {
  declineOrder(input: $input) { order { id status } errors { field code message } }
}"""

DRAFT = """
mutation Draft($input: PublishListingInput!) {
  createListingDraft(input: $input) { listing { id status } errors { field code message } }
}"""

OWN_LOT = """
query OwnLot($id: ID!) {
  listing(id: $id) {
    id status standard form fineness mercuryFree assayReference grossWeight { grams }
    mineSite { name region country latitude longitude } producer { id }
  }
}"""

UPDATE = """
mutation Update($input: UpdateListingInput!) {
  updateListing(input: $input) { listing { id status } errors { field code message } }
}"""

PUBLISH_DRAFT = """
mutation PublishDraft($input: ListingIdInput!) {
  publishListingDraft(input: $input) { listing { id status } errors { field code message } }
}"""

WITHDRAW = """
mutation Withdraw($input: WithdrawListingInput!) {
  withdrawListing(input: $input) { listing { id status } errors { field code message } }
}"""

PAYOUT_ACCOUNT = """
query PayoutAccount($id: ID!) {
  payoutAccount(producerId: $id) { stripeAccountId transfersActive }
}"""

ONBOARD = """
mutation Onboard($input: CreateStripeOnboardingLinkInput!) {
  createStripeOnboardingLink(input: $input) {
    link { url expiresAt } errors { field code message }
  }
}"""

LOT_FIELDS = {"standard", "form", "grossWeight", "fineness", "mineSite.name", "mineSite.region",
              "mineSite.country", "mineSite.latitude", "mineSite.longitude", "mercuryFree",
              "assayReference"}


def home(visit: Visit, errors: dict[str, dict[str, list[str]]] | None = None,
         status: int = 200) -> Response:
    if not visit.organisation:
        return refused(visit, 403, "NO_ORGANISATION")
    data = visit.api.query(COOPERATIVE, id=visit.organisation)
    producer = data["producer"]
    if producer is None:
        return refused(visit, 404, "NOT_FOUND")
    payouts = [edge["node"] for edge in data["payouts"]["edges"]]
    return visit.render(
        "cooperative/home.html", status=status, producer=producer,
        warnings=expiry_warnings(producer["certifications"], date.today()),
        lots=_own_lots(visit), orders=[edge["node"] for edge in data["orders"]["edges"]],
        payouts=payouts, premiums=premium_totals(payouts),
        more_payouts=data["payouts"]["pageInfo"]["hasNextPage"], errors=errors or {},
        account=_payout_account(visit), can_onboard=api.offers_mutation(
            "createStripeOnboardingLink"))


def _payout_account(visit: Visit) -> dict[str, Any] | None:
    """The cooperative's Stripe account as payouts keeps it; None if it has none yet."""
    if not api.offers_query("payoutAccount"):
        return None
    account: dict[str, Any] | None = visit.api.query(PAYOUT_ACCOUNT, id=visit.organisation)[
        "payoutAccount"]
    return account


def onboard(visit: Visit) -> Response:
    """A fresh Stripe onboarding link for the cooperative, shown as a link to follow: Stripe
    sends it back to its page when done."""
    if not visit.organisation:
        return refused(visit, 403, "NO_ORGANISATION")
    if not api.offers_mutation("createStripeOnboardingLink"):
        return not_offered(visit)
    back = f"{visit.request.host_url}cooperative"
    outcome = visit.api.mutate(ONBOARD, set(), input={
        "producerId": visit.organisation, "returnUrl": back, "refreshUrl": back})
    if not outcome.ok:
        return visit.render("cooperative/onboarding.html", status=422, link=None,
                            general=outcome.general)
    return visit.render("cooperative/onboarding.html", link=outcome.result, general=[])


def _own_lots(visit: Visit) -> list[dict[str, Any]] | None:
    if not api.offers("ListingFilter", "producerId"):
        return None
    filter_: dict[str, Any] = {"producerId": visit.organisation}
    if api.offers("ListingFilter", "status"):
        filter_["status"] = LOT_STATUSES
    data = visit.api.query(OWN_LOTS, filter=filter_)
    return [edge["node"] for edge in data["listings"]["edges"]]


def expiry_warnings(certifications: list[dict[str, Any]], today: date
                    ) -> list[dict[str, Any]]:
    """Certificates valid today that end within the warning period, soonest first."""
    warnings = []
    for certification in certifications:
        until = date.fromisoformat(certification["validUntil"])
        days = (until - today).days
        if certification["validToday"] and 0 <= days <= EXPIRY_WARNING_DAYS:
            warnings.append({**certification, "days": days})
    return sorted(warnings, key=lambda warning: warning["days"])


def premium_totals(payouts: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Earned, paid and pending premiums per currency (a reversed one was never earned)."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {"earned": Decimal(0), "paid": Decimal(0), "pending": Decimal(0)})
    for payout in payouts:
        amount = to_decimal(payout["amount"]["amount"]) or Decimal(0)
        sums = totals[payout["amount"]["currency"]]
        if payout["status"] == "REVERSED":
            continue
        sums["earned"] += amount
        sums["paid" if payout["status"] == "PAID" else "pending"] += amount
    return dict(totals)


def new_lot(visit: Visit) -> Response:
    """The lot form: publish at once, or save a draft to finish and publish later."""
    if not visit.organisation:
        return refused(visit, 403, "NO_ORGANISATION")
    producer = _producer(visit)
    if producer is None:
        return refused(visit, 404, "NOT_FOUND")
    if visit.request.method == "GET":
        values = {"mineSite.country": producer["country"], "mineSite.region": producer["region"],
                  "form": "DORE", "mercuryFree": "on"}
        return _lot_form(visit, producer, None, values)
    values = dict(visit.form)
    if visit.form.get("intent") == "draft" and api.offers_mutation("createListingDraft"):
        outcome = visit.api.mutate(DRAFT, LOT_FIELDS,
                                   input=lot_input(visit.organisation, values))
        if outcome.ok:
            return visit.redirect(f"/cooperative/lots/{outcome.result['id']}/edit",
                                  flash="draft-saved")
    else:
        outcome = visit.api.mutate(PUBLISH, LOT_FIELDS,
                                   input=lot_input(visit.organisation, values))
        if outcome.ok:
            return visit.redirect(f"/lots/{outcome.result['id']}", flash="lot-published")
    return _lot_form(visit, producer, None, values, outcome, status=422)


def edit_lot(visit: Visit, lot_id: str) -> Response:
    """A draft (or a published lot) in the same form, prefilled: save it, or save and publish."""
    if not visit.organisation:
        return refused(visit, 403, "NO_ORGANISATION")
    if not api.offers_mutation("updateListing"):
        return not_offered(visit)
    lot = visit.api.query(OWN_LOT, id=lot_id)["listing"]
    producer = _producer(visit)
    # Someone else's lot is not the cooperative's to edit: as if it were not there.
    if lot is None or producer is None or (lot["producer"] or {}).get("id") != producer["id"]:
        return refused(visit, 404, "NOT_FOUND")
    if visit.request.method == "GET":
        return _lot_form(visit, producer, lot, form_values(lot, Formats(visit.language)))
    values = dict(visit.form)
    outcome = visit.api.mutate(UPDATE, LOT_FIELDS,
                               input={"listingId": lot_id, **lot_fields(values)})
    if outcome.ok and visit.form.get("intent") == "publish" and lot["status"] == "DRAFT":
        # Saved first, so that a refusal to publish (the standard not held today) keeps
        # the edits; the refusal names the field it is about, like any other.
        outcome = visit.api.mutate(PUBLISH_DRAFT, LOT_FIELDS, input={"listingId": lot_id})
        if outcome.ok:
            return visit.redirect(f"/lots/{lot_id}", flash="lot-published")
    elif outcome.ok:
        return visit.redirect(f"/cooperative/lots/{lot_id}/edit", flash="lot-saved")
    return _lot_form(visit, producer, lot, values, outcome, status=422)


def publish_draft(visit: Visit, lot_id: str) -> Response:
    """Publish a draft as saved (the button beside it on the cooperative's page)."""
    if not api.offers_mutation("publishListingDraft"):
        return not_offered(visit)
    outcome = visit.api.mutate(PUBLISH_DRAFT, set(), input={"listingId": lot_id})
    if outcome.ok:
        return visit.redirect(f"/lots/{lot_id}", flash="lot-published")
    return home(visit, errors={lot_id: {**outcome.by_field, "": outcome.general}}, status=422)


def _producer(visit: Visit) -> dict[str, Any] | None:
    producer: dict[str, Any] | None = visit.api.query(PRODUCER, id=visit.organisation)[
        "producer"]
    return producer


def _lot_form(visit: Visit, producer: dict[str, Any], lot: dict[str, Any] | None,
              values: dict[str, str], outcome: api.Outcome | None = None,
              status: int = 200) -> Response:
    held = [c["standard"] for c in producer["certifications"] if c["validToday"]]
    # A draft may name any standard; the ones held today come first, so a new lot starts
    # on one it can be published under.
    standards = held + [s for s in STANDARDS if s not in held]
    return visit.render("cooperative/lot_form.html", status=status, producer=producer,
                        lot=lot, values=values, held=held, standards=standards,
                        errors=outcome.by_field if outcome else {},
                        general=outcome.general if outcome else [],
                        can_draft=api.offers_mutation("createListingDraft"))


def form_values(lot: dict[str, Any], formats: Formats) -> dict[str, str]:
    """A lot as the form shows it: decimals with the language's mark, as a person types them."""
    site = lot["mineSite"]
    return {"standard": lot["standard"], "form": lot["form"],
            "grossWeight": lot["grossWeight"]["grams"].replace(".", formats.decimal_mark),
            "fineness": lot["fineness"].replace(".", formats.decimal_mark),
            "mineSite.name": site["name"], "mineSite.region": site["region"],
            "mineSite.country": site["country"], "mineSite.latitude": site["latitude"] or "",
            "mineSite.longitude": site["longitude"] or "",
            "mercuryFree": "on" if lot["mercuryFree"] else "",
            "assayReference": lot["assayReference"]}


def lot_input(producer_id: str, values: dict[str, str]) -> dict[str, Any]:
    """The form's fields as PublishListingInput (also a draft's)."""
    return {"producerId": producer_id, **lot_fields(values)}


def lot_fields(values: dict[str, str]) -> dict[str, Any]:
    """What the form says about the lot; empty coordinates are left out."""
    site = {"name": values.get("mineSite.name", ""), "region": values.get("mineSite.region", ""),
            "country": values.get("mineSite.country", "").strip().upper()}
    for axis in ("latitude", "longitude"):
        if values.get(f"mineSite.{axis}", "").strip():
            site[axis] = decimal_input(values[f"mineSite.{axis}"])
    return {"standard": values.get("standard", ""), "form": values.get("form", ""),
            "grossWeight": decimal_input(values.get("grossWeight", "")),
            "fineness": decimal_input(values.get("fineness", "")), "mineSite": site,
            "mercuryFree": values.get("mercuryFree") == "on",
            "assayReference": values.get("assayReference", "")}


def order_action(visit: Visit, order_id: str, action: str) -> Response:
    if action == "ship":
        outcome = visit.api.mutate(SHIP, {"shipmentReference"}, input={
            "orderId": order_id,
            "shipmentReference": visit.form.get("shipmentReference", "")})
        flash = "order-shipped"
    elif action == "decline" and api.offers_mutation("declineOrder"):
        outcome = visit.api.mutate(DECLINE, {"reason"}, input={
            "orderId": order_id, "reason": visit.form.get("reason", "")})
        flash = "order-declined"
    else:
        return not_offered(visit)
    if outcome.ok:
        return visit.redirect("/cooperative#orders", flash=flash)
    return home(visit, errors={order_id: {**outcome.by_field, "": outcome.general}},
                status=422)


def withdraw_lot(visit: Visit, lot_id: str) -> Response:
    if not api.offers_mutation("withdrawListing"):
        return not_offered(visit)
    withdrawal: dict[str, Any] = {"listingId": lot_id}
    if visit.form.get("reason", "").strip():
        withdrawal["reason"] = visit.form["reason"]
    outcome = visit.api.mutate(WITHDRAW, {"reason"}, input=withdrawal)
    if outcome.ok:
        return visit.redirect("/cooperative#lots", flash="lot-withdrawn")
    return home(visit, errors={lot_id: {**outcome.by_field, "": outcome.general}}, status=422)
