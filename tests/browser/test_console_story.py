"""The console's story in a browser: a certifier certifies a cooperative, the cooperative lists
a lot and opens its Stripe account, a buyer finds and orders it, the cooperative ships, the
buyer confirms delivery, two finance users approve the premium (four eyes), it is paid, and a
reconciliation run shows it matched; the cooperative's pages in Spanish, the others in English.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import stripe
from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Page, expect

from gateway.auth import TokenSettings, issue_token
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from shared.caller import Role
from tests.browser.conftest import PHONE, Console, screenshot
from tests.helpers import rpc_as, token

BUYER = "refinery-alpine"
FIRST_APPROVER, SECOND_APPROVER = "ana.finance", "ben.finance"
# Stripe's answers and webhooks, and the sweep, come while the page refreshes itself.
STRIPE_WAIT_MS = 15_000


def finance_token(console: Console, subject: str) -> str:
    return issue_token(TokenSettings.from_config(console.config), Role.FINANCE,
                       subject=subject)


def buyer_saves_a_card(console: Console) -> None:
    # Saving a card is Stripe.js's business in the buyer's own systems, not a console page.
    with rpc_as(console.config, Role.BUYER, BUYER) as rpc:
        rpc.payouts.set_buyer_funding({"buyer_id": BUYER, "payment_method": "pm_card_visa"})


def cooperative_opens_its_stripe_account(console: Console, cooperative: Page) -> None:
    cooperative.goto(f"{console.url}/cooperative")
    account = cooperative.locator("#payout-account")
    expect(account).to_contain_text("abra una cuenta de Stripe")
    account.get_by_role("button", name="Configurar pagos con Stripe").click()
    expect(cooperative.locator("h1")).to_have_text("Pagos con Stripe")
    # The local Stripe server completes the form and sends the cooperative back to its page.
    cooperative.get_by_role("link", name="Continuar a Stripe").click()
    expect(cooperative).to_have_url(re.compile(r"/cooperative$"))
    expect(cooperative.locator("#payout-account")).to_contain_text(
        "Las primas se pagan en su cuenta de Stripe acct_", timeout=STRIPE_WAIT_MS)


def certify_a_cooperative(console: Console) -> str:
    page = console.sign_in(console.context(), token(console.config, Role.CERTIFIER))
    expect(page).to_have_url(re.compile(r"/certifier$"))
    page.get_by_label("Legal name").fill("Cooperativa Aurífera Río Verde")
    page.get_by_label("Country").fill("CO")
    page.get_by_label("Region").fill("Antioquia")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".flash")).to_have_text("The cooperative is registered.")
    producer_id = page.url.rsplit("/", 1)[-1]

    page.get_by_label("Standard").select_option("FAIRMINED_ECOLOGICAL")
    page.get_by_label("Certificate number").fill("FME-CO-0001")
    page.get_by_label("Valid from").fill((date.today() - timedelta(days=300)).isoformat())
    # Ends within 30 days, so the cooperative is warned.
    page.get_by_label("Valid until").fill((date.today() + timedelta(days=20)).isoformat())
    with entrypoint_waiter(get_container(console.services, ListingsService),
                           "on_certification_granted"):
        page.get_by_role("button", name="Grant certification").click()
        expect(page.locator(".flash")).to_have_text("The certification is recorded.")
    expect(page.locator(".card", has_text="FME-CO-0001")).to_contain_text("Certified")
    page.goto(f"{console.url}/certifier")
    screenshot(page, "certifier-cooperatives")
    return producer_id


def list_a_lot_in_spanish(console: Console, cooperative: Page) -> str:
    cooperative.goto(f"{console.url}/cooperative/lots/new")
    expect(cooperative.locator("h1")).to_have_text("Publicar un lote nuevo")
    fine = cooperative.locator("output[data-fine-output]")
    cooperative.get_by_label("Peso bruto (g)").fill("1250,000")
    cooperative.get_by_label("Ley (‰)", exact=True).fill("915,0")
    # Live, exact and in the Spanish way of writing numbers: 1,250 g x 915.0 per mille.
    expect(fine).to_have_text("1.143,750 g")
    cooperative.get_by_label("Ley (‰)", exact=True).fill("914,6")
    expect(fine).to_have_text("1.143,250 g")
    cooperative.get_by_label("Nombre de la mina").fill("Mina La Esperanza")
    cooperative.get_by_label("Referencia del ensayo").fill("LAB-MED-2211")
    cooperative.get_by_label("Latitud").fill("6.2442")
    cooperative.get_by_label("Longitud").fill("-75.5812")
    cooperative.get_by_label("País").fill("XX")
    cooperative.get_by_role("button", name="Publicar lote").click()

    # The API's typed error, beside its field, translated; the field is marked and focused.
    country = cooperative.get_by_label("País")
    expect(country).to_have_attribute("aria-invalid", "true")
    expect(cooperative.locator("#mineSite-country-error")).to_contain_text(
        "debe ser un código de país ISO 3166-1 alfa-2, como CO o PE")
    expect(country).to_be_focused()
    expect(cooperative.get_by_label("Peso bruto (g)")).to_have_value("1250,000")
    screenshot(cooperative, "cooperative-lot-form-es")

    country.fill("CO")
    cooperative.get_by_role("button", name="Publicar lote").click()
    expect(cooperative.locator(".flash")).to_have_text("El lote está publicado.")
    expect(cooperative.locator("main")).to_contain_text("1.143,250 g")
    return cooperative.url.rsplit("/", 1)[-1]


def test_a_lot_goes_from_the_cooperative_to_the_buyer_and_its_premium_to_finance(
        console: Console) -> None:
    buyer_saves_a_card(console)
    producer_id = certify_a_cooperative(console)

    # The cooperative, on a phone, in Spanish (from the browser's language).
    cooperative = console.sign_in(console.context("es-CO", PHONE),
                                  token(console.config, Role.PRODUCER, producer_id))
    expect(cooperative).to_have_url(re.compile(r"/cooperative$"))
    expect(cooperative.locator(".banner-warning")).to_contain_text("FME-CO-0001")
    expect(cooperative.locator(".banner-warning")).to_contain_text("en 20 días")
    lot_id = list_a_lot_in_spanish(console, cooperative)
    cooperative_opens_its_stripe_account(console, cooperative)

    # The buyer, in English, finds the lot with the listings filters.
    buyer = console.sign_in(console.context("en-GB"), token(console.config, Role.BUYER, BUYER))
    expect(buyer).to_have_url(re.compile(r"/lots$"))
    buyer.get_by_label("Fairmined Ecological").check()
    buyer.get_by_label("Minimum fineness (‰)").fill("900.0")
    buyer.get_by_label("Country of the mine").fill("CO")
    buyer.get_by_role("button", name="Search").click()
    result = buyer.locator(".lot-card", has_text="Cooperativa Aurífera Río Verde")
    expect(result).to_contain_text("1,143.250 g")
    expect(result).to_contain_text("914.6 ‰")
    screenshot(buyer, "buyer-search")
    buyer.get_by_label("Minimum fineness (‰)").fill("950.0")
    buyer.get_by_role("button", name="Search").click()
    expect(buyer.locator(".lot-card")).to_have_count(0)

    buyer.goto(f"{console.url}/lots/{lot_id}")
    expect(buyer.locator("h1")).to_have_text("Mina La Esperanza")
    expect(buyer.locator("figure.map svg title")).to_contain_text("6.2442° N, 75.5812° W")
    screenshot(buyer, "buyer-lot")
    buyer.get_by_label("Fine gold wanted (g)").fill("400.000")
    with entrypoint_waiter(get_container(console.services, OrdersService),
                           "on_listing_reserved"):
        buyer.get_by_role("button", name="Place order").click()
        expect(buyer.locator(".flash")).to_contain_text("Order placed")
    order_url = buyer.url
    buyer.reload()
    expect(buyer.locator("#order-status")).to_have_text("Confirmed")
    screenshot(buyer, "buyer-lot-ordered")

    # The cooperative marks it shipped.
    cooperative.goto(f"{console.url}/cooperative")
    order_card = cooperative.locator(".order-card", has_text="Confirmado")
    order_card.get_by_label("Referencia del envío").fill("AWB-77")
    order_card.get_by_role("button", name="Marcar como enviado").click()
    expect(cooperative.locator(".flash")).to_have_text("El pedido quedó marcado como enviado.")
    expect(cooperative.locator(".order-card")).to_contain_text("AWB-77")

    # The buyer confirms delivery with its receiving assay; the fine weight is shown live.
    buyer.goto(order_url)
    expect(buyer.locator("#order-status")).to_have_text("Shipped")
    buyer.get_by_label("Received gross weight (g)").fill("437.500")
    buyer.get_by_label("Received fineness (‰)").fill("914.6")
    # 437.500 g x 914.6 per mille = 400.1375 g, half-even to the milligram.
    expect(buyer.locator("output[data-fine-output]")).to_have_text("400.138 g")
    with entrypoint_waiter(get_container(console.services, PayoutsService),
                           "on_order_delivered"):
        buyer.get_by_role("button", name="Confirm delivery").click()
        expect(buyer.locator(".flash")).to_contain_text("Delivery confirmed")
    expect(buyer.locator("#order-status")).to_have_text("Delivered")
    expect(buyer.locator("main")).to_contain_text("400.138 g")
    screenshot(buyer, "buyer-order-delivered")

    # Finance sees the premium: 400.138 g x USD 6,000 per kg = USD 2,400.83.
    ana = console.sign_in(console.context("en-GB"), finance_token(console, FIRST_APPROVER))
    expect(ana).to_have_url(re.compile(r"/finance$"))
    row = ana.locator("tbody tr", has_text="Cooperativa Aurífera Río Verde")
    expect(row).to_contain_text("$2,400.83")
    expect(row).to_contain_text("$6,000.00")
    expect(ana.locator(".chart")).to_contain_text("Cooperativa Aurífera Río Verde")
    screenshot(ana, "finance-premiums")
    ana.get_by_role("link", name="Español").click()
    expect(ana.get_by_role("heading", level=1)).to_have_text(
        "Primas adeudadas a las cooperativas")
    expect(row).to_contain_text("2.400,83 US$")
    screenshot(ana, "finance-premiums-es")
    ana.get_by_role("link", name="English").click()

    payout_url = four_eyes_approve_the_premium(console, ana)
    reconcile_the_month(console, payout_url)

    # The cooperative sees what it has earned, and that it is paid.
    cooperative.goto(f"{console.url}/cooperative")
    expect(cooperative.locator(".totals")).to_contain_text("2.400,83 US$")
    expect(cooperative.locator(".total", has_text="Pagada")).to_contain_text("2.400,83 US$")
    expect(cooperative.locator(".total", has_text="Pendiente")).to_contain_text("0,00 US$")
    screenshot(cooperative, "cooperative-home-es")


def four_eyes_approve_the_premium(console: Console, ana: Page) -> str:
    """Ana asks, cannot approve her own request, Ben (on a phone) gives the second approval,
    and the premium is paid."""
    ana.locator("tbody tr", has_text="Cooperativa Aurífera Río Verde").get_by_role(
        "link", name="Cooperativa Aurífera Río Verde").click()
    expect(ana.locator("h1")).to_contain_text("$2,400.83")
    payout_url = ana.url
    # Funded once the buyer's saved card is charged; the page refreshes itself until then.
    expect(ana.locator("#payout-status")).to_have_text("Funded", timeout=STRIPE_WAIT_MS)
    expect(ana.locator("#approvals-count")).to_have_text("0 of 2 approvals")
    expect(ana.locator("#four-eyes")).to_contain_text("two different finance users must approve")

    # A reason is needed to reject: the API's typed error, beside the field, which is focused.
    ana.get_by_role("button", name="Reject").click()
    reason = ana.get_by_label("Reason for rejecting")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(ana.locator("#reject-reason-error")).to_contain_text("say why")
    expect(reason).to_be_focused()
    expect(ana.locator("#payout-status")).to_have_text("Funded")

    ana.get_by_role("button", name="Approve", exact=True).click()
    expect(ana.locator(".flash")).to_have_text("Your approval is recorded.")
    expect(ana.locator("#approvals-count")).to_have_text("1 of 2 approvals")
    expect(ana.locator(".approvers")).to_contain_text(FIRST_APPROVER)
    expect(ana.locator("#waiting-for-second")).to_contain_text(
        "a second finance user must approve it")
    expect(ana.locator("#payout-status")).to_have_text("Funded")

    # She cannot approve her own request: the API refuses, and says so beside the button.
    second = ana.get_by_role("button", name="Give the second approval")
    second.click()
    expect(ana.locator("#approve-payoutId-error")).to_contain_text(
        "you already approved this payout: a second finance user must approve it")
    expect(second).to_have_attribute("aria-describedby", "approve-payoutId-error")
    expect(second).to_be_focused()
    expect(ana.locator("#approvals-count")).to_have_text("1 of 2 approvals")
    screenshot(ana, "finance-payout-four-eyes")
    ana.get_by_role("link", name="Español").click()
    expect(ana.locator("#approvals-count")).to_have_text("1 de 2 aprobaciones")
    screenshot(ana, "finance-payout-four-eyes-es")
    ana.get_by_role("link", name="English").click()

    # Ben, on a phone, gives the second approval; the sweep pays it through Stripe.
    ben = console.sign_in(console.context("en-GB", PHONE),
                          finance_token(console, SECOND_APPROVER))
    ben.goto(payout_url)
    expect(ben.locator(".approvers")).to_contain_text(FIRST_APPROVER)
    ben.keyboard.press("Tab")
    expect(ben.get_by_role("link", name="Skip to content")).to_be_focused()
    ben.get_by_role("button", name="Give the second approval").click()
    expect(ben.locator(".flash")).to_have_text("Your approval is recorded.")
    expect(ben.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)
    expect(ben.locator("#approvals-count")).to_have_text("2 of 2 approvals")
    history = ben.locator("#payout-history tbody tr")
    expect(history).to_have_count(6)
    expect(history.nth(0)).to_contain_text("Calculated")
    expect(history.nth(1)).to_contain_text("Funded")
    expect(history.nth(2)).to_contain_text(FIRST_APPROVER)
    expect(history.nth(2)).to_contain_text("Approval requested")
    expect(history.nth(3)).to_contain_text(SECOND_APPROVER)
    expect(history.nth(3)).to_contain_text("Approved")
    expect(history.nth(4)).to_contain_text("Submitted")
    expect(history.nth(5)).to_contain_text("Paid")
    expect(ben.locator("main")).to_contain_text("tr_")
    assert ben.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(ben, "finance-payout-paid-phone")

    ana.goto(f"{console.url}/finance")
    expect(ana.locator("tbody tr", has_text="Cooperativa Aurífera Río Verde")).to_contain_text(
        "Paid")
    screenshot(ana, "finance-premiums-paid")
    return payout_url


def reconcile_the_month(console: Console, payout_url: str) -> None:
    """A run for this month matches the buyer's payment and the transfer; a transfer someone
    made by hand in Stripe is a discrepancy, resolved with a note; the run downloads as CSV."""
    payout_id = payout_url.rsplit("/", 1)[-1]
    producer_id = _producer_of(console, payout_id)
    with rpc_as(console.config, Role.FINANCE) as rpc:
        account = rpc.payouts.get_payout_account(producer_id)["stripe_account_id"]
    client = stripe.StripeClient(console.stripe.api_key,
                                 base_addresses={"api": console.stripe.url},
                                 max_network_retries=0)
    client.v1.transfers.create({"amount": 5000, "currency": "usd", "destination": account,
                                "metadata": {"obligation_id": "made-by-hand"}})

    finance = console.sign_in(console.context("en-GB"), finance_token(console, "carla.finance"))
    finance.get_by_role("link", name="Reconciliation", exact=True).click()
    period = finance.get_by_label("Period")
    expect(period).to_have_value(datetime.now(UTC).strftime("%Y-%m"))
    period.fill("2026-13")
    finance.get_by_role("button", name="Run reconciliation").click()
    expect(period).to_have_attribute("aria-invalid", "true")
    expect(finance.locator("#period-error")).to_contain_text("the month must be 01 to 12")
    expect(period).to_be_focused()

    period.fill(datetime.now(UTC).strftime("%Y-%m"))
    finance.get_by_role("button", name="Run reconciliation").click()
    expect(finance.locator(".flash")).to_have_text("The reconciliation has run.")
    expect(finance.locator("#run-status")).to_have_text("Done")
    mine = finance.locator(".line-card", has_text=payout_id[:8])
    expect(mine).to_have_count(2)
    expect(mine.filter(has_text="Buyer's payment")).to_contain_text("Matched")
    expect(mine.filter(has_text="Transfer")).to_contain_text("Matched")
    expect(mine.filter(has_text="Transfer")).to_contain_text("$2,400.83")
    screenshot(finance, "finance-reconciliation")

    finance.get_by_role("link", name=re.compile("Missing in Veta")).click()
    stray = finance.locator(".line-card", has_text="Missing in Veta")
    expect(stray).to_have_count(1)
    expect(stray).to_contain_text("$50.00")
    stray.get_by_role("button", name="Resolve").click()
    note = finance.locator(".line-card").get_by_label("Note")
    expect(note).to_have_attribute("aria-invalid", "true")
    expect(note).to_be_focused()
    note.fill("A test transfer made by hand in Stripe's dashboard; reversed there.")
    finance.locator(".line-card").get_by_role("button", name="Resolve").click()
    expect(finance.locator(".flash")).to_have_text(
        "The discrepancy is resolved; your note is kept.")
    expect(finance.locator(".line-card .resolution", has_text="carla.finance")).to_contain_text(
        "made by hand in Stripe's dashboard")

    with finance.expect_download() as download:
        finance.get_by_role("link", name="Download CSV").click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0].startswith("status,kind,obligation_id")
    assert sum(line.startswith("MATCHED") and payout_id in line
               for line in csv.splitlines()) == 2
    assert "MISSING_IN_VETA" in csv

    # The same run on a phone, in Spanish: it fits the screen, and the note is there.
    run_url = finance.url.split("?")[0].split("#")[0]
    phone = console.sign_in(console.context("es-CO", PHONE),
                            finance_token(console, "carla.finance"))
    phone.goto(run_url)
    expect(phone.locator("h1")).to_have_text(
        f"Conciliación de {datetime.now(UTC).strftime('%Y-%m')}")
    expect(phone.locator(".line-card", has_text="Falta en Veta")).to_contain_text(
        "made by hand in Stripe's dashboard")
    expect(phone.locator(".line-card", has_text=payout_id[:8]).filter(
        has_text="Pago del comprador")).to_contain_text("Conciliado")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "finance-reconciliation-es-phone")

    finance.get_by_role("link", name="Reconciliation", exact=True).click()
    expect(finance.locator("tbody tr").first).to_contain_text("Done")
    screenshot(finance, "finance-reconciliations")


def _producer_of(console: Console, payout_id: str) -> str:
    with rpc_as(console.config, Role.FINANCE) as rpc:
        [obligation] = rpc.payouts.get_obligations([payout_id])
    return str(obligation["producer_id"])
