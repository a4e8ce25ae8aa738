"""Reversing a paid premium, over real RabbitMQ and PostgreSQL and the local Stripe server:
the history says who reversed how much and why whichever of Stripe's answer and its
transfer.reversed webhook is recorded first, and the amount is counted once; a request sent
again under its caller's idempotency key is never a second reversal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared.clock import clock_of
from shared.errors import Conflict, Unavailable
from tests.helpers import eventually
from tests.integration import test_payouts as harness
from tests.integration.test_payouts import Flow, rpc_by

# The payouts harness's fixtures, used here under the same names.
stripe_server = harness.stripe_server
payouts_config = harness.payouts_config
flow = harness.flow

REVERSALS = "/v1/transfers/*/reversals"


def reversals_in(obligation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["actor"], h["reason"]) for h in obligation["history"]
            if h["action"] == "REVERSED"]


def reversed_events(flow: Flow, transfer_id: str) -> list[str]:
    return [e.id for e in flow.client.v1.events.list({"type": "transfer.reversed"}).data
            if e.data.object.id == transfer_id]


def requests_kept(flow: Flow, obligation_id: str) -> list[tuple[Any, ...]]:
    engine = create_engine(flow.config["DATABASES"]["payouts"])
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT r.actor, r.reason, r.amount_cents, r.reversal_id, v.amount_cents "
            "FROM reversal_requests r LEFT JOIN reversals v ON v.id = r.reversal_id "
            "WHERE r.obligation_id = :id ORDER BY r.requested_at"), {"id": obligation_id})
        kept = [tuple(row) for row in rows]
    engine.dispose()
    return kept


def reversal_posts(flow: Flow) -> list[Any]:
    return [r for r in flow.server.requests
            if r.method == "POST" and r.path.endswith("/reversals")]


def reversal_lists(flow: Flow, transfer_id: str) -> list[Any]:
    return [r for r in flow.server.requests
            if r.method == "GET" and r.path == f"/v1/transfers/{transfer_id}/reversals"]


def reversed_payloads(flow: Flow, obligation_id: str) -> list[dict[str, Any]]:
    engine = create_engine(flow.config["DATABASES"]["payouts"])
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT payload FROM outbox WHERE event_type = 'premium_reversed' "
            "AND payload->>'obligation_id' = :id ORDER BY id"), {"id": obligation_id})
        payloads = [dict(row[0]) for row in rows]
    engine.dispose()
    return payloads


def test_a_webhook_applied_before_stripes_answer_records_finances_actor_and_reason(
        flow: Flow) -> None:
    paid = flow.paid("100.000")  # USD 400.00
    answer = flow.server.hold_next(REVERSALS, method="POST")
    with rpc_by(flow.config, "finance-ana") as rpc:
        reply = rpc.payouts.reverse_payout.call_async({
            "payout_id": paid["id"], "amount": "150.00", "reason": "assay corrected"})
        # Stripe has made the reversal and keeps its answer: its webhook is applied first.
        early = eventually(lambda: reversals_in(flow.get(paid["id"])))
        answer.set()
        part = reply.result()

    expected = [("finance-ana", "reversed in part: 15000 of 40000 cents (assay corrected)")]
    assert early == expected
    assert (part["status"], part["reversed_amount"], reversals_in(part)) == (
        "REVERSED", "150.00", expected)
    [sent] = [r for r in flow.server.requests if r.path.endswith("/reversals")]
    assert (sent.replayed, sent.status) == (False, 200)
    [event] = reversed_events(flow, paid["transfer_id"])
    assert flow.server.deliver(event) == {flow.webhook_url: 200}  # delivered again
    again = flow.get(paid["id"])
    assert (again["reversed_amount"], reversals_in(again)) == ("150.00", expected)
    [(actor, reason, amount, reversal_id, recorded)] = requests_kept(flow, paid["id"])
    assert (actor, reason, amount, recorded) == ("finance-ana", "assay corrected", 15000, 15000)
    assert reversal_id == flow.client.v1.transfers.retrieve(
        paid["transfer_id"]).reversals.data[0].id


def test_in_the_usual_order_the_answer_records_it_and_a_later_webhook_adds_nothing(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.auto_deliver_webhooks = False  # Stripe's webhooks wait for the test
    with rpc_by(flow.config, "finance-ana") as rpc:
        part = rpc.payouts.reverse_payout({"payout_id": paid["id"], "amount": "150.00",
                                           "reason": "assay corrected"})
    first = ("finance-ana", "reversed in part: 15000 of 40000 cents (assay corrected)")
    assert (part["reversed_amount"], reversals_in(part)) == ("150.00", [first])
    [event] = reversed_events(flow, paid["transfer_id"])
    assert flow.server.deliver(event) == {flow.webhook_url: 200}
    later = flow.get(paid["id"])
    assert (later["reversed_amount"], reversals_in(later)) == ("150.00", [first])

    # The rest, the other way round, by someone else: both counted once, each in its name.
    flow.server.auto_deliver_webhooks = True
    answer = flow.server.hold_next(REVERSALS, method="POST")
    with rpc_by(flow.config, "finance-ben") as rpc:
        reply = rpc.payouts.reverse_payout.call_async({"payout_id": paid["id"],
                                                       "reason": "buyer refunded"})
        eventually(lambda: len(reversals_in(flow.get(paid["id"]))) == 2)
        answer.set()
        rest = reply.result()
    second = ("finance-ben", "reversed in full: 40000 of 40000 cents (buyer refunded)")
    assert (rest["reversed_amount"], reversals_in(rest)) == ("400.00", [first, second])
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    assert (transfer.amount_reversed, len(transfer.reversals.data)) == (40000, 2)


def test_a_lost_answer_is_recorded_from_the_webhook_and_asking_again_reverses_once(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.auto_deliver_webhooks = False
    # Stripe reverses it, then the connection drops before Veta reads the answer.
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(
            Unavailable, match="asking again cannot reverse it twice"):
        rpc.payouts.reverse_payout({"payout_id": paid["id"], "reason": "buyer refunded"})
    assert flow.get(paid["id"])["reversed_amount"] == "0.00"

    # Someone asks for the same again: the same request under the same key, replayed.
    with rpc_by(flow.config, "finance-ana") as rpc:
        done = rpc.payouts.reverse_payout({"payout_id": paid["id"], "reason": "duplicate ask"})
    in_bens_name = [("finance-ben",
                     "reversed in full: 40000 of 40000 cents (buyer refunded)")]
    assert (done["reversed_amount"], reversals_in(done)) == ("400.00", in_bens_name)
    sent = [r for r in flow.server.requests if r.path.endswith("/reversals")]
    assert [r.replayed for r in sent] == [False, True]
    assert len({r.idempotency_key for r in sent}) == 1

    [event] = reversed_events(flow, paid["transfer_id"])
    assert flow.server.deliver(event) == {flow.webhook_url: 200}
    after = flow.get(paid["id"])
    assert (after["reversed_amount"], reversals_in(after)) == ("400.00", in_bens_name)
    assert [r[:3] for r in requests_kept(flow, paid["id"])] == [
        ("finance-ben", "buyer refunded", 40000)]


def test_a_lost_answer_alone_is_recorded_in_finances_name_when_the_webhook_comes(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Unavailable):
        rpc.payouts.reverse_payout({"payout_id": paid["id"], "amount": "100.00",
                                    "reason": "short delivery"})
    recorded = flow.reaches(paid["id"], "REVERSED")
    assert (recorded["reversed_amount"], reversals_in(recorded)) == ("100.00", [
        ("finance-ben", "reversed in part: 10000 of 40000 cents (short delivery)")])


def test_a_reversal_made_in_stripes_dashboard_is_recorded_as_stripes(flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.client.v1.transfers.reversals.create(paid["transfer_id"], {"amount": 5000})
    recorded = flow.reaches(paid["id"], "REVERSED")
    assert reversals_in(recorded) == [("stripe", "reversed in part: 5000 of 40000 cents")]
    assert requests_kept(flow, paid["id"]) == []


def test_a_refused_reversal_keeps_stripes_refusal_and_changes_nothing(flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.fail_next(REVERSALS, error="balance_insufficient", method="POST")
    with rpc_by(flow.config, "finance-ana") as rpc, pytest.raises(
            Conflict, match="insufficient available funds"):
        rpc.payouts.reverse_payout({"payout_id": paid["id"], "reason": "buyer refunded"})
    after = flow.get(paid["id"])
    assert (after["status"], after["reversed_amount"], reversals_in(after)) == (
        "PAID", "0.00", [])
    engine = create_engine(flow.config["DATABASES"]["payouts"])
    with engine.connect() as connection:
        refusal = connection.execute(text(
            "SELECT refusal FROM reversal_requests WHERE obligation_id = :id"),
            {"id": paid["id"]}).scalar_one()
    engine.dispose()
    assert refusal.startswith("balance_insufficient: ")


# --- the caller's idempotency key ------------------------------------------------------------

def test_asked_again_with_its_key_after_the_webhook_recorded_a_lost_answer_reverses_once(
        flow: Flow) -> None:
    paid = flow.paid("100.000")  # USD 400.00
    ask = {"payout_id": paid["id"], "amount": "150.00", "reason": "assay corrected",
           "idempotency_key": "console-form-7"}
    # Stripe reverses it, the answer is lost, and the webhook records it in Ben's name.
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(
            Unavailable, match="asking again cannot reverse it twice"):
        rpc.payouts.reverse_payout(ask)
    recorded = flow.reaches(paid["id"], "REVERSED")
    in_bens_name = [("finance-ben", "reversed in part: 15000 of 40000 cents (assay corrected)")]
    assert reversals_in(recorded) == in_bens_name

    # The reversed total has moved; the same key still names the same request, so asking
    # again returns its outcome and Stripe is not asked a second time.
    with rpc_by(flow.config, "finance-ben") as rpc:
        again = rpc.payouts.reverse_payout(ask)
    assert (again["status"], again["reversed_amount"], reversals_in(again)) == (
        "REVERSED", "150.00", in_bens_name)
    assert len(reversal_posts(flow)) == 1
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    assert (transfer.amount_reversed, len(transfer.reversals.data)) == (15000, 1)
    assert [r[:3] for r in requests_kept(flow, paid["id"])] == [
        ("finance-ben", "assay corrected", 15000)]

    # The same key for another amount or another reason is a different request: refused.
    for other in ({"amount": "100.00"}, {"amount": None}, {"reason": "buyer refunded"}):
        with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Conflict) as refused:
            rpc.payouts.reverse_payout({k: v for k, v in {**ask, **other}.items()
                                        if v is not None})
        assert refused.value.field == "idempotency_key", other
    assert (flow.get(paid["id"])["reversed_amount"], len(reversal_posts(flow))) == ("150.00", 1)

    # A new key is a new reversal, even for the same amount and reason.
    with rpc_by(flow.config, "finance-ben") as rpc:
        second = rpc.payouts.reverse_payout({**ask, "idempotency_key": "console-form-8"})
    assert second["reversed_amount"] == "300.00"
    # The event carries finance's request: who asked and why.
    assert [(e["amount_reversed"], e["requested_by"], e["reason"])
            for e in reversed_payloads(flow, paid["id"])] == [
        ("150.00", "finance-ben", "assay corrected"),
        ("300.00", "finance-ben", "assay corrected")]


def test_asked_again_with_its_key_before_any_answer_resends_the_same_call_to_stripe(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.auto_deliver_webhooks = False  # nothing tells Veta what Stripe did
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    ask = {"payout_id": paid["id"], "reason": "buyer refunded", "idempotency_key": "k-1"}
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Unavailable):
        rpc.payouts.reverse_payout(ask)
    assert flow.get(paid["id"])["reversed_amount"] == "0.00"

    # Someone else sends the same request: Stripe replays what it did, in Ben's name.
    with rpc_by(flow.config, "finance-ana") as rpc:
        done = rpc.payouts.reverse_payout(ask)
    assert (done["reversed_amount"], reversals_in(done)) == ("400.00", [
        ("finance-ben", "reversed in full: 40000 of 40000 cents (buyer refunded)")])
    sent = reversal_posts(flow)
    assert [r.replayed for r in sent] == [False, True]
    assert len({r.idempotency_key for r in sent}) == 1
    assert reversal_lists(flow, paid["transfer_id"]) == []  # within a day the key replays
    [event] = reversed_events(flow, paid["transfer_id"])
    assert flow.server.deliver(event) == {flow.webhook_url: 200}
    assert flow.get(paid["id"])["reversed_amount"] == "400.00"
    # Asked again once all is back, it is still the same request's outcome, not a refusal.
    with rpc_by(flow.config, "finance-ana") as rpc:
        assert rpc.payouts.reverse_payout(ask)["reversed_amount"] == "400.00"
    assert len(reversal_posts(flow)) == 2


def test_a_refused_request_asked_again_with_its_key_answers_with_stripes_refusal(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.fail_next(REVERSALS, error="balance_insufficient", method="POST")
    ask = {"payout_id": paid["id"], "amount": "50.00", "reason": "short delivery",
           "idempotency_key": "k-2"}
    for _ in range(2):
        with rpc_by(flow.config, "finance-ana") as rpc, pytest.raises(
                Conflict, match="insufficient available funds"):
            rpc.payouts.reverse_payout(ask)
    # The refusal kept is the answer: sent again, Stripe (its fault used up) would have
    # reversed it.
    assert reversal_posts(flow) == []
    assert flow.get(paid["id"])["reversed_amount"] == "0.00"
    with rpc_by(flow.config, "finance-ana") as rpc:
        done = rpc.payouts.reverse_payout({**ask, "idempotency_key": "k-3"})
    assert (done["status"], done["reversed_amount"]) == ("REVERSED", "50.00")


# --- after Stripe has forgotten the key ------------------------------------------------------

def a_day_later(flow: Flow) -> None:
    """Move payouts' clock and Stripe's a day on: Stripe no longer knows the key."""
    later = datetime.now(UTC) + timedelta(hours=24, minutes=5)
    clock_of(flow.container).move_to(later)
    flow.server.clock = lambda: int(later.timestamp())


def test_a_request_sent_again_after_stripe_forgot_its_key_records_the_reversal_it_made(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.auto_deliver_webhooks = False  # nothing tells Veta what Stripe did
    clock_of(flow.container).move_to(datetime.now(UTC))
    ask = {"payout_id": paid["id"], "amount": "150.00", "reason": "assay corrected",
           "idempotency_key": "console-form-9"}
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Unavailable):
        rpc.payouts.reverse_payout(ask)

    a_day_later(flow)
    with rpc_by(flow.config, "finance-ana") as rpc:
        done = rpc.payouts.reverse_payout(ask)
    assert (done["reversed_amount"], reversals_in(done)) == ("150.00", [
        ("finance-ben", "reversed in part: 15000 of 40000 cents (assay corrected)")])
    assert len(reversal_posts(flow)) == 1  # found at Stripe, not made again
    assert len(reversal_lists(flow, paid["transfer_id"])) == 1
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    assert (transfer.amount_reversed, len(transfer.reversals.data)) == (15000, 1)
    [(actor, _, amount, reversal_id, recorded)] = requests_kept(flow, paid["id"])
    assert (actor, amount, reversal_id, recorded) == (
        "finance-ben", 15000, transfer.reversals.data[0].id, 15000)


def test_a_request_stripe_never_received_is_made_when_sent_again_a_day_later(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    clock_of(flow.container).move_to(datetime.now(UTC))
    ask = {"payout_id": paid["id"], "reason": "buyer refunded", "idempotency_key": "k-9"}
    flow.server.fail_next(REVERSALS, error="network", method="POST")  # lost on its way
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Unavailable):
        rpc.payouts.reverse_payout(ask)

    a_day_later(flow)
    with rpc_by(flow.config, "finance-ben") as rpc:
        done = rpc.payouts.reverse_payout(ask)
    assert (done["status"], done["reversed_amount"]) == ("REVERSED", "400.00")
    assert len(reversal_lists(flow, paid["transfer_id"])) == 1  # looked, found none, made it
    assert [r.replayed for r in reversal_posts(flow)] == [False]


def test_stripe_not_answering_the_look_up_sends_nothing_and_can_be_asked_again(
        flow: Flow) -> None:
    paid = flow.paid("100.000")
    flow.server.auto_deliver_webhooks = False
    clock_of(flow.container).move_to(datetime.now(UTC))
    ask = {"payout_id": paid["id"], "reason": "buyer refunded", "idempotency_key": "k-10"}
    flow.server.fail_next(REVERSALS, error="network", method="POST", after_execution=True)
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(Unavailable):
        rpc.payouts.reverse_payout(ask)

    a_day_later(flow)
    flow.server.fail_next(REVERSALS, error="api_error", method="GET")
    with rpc_by(flow.config, "finance-ben") as rpc, pytest.raises(
            Unavailable, match="asking again cannot reverse it twice"):
        rpc.payouts.reverse_payout(ask)
    assert len(reversal_posts(flow)) == 1
    with rpc_by(flow.config, "finance-ben") as rpc:
        done = rpc.payouts.reverse_payout(ask)
    assert done["reversed_amount"] == "400.00"
    transfer = flow.client.v1.transfers.retrieve(paid["transfer_id"])
    assert (transfer.amount_reversed, len(transfer.reversals.data), len(reversal_posts(flow))) \
        == (40000, 1, 1)
