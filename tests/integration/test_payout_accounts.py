"""A cooperative's connected account, over real RabbitMQ and PostgreSQL and the local Stripe
server: when Stripe's account.updated never arrives, the sweep asks Stripe for the account
(at most once per account per interval, however many premiums wait on it) and pays them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter

from services.payouts.stripe_local import StripeLocal
from shared.caller import Role
from shared.clock import clock_of
from tests.integration import test_payouts as harness
from tests.integration.test_payouts import Flow, rpc_by

# The payouts harness's fixtures, used here under the same names.
stripe_server = harness.stripe_server
flow = harness.flow

REFRESH = timedelta(seconds=120)


@pytest.fixture
def payouts_config(veta_config: dict[str, Any], stripe_server: StripeLocal) -> dict[str, Any]:
    address = veta_config["WEB_SERVER_ADDRESSES"]["payouts"]
    stripe_server.add_webhook_url(f"http://{address}/stripe/webhooks")
    return {**veta_config,
            "STRIPE": {"api_key": stripe_server.api_key, "api_base": stripe_server.url,
                       "webhook_secret": stripe_server.webhook_secret},
            # A waiting premium's own retry is an hour away: within the test only learning
            # of the account (which makes what waits on it due) can pay it.
            "PAYOUTS": {"sweep_seconds": 0.1, "lease_seconds": 3.0,
                        "retry_base_seconds": 3600.0, "retry_cap_seconds": 3600.0,
                        "stripe_timeout_seconds": 5.0,
                        "account_refresh_seconds": REFRESH.total_seconds()}}


def unboarded(flow: Flow) -> tuple[str, str]:
    """A cooperative whose Express account exists but has not finished onboarding."""
    producer = flow.producer(onboard=False)
    with rpc_by(flow.config, "producer-user", Role.PRODUCER, producer) as rpc:
        link = rpc.payouts.create_onboarding_link({"producer_id": producer})
    return producer, str(link["stripe_account_id"])


def account_reads(flow: Flow, account: str) -> int:
    """How many times Stripe was asked for the account."""
    return len([r for r in flow.server.requests
                if r.method == "GET" and r.path == f"/v1/accounts/{account}"])


def full_sweeps(flow: Flow, count: int = 2) -> None:
    """Wait for `count` sweeps to finish: the last one began after the clock last moved
    (a worker reads the clock when it starts)."""
    for _ in range(count):
        with entrypoint_waiter(flow.container, "move_money", timeout=10):
            pass


def waiting(flow: Flow, producer: str) -> dict[str, Any]:
    obligation = flow.funded(producer_id=producer)
    flow.approve(obligation["id"])
    failed = flow.reaches(obligation["id"], "FAILED")
    assert (failed["failure"]["code"], failed["failure"]["retryable"]) == (
        "no_connected_account", True)
    return failed


def test_premiums_waiting_on_an_account_whose_webhook_was_lost_are_paid_once_stripe_is_asked(
        flow: Flow) -> None:
    clock = clock_of(flow.container)
    start = datetime.now(UTC)
    clock.move_to(start)
    producer, account = unboarded(flow)
    first, second = waiting(flow, producer), waiting(flow, producer)
    assert account_reads(flow, account) == 1  # asked once for both, still onboarding

    # The cooperative finishes Stripe's form; account.updated never reaches Veta.
    flow.server.onboard_account(account, deliver=False)
    clock.move_to(start + REFRESH - timedelta(seconds=1))
    full_sweeps(flow)
    assert account_reads(flow, account) == 1  # not asked again within the interval
    assert [flow.get(o["id"])["status"] for o in (first, second)] == ["FAILED", "FAILED"]
    assert flow.account(producer)["transfers_active"] is False

    clock.move_to(start + REFRESH + timedelta(seconds=1))
    paid = [flow.reaches(o["id"], "PAID") for o in (first, second)]
    assert account_reads(flow, account) == 2
    assert flow.account(producer)["transfers_active"] is True
    assert [len(flow.transfers_of(o["id"])) for o in paid] == [1, 1]
    [event] = flow.client.v1.events.list({"type": "account.updated"},
                                         {"stripe_account": account}).data
    assert event.id not in {d.event_id for d in flow.server.deliveries}
    # The webhook arriving after all changes nothing.
    assert flow.server.deliver(event.id) == {flow.webhook_url: 200}
    assert [flow.get(o["id"])["status"] for o in paid] == ["PAID", "PAID"]


def test_stripe_failing_to_answer_about_an_account_is_asked_again_after_the_interval(
        flow: Flow) -> None:
    clock = clock_of(flow.container)
    start = datetime.now(UTC)
    clock.move_to(start)
    producer, account = unboarded(flow)
    flow.server.onboard_account(account, deliver=False)
    # Stripe answers with a 500 (after reading the account, which changes nothing).
    flow.server.fail_next(f"/v1/accounts/{account}", error="api_error", method="GET",
                          after_execution=True)
    premium = waiting(flow, producer)  # the sweep went on past Stripe's error
    assert account_reads(flow, account) == 1
    assert flow.account(producer)["transfers_active"] is False  # the answer was lost
    full_sweeps(flow)
    assert account_reads(flow, account) == 1  # an error is not asked about in a loop

    clock.move_to(start + REFRESH + timedelta(seconds=1))
    flow.reaches(premium["id"], "PAID")
    assert account_reads(flow, account) == 2
    assert flow.account(producer)["transfers_active"] is True
