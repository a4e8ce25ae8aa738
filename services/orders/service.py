"""Orders service entrypoints: place orders and drive each through its saga.

Placing records a PENDING order and raises order_placed; listings answers with
listing_reserved or reservation_rejected, which confirm or reject it here.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import Any

from nameko.rpc import rpc
from pydantic import Field

from services.listings.events import ListingReserved, ReservationRejected
from services.orders import domain, store
from services.orders.events import (
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Forbidden, NotFound, VetaError
from shared.messaging import Database, consumes
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase, UnitOfWork
from shared.validation import Command, FinenessTenths, Identifier, Milligrams, Reference, parse
from shared.values import format_fineness, format_grams

log = logging.getLogger(__name__)


class PlaceOrder(Command):
    buyer_id: Identifier
    listing_id: Identifier
    fine_weight: Milligrams


class MarkOrderShipped(Command):
    order_id: Identifier
    shipment_reference: Reference


class ConfirmDelivery(Command):
    order_id: Identifier
    received_gross_weight: Milligrams
    received_fineness: FinenessTenths


class OrderIds(Command):
    ids: list[Identifier] = Field(max_length=500)


def order_view(row: store.OrderRow, history: list[store.TransitionRow]) -> dict[str, Any]:
    delivered = row.delivered_fine_mg
    return {
        "id": row.id, "buyer_id": row.buyer_id, "listing_id": row.listing_id,
        "producer_id": row.producer_id, "standard": row.standard, "status": row.status,
        "fine_weight": format_grams(row.fine_mg), "reason": row.reason,
        "shipment_reference": row.shipment_reference,
        "received_gross_weight": (format_grams(row.received_gross_mg)
                                  if row.received_gross_mg is not None else None),
        "received_fineness": (format_fineness(row.received_fineness_tenths)
                              if row.received_fineness_tenths is not None else None),
        "delivered_fine_weight": format_grams(delivered) if delivered is not None else None,
        "delivery_difference": (format_grams(delivered - row.fine_mg)
                                if delivered is not None and delivered != row.fine_mg
                                else ("0.000" if delivered is not None else None)),
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "history": [{"from": t.from_status, "to": t.to_status, "actor": t.actor,
                     "at": t.at.isoformat()} for t in history],
    }


def may_see(caller: Caller, row: store.OrderRow) -> bool:
    if caller.role in (Role.ADMIN, Role.FINANCE):
        return True
    if caller.role is Role.BUYER:
        return caller.organisation == row.buyer_id
    if caller.role is Role.PRODUCER:
        return caller.organisation == row.producer_id
    return False


class OrdersService:
    name = "orders"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    @rpc(expected_exceptions=VetaError)
    def place_order(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(PlaceOrder, data)
        caller.require_organisation(Role.BUYER, command.buyer_id)
        now = self.clock.now()
        order = domain.Order(id=str(uuid.uuid4()), buyer_id=command.buyer_id,
                             listing_id=command.listing_id, fine_mg=command.fine_weight)
        with self.db.unit_of_work() as uow:
            row = store.OrderRow(id=order.id, buyer_id=order.buyer_id,
                                 listing_id=order.listing_id, fine_mg=order.fine_mg,
                                 status=str(order.status), created_at=now, updated_at=now)
            uow.session.add(row)
            uow.session.flush()
            store.record(uow.session, row, order, None, caller.subject, now)
            uow.raise_event(OrderPlaced(order_id=order.id, buyer_id=order.buyer_id,
                                        listing_id=order.listing_id,
                                        fine_weight=format_grams(order.fine_mg)))
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def mark_order_shipped(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(MarkOrderShipped, data)
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.PRODUCER, order.producer_id or "")
            before = order.ship(command.shipment_reference)
            store.record(uow.session, row, order, before, caller.subject, self.clock.now())
            uow.raise_event(OrderShipped(order_id=order.id,
                                         shipment_reference=command.shipment_reference))
            return order_view(row, store.history(uow.session, [order.id]))

    @rpc(expected_exceptions=VetaError)
    def confirm_delivery(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(ConfirmDelivery, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row, order = self._load(uow, command.order_id)
            caller.require_organisation(Role.BUYER, order.buyer_id)
            assay = domain.ReceivingAssay(command.received_gross_weight,
                                          command.received_fineness)
            before = order.deliver(assay)
            store.record(uow.session, row, order, before, caller.subject, now)
            assert order.producer_id is not None and order.standard is not None
            uow.raise_event(OrderDelivered(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                producer_id=order.producer_id, standard=order.standard,
                ordered_fine_weight=format_grams(order.fine_mg),
                received_gross_weight=format_grams(assay.gross_mg),
                received_fineness=format_fineness(assay.fineness_tenths),
                delivered_fine_weight=format_grams(assay.fine_mg), delivered_on=now.date()))
            return order_view(row, store.history(uow.session, [order.id]))

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
    def list_orders(self, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        """The caller's orders: a buyer's own, a producer's for its lots, all for staff."""
        caller = required(self.caller)
        size = page_size(first)
        scope: dict[str, str | None] = {"buyer_id": None, "producer_id": None}
        if caller.role is Role.BUYER:
            scope["buyer_id"] = caller.organisation
        elif caller.role is Role.PRODUCER:
            scope["producer_id"] = caller.organisation
        elif caller.role not in (Role.ADMIN, Role.FINANCE):
            raise Forbidden("only buyers, producers and staff see orders")
        with self.db.reading() as session:
            rows = store.page_of_orders(session, first=size + 1, after=decode_cursor(after),
                                        **scope)
            history: dict[str, list[store.TransitionRow]] = defaultdict(list)
            for transition in store.history(session, [row.id for row in rows[:size]]):
                history[transition.order_id].append(transition)
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": order_view(row, history[row.id])} for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }

    @consumes("listings", ListingReserved.type)
    def on_listing_reserved(self, payload: dict[str, Any]) -> None:
        event = ListingReserved.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            found = self._pending(uow, event.order_id, event.type)
            if found is None:
                return
            row, order = found
            before = order.confirm(event.producer_id, event.standard)
            store.record(uow.session, row, order, before, "listings", self.clock.now())
            uow.raise_event(OrderConfirmed(
                order_id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
                producer_id=event.producer_id, standard=event.standard,
                fine_weight=format_grams(order.fine_mg)))

    @consumes("listings", ReservationRejected.type)
    def on_reservation_rejected(self, payload: dict[str, Any]) -> None:
        event = ReservationRejected.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            found = self._pending(uow, event.order_id, event.type)
            if found is None:
                return
            row, order = found
            before = order.reject(event.reason)
            store.record(uow.session, row, order, before, "listings", self.clock.now())
            uow.raise_event(OrderRejected(order_id=order.id, buyer_id=order.buyer_id,
                                          listing_id=order.listing_id, reason=event.reason))

    def _pending(self, uow: UnitOfWork, order_id: str, answer: str
                 ) -> tuple[store.OrderRow, domain.Order] | None:
        """The order a reservation answer is for, if it still waits for one.

        An answer for an unknown order, or one that has moved on (cancelled while listings
        was deciding), changes nothing here; retrying it could never succeed.
        """
        row = uow.session.get(store.OrderRow, order_id, with_for_update=True)
        if row is None or row.status != domain.OrderStatus.PENDING:
            log.warning("ignoring %s for order %s: %s", answer, order_id,
                        "unknown order" if row is None else f"order is {row.status}")
            return None
        return row, row.to_domain()

    def _load(self, uow: UnitOfWork, order_id: str) -> tuple[store.OrderRow, domain.Order]:
        row = uow.session.get(store.OrderRow, order_id, with_for_update=True)
        if row is None:
            raise NotFound("no such order", field="order_id")
        if self.caller is not None and not may_see(self.caller, row):
            # Someone else's order is reported as missing, so its existence does not leak.
            raise NotFound("no such order", field="order_id")
        return row, row.to_domain()


