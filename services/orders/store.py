"""The orders database: orders, their transition history, and the messaging tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.orders.domain import Order, OrderStatus, ReceivingAssay
from shared.persistence import BigId, messaging_tables
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

    def to_domain(self) -> Order:
        assay = None
        if self.received_gross_mg is not None and self.received_fineness_tenths is not None:
            assay = ReceivingAssay(self.received_gross_mg, self.received_fineness_tenths)
        return Order(
            id=self.id, buyer_id=self.buyer_id, listing_id=self.listing_id,
            fine_mg=self.fine_mg, status=OrderStatus(self.status),
            producer_id=self.producer_id,
            standard=Standard(self.standard) if self.standard else None, reason=self.reason,
            shipment_reference=self.shipment_reference, assay=assay)

    def update_from(self, order: Order, at: datetime) -> None:
        self.status = str(order.status)
        self.producer_id = order.producer_id
        self.standard = str(order.standard) if order.standard else None
        self.reason = order.reason
        self.shipment_reference = order.shipment_reference
        if order.assay is not None:
            self.received_gross_mg = order.assay.gross_mg
            self.received_fineness_tenths = order.assay.fineness_tenths
            self.delivered_fine_mg = order.assay.fine_mg
        self.updated_at = at


class TransitionRow(Base):
    """Every change of an order's status: when, by whom, from what."""

    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def record(session: Session, row: OrderRow, order: Order, before: OrderStatus | None,
           actor: str, at: datetime) -> None:
    """Save an order's new state and the transition that led to it."""
    row.update_from(order, at)
    session.add(TransitionRow(order_id=order.id, from_status=str(before) if before else None,
                              to_status=str(order.status), actor=actor, at=at))


def history(session: Session, order_ids: list[str]) -> list[TransitionRow]:
    return list(session.scalars(select(TransitionRow)
                                .where(TransitionRow.order_id.in_(order_ids))
                                .order_by(TransitionRow.id)))


def page_of_orders(session: Session, *, buyer_id: str | None, producer_id: str | None,
                   first: int, after: tuple[datetime, str] | None) -> list[OrderRow]:
    """Orders, newest first, optionally one buyer's or one producer's."""
    query = (select(OrderRow).order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
             .limit(first))
    if buyer_id is not None:
        query = query.where(OrderRow.buyer_id == buyer_id)
    if producer_id is not None:
        query = query.where(OrderRow.producer_id == producer_id)
    if after is not None:
        at, row_id = after
        query = query.where((OrderRow.created_at < at)
                            | ((OrderRow.created_at == at) & (OrderRow.id < row_id)))
    return list(session.scalars(query))
