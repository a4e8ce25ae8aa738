"""Load through the gateway over HTTP, as buyers and producers would make it, while things break.

A `Market` of certified producers and their lots is set up first; an `OrderLoad` then runs
many order intents in bounded green threads: browse, place, wait for the saga's answer, and
cancel, or ship and confirm delivery, after which finance approves the premium (one or two
people) and the payouts sweep pays it over the local Stripe. Clients retry what the gateway
never received and record what they could not know (a request cut off after it was sent).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import eventlet
import requests
import urllib3
from eventlet.greenpool import GreenPool

from shared.caller import Role
from shared.values import fine_weight_mg, format_grams
from tests.reliability.harness import Summary, System

REGISTER = """mutation ($input: RegisterProducerInput!) {
  registerProducer(input: $input) { producer { id } errors { field code message } } }"""
GRANT = """mutation ($input: GrantCertificationInput!) {
  grantCertification(input: $input) { producer { id } errors { field code message } } }"""
PUBLISH = """mutation ($input: PublishListingInput!) {
  publishListing(input: $input) { listing { id fineWeight { grams } }
                                  errors { field code message } } }"""
BROWSE = """query ($filter: ListingFilter) {
  listings(filter: $filter, first: 5) { edges { node { id availableFineWeight { grams }
                                                       producer { name } } } } }"""
PLACE = """mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { field code message } } }"""
ORDER = """query ($id: ID!) { order(id: $id) { id status } }"""
CANCEL = """mutation ($input: CancelOrderInput!) {
  cancelOrder(input: $input) { order { id status } errors { field code message } } }"""
SHIP = """mutation ($input: MarkOrderShippedInput!) {
  markOrderShipped(input: $input) { order { id status } errors { field code message } } }"""
DELIVER = """mutation ($input: ConfirmDeliveryInput!) {
  confirmDelivery(input: $input) { order { id status } errors { field code message } } }"""
PAYOUT_FIELDS = """
fragment P on Payout { id orderId status approvals approvalsNeeded amount { amount } }"""
PAYOUTS = """query ($producer: ID, $filter: PayoutFilter, $after: String) {
  payouts(producerId: $producer, filter: $filter, first: 100, after: $after) {
    edges { node { ...P } } pageInfo { hasNextPage endCursor } } }""" + PAYOUT_FIELDS
PAYOUT = """query ($id: ID!) { payout(id: $id) { ...P } }""" + PAYOUT_FIELDS
APPROVE = """mutation ($input: ApprovePayoutInput!) {
  approvePayout(input: $input) { payout { ...P } errors { field code message } } }""" \
    + PAYOUT_FIELDS
ONBOARD = """mutation ($input: CreateStripeOnboardingLinkInput!) {
  createStripeOnboardingLink(input: $input) { link { stripeAccountId }
                                              errors { field code message } } }"""
ACCOUNT = """query ($id: ID!) { payoutAccount(producerId: $id) { transfersActive } }"""
RATES = """query { premiumRates { standard } }"""
FINANCE = ("reliability-finance-1", "reliability-finance-2")  # four eyes: two people
GONE = ("APPROVED", "SUBMITTED", "PAID")  # approved: the rest is the sweep's

STANDARDS = ("FAIRMINED_ECOLOGICAL", "FAIRMINED", "CRAFT", "FAIRMINED")
COUNTRIES = (("CO", "Antioquia"), ("PE", "Puno"), ("BO", "La Paz"), ("EC", "Zamora"))
LOT_GROSS, LOT_FINENESS = "100.000", "900.0"
LOT_FINE_MG = fine_weight_mg(100_000, 9000)
SETTLED = ("CONFIRMED", "REJECTED", "CANCELLED", "ON_HOLD", "SHIPPED", "DELIVERED", "SETTLED")


class Unknown(Exception):
    """The request may or may not have been acted on: the answer was lost on the way back."""


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was refused, so the gateway cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def error_codes(body: dict[str, Any]) -> list[str]:
    """Every error code in a GraphQL answer: top-level errors and mutation payloads'."""
    codes = [(e.get("extensions") or {}).get("code", "?") for e in body.get("errors") or []]
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict):
            codes += [e.get("code", "?") for e in value.get("errors") or []]
    return codes


class Gateway:
    """A frontend's HTTP client of the gateway, one per green thread.

    A request the gateway never received (connection refused: it is restarting) is sent again
    until `patience` runs out; a request cut off after it was sent raises `Unknown`, since
    resending it could do twice what the buyer asked once. No keep-alive: a connection kept
    from before a gateway restart would turn a refused request into an unknown one.
    """

    def __init__(self, system: System, patience: float = 120.0) -> None:
        self.url = system.gateway_url
        self.summary: Summary = system.summary
        self.patience = patience
        self.read_timeout = system.rpc_timeout * 3 + 5

    def call(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = requests.post(
                    self.url, json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                    timeout=(2.0, self.read_timeout))
            except requests.ConnectionError as exc:
                if not _never_sent(exc):
                    self.summary.ambiguous_answers += 1
                    raise Unknown(str(exc)) from None
                if time.monotonic() > deadline:
                    raise
                self.summary.client_retries += 1
                eventlet.sleep(0.2 + random.random() * 0.3)
                continue
            except requests.Timeout as exc:
                self.summary.ambiguous_answers += 1
                raise Unknown(str(exc)) from None
            if response.status_code >= 500:
                self.summary.http_5xx += 1
                self.summary.figures.setdefault("5xx bodies", []).append(response.text[:300])
                raise Unknown(f"HTTP {response.status_code}")
            body: dict[str, Any] = response.json()
            codes = error_codes(body)
            self.summary.unavailable_answers += codes.count("UNAVAILABLE")
            if "INTERNAL" in codes:
                self.summary.internal_errors += codes.count("INTERNAL")
            return body

    def settled(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        """A read, asked again until the gateway and the services behind it answer it."""
        deadline = time.monotonic() + self.patience
        while True:
            try:
                body = self.call(query, variables, token)
                if not {"UNAVAILABLE", "INTERNAL"} & set(error_codes(body)):
                    return body
            except Unknown:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {query[:40]!r} within {self.patience:.0f} s")
            self.summary.client_retries += 1
            eventlet.sleep(0.3 + random.random() * 0.3)


@dataclass
class Lot:
    id: str
    producer_id: str
    standard: str


@dataclass
class Market:
    """Certified producers and their lots, made through the gateway before any fault."""

    tag: str
    producers: list[str] = field(default_factory=list)
    lots: list[Lot] = field(default_factory=list)
    premium_standards: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, system: System, producers: int, lots: int, tag: str) -> Market:
        market = cls(tag)
        gateway = Gateway(system)
        certifier = system.token(Role.CERTIFIER)
        today = date.today()
        for number in range(producers):
            country, region = COUNTRIES[number % len(COUNTRIES)]
            body = gateway.call(REGISTER, {"input": {
                "name": f"Cooperativa {tag} {number}", "country": country,
                "region": region}}, certifier)
            producer = body["data"]["registerProducer"]["producer"]["id"]
            body = gateway.call(GRANT, {"input": {
                "producerId": producer, "standard": STANDARDS[number % len(STANDARDS)],
                "certificateNumber": f"CERT-{tag}-{number}",
                "validFrom": (today - timedelta(days=30)).isoformat(),
                "validUntil": (today + timedelta(days=365)).isoformat()}}, certifier)
            assert body["data"]["grantCertification"]["errors"] == [], body
            market.producers.append(producer)
        if system.stripe is not None:
            for producer in market.producers:
                market.onboard(system, gateway, producer)
            body = gateway.settled(RATES, {}, system.token(Role.FINANCE))
            market.premium_standards = {r["standard"] for r in body["data"]["premiumRates"]}
        for number in range(lots):
            index = number % producers
            market.lots.append(market.publish(system, gateway, index, f"{tag}-{number}"))
        return market

    def onboard(self, system: System, gateway: Gateway, producer: str) -> None:
        """The cooperative opens its Stripe account and completes Stripe's form (the local
        Stripe stands in for the form); wait for payouts to hear that transfers are active."""
        token = system.token(Role.PRODUCER, producer)
        deadline = time.monotonic() + 30
        while True:  # payouts hears of the producer by event
            body = gateway.call(ONBOARD, {"input": {"producerId": producer}}, token)
            payload = (body.get("data") or {}).get("createStripeOnboardingLink")
            if payload and payload["errors"] == []:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"could not onboard {producer}: {body}")
            eventlet.sleep(0.2)
        assert system.stripe is not None
        system.stripe.onboard_account(payload["link"]["stripeAccountId"])
        finance = system.token(Role.FINANCE)
        while not ((gateway.settled(ACCOUNT, {"id": producer}, finance).get("data") or {})
                   .get("payoutAccount") or {}).get("transfersActive"):
            if time.monotonic() > deadline:
                raise AssertionError(f"payouts never heard {producer} was onboarded")
            eventlet.sleep(0.2)

    def publish(self, system: System, gateway: Gateway, index: int, label: str) -> Lot:
        """Publish a lot, waiting for listings to hear of the certificate (it goes by event)."""
        producer = self.producers[index]
        standard = STANDARDS[index % len(STANDARDS)]
        country, region = COUNTRIES[index % len(COUNTRIES)]
        token = system.token(Role.PRODUCER, producer)
        lot = {"producerId": producer, "standard": standard, "form": "DORE",
               "grossWeight": LOT_GROSS, "fineness": LOT_FINENESS, "mercuryFree": True,
               "assayReference": f"ASSAY-{label}",
               "mineSite": {"name": "Mina La Esperanza", "region": region,
                            "country": country}}
        deadline = time.monotonic() + 30
        while True:
            payload = gateway.call(PUBLISH, {"input": lot}, token)["data"]["publishListing"]
            if payload["errors"] == []:
                return Lot(payload["listing"]["id"], producer, standard)
            if time.monotonic() > deadline or payload["errors"][0]["code"] != "CONFLICT":
                raise AssertionError(f"could not publish lot {label}: {payload['errors']}")
            eventlet.sleep(0.1)


@dataclass
class Intent:
    """One buyer's wish to order, and what the buyer came to know of it."""

    number: int
    buyer: str
    lot: Lot
    fine_mg: int
    action: str  # "deliver", "cancel" or "keep" once confirmed
    order_id: str | None = None
    placed: str = "not yet"  # "acknowledged", "unknown" or the refusal's code
    seen: str | None = None  # the last status the client saw
    payout: dict[str, Any] | None = None  # the premium as finance last saw it
    done: bool = False
    trouble: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.buyer, self.lot.id, self.fine_mg)


class OrderLoad:
    """Many order intents across a market's lots, in a bounded number of green threads."""

    def __init__(self, system: System, market: Market, orders: int, *,
                 concurrency: int = 12, finance_staff: int = 4, seed: int = 8) -> None:
        self.system = system
        self.market = market
        self.concurrency = concurrency
        # Finance approves premiums at its own pace, beside the buyers and producers: a
        # buyer's thread does not wait for the buyer's card to be charged.
        self.finance = GreenPool(finance_staff)
        chance = random.Random(seed)
        buyers = 10
        self.intents = []
        for number in range(orders):
            # Unique (buyer, lot, fine weight) per intent: the checks find each intent's order
            # by it, and so can tell a duplicated order from two wishes.
            grams = chance.randint(4, 24)
            self.intents.append(Intent(
                number=number, buyer=f"buyer-{market.tag}-{number // 1000}-{number % buyers}",
                lot=chance.choice(market.lots), fine_mg=grams * 1000 + number % 1000,
                action=chance.choices(["deliver", "cancel", "keep"], [5, 2, 3])[0]))
        self.finished = 0
        self.fund_buyers()

    def fund_buyers(self) -> None:
        """Each buyer saves a card for its premiums, before any fault. There is no mutation
        for it (docs/payouts.md: `set_buyer_funding` RPC), so it goes to payouts directly."""
        if self.system.stripe is None:
            return
        for buyer in sorted({intent.buyer for intent in self.intents}):
            with self.system.rpc(Role.BUYER, buyer) as rpc:
                rpc.payouts.set_buyer_funding({"buyer_id": buyer,
                                               "payment_method": "pm_card_visa"})

    def run(self, spread_over: float = 0.0, timeout: float = 240.0) -> None:
        """Start the intents evenly over `spread_over` seconds, then wait for them all."""
        pool = GreenPool(self.concurrency)
        pace = spread_over / max(len(self.intents), 1)
        for intent in self.intents:
            pool.spawn_n(self._guarded, intent)
            if pace:
                eventlet.sleep(pace)
        with eventlet.Timeout(timeout, TimeoutError(f"the load did not finish in {timeout} s")):
            pool.waitall()
            self.finance.waitall()
        self.system.summary.orders_placed = sum(i.placed == "acknowledged"
                                                for i in self.intents)
        self.system.summary.figures["client outcomes"] = dict(Counter(
            i.seen or i.placed for i in self.intents))
        if self.system.stripe is not None:
            self.system.summary.figures["premiums approved by one / two FINANCE users"] = [
                sum(1 for i in self.intents if i.payout and len(i.payout["approvals"]) == n)
                for n in (1, 2)]

    def _guarded(self, intent: Intent) -> None:
        """An intent is finished when its walk is, and its premium approved if it has one."""
        try:
            self.walk(intent)
        except Exception as exc:
            intent.trouble.append(f"{type(exc).__name__}: {exc}")
        if intent.action == "deliver" and intent.seen == "DELIVERED" and \
                intent.lot.standard in self.market.premium_standards and \
                self.system.stripe is not None:
            self.finance.spawn_n(self._approve_guarded, intent)
        else:
            self.finished += 1

    def _approve_guarded(self, intent: Intent) -> None:
        try:
            self.approve(Gateway(self.system), intent)
        except Exception as exc:
            intent.trouble.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished += 1

    def walk(self, intent: Intent) -> None:
        gateway = Gateway(self.system)
        buyer = self.system.token(Role.BUYER, intent.buyer)
        gateway.settled(BROWSE, {"filter": {"standard": [intent.lot.standard]}}, buyer)
        try:
            body = gateway.call(PLACE, {"input": {
                "buyerId": intent.buyer, "listingId": intent.lot.id,
                "fineWeight": format_grams(intent.fine_mg)}}, buyer)
        except Unknown:
            intent.placed = "unknown"
            return
        payload = body["data"]["placeOrder"] if body.get("data") else None
        if payload is None or payload["errors"]:
            codes = error_codes(body)
            # UNAVAILABLE: the request is still queued for orders and may yet be placed.
            intent.placed = "unknown" if {"UNAVAILABLE", "INTERNAL"} & set(codes) \
                else ",".join(codes)
            return
        intent.order_id = payload["order"]["id"]
        intent.placed = "acknowledged"
        intent.seen = self.answer(gateway, intent, buyer)
        if intent.seen != "CONFIRMED":
            intent.done = True
            return
        if intent.action == "cancel":
            self.move(gateway, intent, CANCEL, "cancelOrder", buyer, "CANCELLED",
                      {"reason": "changed our mind"})
        elif intent.action == "deliver":
            producer = self.system.token(Role.PRODUCER, intent.lot.producer_id)
            self.move(gateway, intent, SHIP, "markOrderShipped", producer, "SHIPPED",
                      {"shipmentReference": f"AWB-{intent.number}"})
            # Received at the lot's fineness: the delivered fine weight is the ordered one.
            gross = (Decimal(intent.fine_mg) / Decimal(LOT_FINENESS) * 1000).quantize(Decimal(1))
            self.move(gateway, intent, DELIVER, "confirmDelivery", buyer, "DELIVERED",
                      {"receivedGrossWeight": format_grams(int(gross)),
                       "receivedFineness": LOT_FINENESS})
        intent.done = True

    def funded(self, gateway: Gateway, intent: Intent, finance: str,
               patience: float = 120.0) -> dict[str, Any] | None:
        """Finance's list of premiums ready to approve, until the order's shows up: the
        buyer's card is charged by the payouts sweep and FUNDED comes by Stripe's webhook."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            after: str | None = None
            while True:
                body = gateway.settled(PAYOUTS, {
                    "producer": intent.lot.producer_id, "after": after,
                    "filter": {"status": ["FUNDED"]}}, finance)
                page = body["data"]["payouts"]
                for edge in page["edges"]:
                    if edge["node"]["orderId"] == intent.order_id:
                        return dict(edge["node"])
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            eventlet.sleep(0.3 + random.random() * 0.3)
        return None

    def approve(self, gateway: Gateway, intent: Intent) -> None:
        """FINANCE approves the delivered order's premium, by two people above the four-eyes
        threshold; the payouts sweep then transfers it (the invariants wait for PAID)."""
        payout = self.funded(gateway, intent, self.system.token(Role.FINANCE, subject=FINANCE[0]))
        if payout is None:
            intent.trouble.append("the premium was never FUNDED")
            return
        intent.payout = payout
        for subject in FINANCE[:payout["approvalsNeeded"] or 1]:
            token = self.system.token(Role.FINANCE, subject=subject)
            if not self._approve_as(gateway, intent, token, subject):
                return

    def _approve_as(self, gateway: Gateway, intent: Intent, token: str, subject: str) -> bool:
        """One person's approval, asked again until it shows (a second one from the same
        person is refused, so an approval whose answer was lost is looked up, not resent)."""
        assert intent.payout is not None
        deadline = time.monotonic() + gateway.patience
        while time.monotonic() < deadline:
            payout = intent.payout
            if payout["status"] in GONE or subject in payout["approvals"]:
                return True
            if payout["status"] != "FUNDED":
                intent.trouble.append(f"approvePayout: the premium is {payout['status']}")
                return False
            try:
                body = gateway.call(APPROVE, {"input": {"payoutId": payout["id"]}}, token)
                result = (body.get("data") or {}).get("approvePayout")
                if result and not result["errors"]:
                    intent.payout = result["payout"]
                    return True
                codes = error_codes(body)
            except Unknown:
                codes = ["UNKNOWN"]
            body = gateway.settled(PAYOUT, {"id": payout["id"]}, token)
            intent.payout = body["data"]["payout"]
            if {"CONFLICT", "FORBIDDEN", "BAD_USER_INPUT"} & set(codes) and \
                    subject not in intent.payout["approvals"]:
                intent.trouble.append(f"approvePayout refused with {codes}: {intent.payout}")
                return False
            if subject not in intent.payout["approvals"]:
                self.system.summary.client_retries += 1
                eventlet.sleep(0.3 + random.random() * 0.3)
        intent.trouble.append("approvePayout never went through")
        return False

    def status(self, gateway: Gateway, intent: Intent, token: str) -> str | None:
        body = gateway.settled(ORDER, {"id": intent.order_id}, token)
        order = (body.get("data") or {}).get("order")
        return order["status"] if order else None

    def answer(self, gateway: Gateway, intent: Intent, buyer: str,
               patience: float = 120.0) -> str | None:
        """Poll the order until the saga answers it (the sweep asks again after 30 s)."""
        deadline = time.monotonic() + patience
        while True:
            seen = self.status(gateway, intent, buyer)
            if seen in SETTLED or time.monotonic() > deadline:
                return seen
            eventlet.sleep(0.25 + random.random() * 0.25)

    def move(self, gateway: Gateway, intent: Intent, mutation: str, field: str, token: str,
             to: str, fields: dict[str, Any]) -> None:
        """Ask for a guarded transition until the order is in `to`. Asking again is safe:
        a step already taken is refused with CONFLICT and the order shows where it is."""
        deadline = time.monotonic() + gateway.patience
        while time.monotonic() < deadline:
            try:
                body = gateway.call(mutation, {"input": {"orderId": intent.order_id,
                                                         **fields}}, token)
                payload = (body.get("data") or {}).get(field)
                if payload and not payload["errors"]:
                    intent.seen = payload["order"]["status"]
                    return
                codes = error_codes(body)
            except Unknown:
                codes = ["UNKNOWN"]
            intent.seen = self.status(gateway, intent, token)
            if intent.seen == to:
                return
            if "CONFLICT" in codes or "BAD_USER_INPUT" in codes:
                intent.trouble.append(f"{field} refused with {codes} while {intent.seen}")
                return
            self.system.summary.client_retries += 1
            eventlet.sleep(0.3 + random.random() * 0.3)
        intent.trouble.append(f"{field} never went through")

    def troubles(self) -> list[str]:
        return [f"intent {i.number} ({i.order_id}): {t}" for i in self.intents
                for t in i.trouble]
