"""What a broken and recovered Veta must still hold, read straight from the services' databases.

Nothing lost (no order left PENDING, no event left in an outbox or a dead-letter queue),
nothing oversold (a lot's reserved weight is exactly its fine weight less what is available),
nothing paid twice nor left unpaid (one premium obligation per delivered order, PAID once
approved; one Stripe transfer per obligation, adding up to what payouts says it paid),
nothing half-written (every state change has its event and every event its state).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.listings import store as listings
from services.orders import store as orders
from services.orders.domain import ALLOWED, STANDING, OrderStatus
from services.payouts import domain as payouts_domain
from services.payouts import store as payouts
from shared.values import Standard, premium_cents
from tests.reliability.harness import System

RESTING = frozenset(OrderStatus) - {OrderStatus.PENDING}
"""Every status but PENDING: terminal, or waiting for a person (shipping, delivery)."""


@dataclass
class Findings:
    """Invariants checked (each lot, order and event counts once) and the ones broken."""

    checked: int = 0
    violations: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def expect(self, kind: str, holds: bool, message: str) -> None:
        self.checked += 1
        self.kinds[kind] += 1
        if not holds:
            self.violations.append(f"{kind}: {message}")


@dataclass
class State:
    """The rows the invariants are about, from all four databases at one moment of quiet."""

    orders: dict[str, orders.OrderRow]
    history: dict[str, list[tuple[str | None, str]]]
    lots: dict[str, listings.LotRow]
    reservations: dict[str, listings.ReservationRow]
    obligations: list[payouts.ObligationRow]
    rates: list[payouts_domain.PremiumRate]
    accounts: dict[str, str]  # producer -> its Stripe connected account
    outbox: dict[str, list[dict[str, Any]]]
    applied: dict[str, dict[str, str]]


def read_state(system: System) -> State:
    databases = system.databases
    outbox: dict[str, list[dict[str, Any]]] = {}
    applied: dict[str, dict[str, str]] = {}
    for service in databases.engines:
        with databases.connect(service) as connection:
            outbox[service] = [dict(row._mapping) for row in connection.exec_driver_sql(
                "SELECT event_id, event_type, payload, sent_at FROM outbox ORDER BY id")]
            applied[service] = {row[0]: row[1] for row in connection.exec_driver_sql(
                "SELECT event_id, event_type FROM applied_events")}
    with databases.connect("orders") as connection, Session(connection) as session:
        rows = {row.id: row for row in session.scalars(select(orders.OrderRow))}
        history: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
        for step in session.scalars(select(orders.TransitionRow)
                                    .order_by(orders.TransitionRow.id)):
            history[step.order_id].append((step.from_status, step.to_status))
    with databases.connect("listings") as connection, Session(connection) as session:
        lots = {row.id: row for row in session.scalars(select(listings.LotRow))}
        reservations = {row.order_id: row
                        for row in session.scalars(select(listings.ReservationRow))}
    with databases.connect("payouts") as connection, Session(connection) as session:
        obligations = list(session.scalars(select(payouts.ObligationRow)))
        rates = payouts.rates(session)
        accounts = {row.producer_id: row.stripe_account_id
                    for row in session.scalars(select(payouts.AccountRow))}
    return State(rows, history, lots, reservations, obligations, rates, accounts, outbox,
                 applied)


def check(system: System, intents: Iterable[Any] = ()) -> Findings:
    """Every invariant, over everything in the system's databases. Call when quiet."""
    state = read_state(system)
    findings = Findings()
    orders_settled(state, findings)
    histories_consistent(state, findings)
    lots_never_oversold(state, findings)
    reservations_match_orders(state, findings)
    one_obligation_per_delivery(state, findings)
    outboxes_drained(state, findings)
    events_match_state(state, findings)
    nothing_dead_lettered(system, findings)
    intents = list(intents)
    client_view_matches(state, intents, findings)
    premiums_paid(system, state, intents, findings)
    stripe_transfers_unique(system, findings, state=state)
    system.summary.orders_in_databases = len(state.orders)
    system.summary.statuses = dict(Counter(row.status for row in state.orders.values()))
    system.summary.invariants_checked += findings.checked
    system.summary.violations += findings.violations
    system.summary.figures["invariants by kind"] = dict(findings.kinds)
    return findings


# --- orders ---------------------------------------------------------------------------------


def orders_settled(state: State, findings: Findings) -> None:
    """No order is left waiting for the saga's answer once the system is quiet."""
    for order in state.orders.values():
        findings.expect("order answered", order.status in RESTING,
                        f"order {order.id} is {order.status}")


def histories_consistent(state: State, findings: Findings) -> None:
    """Each order's transitions chain from its placing to its status, by allowed steps only."""
    for order in state.orders.values():
        steps = state.history.get(order.id, [])
        chain_ok = bool(steps) and steps[0] == (None, str(OrderStatus.PENDING))
        for (_, before), (source, target) in itertools.pairwise(steps):
            chain_ok = chain_ok and source == before \
                and OrderStatus(target) in ALLOWED[OrderStatus(before)]
        chain_ok = chain_ok and steps[-1][1] == order.status
        findings.expect("history consistent", chain_ok,
                        f"order {order.id} is {order.status} with history {steps}")


# --- lots and reservations -----------------------------------------------------------------

STANDING_NAMES = frozenset(str(s) for s in STANDING)


def lots_never_oversold(state: State, findings: Findings) -> None:
    """Per lot: the fine weight of standing orders is at most the lot's, and is exactly what
    the lot no longer has available."""
    ordered: Counter[str] = Counter()
    for order in state.orders.values():
        if order.status in STANDING_NAMES:
            ordered[order.listing_id] += order.fine_mg
    for lot in state.lots.values():
        findings.expect("lot never oversold", ordered[lot.id] <= lot.fine_mg,
                        f"lot {lot.id}: {ordered[lot.id]} mg ordered of {lot.fine_mg} mg")
        findings.expect("lot weight adds up", ordered[lot.id] == lot.fine_mg - lot.available_mg,
                        f"lot {lot.id}: standing orders hold {ordered[lot.id]} mg but "
                        f"{lot.fine_mg - lot.available_mg} mg is taken "
                        f"(fine {lot.fine_mg}, available {lot.available_mg})")
    for lot_id in set(ordered) - set(state.lots):
        findings.expect("lot exists", False, f"orders hold {ordered[lot_id]} mg of unknown "
                                             f"lot {lot_id}")


def reservations_match_orders(state: State, findings: Findings) -> None:
    """A standing order has exactly its weight reserved in its lot; no other order keeps any."""
    taken: Counter[str] = Counter()
    for order_id, reservation in state.reservations.items():
        if reservation.released_at is None:
            taken[reservation.lot_id] += reservation.fine_mg
        order = state.orders.get(order_id)
        held = reservation.released_at is None
        findings.expect("reservation has its order", order is not None or not held,
                        f"reservation for unknown order {order_id} holds "
                        f"{reservation.fine_mg} mg")
    for order in state.orders.values():
        kept = state.reservations.get(order.id)
        held = kept is not None and kept.released_at is None
        if order.status in STANDING_NAMES:
            findings.expect(
                "standing order reserved",
                held and kept is not None and kept.fine_mg == order.fine_mg
                and kept.lot_id == order.listing_id,
                f"order {order.id} is {order.status} for {order.fine_mg} mg but its "
                f"reservation is {_describe(kept)}")
        else:
            findings.expect("ended order released", not held,
                            f"order {order.id} is {order.status} but still holds "
                            f"{_describe(kept)}")
    for lot in state.lots.values():
        findings.expect("reservations add up", taken[lot.id] == lot.fine_mg - lot.available_mg,
                        f"lot {lot.id}: reservations hold {taken[lot.id]} mg but "
                        f"{lot.fine_mg - lot.available_mg} mg is taken")


def _describe(reservation: listings.ReservationRow | None) -> str:
    if reservation is None:
        return "missing"
    released = f", released ({reservation.released_reason})" if reservation.released_at else ""
    return f"{reservation.fine_mg} mg of lot {reservation.lot_id}{released}"


# --- premiums -------------------------------------------------------------------------------

DELIVERED = frozenset({str(OrderStatus.DELIVERED), str(OrderStatus.SETTLED)})


def one_obligation_per_delivery(state: State, findings: Findings) -> None:
    """A delivered order under a standard with a premium owes exactly one obligation, of the
    delivered fine weight at the rate in force on the delivery day; nothing else owes one."""
    by_order: dict[str, list[payouts.ObligationRow]] = defaultdict(list)
    for obligation in state.obligations:
        by_order[obligation.order_id].append(obligation)
    for order in state.orders.values():
        owed = by_order.get(order.id, [])
        if order.status not in DELIVERED:
            findings.expect("no premium before delivery", not owed,
                            f"order {order.id} is {order.status} but owes {len(owed)}")
            continue
        assert order.standard is not None and order.delivered_on is not None
        rate = payouts_domain.rate_in_force(state.rates, Standard(order.standard),
                                            order.delivered_on)
        if rate is None:
            findings.expect("no premium without a rate", not owed,
                            f"{order.standard} order {order.id} owes {len(owed)}")
            continue
        findings.expect("one premium per delivery", len(owed) == 1,
                        f"delivered order {order.id} owes {len(owed)} obligations")
        expected = premium_cents(order.delivered_fine_mg or 0, rate.usd_per_kg)
        for obligation in owed:
            findings.expect(
                "premium amount",
                obligation.amount_cents == expected
                and obligation.fine_mg == order.delivered_fine_mg
                and obligation.producer_id == order.producer_id,
                f"obligation {obligation.id} for order {order.id}: {obligation.amount_cents} "
                f"cents on {obligation.fine_mg} mg, expected {expected} on "
                f"{order.delivered_fine_mg} mg")
    for order_id in set(by_order) - set(state.orders):
        findings.expect("premium has its order", False, f"obligation for unknown order "
                                                        f"{order_id}")


# --- messaging ------------------------------------------------------------------------------


def outboxes_drained(state: State, findings: Findings) -> None:
    for service, rows in state.outbox.items():
        unsent = [row["event_type"] for row in rows if row["sent_at"] is None]
        findings.expect("outbox drained", not unsent,
                        f"{service} never published {dict(Counter(unsent))}")


def _events(state: State, service: str, event_type: str) -> list[dict[str, Any]]:
    return [row["payload"] for row in state.outbox[service] if row["event_type"] == event_type]


def events_match_state(state: State, findings: Findings) -> None:
    """Nothing half-written: each state change committed its event, each event its change."""
    # orders: one order_placed per order, under the id the order keeps for retries.
    placed = {p["event_id"]: p["order_id"] for p in _events(state, "orders", "order_placed")}
    for order in state.orders.values():
        findings.expect("order placed event", placed.get(order.placed_event_id or "")
                        == order.id, f"order {order.id} has no order_placed event")
    for event_id, order_id in placed.items():
        findings.expect("placed event has its order", order_id in state.orders,
                        f"order_placed {event_id} for missing order {order_id}")
    # orders: one event per step taken, per order.
    for step, event_type in (((OrderStatus.PENDING, OrderStatus.CONFIRMED), "order_confirmed"),
                             ((OrderStatus.CONFIRMED, OrderStatus.SHIPPED), "order_shipped"),
                             ((OrderStatus.SHIPPED, OrderStatus.DELIVERED), "order_delivered"),
                             ((OrderStatus.DELIVERED, OrderStatus.SETTLED), "order_settled")):
        raised = Counter(p["order_id"] for p in _events(state, "orders", event_type))
        taken = Counter(order_id for order_id, steps in state.history.items()
                        for source_target in steps
                        if source_target == (str(step[0]), str(step[1])))
        for order_id in set(raised) | set(taken):
            findings.expect(f"{event_type} matches history", raised[order_id] == taken[order_id],
                            f"order {order_id}: {raised[order_id]} {event_type} events for "
                            f"{taken[order_id]} such steps")
    rejected = Counter(p["order_id"] for p in _events(state, "orders", "order_rejected"))
    for order_id, count in rejected.items():
        found = state.orders.get(order_id)
        findings.expect("order_rejected matches state",
                        count == 1 and found is not None and found.status == "REJECTED",
                        f"{count} order_rejected for order {order_id} "
                        f"({found.status if found else 'missing'})")
    # listings: a reservation for every listing_reserved, an answer for every order it heard of.
    reserved = Counter(p["order_id"] for p in _events(state, "listings", "listing_reserved"))
    refused = {p["order_id"] for p in _events(state, "listings", "reservation_rejected")}
    for order_id in reserved:
        reservation = state.reservations.get(order_id)
        findings.expect("listing_reserved has its reservation",
                        reservation is not None and reservation.fine_mg > 0,
                        f"listing_reserved for order {order_id} without a reservation")
    for order_id, reservation in state.reservations.items():
        if reservation.fine_mg > 0:
            findings.expect("reservation announced", reserved[order_id] >= 1,
                            f"reservation of order {order_id} never announced")
    released = Counter(p["order_id"] for p in _events(state, "listings", "reservation_released"))
    for order_id, reservation in state.reservations.items():
        if reservation.fine_mg > 0:
            expected = 1 if reservation.released_at is not None else 0
            findings.expect("release announced once", released[order_id] == expected,
                            f"reservation of order {order_id} released "
                            f"{'yes' if expected else 'no'} with {released[order_id]} events")
    heard = {p["order_id"] for p in _events(state, "orders", "order_placed")
             if p["event_id"] in state.applied["listings"]}
    for order_id in heard:
        findings.expect("order_placed answered", order_id in state.reservations
                        or order_id in refused,
                        f"listings applied order_placed for {order_id} but neither "
                        "reserved nor refused it")
    # payouts: one premium_obligation_created per obligation.
    created = Counter(p["obligation_id"]
                      for p in _events(state, "payouts", "premium_obligation_created"))
    ids = {obligation.id for obligation in state.obligations}
    for obligation_id in ids | set(created):
        findings.expect("obligation announced once",
                        obligation_id in ids and created[obligation_id] == 1,
                        f"obligation {obligation_id}: {created[obligation_id]} events, "
                        f"{'in' if obligation_id in ids else 'not in'} the table")


def nothing_dead_lettered(system: System, findings: Findings) -> None:
    letters = system.dead_letters()
    system.summary.dead_letters = len(letters)
    findings.expect("no dead letters", not letters,
                    "; ".join(f"{letter['queue']}: {letter['error']}" for letter in letters))


# --- what the clients were told ------------------------------------------------------------


def client_view_matches(state: State, intents: list[Any], findings: Findings) -> None:
    """Each order a buyer asked for once exists once; what a client was told still holds."""
    if not intents:
        return
    by_key: dict[tuple[str, str, int], list[orders.OrderRow]] = defaultdict(list)
    for order in state.orders.values():
        by_key[(order.buyer_id, order.listing_id, order.fine_mg)].append(order)
    for intent in intents:
        found = by_key.pop(intent.key, [])
        if intent.placed == "acknowledged":
            findings.expect("acknowledged order exists once",
                            [o.id for o in found] == [intent.order_id],
                            f"intent {intent.number} was told {intent.order_id}; the database "
                            f"has {[o.id for o in found]}")
        else:
            findings.expect("unknown outcome placed at most once", len(found) <= 1,
                            f"intent {intent.number} ({intent.placed}) has {len(found)} "
                            f"orders: {[o.id for o in found]}")
        if found and intent.done and intent.seen in ("DELIVERED", "CANCELLED", "REJECTED"):
            # A delivered order is settled once its premium is paid: no client's doing.
            truths = {intent.seen, "SETTLED"} if intent.seen == "DELIVERED" else {intent.seen}
            findings.expect("client was told the truth", found[0].status in truths,
                            f"intent {intent.number} saw {intent.seen}, the database has "
                            f"{found[0].status}")
    for key, extra in by_key.items():
        findings.expect("no order nobody asked for", False,
                        f"{len(extra)} orders for {key} that no client placed")


# --- Stripe ---------------------------------------------------------------------------------


def premiums_paid(system: System, state: State, intents: list[Any],
                  findings: Findings) -> None:
    """Every premium the load approved reached PAID once the sweep had its time (a transfer
    SUBMITTED or FAILED-retryable at a crash must have gone out since), and a delivered order
    is SETTLED exactly when its premium is PAID (orders hears `premium_transferred`)."""
    by_order = {obligation.order_id: obligation for obligation in state.obligations}
    for obligation in state.obligations:
        order = state.orders.get(obligation.order_id)
        findings.expect("settled when paid", order is not None and (
            (obligation.status == "PAID") == (order.status == str(OrderStatus.SETTLED))),
            f"obligation {obligation.id} is {obligation.status}, its order "
            f"{order.status if order else 'missing'}")
        if obligation.status == "PAID":
            findings.expect("paid has its transfer", bool(obligation.transfer_id)
                            and obligation.destination == state.accounts.get(
                                obligation.producer_id),
                            f"obligation {obligation.id} PAID with transfer "
                            f"{obligation.transfer_id} to {obligation.destination}")
    if system.stripe is None:
        return
    statuses: Counter[str] = Counter()
    for intent in intents:
        # The load approves every premium of an order it saw delivered (docs/reliability.md).
        if intent.seen != "DELIVERED" or intent.order_id not in by_order:
            continue
        obligation = by_order[intent.order_id]
        statuses[obligation.status] += 1
        findings.expect("approved premium paid", obligation.status == "PAID",
                        f"order {intent.order_id}: premium {obligation.id} is "
                        f"{obligation.status} ({obligation.failure_code or 'no failure'}; "
                        f"approvals {obligation.approvals})")
    system.summary.figures["premiums of delivered orders by status"] = dict(statuses)


def list_transfers(system: System) -> list[dict[str, Any]]:
    """Every transfer at the local Stripe server, through its API, page by page."""
    assert system.stripe is not None
    transfers: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"starting_after": after} if after else {})}
        page = requests.get(f"{system.stripe.url}/v1/transfers", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {system.stripe.api_key}"}).json()
        transfers += page["data"]
        if not page.get("has_more"):
            break
        after = page["data"][-1]["id"]
    return transfers


def stripe_transfers_unique(system: System, findings: Findings,
                            metadata_key: str = "obligation_id",
                            state: State | None = None) -> None:
    """No transfer exists twice at the local Stripe server: one per obligation, the one the
    obligation recorded, for its amount, to its producer's account; and per producer, the
    transfers add up to the premiums PAID.

    `metadata_key` is the key payouts puts the obligation id under
    (services/payouts/transfers.py `_transfer_params`).
    """
    if system.stripe is None:
        return
    state = state or read_state(system)
    transfers = list_transfers(system)
    per_obligation: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for transfer in transfers:
        per_obligation[(transfer.get("metadata") or {}).get(metadata_key)].append(transfer)
    duplicates = sum(len(made) - 1 for made in per_obligation.values() if len(made) > 1)
    system.summary.figures["stripe transfers"] = len(transfers)
    system.summary.figures["duplicate stripe transfers"] = duplicates
    for obligation_id, made in per_obligation.items():
        findings.expect("one transfer per obligation", obligation_id is not None
                        and len(made) == 1,
                        f"{len(made)} transfers for obligation {obligation_id}: "
                        f"{[t['id'] for t in made]}")
    known = {obligation.id: obligation for obligation in state.obligations}
    for obligation_id, made in per_obligation.items():
        obligation = known.get(obligation_id or "")
        findings.expect("transfer has its obligation", obligation is not None,
                        f"transfer for unknown obligation {obligation_id}")
        if obligation is None:
            continue
        findings.expect(
            "transfer is the obligation's",
            all(t["id"] == obligation.transfer_id and t["amount"] == obligation.amount_cents
                and t["destination"] == state.accounts.get(obligation.producer_id)
                and t["transfer_group"] == obligation.order_id for t in made),
            f"obligation {obligation.id} ({obligation.status}, {obligation.amount_cents} "
            f"cents, transfer {obligation.transfer_id}) has "
            f"{[(t['id'], t['amount'], t['destination']) for t in made]}")
    for obligation in state.obligations:
        if obligation.status == "PAID":
            findings.expect("paid obligation transferred", obligation.id in per_obligation,
                            f"obligation {obligation.id} is PAID with no transfer at Stripe")
    # Per producer, what Stripe moved equals what payouts says it paid.
    producer_of_account = {account: producer for producer, account in state.accounts.items()}
    sent: Counter[str] = Counter()
    for transfer in transfers:
        sent[producer_of_account.get(transfer["destination"], transfer["destination"])] += \
            transfer["amount"]
    paid: Counter[str] = Counter()
    for obligation in state.obligations:
        if obligation.status == "PAID":
            paid[obligation.producer_id] += obligation.amount_cents
    for producer in set(sent) | set(paid):
        findings.expect("transfers add up to premiums paid", sent[producer] == paid[producer],
                        f"producer {producer}: {sent[producer]} cents transferred, "
                        f"{paid[producer]} cents of premiums PAID")
    system.summary.figures["premium cents transferred"] = sum(sent.values())
