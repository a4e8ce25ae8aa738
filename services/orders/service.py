"""Orders service entrypoints: buyers' orders through their saga, and sourcing commitments.

Placing records a PENDING order and raises order_placed; listings answers with
listing_reserved or reservation_rejected, which confirm or reject it here. Certification
events hold and release confirmed orders; deliveries draw commitments down; timers retry or
reject unanswered orders and lapse commitments whose period has ended.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from nameko.dependency_providers import Config
from nameko.timer import Timer
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints
from sqlalchemy import update

from services.certification.events import (
    CertificationChanged,
    CertificationExpired,
    CertificationGranted,
    CertificationReinstated,
    CertificationSuspended,
    CertificationWithdrawn,
)
from services.listings.events import ListingPublished, ListingReserved, ReservationRejected
from services.orders import domain, store
from services.orders.domain import CertificateStatus, OrderStatus
from services.orders.events import (
    CommitmentAmended,
    CommitmentCancelled,
    CommitmentCreated,
    CommitmentFulfilled,
    CommitmentLapsed,
    CommitmentProgressed,
    OrderCancelled,
    OrderConfirmed,
    OrderDeclined,
    OrderDelivered,
    OrderHoldPlaced,
    OrderHoldReleased,
    OrderPlaced,
    OrderRejected,
    OrderSettled,
    OrderShipped,
)
from services.payouts.events import PremiumTransferred
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, VetaError
from shared.messaging import Database, consumes, rpc
from shared.observability import Operations
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase, UnitOfWork
from shared.validation import (
    Command,
    CountryCode,
    FinenessTenths,
    Identifier,
    Milligrams,
    Reference,
    parse,
)
from shared.values import Standard, format_fineness, format_grams, grams_to_mg

log = logging.getLogger(__name__)

SETTINGS_KEY = "ORDERS"
DEFAULTS = {
    "retry_after_seconds": 30.0,  # ask listings again after this long without an answer
    "pending_timeout_seconds": 300.0,  # then give up: the order is REJECTED
    "sweep_seconds": 5.0,  # how often PENDING orders are looked at
    "review_seconds": 60.0,  # how often commitments are lapsed and holds reviewed
}
SWEEP_BATCH = 500


def settings(config: dict[str, Any]) -> dict[str, float]:
    given = config.get(SETTINGS_KEY) or {}
    return {key: float(given.get(key, default)) for key, default in DEFAULTS.items()}


class ConfiguredTimer(Timer):
    """nameko's timer, with its interval read from the ORDERS settings when it starts."""

    def __init__(self, setting: str, **kwargs: Any) -> None:
        self.setting = setting
        super().__init__(interval=DEFAULTS[setting], **kwargs)

    def setup(self) -> None:
        self.interval = settings(self.container.config)[self.setting]


def _percent(value: Any) -> int:
    return domain.percent_to_bp(value)


Percent = Annotated[int, BeforeValidator(_percent)]
"""A share of the LBMA price given as a decimal string ("98.50"), held in basis points."""
def _printable(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


Reason = Annotated[str, StringConstraints(min_length=1, max_length=500),
                   AfterValidator(_printable)]


class PriceBasisInput(Command):
    percent_of_lbma: Percent
    fixing: domain.LbmaFixing = domain.LbmaFixing.PM


class PlaceOrder(Command):
    buyer_id: Identifier
    listing_id: Identifier
    fine_weight: Milligrams
    price_basis: PriceBasisInput | None = None
    idempotency_key: Identifier | None = None


class CancelOrder(Command):
    order_id: Identifier
    reason: Reason = "cancelled by the buyer"


class DeclineOrder(Command):
    order_id: Identifier
    reason: Reason


class MarkOrderShipped(Command):
    order_id: Identifier
    shipment_reference: Reference
    carrier: Reference | None = None
    export_permit: Reference | None = None


class ConfirmDelivery(Command):
    order_id: Identifier
    received_gross_weight: Milligrams
    received_fineness: FinenessTenths


class SettleOrder(Command):
    order_id: Identifier


class OrderIds(Command):
    ids: list[Identifier] = Field(max_length=500)


class OrderFilter(Command):
    status: list[OrderStatus] = Field(default_factory=list, max_length=len(OrderStatus))
    listing_id: Identifier | None = None
    placed_from: date | None = None
    placed_to: date | None = None


class CreateCommitment(Command):
    buyer_id: Identifier
    fine_weight: Milligrams
    standards: list[Standard] = Field(min_length=1, max_length=len(Standard))
    period_start: date
    period_end: date
    countries: list[CountryCode] = Field(default_factory=list, max_length=50)
    producer_ids: list[Identifier] = Field(default_factory=list, max_length=50)
    price_ceiling: Percent | None = None
    idempotency_key: Identifier | None = None


class AmendCommitment(Command):
    commitment_id: Identifier
    fine_weight: Milligrams | None = None
    period_end: date | None = None
    standards: list[Standard] | None = Field(default=None, min_length=1,
                                             max_length=len(Standard))
    countries: list[CountryCode] | None = Field(default=None, max_length=50)
    producer_ids: list[Identifier] | None = Field(default=None, max_length=50)
    price_ceiling: Percent | None = None
    remove_price_ceiling: bool = False


class CancelCommitment(Command):
    commitment_id: Identifier
    reason: Reason = "cancelled by the buyer"


class CommitmentIds(Command):
    ids: list[Identifier] = Field(max_length=100)


class CommitmentFilter(Command):
    status: list[domain.CommitmentStatus] = Field(default_factory=list, max_length=4)
    active_from: date | None = None
    active_to: date | None = None


# --- views ----------------------------------------------------------------------------------


def order_view(row: store.OrderRow, history: list[store.TransitionRow]) -> dict[str, Any]:
    delivered = row.delivered_fine_mg
    basis = None
    if row.price_percent_bp is not None:
        basis = {"percent_of_lbma": domain.format_percent(row.price_percent_bp),
                 "fixing": row.price_fixing}
    return {
        "id": row.id, "buyer_id": row.buyer_id, "listing_id": row.listing_id,
        "producer_id": row.producer_id, "standard": row.standard, "status": row.status,
        "fine_weight": format_grams(row.fine_mg), "reason": row.reason,
        "price_basis": basis, "shipment_reference": row.shipment_reference,
        "carrier": row.carrier, "export_permit": row.export_permit,
        "cancelled_by": row.cancelled_by,
        "received_gross_weight": (format_grams(row.received_gross_mg)
                                  if row.received_gross_mg is not None else None),
        "received_fineness": (format_fineness(row.received_fineness_tenths)
                              if row.received_fineness_tenths is not None else None),
        "delivered_fine_weight": format_grams(delivered) if delivered is not None else None,
        "delivery_difference": (format_grams(delivered - row.fine_mg)
                                if delivered is not None and delivered != row.fine_mg
                                else ("0.000" if delivered is not None else None)),
        "delivered_on": row.delivered_on.isoformat() if row.delivered_on else None,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "history": [{"from": t.from_status, "to": t.to_status, "actor": t.actor,
                     "at": t.at.isoformat(), "reason": t.reason} for t in history],
    }


def may_see(caller: Caller, row: store.OrderRow) -> bool:
    if caller.role in (Role.ADMIN, Role.FINANCE):
        return True
    if caller.role is Role.BUYER:
        return caller.organisation == row.buyer_id
    if caller.role is Role.PRODUCER:
        return caller.organisation == row.producer_id
    return False


def commitment_view(row: store.CommitmentRow, scope: list[store.CommitmentScopeRow],
                    drawn: list[store.DrawdownRow], ordered_mg: int,
                    today: date) -> dict[str, Any]:
    commitment = row.to_domain(scope)
    progress = commitment.progress(ordered_mg, today)
    ceiling = commitment.scope.price_ceiling_bp
    return {
        "id": row.id, "buyer_id": row.buyer_id, "fine_weight": format_grams(row.fine_mg),
        "standards": sorted(str(s) for s in commitment.scope.standards),
        "countries": sorted(commitment.scope.countries),
        "producer_ids": sorted(commitment.scope.producer_ids),
        "price_ceiling_percent": domain.format_percent(ceiling) if ceiling else None,
        "period_start": row.period_start.isoformat(), "period_end": row.period_end.isoformat(),
        "status": row.status, "reason": row.reason,
        "progress": {
            "committed": format_grams(progress.committed_mg),
            "ordered": format_grams(progress.ordered_mg),
            "delivered": format_grams(progress.delivered_mg),
            "remaining": format_grams(progress.remaining_mg),
            "expected": format_grams(progress.expected_mg),
            "percentage": str(progress.percentage),
            "elapsed_share": str(progress.elapsed_share),
            "pace": str(progress.pace),
        },
        "drawdowns": [{"order_id": d.order_id, "fine_weight": format_grams(d.fine_mg),
                       "delivered_on": d.delivered_on.isoformat()} for d in drawn],
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
    }


def may_see_commitment(caller: Caller, row: store.CommitmentRow,
                       scope: list[store.CommitmentScopeRow]) -> bool:
    if caller.role is Role.ADMIN:
        return True
    if caller.role is Role.BUYER:
        return caller.organisation == row.buyer_id
    if caller.role is Role.PRODUCER:
        return any(t.dimension == store.PRODUCER and t.value == caller.organisation
                   for t in scope)
    return False


def scope_of(command: CreateCommitment | AmendCommitment,
             current: domain.Scope | None = None) -> domain.Scope:
    base = current or domain.Scope(standards=frozenset(command.standards or []))
    ceiling = base.price_ceiling_bp
    if command.price_ceiling is not None:
        ceiling = command.price_ceiling
    if isinstance(command, AmendCommitment) and command.remove_price_ceiling:
        ceiling = None
    return domain.Scope(
        standards=frozenset(command.standards) if command.standards else base.standards,
        countries=(frozenset(command.countries) if command.countries is not None
                   else base.countries),
        producer_ids=(frozenset(command.producer_ids) if command.producer_ids is not None
                      else base.producer_ids),
        price_ceiling_bp=ceiling)


def terms(commitment: domain.Commitment) -> dict[str, Any]:
    scope = commitment.scope
    return {
        "commitment_id": commitment.id, "buyer_id": commitment.buyer_id,
        "fine_weight": format_grams(commitment.fine_mg),
        "standards": sorted(scope.standards), "period_start": commitment.period_start,
        "period_end": commitment.period_end, "countries": sorted(scope.countries),
        "producer_ids": sorted(scope.producer_ids),
        "price_ceiling_percent": (domain.format_percent(scope.price_ceiling_bp)
                                  if scope.price_ceiling_bp else None)}


def placed_event(row: store.OrderRow, event_id: str) -> OrderPlaced:
    """The order_placed event this order raised, rebuilt with its own id for a retry."""
    return OrderPlaced(event_id=uuid.UUID(event_id), occurred_at=store.as_utc(row.created_at),
                       order_id=row.id, buyer_id=row.buyer_id, listing_id=row.listing_id,
                       fine_weight=format_grams(row.fine_mg))


class OrdersService(Operations):
    name = "orders"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()
    config: dict[str, Any] = Config()

    # --- orders: commands -------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def place_order(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(PlaceOrder, data)
        caller.require_organisation(Role.BUYER, command.buyer_id)
        now = self.clock.now()
        basis = None
        if command.price_basis is not None:
            basis = domain.PriceBasis(command.price_basis.percent_of_lbma,
                                      command.price_basis.fixing)
        order_id = domain.order_id_for(command.buyer_id, command.idempotency_key)
        with self.db.unit_of_work() as uow:
            # Looked up before the price is checked: a retry finds the order it placed even
            # if orders has learnt the lot's standard since.
            if command.idempotency_key is not None and (
                    earlier := self._placed_before(uow, order_id, command)) is not None:
                return order_view(earlier, store.history(uow.session, [order_id]))
            lot = uow.session.get(store.KnownLotRow, command.listing_id)
            if lot is not None and (refusal := domain.price_refusal(Standard(lot.standard),
                                                                   basis)):
                raise InvalidInput(refusal, field="price_basis.percent_of_lbma")
            # The producer is known from orders' copy of the lot when it has one, so the
            # producer sees the order while it is PENDING; the reservation confirms it.
            order = domain.Order(id=order_id, buyer_id=command.buyer_id,
                                 listing_id=command.listing_id, fine_mg=command.fine_weight,
                                 price_basis=basis,
                                 producer_id=lot.producer_id if lot else None,
                                 standard=Standard(lot.standard) if lot else None)
            placed = OrderPlaced(order_id=order.id, buyer_id=order.buyer_id,
                                 listing_id=order.listing_id,
                                 fine_weight=format_grams(order.fine_mg))
            row = store.add_order(uow.session, order, str(placed.event_id), now)
            if row is None:  # the same request, committed while this one waited
                earlier = self._placed_before(uow, order_id, command)
                assert earlier is not None
                return order_view(earlier, store.history(uow.session, [order_id]))
            placement = store.record(uow.session, row, order, None, caller.subject, now)
            uow.raise_event(placed)
            return order_view(row, [placement])

    @rpc(expected_exceptions=VetaError)
    def cancel_order(self, data: dict[str, Any]) -> dict[str, Any]:
        """The buyer withdraws a PENDING, CONFIRMED or held order; listings releases it."""
        caller = required(self.caller)
        command = parse(CancelOrder, data)
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.BUYER, order.buyer_id)
            before = order.cancel(command.reason)
            store.record(uow.session, row, order, before, caller.subject, self.clock.now(),
                         command.reason)
            uow.raise_event(OrderCancelled(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                fine_weight=format_grams(order.fine_mg), reason=command.reason))
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def decline_order(self, data: dict[str, Any]) -> dict[str, Any]:
        """The producer refuses a CONFIRMED order before shipping; listings releases it."""
        caller = required(self.caller)
        command = parse(DeclineOrder, data)
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.PRODUCER, order.producer_id or "")
            before = order.decline(command.reason)
            store.record(uow.session, row, order, before, caller.subject, self.clock.now(),
                         command.reason)
            uow.raise_event(OrderDeclined(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                fine_weight=format_grams(order.fine_mg), reason=command.reason))
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def mark_order_shipped(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(MarkOrderShipped, data)
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.PRODUCER, order.producer_id or "")
            before = order.ship(command.shipment_reference, command.carrier,
                                command.export_permit)
            store.record(uow.session, row, order, before, caller.subject, self.clock.now())
            uow.raise_event(OrderShipped(order_id=order.id,
                                         shipment_reference=command.shipment_reference,
                                         carrier=command.carrier,
                                         export_permit=command.export_permit))
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def confirm_delivery(self, data: dict[str, Any]) -> dict[str, Any]:
        """The buyer received and assayed the gold; matching commitments are drawn down."""
        caller = required(self.caller)
        command = parse(ConfirmDelivery, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.BUYER, order.buyer_id)
            assay = domain.ReceivingAssay(command.received_gross_weight,
                                          command.received_fineness)
            before = order.deliver(assay, now.date())
            store.record(uow.session, row, order, before, caller.subject, now)
            assert order.producer_id is not None and order.standard is not None
            uow.raise_event(OrderDelivered(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                producer_id=order.producer_id, standard=order.standard,
                ordered_fine_weight=format_grams(order.fine_mg),
                received_gross_weight=format_grams(assay.gross_mg),
                received_fineness=format_fineness(assay.fineness_tenths),
                delivered_fine_weight=format_grams(assay.fine_mg), delivered_on=now.date()))
            self._draw_down(uow, row, now)
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def settle_order(self, data: dict[str, Any]) -> dict[str, Any]:
        """Finance closes a delivered order once its premium is paid."""
        caller = required(self.caller)
        caller.require(Role.FINANCE)
        command = parse(SettleOrder, data)
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            before = order.settle()
            store.record(uow.session, row, order, before, caller.subject, self.clock.now())
            uow.raise_event(OrderSettled(order_id=order.id, buyer_id=order.buyer_id,
                                         producer_id=order.producer_id or ""))
            return order_view(row, store.history(uow.session, [order.id]))

    # --- orders: queries --------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def get_orders(self, ids: list[str]) -> list[dict[str, Any]]:
        """Orders the caller may see, among `ids`; the others are left out, not refused."""
        caller = required(self.caller)
        command = parse(OrderIds, {"ids": ids})
        with self.db.reading() as session:
            rows = [row for row in session.query(store.OrderRow)
                    .filter(store.OrderRow.id.in_(command.ids)) if may_see(caller, row)]
            history: dict[str, list[store.TransitionRow]] = defaultdict(list)
            for transition in store.history(session, [row.id for row in rows]):
                history[transition.order_id].append(transition)
            return [order_view(row, history[row.id]) for row in rows]

    @rpc(expected_exceptions=VetaError)
    def list_orders(self, filter: dict[str, Any] | None = None, first: int | None = None,
                    after: str | None = None) -> dict[str, Any]:
        """The caller's orders: a buyer's own, a producer's for its lots, all for staff."""
        caller = required(self.caller)
        criteria = parse(OrderFilter, filter or {})
        size = page_size(first)
        scope: dict[str, str | None] = {"buyer_id": None, "producer_id": None}
        if caller.role is Role.BUYER:
            scope["buyer_id"] = caller.organisation
        elif caller.role is Role.PRODUCER:
            scope["producer_id"] = caller.organisation
        elif caller.role not in (Role.ADMIN, Role.FINANCE):
            raise Forbidden("only buyers, producers and staff see orders")
        placed_from = placed_before = None
        if criteria.placed_from is not None:
            placed_from = store.day_bounds(criteria.placed_from, criteria.placed_from)[0]
        if criteria.placed_to is not None:
            placed_before = store.day_bounds(criteria.placed_to, criteria.placed_to)[1]
        if placed_from and placed_before and placed_before <= placed_from:
            raise InvalidInput("the period cannot end before it starts", field="placed_to")
        with self.db.reading() as session:
            rows = store.page_of_orders(
                session, first=size + 1, after=decode_cursor(after),
                statuses=[str(s) for s in criteria.status], listing_id=criteria.listing_id,
                placed_from=placed_from, placed_before=placed_before, **scope)
            history: dict[str, list[store.TransitionRow]] = defaultdict(list)
            for transition in store.history(session, [row.id for row in rows[:size]]):
                history[transition.order_id].append(transition)
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": order_view(row, history[row.id])} for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }

    # --- orders: answers from listings ------------------------------------------------------

    @consumes("listings", ListingPublished.type)
    def on_listing_published(self, payload: dict[str, Any]) -> None:
        """Keep who sells a lot and where it was mined: commitments match on the country."""
        event = ListingPublished.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            uow.session.merge(store.KnownLotRow(
                listing_id=event.listing_id, producer_id=event.producer_id,
                standard=str(event.standard), country=event.country,
                fine_mg=grams_to_mg(event.fine_weight)))
            # Orders placed before this event arrived learn their producer now, so the final
            # state is the same whichever came first.
            uow.session.execute(
                update(store.OrderRow)
                .where(store.OrderRow.listing_id == event.listing_id,
                       store.OrderRow.producer_id.is_(None))
                .values(producer_id=event.producer_id, standard=str(event.standard)))

    @consumes("listings", ListingReserved.type)
    def on_listing_reserved(self, payload: dict[str, Any]) -> None:
        event = ListingReserved.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.OrderRow, event.order_id, with_for_update=True)
            if row is None:
                log.warning("ignoring %s for unknown order %s", event.type, event.order_id)
                return
            order = row.to_domain()
            if order.gives_back_late_reservations:
                self._give_back(uow, order, event.fine_weight)
                return
            if order.status is not OrderStatus.PENDING:
                log.info("ignoring %s for order %s: already %s", event.type, order.id,
                         order.status)
                return
            now = self.clock.now()
            refusal = domain.price_refusal(event.standard, order.price_basis)
            if refusal is not None:
                # Orders could not check the price when the order was placed (it had not
                # yet heard of the lot): refuse now, and give the reservation back.
                before = order.reject(refusal)
                store.record(uow.session, row, order, before, "orders", now, refusal)
                uow.raise_event(OrderRejected(order_id=order.id, buyer_id=order.buyer_id,
                                              listing_id=order.listing_id, reason=refusal))
                self._give_back(uow, order, event.fine_weight)
                return
            before = order.confirm(event.producer_id, event.standard)
            store.record(uow.session, row, order, before, "listings", now)
            uow.raise_event(OrderConfirmed(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                producer_id=event.producer_id, standard=event.standard,
                fine_weight=format_grams(order.fine_mg)))
            certificates = store.certificates_of(uow.session, event.producer_id,
                                                 event.standard, shared_lock=True)
            if domain.in_good_standing(certificates, now.date()) is False:
                latest = max(certificates, key=lambda c: c.changed_at)
                self._hold(uow, row, order, domain.hold_reason(event.standard, latest.status,
                                                               None), now)

    @consumes("listings", ReservationRejected.type)
    def on_reservation_rejected(self, payload: dict[str, Any]) -> None:
        event = ReservationRejected.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.OrderRow, event.order_id, with_for_update=True)
            if row is None or row.status != OrderStatus.PENDING:
                # A refusal for an order that has moved on changes nothing; retrying it
                # could never succeed.
                log.info("ignoring %s for order %s: %s", event.type, event.order_id,
                         "unknown order" if row is None else f"order is {row.status}")
                return
            order = row.to_domain()
            before = order.reject(event.reason)
            store.record(uow.session, row, order, before, "listings", self.clock.now(),
                         event.reason)
            uow.raise_event(OrderRejected(order_id=order.id, buyer_id=order.buyer_id,
                                          listing_id=order.listing_id, reason=event.reason))

    # --- orders: unanswered, retried, rejected ----------------------------------------------

    @ConfiguredTimer.decorator("sweep_seconds")
    def sweep_pending_orders(self) -> None:
        """Ask listings again about PENDING orders it has not answered, then give up on them.

        A retry publishes the same order_placed event again (same event id), so a listings
        that already applied it skips it and one that never received it reserves now: it
        can never reserve twice for one order, whatever listings does with order ids.
        """
        config = settings(self.config)
        policy = domain.PendingPolicy(
            retry_after=timedelta(seconds=config["retry_after_seconds"]),
            give_up_after=timedelta(seconds=config["pending_timeout_seconds"]))
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            for row in store.overdue_pending(uow.session, asked_before=now - policy.retry_after,
                                             placed_before=now - policy.give_up_after,
                                             limit=SWEEP_BATCH):
                action = policy.action(store.as_utc(row.created_at),
                                       store.as_utc(row.last_asked_at or row.created_at), now)
                if action is domain.PendingAction.REJECT:
                    order = row.to_domain()
                    reason = policy.rejection_reason()
                    before = order.reject(reason)
                    store.record(uow.session, row, order, before, "orders", now, reason)
                    uow.raise_event(OrderRejected(order_id=order.id, buyer_id=order.buyer_id,
                                                  listing_id=order.listing_id, reason=reason))
                elif action is domain.PendingAction.RETRY:
                    if row.placed_event_id is not None:
                        uow.publish_again(placed_event(row, row.placed_event_id))
                        row.attempts += 1
                    row.last_asked_at = now

    # --- orders: holds from certification events --------------------------------------------

    @consumes("payouts", PremiumTransferred.type)
    def on_premium_transferred(self, payload: dict[str, Any]) -> None:
        """The cooperative has its premium: the delivered order is settled."""
        event = PremiumTransferred.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.OrderRow, event.order_id, with_for_update=True)
            if row is None or row.status != OrderStatus.DELIVERED:
                log.info("not settling order %s on its premium: %s", event.order_id,
                         "unknown order" if row is None else f"order is {row.status}")
                return
            order = row.to_domain()
            before = order.settle()
            store.record(uow.session, row, order, before, "payouts", self.clock.now())
            uow.raise_event(OrderSettled(order_id=order.id, buyer_id=order.buyer_id,
                                         producer_id=order.producer_id or ""))

    @consumes("certification", CertificationGranted.type)
    def on_certification_granted(self, payload: dict[str, Any]) -> None:
        event = CertificationGranted.from_envelope(payload)
        self._certificate_changed(event, CertificateStatus.CERTIFIED, event.valid_from,
                                  getattr(event, "version", None), None)

    @consumes("certification", CertificationSuspended.type)
    def on_certification_suspended(self, payload: dict[str, Any]) -> None:
        self._status_changed(CertificationSuspended.from_envelope(payload),
                             CertificateStatus.SUSPENDED)

    @consumes("certification", CertificationExpired.type)
    def on_certification_expired(self, payload: dict[str, Any]) -> None:
        self._status_changed(CertificationExpired.from_envelope(payload),
                             CertificateStatus.EXPIRED)

    @consumes("certification", CertificationWithdrawn.type)
    def on_certification_withdrawn(self, payload: dict[str, Any]) -> None:
        self._status_changed(CertificationWithdrawn.from_envelope(payload),
                             CertificateStatus.WITHDRAWN)

    @consumes("certification", CertificationReinstated.type)
    def on_certification_reinstated(self, payload: dict[str, Any]) -> None:
        self._status_changed(CertificationReinstated.from_envelope(payload),
                             CertificateStatus.CERTIFIED)

    @ConfiguredTimer.decorator("review_seconds")
    def review_holds(self) -> None:
        """Hold and release by the calendar, and as a safety net.

        Releases orders whose producer came back into good standing with no event to say so
        (a renewal granted ahead of time starts today), and holds any confirmed order a
        suspension missed (a reservation confirmed while the suspended certificate's first
        copy was being written).
        """
        today = self.clock.today()
        with self.db.unit_of_work() as uow:
            for producer_id, standard in store.pairs_to_review(uow.session):
                self._review_standing(uow, producer_id, standard, today, None)

    # --- commitments ------------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def create_commitment(self, data: dict[str, Any]) -> dict[str, Any]:
        """A buyer's new commitment; asked again under its idempotency key, the same one."""
        caller = required(self.caller)
        command = parse(CreateCommitment, data)
        caller.require_organisation(Role.BUYER, command.buyer_id)
        now = self.clock.now()
        scope = scope_of(command)
        requested = domain.requested_terms_digest(
            fine_mg=command.fine_weight, period_start=command.period_start,
            period_end=command.period_end, scope=scope)
        commitment_id = (str(uuid.uuid4()) if command.idempotency_key is None else
                         domain.commitment_id_for(command.buyer_id, command.idempotency_key))
        with self.db.unit_of_work() as uow:
            # Looked up before the terms are checked against today: a retry that arrives
            # after the period has ended still finds the commitment it made.
            row = (self._asked_before(uow, commitment_id, command.buyer_id, requested)
                   if command.idempotency_key is not None else None)
            if row is None:
                commitment = domain.new_commitment(
                    commitment_id=commitment_id, buyer_id=command.buyer_id,
                    fine_mg=command.fine_weight, period_start=command.period_start,
                    period_end=command.period_end, scope=scope, today=now.date())
                row = store.add_commitment(uow.session, commitment, requested, now)
                if row is None:  # the same request, committed while this one waited
                    row = self._asked_before(uow, commitment_id, command.buyer_id, requested)
                    assert row is not None
                else:
                    uow.raise_event(CommitmentCreated(**terms(commitment)))
            uow.session.flush()
            return self._commitment_views(uow.session, [row], now.date())[0]

    @rpc(expected_exceptions=VetaError)
    def amend_commitment(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(AmendCommitment, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row, commitment = self._load_commitment(uow, command.commitment_id)
            caller.require_organisation(Role.BUYER, commitment.buyer_id)
            scope = scope_of(command, commitment.scope)
            fulfilled = commitment.amend(today=now.date(), fine_mg=command.fine_weight,
                                         period_end=command.period_end, scope=scope)
            row.update_from(commitment, now)
            store.replace_scope(uow.session, row.id, commitment.scope)
            uow.raise_event(CommitmentAmended(**terms(commitment)))
            if fulfilled:
                uow.raise_event(CommitmentFulfilled(
                    commitment_id=row.id, buyer_id=row.buyer_id,
                    fine_weight=format_grams(row.fine_mg), fulfilled_on=now.date()))
            uow.session.flush()
            return self._commitment_views(uow.session, [row], now.date())[0]

    @rpc(expected_exceptions=VetaError)
    def cancel_commitment(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(CancelCommitment, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row, commitment = self._load_commitment(uow, command.commitment_id)
            caller.require_organisation(Role.BUYER, commitment.buyer_id)
            commitment.cancel(command.reason)
            row.update_from(commitment, now)
            uow.raise_event(CommitmentCancelled(
                commitment_id=row.id, buyer_id=row.buyer_id, reason=command.reason,
                delivered_fine_weight=format_grams(row.delivered_mg)))
            return self._commitment_views(uow.session, [row], now.date())[0]

    @rpc(expected_exceptions=VetaError)
    def get_commitments(self, ids: list[str]) -> list[dict[str, Any]]:
        """Commitments the caller may see, among `ids`."""
        caller = required(self.caller)
        command = parse(CommitmentIds, {"ids": ids})
        with self.db.reading() as session:
            rows = list(session.query(store.CommitmentRow)
                        .filter(store.CommitmentRow.id.in_(command.ids)))
            scopes = store.scopes_of(session, [row.id for row in rows])
            visible = [row for row in rows if may_see_commitment(caller, row, scopes[row.id])]
            return self._commitment_views(session, visible, self.clock.today())

    @rpc(expected_exceptions=VetaError)
    def list_commitments(self, filter: dict[str, Any] | None = None, first: int | None = None,
                         after: str | None = None) -> dict[str, Any]:
        """A buyer's own commitments, those naming a producer, or all for administrators."""
        caller = required(self.caller)
        criteria = parse(CommitmentFilter, filter or {})
        size = page_size(first)
        scope: dict[str, str | None] = {"buyer_id": None, "producer_id": None}
        if caller.role is Role.BUYER:
            scope["buyer_id"] = caller.organisation
        elif caller.role is Role.PRODUCER:
            scope["producer_id"] = caller.organisation
        elif caller.role is not Role.ADMIN:
            raise Forbidden("only buyers and the producers they name see commitments")
        with self.db.reading() as session:
            rows = store.page_of_commitments(
                session, statuses=[str(s) for s in criteria.status],
                active_from=criteria.active_from, active_to=criteria.active_to,
                first=size + 1, after=decode_cursor(after), **scope)
            views = self._commitment_views(session, rows[:size], self.clock.today())
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id), "node": view}
                      for row, view in zip(rows[:size], views, strict=True)],
            "has_next_page": len(rows) > size,
        }

    @ConfiguredTimer.decorator("review_seconds")
    def lapse_commitments(self) -> None:
        """Commitments whose period ended short of their quantity lapse."""
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            rows = store.ended_commitments(uow.session, now.date(), SWEEP_BATCH,
                                           skip_locked=True)
            scopes = store.scopes_of(uow.session, [row.id for row in rows])
            for row in rows:
                commitment = row.to_domain(scopes[row.id])
                commitment.lapse(now.date())
                row.update_from(commitment, now)
                uow.raise_event(CommitmentLapsed(
                    commitment_id=row.id, buyer_id=row.buyer_id,
                    fine_weight=format_grams(row.fine_mg),
                    delivered_fine_weight=format_grams(row.delivered_mg),
                    remaining_fine_weight=format_grams(commitment.remaining_mg),
                    period_end=row.period_end))

    # --- helpers ----------------------------------------------------------------------------

    def _load(self, uow: UnitOfWork, order_id: str) -> tuple[store.OrderRow, domain.Order]:
        row = uow.session.get(store.OrderRow, order_id, with_for_update=True)
        if row is None:
            raise NotFound("no such order", field="order_id")
        if self.caller is not None and not may_see(self.caller, row):
            # Someone else's order is reported as missing, so its existence does not leak.
            raise NotFound("no such order", field="order_id")
        return row, row.to_domain()

    def _give_back(self, uow: UnitOfWork, order: domain.Order, fine_weight: str) -> None:
        """A reservation reached an order that must not keep one: ask listings to release it.

        listings releases on order_cancelled by order id, idempotently, so asking once more
        (a new event: the first order_cancelled may have been applied before the gold was
        reserved) is always safe.
        """
        log.info("order %s is %s but listings reserved gold for it: releasing", order.id,
                 order.status)
        uow.raise_event(OrderCancelled(
            order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
            fine_weight=fine_weight,
            reason=f"reservation arrived after the order was {order.status.lower()}"))

    def _hold(self, uow: UnitOfWork, row: store.OrderRow, order: domain.Order, reason: str,
              now: datetime) -> None:
        before = order.hold(reason)
        store.record(uow.session, row, order, before, "certification", now, reason)
        assert order.producer_id is not None and order.standard is not None
        uow.raise_event(OrderHoldPlaced(
            order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
            producer_id=order.producer_id, standard=order.standard, reason=reason))

    def _status_changed(self, event: CertificationChanged, status: CertificateStatus) -> None:
        self._certificate_changed(event, status, getattr(event, "valid_from", None),
                                  getattr(event, "version", None), event.reason)

    def _certificate_changed(self, event: CertificationGranted | CertificationChanged,
                             status: CertificateStatus, valid_from: date | None,
                             version: int | None, why: str | None) -> None:
        """Update orders' copy of a certificate, then hold or release the producer's orders."""
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.KnownCertificateRow, event.certification_id,
                                  with_for_update=True)
            if row is None:
                uow.session.add(store.KnownCertificateRow(
                    certification_id=event.certification_id, producer_id=event.producer_id,
                    standard=str(event.standard), status=str(status), version=version,
                    valid_from=valid_from, changed_at=event.occurred_at))
            else:
                changed = row.to_domain().changed(status, version, event.occurred_at,
                                                  valid_from)
                if changed is None:
                    log.info("ignoring %s for certificate %s: stale or withdrawn", event.type,
                             event.certification_id)
                    return
                row.update_from(changed)
            uow.session.flush()
            self._review_standing(uow, event.producer_id, event.standard,
                                  self.clock.today(), domain.hold_reason(event.standard,
                                                                         status, why))

    def _review_standing(self, uow: UnitOfWork, producer_id: str, standard: Standard,
                         today: date, reason: str | None) -> None:
        certificates = store.certificates_of(uow.session, producer_id, standard)
        standing = domain.in_good_standing(certificates, today)
        if standing is None:
            return
        now = self.clock.now()
        if standing is False:
            latest = max(certificates, key=lambda c: c.changed_at)
            reason = reason or domain.hold_reason(standard, latest.status, None)
            for row in store.locked_orders(uow.session, producer_id=producer_id,
                                           standard=standard, status=OrderStatus.CONFIRMED):
                self._hold(uow, row, row.to_domain(), reason, now)
            return
        for row in store.locked_orders(uow.session, producer_id=producer_id,
                                       standard=standard, status=OrderStatus.ON_HOLD):
            order = row.to_domain()
            before = order.release_hold()
            store.record(uow.session, row, order, before, "certification", now)
            uow.raise_event(OrderHoldReleased(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                producer_id=producer_id, standard=standard))

    def _draw_down(self, uow: UnitOfWork, row: store.OrderRow, now: datetime) -> None:
        rows = store.active_commitments(uow.session, row.buyer_id)
        if not rows:
            return
        scopes = store.scopes_of(uow.session, [r.id for r in rows])
        by_id = {r.id: r for r in rows}
        commitments = [r.to_domain(scopes[r.id]) for r in rows]
        lot = uow.session.get(store.KnownLotRow, row.listing_id)
        for commitment, taken in domain.draw_down(commitments, store.facts(row, lot)):
            commitment_row = by_id[commitment.id]
            commitment_row.update_from(commitment, now)
            uow.session.add(store.DrawdownRow(
                commitment_id=commitment.id, order_id=row.id, fine_mg=taken,
                delivered_on=now.date(), at=now))
            uow.raise_event(CommitmentProgressed(
                commitment_id=commitment.id, buyer_id=commitment.buyer_id, order_id=row.id,
                drawn_fine_weight=format_grams(taken),
                delivered_fine_weight=format_grams(commitment.delivered_mg),
                remaining_fine_weight=format_grams(commitment.remaining_mg),
                percentage=str(commitment.progress(0, now.date()).percentage)))
            if commitment.status is domain.CommitmentStatus.FULFILLED:
                uow.raise_event(CommitmentFulfilled(
                    commitment_id=commitment.id, buyer_id=commitment.buyer_id,
                    fine_weight=format_grams(commitment.fine_mg), fulfilled_on=now.date()))

    def _load_commitment(self, uow: UnitOfWork, commitment_id: str
                         ) -> tuple[store.CommitmentRow, domain.Commitment]:
        row = uow.session.get(store.CommitmentRow, commitment_id, with_for_update=True)
        scope = store.scopes_of(uow.session, [commitment_id])[commitment_id] if row else []
        if row is None or (self.caller is not None
                           and not may_see_commitment(self.caller, row, scope)):
            raise NotFound("no such commitment", field="commitment_id")
        return row, row.to_domain(scope)

    def _placed_before(self, uow: UnitOfWork, order_id: str,
                       command: PlaceOrder) -> store.OrderRow | None:
        """The order an earlier request under the same key placed, if any; Conflict if that
        was another buyer's request, or for another lot or weight."""
        row = uow.session.get(store.OrderRow, order_id)
        if row is None:
            return None
        domain.same_placement(row.to_domain(), buyer_id=command.buyer_id,
                              listing_id=command.listing_id, fine_mg=command.fine_weight)
        return row

    def _asked_before(self, uow: UnitOfWork, commitment_id: str, buyer_id: str,
                      requested: str) -> store.CommitmentRow | None:
        """The commitment an earlier request under the same key made, if any; Conflict if
        that request asked for other terms."""
        row = uow.session.get(store.CommitmentRow, commitment_id)
        if row is None:
            return None
        if row.buyer_id != buyer_id or row.requested_terms != requested:
            raise Conflict("this idempotency key was used for a commitment with other terms",
                           field="idempotency_key")
        return row

    def _commitment_views(self, session: Any, rows: list[store.CommitmentRow],
                          today: date) -> list[dict[str, Any]]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        scopes = store.scopes_of(session, ids)
        drawn: dict[str, list[store.DrawdownRow]] = defaultdict(list)
        for drawdown in store.drawdowns(session, ids):
            drawn[drawdown.commitment_id].append(drawdown)
        views = []
        for row in rows:
            commitment = row.to_domain(scopes[row.id])
            ordered = sum(order.fine_mg for order, lot in
                          store.candidate_orders(session, commitment)
                          if commitment.counts_as_ordered(store.facts(order, lot)))
            views.append(commitment_view(row, scopes[row.id], drawn[row.id], ordered, today))
        return views

