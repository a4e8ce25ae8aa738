"""Finance's harder days in a browser: a transfer Stripe refuses, shown with Stripe's reason and
retried to PAID; a payout held by a certification suspension and released with a reason; a paid
premium taken back in part (in Spanish, with a decimal comma), refused above what is left, then
in full; a reversal whose answer from Stripe was lost, sent again from the same form and made
once.

Each premium is seeded through the services' own commands (as test_console_story.py sets the
buyer's card): a certified cooperative with a Stripe account, its lot ordered, shipped and
delivered. What finance does is done in the console.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import stripe
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Page, expect

from gateway.auth import TokenSettings, issue_token
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from shared.caller import Role
from tests.browser.conftest import Console, screenshot
from tests.helpers import eventually, lot_input, rpc_as, validity

# 250.000 g gross at 800.0 per mille = 200.000 g fine; Fairmined's USD 4,000 per kg makes
# USD 800.00, under the tests' four-eyes threshold (USD 1,000): one approval pays it.
GROSS, FINENESS, FINE, PREMIUM = "250.000", "800.0", "200.000", "800.00"
# Stripe's words for a platform balance too low to transfer from.
INSUFFICIENT_FUNDS = "You have insufficient available funds in your Stripe account."
# Stripe's answers and webhooks, and the sweep, come while the page refreshes itself.
STRIPE_WAIT_MS = 15_000


@pytest.fixture
def payouts_settings(payouts_settings: dict[str, Any]) -> dict[str, Any]:
    # Veta would retry a refused transfer by itself within a second in the usual test
    # settings; here an hour passes first, so only "Retry now" can send it again.
    return {**payouts_settings, "retry_base_seconds": 3600.0, "retry_cap_seconds": 3600.0}


@dataclass(frozen=True)
class Premium:
    cooperative: str
    producer_id: str
    certification_id: str
    payout_id: str

    def url(self, console: Console) -> str:
        return f"{console.url}/finance/payouts/{self.payout_id}"


def a_delivered_premium(console: Console, cooperative: str) -> Premium:
    """A certified cooperative with a Stripe account sells a lot to a buyer with a saved
    card; the buyer confirms delivery, and the premium is owed."""
    config = console.config
    buyer = f"refinery-{uuid.uuid4().hex[:6]}"
    with rpc_as(config, Role.CERTIFIER) as rpc:
        with entrypoint_waiter(get_container(console.services, PayoutsService),
                               "on_producer_registered"):
            producer_id = rpc.certification.register_producer(
                {"name": cooperative, "country": "CO", "region": "Antioquia"})["id"]
        with entrypoint_waiter(get_container(console.services, ListingsService),
                               "on_certification_granted"):
            granted = rpc.certification.grant_certification({
                "producer_id": producer_id, "standard": "FAIRMINED",
                "certificate_number": f"FM-CO-{uuid.uuid4().hex[:6]}", **validity()})
    [certificate] = granted["certifications"]

    with rpc_as(config, Role.FINANCE) as rpc:
        account = rpc.payouts.create_onboarding_link({"producer_id": producer_id})
        # The cooperative completes Stripe's form; Stripe tells payouts by webhook.
        console.stripe.onboard_account(account["stripe_account_id"])
        eventually(lambda: rpc.payouts.get_payout_account(producer_id)["transfers_active"])
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        rpc.payouts.set_buyer_funding({"buyer_id": buyer, "payment_method": "pm_card_visa"})
    with rpc_as(config, Role.PRODUCER, producer_id) as rpc:
        lot = rpc.listings.publish_listing(lot_input(producer_id, "FAIRMINED", GROSS, FINENESS))
    with rpc_as(config, Role.BUYER, buyer) as rpc, entrypoint_waiter(
            get_container(console.services, OrdersService), "on_listing_reserved"):
        order = rpc.orders.place_order({"buyer_id": buyer, "listing_id": lot["id"],
                                        "fine_weight": FINE})
    with rpc_as(config, Role.PRODUCER, producer_id) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "AWB-9"})
    with rpc_as(config, Role.BUYER, buyer) as rpc, entrypoint_waiter(
            get_container(console.services, PayoutsService), "on_order_delivered"):
        rpc.orders.confirm_delivery({"order_id": order["id"], "received_gross_weight": GROSS,
                                     "received_fineness": FINENESS})
    with rpc_as(config, Role.FINANCE) as rpc:
        [owed] = [item["node"] for item in rpc.payouts.list_obligations(producer_id, 10)["items"]]
    assert owed["amount"] == PREMIUM
    return Premium(cooperative, producer_id, certificate["id"], owed["id"])


def finance_token(console: Console, subject: str) -> str:
    return issue_token(TokenSettings.from_config(console.config), Role.FINANCE,
                       subject=subject)


def funded(console: Console, premium: Premium, subject: str) -> Page:
    """Finance opens the premium; its page refreshes itself until the buyer's card pays."""
    page = console.sign_in(console.context("en-GB"), finance_token(console, subject))
    page.goto(premium.url(console))
    expect(page.locator("h1")).to_contain_text(premium.cooperative)
    expect(page.locator("#payout-status")).to_have_text("Funded", timeout=STRIPE_WAIT_MS)
    return page


def transfers_of(console: Console, payout_id: str) -> list[Any]:
    client = stripe.StripeClient(console.stripe.api_key,
                                 base_addresses={"api": console.stripe.url},
                                 max_network_retries=0)
    return [t for t in client.v1.transfers.list({"limit": 100}).auto_paging_iter()
            if t.metadata.to_dict().get("obligation_id") == payout_id]


def test_a_transfer_stripe_refuses_shows_stripe_s_reason_and_is_retried_to_paid(
        console: Console) -> None:
    premium = a_delivered_premium(console, "Cooperativa Minera Quebrada Honda")
    console.stripe.fail_next("/v1/transfers", error="balance_insufficient", method="POST")
    ana = funded(console, premium, "ana.finance")
    ana.get_by_role("button", name="Approve", exact=True).click()
    expect(ana.locator(".flash")).to_have_text("Your approval is recorded.")

    # Stripe refuses the transfer: the page stops waiting and says why, in Stripe's words.
    expect(ana.locator("#payout-status")).to_have_text("Failed", timeout=STRIPE_WAIT_MS)
    failure = ana.locator("#payout-failure")
    expect(failure).to_contain_text("balance_insufficient")
    expect(failure).to_contain_text(INSUFFICIENT_FUNDS)
    expect(failure).to_contain_text("Veta tries again by itself. Next attempt:")
    expect(ana.get_by_role("button", name="Retry now")).to_be_visible()

    # The premiums page puts it first, with Stripe's reason and the button to try again.
    ana.goto(f"{console.url}/finance")
    card = ana.locator(f"#attention-{premium.payout_id}")
    expect(card).to_contain_text(premium.cooperative)
    expect(card).to_contain_text("Failed")
    expect(card).to_contain_text(f"Stripe's answer (Transfer): balance_insufficient: "
                                 f"{INSUFFICIENT_FUNDS}")
    expect(ana.locator(".tabs").get_by_role("link", name=re.compile("^Failed"))).to_be_visible()
    screenshot(ana, "finance-needs-attention")
    card.get_by_role("button", name="Retry now").click()

    expect(ana).to_have_url(premium.url(console))
    expect(ana.locator(".flash")).to_have_text("The payout is being tried again.")
    expect(ana.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)
    expect(ana.locator("#payout-failure")).to_have_count(0)
    expect(ana.get_by_role("button", name="Retry now")).to_have_count(0)
    history = ana.locator("#payout-history tbody tr")
    expect(history.filter(has_text="Transfer failed")).to_contain_text(INSUFFICIENT_FUNDS)
    expect(history.filter(has_text="Retry requested")).to_contain_text("ana.finance")
    expect(history.last).to_contain_text("Paid")
    # One transfer at Stripe, sent under the second attempt's key.
    [transfer] = transfers_of(console, premium.payout_id)
    assert transfer.amount == 80000
    [sent] = [r for r in console.stripe.requests if r.path == "/v1/transfers"
              and r.method == "POST" and r.status == 200
              and premium.payout_id in (r.idempotency_key or "")]
    assert sent.idempotency_key == f"veta-premium-{premium.payout_id}-transfer-2"

    ana.goto(f"{console.url}/finance")
    expect(ana.locator("tbody tr", has_text=premium.cooperative)).to_contain_text("Paid")
    expect(ana.locator(f"#attention-{premium.payout_id}")).to_have_count(0)


def test_a_payout_held_by_a_suspended_certification_is_released_with_a_reason(
        console: Console) -> None:
    premium = a_delivered_premium(console, "Asociación Minera El Tambo")
    ben = funded(console, premium, "ben.finance")

    # The certifier suspends the cooperative's certification: its unpaid premium waits.
    # (Through the certification service, as the certifier: this test is about finance.)
    with rpc_as(console.config, Role.CERTIFIER) as rpc, entrypoint_waiter(
            get_container(console.services, PayoutsService), "on_certification_suspended"):
        rpc.certification.suspend_certification({
            "certification_id": premium.certification_id,
            "reason": "Mercury found in the tailings at the mine"})

    ben.goto(f"{console.url}/finance")
    card = ben.locator(f"#attention-{premium.payout_id}")
    expect(card).to_contain_text("On hold")
    expect(card).to_contain_text(
        "certification suspended: Mercury found in the tailings at the mine")
    expect(ben.locator(".tabs").get_by_role("link", name=re.compile("^On hold"))).to_be_visible()

    # Released without a reason: the API's typed error beside the reason, which is focused.
    card.get_by_role("button", name="Release hold").click()
    reason = ben.get_by_label("Reason for releasing")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(ben.locator("#release-reason-error")).to_contain_text("say why")
    expect(reason).to_be_focused()
    expect(ben.locator("#payout-status")).to_have_text("On hold")
    expect(ben.locator("#payout-hold")).to_contain_text("Mercury found in the tailings")

    reason.fill("The suspension concerns another site; compliance cleared this delivery.")
    ben.get_by_role("button", name="Release hold").click()
    expect(ben.locator(".flash")).to_have_text("The hold is released.")
    expect(ben.locator("#payout-status")).to_have_text("Funded")
    released = ben.locator("#payout-history tbody tr").last
    expect(released).to_contain_text("Hold released")
    expect(released).to_contain_text("ben.finance")
    expect(released).to_contain_text("compliance cleared this delivery")

    # Released, it is paid like any other.
    ben.get_by_role("button", name="Approve", exact=True).click()
    expect(ben.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)
    ben.goto(f"{console.url}/finance")
    expect(ben.locator(f"#attention-{premium.payout_id}")).to_have_count(0)


def test_a_paid_premium_is_taken_back_in_part_then_in_full(console: Console) -> None:
    premium = a_delivered_premium(console, "Cooperativa Aurífera San Roque")
    carla = funded(console, premium, "carla.finance")
    # Nothing has been paid yet, so there is nothing to take back.
    expect(carla.get_by_role("button", name="Reverse payout")).to_have_count(0)
    carla.get_by_role("button", name="Approve", exact=True).click()
    expect(carla.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)

    amount = carla.get_by_label("Amount to take back")
    reason = carla.get_by_label("Reason for reversing")
    expect(carla.locator("#reverse-amount-hint")).to_contain_text("Up to $800.00")
    # No reason: refused beside the reason, and what was typed is kept.
    amount.fill("300.00")
    carla.get_by_role("button", name="Reverse payout").click()
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(carla.locator("#reverse-reason-error")).to_contain_text(
        "String should have at least 1 character")
    expect(reason).to_be_focused()
    expect(amount).to_have_value("300.00")

    # More than was paid: refused beside the amount.
    amount.fill("900.00")
    reason.fill("The refinery's assay found less gold than the cooperative's")
    carla.get_by_role("button", name="Reverse payout").click()
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(carla.locator("#reverse-amount-error")).to_contain_text(
        "between 0.01 and 800.00 can be reversed")
    expect(amount).to_be_focused()
    expect(carla.locator("#payout-status")).to_have_text("Paid")
    screenshot(carla, "finance-payout-reverse-refused")

    # In Spanish, with a decimal comma: part of it.
    carla.goto(premium.url(console))
    carla.get_by_role("link", name="Español").click()
    carla.get_by_label("Importe a recuperar").fill("300,00")
    carla.get_by_label("Motivo de la reversión").fill(
        "El ensayo de la refinería halló menos oro")
    carla.get_by_role("button", name="Revertir el pago").click()
    expect(carla.locator(".flash")).to_have_text(
        "El importe se recupera de la cuenta de Stripe de la cooperativa.")
    expect(carla.locator("#payout-status")).to_have_text("Revertida")
    expect(carla.locator(".facts")).to_contain_text("300,00\xa0US$")
    expect(carla.locator("#reverse-amount-hint")).to_contain_text("500,00\xa0US$")
    carla.get_by_role("link", name="English").click()

    # Then the rest: no amount takes back all that is left.
    carla.get_by_label("Reason for reversing").fill("The buyer returned the rest of the lot")
    carla.get_by_role("button", name="Reverse payout").click()
    expect(carla.locator(".flash")).to_have_text(
        "The amount is taken back from the cooperative's Stripe account.")
    expect(carla.locator(".facts")).to_contain_text("$800.00")
    expect(carla.locator("#payout-status")).to_have_text("Reversed")
    expect(carla.get_by_role("button", name="Reverse payout")).to_have_count(0)
    reversals = carla.locator("#payout-history tbody tr", has_text=re.compile(
        r"reversed in (part|full)"))
    expect(reversals).to_have_count(2)
    expect(reversals.first).to_contain_text("30000 of 80000 cents")
    expect(reversals.last).to_contain_text("80000 of 80000 cents")
    screenshot(carla, "finance-payout-reversed")
    # At Stripe: one transfer, all of it reversed, in two reversals that carry who asked
    # and why.
    [transfer] = transfers_of(console, premium.payout_id)
    assert (transfer.amount_reversed, transfer.reversed) == (80000, True)
    assert sorted((r.amount, r.metadata["requested_by"], r.metadata["reason"])
                  for r in transfer.reversals.data) == [
        (30000, "carla.finance", "El ensayo de la refinería halló menos oro"),
        (50000, "carla.finance", "The buyer returned the rest of the lot")]


def test_a_reversal_sent_again_after_stripes_answer_was_lost_is_made_once(
        console: Console) -> None:
    premium = a_delivered_premium(console, "Cooperativa Minera El Limón")
    dora = funded(console, premium, "dora.finance")
    dora.get_by_role("button", name="Approve", exact=True).click()
    expect(dora.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)
    form_key = dora.locator("form[action$='/reverse'] input[name=idempotencyKey]")
    drawn_with = form_key.input_value()
    assert drawn_with

    # Stripe makes the reversal, but its answer never reaches Veta; its webhook does.
    console.stripe.fail_next("/v1/transfers/*/reversals", error="network", method="POST",
                             after_execution=True)
    dora.get_by_label("Amount to take back").fill("300.00")
    dora.get_by_label("Reason for reversing").fill("The refinery's assay found less gold")
    dora.get_by_role("button", name="Reverse payout").click()
    expect(dora.locator("#reverse-payoutId-error")).to_contain_text(
        "asking again cannot reverse it twice")
    expect(form_key).to_have_value(drawn_with)  # the refused form is still that request
    with rpc_as(console.config, Role.FINANCE) as rpc:
        eventually(lambda: rpc.payouts.get_obligations(
            [premium.payout_id])[0]["reversed_amount"] == "300.00")

    # Sent again from the same form: the reversed total has moved, yet it is the same
    # request, so finance sees its outcome and the cooperative loses 300.00 once.
    dora.get_by_role("button", name="Reverse payout").click()
    expect(dora.locator(".flash")).to_have_text(
        "The amount is taken back from the cooperative's Stripe account.")
    expect(dora.locator("#payout-status")).to_have_text("Reversed")
    expect(dora.locator(".facts")).to_contain_text("$300.00")
    expect(dora.locator("#reverse-amount-hint")).to_contain_text("Up to $500.00")
    expect(dora.locator("#payout-history tbody tr", has_text="reversed in")).to_have_count(1)
    [transfer] = transfers_of(console, premium.payout_id)
    assert (transfer.amount_reversed, len(transfer.reversals.data)) == (30000, 1)
    # The form drawn afresh is a new request.
    expect(form_key).not_to_have_value(drawn_with)
