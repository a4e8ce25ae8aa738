"""Listings service entrypoints: lots from draft to sold out, search, reservations, cascades.

Publishing checks listings' own copy of certificates (kept from certification events), so it
never needs to call the certification service. A certificate's suspension, expiry or
withdrawal takes the producer's lots under that standard off the market, and its
reinstatement brings them back. Reservations answer the order saga by event.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from services.certification.events import (
    CertificationChanged,
    CertificationExpired,
    CertificationGranted,
    CertificationReinstated,
    CertificationSuspended,
    CertificationWithdrawn,
    ProducerRegistered,
    ProducerUpdated,
)
from services.listings import domain, store
from services.listings.events import (
    ListingPublished,
    ListingReinstated,
    ListingReserved,
    ListingSuspended,
    ListingWithdrawn,
    ReservationRejected,
    ReservationReleased,
)
from services.orders.events import OrderCancelled, OrderDeclined, OrderPlaced
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, VetaError
from shared.events import Event
from shared.messaging import Database, consumes, rpc
from shared.observability import Operations
from shared.pagination import page_size
from shared.persistence import ServiceDatabase, UnitOfWork
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

log = logging.getLogger(__name__)

PriceBasis = Annotated[int, Field(ge=-999, le=1000)]
"""Per mille against the LBMA price: -999 (almost free) to +1000 (double)."""


def _no_nul(text: str) -> str:
    # PostgreSQL cannot store (or compare with) a NUL character: refuse it by field.
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    return text


Text = Annotated[str, StringConstraints(min_length=1, max_length=200),
                 AfterValidator(_no_nul)]
PER_PRODUCER_MAX = 100
SEES_DRAFTS = (Role.ADMIN, Role.CERTIFIER)


class MineSiteInput(Command):
    name: Name
    region: Name
    country: CountryCode
    latitude: str | None = Field(default=None, pattern=r"^-?\d{1,2}(\.\d{1,6})?$")
    longitude: str | None = Field(default=None, pattern=r"^-?\d{1,3}(\.\d{1,6})?$")

    def to_domain(self) -> domain.MineSite:
        return domain.MineSite(name=self.name, region=self.region, country=self.country,
                               latitude=self.latitude, longitude=self.longitude)


class PublishListing(Command):
    """A whole lot; used both to publish at once and to save a draft."""

    producer_id: Identifier
    standard: Standard
    form: domain.LotForm
    gross_weight: Milligrams
    fineness: FinenessTenths
    mine_site: MineSiteInput
    mercury_free: bool
    assay_reference: Reference
    assay_lab: Name | None = None
    extraction_from: date | None = None
    extraction_until: date | None = None
    export_permit: Reference | None = None
    price_basis_permille: PriceBasis = 0


class ListingId(Command):
    listing_id: Identifier


class UpdateListing(Command):
    """Only the fields given change."""

    listing_id: Identifier
    standard: Standard | None = None
    form: domain.LotForm | None = None
    gross_weight: Milligrams | None = None
    fineness: FinenessTenths | None = None
    mine_site: MineSiteInput | None = None
    mercury_free: bool | None = None
    assay_reference: Reference | None = None
    assay_lab: Name | None = None
    extraction_from: date | None = None
    extraction_until: date | None = None
    export_permit: Reference | None = None
    price_basis_permille: PriceBasis | None = None

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True, exclude={"listing_id"})
        renamed = {"gross_weight": "gross_mg", "fineness": "fineness_tenths"}
        changes = {renamed.get(name, name): value for name, value in given.items()}
        if self.mine_site is not None:
            changes["mine_site"] = self.mine_site.to_domain()
        return changes


class WithdrawListing(Command):
    listing_id: Identifier
    reason: Annotated[str, StringConstraints(max_length=2000),
                      AfterValidator(_no_nul)] | None = None


class ListingFilter(Command):
    standard: list[Standard] = Field(default_factory=list, max_length=3)
    producer_id: list[Identifier] | Identifier | None = None
    country: list[CountryCode] | CountryCode | None = None
    region: Name | None = None
    form: list[domain.LotForm] = Field(default_factory=list, max_length=4)
    mercury_free: bool | None = None
    min_fineness: FinenessTenths | None = None
    max_fineness: FinenessTenths | None = None
    min_available_fine_weight: Milligrams | None = None
    status: list[domain.LotStatus] = Field(default_factory=list, max_length=6)
    text: Text | None = None

    def query(self) -> store.ListingQuery:
        def listed(value: list[str] | str | None) -> list[str]:
            return [] if value is None else [value] if isinstance(value, str) else value

        statuses = [str(s) for s in self.status] or [str(s) for s in domain.ORDERABLE]
        return store.ListingQuery(
            standards=[str(s) for s in self.standard], producer_ids=listed(self.producer_id),
            countries=listed(self.country), region=self.region,
            forms=[str(f) for f in self.form], mercury_free=self.mercury_free,
            min_fineness_tenths=self.min_fineness, max_fineness_tenths=self.max_fineness,
            min_available_mg=self.min_available_fine_weight, statuses=statuses,
            text=self.text)


class ListingIds(Command):
    ids: list[Identifier] = Field(max_length=500)


class ProducerLots(Command):
    producer_ids: list[Identifier] = Field(max_length=100)
    first: int = Field(default=20, ge=1, le=PER_PRODUCER_MAX)


def lot_view(row: store.LotRow) -> dict[str, Any]:
    return {
        "id": row.id, "producer_id": row.producer_id, "producer_name": row.producer_name,
        "standard": row.standard, "form": row.form,
        "gross_weight": format_grams(row.gross_mg),
        "fineness": format_fineness(row.fineness_tenths),
        "fine_weight": format_grams(row.fine_mg),
        "available_fine_weight": format_grams(row.available_mg),
        "mine_site": {"name": row.mine_site_name, "region": row.mine_site_region,
                      "country": row.country, "latitude": row.latitude,
                      "longitude": row.longitude},
        "mercury_free": row.mercury_free, "assay_reference": row.assay_reference,
        "assay_lab": row.assay_lab,
        "extraction_from": row.extraction_from.isoformat() if row.extraction_from else None,
        "extraction_until": row.extraction_until.isoformat() if row.extraction_until else None,
        "export_permit": row.export_permit,
        "price_basis_permille": row.price_basis_permille or 0,
        "status": row.status, "created_at": row.created_at.isoformat(),
        "updated_at": (row.updated_at or row.created_at).isoformat(),
    }


def sees_drafts_of(caller: Caller, producer_id: str) -> bool:
    return caller.role in SEES_DRAFTS or (caller.role is Role.PRODUCER
                                          and caller.organisation == producer_id)


class ListingsService(Operations):
    name = "listings"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    # --- lots: draft, publish, edit, withdraw ---------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def publish_listing(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a lot and publish it in one go."""
        return self._create(data, publish=True)

    @rpc(expected_exceptions=VetaError)
    def create_listing_draft(self, data: dict[str, Any]) -> dict[str, Any]:
        """Save a lot as a draft: nobody else sees it, and it needs no certificate yet."""
        return self._create(data, publish=False)

    def _create(self, data: dict[str, Any], publish: bool) -> dict[str, Any]:
        caller = required(self.caller)
        command = parse(PublishListing, data)
        caller.require_organisation(Role.PRODUCER, command.producer_id)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            producer = store.lock_producer(uow.session, command.producer_id)
            lot = domain.draft(
                lot_id=str(uuid.uuid4()), producer_id=command.producer_id,
                standard=command.standard, form=command.form, gross_mg=command.gross_weight,
                fineness_tenths=command.fineness, mine_site=command.mine_site.to_domain(),
                mercury_free=command.mercury_free, assay_reference=command.assay_reference,
                today=now.date(), assay_lab=command.assay_lab,
                extraction_from=command.extraction_from,
                extraction_until=command.extraction_until,
                export_permit=command.export_permit,
                price_basis_permille=command.price_basis_permille)
            if publish:
                lot.publish(store.held_by(uow.session, command.producer_id), now.date())
            row = store.LotRow.from_domain(lot, created_at=now, producer_name=producer.name)
            uow.session.add(row)
            if publish:
                uow.raise_event(self._published(lot))
            return lot_view(row)

    @staticmethod
    def _published(lot: domain.Lot) -> ListingPublished:
        return ListingPublished(
            listing_id=lot.id, producer_id=lot.producer_id, standard=lot.standard,
            form=str(lot.form), gross_weight=format_grams(lot.gross_mg),
            fineness=format_fineness(lot.fineness_tenths),
            fine_weight=format_grams(lot.fine_mg), country=lot.mine_site.country,
            mercury_free=lot.mercury_free)

    @rpc(expected_exceptions=VetaError)
    def publish_listing_draft(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(ListingId, data)
        with self._own_lot(command.listing_id) as (uow, row, lot, now):
            lot.publish(store.held_by(uow.session, lot.producer_id), now.date())
            row.update_from(lot, now)
            uow.raise_event(self._published(lot))
            return lot_view(row)

    @rpc(expected_exceptions=VetaError)
    def update_listing(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(UpdateListing, data)
        with self._own_lot(command.listing_id) as (uow, row, lot, now):
            lot.edit(command.changes(), store.held_by(uow.session, lot.producer_id),
                     now.date())
            row.update_from(lot, now)
            return lot_view(row)

    @rpc(expected_exceptions=VetaError)
    def withdraw_listing(self, data: dict[str, Any]) -> dict[str, Any]:
        command = parse(WithdrawListing, data)
        with self._own_lot(command.listing_id) as (uow, row, lot, now):
            lot.withdraw()
            row.update_from(lot, now)
            uow.raise_event(ListingWithdrawn(
                listing_id=lot.id, producer_id=lot.producer_id, standard=lot.standard,
                reason=command.reason))
            return lot_view(row)

    @contextmanager
    def _own_lot(self, listing_id: str
                 ) -> Iterator[tuple[UnitOfWork, store.LotRow, domain.Lot, datetime]]:
        """A unit of work holding the caller's own lot, locked after its producer's row."""
        caller = required(self.caller)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            found = uow.session.get(store.LotRow, listing_id)
            if found is None or (found.status == str(domain.LotStatus.DRAFT)
                                 and not sees_drafts_of(caller, found.producer_id)):
                raise NotFound("no such lot", field="listing_id")
            caller.require_organisation(Role.PRODUCER, found.producer_id)
            store.lock_producer(uow.session, found.producer_id)
            row = uow.session.get(store.LotRow, listing_id, with_for_update=True,
                                  populate_existing=True)
            assert row is not None
            yield uow, row, row.to_domain(), now

    # --- reads ----------------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def get_listings(self, ids: list[str]) -> list[dict[str, Any]]:
        """Lots by id; a draft only for its own producer."""
        caller = required(self.caller)
        command = parse(ListingIds, {"ids": ids})
        with self.db.reading() as session:
            rows = session.query(store.LotRow).filter(store.LotRow.id.in_(command.ids)).all()
            return [lot_view(row) for row in rows
                    if row.status != str(domain.LotStatus.DRAFT)
                    or sees_drafts_of(caller, row.producer_id)]

    @rpc(expected_exceptions=VetaError)
    def lots_of_producers(self, producer_ids: list[str], first: int = 20
                          ) -> list[dict[str, Any]]:
        """For each producer, its newest lots (drafts only for itself), in one call."""
        caller = required(self.caller)
        command = parse(ProducerLots, {"producer_ids": producer_ids, "first": first})
        unique = list(dict.fromkeys(command.producer_ids))
        with self.db.reading() as session:
            rows = store.lots_of_producers(session, unique, None, command.first)
            views: dict[str, list[dict[str, Any]]] = {p: [] for p in unique}
            for row in rows:
                if row.status != str(domain.LotStatus.DRAFT) \
                        or sees_drafts_of(caller, row.producer_id):
                    views[row.producer_id].append(lot_view(row))
        return [{"id": producer_id, "lots": lots} for producer_id, lots in views.items()]

    @rpc(expected_exceptions=VetaError)
    def search_listings(self, filter: dict[str, Any] | None = None, first: int | None = None,
                        after: str | None = None, sort: str | None = None) -> dict[str, Any]:
        caller = required(self.caller)
        criteria = parse(ListingFilter, filter or {})
        try:
            order = store.Sort(sort or store.Sort.NEWEST)
        except ValueError:
            raise InvalidInput(f"sort must be one of {', '.join(store.Sort)}",
                               field="sort") from None
        query = criteria.query()
        if str(domain.LotStatus.DRAFT) in query.statuses and not (
                caller.role in SEES_DRAFTS
                or (len(query.producer_ids) == 1
                    and sees_drafts_of(caller, query.producer_ids[0]))):
            raise Forbidden("drafts are seen only by their producer: filter on your own "
                            "producer id", field="status")
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.search(session, query, sort=order, first=size + 1,
                                after=store.decode_cursor(order, after))
            page = rows[:size]
            return {
                "items": [{"cursor": store.encode_cursor(order, row), "node": lot_view(row)}
                          for row in page],
                "has_next_page": len(rows) > size,
            }

    # --- what certification tells us ------------------------------------------------------

    @consumes("certification", ProducerRegistered.type)
    def on_producer_registered(self, payload: dict[str, Any]) -> None:
        self._producer_named(ProducerRegistered.from_envelope(payload))

    @consumes("certification", ProducerUpdated.type)
    def on_producer_updated(self, payload: dict[str, Any]) -> None:
        self._producer_named(ProducerUpdated.from_envelope(payload))

    def _producer_named(self, event: ProducerRegistered | ProducerUpdated) -> None:
        """Keep the newest name (by the producer's version) on the producer and its lots."""
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = store.lock_producer(uow.session, event.producer_id)
            newer = (event.version > row.version
                     if event.version is not None and row.version is not None
                     else row.changed_at is None or event.occurred_at > row.changed_at)
            if not newer:
                log.info("ignoring %s for %s: already have a newer one", event.type,
                         event.producer_id)
                return
            row.name, row.country, row.region = event.name, event.country, event.region
            row.version, row.changed_at = event.version, event.occurred_at
            store.rename_producer(uow.session, event.producer_id, event.name)

    @consumes("certification", CertificationGranted.type)
    def on_certification_granted(self, payload: dict[str, Any]) -> None:
        event = CertificationGranted.from_envelope(payload)
        self._certificate_changed(event, "CERTIFIED", event.valid_from, event.valid_until,
                                  event.scope)

    @consumes("certification", CertificationSuspended.type)
    def on_certification_suspended(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationSuspended.from_envelope(payload), "SUSPENDED")

    @consumes("certification", CertificationReinstated.type)
    def on_certification_reinstated(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationReinstated.from_envelope(payload), "CERTIFIED")

    @consumes("certification", CertificationExpired.type)
    def on_certification_expired(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationExpired.from_envelope(payload), "EXPIRED")

    @consumes("certification", CertificationWithdrawn.type)
    def on_certification_withdrawn(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationWithdrawn.from_envelope(payload), "WITHDRAWN")

    def _changed(self, event: CertificationChanged, status: str) -> None:
        self._certificate_changed(event, status, event.valid_from, event.valid_until,
                                  event.scope)

    def _certificate_changed(self, event: CertificationGranted | CertificationChanged,
                             status: str, valid_from: date | None, valid_until: date | None,
                             scope: list[str] | None) -> None:
        """Record the certificate's new status if it is newer than ours, then bring the
        producer's lots under that standard in line with what it holds now."""
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            store.lock_producer(uow.session, event.producer_id)
            row = store.lock_held(uow.session, event.certification_id)
            if row is None:
                if valid_from is None or valid_until is None:
                    # Without its validity the certificate cannot be valid on any day we
                    # could name: record it as valid on none until its grant arrives.
                    log.warning("%s for unknown certificate %s carries no validity",
                                event.type, event.certification_id)
                    valid_from = valid_until = date.min
                row = store.HeldCertificationRow(
                    certification_id=event.certification_id, producer_id=event.producer_id,
                    standard=str(event.standard), valid_from=valid_from,
                    valid_until=valid_until, status=status, scope=list(scope or []),
                    version=event.version, changed_at=event.occurred_at)
                uow.session.add(row)
            else:
                held = row.to_domain()
                if held.valid_from == date.min and valid_from and valid_until:
                    row.valid_from, row.valid_until = valid_from, valid_until
                    row.scope = list(scope or [])
                if held.is_older_than(event.version, event.occurred_at):
                    row.status, row.version = status, event.version
                    row.changed_at = event.occurred_at
                else:
                    log.info("ignoring %s v%s for %s: already at v%s", event.type,
                             event.version, event.certification_id, held.version)
            uow.session.flush()
            why = event.type.replace("_", " ")
            if isinstance(event, CertificationChanged) and event.reason:
                why += f": {event.reason}"
            self._cascade(uow, event.producer_id, event.standard, event.certification_id,
                          reason=why)

    def _cascade(self, uow: UnitOfWork, producer_id: str, standard: Standard,
                 certification_id: str, reason: str) -> None:
        now = self.clock.now()
        lots = store.standings(uow.session, producer_id, str(standard))
        if not lots:
            return
        held = store.held_by(uow.session, producer_id)
        decision = domain.cascade(lots, held, producer_id, standard, now.date())
        suspended = store.suspend_lots(uow.session, decision.suspend, now)
        restored = store.restore_lots(uow.session, decision.restore, now)
        available = {lot.id: lot.available_mg for lot in lots}
        events: list[Event] = [
            ListingSuspended(listing_id=lot_id, producer_id=producer_id, standard=standard,
                             certification_id=certification_id, reason=reason,
                             occurred_at=now)
            for lot_id in suspended]
        events += [
            ListingReinstated(listing_id=lot_id, producer_id=producer_id, standard=standard,
                              certification_id=certification_id, status=status,
                              available_fine_weight=format_grams(available[lot_id]),
                              occurred_at=now)
            for lot_id, status in restored]
        uow.raise_events(events)
        if events:
            log.info("%s %s: %d lots suspended, %d reinstated", producer_id, standard,
                     len(suspended), len(restored))

    # --- what orders tell us --------------------------------------------------------------

    @consumes("orders", OrderPlaced.type)
    def on_order_placed(self, payload: dict[str, Any]) -> None:
        """Reserve the order's fine gold atomically, or say why not."""
        event = OrderPlaced.from_envelope(payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            earlier = uow.session.get(store.ReservationRow, event.order_id,
                                      with_for_update=True)
            if earlier is not None:
                self._answer_again(uow, event, earlier)
                return
            row = uow.session.get(store.LotRow, event.listing_id, with_for_update=True)
            if row is None:
                uow.raise_event(ReservationRejected(
                    order_id=event.order_id, listing_id=event.listing_id,
                    reason="no such lot"))
                return
            lot = row.to_domain()
            try:
                wanted = grams_to_mg(event.fine_weight)
                lot.reserve(wanted)
            except (Conflict, ValueError) as refusal:
                uow.raise_event(ReservationRejected(
                    order_id=event.order_id, listing_id=lot.id,
                    reason=getattr(refusal, "message", str(refusal))))
                return
            row.update_from(lot, self.clock.now())
            uow.session.add(store.ReservationRow(order_id=event.order_id, lot_id=lot.id,
                                                 fine_mg=wanted, created_at=self.clock.now()))
            uow.raise_event(ListingReserved(
                order_id=event.order_id, listing_id=lot.id, producer_id=lot.producer_id,
                standard=lot.standard, fine_weight=format_grams(wanted),
                available_fine_weight=format_grams(lot.available_mg)))

    @staticmethod
    def _answer_again(uow: UnitOfWork, event: OrderPlaced,
                      earlier: store.ReservationRow) -> None:
        """The order was seen before: cancelled before it arrived, or placed again."""
        if earlier.released_at is not None:
            uow.raise_event(ReservationRejected(
                order_id=event.order_id, listing_id=event.listing_id,
                reason="the order was cancelled before its gold was reserved"
                if earlier.fine_mg == 0 else "the order's reservation was released"))
            return
        lot = uow.session.get(store.LotRow, earlier.lot_id)
        assert lot is not None
        uow.raise_event(ListingReserved(
            order_id=event.order_id, listing_id=lot.id, producer_id=lot.producer_id,
            standard=Standard(lot.standard), fine_weight=format_grams(earlier.fine_mg),
            available_fine_weight=format_grams(lot.available_mg)))

    @consumes("orders", OrderCancelled.type)
    def on_order_cancelled(self, payload: dict[str, Any]) -> None:
        self._release(OrderCancelled.from_envelope(payload))

    @consumes("orders", OrderDeclined.type)
    def on_order_declined(self, payload: dict[str, Any]) -> None:
        self._release(OrderDeclined.from_envelope(payload))

    def _release(self, event: OrderCancelled | OrderDeclined) -> None:
        """Give the order's gold back to its lot, once, whatever order events arrive in."""
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            reservation = uow.session.get(store.ReservationRow, event.order_id,
                                          with_for_update=True)
            if reservation is None:
                if uow.session.get(store.LotRow, event.listing_id) is None:
                    log.info("%s for %s: no such lot, nothing to release", event.type,
                             event.order_id)
                    return
                # Cancelled before order_placed reached us: leave a released, empty
                # reservation so that the late order_placed is refused, not reserved.
                uow.session.add(store.ReservationRow(
                    order_id=event.order_id, lot_id=event.listing_id, fine_mg=0,
                    created_at=now, released_at=now, released_reason=event.type))
                return
            if reservation.released_at is not None:
                log.info("%s for %s: already released", event.type, event.order_id)
                return
            row = uow.session.get(store.LotRow, reservation.lot_id, with_for_update=True)
            assert row is not None
            lot = row.to_domain()
            lot.release(reservation.fine_mg)
            row.update_from(lot, now)
            reservation.released_at, reservation.released_reason = now, event.type
            uow.raise_event(ReservationReleased(
                order_id=event.order_id, listing_id=lot.id,
                fine_weight=format_grams(reservation.fine_mg),
                available_fine_weight=format_grams(lot.available_mg)))
