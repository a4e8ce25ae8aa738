"""Signing in, cookies, CSRF, language, a 360-px phone and the keyboard, in a real browser;
and the lot form's fine-weight arithmetic in the browser, checked against the services' own.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from shared.caller import Role
from shared.values import fine_weight_mg, fineness_to_tenths, format_grams, grams_to_mg
from tests.browser.conftest import PHONE, Console, screenshot
from tests.helpers import token


def test_a_refused_token_is_explained_and_an_accepted_one_stays_out_of_reach_of_scripts(
        console: Console) -> None:
    context = console.context("en-GB")
    page = console.sign_in(context, "not-a-token")
    expect(page.locator("#token-error")).to_contain_text("the token was refused")
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "sign-in-refused")

    page.fill("#token", token(console.config, Role.BUYER, "refinery-alpine"))
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/lots$"))
    session = next(c for c in context.cookies() if c["name"] == "veta_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert "veta_session" not in page.evaluate("document.cookie")

    # Signing out forgets the token: the pages send the browser back to sign in.
    page.locator("form.sign-out button").click()
    expect(page.locator(".flash")).to_have_text("You are signed out.")
    page.goto(f"{console.url}/orders")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/orders$"))


def test_a_form_posted_without_the_sessions_csrf_token_changes_nothing(
        console: Console) -> None:
    context = console.context("en-GB")
    page = console.sign_in(context, token(console.config, Role.CERTIFIER))
    expect(page).to_have_url(re.compile(r"/certifier$"))
    # Same cookies as the signed-in page, but no (or another session's) token in the form.
    forged: dict[str, str | float | bool] = {"name": "Forged Cooperative", "country": "CO",
                                             "region": "Antioquia"}
    for form in (forged, {**forged, "csrf": "guessed"}):
        response = context.request.post(f"{console.url}/certifier", form=form,
                                        max_redirects=0)
        assert response.status == 403
        assert "This form has expired" in response.text()
    page.reload()
    expect(page.locator("main")).not_to_contain_text("Forged Cooperative")


def test_the_language_follows_the_browser_until_the_person_chooses_another(
        console: Console) -> None:
    context = console.context("es-CO")
    page = context.new_page()
    page.goto(f"{console.url}/sign-in")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).to_have_text("Iniciar sesión en Veta")
    screenshot(page, "sign-in-es")

    page.get_by_role("link", name="English").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    expect(page.locator("h1")).to_have_text("Sign in to Veta")
    page.goto(f"{console.url}/sign-in")
    expect(page.locator("h1")).to_have_text("Sign in to Veta")


def test_on_a_phone_the_pages_fit_and_the_keyboard_reaches_every_field_visibly(
        console: Console) -> None:
    context = console.context("en-GB", PHONE)
    page = console.sign_in(context, token(console.config, Role.CERTIFIER))
    expect(page).to_have_url(re.compile(r"/certifier$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # The first Tab reaches the skip link, which takes the reader to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))

    # The registration form: labels name every field, and Tab follows their order.
    page.get_by_label("Legal name").focus()
    for label in ("Country", "Region"):
        page.keyboard.press("Tab")
        expect(page.get_by_label(label)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Register")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Legal name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Legal name")).to_be_focused()
    screenshot(page, "certifier-phone-errors")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_live_fine_weight_is_exact_to_the_milligram_like_the_services(
        console: Console) -> None:
    page = console.context().new_page()
    page.goto(f"{console.url}/sign-in")
    cases = [("1000.000", "915.0"), ("437.500", "914.6"), ("0.001", "0.5"), ("0.003", "0.5"),
             ("9999999.999", "999.9"), ("123456.789", "750.5"), ("1", "1"), ("2.5", "999.9")]
    for gross, fineness in cases:
        expected = format_grams(fine_weight_mg(grams_to_mg(gross), fineness_to_tenths(fineness)))
        assert page.evaluate("([g, f]) => window.vetaFineWeight(g, f)", [gross, fineness]) \
            == expected, (gross, fineness)
