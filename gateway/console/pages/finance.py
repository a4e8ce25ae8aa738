"""Finance staff's pages: premium obligations by state (failures and holds first), one
obligation with its approvals and history and what can be done to it (including taking a paid
premium back), a chart of premiums, and reconciliation runs with a chart of their totals.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Response

from gateway.console import api, drawings
from gateway.console.i18n import decimal_input, to_decimal
from gateway.console.pages.access import not_offered, refused
from gateway.console.web import Visit

PAYOUTS = """
query Payouts($after: String) {
  payouts(first: 100, after: $after) {
    edges { node {
      id orderId standard status deliveredOn createdAt
      fineWeight { grams } ratePerKg { amount currency } amount { amount currency }
      producer { id name }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

# Failed and held obligations, wherever they fall in the pages of all of them: each needs a
# person (a retry, or a hold released with a reason).
ATTENTION = """
query Attention {
  payouts(filter: {status: [FAILED, ON_HOLD]}, first: 50) {
    edges { node {
      id status deliveredOn amount { amount currency } producer { id name }
      failure { stage code message retryable nextAttemptAt }
      hold { reason heldAt }
    } }
    pageInfo { hasNextPage }
  }
}"""

PAYOUT = """
query Payout($id: ID!) {
  payout(id: $id) {
    id orderId buyerId standard status deliveredOn createdAt fundedAt paidAt
    paymentIntentId transferId attempt idempotencyKey approvals approvalsNeeded
    fineWeight { grams } ratePerKg { amount currency } amount { amount currency }
    reversedAmount { amount currency }
    producer { id name }
    failure { stage code message retryable failures nextAttemptAt }
    hold { reason heldFrom heldAt }
    history { action fromStatus toStatus actor at reason }
  }
}"""

# What finance can do to an obligation, by the mutation the API keeps for it; each action is
# offered only once the API serves its mutation.
ACTIONS = {"approve": "approvePayout", "reject": "rejectPayout",
           "release": "releasePayoutHold", "retry": "retryPayout",
           "reverse": "reversePayout"}
# The fields of an action's form; the API's error naming one of them is shown beside it, and
# one naming the payout itself (or the reversal form's hidden key) beside the action's button.
ACTION_FIELDS = {"reason", "payoutId", "amount", "idempotencyKey"}
# What a PAID premium can be taken back from (after a part, the rest stays reversible).
REVERSIBLE = {"PAID", "REVERSED"}

APPROVE = """
mutation Approve($input: ApprovePayoutInput!) {
  approvePayout(input: $input) { payout { id status } errors { field code message } }
}"""

REJECT = """
mutation Reject($input: RejectPayoutInput!) {
  rejectPayout(input: $input) { payout { id status } errors { field code message } }
}"""

RELEASE = """
mutation Release($input: ReleasePayoutHoldInput!) {
  releasePayoutHold(input: $input) { payout { id status } errors { field code message } }
}"""

RETRY = """
mutation Retry($input: RetryPayoutInput!) {
  retryPayout(input: $input) { payout { id status } errors { field code message } }
}"""

REVERSE = """
mutation Reverse($input: ReversePayoutInput!) {
  reversePayout(input: $input) {
    payout { id status reversedAmount { amount currency } }
    errors { field code message }
  }
}"""
# The document each action but a reversal runs: its input is the payout and a reason.
ACTION_DOCUMENTS = {"approve": APPROVE, "reject": REJECT, "release": RELEASE, "retry": RETRY}

RECONCILIATIONS = """
query Reconciliations {
  reconciliations(first: 20) {
    edges { node {
      id period status startedBy startedAt
      counts { matched missingInStripe missingInVeta amountMismatch currencyMismatch duplicate }
    } }
  }
}"""

RECONCILIATION = """
query Reconciliation($id: ID!, $after: String) {
  reconciliation(id: $id) {
    id period source status startedBy startedAt finishedAt error
    counts { matched missingInStripe missingInVeta amountMismatch currencyMismatch duplicate }
    byProducer { ...Total }
    byMonth { ...Total }
    lines(first: 100, after: $after) {
      edges { node {
        id seq status kind obligationId producerId month vetaStripeId stripeId
        vetaAmount { amount currency } stripeAmount { amount currency }
        resolution resolvedBy resolvedAt
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}

fragment Total on ReconciliationTotal {
  key currency discrepancies vetaPaid { amount currency } stripePaid { amount currency }
}"""

# The run's totals name producers by id; the chart names them.
PRODUCER_NAME = """
query ProducerName($id: ID!) { producer(id: $id) { id name } }"""
# Cooperatives drawn one by one in a run's chart; the others are added up in one row.
CHART_PRODUCERS = 8

RECONCILIATION_CSV = """
query ReconciliationCsv($id: ID!) { reconciliation(id: $id) { id period csv } }"""

RUN_RECONCILIATION = """
mutation Run($input: RunReconciliationInput!) {
  runReconciliation(input: $input) { reconciliation { id } errors { field code message } }
}"""

RESOLVE = """
mutation Resolve($input: ResolveDiscrepancyInput!) {
  resolveDiscrepancy(input: $input) { line { id resolution } errors { field code message } }
}"""

PERIOD = re.compile(r"\d{4}(-\d{2})?")
MONTH = re.compile(r"\d{4}-\d{2}")
LINE_STATUSES = {"MATCHED", "MISSING_IN_STRIPE", "MISSING_IN_VETA", "AMOUNT_MISMATCH",
                 "CURRENCY_MISMATCH", "DUPLICATE"}


def home(visit: Visit) -> Response:
    data = visit.api.query(PAYOUTS, after=visit.request.args.get("after") or None)
    payouts = [edge["node"] for edge in data["payouts"]["edges"]]
    counts = Counter(payout["status"] for payout in payouts)
    shown = visit.request.args.get("status", "")
    listed = [payout for payout in payouts if not shown or payout["status"] == shown]
    attention = visit.api.query(ATTENTION)["payouts"]
    return visit.render("finance/home.html", payouts=listed, counts=counts,
                        total=len(payouts), shown=shown, page_info=data["payouts"]["pageInfo"],
                        chart=drawings.premium_chart(payouts),
                        attention=[edge["node"] for edge in attention["edges"]],
                        more_attention=attention["pageInfo"]["hasNextPage"],
                        can_retry=api.offers_mutation(ACTIONS["retry"]),
                        can_release=api.offers_mutation(ACTIONS["release"]))


def payout(visit: Visit, payout_id: str, failed: str | None = None,
           errors: dict[str, list[str]] | None = None, general: list[str] | None = None
           ) -> Response:
    """One obligation: its figures, the approvals it has and needs, what can be done to it
    now, and its history. `failed` names the action whose form the API refused."""
    data = visit.api.query(PAYOUT, id=payout_id)
    found = data["payout"]
    if found is None:
        return refused(visit, 404, "NOT_FOUND")
    actions = {name for name, mutation in ACTIONS.items() if api.offers_mutation(mutation)}
    me = visit.caller.subject if visit.caller else ""
    refused_here = bool(errors or general)
    # What is still with the cooperative: the most a reversal can take back.
    left = (to_decimal(found["amount"]["amount"]) or Decimal(0)) - (
        to_decimal(found["reversedAmount"]["amount"]) or Decimal(0))
    # The reversal form names its request when it is drawn, so that sending it twice (a
    # double click, or again after Stripe's answer was lost) is one reversal; a refused
    # form keeps the key it was sent with.
    reversal_key = (visit.form.get("idempotencyKey") if failed == "reverse" else None) or str(
        uuid.uuid4())
    return visit.render(
        "finance/payout.html", status=422 if refused_here else 200, p=found,
        actions=actions, me=me, failed=failed, errors=errors or {}, general=general or [],
        values=dict(visit.form) if refused_here else {}, reversal_key=reversal_key,
        left={"amount": str(left), "currency": found["amount"]["currency"]},
        can_reverse="reverse" in actions and found["status"] in REVERSIBLE and left > 0)


def payout_action(visit: Visit, payout_id: str, action: str) -> Response:
    if visit.request.method != "POST":
        # The address a refused form was shown at (the language links lead back to it).
        return visit.redirect(f"/finance/payouts/{payout_id}")
    mutation = ACTIONS.get(action)
    if mutation is None or not api.offers_mutation(mutation):
        return not_offered(visit)
    if action == "reverse":
        outcome = visit.api.mutate(REVERSE, ACTION_FIELDS, input=reversal(visit, payout_id))
        if outcome.ok:
            return visit.redirect(f"/finance/payouts/{payout_id}", flash="payout-reverse")
        return payout(visit, payout_id, failed=action, errors=outcome.by_field,
                      general=outcome.general)
    input_: dict[str, Any] = {"payoutId": payout_id}
    if visit.form.get("reason", "").strip():
        input_["reason"] = visit.form["reason"]
    outcome = visit.api.mutate(ACTION_DOCUMENTS[action], ACTION_FIELDS, input=input_)
    if outcome.ok:
        return visit.redirect(f"/finance/payouts/{payout_id}", flash=f"payout-{action}")
    return payout(visit, payout_id, failed=action, errors=outcome.by_field,
                  general=outcome.general)


def reversal(visit: Visit, payout_id: str) -> dict[str, Any]:
    """The reversal asked for: an amount in either decimal mark, or none for all that is
    left; the reason always goes (the API says when it is missing, beside its field), and
    so does the key the form was drawn with."""
    input_: dict[str, Any] = {"payoutId": payout_id,
                              "reason": visit.form.get("reason", "").strip()}
    if visit.form.get("idempotencyKey"):
        input_["idempotencyKey"] = visit.form["idempotencyKey"]
    amount = visit.form.get("amount", "").strip()
    if amount:
        input_["amount"] = decimal_input(amount)
    return input_


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def reconciliations(visit: Visit) -> Response:
    """The runs so far, and a form to run a period (a month or a year)."""
    if not api.offers_query("reconciliations"):
        return not_offered(visit)
    values = {"period": this_month()}
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if visit.request.method == "POST":
        if not api.offers_mutation("runReconciliation"):
            return not_offered(visit)
        values = {"period": visit.form.get("period", "").strip()}
        outcome = visit.api.mutate(RUN_RECONCILIATION, {"period"},
                                   input={"period": values["period"]})
        if outcome.ok:
            return visit.redirect(f"/finance/reconciliations/{outcome.result['id']}",
                                  flash="reconciliation-run")
        errors, general = outcome.by_field, outcome.general
    data = visit.api.query(RECONCILIATIONS)
    return visit.render("finance/reconciliations.html",
                        status=422 if errors or general else 200,
                        runs=[edge["node"] for edge in data["reconciliations"]["edges"]],
                        values=values, errors=errors, general=general,
                        can_run=api.offers_mutation("runReconciliation"))


def reconciliation(visit: Visit, run_id: str, line_id: str | None = None,
                   errors: dict[str, list[str]] | None = None,
                   general: list[str] | None = None) -> Response:
    """One run: its counts and its lines, each discrepancy with a form to resolve it."""
    data = visit.api.query(RECONCILIATION, id=run_id,
                           after=visit.request.args.get("after") or None)
    run = data["reconciliation"]
    if run is None:
        return refused(visit, 404, "NOT_FOUND")
    shown = visit.request.args.get("status", "")
    lines = [edge["node"] for edge in run["lines"]["edges"]]
    listed = [line for line in lines if not shown or line["status"] == shown]
    refused_here = bool(errors or general)
    by_producer = drawings.paid_pairs(run["byProducer"], limit=CHART_PRODUCERS)
    by_month = sorted(drawings.paid_pairs(run["byMonth"]), key=lambda row: str(row["key"]))
    for row in by_month:
        row["is_month"] = bool(MONTH.fullmatch(str(row["key"])))
    return visit.render("finance/reconciliation.html", status=422 if refused_here else 200,
                        run=run, lines=listed, shown=shown, failed_line=line_id,
                        by_producer=by_producer, by_month=by_month,
                        names=producer_names(visit, [row["key"] for row in by_producer]),
                        errors=errors or {}, general=general or [],
                        values=dict(visit.form) if refused_here else {},
                        can_resolve=api.offers_mutation("resolveDiscrepancy"))


def producer_names(visit: Visit, ids: list[str | None]) -> dict[str, str]:
    """Names of the few producers a chart draws (at most CHART_PRODUCERS lookups, which the
    visit's loader caches); an id the API does not know is shown as it is."""
    names = {}
    for producer_id in ids:
        if producer_id:
            found = visit.api.query(PRODUCER_NAME, id=producer_id)["producer"]
            if found is not None:
                names[producer_id] = found["name"]
    return names


def resolve(visit: Visit, run_id: str, line_id: str) -> Response:
    if visit.request.method != "POST":
        return visit.redirect(f"/finance/reconciliations/{run_id}")
    if not api.offers_mutation("resolveDiscrepancy"):
        return not_offered(visit)
    outcome = visit.api.mutate(RESOLVE, {"note", "lineId"}, input={
        "lineId": line_id, "note": visit.form.get("note", "")})
    if outcome.ok:
        shown = visit.request.args.get("status", "")
        query = f"?status={shown}" if shown in LINE_STATUSES else ""
        return visit.redirect(f"/finance/reconciliations/{run_id}{query}#line-{line_id}",
                              flash="discrepancy-resolved")
    return reconciliation(visit, run_id, line_id, outcome.by_field, outcome.general)


def reconciliation_csv(visit: Visit, run_id: str) -> Response:
    """Every line of the run as the API writes it, as a file to save."""
    data = visit.api.query(RECONCILIATION_CSV, id=run_id)
    run = data["reconciliation"]
    if run is None:
        return refused(visit, 404, "NOT_FOUND")
    period = run["period"] if PERIOD.fullmatch(run["period"]) else "period"
    response = Response(run["csv"], mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="veta-reconciliation-{period}-{run["id"][:8]}.csv"'})
    return visit.finish(response)
