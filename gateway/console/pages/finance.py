"""Finance staff's pages: premium obligations by state with what can be done to each, a chart
of premiums per producer and month, and reconciliation runs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from werkzeug.wrappers import Response

from gateway.console import api, drawings
from gateway.console.pages.access import not_offered
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

# What finance can do to an obligation, by the mutation the API keeps for it; each action is
# offered only once the API serves its mutation.
ACTIONS = {"approve": "approvePayout", "reject": "rejectPayout",
           "release": "releasePayoutHold", "retry": "retryPayout"}

RECONCILIATIONS = """
query Reconciliations {
  reconciliations(first: 20) { edges { node { id period status } } }
}"""


def home(visit: Visit, errors: dict[str, list[str]] | None = None,
         status: int = 200) -> Response:
    data = visit.api.query(PAYOUTS, after=visit.request.args.get("after") or None)
    payouts = [edge["node"] for edge in data["payouts"]["edges"]]
    counts = Counter(payout["status"] for payout in payouts)
    shown = visit.request.args.get("status", "")
    listed = [payout for payout in payouts if not shown or payout["status"] == shown]
    actions = {name: mutation for name, mutation in ACTIONS.items()
               if api.offers_mutation(mutation)}
    return visit.render("finance/home.html", status=status, payouts=listed, counts=counts,
                        total=len(payouts), shown=shown, page_info=data["payouts"]["pageInfo"],
                        chart=drawings.premium_chart(payouts), actions=actions,
                        errors=errors or {})


def payout_action(visit: Visit, payout_id: str, action: str) -> Response:
    mutation = ACTIONS.get(action)
    if mutation is None or not api.offers_mutation(mutation):
        return not_offered(visit)
    input_: dict[str, Any] = {"payoutId": payout_id}
    if visit.form.get("reason", "").strip():
        input_["reason"] = visit.form["reason"]
    document = (f"mutation Act($input: {mutation[0].upper()}{mutation[1:]}Input!) "
                f"{{ {mutation}(input: $input) {{ errors {{ field code message }} }} }}")
    outcome = visit.api.mutate(document, set(), input=input_)
    if outcome.ok:
        return visit.redirect("/finance", flash="payout-changed")
    return home(visit, errors={payout_id: outcome.general}, status=422)


def reconciliations(visit: Visit) -> Response:
    if not api.offers_query("reconciliations"):
        return not_offered(visit)
    data = visit.api.query(RECONCILIATIONS)
    return visit.render("finance/reconciliations.html",
                        runs=[edge["node"] for edge in data["reconciliations"]["edges"]])
