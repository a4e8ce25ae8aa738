"""A cooperative's lots and orders in the console, in Spanish: it saves a lot as a draft (the
API's typed error beside the field it names), edits the draft, is refused publishing it under
a standard it does not hold, publishes it, withdraws it, and declines a confirmed order with a
reason, after which the lot's gold is back on the market.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Page, expect

from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from tests.browser.conftest import PHONE, Console, screenshot
from tests.helpers import rpc_as, token, validity
from tests.integration.test_orders_lifecycle import place, publish


def certified_cooperative(console: Console, name: str, standard: str = "FAIRMINED") -> str:
    """A cooperative holding `standard` today (all its mine sites); listings and orders have
    heard of the certificate. Seeded over RPC: the certifier's pages have their own tests."""
    with rpc_as(console.config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": name, "country": "CO", "region": "Antioquia"})
        with entrypoint_waiter(get_container(console.services, ListingsService),
                               "on_certification_granted"), \
                entrypoint_waiter(get_container(console.services, OrdersService),
                                  "on_certification_granted"):
            rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": standard,
                "certificate_number": f"FM-{producer['id'][:8]}", **validity()})
    return str(producer["id"])


def cooperative_page(console: Console, producer_id: str, **context: Any) -> Page:
    page = console.sign_in(console.context("es-CO", **context),
                           token(console.config, Role.PRODUCER, producer_id))
    expect(page).to_have_url(re.compile(r"/cooperative$"))
    return page


def test_a_cooperative_drafts_a_lot_edits_it_publishes_it_and_withdraws_it(
        console: Console) -> None:
    producer_id = certified_cooperative(console, "Cooperativa Minera La Aurora")
    cooperative = cooperative_page(console, producer_id)

    # A draft is checked like any lot: the API's typed error, translated, beside its field.
    cooperative.goto(f"{console.url}/cooperative/lots/new")
    expect(cooperative.locator("h1")).to_have_text("Publicar un lote nuevo")
    standard = cooperative.get_by_label("Estándar")
    expect(standard).to_have_value("FAIRMINED")  # the standard it holds comes first
    gross = cooperative.get_by_label("Peso bruto (g)")
    gross.fill("1000,0005")
    cooperative.get_by_label("Ley (‰)", exact=True).fill("915,0")
    cooperative.get_by_label("Nombre de la mina").fill("Mina La Aurora")
    cooperative.get_by_label("Referencia del ensayo").fill("LAB-AUR-0042")
    cooperative.get_by_role("button", name="Guardar como borrador").click()
    expect(gross).to_have_attribute("aria-invalid", "true")
    expect(cooperative.locator("#grossWeight-error")).to_contain_text(
        "el peso tiene más de tres decimales (miligramos)")
    expect(gross).to_be_focused()
    expect(gross).to_have_value("1000,0005")
    screenshot(cooperative, "cooperative-lot-draft-form-es")

    gross.fill("1000,000")
    cooperative.get_by_role("button", name="Guardar como borrador").click()
    expect(cooperative.locator(".flash")).to_have_text(
        "El borrador está guardado. Solo su cooperativa lo ve.")
    expect(cooperative).to_have_url(re.compile(r"/cooperative/lots/[^/]+/edit$"))
    lot_id = cooperative.url.rsplit("/", 2)[-2]
    expect(cooperative.locator("h1")).to_have_text("Editar el borrador del lote")
    expect(cooperative.locator("#lot-status")).to_have_text("Borrador")
    # The same form, prefilled the Spanish way.
    expect(gross).to_have_value("1000,000")
    expect(cooperative.get_by_label("Ley (‰)", exact=True)).to_have_value("915,0")
    expect(cooperative.locator("output[data-fine-output]")).to_have_text("915,000 g")

    # Its cooperative's page lists it as a draft, to edit or publish.
    cooperative.goto(f"{console.url}/cooperative")
    row = cooperative.locator(f"#lot-{lot_id}")
    expect(row).to_contain_text("Borrador")
    expect(row.get_by_role("button", name="Publicar", exact=True)).to_be_visible()
    row.get_by_role("link", name="Editar").click()
    expect(cooperative).to_have_url(re.compile(f"/cooperative/lots/{lot_id}/edit$"))

    # Edited under a standard the cooperative does not hold: a draft may say so...
    standard.select_option("CRAFT")
    gross.fill("1250,000")
    cooperative.get_by_role("button", name="Guardar borrador").click()
    expect(cooperative.locator(".flash")).to_have_text("Los cambios del lote están guardados.")
    expect(gross).to_have_value("1250,000")
    expect(standard).to_have_value("CRAFT")
    expect(cooperative.locator("output[data-fine-output]")).to_have_text("1.143,750 g")

    # ...but it cannot be published, from its row on the cooperative's page...
    cooperative.goto(f"{console.url}/cooperative")
    row.get_by_role("button", name="Publicar", exact=True).click()
    expect(row.get_by_role("alert")).to_contain_text("not certified for CRAFT today")
    expect(row.locator(".status")).to_have_text("Borrador")

    # ...nor from its form, where the refusal is beside the standard, which is focused.
    row.get_by_role("link", name="Editar").click()
    cooperative.get_by_role("button", name="Guardar y publicar").click()
    expect(standard).to_have_attribute("aria-invalid", "true")
    expect(cooperative.locator("#standard-error")).to_contain_text(
        "not certified for CRAFT today")
    expect(standard).to_be_focused()
    expect(cooperative.locator("#lot-status")).to_have_text("Borrador")

    standard.select_option("FAIRMINED")
    cooperative.get_by_role("button", name="Guardar y publicar").click()
    expect(cooperative.locator(".flash")).to_have_text("El lote está publicado.")
    expect(cooperative).to_have_url(re.compile(f"/lots/{lot_id}$"))
    expect(cooperative.locator("main")).to_contain_text("1.143,750 g")
    expect(cooperative.locator(".page-head .status")).to_have_text("Publicado")

    # Withdrawn from the cooperative's page, with a reason (the API needs none).
    cooperative.goto(f"{console.url}/cooperative")
    expect(row).to_contain_text("Publicado")
    expect(row.get_by_role("link", name="Editar")).to_have_count(0)
    row.locator("summary", has_text="Retirar").click()
    row.get_by_label("Motivo del retiro").fill("Vendido a un comprador local")
    row.get_by_role("button", name="Retirar el lote").click()
    expect(cooperative.locator(".flash")).to_have_text("El lote fue retirado.")
    expect(row.locator(".status")).to_have_text("Retirada")
    expect(row.get_by_role("button")).to_have_count(0)
    with rpc_as(console.config, Role.ADMIN) as rpc:
        [lot] = rpc.listings.get_listings([lot_id])
    assert (lot["status"], lot["gross_weight"], lot["standard"]) == (
        "WITHDRAWN", "1250.000", "FAIRMINED")


def test_a_cooperative_declines_a_confirmed_order_with_a_reason_and_the_gold_is_released(
        console: Console) -> None:
    producer_id = certified_cooperative(console, "Cooperativa Agrominera San Roque")
    lot = publish(console.services, console.config, producer_id)  # 915.000 g of fine gold
    buyer = f"refinery-{uuid.uuid4().hex[:8]}"
    order = place(console.services, console.config, buyer, lot["id"], "400.000")
    assert order["status"] == "CONFIRMED"

    cooperative = cooperative_page(console, producer_id, viewport=PHONE)
    row = cooperative.locator(f"#lot-{lot['id']}")
    available = row.locator("td.num").nth(1)
    expect(available).to_have_text("515,000 g")
    expect(row.locator(".status")).to_have_text("Reservado en parte")
    card = cooperative.locator(f"#order-{order['id']}")
    expect(card.locator(".status")).to_have_text("Confirmado")

    # No reason: the API's typed error beside the reason field, which is focused.
    card.get_by_role("button", name="Rechazar pedido").click()
    reason = card.get_by_label("Motivo del rechazo")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(cooperative.locator(f"#decline-{order['id']}-error")).to_contain_text(
        "No puede quedar vacío")
    expect(reason).to_be_focused()
    expect(card.locator(".status")).to_have_text("Confirmado")

    reason.fill("El ensayo de salida no coincide con el del comprador")
    with entrypoint_waiter(get_container(console.services, ListingsService),
                           "on_order_declined"):
        card.get_by_role("button", name="Rechazar pedido").click()
        expect(cooperative.locator(".flash")).to_have_text("El pedido fue rechazado.")
    expect(card.locator(".status")).to_have_text("Cancelado")
    expect(card).to_contain_text("El ensayo de salida no coincide con el del comprador")
    expect(card.get_by_role("button")).to_have_count(0)

    # The order's 400 g are back in the lot, which is whole on the market again.
    cooperative.reload()
    expect(available).to_have_text("915,000 g")
    expect(row.locator(".status")).to_have_text("Publicado")
    assert cooperative.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(cooperative, "cooperative-order-declined-es-phone")
