"""The console in a real browser: Debian's Chromium driven by Playwright, against the whole
system running in this process on PostgreSQL and RabbitMQ (the `console` fixture), or against
`veta dev` in a process of its own (tests/browser/test_console_embedded.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from gateway.service import GatewayService
from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from services.payouts.service import PayoutsService
from services.payouts.stripe_local import StripeLocal

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}
# USD 1,000.00: the story's premium (USD 2,400.83) is above it, so it needs two approvals.
FOUR_EYES_THRESHOLD_CENTS = 100_000


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


class Browsing:
    """A console at `url` seen from Chromium: browser contexts (a person each) and signing in."""

    def __init__(self, url: str, browser: Browser) -> None:
        self.url = url
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    def context(self, locale: str = "en-GB", viewport: dict[str, int] | None = None
                ) -> BrowserContext:
        context = self.browser.new_context(locale=locale, viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return context

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def sign_in(self, context: BrowserContext, token: str) -> Page:
        page = context.new_page()
        page.goto(f"{self.url}/sign-in")
        page.fill("#token", token)
        page.locator("main form button[type=submit]").click()
        return page


class Console(Browsing):
    """The running system, seen from a browser: its address and the services' runners."""

    def __init__(self, config: dict[str, Any], services: Any, browser: Browser,
                 stripe: StripeLocal) -> None:
        super().__init__(f"http://{config['WEB_SERVER_ADDRESS']}", browser)
        self.config = config
        self.stripe = stripe
        self.services = services


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def playwright() -> Playwright:
    # Never stopped: under eventlet, stopping waits for the driver's exit on a hub that is
    # not told of it. The driver ends when this process closes its pipe, at exit.
    return sync_playwright().start()


@pytest.fixture
def stripe_server() -> Iterator[StripeLocal]:
    local = StripeLocal()
    local.start()
    yield local
    local.stop()


@pytest.fixture
def payouts_settings() -> dict[str, Any]:
    """The `console` system's PAYOUTS config: brisk sweeps and retries. A test module that
    needs others (say, no retry by itself) overrides this fixture."""
    return {"sweep_seconds": 0.1, "retry_base_seconds": 0.2, "retry_cap_seconds": 1.0,
            "lease_seconds": 3.0, "stripe_timeout_seconds": 5.0,
            "four_eyes_threshold_cents": FOUR_EYES_THRESHOLD_CENTS}


@pytest.fixture
def console(runner_factory: Any, veta_config: dict[str, Any], playwright: Playwright,
            stripe_server: StripeLocal, payouts_settings: dict[str, Any]) -> Iterator[Console]:
    # Payouts talks to the local Stripe server, which sends its webhooks to payouts' port.
    address = veta_config["WEB_SERVER_ADDRESSES"]["payouts"]
    stripe_server.add_webhook_url(f"http://{address}/stripe/webhooks")
    config = {**veta_config,
              "STRIPE": {"api_key": stripe_server.api_key, "api_base": stripe_server.url,
                         "webhook_secret": stripe_server.webhook_secret},
              "PAYOUTS": payouts_settings}
    # The services get ports of their own (for their health probes): on the gateway's port
    # the kernel would share connections out among every server bound to it.
    services = runner_factory({**config, "WEB_SERVER_ADDRESS": "127.0.0.1:0"},
                              CertificationService, ListingsService, OrdersService,
                              PayoutsService)
    services.start()
    runner_factory(config, GatewayService).start()
    browser = launch_chromium(playwright)
    console = Console(config, services, browser, stripe_server)
    yield console
    # Closed while the system still runs, so that no connection is left to the web server.
    console.close()
    browser.close()
