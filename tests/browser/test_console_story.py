"""The console's story in a browser: a certifier certifies a cooperative, the cooperative lists
a lot, a buyer finds and orders it, the cooperative ships, the buyer confirms delivery, and
finance sees the premium owed; the cooperative's pages in Spanish, the buyer's in English.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Page, expect

from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from shared.caller import Role
from tests.browser.conftest import PHONE, Console, screenshot
from tests.helpers import token

BUYER = "refinery-alpine"


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
    producer_id = certify_a_cooperative(console)

    # The cooperative, on a phone, in Spanish (from the browser's language).
    cooperative = console.sign_in(console.context("es-CO", PHONE),
                                  token(console.config, Role.PRODUCER, producer_id))
    expect(cooperative).to_have_url(re.compile(r"/cooperative$"))
    expect(cooperative.locator(".banner-warning")).to_contain_text("FME-CO-0001")
    expect(cooperative.locator(".banner-warning")).to_contain_text("en 20 días")
    lot_id = list_a_lot_in_spanish(console, cooperative)

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
    finance = console.sign_in(console.context("en-GB"), token(console.config, Role.FINANCE))
    expect(finance).to_have_url(re.compile(r"/finance$"))
    row = finance.locator("tbody tr", has_text="Cooperativa Aurífera Río Verde")
    expect(row).to_contain_text("$2,400.83")
    expect(row).to_contain_text("$6,000.00")
    expect(row).to_contain_text("Calculated")
    expect(finance.locator(".chart")).to_contain_text("Cooperativa Aurífera Río Verde")
    screenshot(finance, "finance-premiums")
    finance.get_by_role("link", name="Español").click()
    expect(finance.get_by_role("heading", level=1)).to_have_text(
        "Primas adeudadas a las cooperativas")
    expect(row).to_contain_text("2.400,83 US$")
    expect(row).to_contain_text("Calculada")
    screenshot(finance, "finance-premiums-es")

    # The cooperative sees what it has earned and what is pending.
    cooperative.goto(f"{console.url}/cooperative")
    expect(cooperative.locator(".totals")).to_contain_text("2.400,83 US$")
    screenshot(cooperative, "cooperative-home-es")
