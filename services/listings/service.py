"""Listings service entrypoints: publish lots, search them, and reserve gold for orders.

Publishing checks listings' own copy of certificates (kept from certification events), so it
never needs to call the certification service. Reservations answer the order saga by event.
"""

from __future__ import annotations

import uuid
from typing import Any

from nameko.rpc import rpc
from pydantic import Field

from services.certification.events import CertificationGranted
from services.listings import domain, store
from services.listings.events import ListingPublished, ListingReserved, ReservationRejected
from services.orders.events import OrderPlaced
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Conflict, VetaError
from shared.messaging import Database, consumes
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase
from shared.validation import (
    Command,
    CountryCode,
    FinenessTenths,
    Identifier,
    Milligrams,
    Name,
    Reference,
    parse,
)
from shared.values import Standard, format_fineness, format_grams, grams_to_mg


class MineSiteInput(Command):
    name: Name
    region: Name
    country: CountryCode
    latitude: str | None = Field(default=None, pattern=r"^-?\d{1,2}(\.\d{1,6})?$")
    longitude: str | None = Field(default=None, pattern=r"^-?\d{1,3}(\.\d{1,6})?$")


class PublishListing(Command):
    producer_id: Identifier
    standard: Standard
    form: domain.LotForm
    gross_weight: Milligrams
    fineness: FinenessTenths
    mine_site: MineSiteInput
    mercury_free: bool
    assay_reference: Reference


class ListingFilter(Command):
    standard: list[Standard] = Field(default_factory=list, max_length=3)
    min_fineness: FinenessTenths | None = None
    country: CountryCode | None = None


class ListingIds(Command):
    ids: list[Identifier] = Field(max_length=500)


def lot_view(row: store.LotRow) -> dict[str, Any]:
    return {
        "id": row.id, "producer_id": row.producer_id, "standard": row.standard,
        "form": row.form, "gross_weight": format_grams(row.gross_mg),
        "fineness": format_fineness(row.fineness_tenths),
        "fine_weight": format_grams(row.fine_mg),
        "available_fine_weight": format_grams(row.available_mg),
        "mine_site": {"name": row.mine_site_name, "region": row.mine_site_region,
                      "country": row.country, "latitude": row.latitude,
                      "longitude": row.longitude},
        "mercury_free": row.mercury_free, "assay_reference": row.assay_reference,
        "status": row.status, "created_at": row.created_at.isoformat(),
    }


class ListingsService:
    name = "listings"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    @rpc(expected_exceptions=VetaError)
    def publish_listing(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(PublishListing, data)
        caller.require_organisation(Role.PRODUCER, command.producer_id)
        site = command.mine_site
        with self.db.unit_of_work() as uow:
            lot = domain.publish(
                lot_id=str(uuid.uuid4()), producer_id=command.producer_id,
                standard=command.standard, form=command.form, gross_mg=command.gross_weight,
                fineness_tenths=command.fineness,
                mine_site=domain.MineSite(name=site.name, region=site.region,
                                          country=site.country, latitude=site.latitude,
                                          longitude=site.longitude),
                mercury_free=command.mercury_free, assay_reference=command.assay_reference,
                held=store.held_by(uow.session, command.producer_id), today=self.clock.today())
            row = store.LotRow.from_domain(lot, created_at=self.clock.now())
            uow.session.add(row)
            uow.raise_event(ListingPublished(
                listing_id=lot.id, producer_id=lot.producer_id, standard=lot.standard,
                form=str(lot.form), gross_weight=format_grams(lot.gross_mg),
                fineness=format_fineness(lot.fineness_tenths),
                fine_weight=format_grams(lot.fine_mg), country=site.country,
                mercury_free=lot.mercury_free))
            return lot_view(row)

    @rpc(expected_exceptions=VetaError)
    def get_listings(self, ids: list[str]) -> list[dict[str, Any]]:
        command = parse(ListingIds, {"ids": ids})
        with self.db.reading() as session:
            rows = session.query(store.LotRow).filter(store.LotRow.id.in_(command.ids)).all()
            return [lot_view(row) for row in rows]

    @rpc(expected_exceptions=VetaError)
    def search_listings(self, filter: dict[str, Any] | None = None, first: int | None = None,
                        after: str | None = None) -> dict[str, Any]:
        criteria = parse(ListingFilter, filter or {})
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.search(
                session, standards=[str(s) for s in criteria.standard],
                min_fineness_tenths=criteria.min_fineness, country=criteria.country,
                first=size + 1, after=decode_cursor(after))
        page = rows[:size]
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id), "node": lot_view(row)}
                      for row in page],
            "has_next_page": len(rows) > size,
        }

    @consumes("certification", CertificationGranted.type)
    def on_certification_granted(self, payload: dict[str, Any]) -> None:
        event = CertificationGranted.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            uow.session.merge(store.HeldCertificationRow(
                certification_id=event.certification_id, producer_id=event.producer_id,
                standard=str(event.standard), valid_from=event.valid_from,
                valid_until=event.valid_until, status="CERTIFIED"))

    @consumes("orders", OrderPlaced.type)
    def on_order_placed(self, payload: dict[str, Any]) -> None:
        """Reserve the order's fine gold atomically, or say why not."""
        event = OrderPlaced.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.LotRow, event.listing_id, with_for_update=True)
            wanted = grams_to_mg(event.fine_weight)
            if row is None:
                uow.raise_event(ReservationRejected(
                    order_id=event.order_id, listing_id=event.listing_id,
                    reason="no such lot"))
                return
            lot = row.to_domain()
            try:
                lot.reserve(wanted)
            except Conflict as refusal:
                uow.raise_event(ReservationRejected(
                    order_id=event.order_id, listing_id=lot.id, reason=refusal.message))
                return
            row.update_from(lot)
            uow.session.add(store.ReservationRow(order_id=event.order_id, lot_id=lot.id,
                                                 fine_mg=wanted, created_at=self.clock.now()))
            uow.raise_event(ListingReserved(
                order_id=event.order_id, listing_id=lot.id, producer_id=lot.producer_id,
                standard=lot.standard, fine_weight=format_grams(wanted),
                available_fine_weight=format_grams(lot.available_mg)))


