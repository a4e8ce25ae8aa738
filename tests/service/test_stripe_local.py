# mypy: disable-error-code="union-attr"
"""The local Stripe server, driven by the real stripe SDK over real HTTP.

tests/conftest.py applies eventlet's monkey patching first, as the project runs under it."""

import csv
import functools
import io
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from services.payouts.stripe_local import StripeLocal, sign_payload

SECRET = "whsec_test_secret"
T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC


class Receiver:
    """A webhook endpoint answering the queued statuses (then 200), recording what arrives."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.received: queue.Queue[tuple[bytes, str]] = queue.Queue()
        pending = list(statuses)
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(pending.pop(0) if pending else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/stripe/webhooks"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def next(self) -> tuple[bytes, str]:
        return self.received.get(timeout=5)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[StripeLocal]:
    local = StripeLocal(webhook_secret=SECRET)
    local.start()
    yield local
    local.stop()


@pytest.fixture
def client(server: StripeLocal) -> stripe.StripeClient:
    return stripe.StripeClient(
        server.api_key, base_addresses={"api": server.url}, max_network_retries=0
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def make_account(server: StripeLocal, client: stripe.StripeClient, onboard: bool = True) -> str:
    account = client.v1.accounts.create({
        "type": "express", "country": "GH", "email": "coop@example.org",
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"cooperative_id": "coop-1"},
    })
    if onboard:
        server.onboard_account(account.id)
    return account.id


@pytest.fixture
def account(server: StripeLocal, client: stripe.StripeClient) -> str:
    return make_account(server, client)


def transfer(client: stripe.StripeClient, destination: str, amount: int = 1500,
             key: str | None = None, **extra: Any) -> stripe.Transfer:
    params: Any = {"amount": amount, "currency": "usd", "destination": destination,
                   "metadata": {"obligation_id": "obl-1"}, "transfer_group": "order-1", **extra}
    return client.v1.transfers.create(params, {"idempotency_key": key} if key else None)


# --------------------------------------------------------------------------- auth & basics
def test_request_without_api_key_gets_401_in_stripe_error_shape(server: StripeLocal) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{server.url}/v1/balance", timeout=5)
    assert caught.value.code == 401
    error = json.loads(caught.value.read())["error"]
    assert set(error) >= {"type", "code", "message", "param"}
    assert error["type"] == "invalid_request_error"


def test_wrong_api_key_raises_authentication_error(server: StripeLocal) -> None:
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": server.url})
    with pytest.raises(stripe.AuthenticationError):
        wrong.v1.balance.retrieve()


def test_unknown_parameter_is_rejected_like_stripe(client: stripe.StripeClient,
                                                   account: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        transfer(client, account, bogus="x")
    assert caught.value.param == "bogus"
    assert caught.value.code == "parameter_unknown"


# --------------------------------------------------------------------------- transfers
def test_transfer_is_created_and_retrieved_with_its_metadata(
    client: stripe.StripeClient, account: str
) -> None:
    created = transfer(client, account, 1500, description="premium for lot 7")
    fetched = client.v1.transfers.retrieve(created.id)
    assert created.id.startswith("tr_")
    assert (fetched.id, fetched.amount, fetched.currency) == (created.id, 1500, "usd")
    assert fetched.destination == account
    assert fetched.metadata["obligation_id"] == "obl-1"
    assert fetched.transfer_group == "order-1"
    assert fetched.reversals.data == [] and fetched.reversed is False
    bt = client.v1.balance_transactions.retrieve(str(fetched.balance_transaction))
    assert (bt.amount, bt.type, bt.reporting_category, bt.source) == (
        -1500, "transfer", "transfer", created.id)


def test_expand_replaces_ids_with_objects(client: stripe.StripeClient, account: str) -> None:
    created = transfer(client, account)
    fetched = client.v1.transfers.retrieve(
        created.id, {"expand": ["balance_transaction", "destination"]})
    assert fetched.balance_transaction.object == "balance_transaction"
    assert fetched.destination.id == account
    listed = client.v1.balance_transactions.list({"expand": ["data.source"]})
    assert listed.data[0].source.id == created.id


def test_transfers_list_filters_by_destination_and_transfer_group(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    other = make_account(server, client)
    first = transfer(client, account)
    transfer(client, other, transfer_group="order-2")
    assert [t.id for t in client.v1.transfers.list({"destination": account})] == [first.id]
    assert len(client.v1.transfers.list({"transfer_group": "order-2"}).data) == 1
    assert len(client.v1.transfers.list().data) == 2


def test_each_request_is_recorded_with_the_query_it_was_sent_with(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    transfer(client, account)
    client.v1.transfers.list({"transfer_group": "order-1", "limit": 2})
    [listed] = [r for r in server.requests if r.method == "GET"]
    assert (listed.path, listed.status) == ("/v1/transfers", 200)
    assert sorted(listed.query.split("&")) == ["limit=2", "transfer_group=order-1"]
    [made] = [r for r in server.requests if r.method == "POST" and r.path == "/v1/transfers"]
    assert made.query == ""


def test_idempotent_replay_returns_the_same_transfer_and_creates_no_second_one(
    client: stripe.StripeClient, account: str
) -> None:
    first = transfer(client, account, key="payout-obl-1")
    second = transfer(client, account, key="payout-obl-1")
    assert second.id == first.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(client.v1.transfers.list().data) == 1


def test_same_idempotency_key_with_different_params_raises_idempotency_error(
    client: stripe.StripeClient, account: str
) -> None:
    transfer(client, account, 1500, key="payout-obl-1")
    with pytest.raises(stripe.IdempotencyError):
        transfer(client, account, 1600, key="payout-obl-1")
    assert len(client.v1.transfers.list().data) == 1


def test_idempotency_keys_are_scoped_per_api_key(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.add_api_key("sk_test_other")
    other = stripe.StripeClient("sk_test_other", base_addresses={"api": server.url})
    first = transfer(client, account, 1500, key="shared-key")
    second = transfer(other, account, 1600, key="shared-key")
    assert first.id != second.id


def test_transfer_to_missing_destination_is_invalid_request_resource_missing(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        transfer(client, "acct_doesnotexist")
    assert (caught.value.code, caught.value.param) == ("resource_missing", "destination")
    assert caught.value.http_status == 400


def test_transfer_to_account_not_yet_onboarded_is_refused(
    server: StripeLocal, client: stripe.StripeClient
) -> None:
    pending = make_account(server, client, onboard=False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        transfer(client, pending)
    assert caught.value.code == "insufficient_capabilities_for_transfer"


def test_transfer_beyond_platform_balance_fails_with_balance_insufficient(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.set_balance(1000)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        transfer(client, account, 1001)
    assert caught.value.code == "balance_insufficient"
    transfer(client, account, 1000)
    assert client.v1.balance.retrieve().available[0].amount == 0


def test_partial_then_full_reversal_and_over_reversal_is_refused(
    client: stripe.StripeClient, account: str
) -> None:
    before = client.v1.balance.retrieve().available[0].amount
    created = transfer(client, account, 1500)
    partial = client.v1.transfers.reversals.create(created.id, {"amount": 500})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(created.id, {"amount": 1001})
    rest = client.v1.transfers.reversals.create(created.id)  # no amount: the remainder
    assert (partial.amount, rest.amount) == (500, 1000)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(created.id, {"amount": 1})
    fetched = client.v1.transfers.retrieve(created.id)
    assert (fetched.amount_reversed, fetched.reversed) == (1500, True)
    assert [r.id for r in client.v1.transfers.reversals.list(created.id)] == [rest.id, partial.id]
    assert client.v1.balance.retrieve().available[0].amount == before
    bt = client.v1.balance_transactions.retrieve(str(partial.balance_transaction))
    assert (bt.amount, bt.type, bt.reporting_category) == (500, "transfer_refund",
                                                           "transfer_reversal")
    events = client.v1.events.list({"type": "transfer.reversed"}).data
    assert [e.data.object.amount_reversed for e in events] == [1500, 500]


def test_reversals_list_walks_every_page_newest_first_through_the_sdk(
    server: StripeLocal, client: stripe.StripeClient, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = transfer(client, account, 1500)
    made = [client.v1.transfers.reversals.create(
        created.id, {"amount": 10, "metadata": {"idempotency_key": f"k-{n}"}}).id
        for n in range(7)]
    transfer(client, account, 900)  # another transfer's reversals are not listed
    page = client.v1.transfers.reversals.list(created.id, {"limit": 3})
    assert (len(page.data), page.has_more, page.url) == (
        3, True, f"/v1/transfers/{created.id}/reversals")
    walked = list(page.auto_paging_iter())
    assert [r.id for r in walked] == made[::-1]
    assert [r.to_dict()["metadata"]["idempotency_key"] for r in walked][:2] == ["k-6", "k-5"]
    assert {(r.object, r.transfer) for r in walked} == {("transfer_reversal", created.id)}
    # The same walk through the SDK's global style.
    monkeypatch.setattr(stripe, "api_key", server.api_key)
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    listed = stripe.Transfer.list_reversals(created.id, limit=2)
    assert [r.id for r in listed.auto_paging_iter()] == made[::-1]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.reversals.list("tr_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_an_idempotency_key_is_forgotten_after_24_hours_and_the_request_runs_again(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.clock = lambda: T0
    first = transfer(client, account, key="k-day")
    server.clock = lambda: T0 + 86_399
    assert transfer(client, account, key="k-day").id == first.id  # replayed
    server.clock = lambda: T0 + 86_400
    later = transfer(client, account, key="k-day")
    assert later.id != first.id
    assert len(client.v1.transfers.list().data) == 2
    assert transfer(client, account, key="k-day").id == later.id  # saved again from now


def test_transfer_metadata_update_emits_transfer_updated(
    client: stripe.StripeClient, account: str
) -> None:
    created = transfer(client, account)
    client.v1.transfers.update(created.id, {"metadata": {"obligation_id": "", "batch": "b1"}})
    fetched = client.v1.transfers.retrieve(created.id)
    assert fetched.metadata.to_dict() == {"batch": "b1"}
    (event,) = client.v1.events.list({"type": "transfer.updated"}).data
    assert event.data.previous_attributes.metadata["obligation_id"] == "obl-1"


def test_global_api_base_configuration_style_works(
    server: StripeLocal, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", server.api_key)
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    first = stripe.Transfer.create(amount=700, currency="usd", destination=account,
                                   idempotency_key="global-1")
    again = stripe.Transfer.create(amount=700, currency="usd", destination=account,
                                   idempotency_key="global-1")
    stripe.Transfer.create_reversal(first.id, amount=200)
    assert again.id == first.id
    assert stripe.Transfer.retrieve(first.id).amount_reversed == 200


# --------------------------------------------------------------------------- payment intents
def test_payment_intent_with_visa_succeeds_with_charge_balance_transaction_and_event(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create({
        "amount": 10_000, "currency": "usd", "customer": "cus_buyer", "confirm": True,
        "payment_method": "pm_card_visa", "metadata": {"order_id": "o-1"},
        "transfer_group": "order-1"}, {"idempotency_key": "order-o-1"})
    assert intent.status == "succeeded" and intent.amount_received == 10_000
    charge = client.v1.charges.retrieve(str(intent.latest_charge),
                                        {"expand": ["balance_transaction"]})
    bt = charge.balance_transaction
    assert (bt.type, bt.amount, bt.fee, bt.net) == ("charge", 10_000, 320, 9_680)
    (event,) = client.v1.events.list({"type": "payment_intent.succeeded"}).data
    assert event.data.object.id == intent.id
    assert event.request.idempotency_key == "order-o-1"


def test_payment_intent_with_declined_card_raises_card_error_and_emits_payment_failed(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create({
            "amount": 5_000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_chargeDeclined"})
    assert caught.value.code == "card_declined"
    assert caught.value.http_status == 402
    intent_id = caught.value.error.payment_intent.id
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"
    (event,) = client.v1.events.list({"type": "payment_intent.payment_failed"}).data
    assert event.data.object.id == intent_id
    assert client.v1.balance_transactions.list({"type": "charge"}).data == []


def test_payment_intent_can_be_confirmed_in_a_second_call(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create({"amount": 2_000, "currency": "usd"})
    assert intent.status == "requires_payment_method"
    confirmed = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.confirm(intent.id)
    assert caught.value.code == "payment_intent_unexpected_state"


# --------------------------------------------------------------------------- lists & events
def test_auto_paging_iter_walks_250_balance_transactions_both_ways(
    client: stripe.StripeClient, account: str
) -> None:
    for _ in range(250):
        transfer(client, account, 1)
    first_page = client.v1.balance_transactions.list({"limit": 100})
    forward = [bt.id for bt in first_page.auto_paging_iter()]
    assert len(forward) == len(set(forward)) == 250
    oldest = forward[-1]
    backward = client.v1.balance_transactions.list({"ending_before": oldest, "limit": 100})
    assert [bt.id for bt in backward.auto_paging_iter()] == forward[::-1][1:]
    page = client.v1.balance_transactions.list({"limit": 3, "starting_after": forward[1]})
    assert [bt.id for bt in page] == forward[2:5] and page.has_more


def test_balance_transactions_filter_by_created_range_and_type(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    for offset in (0, 100, 200):
        server.clock = functools.partial(int, T0 + offset)
        transfer(client, account, 10 + offset)
    server.clock = lambda: T0 + 300
    client.v1.payment_intents.create({"amount": 900, "currency": "usd", "confirm": True,
                                      "payment_method": "pm_card_visa"})
    window = client.v1.balance_transactions.list({"created": {"gte": T0 + 100, "lt": T0 + 200}})
    assert [bt.amount for bt in window] == [-110]
    assert {bt.type for bt in client.v1.balance_transactions.list({"type": "transfer"})} == {
        "transfer"}
    assert len(client.v1.balance_transactions.list({"created": {"lte": T0 + 200}}).data) == 3


def test_events_list_filters_by_type_and_scopes_connected_account_events(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    created = transfer(client, account)
    platform = client.v1.events.list()
    assert [e.type for e in platform] == ["transfer.created"]
    event = client.v1.events.retrieve(platform.data[0].id)
    assert event.data.object.id == created.id and event.api_version == stripe.api_version
    connected = client.v1.events.list({"type": "account.*"}, {"stripe_account": account})
    assert [(e.type, e.account) for e in connected] == [("account.updated", account)]
    assert connected.data[0].data.previous_attributes.charges_enabled is False


def test_account_link_onboards_the_account_and_redirects_to_return_url(
    server: StripeLocal, client: stripe.StripeClient
) -> None:
    pending = make_account(server, client, onboard=False)
    link = client.v1.account_links.create({
        "account": pending, "refresh_url": "https://veta.test/refresh",
        "return_url": "https://veta.test/return", "type": "account_onboarding"})
    assert link.url.startswith(server.url)
    response = requests.get(link.url, allow_redirects=False, timeout=5)
    assert (response.status_code, response.headers["Location"]) == (302, "https://veta.test/return")
    fetched = client.v1.accounts.retrieve(pending)
    assert fetched.charges_enabled and fetched.payouts_enabled and fetched.details_submitted
    assert fetched.capabilities.transfers == "active"


def test_an_account_onboarded_without_its_webhook_is_seen_only_by_asking(
    server: StripeLocal, client: stripe.StripeClient, receiver: Receiver
) -> None:
    server.add_webhook_url(receiver.url)
    pending = make_account(server, client, onboard=False)
    server.onboard_account(pending, deliver=False)
    assert client.v1.accounts.retrieve(pending).capabilities.transfers == "active"
    [event] = client.v1.events.list({"type": "account.updated"},
                                    {"stripe_account": pending}).data
    # Webhooks go out in order: the next one to arrive is a later account's, not this one.
    other = make_account(server, client)
    delivered = stripe.Webhook.construct_event(*receiver.next(), SECRET)
    assert (delivered.type, delivered.account) == ("account.updated", other)
    assert server.deliver(event.id) == {receiver.url: 200}  # sent only when asked
    assert stripe.Webhook.construct_event(*receiver.next(), SECRET).id == event.id


def test_payouts_of_connected_account_emit_paid_and_failed_events(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    transfer(client, account, 5_000)
    paid = server.create_payout(account, 2_000)
    failed = server.create_payout(account, 1_000, fail=True)
    events = client.v1.events.list({"types": ["payout.paid", "payout.failed"]},
                                   {"stripe_account": account})
    assert [(e.type, e.data.object.id) for e in events] == [
        ("payout.failed", failed["id"]), ("payout.paid", paid["id"])]
    assert events.data[0].data.object.failure_code == "account_closed"
    balance = client.v1.balance.retrieve(options={"stripe_account": account})
    assert balance.available[0].amount == 3_000
    assert client.v1.events.list({"type": "payout.*"}).data == []  # not on the platform


# --------------------------------------------------------------------------- webhooks
def test_sign_payload_matches_the_stripe_sdk_signature() -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    expected = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, 1234)
    assert sign_payload(payload, SECRET, 1234) == expected


def test_events_are_delivered_signed_and_verify_with_construct_event(
    server: StripeLocal, client: stripe.StripeClient, account: str, receiver: Receiver
) -> None:
    server.add_webhook_url(receiver.url)
    created = transfer(client, account)
    payload, header = receiver.next()
    event = stripe.Webhook.construct_event(payload, header, SECRET)
    assert (event.type, event.data.object.id) == ("transfer.created", created.id)
    assert payload == server.signed_event(event.id)[0]


def test_failed_webhook_delivery_is_retried_until_2xx(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    flaky = Receiver(statuses=(500, 503))
    try:
        server.add_webhook_url(flaky.url)
        transfer(client, account)
        attempts = [flaky.next() for _ in range(3)]
        assert len({payload for payload, _ in attempts}) == 1
        for payload, header in attempts:
            stripe.Webhook.construct_event(payload, header, SECRET)
        assert [d.status for d in server.deliveries[:2]] == [500, 503]
    finally:
        flaky.close()


def test_forged_signature_is_rejected(server: StripeLocal, client: stripe.StripeClient,
                                      account: str) -> None:
    transfer(client, account)
    event_id = client.v1.events.list().data[0].id
    payload, header = server.signed_event(event_id)
    forged = sign_payload(payload, "whsec_attacker", int(time.time()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, forged, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace(b"1500", b"9999"), header, SECRET)


def test_stale_signature_is_refused_with_the_default_tolerance(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    transfer(client, account)
    event_id = client.v1.events.list().data[0].id
    payload, stale = server.signed_event(event_id, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(payload, stale, SECRET)
    stripe.Webhook.construct_event(payload, stale, SECRET, tolerance=600)


def test_manual_delivery_mode_sends_nothing_until_asked_and_can_replay_twice(
    receiver: Receiver,
) -> None:
    local = StripeLocal(webhook_secret=SECRET, webhook_urls=[receiver.url],
                        auto_deliver_webhooks=False)
    client = stripe.StripeClient(local.api_key, base_addresses={"api": local.start()})
    try:
        account = make_account(local, client)
        assert local.deliveries == []
        event_id = client.v1.events.list({}, {"stripe_account": account}).data[0].id
        assert local.deliver(event_id) == {receiver.url: 200}
        assert local.deliver(event_id) == {receiver.url: 200}
        first, second = receiver.next(), receiver.next()
        assert first[0] == second[0]
        for payload, header in (first, second):
            assert stripe.Webhook.construct_event(payload, header, SECRET).id == event_id
    finally:
        local.stop()


# --------------------------------------------------------------------------- fault injection
def test_injected_rate_limit_raises_rate_limit_error_and_is_not_saved_for_the_key(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.fail_next("/v1/transfers", error="rate_limit")
    with pytest.raises(stripe.RateLimitError) as caught:
        transfer(client, account, key="k-1")
    assert caught.value.http_status == 429
    assert transfer(client, account, key="k-1").id.startswith("tr_")  # same key runs now
    assert len(client.v1.transfers.list().data) == 1


def test_injected_api_error_is_retried_by_the_sdk_with_the_same_idempotency_key(
    server: StripeLocal, account: str
) -> None:
    retrying = stripe.StripeClient(server.api_key, base_addresses={"api": server.url},
                                   max_network_retries=2)
    server.fail_next("/v1/transfers", error="api_error", method="POST")
    created = transfer(retrying, account)
    assert [t.id for t in retrying.v1.transfers.list()] == [created.id]


def test_response_lost_after_execution_is_recovered_by_idempotent_retry(
    server: StripeLocal, account: str
) -> None:
    retrying = stripe.StripeClient(server.api_key, base_addresses={"api": server.url},
                                   max_network_retries=1)
    server.fail_next("/v1/transfers", error="network", after_execution=True)
    created = transfer(retrying, account)
    assert created.last_response.headers["Idempotent-Replayed"] == "true"
    assert [t.id for t in retrying.v1.transfers.list()] == [created.id]


def test_dropped_connection_raises_api_connection_error(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.fail_next("/v1/transfers", error="network")
    with pytest.raises(stripe.APIConnectionError):
        transfer(client, account)
    assert client.v1.transfers.list().data == []


def test_injected_balance_insufficient_and_server_error_on_a_reversal_path(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    created = transfer(client, account)
    server.fail_next("/v1/transfers/*/reversals", times=2, error="balance_insufficient")
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.transfers.reversals.create(created.id)
        assert caught.value.code == "balance_insufficient"
    assert client.v1.transfers.reversals.create(created.id).amount == 1500


def test_control_endpoint_injects_a_fault_over_http(
    server: StripeLocal, client: stripe.StripeClient
) -> None:
    form = b"path=/v1/balance&error=api_error&times=1"
    with urllib.request.urlopen(f"{server.url}/_local/fail_next", data=form, timeout=5) as resp:
        assert resp.status == 200
    with pytest.raises(stripe.APIError):
        client.v1.balance.retrieve()
    assert client.v1.balance.retrieve().object == "balance"


def test_injected_delay_makes_a_short_client_timeout_fire(server: StripeLocal) -> None:
    impatient = stripe.StripeClient(server.api_key, base_addresses={"api": server.url},
                                    http_client=stripe.RequestsClient(timeout=0.2),
                                    max_network_retries=0)
    server.delay_next("/v1/balance", seconds=1.0)
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.balance.retrieve()


# --------------------------------------------------------------------------- report & CLI
def test_balance_change_csv_parses_and_its_totals_equal_the_api(
    server: StripeLocal, client: stripe.StripeClient, account: str
) -> None:
    server.clock = lambda: T0 - 1
    transfer(client, account, 99)  # before the period
    server.clock = lambda: T0
    paid = transfer(client, account, 1234)
    client.v1.transfers.reversals.create(paid.id, {"amount": 234})
    client.v1.payment_intents.create({"amount": 10_000, "currency": "usd", "confirm": True,
                                      "payment_method": "pm_card_visa"})
    server.create_payout(None, 5_000)
    period: Any = {"gte": T0, "lt": T0 + 86_400}
    query = f"created[gte]={period['gte']}&created[lt]={period['lt']}"
    over_http = requests.get(f"{server.url}/_local/reports/balance_change.csv?{query}", timeout=5)
    assert over_http.text == server.balance_change_csv(period["gte"], period["lt"])
    rows = list(csv.DictReader(io.StringIO(over_http.text)))
    api = list(client.v1.balance_transactions.list({"created": period}).auto_paging_iter())
    assert len(rows) == len(api) == 4
    for column in ("gross", "fee", "net"):
        api_total = sum(getattr(bt, "amount" if column == "gross" else column) for bt in api)
        assert sum(Decimal(row[column]) for row in rows) == Decimal(api_total) / 100
    by_category = {row["reporting_category"]: row for row in rows}
    assert by_category["transfer"]["gross"] == "-12.34"
    assert by_category["transfer"]["connected_account"] == account
    assert by_category["transfer_reversal"]["transfer_metadata[obligation_id]"] == "obl-1"
    assert (by_category["charge"]["fee"], by_category["charge"]["customer_facing_amount"]) == (
        "3.20", "100.00")
    assert by_category["payout"]["created_utc"] == "2026-01-01 00:00:00"


def test_command_line_server_serves_the_sdk_without_monkey_patching() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.payouts.stripe_local", "--port", "0",
         "--webhook-secret", SECRET], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" listening on ")[1].split()[0]
        cli = stripe.StripeClient("sk_test_local", base_addresses={"api": url},
                                  max_network_retries=0)
        account = cli.v1.accounts.create({"type": "express", "country": "GH"})
        assert cli.v1.accounts.retrieve(account.id).id == account.id
    finally:
        proc.terminate()
        proc.wait(timeout=10)
