"""Payouts service entrypoints: turn deliveries into premium obligations and list them.

An obligation is created once per delivered order (the order id is unique in the table and
the delivery event is applied once), with the rate in force on the delivery date.
"""

from __future__ import annotations

import uuid
from typing import Any

from nameko.rpc import rpc
from sqlalchemy import select

from services.orders.events import OrderDelivered
from services.payouts import domain, store
from services.payouts.events import PremiumObligationCreated
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Forbidden, VetaError
from shared.messaging import Database, consumes
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase
from shared.values import format_grams, format_money, grams_to_mg


def obligation_view(row: store.ObligationRow) -> dict[str, Any]:
    return {
        "id": row.id, "order_id": row.order_id, "producer_id": row.producer_id,
        "buyer_id": row.buyer_id, "standard": row.standard,
        "fine_weight": format_grams(row.fine_mg), "usd_per_kg": row.usd_per_kg,
        "amount": format_money(row.amount_cents), "currency": row.currency,
        "delivered_on": row.delivered_on.isoformat(), "status": row.status,
        "created_at": row.created_at.isoformat(),
    }


class PayoutsService:
    name = "payouts"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    @rpc(expected_exceptions=VetaError)
    def list_obligations(self, producer_id: str | None = None, first: int | None = None,
                         after: str | None = None) -> dict[str, Any]:
        caller = required(self.caller)
        if caller.role is Role.PRODUCER:
            if producer_id not in (None, caller.organisation):
                raise Forbidden("a producer sees only its own premiums", field="producer_id")
            producer_id = caller.organisation
        elif caller.role not in (Role.FINANCE, Role.ADMIN):
            raise Forbidden("only finance staff and producers see premiums")
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.page_of_obligations(session, producer_id=producer_id,
                                             first=size + 1, after=decode_cursor(after))
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": obligation_view(row)} for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }

    @consumes("orders", OrderDelivered.type)
    def on_order_delivered(self, payload: dict[str, Any]) -> None:
        event = OrderDelivered.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            exists = uow.session.scalar(select(store.ObligationRow.id)
                                        .where(store.ObligationRow.order_id == event.order_id))
            if exists is not None:
                return
            obligation = domain.obligation_for(
                obligation_id=str(uuid.uuid4()), order_id=event.order_id,
                producer_id=event.producer_id, buyer_id=event.buyer_id,
                standard=event.standard, fine_mg=grams_to_mg(event.delivered_fine_weight),
                delivered_on=event.delivered_on, rates=store.rates(uow.session))
            if obligation is None:
                return
            uow.session.add(store.ObligationRow.from_domain(obligation, self.clock.now()))
            uow.raise_event(PremiumObligationCreated(
                obligation_id=obligation.id, order_id=obligation.order_id,
                producer_id=obligation.producer_id, standard=obligation.standard,
                fine_weight=format_grams(obligation.fine_mg),
                usd_per_kg=str(obligation.usd_per_kg),
                amount=format_money(obligation.amount_cents), currency=obligation.currency))
