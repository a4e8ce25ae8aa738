"""A certifier's changes to a certification in a browser: it registers a cooperative and grants
it a certification, is refused a suspension without a reason (beside the reason), suspends it,
reinstates it (in Spanish) and withdraws it, the status and history following each step; and a
suspension made in the console holds the cooperative's premium until the reinstatement lifts it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from nameko.testing.services import entrypoint_waiter
from nameko.testing.utils import get_container
from playwright.sync_api import Locator, Page, expect

from gateway.auth import TokenSettings, issue_token
from services.payouts.service import PayoutsService
from shared.caller import Role
from tests.browser.conftest import Console, screenshot
from tests.browser.test_console_finance import a_delivered_premium, funded

CERTIFIER = "marta.certifier"


def certifier_page(console: Console, locale: str = "en-GB") -> Page:
    page = console.sign_in(console.context(locale), issue_token(
        TokenSettings.from_config(console.config), Role.CERTIFIER, subject=CERTIFIER))
    expect(page).to_have_url(re.compile(r"/certifier$"))
    return page


def history_of(card: Locator) -> Locator:
    return card.locator("table[id$=-history] tbody tr")


def test_a_certifier_suspends_reinstates_and_withdraws_a_certification_with_reasons(
        console: Console) -> None:
    page = certifier_page(console)
    page.get_by_label("Legal name").fill("Cooperativa Minera Los Andes")
    page.get_by_label("Country").fill("PE")
    page.get_by_label("Region").fill("Puno")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".flash")).to_have_text("The cooperative is registered.")

    page.get_by_label("Standard").select_option("FAIRMINED")
    page.get_by_label("Certificate number").fill("FM-PE-0107")
    page.get_by_label("Valid from").fill((date.today() - timedelta(days=100)).isoformat())
    page.get_by_label("Valid until").fill((date.today() + timedelta(days=265)).isoformat())
    page.get_by_role("button", name="Grant certification").click()
    expect(page.locator(".flash")).to_have_text("The certification is recorded.")
    card = page.locator("li.card", has_text="FM-PE-0107")
    status = card.locator(".card-head .status")
    history = history_of(card)
    expect(status).to_have_text("Certified")
    expect(history).to_have_count(1)
    expect(history.last).to_contain_text("Certified")

    # No reason: the API's typed error beside the suspension's reason, which is focused.
    card.get_by_role("button", name="Suspend").click()
    reason = card.get_by_label("Reason for suspending")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(card.locator("[id^=suspend-][id$=-reason-error]")).to_contain_text("Field required")
    expect(reason).to_be_focused()
    expect(status).to_have_text("Certified")
    expect(history).to_have_count(1)
    screenshot(page, "certifier-suspension-refused")

    reason.fill("Mercury found in the tailings during the audit")
    card.get_by_role("button", name="Suspend").click()
    expect(page.locator(".flash")).to_have_text("The certification's status is changed.")
    expect(status).to_have_text("Suspended")
    expect(history).to_have_count(2)
    expect(history.last).to_contain_text("Certified → Suspended")
    expect(history.last).to_contain_text(CERTIFIER)
    expect(history.last).to_contain_text("Mercury found in the tailings during the audit")
    expect(card.get_by_role("button", name="Suspend")).to_have_count(0)

    # Reinstated in Spanish, where the reason is optional but kept.
    page.get_by_role("link", name="Español").click()
    card.get_by_label("Motivo del restablecimiento").fill(
        "La auditoría de seguimiento no halló mercurio")
    card.get_by_role("button", name="Restablecer").click()
    expect(page.locator(".flash")).to_have_text("Se cambió el estado de la certificación.")
    expect(status).to_have_text("Certificada")
    expect(history).to_have_count(3)
    expect(history.last).to_contain_text("Suspendida → Certificada")
    expect(history.last).to_contain_text("La auditoría de seguimiento no halló mercurio")
    page.get_by_role("link", name="English").click()

    card.get_by_label("Reason for withdrawing").fill("The cooperative left the scheme")
    card.get_by_role("button", name="Withdraw").click()
    expect(page.locator(".flash")).to_have_text("The certification's status is changed.")
    expect(status).to_have_text("Withdrawn")
    expect(history).to_have_count(4)
    expect(history.last).to_contain_text("Certified → Withdrawn")
    expect(history.last).to_contain_text("The cooperative left the scheme")
    # Withdrawn for good: nothing is left to do to it.
    expect(card.get_by_role("button")).to_have_count(0)
    screenshot(page, "certifier-certification-history")


def test_a_suspension_holds_the_premium_and_the_reinstatement_lifts_the_hold(
        console: Console) -> None:
    premium = a_delivered_premium(console, "Cooperativa Aurífera Santa Bárbara")
    finance = funded(console, premium, "dora.finance")
    certifier = certifier_page(console)
    certifier.goto(f"{console.url}/certifier/producers/{premium.producer_id}")
    card = certifier.locator(f"#certification-{premium.certification_id}")
    payouts = get_container(console.services, PayoutsService)

    card.get_by_label("Reason for suspending").fill("Child labour reported at the mine")
    with entrypoint_waiter(payouts, "on_certification_suspended"):
        card.get_by_role("button", name="Suspend").click()
        expect(card.locator(".card-head .status")).to_have_text("Suspended")
    finance.reload()
    expect(finance.locator("#payout-status")).to_have_text("On hold")

    card.get_by_label("Reason for reinstating").fill("The report was not confirmed")
    with entrypoint_waiter(payouts, "on_certification_reinstated"):
        card.get_by_role("button", name="Reinstate").click()
        expect(card.locator(".card-head .status")).to_have_text("Certified")
    finance.reload()
    expect(finance.locator("#payout-status")).to_have_text("Funded")
    lifted = finance.locator("#payout-history tbody tr").last
    expect(lifted).to_contain_text("Hold lifted")
    expect(lifted).to_contain_text("certification reinstated: The report was not confirmed")
