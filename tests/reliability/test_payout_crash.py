"""A payouts process killed between Stripe's transfer and its own commit pays exactly once.

`veta run payouts` runs as a real process against the test databases, the test vhost and the
local Stripe server. Stripe executes the transfer and holds its reply; the process is killed
with SIGKILL while it waits. A new process finds the obligation SUBMITTED, sends the same
request under the same idempotency key, gets Stripe's saved reply, and records that one
transfer. Webhooks are delivered by hand here, so nothing but the re-send can repair it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import stripe
from nameko.exceptions import UnknownService
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, text

from services.certification.events import ProducerRegistered
from services.orders.events import OrderDelivered
from services.payouts.stripe_local import StripeLocal
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role
from shared.values import Standard
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
FINANCE = Caller(subject="finance-crash", role=Role.FINANCE)


@pytest.fixture
def server() -> Iterator[StripeLocal]:
    local = StripeLocal(auto_deliver_webhooks=False)
    local.start()
    yield local
    local.clear_faults()
    local.stop()


class PayoutsProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, config: dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "veta.cli", "run", "payouts"],
                                     cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                call(config, "list_obligations", None, 1)
                return True
            except UnknownService:
                return False
        eventually(answers, timeout=60, interval=0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def call(config: dict[str, Any], method: str, *args: Any) -> Any:
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: FINANCE.context()},
                         timeout=10) as rpc:
        return getattr(rpc.payouts, method)(*args)


def deliver_latest(server: StripeLocal, kind: str) -> None:
    with server._lock:  # the newest event of that kind, as Stripe would send it
        event_id = next(e["id"] for e in server._all("event") if e["type"] == kind)
    assert set(server.deliver(event_id).values()) == {200}


def test_a_crash_between_the_transfer_and_the_commit_pays_exactly_once(
        rabbit_config: dict[str, Any], database_urls: dict[str, str],
        server: StripeLocal) -> None:
    port = find_free_port()
    server.add_webhook_url(f"http://127.0.0.1:{port}/stripe/webhooks")
    env = {**os.environ, "VETA_AMQP_URI": rabbit_config["AMQP_URI"],
           "VETA_PAYOUTS_DATABASE_URL": database_urls["payouts"],
           "VETA_HTTP_ADDRESS": f"127.0.0.1:{port}",
           "VETA_STRIPE_API_KEY": server.api_key, "VETA_STRIPE_API_BASE": server.url,
           "VETA_STRIPE_WEBHOOK_SECRET": server.webhook_secret,
           "VETA_PAYOUTS_SWEEP_SECONDS": "0.2", "VETA_PAYOUTS_LEASE_SECONDS": "2",
           "VETA_PAYOUTS_RETRY_BASE_SECONDS": "0.2", "VETA_JWT_SECRET": "crash-test"}
    config = {"AMQP_URI": rabbit_config["AMQP_URI"], "serializer": "json"}
    first, second = PayoutsProcess(env), PayoutsProcess(env)
    try:
        first.start(config)
        # A cooperative, onboarded; a buyer with a card; a delivery, paid for.
        producer = str(uuid.uuid4())
        dispatch = event_dispatcher(config)
        dispatch("certification", ProducerRegistered.type, ProducerRegistered(
            producer_id=producer, name="Cooperativa Resiliente", country="PE",
            region="Puno").envelope())
        link = eventually(lambda: _try(call, config, "create_onboarding_link",
                                       {"producer_id": producer}))
        server.onboard_account(link["stripe_account_id"])
        deliver_latest(server, "account.updated")
        call(config, "set_buyer_funding", {"buyer_id": "refinery-crash",
                                           "payment_method": "pm_card_visa"})
        order_id = str(uuid.uuid4())
        dispatch("orders", OrderDelivered.type, OrderDelivered(
            order_id=order_id, buyer_id="refinery-crash", listing_id=str(uuid.uuid4()),
            producer_id=producer, standard=Standard.FAIRMINED, ordered_fine_weight="250.000",
            received_gross_weight="250.000", received_fineness="999.9",
            delivered_fine_weight="250.000", delivered_on=date.today()).envelope())
        obligation = eventually(lambda: _obligation(config, producer, "payment_intent_id"))
        deliver_latest(server, "payment_intent.succeeded")
        eventually(lambda: _obligation(config, producer, "funded_at"))

        # Stripe makes the transfer, then holds its reply; the process dies waiting.
        server.delay_next("/v1/transfers", seconds=8, method="POST", after_execution=True)
        call(config, "approve_payout", {"payout_id": obligation["id"]})
        eventually(lambda: _transfers(server, obligation["id"]), timeout=15)
        first.kill()
        engine = create_engine(database_urls["payouts"])
        with engine.connect() as connection:
            status, transfer_id, attempt = connection.execute(text(
                "SELECT status, transfer_id, attempt FROM obligations WHERE id = :id"),
                {"id": obligation["id"]}).one()
        engine.dispose()
        assert (status, transfer_id, attempt) == ("SUBMITTED", None, 1)

        second.start(config)
        paid = eventually(lambda: _paid(config, obligation["id"]), timeout=30)
    finally:
        first.stop()
        second.stop()

    [made] = _transfers(server, obligation["id"])
    assert paid["transfer_id"] == made.id and paid["attempt"] == 1
    assert made.transfer_group == order_id and made.amount == 100_000
    sent = [r for r in server.requests if r.method == "POST" and r.path == "/v1/transfers"]
    key = f"veta-premium-{obligation['id']}-transfer-1"
    assert [(r.idempotency_key, r.replayed) for r in sent] == [(key, False), (key, True)]


def _try(fn: Any, *args: Any) -> Any:
    from shared.errors import NotFound

    try:
        return fn(*args)
    except NotFound:  # payouts has not heard of the producer yet
        return None


def _obligation(config: dict[str, Any], producer: str, field: str) -> dict[str, Any] | None:
    items = call(config, "list_obligations", producer, 1)["items"]
    return items[0]["node"] if items and items[0]["node"][field] else None


def _paid(config: dict[str, Any], obligation_id: str) -> dict[str, Any] | None:
    [found] = call(config, "get_obligations", [obligation_id])
    return found if found["status"] == "PAID" else None


def _transfers(server: StripeLocal, obligation_id: str) -> list[Any]:
    client = stripe.StripeClient(server.api_key, base_addresses={"api": server.url},
                                 max_network_retries=0)
    return [t for t in client.v1.transfers.list({"limit": 100})
            if t.metadata.to_dict().get("obligation_id") == obligation_id]
