"""The orders database: orders and their transitions, commitments and their drawdowns, orders'
copies of lots and certificates (kept from events), and the messaging tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    make_transient_to_detached,
    mapped_column,
)

from services.orders.domain import (
    Certificate,
    CertificateStatus,
    Commitment,
    CommitmentStatus,
    LbmaFixing,
    Order,
    OrderFacts,
    OrderStatus,
    Party,
    PriceBasis,
    ReceivingAssay,
    Scope,
)
from shared.persistence import BigId, insert_if_absent, messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(36), index=True)
    listing_id: Mapped[str] = mapped_column(String(36), index=True)
    producer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    standard: Mapped[str | None] = mapped_column(String(32))
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    shipment_reference: Mapped[str | None] = mapped_column(String(100))
    received_gross_mg: Mapped[int | None] = mapped_column(BigInteger)
    received_fineness_tenths: Mapped[int | None] = mapped_column(Integer)
    delivered_fine_mg: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    price_percent_bp: Mapped[int | None] = mapped_column(Integer)
    price_fixing: Mapped[str | None] = mapped_column(String(8))
    carrier: Mapped[str | None] = mapped_column(String(100))
    export_permit: Mapped[str | None] = mapped_column(String(100))
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    delivered_on: Mapped[date | None] = mapped_column(Date)
    placed_event_id: Mapped[str | None] = mapped_column(String(36))
    """The order_placed event's id: a retry publishes that same event again."""
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The pending-order sweep reads only PENDING orders, oldest question first.
        Index("ix_orders_status_asked", "status", "last_asked_at"),
        Index("ix_orders_newest", "created_at", "id"),
    )

    def to_domain(self) -> Order:
        assay = None
        if self.received_gross_mg is not None and self.received_fineness_tenths is not None:
            assay = ReceivingAssay(self.received_gross_mg, self.received_fineness_tenths)
        basis = None
        if self.price_percent_bp is not None:
            basis = PriceBasis(self.price_percent_bp, LbmaFixing(self.price_fixing or "PM"))
        return Order(
            id=self.id, buyer_id=self.buyer_id, listing_id=self.listing_id,
            fine_mg=self.fine_mg, status=OrderStatus(self.status),
            producer_id=self.producer_id,
            standard=Standard(self.standard) if self.standard else None, reason=self.reason,
            shipment_reference=self.shipment_reference, assay=assay, price_basis=basis,
            carrier=self.carrier, export_permit=self.export_permit,
            cancelled_by=Party(self.cancelled_by) if self.cancelled_by else None,
            delivered_on=self.delivered_on)

    def update_from(self, order: Order, at: datetime) -> None:
        self.status = str(order.status)
        self.producer_id = order.producer_id
        self.standard = str(order.standard) if order.standard else None
        self.reason = order.reason
        self.shipment_reference = order.shipment_reference
        self.carrier, self.export_permit = order.carrier, order.export_permit
        self.cancelled_by = str(order.cancelled_by) if order.cancelled_by else None
        if order.price_basis is not None:
            self.price_percent_bp = order.price_basis.percent_of_lbma_bp
            self.price_fixing = str(order.price_basis.fixing)
        if order.assay is not None:
            self.received_gross_mg = order.assay.gross_mg
            self.received_fineness_tenths = order.assay.fineness_tenths
            self.delivered_fine_mg = order.assay.fine_mg
            self.delivered_on = order.delivered_on
        self.updated_at = at


class TransitionRow(Base):
    """Every change of an order's status: when, by whom, from what, and why."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(500))


class KnownLotRow(Base):
    """Orders' copy of a published lot, from listing_published: who sells it, from where."""

    __tablename__ = "known_lots"

    listing_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36))
    standard: Mapped[str] = mapped_column(String(32))
    country: Mapped[str] = mapped_column(String(2))
    fine_mg: Mapped[int] = mapped_column(BigInteger)


class KnownCertificateRow(Base):
    """Orders' copy of a producer's certificate, from certification events."""

    __tablename__ = "known_certificates"

    certification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36))
    standard: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date | None] = mapped_column(Date)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_known_certificates_producer", "producer_id", "standard"),)

    def to_domain(self) -> Certificate:
        return Certificate(
            certification_id=self.certification_id, producer_id=self.producer_id,
            standard=Standard(self.standard), status=CertificateStatus(self.status),
            changed_at=self.changed_at, version=self.version, valid_from=self.valid_from)

    def update_from(self, certificate: Certificate) -> None:
        self.status = str(certificate.status)
        self.version = certificate.version
        self.valid_from = certificate.valid_from
        self.changed_at = certificate.changed_at


class CommitmentRow(Base):
    __tablename__ = "commitments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    buyer_id: Mapped[str] = mapped_column(String(36), index=True)
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    delivered_mg: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    price_ceiling_bp: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    # The terms it was asked for (domain.requested_terms_digest): a request sent again under
    # the same idempotency key is the same only if they match. None before migration 0003.
    requested_terms: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_commitments_status_end", "status", "period_end"),
        Index("ix_commitments_newest", "created_at", "id"),
    )

    def to_domain(self, scope: list[CommitmentScopeRow],
                  drawn: dict[str, int] | None = None) -> Commitment:
        values: dict[str, set[str]] = defaultdict(set)
        for term in scope:
            values[term.dimension].add(term.value)
        return Commitment(
            id=self.id, buyer_id=self.buyer_id, fine_mg=self.fine_mg,
            period_start=self.period_start, period_end=self.period_end,
            scope=Scope(standards=frozenset(Standard(s) for s in values[STANDARD]),
                        countries=frozenset(values[COUNTRY]),
                        producer_ids=frozenset(values[PRODUCER]),
                        price_ceiling_bp=self.price_ceiling_bp),
            status=CommitmentStatus(self.status), delivered_mg=self.delivered_mg,
            reason=self.reason, drawn=dict(drawn or {}))

    def update_from(self, commitment: Commitment, at: datetime) -> None:
        self.fine_mg, self.delivered_mg = commitment.fine_mg, commitment.delivered_mg
        self.period_end = commitment.period_end
        self.price_ceiling_bp = commitment.scope.price_ceiling_bp
        self.status, self.reason = str(commitment.status), commitment.reason
        self.updated_at = at


STANDARD, COUNTRY, PRODUCER = "standard", "country", "producer"


class CommitmentScopeRow(Base):
    """One term of a commitment's scope: a standard, a country or a producer it names."""

    __tablename__ = "commitment_scope"

    commitment_id: Mapped[str] = mapped_column(ForeignKey("commitments.id"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(36), primary_key=True)

    # A producer finds the commitments that name it.
    __table_args__ = (Index("ix_commitment_scope_value", "dimension", "value"),)


class DrawdownRow(Base):
    """What one delivered order drew from one commitment."""

    __tablename__ = "commitment_drawdowns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    commitment_id: Mapped[str] = mapped_column(ForeignKey("commitments.id"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    delivered_on: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("commitment_id", "order_id"),)


# --- orders ---------------------------------------------------------------------------------


def as_utc(at: datetime) -> datetime:
    """SQLite gives back the UTC instants it stored without their offset; PostgreSQL in the
    session's zone. Either way, the same instant in UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def day_bounds(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """The instants [first_day 00:00 UTC, the day after last_day 00:00 UTC)."""
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    return start, datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)



def add_order(session: Session, order: Order, placed_event_id: str,
              at: datetime) -> OrderRow | None:
    """Record a new PENDING order; None if one with its id already exists.

    Two placements under one idempotency key may arrive together (a double click, a retry
    racing the first attempt): the second waits for the first's transaction and then
    inserts nothing, instead of failing on the primary key.
    """
    basis = order.price_basis
    values: dict[str, Any] = dict.fromkeys(OrderRow.__table__.columns.keys())
    values.update(
        id=order.id, buyer_id=order.buyer_id, listing_id=order.listing_id,
        producer_id=order.producer_id, standard=str(order.standard) if order.standard else None,
        fine_mg=order.fine_mg, status=str(order.status), created_at=at, updated_at=at,
        price_percent_bp=basis.percent_of_lbma_bp if basis else None,
        price_fixing=str(basis.fixing) if basis else None,
        placed_event_id=placed_event_id, attempts=1, last_asked_at=at)
    if not insert_if_absent(session, OrderRow.__table__, ["id"], **values):
        return None
    # The row is what was just inserted, every column given: attached as it stands rather
    # than read back.
    row = OrderRow(**values)
    make_transient_to_detached(row)
    session.add(row)
    return row


def record(session: Session, row: OrderRow, order: Order, before: OrderStatus | None,
           actor: str, at: datetime, reason: str | None = None) -> TransitionRow:
    """Save an order's new state and the transition that led to it."""
    row.update_from(order, at)
    transition = TransitionRow(order_id=order.id, from_status=str(before) if before else None,
                               to_status=str(order.status), actor=actor, at=at, reason=reason)
    session.add(transition)
    return transition


def history(session: Session, order_ids: list[str]) -> list[TransitionRow]:
    return list(session.scalars(select(TransitionRow)
                                .where(TransitionRow.order_id.in_(order_ids))
                                .order_by(TransitionRow.id)))


def page_of_orders(session: Session, *, buyer_id: str | None, producer_id: str | None,
                   statuses: list[str], listing_id: str | None,
                   placed_from: datetime | None, placed_before: datetime | None,
                   first: int, after: tuple[datetime, str] | None) -> list[OrderRow]:
    """Orders, newest first, narrowed by owner and filters, one page after the cursor."""
    query = (select(OrderRow).order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
             .limit(first))
    if buyer_id is not None:
        query = query.where(OrderRow.buyer_id == buyer_id)
    if producer_id is not None:
        query = query.where(OrderRow.producer_id == producer_id)
    if statuses:
        query = query.where(OrderRow.status.in_(statuses))
    if listing_id is not None:
        query = query.where(OrderRow.listing_id == listing_id)
    if placed_from is not None:
        query = query.where(OrderRow.created_at >= placed_from)
    if placed_before is not None:
        query = query.where(OrderRow.created_at < placed_before)
    if after is not None:
        at, row_id = after
        query = query.where((OrderRow.created_at < at)
                            | ((OrderRow.created_at == at) & (OrderRow.id < row_id)))
    return list(session.scalars(query))


def locked_orders(session: Session, *, producer_id: str, standard: Standard,
                  status: OrderStatus) -> list[OrderRow]:
    return list(session.scalars(
        select(OrderRow).where(OrderRow.producer_id == producer_id,
                               OrderRow.standard == str(standard),
                               OrderRow.status == str(status))
        .order_by(OrderRow.id).with_for_update()))


def overdue_pending(session: Session, *, asked_before: datetime, placed_before: datetime,
                    limit: int) -> list[OrderRow]:
    """PENDING orders to ask about again or give up on, locked for this sweep.

    Replicas of orders share the sweep: on PostgreSQL each skips the rows another holds.
    """
    query = (select(OrderRow)
             .where(OrderRow.status == str(OrderStatus.PENDING),
                    (OrderRow.last_asked_at < asked_before)
                    | (OrderRow.created_at <= placed_before))
             .order_by(OrderRow.last_asked_at).limit(limit))
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def facts(row: OrderRow, lot: KnownLotRow | None) -> OrderFacts:
    """What commitments need to know about an order, with the lot's country if known."""
    return OrderFacts(
        order_id=row.id, buyer_id=row.buyer_id,
        standard=Standard(row.standard) if row.standard else None,
        producer_id=row.producer_id, country=lot.country if lot else None,
        price_bp=row.price_percent_bp, placed_on=as_utc(row.created_at).date(),
        ordered_mg=row.fine_mg, delivered_on=row.delivered_on,
        delivered_mg=row.delivered_fine_mg)


# --- certificates ---------------------------------------------------------------------------


def certificates_of(session: Session, producer_id: str, standard: Standard,
                    shared_lock: bool = False) -> list[Certificate]:
    """Orders' copies of a producer's certificates for a standard.

    With `shared_lock`, a change being applied to one of them (which holds it FOR UPDATE
    until it has held or released the orders) is waited for, so that a confirmation never
    slips between a suspension and the hold it causes.
    """
    query = select(KnownCertificateRow).where(KnownCertificateRow.producer_id == producer_id,
                                              KnownCertificateRow.standard == str(standard))
    if shared_lock:
        query = query.with_for_update(read=True)
    return [row.to_domain() for row in session.scalars(query)]


def pairs_to_review(session: Session) -> list[tuple[str, Standard]]:
    """(producer, standard) pairs whose orders may need holding or releasing: some order is
    held, or some certificate is not CERTIFIED. The domain decides; this only narrows."""
    held = select(OrderRow.producer_id, OrderRow.standard).where(
        OrderRow.status == str(OrderStatus.ON_HOLD))
    lapsed = select(KnownCertificateRow.producer_id, KnownCertificateRow.standard).where(
        KnownCertificateRow.status != str(CertificateStatus.CERTIFIED))
    rows = session.execute(held.union(lapsed))
    return [(producer, Standard(standard)) for producer, standard in rows
            if producer and standard]


# --- commitments ----------------------------------------------------------------------------


def add_commitment(session: Session, commitment: Commitment, requested_terms: str,
                   at: datetime) -> CommitmentRow | None:
    """Record a new commitment and its scope; None if one with its id already exists.

    Two requests under one idempotency key may arrive together (a double click, a retry
    racing the first attempt): the second waits for the first's transaction and then
    inserts nothing, instead of failing on the primary key.
    """
    inserted = insert_if_absent(
        session, CommitmentRow.__table__, ["id"], id=commitment.id,
        buyer_id=commitment.buyer_id, fine_mg=commitment.fine_mg, delivered_mg=0,
        period_start=commitment.period_start, period_end=commitment.period_end,
        price_ceiling_bp=commitment.scope.price_ceiling_bp, status=str(commitment.status),
        requested_terms=requested_terms, created_at=at, updated_at=at)
    if not inserted:
        return None
    session.add_all(scope_rows(commitment.id, commitment.scope))
    row = session.get(CommitmentRow, commitment.id)
    assert row is not None
    return row


def scope_rows(commitment_id: str, scope: Scope) -> list[CommitmentScopeRow]:
    terms = ([(STANDARD, str(s)) for s in scope.standards]
             + [(COUNTRY, c) for c in scope.countries]
             + [(PRODUCER, p) for p in scope.producer_ids])
    return [CommitmentScopeRow(commitment_id=commitment_id, dimension=d, value=v)
            for d, v in sorted(terms)]


def scopes_of(session: Session, ids: Iterable[str]) -> dict[str, list[CommitmentScopeRow]]:
    found: dict[str, list[CommitmentScopeRow]] = defaultdict(list)
    for term in session.scalars(select(CommitmentScopeRow)
                                .where(CommitmentScopeRow.commitment_id.in_(list(ids)))):
        found[term.commitment_id].append(term)
    return found


def replace_scope(session: Session, commitment_id: str, scope: Scope) -> None:
    for term in session.scalars(select(CommitmentScopeRow)
                                .where(CommitmentScopeRow.commitment_id == commitment_id)):
        session.delete(term)
    session.flush()
    session.add_all(scope_rows(commitment_id, scope))


def active_commitments(session: Session, buyer_id: str) -> list[CommitmentRow]:
    """A buyer's active commitments, locked: a delivery draws them down in order."""
    return list(session.scalars(
        select(CommitmentRow).where(CommitmentRow.buyer_id == buyer_id,
                                    CommitmentRow.status == str(CommitmentStatus.ACTIVE))
        .order_by(CommitmentRow.id).with_for_update()))


def ended_commitments(session: Session, today: date, limit: int,
                      skip_locked: bool) -> list[CommitmentRow]:
    query = (select(CommitmentRow)
             .where(CommitmentRow.status == str(CommitmentStatus.ACTIVE),
                    CommitmentRow.period_end < today)
             .order_by(CommitmentRow.period_end).limit(limit))
    return list(session.scalars(query.with_for_update(skip_locked=skip_locked)))


def drawdowns(session: Session, commitment_ids: list[str]) -> list[DrawdownRow]:
    return list(session.scalars(select(DrawdownRow)
                                .where(DrawdownRow.commitment_id.in_(commitment_ids))
                                .order_by(DrawdownRow.id)))


def candidate_orders(session: Session, commitment: Commitment
                     ) -> list[tuple[OrderRow, KnownLotRow | None]]:
    """The buyer's standing orders placed in the period under the commitment's standards;
    the domain decides which of them match the rest of the scope."""
    start, end = day_bounds(commitment.period_start, commitment.period_end)
    query = (select(OrderRow, KnownLotRow)
             .join(KnownLotRow, KnownLotRow.listing_id == OrderRow.listing_id, isouter=True)
             .where(OrderRow.buyer_id == commitment.buyer_id,
                    OrderRow.status.in_([str(s) for s in (
                        OrderStatus.CONFIRMED, OrderStatus.ON_HOLD, OrderStatus.SHIPPED,
                        OrderStatus.DELIVERED, OrderStatus.SETTLED)]),
                    OrderRow.standard.in_([str(s) for s in commitment.scope.standards]),
                    OrderRow.created_at >= start, OrderRow.created_at < end))
    return [(order, lot) for order, lot in session.execute(query).all()]


def page_of_commitments(session: Session, *, buyer_id: str | None, producer_id: str | None,
                        statuses: list[str], active_from: date | None,
                        active_to: date | None, first: int,
                        after: tuple[datetime, str] | None) -> list[CommitmentRow]:
    """Commitments, newest first: a buyer's own, or those naming a producer, or all."""
    query = (select(CommitmentRow)
             .order_by(CommitmentRow.created_at.desc(), CommitmentRow.id.desc()).limit(first))
    if buyer_id is not None:
        query = query.where(CommitmentRow.buyer_id == buyer_id)
    if producer_id is not None:
        named = select(CommitmentScopeRow.commitment_id).where(
            CommitmentScopeRow.dimension == PRODUCER, CommitmentScopeRow.value == producer_id)
        query = query.where(CommitmentRow.id.in_(named))
    if statuses:
        query = query.where(CommitmentRow.status.in_(statuses))
    # The period filter keeps commitments whose period overlaps [active_from, active_to].
    if active_from is not None:
        query = query.where(CommitmentRow.period_end >= active_from)
    if active_to is not None:
        query = query.where(CommitmentRow.period_start <= active_to)
    if after is not None:
        at, row_id = after
        query = query.where((CommitmentRow.created_at < at)
                            | ((CommitmentRow.created_at == at) & (CommitmentRow.id < row_id)))
    return list(session.scalars(query))
