"""Fault 4: every event delivered three times, in shuffled order; the end is as if once, in order.

One scripted story (producers certified and renamed, lots published, a commitment, orders
confirmed, rejected, cancelled, declined, held and released, delivered with premiums) is
played twice on one system: first with ordinary delivery, then with the `Shuffler` in charge
of every event. The two final states, keyed by the story's names rather than by ids, and the
events each service raised and applied, must be the same.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.certification import store as certification
from services.listings import store as listings
from services.orders import store as orders
from services.payouts import store as payouts
from shared.caller import Role
from shared.settings import SERVICES
from tests.helpers import eventually
from tests.reliability import invariants
from tests.reliability.harness import System, running_system
from tests.reliability.load import GRANT, PUBLISH, REGISTER, Gateway
from tests.reliability.shuffler import Shuffler

PRODUCERS = (("eco", "FAIRMINED_ECOLOGICAL", "CO", "Antioquia"),
             ("fair", "FAIRMINED", "PE", "Puno"), ("craft", "CRAFT", "BO", "La Paz"))
LOTS = (("eco-1", "eco"), ("eco-2", "eco"), ("fair-1", "fair"), ("craft-1", "craft"))
UPDATE = """mutation ($input: UpdateProducerInput!) {
  updateProducer(input: $input) { producer { id } errors { field code message } } }"""
SUSPEND = """mutation ($input: CertificationChangeInput!) {
  suspendCertification(input: $input) { producer { id } errors { field code message } } }"""
REINSTATE = """mutation ($input: CertificationChangeInput!) {
  reinstateCertification(input: $input) { producer { id } errors { field code message } } }"""
COMMIT = """mutation ($input: CreateCommitmentInput!) {
  createCommitment(input: $input) { commitment { id } errors { field code message } } }"""
ORDER_STEP = """mutation ($input: %sInput!) {
  %s(input: $input) { order { id status } errors { field code message } } }"""


class Story:
    """The scripted scenario, told through the gateway, each step awaited."""

    def __init__(self, system: System, tag: str) -> None:
        self.system = system
        self.tag = tag
        self.gateway = Gateway(system)
        self.ids: dict[str, str] = {}
        self.certificates: dict[str, str] = {}

    def buyer(self, label: str) -> str:
        return f"buyer-{self.tag}-{label}"

    def mutate(self, query: str, field: str, input: dict[str, Any], role: Role,
               organisation: str | None = None) -> dict[str, Any]:
        body = self.gateway.call(query, {"input": input},
                                 self.system.token(role, organisation))
        payload: dict[str, Any] = body["data"][field]
        assert payload["errors"] == [], (field, payload["errors"])
        return payload

    def status(self, label: str) -> str:
        return str(self.system.databases.scalar(
            "orders", "SELECT status FROM orders WHERE id = :id", id=self.ids[label]))

    def available(self, lot: str) -> int:
        return int(self.system.databases.scalar(
            "listings", "SELECT available_mg FROM lots WHERE id = :id", id=self.ids[lot]))

    def lot_status(self, lot: str) -> str:
        return str(self.system.databases.scalar(
            "listings", "SELECT status FROM lots WHERE id = :id", id=self.ids[lot]))

    def owed(self, order: str) -> int:
        return int(self.system.databases.scalar(
            "payouts", "SELECT count(*) FROM obligations WHERE order_id = :id",
            id=self.ids[order]))

    def tell(self) -> None:
        today = date.today()
        # Producers registered and certified without waiting: their events race.
        for label, _standard, country, region in PRODUCERS:
            self.ids[label] = self.mutate(REGISTER, "registerProducer", {
                "name": f"Cooperativa {self.tag} {label}", "country": country,
                "region": region}, Role.CERTIFIER)["producer"]["id"]
        for label, standard, _country, _region in PRODUCERS:
            self.mutate(GRANT, "grantCertification", {
                "producerId": self.ids[label], "standard": standard,
                "certificateNumber": f"CERT-{self.tag}-{label}",
                "validFrom": (today - timedelta(days=30)).isoformat(),
                "validUntil": (today + timedelta(days=365)).isoformat()}, Role.CERTIFIER)
        for label, _standard, _country, _region in PRODUCERS:
            self.certificates[label] = str(self.system.databases.scalar(
                "certification", "SELECT id FROM certifications WHERE producer_id = :id",
                id=self.ids[label]))
        # Renamed twice in a row: the second name must win wherever it is copied.
        for name in ("renamed once", "renamed twice"):
            self.mutate(UPDATE, "updateProducer", {
                "producerId": self.ids["eco"], "name": f"Cooperativa {self.tag} eco {name}"},
                Role.CERTIFIER)
        for lot, producer in LOTS:
            self.publish(lot, producer)
        self.mutate(COMMIT, "createCommitment", {
            "buyerId": self.buyer("b0"), "fineWeight": "50.000",
            "standards": ["FAIRMINED_ECOLOGICAL"],
            "periodStart": (today - timedelta(days=10)).isoformat(),
            "periodEnd": (today + timedelta(days=80)).isoformat()}, Role.BUYER,
            self.buyer("b0"))

        self.place("o1", "b0", "eco-1", "40.000", expect="CONFIRMED")
        self.place("o2", "b1", "eco-1", "60.000", expect="REJECTED")
        self.place("o3", "b1", "eco-1", "30.000", expect="CONFIRMED")
        self.place("o4", "b0", "fair-1", "20.000", expect="CONFIRMED")
        self.step("o4", "cancelOrder", Role.BUYER, self.buyer("b0"), {"reason": "too late"})
        eventually(lambda: self.available("fair-1") == 90_000, timeout=30)
        self.place("o5", "b2", "craft-1", "10.000", expect="CONFIRMED")
        self.ship_and_deliver("o5", "craft", "b2", "11.111")
        self.ship_and_deliver("o1", "eco", "b0", "44.444")
        eventually(lambda: self.owed("o1") == 1, timeout=30)
        self.place("o6", "b2", "fair-1", "25.000", expect="CONFIRMED")
        self.mutate(SUSPEND, "suspendCertification", {
            "certificationId": self.certificates["fair"], "reason": "audit"}, Role.CERTIFIER)
        eventually(lambda: self.status("o6") == "ON_HOLD"
                   and self.lot_status("fair-1") == "SUSPENDED", timeout=30)
        self.mutate(REINSTATE, "reinstateCertification", {
            "certificationId": self.certificates["fair"]}, Role.CERTIFIER)
        eventually(lambda: self.status("o6") == "CONFIRMED"
                   and self.lot_status("fair-1") == "PARTIALLY_RESERVED", timeout=30)
        self.ship_and_deliver("o6", "fair", "b2", "27.778")
        eventually(lambda: self.owed("o6") == 1, timeout=30)
        self.place("o7", "b1", "eco-2", "10.000", expect="CONFIRMED")
        self.step("o7", "declineOrder", Role.PRODUCER, self.ids["eco"],
                  {"reason": "assay disputed"})
        eventually(lambda: self.available("eco-2") == 90_000, timeout=30)

    def publish(self, lot: str, producer: str) -> None:
        index = [label for label, *_ in PRODUCERS].index(producer)
        standard, country, region = PRODUCERS[index][1:]

        def published() -> bool:
            body = self.gateway.call(PUBLISH, {"input": {
                "producerId": self.ids[producer], "standard": standard, "form": "DORE",
                "grossWeight": "100.000", "fineness": "900.0", "mercuryFree": True,
                "assayReference": f"ASSAY-{lot}",
                "mineSite": {"name": "Mina La Esperanza", "region": region,
                             "country": country}}},
                self.system.token(Role.PRODUCER, self.ids[producer]))
            payload = body["data"]["publishListing"]
            if payload["errors"]:
                assert payload["errors"][0]["code"] == "CONFLICT", payload["errors"]
                return False
            self.ids[lot] = payload["listing"]["id"]
            return True
        eventually(published, timeout=30, interval=0.1)

    def place(self, order: str, buyer: str, lot: str, grams: str, expect: str) -> None:
        self.ids[order] = self.mutate(ORDER_STEP % ("PlaceOrder", "placeOrder"), "placeOrder",
                                      {"buyerId": self.buyer(buyer), "listingId": self.ids[lot],
                                       "fineWeight": grams},
                                      Role.BUYER, self.buyer(buyer))["order"]["id"]
        eventually(lambda: self.status(order) != "PENDING", timeout=30)
        assert self.status(order) == expect, (order, self.status(order))

    def step(self, order: str, mutation: str, role: Role, organisation: str,
             fields: dict[str, Any]) -> None:
        name = mutation[0].upper() + mutation[1:]
        self.mutate(ORDER_STEP % (name, mutation), mutation,
                    {"orderId": self.ids[order], **fields}, role, organisation)

    def ship_and_deliver(self, order: str, producer: str, buyer: str, gross: str) -> None:
        self.step(order, "markOrderShipped", Role.PRODUCER, self.ids[producer],
                  {"shipmentReference": f"AWB-{order}"})
        self.step(order, "confirmDelivery", Role.BUYER, self.buyer(buyer),
                  {"receivedGrossWeight": gross, "receivedFineness": "900.0"})


def final_state(story: Story) -> dict[str, Any]:
    """What the story left in every database, keyed by its names, with ids and tags gone."""
    databases = story.system.databases
    label = {value: key for key, value in story.ids.items()}

    def named(text: str | None) -> str | None:
        return None if text is None else text.replace(story.tag, "T")

    ids = list(story.ids.values())
    state: dict[str, Any] = {}
    with databases.connect("orders") as connection, Session(connection) as session:
        for row in session.scalars(select(orders.OrderRow)
                                   .where(orders.OrderRow.id.in_(ids))):
            state[f"order {label[row.id]}"] = {
                "status": row.status, "fine": row.fine_mg, "delivered": row.delivered_fine_mg,
                "producer": label.get(row.producer_id or ""), "reason": row.reason,
                "cancelled_by": row.cancelled_by}
        for step in session.scalars(select(orders.TransitionRow)
                                    .where(orders.TransitionRow.order_id.in_(ids))
                                    .order_by(orders.TransitionRow.id)):
            state.setdefault(f"history {label[step.order_id]}", []).append(
                [step.from_status, step.to_status, step.actor, step.reason])
        for commitment in session.scalars(select(orders.CommitmentRow).where(
                orders.CommitmentRow.buyer_id == story.buyer("b0"))):
            drawn = session.scalars(select(orders.DrawdownRow).where(
                orders.DrawdownRow.commitment_id == commitment.id))
            state["commitment b0"] = {
                "status": commitment.status, "delivered": commitment.delivered_mg,
                "drawn": sorted((label[d.order_id], d.fine_mg) for d in drawn)}
        for known in session.scalars(select(orders.KnownCertificateRow).where(
                orders.KnownCertificateRow.producer_id.in_(ids))):
            state[f"orders' certificate {label[known.producer_id]}"] = [known.status,
                                                                       known.version]
    with databases.connect("listings") as connection, Session(connection) as session:
        for lot in session.scalars(select(listings.LotRow)
                                   .where(listings.LotRow.id.in_(ids))):
            state[f"lot {label[lot.id]}"] = {
                "status": lot.status, "fine": lot.fine_mg, "available": lot.available_mg,
                "producer name": named(lot.producer_name), "ever reserved": lot.ever_reserved}
        for reservation in session.scalars(select(listings.ReservationRow).where(
                listings.ReservationRow.order_id.in_(ids))):
            state[f"reservation {label[reservation.order_id]}"] = [
                reservation.fine_mg, reservation.released_reason]
        for producer in session.scalars(select(listings.ProducerRow)
                                        .where(listings.ProducerRow.id.in_(ids))):
            state[f"listings' producer {label[producer.id]}"] = [named(producer.name),
                                                                producer.version]
        for held in session.scalars(select(listings.HeldCertificationRow).where(
                listings.HeldCertificationRow.producer_id.in_(ids))):
            state[f"listings' certificate {label[held.producer_id]}"] = [held.status,
                                                                        held.version]
    with databases.connect("payouts") as connection, Session(connection) as session:
        for obligation in session.scalars(select(payouts.ObligationRow).where(
                payouts.ObligationRow.order_id.in_(ids))):
            state[f"premium {label[obligation.order_id]}"] = {
                "standard": obligation.standard, "fine": obligation.fine_mg,
                "cents": obligation.amount_cents, "rate": obligation.usd_per_kg,
                "status": obligation.status}
    with databases.connect("certification") as connection, Session(connection) as session:
        for certificate in session.scalars(select(certification.CertificationRow).where(
                certification.CertificationRow.producer_id.in_(ids))):
            state[f"certificate {label[certificate.producer_id]}"] = [certificate.status,
                                                                     certificate.version]
    return state


def event_counts(system: System) -> Counter[str]:
    """Events each service raised and applied, by type, so far."""
    counts: Counter[str] = Counter()
    for service in SERVICES:
        with system.databases.connect(service) as connection:
            for table, verb in (("outbox", "raised"), ("applied_events", "applied")):
                for event_type, count in connection.exec_driver_sql(
                        f"SELECT event_type, count(*) FROM {table} GROUP BY event_type"):
                    counts[f"{service} {verb} {event_type}"] = count
    return counts


def differences(ordered: dict[str, Any], shuffled: dict[str, Any]) -> str:
    def lines(state: dict[str, Any]) -> list[str]:
        return json.dumps(state, indent=1, sort_keys=True, default=str).splitlines()
    return "\n".join(difflib.unified_diff(lines(ordered), lines(shuffled), "ordered",
                                          "three times, shuffled", lineterm=""))


def test_every_event_three_times_in_shuffled_order_ends_as_one_ordered_delivery() -> None:
    with running_system("every event three times, shuffled") as system:
        before = event_counts(system)
        ordered = Story(system, "ordered")
        ordered.tell()
        system.quiesce()
        middle = event_counts(system)

        shuffler = Shuffler(system)
        shuffler.start()
        try:
            shuffled = Story(system, "shuffled")
            shuffled.tell()
            eventually(shuffler.idle, timeout=60)
            system.quiesce()
            assert shuffler.idle()
        finally:
            shuffler.stop()
        after = event_counts(system)
        system.summary.events_duplicated = shuffler.duplicates
        system.summary.figures["events taken over by the shuffler"] = sum(
            shuffler.events.values())
        system.summary.figures["deliveries by the shuffler"] = shuffler.deliveries

        first, second = final_state(ordered), final_state(shuffled)
        raised_once, raised_shuffled = middle - before, after - middle
        findings = invariants.check(system)
        system.summary.invariants_checked += len(first) + len(raised_once)
        if first != second:
            system.summary.violations.append("final states differ:\n"
                                             + differences(first, second))
        if raised_once != raised_shuffled:
            system.summary.violations.append(
                "events raised or applied differ:\n"
                + differences(dict(raised_once), dict(raised_shuffled)))

    assert shuffler.deliveries == shuffler.owed > 0
    assert differences(first, second) == ""
    assert differences(dict(raised_once), dict(raised_shuffled)) == ""
    assert findings.violations == []
    assert system.summary.http_5xx == 0 and system.summary.internal_errors == 0
