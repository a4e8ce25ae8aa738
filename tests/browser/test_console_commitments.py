"""A buyer's sourcing commitments in the console: it makes one (the API's typed error beside
the field it names; the form sent twice makes one), follows a lot that would fill the
remainder to order from it, sees the progress bar move once the delivery is confirmed, amends
it (not below what was delivered), reads it in Spanish, and cancels it.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Locator, Page, expect

from services.orders.service import OrdersService
from shared.caller import Role
from tests.browser.conftest import Console, screenshot
from tests.browser.test_console_cooperative import certified_cooperative
from tests.helpers import rpc_as, token
from tests.integration.test_orders_lifecycle import publish

COOPERATIVE = "Cooperativa Minera El Dorado del Sur"


def progress_of(scope: Page | Locator) -> Locator:
    return scope.get_by_role("progressbar")


def fact(scope: Page | Locator, term: str) -> Locator:
    """The value beside `term` among a commitment's progress figures."""
    return scope.locator(".progress-facts div").filter(
        has_text=re.compile(f"^{term}")).locator("dd")


def test_a_buyer_commits_orders_a_suggested_lot_and_follows_amends_and_cancels_it(
        console: Console) -> None:
    producer_id = certified_cooperative(console, COOPERATIVE)
    # 915.000 g and 183.000 g of fine gold: only the first alone fills 600 g.
    whole = publish(console.services, console.config, producer_id, gross="1000.000",
                    mine_site={"name": "Mina La Esperanza", "region": "Antioquia",
                               "country": "CO"})
    publish(console.services, console.config, producer_id, gross="200.000",
            mine_site={"name": "Mina El Porvenir", "region": "Antioquia", "country": "CO"})
    buyer_id = f"jeweller-{uuid.uuid4().hex[:8]}"
    buyer = console.sign_in(console.context("en-GB"),
                            token(console.config, Role.BUYER, buyer_id))

    buyer.get_by_role("link", name="Commitments").click()
    expect(buyer.locator(".empty")).to_contain_text("You have no sourcing commitment yet.")
    buyer.get_by_role("link", name="Make a commitment").first.click()
    expect(buyer.locator("h1")).to_have_text("Make a sourcing commitment")
    expect(buyer.get_by_label("From")).to_have_value(date.today().isoformat())
    buyer.get_by_label("Fine gold to source (g)").fill("600.000")
    buyer.get_by_label("Fairmined", exact=True).check()
    buyer.get_by_label(f"{COOPERATIVE} (CO)").check()
    buyer.get_by_label("Until").fill((date.today() + timedelta(days=89)).isoformat())
    countries = buyer.get_by_label("Countries of the mine")
    countries.fill("CO, XX")
    form_key = buyer.locator("form[action='/commitments/new'] input[name=idempotencyKey]")
    drawn_with = form_key.input_value()
    assert drawn_with
    buyer.get_by_role("button", name="Make the commitment").click()

    # The API refuses the second country: its error is beside the countries, focused.
    expect(countries).to_have_attribute("aria-invalid", "true")
    expect(buyer.locator("#countries-error")).to_contain_text(
        "must be an ISO 3166-1 alpha-2 country code")
    expect(countries).to_be_focused()
    expect(buyer.get_by_label("Fine gold to source (g)")).to_have_value("600.000")
    expect(buyer.get_by_label("Fairmined", exact=True)).to_be_checked()
    expect(buyer.get_by_label(f"{COOPERATIVE} (CO)")).to_be_checked()
    expect(form_key).to_have_value(drawn_with)  # the refused form is still that request

    countries.fill("CO")
    sent = buyer.locator("form[action='/commitments/new']").evaluate(
        "form => new URLSearchParams(new FormData(form)).toString()")
    buyer.get_by_role("button", name="Make the commitment").click()
    expect(buyer.locator(".flash")).to_contain_text("The commitment is made.")
    expect(buyer).to_have_url(re.compile(r"/commitments/[^/]+$"))
    commitment_url = buyer.url
    # The same form sent again (a double click, or again after the answer was lost) leads
    # to the commitment it made; no second one is made.
    again = buyer.request.post(f"{console.url}/commitments/new", data=sent, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert (again.status, again.url) == (200, commitment_url)
    expect(buyer.locator("h1")).to_have_text("600.000 g of Fairmined")
    expect(progress_of(buyer)).to_have_attribute("aria-valuenow", "0.00")
    expect(buyer.locator(".progress-percent")).to_have_text("0.00%")

    # The lots that would fill what remains, best first: the one that alone fills it.
    suggestions = buyer.locator(".suggestion")
    expect(suggestions).to_have_count(2)
    expect(suggestions.nth(0)).to_contain_text("Mina La Esperanza")
    expect(suggestions.nth(0)).to_contain_text("Fills the remainder")
    expect(suggestions.nth(0)).to_contain_text("600.000 g")
    expect(suggestions.nth(1)).to_contain_text("Mina El Porvenir")
    expect(suggestions.nth(1)).to_contain_text("183.000 g")
    expect(suggestions.nth(1)).not_to_contain_text("Fills the remainder")

    # Followed to its lot, whose order form starts at what the commitment needs.
    suggestions.nth(0).get_by_role("link", name=re.compile("Mina La Esperanza")).click()
    expect(buyer).to_have_url(re.compile(f"/lots/{whole['id']}"))
    wanted = buyer.get_by_label("Fine gold wanted (g)")
    expect(wanted).to_have_value("600.000")
    wanted.fill("400.000")
    with entrypoint_waiter(get_container(console.services, OrdersService),
                           "on_listing_reserved"):
        buyer.get_by_role("button", name="Place order").click()
        expect(buyer.locator(".flash")).to_contain_text("Order placed")
    order_id = buyer.url.rsplit("/", 1)[-1]

    buyer.goto(commitment_url)
    expect(fact(buyer, "Ordered")).to_have_text("400.000 g")
    expect(progress_of(buyer)).to_have_attribute("aria-valuenow", "0.00")

    with rpc_as(console.config, Role.PRODUCER, producer_id) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order_id, "shipment_reference": "AWB-91"})
    buyer.goto(f"{console.url}/orders/{order_id}")
    buyer.get_by_label("Received gross weight (g)").fill("437.500")
    buyer.get_by_label("Received fineness (‰)").fill("914.6")
    buyer.get_by_role("button", name="Confirm delivery").click()
    expect(buyer.locator(".flash")).to_contain_text("Delivery confirmed")

    # The delivery (400.138 g) moved the bar: 400.138 of 600 g is 66.69%.
    buyer.get_by_role("link", name="Commitments").click()
    expect(buyer.locator(".commitment-card")).to_have_count(1)
    card = buyer.locator(".commitment-card", has_text="600.000 g of Fairmined")
    bar = progress_of(card)
    expect(bar).to_have_attribute("aria-valuenow", "66.69")
    expect(bar).to_have_attribute("aria-valuetext", "66.69% delivered: 400.138 g of 600.000 g")
    expect(card.locator(".progress-percent")).to_have_text("66.69%")
    expect(fact(card, "Delivered")).to_have_text("400.138 g")
    expect(fact(card, "Remaining")).to_have_text("199.862 g")
    expect(card.locator(".progress-summary")).to_contain_text("On track")
    screenshot(buyer, "buyer-commitments")

    buyer.goto(commitment_url)
    expect(buyer.locator("#drawdowns-title + .table-wrap")).to_contain_text(order_id[:8])
    expect(buyer.locator("#drawdowns-title + .table-wrap")).to_contain_text("400.138 g")
    # What remains (199.862 g) is still best filled from what is left of the lot ordered.
    expect(suggestions.nth(0)).to_contain_text("Mina La Esperanza")
    expect(suggestions.nth(0)).to_contain_text("515.000 g")
    expect(suggestions.nth(0)).to_contain_text("199.862 g")
    expect(suggestions.nth(1)).not_to_contain_text("Fills the remainder")

    # Not below what was delivered: the refusal is beside the quantity, which is focused.
    quantity = buyer.get_by_label("Fine gold to source (g)")
    quantity.fill("300.000")
    buyer.get_by_role("button", name="Amend", exact=True).click()
    expect(quantity).to_have_attribute("aria-invalid", "true")
    expect(buyer.locator("#fineWeight-error")).to_contain_text(
        "400.138 g were already delivered against it")
    expect(quantity).to_be_focused()
    expect(progress_of(buyer)).to_have_attribute("aria-valuenow", "66.69")

    quantity.fill("800.000")
    buyer.get_by_role("button", name="Amend", exact=True).click()
    expect(buyer.locator(".flash")).to_have_text(
        "The commitment is amended; what was delivered still counts.")
    expect(buyer.locator("h1")).to_have_text("800.000 g of Fairmined")
    expect(progress_of(buyer)).to_have_attribute("aria-valuenow", "50.02")
    expect(fact(buyer, "Remaining")).to_have_text("399.862 g")
    screenshot(buyer, "buyer-commitment")

    # The same page in Spanish, numbers written the Spanish way.
    buyer.get_by_role("link", name="Español").click()
    expect(buyer.locator("h1")).to_have_text("800,000 g de Fairmined")
    expect(buyer.locator(".progress-percent")).to_have_text("50,02\xa0%")
    expect(progress_of(buyer)).to_have_attribute(
        "aria-valuetext", "50,02\xa0% entregado: 400,138 g de 800,000 g")
    expect(fact(buyer, "Restante")).to_have_text("399,862 g")
    expect(buyer.locator(".progress-summary")).to_contain_text("Al día")
    expect(buyer.locator("#fill-title")).to_have_text("Lotes que completarían lo que falta")
    screenshot(buyer, "buyer-commitment-es")
    buyer.get_by_role("link", name="English").click()

    buyer.get_by_label("Reason for cancelling").fill("Sourcing moved to another refinery")
    buyer.get_by_role("button", name="Cancel commitment").click()
    expect(buyer.locator(".flash")).to_have_text("The commitment is cancelled.")
    expect(buyer.locator("#commitment-status")).to_have_text("Cancelled")
    expect(buyer.locator(".page-head")).to_contain_text("Sourcing moved to another refinery")
    expect(buyer.get_by_role("button", name="Amend", exact=True)).to_have_count(0)
    expect(buyer.locator(".suggestion")).to_have_count(0)
    # What was delivered stays counted on the cancelled commitment.
    expect(progress_of(buyer)).to_have_attribute("aria-valuenow", "50.02")
