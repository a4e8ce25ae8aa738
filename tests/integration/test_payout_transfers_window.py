"""A premium transfer Stripe may have made but never confirmed, sent again after Stripe may
have forgotten its idempotency key, over real RabbitMQ and PostgreSQL and the local Stripe
server: the transfer Stripe made is found among the order's transfers and recorded, never
made a second time; within the key's window the same key is sent again and replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from services.payouts.config import PayoutSettings
from services.payouts.domain import transfer_key
from services.payouts.stripe_api import StripeApi
from services.payouts.stripe_local import StripeLocal
from shared.clock import clock_of
from tests.helpers import eventually
from tests.integration import test_payouts as harness
from tests.integration.test_payouts import Flow

# The payouts harness's fixtures, used here under the same names.
stripe_server = harness.stripe_server
payouts_config = harness.payouts_config
flow = harness.flow

TRANSFERS = "/v1/transfers"
# Stripe forgets a key 24 hours after its first use (the local server by its own clock).
A_DAY_LATER = timedelta(hours=24, minutes=5)


def clocks_at(flow: Flow, at: datetime) -> None:
    """Move payouts' clock and Stripe's to `at`."""
    clock_of(flow.container).move_to(at)
    flow.server.clock = lambda: int(at.timestamp())


def transfer_calls(flow: Flow, obligation: dict[str, Any],
                   since: int = 0) -> list[tuple[str, str, bool]]:
    """What payouts asked Stripe about this premium's transfer, in order: ("list", order,
    False) for a look through its order's transfers, ("send", key, replayed) for a transfer."""
    calls = []
    for r in flow.server.requests[since:]:
        if r.path != TRANSFERS:
            continue
        if r.method == "GET" and f"transfer_group={obligation['order_id']}" in r.query.split("&"):
            calls.append(("list", obligation["order_id"], False))
        elif r.method == "POST" and (r.idempotency_key or "").startswith(
                f"veta-premium-{obligation['id']}-transfer-"):
            calls.append(("send", str(r.idempotency_key), r.replayed))
    return calls


def unanswered(flow: Flow, made_by_stripe: bool = True) -> tuple[dict[str, Any], datetime]:
    """An approved premium whose transfer Stripe made (or never received) while both its reply
    and its transfer.created webhook were lost: SUBMITTED, and payouts' clock stands still
    until the test moves it (so nothing is sent again before then)."""
    obligation = flow.funded()
    flow.server.auto_deliver_webhooks = False  # nothing but Stripe's API can tell Veta
    sent_at = datetime.now(UTC)
    clock_of(flow.container).move_to(sent_at)
    flow.server.fail_next(TRANSFERS, error="network", method="POST",
                          after_execution=made_by_stripe)
    flow.approve(obligation["id"])
    submitted: dict[str, Any] = eventually(
        lambda: once_it_has(flow, obligation["id"], "TRANSFER_UNANSWERED"))
    assert (submitted["status"], submitted["transfer_id"], submitted["attempt"]) == (
        "SUBMITTED", None, 1)
    return submitted, sent_at


def once_it_has(flow: Flow, obligation_id: str, action: str) -> dict[str, Any] | None:
    """The obligation, once its history has a row of `action`."""
    found = flow.get(obligation_id)
    return found if any(h["action"] == action for h in found["history"]) else None


def looked_in_vain(flow: Flow, obligation_id: str) -> dict[str, Any] | None:
    """The obligation, once its last history row says Stripe did not list the transfers."""
    found = flow.get(obligation_id)
    last = found["history"][-1]
    unlisted = last["action"] == "TRANSFER_UNANSWERED" and "listing the order's transfers" in (
        last["reason"] or "")
    return found if unlisted else None


def paid_rows(obligation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["actor"], h["reason"]) for h in obligation["history"] if h["action"] == "PAID"]


def test_a_transfer_whose_reply_and_webhook_were_lost_is_found_at_stripe_a_day_later(
        flow: Flow) -> None:
    submitted, sent_at = unanswered(flow)
    [made] = flow.transfers_of(submitted["id"])  # Stripe made it; Veta does not know
    mark = len(flow.server.requests)

    clocks_at(flow, sent_at + A_DAY_LATER)  # the same key would now make a second transfer
    paid = flow.reaches(submitted["id"], "PAID")
    assert (paid["transfer_id"], paid["attempt"]) == (made.id, 1)
    assert transfer_calls(flow, paid, mark) == [("list", paid["order_id"], False)]
    assert [t.id for t in flow.transfers_of(paid["id"])] == [made.id]
    assert paid_rows(paid) == [("payouts", f"transfer {made.id}")]

    # The lost webhook, delivered at last, finds it recorded and changes nothing.
    [event] = [e.id for e in flow.client.v1.events.list({"type": "transfer.created"}).data
               if e.data.object.id == made.id]
    assert flow.server.deliver(event) == {flow.webhook_url: 200}
    assert flow.get(paid["id"])["history"] == paid["history"]


def test_within_the_keys_window_a_lost_reply_is_sent_again_under_the_same_key(
        flow: Flow) -> None:
    submitted, sent_at = unanswered(flow)
    [made] = flow.transfers_of(submitted["id"])

    clocks_at(flow, sent_at + timedelta(hours=1))
    paid = flow.reaches(submitted["id"], "PAID")
    key = transfer_key(paid["id"], 1)
    # No look at Stripe's transfers: the key still replays what Stripe made.
    assert transfer_calls(flow, paid) == [("send", key, False), ("send", key, True)]
    assert paid["transfer_id"] == made.id
    assert [t.id for t in flow.transfers_of(paid["id"])] == [made.id]


def test_a_transfer_stripe_never_received_is_made_once_when_sent_again_a_day_later(
        flow: Flow) -> None:
    submitted, sent_at = unanswered(flow, made_by_stripe=False)
    assert flow.transfers_of(submitted["id"]) == []

    clocks_at(flow, sent_at + A_DAY_LATER)
    paid = flow.reaches(submitted["id"], "PAID")
    [made] = flow.transfers_of(paid["id"])
    assert paid["transfer_id"] == made.id
    # Looked, found none, then sent under the attempt's own key.
    assert transfer_calls(flow, paid) == [("list", paid["order_id"], False),
                                          ("send", transfer_key(paid["id"], 1), False)]


def test_stripe_not_listing_the_orders_transfers_a_day_later_sends_nothing_until_it_does(
        flow: Flow) -> None:
    submitted, sent_at = unanswered(flow)
    [made] = flow.transfers_of(submitted["id"])
    mark = len(flow.server.requests)

    later = sent_at + A_DAY_LATER
    flow.server.fail_next(TRANSFERS, error="api_error", method="GET")
    clocks_at(flow, later)
    waiting = eventually(lambda: looked_in_vain(flow, submitted["id"]))
    assert (waiting["status"], waiting["transfer_id"], waiting["attempt"]) == (
        "SUBMITTED", None, 1)
    assert "nothing sent" in waiting["history"][-1]["reason"]
    assert transfer_calls(flow, waiting, mark) == []  # the failed listing, and no send
    assert [t.id for t in flow.transfers_of(waiting["id"])] == [made.id]

    clocks_at(flow, later + timedelta(minutes=1))  # its backoff has passed: it looks again
    paid = flow.reaches(submitted["id"], "PAID")
    assert paid["transfer_id"] == made.id
    assert transfer_calls(flow, paid, mark) == [("list", paid["order_id"], False)]
    assert [t.id for t in flow.transfers_of(paid["id"])] == [made.id]


def test_a_new_attempt_whose_look_at_stripe_went_unanswered_looks_again_before_sending(
        flow: Flow) -> None:
    obligation = flow.funded()
    start = datetime.now(UTC)
    clock_of(flow.container).move_to(start)
    flow.server.fail_next(TRANSFERS, error="balance_insufficient", method="POST")
    flow.approve(obligation["id"])
    failed = flow.reaches(obligation["id"], "FAILED")  # attempt 1 refused; retried later
    assert (failed["failure"]["code"], failed["attempt"]) == ("balance_insufficient", 1)
    # A transfer naming the premium exists at Stripe all the same (made in the dashboard,
    # say), and its webhook is lost.
    flow.server.auto_deliver_webhooks = False
    made = flow.client.v1.transfers.create({
        "amount": 40000, "currency": "usd", "transfer_group": obligation["order_id"],
        "destination": flow.account(obligation["producer_id"])["stripe_account_id"],
        "metadata": {"obligation_id": obligation["id"]}})
    mark = len(flow.server.requests)

    flow.server.fail_next(TRANSFERS, error="api_error", method="GET")
    clock_of(flow.container).move_to(start + timedelta(minutes=1))  # attempt 2 is due
    waiting = eventually(lambda: looked_in_vain(flow, obligation["id"]))
    assert (waiting["status"], waiting["attempt"]) == ("SUBMITTED", 2)
    assert transfer_calls(flow, waiting, mark) == []

    # Sent again, attempt 2 looks first: its new key would be a second transfer.
    clock_of(flow.container).move_to(start + timedelta(minutes=2))
    paid = flow.reaches(obligation["id"], "PAID")
    assert (paid["transfer_id"], paid["attempt"]) == (made.id, 2)
    assert transfer_calls(flow, paid, mark) == [("list", paid["order_id"], False)]
    assert [t.id for t in flow.transfers_of(paid["id"])] == [made.id]


def test_the_look_at_stripe_walks_every_page_of_the_orders_transfers(
        stripe_server: StripeLocal) -> None:
    client = stripe.StripeClient(stripe_server.api_key,
                                 base_addresses={"api": stripe_server.url},
                                 max_network_retries=0)
    account = client.v1.accounts.create({
        "type": "express", "capabilities": {"transfers": {"requested": True}}}).id
    stripe_server.onboard_account(account)

    def made(obligation_id: str, order_id: str = "order-1") -> str:
        return client.v1.transfers.create({
            "amount": 100, "currency": "usd", "destination": account,
            "transfer_group": order_id, "metadata": {"obligation_id": obligation_id}}).id

    first = made("ob-1")  # the oldest, so on the last page
    for n in range(100):
        made(f"ob-other-{n}")
    made("ob-1", order_id="order-2")  # another order's transfers are not looked through

    api = StripeApi(PayoutSettings(api_key=stripe_server.api_key, api_base=stripe_server.url))
    assert [t["id"] for t in api.transfers_of("order-1", "ob-1")] == [first]
    pages = [r for r in stripe_server.requests if r.method == "GET"]
    assert len(pages) == 2
    assert all("transfer_group=order-1" in r.query.split("&") for r in pages)
