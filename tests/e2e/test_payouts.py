"""Payouts through the gateway over HTTP: finance filters, pages, approves and reconciles,
and takes a premium back under an idempotency key; a producer reads its own payouts and moves
no money; administrators do not pay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from nameko.testing.utils import get_container

from gateway.service import GatewayService
from services.payouts.domain import reversal_key
from services.payouts.service import PayoutsService
from services.payouts.stripe_local import StripeLocal
from shared.caller import Role
from tests.helpers import GraphQL
from tests.integration import test_payouts as harness
from tests.integration.test_payouts import Flow

# The payouts harness's fixtures, used here under the same names.
stripe_server = harness.stripe_server
payouts_config = harness.payouts_config

PAYOUTS = """
query ($filter: PayoutFilter, $first: Int, $after: String) {
  payouts(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id status amount { amount currency } producerId approvalsNeeded } }
    pageInfo { hasNextPage endCursor }
  }
}"""
PAYOUT = """
query ($id: ID!) {
  payout(id: $id) {
    id status transferId attempt idempotencyKey approvals reversedAmount { amount }
    history { action fromStatus toStatus actor }
  }
}"""
APPROVE = """
mutation ($input: ApprovePayoutInput!) {
  approvePayout(input: $input) { payout { id status approvals } errors { field code message } }
}"""
REVERSE = """
mutation ($input: ReversePayoutInput!) {
  reversePayout(input: $input) {
    payout { id status reversedAmount { amount } } errors { field code message }
  }
}"""
ONBOARD = """
mutation ($input: CreateStripeOnboardingLinkInput!) {
  createStripeOnboardingLink(input: $input) {
    link { url stripeAccountId } errors { field code message }
  }
}"""
RECONCILE = """
mutation ($input: RunReconciliationInput!) {
  runReconciliation(input: $input) {
    reconciliation {
      id status counts { matched missingInStripe }
      byStandard { key vetaPaid { amount currency } stripePaid { amount } }
      lines(first: 1) { edges { node { id status kind } } pageInfo { hasNextPage endCursor } }
      csv chartSvg
    }
    errors { field code message }
  }
}"""


@pytest.fixture
def system(runner_factory: Any, payouts_config: dict[str, Any],
           stripe_server: StripeLocal) -> tuple[GraphQL, Flow]:
    runner = runner_factory(payouts_config, PayoutsService, GatewayService)
    runner.start()
    flow = Flow(payouts_config, stripe_server, get_container(runner, PayoutsService))
    return GraphQL(payouts_config), flow


def test_finance_filters_pages_and_approves_payouts_over_graphql(
        system: tuple[GraphQL, Flow]) -> None:
    graphql, flow = system
    producer = flow.producer()
    funded = [flow.funded(producer_id=producer)["id"] for _ in range(2)]
    seen: list[str] = []
    after = None
    for _ in range(2):
        body = graphql.run(PAYOUTS, {"filter": {"producerId": producer, "status": ["FUNDED"]},
                                     "first": 1, "after": after}, role=Role.FINANCE)
        page = body["data"]["payouts"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(funded) and page["pageInfo"]["hasNextPage"] is False
    assert graphql.run(PAYOUTS, {"filter": {"producerId": producer, "status": ["PAID"]}},
                       role=Role.FINANCE)["data"]["payouts"]["edges"] == []

    body = graphql.run(APPROVE, {"input": {"payoutId": funded[0]}}, role=Role.ADMIN)
    assert body["data"]["approvePayout"]["errors"][0]["code"] == "FORBIDDEN"
    body = graphql.run(APPROVE, {"input": {"payoutId": funded[0]}}, role=Role.FINANCE)
    assert body["data"]["approvePayout"]["errors"] == []
    flow.reaches(funded[0], "PAID")
    payout = graphql.run(PAYOUT, {"id": funded[0]}, role=Role.FINANCE)["data"]["payout"]
    assert (payout["status"], payout["attempt"]) == ("PAID", 1)
    assert payout["idempotencyKey"] == f"veta-premium-{funded[0]}-transfer-1"
    assert [step["toStatus"] for step in payout["history"]] == [
        "CALCULATED", "FUNDED", "APPROVED", "SUBMITTED", "PAID"]

    period = datetime.now(UTC).strftime("%Y-%m")
    body = graphql.run(RECONCILE, {"input": {"period": period}}, role=Role.FINANCE)
    assert body["data"]["runReconciliation"]["errors"] == []
    run = body["data"]["runReconciliation"]["reconciliation"]
    assert run["status"] == "DONE" and run["counts"]["matched"] >= 2
    assert run["lines"]["pageInfo"]["hasNextPage"] is True
    assert run["csv"].splitlines()[0].startswith("status,kind,obligation_id")
    assert funded[0] in run["csv"] and run["chartSvg"].startswith("<svg")
    body = graphql.run(RECONCILE, {"input": {"period": period}}, role=Role.ADMIN)
    assert body["data"]["runReconciliation"]["errors"][0]["code"] == "FORBIDDEN"


def test_a_producer_reads_its_own_payouts_and_moves_no_money(
        system: tuple[GraphQL, Flow]) -> None:
    graphql, flow = system
    mine, theirs = flow.producer(onboard=False), flow.producer(onboard=False)
    own = flow.deliver(mine, flow.buyer())
    other = flow.deliver(theirs, flow.buyer())

    body = graphql.run(PAYOUTS, {}, role=Role.PRODUCER, organisation=mine)
    assert [e["node"]["id"] for e in body["data"]["payouts"]["edges"]] == [own["id"]]
    body = graphql.run(PAYOUT, {"id": other["id"]}, role=Role.PRODUCER, organisation=mine)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    body = graphql.run(APPROVE, {"input": {"payoutId": own["id"]}}, role=Role.PRODUCER,
                       organisation=mine)
    assert body["data"]["approvePayout"]["errors"][0]["code"] == "FORBIDDEN"
    body = graphql.run(PAYOUTS, {}, role=Role.BUYER, organisation="refinery-1")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    body = graphql.run(ONBOARD, {"input": {"producerId": mine}}, role=Role.PRODUCER,
                       organisation=mine)
    link = body["data"]["createStripeOnboardingLink"]
    assert link["errors"] == [] and link["link"]["url"].startswith(flow.server.url)
    body = graphql.run(ONBOARD, {"input": {"producerId": theirs}}, role=Role.PRODUCER,
                       organisation=mine)
    assert body["data"]["createStripeOnboardingLink"]["errors"][0]["code"] == "FORBIDDEN"


def test_a_reversal_sent_twice_under_one_idempotency_key_is_made_once_over_graphql(
        system: tuple[GraphQL, Flow]) -> None:
    graphql, flow = system
    paid = flow.paid("100.000")  # USD 400.00
    ask = {"payoutId": paid["id"], "amount": "100.00", "reason": "assay corrected",
           "idempotencyKey": "finance-script-42"}
    for _ in range(2):
        body = graphql.run(REVERSE, {"input": ask}, role=Role.FINANCE)["data"]["reversePayout"]
        assert body["errors"] == []
        assert body["payout"]["reversedAmount"]["amount"] == "100.00"
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    assert (transfer.amount_reversed, len(transfer.reversals.data)) == (10000, 1)

    def refusal(changes: dict[str, Any]) -> tuple[str, str]:
        body = graphql.run(REVERSE, {"input": {**ask, **changes}}, role=Role.FINANCE)
        [error] = body["data"]["reversePayout"]["errors"]
        return error["field"], error["code"]

    assert refusal({"amount": "50.00"}) == ("idempotencyKey", "CONFLICT")
    assert refusal({"reason": "buyer refunded"}) == ("idempotencyKey", "CONFLICT")
    assert refusal({"idempotencyKey": ""}) == ("idempotencyKey", "BAD_USER_INPUT")
    assert refusal({"idempotencyKey": "k" * 65}) == ("idempotencyKey", "BAD_USER_INPUT")
    assert flow.get(paid["id"])["reversed_amount"] == "100.00"

    # Without a key the gateway makes one up per call (as for placeOrder), so the call is
    # named by itself rather than by the amount and the total reversed so far, which a
    # redelivered call would find moved.
    del ask["idempotencyKey"]
    body = graphql.run(REVERSE, {"input": {**ask, "amount": "50.00"}}, role=Role.FINANCE)
    assert body["data"]["reversePayout"]["errors"] == []
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    newest = transfer.to_dict()["reversals"]["data"][0]
    assert newest["amount"] == 5000
    key = newest["metadata"]["idempotency_key"]
    assert key.startswith(f"veta-premium-{paid['id']}-reversal-")
    assert key != reversal_key(paid["id"], 10000, 5000)
