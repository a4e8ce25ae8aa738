"""Premium payouts over real RabbitMQ and PostgreSQL and the local Stripe server: the
lifecycle, four eyes, holds, verified webhooks, and Stripe's errors turned into states.

The `Flow` here (and its fixtures) also serve tests/integration/test_reconciliation.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
import requests
import stripe
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text

from services.certification.events import (
    CertificationReinstated,
    CertificationSuspended,
    ProducerRegistered,
)
from services.orders.events import OrderDelivered
from services.payouts.service import PayoutsService
from services.payouts.stripe_local import StripeLocal, sign_payload
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role
from shared.errors import Conflict, Forbidden, Unavailable
from shared.values import Standard
from tests.helpers import eventually

THRESHOLD = 1_000_000  # USD 10,000.00


@contextmanager
def rpc_by(config: dict[str, Any], subject: str, role: Role = Role.FINANCE,
           organisation: str | None = None) -> Iterator[Any]:
    caller = Caller(subject=subject, role=role, organisation=organisation)
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: caller.context()}) as rpc:
        yield rpc


@pytest.fixture
def stripe_server() -> Iterator[StripeLocal]:
    local = StripeLocal()
    local.start()
    yield local
    local.stop()


@pytest.fixture
def payouts_config(veta_config: dict[str, Any], stripe_server: StripeLocal) -> dict[str, Any]:
    address = veta_config["WEB_SERVER_ADDRESSES"]["payouts"]
    stripe_server.add_webhook_url(f"http://{address}/stripe/webhooks")
    return {**veta_config,
            "STRIPE": {"api_key": stripe_server.api_key, "api_base": stripe_server.url,
                       "webhook_secret": stripe_server.webhook_secret},
            "PAYOUTS": {"sweep_seconds": 0.1,
                        "retry_base_seconds": 0.2, "retry_cap_seconds": 1.0,
                        "lease_seconds": 3.0, "stripe_timeout_seconds": 5.0,
                        "four_eyes_threshold_cents": THRESHOLD}}


class Flow:
    """Drives one payouts service the way the other services and finance staff would."""

    def __init__(self, config: dict[str, Any], server: StripeLocal, container: Any) -> None:
        self.config, self.server, self.container = config, server, container
        self.client = stripe.StripeClient(server.api_key, base_addresses={"api": server.url},
                                          max_network_retries=0)
        self.dispatch = event_dispatcher(config)
        self.webhook_url = f"http://{config['WEB_SERVER_ADDRESSES']['payouts']}/stripe/webhooks"

    def publish(self, handler: str, event: Any) -> None:
        with entrypoint_waiter(self.container, handler, timeout=10):
            self.dispatch(event.source, event.type, event.envelope())

    def producer(self, onboard: bool = True) -> str:
        producer_id = str(uuid.uuid4())
        self.publish("on_producer_registered", ProducerRegistered(
            producer_id=producer_id, name=f"Cooperativa {producer_id[:4]}", country="CO",
            region="Antioquia"))
        if onboard:
            with rpc_by(self.config, "finance-onboarding") as rpc:
                link = rpc.payouts.create_onboarding_link({"producer_id": producer_id})
            # The cooperative completes Stripe's form; Stripe sends it back to Veta.
            requests.get(link["url"], allow_redirects=False, timeout=5)
            eventually(lambda: self.account(producer_id)["transfers_active"])
        return producer_id

    def account(self, producer_id: str) -> dict[str, Any]:
        with rpc_by(self.config, "finance-reader") as rpc:
            return dict(rpc.payouts.get_payout_account(producer_id) or {})

    def buyer(self, payment_method: str = "pm_card_visa") -> str:
        buyer_id = f"refinery-{uuid.uuid4().hex[:6]}"
        with rpc_by(self.config, "buyer-user", Role.BUYER, buyer_id) as rpc:
            rpc.payouts.set_buyer_funding({"buyer_id": buyer_id,
                                           "payment_method": payment_method})
        return buyer_id

    def deliver(self, producer_id: str, buyer_id: str, grams: str = "100.000",
                standard: str = "FAIRMINED") -> dict[str, Any]:
        order_id = str(uuid.uuid4())
        self.publish("on_order_delivered", OrderDelivered(
            order_id=order_id, buyer_id=buyer_id, listing_id=str(uuid.uuid4()),
            producer_id=producer_id, standard=Standard(standard), ordered_fine_weight=grams,
            received_gross_weight=grams, received_fineness="999.9",
            delivered_fine_weight=grams, delivered_on=date.today()))
        with rpc_by(self.config, "finance-reader") as rpc:
            page = rpc.payouts.list_obligations(producer_id, 100)
        [found] = [item["node"] for item in page["items"]
                   if item["node"]["order_id"] == order_id]
        return dict(found)

    def get(self, obligation_id: str) -> dict[str, Any]:
        with rpc_by(self.config, "finance-reader") as rpc:
            [found] = rpc.payouts.get_obligations([obligation_id])
        return dict(found)

    def reaches(self, obligation_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
        def there() -> dict[str, Any] | None:
            found = self.get(obligation_id)
            return found if found["status"] == status else None
        try:
            result: dict[str, Any] = eventually(there, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"never {status}: {self.get(obligation_id)}") from None
        return result

    def funded(self, grams: str = "100.000", standard: str = "FAIRMINED",
               producer_id: str | None = None) -> dict[str, Any]:
        obligation = self.deliver(producer_id or self.producer(), self.buyer(), grams,
                                  standard)
        return self.reaches(obligation["id"], "FUNDED")

    def approve(self, obligation_id: str, subject: str = "finance-ana") -> dict[str, Any]:
        with rpc_by(self.config, subject) as rpc:
            return dict(rpc.payouts.approve_payout({"payout_id": obligation_id}))

    def paid(self, grams: str = "100.000", producer_id: str | None = None) -> dict[str, Any]:
        obligation = self.funded(grams, producer_id=producer_id)
        self.approve(obligation["id"])
        return self.reaches(obligation["id"], "PAID")

    def transfers_of(self, obligation_id: str) -> list[Any]:
        return [t for t in self.client.v1.transfers.list({"limit": 100}).auto_paging_iter()
                if t.metadata.to_dict().get("obligation_id") == obligation_id]


@pytest.fixture
def flow(container_factory: Any, payouts_config: dict[str, Any],
         stripe_server: StripeLocal) -> Flow:
    container = container_factory(PayoutsService, payouts_config)
    container.start()
    return Flow(payouts_config, stripe_server, container)


# --- the lifecycle ---------------------------------------------------------------------------

def test_a_delivered_premium_is_collected_approved_and_transferred_once(flow: Flow) -> None:
    obligation = flow.funded("100.000")
    assert (obligation["amount"], obligation["approvals_needed"]) == ("400.00", 1)
    intent = flow.client.v1.payment_intents.retrieve(obligation["payment_intent_id"])
    assert (intent.amount, intent.transfer_group, intent.metadata["obligation_id"]) == (
        40000, obligation["order_id"], obligation["id"])

    approved = flow.approve(obligation["id"])
    assert approved["approvals"] == ["finance-ana"]
    paid = flow.reaches(obligation["id"], "PAID")

    [transfer] = flow.transfers_of(obligation["id"])
    assert (transfer.id, transfer.amount, transfer.transfer_group) == (
        paid["transfer_id"], 40000, obligation["order_id"])
    assert transfer.destination == flow.account(obligation["producer_id"])["stripe_account_id"]
    [sent] = [r for r in flow.server.requests if r.path == "/v1/transfers"
              and r.method == "POST"]
    assert sent.idempotency_key == f"veta-premium-{obligation['id']}-transfer-1"
    assert [(h["action"], h["actor"]) for h in paid["history"]] == [
        ("CALCULATED", "orders"), ("FUNDED", "stripe"), ("APPROVED", "finance-ana"),
        ("SUBMITTED", "payouts"), ("PAID", "payouts")]


def test_a_partial_then_full_reversal_is_recorded_as_reversed(flow: Flow) -> None:
    paid = flow.paid("100.000")
    with rpc_by(flow.config, "finance-ana") as rpc:
        part = rpc.payouts.reverse_payout({"payout_id": paid["id"], "amount": "150.00",
                                           "reason": "assay corrected"})
        assert (part["status"], part["reversed_amount"]) == ("REVERSED", "150.00")
        rest = rpc.payouts.reverse_payout({"payout_id": paid["id"], "reason": "refunded"})
    assert rest["reversed_amount"] == "400.00"
    assert flow.client.v1.transfers.retrieve(paid["transfer_id"]).reversed is True


# --- four eyes -----------------------------------------------------------------------------

def test_above_the_threshold_two_different_finance_users_approve(flow: Flow) -> None:
    obligation = flow.funded("3000.000")  # USD 12,000.00
    assert obligation["approvals_needed"] == 2
    first = flow.approve(obligation["id"], "finance-ana")
    assert (first["status"], first["approvals"]) == ("FUNDED", ["finance-ana"])
    with pytest.raises(Forbidden):
        flow.approve(obligation["id"], "finance-ana")
    with rpc_by(flow.config, "admin-1", Role.ADMIN) as rpc, pytest.raises(Forbidden):
        rpc.payouts.approve_payout({"payout_id": obligation["id"]})
    assert flow.get(obligation["id"])["status"] == "FUNDED"
    assert flow.transfers_of(obligation["id"]) == []

    flow.approve(obligation["id"], "finance-ben")
    paid = flow.reaches(obligation["id"], "PAID")
    assert paid["approvals"] == ["finance-ana", "finance-ben"]


def test_a_rejected_request_must_be_approved_afresh(flow: Flow) -> None:
    obligation = flow.funded("3000.000")
    flow.approve(obligation["id"], "finance-ana")
    with rpc_by(flow.config, "finance-ben") as rpc:
        with pytest.raises(Exception, match="say why"):
            rpc.payouts.reject_payout({"payout_id": obligation["id"]})
        rejected = rpc.payouts.reject_payout({"payout_id": obligation["id"],
                                              "reason": "buyer disputes the assay"})
    assert (rejected["status"], rejected["approvals"]) == ("FUNDED", [])
    assert rejected["history"][-1]["reason"] == "buyer disputes the assay"


# --- holds ---------------------------------------------------------------------------------

def suspension(producer_id: str, certification_id: str, version: int,
               kind: Any = CertificationSuspended) -> Any:
    return kind(certification_id=certification_id, producer_id=producer_id,
                standard="FAIRMINED", reason="audit finding", version=version)


def test_a_suspension_holds_unpaid_premiums_and_reinstatement_releases_them(
        flow: Flow) -> None:
    producer = flow.producer()
    obligation = flow.funded(producer_id=producer)
    flow.publish("on_certification_suspended", suspension(producer, "cert-1", 2))
    held = flow.get(obligation["id"])
    assert (held["status"], held["hold"]["held_from"]) == ("ON_HOLD", "FUNDED")
    with pytest.raises(Conflict):
        flow.approve(obligation["id"])
    # A delivery while suspended is held from the start.
    late = flow.deliver(producer, flow.buyer())
    assert flow.get(late["id"])["status"] == "ON_HOLD"

    flow.publish("on_certification_reinstated",
                 suspension(producer, "cert-1", 3, CertificationReinstated))
    assert flow.get(obligation["id"])["status"] == "FUNDED"
    flow.reaches(late["id"], "FUNDED")  # paid by the buyer while held


def test_finance_releases_a_hold_with_a_reason_and_a_stale_suspension_changes_nothing(
        flow: Flow) -> None:
    producer = flow.producer()
    obligation = flow.funded(producer_id=producer)
    flow.publish("on_certification_suspended", suspension(producer, "cert-2", 2))
    with rpc_by(flow.config, "finance-ana") as rpc:
        released = rpc.payouts.release_payout_hold({"payout_id": obligation["id"],
                                                    "reason": "site audit cleared it"})
    assert released["status"] == "FUNDED"
    assert released["history"][-1]["reason"] == "site audit cleared it"
    # The same suspension arriving again (an older version) does not hold it a second time.
    flow.publish("on_certification_suspended", suspension(producer, "cert-2", 1))
    assert flow.get(obligation["id"])["status"] == "FUNDED"
    flow.approve(obligation["id"])
    flow.reaches(obligation["id"], "PAID")


# --- webhooks ----------------------------------------------------------------------------

def latest_event(flow: Flow, kind: str) -> str:
    return str(flow.client.v1.events.list({"type": kind}).data[0].id)


def count(flow: Flow, sql: str, **params: Any) -> int:
    engine = create_engine(flow.config["DATABASES"]["payouts"])
    with engine.connect() as connection:
        value = int(connection.execute(text(sql), params).scalar_one())
    engine.dispose()
    return value


def test_forged_stale_and_replayed_webhooks_change_nothing(flow: Flow) -> None:
    producer = flow.producer()
    buyer = flow.buyer(payment_method="pm_card_visa")
    flow.server.auto_deliver_webhooks = False  # deliver by hand from here on
    obligation = flow.deliver(producer, buyer)
    eventually(lambda: flow.get(obligation["id"])["payment_intent_id"])
    event_id = latest_event(flow, "payment_intent.succeeded")
    payload, _ = flow.server.signed_event(event_id)
    # Stripe's answer to the confirmation already said the buyer paid: funded without it.
    before = flow.get(obligation["id"])
    assert before["status"] == "FUNDED"

    forged = sign_payload(payload, "whsec_attacker", int(time.time()))
    stale = sign_payload(payload, flow.server.webhook_secret, int(time.time()) - 400)
    for signature in (forged, stale, "t=1,v1=nothing"):
        answer = requests.post(flow.webhook_url, data=payload, timeout=5,
                               headers={"Stripe-Signature": signature})
        assert answer.status_code == 400
    tampered = payload.replace(b'"succeeded"', b'"failed"', 1)
    _, good = flow.server.signed_event(event_id)
    assert requests.post(flow.webhook_url, data=tampered, timeout=5,
                         headers={"Stripe-Signature": good}).status_code == 400
    assert flow.get(obligation["id"]) == before
    assert count(flow, "SELECT count(*) FROM stripe_events WHERE event_id = :id",
                 id=event_id) == 0

    assert flow.server.deliver(event_id) == {flow.webhook_url: 200}
    assert flow.server.deliver(event_id) == {flow.webhook_url: 200}  # a replay
    funded = flow.get(obligation["id"])
    assert funded["status"] == "FUNDED"
    assert [h["action"] for h in funded["history"]].count("FUNDED") == 1
    assert count(flow, "SELECT count(*) FROM stripe_events WHERE event_id = :id",
                 id=event_id) == 1


def test_a_transfer_confirmed_only_by_its_webhook_is_paid(flow: Flow) -> None:
    """The reply to the transfer is lost; Stripe's transfer.created says it was made."""
    obligation = flow.funded()
    flow.server.fail_next("/v1/transfers", error="network", after_execution=True,
                          method="POST")
    flow.approve(obligation["id"])
    paid = flow.reaches(obligation["id"], "PAID")
    [transfer] = flow.transfers_of(obligation["id"])
    assert paid["transfer_id"] == transfer.id


# --- Stripe's errors become states, and retries never pay twice ------------------------------

def test_a_declined_card_is_a_clear_failure_and_a_retry_collects_with_a_new_card(
        flow: Flow) -> None:
    producer = flow.producer()
    buyer = flow.buyer(payment_method="pm_card_chargeDeclinedInsufficientFunds")
    obligation = flow.deliver(producer, buyer)
    failed = flow.reaches(obligation["id"], "FAILED")
    assert failed["failure"]["stage"] == "FUNDING"
    assert failed["failure"]["code"] in ("card_declined", "insufficient_funds")
    assert failed["failure"]["retryable"] is False

    with rpc_by(flow.config, "buyer-user", Role.BUYER, buyer) as rpc:
        rpc.payouts.set_buyer_funding({"buyer_id": buyer, "payment_method": "pm_card_visa"})
    with rpc_by(flow.config, "finance-ana") as rpc:
        rpc.payouts.retry_payout({"payout_id": obligation["id"]})
    funded = flow.reaches(obligation["id"], "FUNDED")
    assert funded["failure"] is None


def test_insufficient_platform_balance_fails_then_retries_by_itself_once_topped_up(
        flow: Flow) -> None:
    obligation = flow.funded()
    flow.server.set_balance(100)
    flow.approve(obligation["id"])
    failed = flow.reaches(obligation["id"], "FAILED")
    assert (failed["failure"]["code"], failed["failure"]["retryable"]) == (
        "balance_insufficient", True)
    flow.server.set_balance(10**9)
    paid = flow.reaches(obligation["id"], "PAID")
    assert paid["attempt"] >= 2  # the failed key holds Stripe's saved refusal: a new one
    assert len(flow.transfers_of(obligation["id"])) == 1


def test_a_rate_limit_keeps_it_submitted_and_the_same_key_pays_it_once(flow: Flow) -> None:
    obligation = flow.funded()
    flow.server.fail_next("/v1/transfers", times=2, error="rate_limit", method="POST")
    flow.approve(obligation["id"])
    paid = flow.reaches(obligation["id"], "PAID")
    sent = [r for r in flow.server.requests if r.path == "/v1/transfers" and r.method == "POST"]
    assert {r.idempotency_key for r in sent} == {
        f"veta-premium-{obligation['id']}-transfer-1"}
    assert paid["attempt"] == 1
    assert "TRANSFER_UNANSWERED" in [h["action"] for h in paid["history"]]
    assert len(flow.transfers_of(obligation["id"])) == 1


def test_a_lost_reply_is_resent_with_the_same_key_and_never_doubles_the_payment(
        flow: Flow) -> None:
    obligation = flow.funded()
    flow.server.auto_deliver_webhooks = False  # only the re-send can find out
    flow.server.fail_next("/v1/transfers", error="api_error", after_execution=True,
                          method="POST")
    flow.approve(obligation["id"])
    paid = flow.reaches(obligation["id"], "PAID")
    assert any(r.replayed for r in flow.server.requests if r.path == "/v1/transfers")
    [transfer] = flow.transfers_of(obligation["id"])
    assert paid["transfer_id"] == transfer.id and paid["attempt"] == 1


def test_a_cooperative_not_yet_onboarded_waits_and_is_paid_after_onboarding(
        flow: Flow) -> None:
    producer = flow.producer(onboard=False)
    obligation = flow.funded(producer_id=producer)
    flow.approve(obligation["id"])
    waiting = flow.reaches(obligation["id"], "FAILED")
    assert (waiting["failure"]["code"], waiting["failure"]["retryable"]) == (
        "no_connected_account", True)
    with rpc_by(flow.config, "producer-user", Role.PRODUCER, producer) as rpc:
        link = rpc.payouts.create_onboarding_link({"producer_id": producer})
    flow.server.onboard_account(link["stripe_account_id"])
    flow.reaches(obligation["id"], "PAID")


def test_an_onboarding_link_stripe_did_not_answer_is_unavailable_and_a_refusal_a_conflict(
        flow: Flow) -> None:
    producer = flow.producer(onboard=False)
    with rpc_by(flow.config, "producer-user", Role.PRODUCER, producer) as rpc:
        flow.server.fail_next("/v1/accounts", error="network", method="POST")
        with pytest.raises(Unavailable, match="Stripe did not answer"):
            rpc.payouts.create_onboarding_link({"producer_id": producer})
        flow.server.fail_next("/v1/accounts", error="balance_insufficient", method="POST")
        with pytest.raises(Conflict, match="Stripe refused"):
            rpc.payouts.create_onboarding_link({"producer_id": producer})
        link = rpc.payouts.create_onboarding_link({"producer_id": producer})
    assert link["url"].startswith("http")


def test_producers_see_only_their_own_premiums_and_move_no_money(flow: Flow) -> None:
    mine, theirs = flow.producer(onboard=False), flow.producer(onboard=False)
    own = flow.deliver(mine, flow.buyer())
    other = flow.deliver(theirs, flow.buyer())
    with rpc_by(flow.config, "producer-user", Role.PRODUCER, mine) as rpc:
        page = rpc.payouts.list_obligations()
        assert [i["node"]["id"] for i in page["items"]] == [own["id"]]
        assert [o["id"] for o in rpc.payouts.get_obligations([own["id"], other["id"]])] == [
            own["id"]]
        with pytest.raises(Forbidden):
            rpc.payouts.list_obligations(theirs)
        with pytest.raises(Forbidden):
            rpc.payouts.approve_payout({"payout_id": own["id"]})
        with pytest.raises(Forbidden):
            rpc.payouts.create_onboarding_link({"producer_id": theirs})


def test_finance_extends_the_rate_table_and_later_deliveries_use_it(flow: Flow) -> None:
    today = date.today().isoformat()
    with rpc_by(flow.config, "finance-ana") as rpc:
        rate = rpc.payouts.add_premium_rate({"standard": "FAIRMINED_ECOLOGICAL",
                                             "usd_per_kg": "6500", "effective_from": today})
        with pytest.raises(Conflict):
            rpc.payouts.add_premium_rate({"standard": "FAIRMINED_ECOLOGICAL",
                                          "usd_per_kg": "7000", "effective_from": today})
    assert rate["recorded_by"] == "finance-ana"
    obligation = flow.deliver(flow.producer(onboard=False), flow.buyer(), "100.000",
                              "FAIRMINED_ECOLOGICAL")
    assert (obligation["usd_per_kg"], obligation["amount"]) == ("6500", "650.00")
