"""The whole story in a browser against `veta dev`, the embedded default: one process of its
own, SQLite files in a fresh data directory, the in-process broker and the local Stripe server,
with the settings it ships with (a four-eyes threshold of USD 10,000). Tokens come from
`veta token`, as a developer would get them.

A certifier registers and certifies a cooperative, the cooperative (in Spanish, on a phone)
lists a lot and opens its Stripe account, a buyer finds and orders it, the cooperative ships,
the buyer confirms delivery, two finance users approve the premium, it is paid, and a
reconciliation run for the month matches it and charts it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, Playwright, expect

from services.payouts.config import DEFAULT_FOUR_EYES_THRESHOLD_CENTS
from tests.browser.conftest import PHONE, Browsing, launch_chromium, screenshot

COOPERATIVE = "Cooperativa Minera Filo de Oro"
BUYER = "refinery-embedded"
# 2,185.800 g received at 915.0 per mille = 2,000.007 g fine; at Fairmined Ecological's
# USD 6,000 per kg that is USD 12,000.04, above veta dev's four-eyes threshold.
PREMIUM_CENTS = 1_200_004
STARTUP_SECONDS = 120
# The sweep runs every second in veta dev; Stripe answers and webhooks come in between.
STRIPE_WAIT_MS = 20_000


class Output:
    """What a process writes, read as it comes, so that a line can be awaited and everything
    shown if something fails."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, pattern: re.Pattern[str], seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"veta dev exited ({self._process.poll()}) before it "
                                     f"was ready:\n{self.text()}")
            if match := pattern.search(line):
                return match
        raise AssertionError(f"veta dev was not ready in {seconds} s:\n{self.text()}")

    def text(self) -> str:
        return "".join(self.lines)


class VetaDev(Browsing):
    """`veta dev` running in a process of its own, and its `veta token`."""

    def __init__(self, url: str, data_dir: Path, env: dict[str, str], browser: Browser
                 ) -> None:
        super().__init__(url, browser)
        self.data_dir, self.env = data_dir, env

    def token(self, role: str, org: str | None = None, subject: str | None = None) -> str:
        command = [*veta(), "token", "--role", role, "--data-dir", str(self.data_dir)]
        command += ["--org", org] if org else []
        command += ["--subject", subject] if subject else []
        done = subprocess.run(command, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def veta() -> list[str]:
    """The `veta` command installed beside this Python (the one `pip install -e .` makes)."""
    script = Path(sys.executable).with_name("veta")
    return [str(script)] if script.exists() else [sys.executable, "-m", "veta.cli"]


def free_port_pair() -> int:
    """A port whose next one is free too: veta dev serves payouts' webhooks there."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two free ports in a row")


@pytest.fixture
def veta_dev(tmp_path: Path, playwright: Playwright) -> Iterator[VetaDev]:
    # Only what veta dev ships with: none of this machine's or the tests' VETA_* settings.
    env = {name: value for name, value in os.environ.items() if not name.startswith("VETA_")}
    data_dir, port = tmp_path / "veta", free_port_pair()
    process = subprocess.Popen(
        [*veta(), "dev", "--data-dir", str(data_dir), "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    browser = None
    try:
        banner = output.wait_for(re.compile(r"Veta is running: open (http://\S+)/ "),
                                 STARTUP_SECONDS)
        url = banner.group(1)
        ready = requests.get(f"{url}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        browser = launch_chromium(playwright)
        dev = VetaDev(url, data_dir, env, browser)
        yield dev
        dev.close()
    finally:
        if browser is not None:
            browser.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        # Shown by pytest when the test fails.
        print(f"--- veta dev (exit {process.returncode}) ---\n{output.text()}")


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def certify_a_cooperative(dev: VetaDev) -> str:
    page = dev.sign_in(dev.context(), dev.token("CERTIFIER"))
    expect(page).to_have_url(re.compile(r"/certifier$"))
    page.get_by_label("Legal name").fill(COOPERATIVE)
    page.get_by_label("Country").fill("CO")
    page.get_by_label("Region").fill("Caldas")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".flash")).to_have_text("The cooperative is registered.")
    producer_id = page.url.rsplit("/", 1)[-1]
    page.get_by_label("Standard").select_option("FAIRMINED_ECOLOGICAL")
    page.get_by_label("Certificate number").fill("FME-CO-0420")
    page.get_by_label("Valid from").fill((date.today() - timedelta(days=100)).isoformat())
    page.get_by_label("Valid until").fill((date.today() + timedelta(days=300)).isoformat())
    page.get_by_role("button", name="Grant certification").click()
    expect(page.locator(".flash")).to_have_text("The certification is recorded.")
    expect(page.locator(".card", has_text="FME-CO-0420")).to_contain_text("Certified")
    return producer_id


def list_a_lot_and_open_a_stripe_account(dev: VetaDev, cooperative: Page) -> None:
    """In Spanish, on a phone, as test_console_story.py does against the services in-process."""
    cooperative.goto(f"{dev.url}/cooperative/lots/new")
    expect(cooperative.locator("h1")).to_have_text("Publicar un lote nuevo")
    cooperative.get_by_label("Peso bruto (g)").fill("2500,000")
    cooperative.get_by_label("Ley (‰)", exact=True).fill("915,0")
    expect(cooperative.locator("output[data-fine-output]")).to_have_text("2.287,500 g")
    cooperative.get_by_label("Nombre de la mina").fill("Mina Filo de Oro")
    cooperative.get_by_label("Referencia del ensayo").fill("LAB-MAN-0420")
    cooperative.get_by_role("button", name="Publicar lote").click()
    expect(cooperative.locator(".flash")).to_have_text("El lote está publicado.")
    expect(cooperative.locator("main")).to_contain_text("2.287,500 g")

    cooperative.goto(f"{dev.url}/cooperative")
    cooperative.get_by_role("button", name="Configurar pagos con Stripe").click()
    # The local Stripe server completes the form and sends the cooperative back.
    cooperative.get_by_role("link", name="Continuar a Stripe").click()
    expect(cooperative).to_have_url(re.compile(r"/cooperative$"))
    expect(cooperative.locator("#payout-account")).to_contain_text(
        "Las primas se pagan en su cuenta de Stripe acct_", timeout=STRIPE_WAIT_MS)
    assert cooperative.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def buyer_saves_a_card(dev: VetaDev, bearer: str) -> None:
    # Stripe.js's business in the buyer's own systems; Veta hears of it through the API.
    answer = requests.post(f"{dev.url}/graphql", timeout=30, headers={
        "Authorization": f"Bearer {bearer}"}, json={"query": """
        mutation Fund($input: SetBuyerFundingInput!) {
          setBuyerFunding(input: $input) {
            funding { buyerId paymentMethod } errors { field code message }
          }
        }""", "variables": {"input": {"buyerId": BUYER, "paymentMethod": "pm_card_visa"}}})
    assert answer.status_code == 200, answer.text
    payload = answer.json()["data"]["setBuyerFunding"]
    assert payload == {"funding": {"buyerId": BUYER, "paymentMethod": "pm_card_visa"},
                       "errors": []}, payload


def test_the_whole_story_works_in_the_browser_against_veta_dev(veta_dev: VetaDev) -> None:
    dev = veta_dev
    producer_id = certify_a_cooperative(dev)
    cooperative = dev.sign_in(dev.context("es-CO", PHONE), dev.token("PRODUCER", producer_id))
    expect(cooperative).to_have_url(re.compile(r"/cooperative$"))
    list_a_lot_and_open_a_stripe_account(dev, cooperative)

    buyer_token = dev.token("BUYER", BUYER)
    buyer_saves_a_card(dev, buyer_token)
    buyer = dev.sign_in(dev.context("en-GB"), buyer_token)
    expect(buyer).to_have_url(re.compile(r"/lots$"))
    buyer.get_by_label("Fairmined Ecological").check()
    buyer.get_by_label("Country of the mine").fill("CO")
    buyer.get_by_role("button", name="Search").click()
    result = buyer.locator(".lot-card", has_text=COOPERATIVE)
    expect(result).to_contain_text("2,287.500 g")
    result.get_by_role("link", name=COOPERATIVE).click()
    expect(buyer.locator("h1")).to_have_text("Mina Filo de Oro")
    buyer.get_by_label("Fine gold wanted (g)").fill("2000.000")
    buyer.get_by_role("button", name="Place order").click()
    expect(buyer.locator(".flash")).to_contain_text("Order placed")
    # The order page refreshes itself until the lot has reserved the gold.
    expect(buyer.locator("#order-status")).to_have_text("Confirmed")
    order_url = buyer.url

    cooperative.goto(f"{dev.url}/cooperative")
    order_card = cooperative.locator(".order-card", has_text="Confirmado")
    order_card.get_by_label("Referencia del envío").fill("AWB-0420")
    order_card.get_by_role("button", name="Marcar como enviado").click()
    expect(cooperative.locator(".flash")).to_have_text("El pedido quedó marcado como enviado.")

    buyer.goto(order_url)
    expect(buyer.locator("#order-status")).to_have_text("Shipped")
    buyer.get_by_label("Received gross weight (g)").fill("2185.800")
    buyer.get_by_label("Received fineness (‰)").fill("915.0")
    expect(buyer.locator("output[data-fine-output]")).to_have_text("2,000.007 g")
    buyer.get_by_role("button", name="Confirm delivery").click()
    expect(buyer.locator(".flash")).to_contain_text("Delivery confirmed")
    expect(buyer.locator("#order-status")).to_have_text("Delivered")

    payout_url = four_eyes_pay_the_premium(dev)
    reconcile_the_month(dev, payout_url)

    # The cooperative sees it paid, in Spanish.
    cooperative.goto(f"{dev.url}/cooperative")
    expect(cooperative.locator(".total", has_text="Pagada")).to_contain_text("12.000,04\xa0US$")
    screenshot(cooperative, "embedded-cooperative-home-es")


def four_eyes_pay_the_premium(dev: VetaDev) -> str:
    # veta dev keeps payouts' default threshold, which this premium is above.
    assert PREMIUM_CENTS > DEFAULT_FOUR_EYES_THRESHOLD_CENTS
    ana = dev.sign_in(dev.context("en-GB"), dev.token("FINANCE", subject="ana.finance"))
    expect(ana).to_have_url(re.compile(r"/finance$"))
    row = ana.locator("tbody tr", has_text=COOPERATIVE)
    expect(row).to_contain_text("$12,000.04")
    row.get_by_role("link", name=COOPERATIVE).click()
    payout_url = ana.url
    expect(ana.locator("#payout-status")).to_have_text("Funded", timeout=STRIPE_WAIT_MS)
    expect(ana.locator("#approvals-count")).to_have_text("0 of 2 approvals")
    ana.get_by_role("button", name="Approve", exact=True).click()
    expect(ana.locator("#approvals-count")).to_have_text("1 of 2 approvals")
    expect(ana.locator("#payout-status")).to_have_text("Funded")

    ben = dev.sign_in(dev.context("en-GB"), dev.token("FINANCE", subject="ben.finance"))
    ben.goto(payout_url)
    ben.get_by_role("button", name="Give the second approval").click()
    expect(ben.locator("#approvals-count")).to_have_text("2 of 2 approvals")
    expect(ben.locator("#payout-status")).to_have_text("Paid", timeout=STRIPE_WAIT_MS)
    expect(ben.locator("main")).to_contain_text("tr_")
    return payout_url


def reconcile_the_month(dev: VetaDev, payout_url: str) -> None:
    payout_id = payout_url.rsplit("/", 1)[-1]
    carla = dev.sign_in(dev.context("en-GB"), dev.token("FINANCE", subject="carla.finance"))
    carla.get_by_role("link", name="Reconciliation", exact=True).click()
    expect(carla.get_by_label("Period")).to_have_value(this_month())
    carla.get_by_role("button", name="Run reconciliation").click()
    expect(carla.locator(".flash")).to_have_text("The reconciliation has run.")
    expect(carla.locator("#run-status")).to_have_text("Done")
    mine = carla.locator(".line-card", has_text=payout_id[:8])
    expect(mine.filter(has_text="Buyer's payment")).to_contain_text("Matched")
    expect(mine.filter(has_text="Transfer")).to_contain_text("Matched")
    expect(mine.filter(has_text="Transfer")).to_contain_text("$12,000.04")

    # The run's totals, drawn: Veta's books and Stripe's agree, by cooperative and month.
    chart = carla.locator("#run-chart")
    by_cooperative = chart.locator("#chart-producer li")
    expect(by_cooperative).to_have_count(1)
    expect(by_cooperative).to_contain_text(COOPERATIVE)
    expect(by_cooperative).to_contain_text("Veta $12,000.04 · Stripe $12,000.04")
    bars = by_cooperative.locator("rect")
    expect(bars.nth(0)).to_have_attribute("width", "100.0")
    expect(bars.nth(1)).to_have_attribute("width", "100.0")
    month = chart.locator("#chart-month li")
    expect(month).to_contain_text(datetime.now(UTC).strftime("%b %Y"))
    expect(month).to_contain_text("Veta $12,000.04 · Stripe $12,000.04")
    screenshot(carla, "embedded-finance-reconciliation")
