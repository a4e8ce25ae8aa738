"""The payouts database: the premium rate table, obligations, and the messaging tables."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, DateTime, String, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.payouts.domain import Obligation, PremiumRate
from shared.persistence import BigId, messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)


class RateRow(Base):
    __tablename__ = "premium_rates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    standard: Mapped[str] = mapped_column(String(32))
    # Stored as a decimal string: SQLite has no exact decimal type and a rate must stay exact.
    usd_per_kg: Mapped[str] = mapped_column(String(20))
    effective_from: Mapped[date] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("standard", "effective_from"),)

    def to_domain(self) -> PremiumRate:
        return PremiumRate(Standard(self.standard), Decimal(self.usd_per_kg),
                           self.effective_from)


class ObligationRow(Base):
    __tablename__ = "obligations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # One obligation per order, whatever happens to the events that announce deliveries.
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    producer_id: Mapped[str] = mapped_column(String(36), index=True)
    buyer_id: Mapped[str] = mapped_column(String(36), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    usd_per_kg: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    delivered_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @classmethod
    def from_domain(cls, obligation: Obligation, created_at: datetime) -> ObligationRow:
        return cls(
            id=obligation.id, order_id=obligation.order_id, producer_id=obligation.producer_id,
            buyer_id=obligation.buyer_id, standard=str(obligation.standard),
            fine_mg=obligation.fine_mg, usd_per_kg=str(obligation.usd_per_kg),
            amount_cents=obligation.amount_cents, currency=obligation.currency,
            delivered_on=obligation.delivered_on, status=str(obligation.status),
            created_at=created_at)


def rates(session: Session) -> list[PremiumRate]:
    return [row.to_domain() for row in session.scalars(select(RateRow))]


def page_of_obligations(session: Session, *, producer_id: str | None, first: int,
                        after: tuple[datetime, str] | None) -> list[ObligationRow]:
    query = (select(ObligationRow)
             .order_by(ObligationRow.created_at.desc(), ObligationRow.id.desc()).limit(first))
    if producer_id is not None:
        query = query.where(ObligationRow.producer_id == producer_id)
    if after is not None:
        at, row_id = after
        query = query.where((ObligationRow.created_at < at)
                            | ((ObligationRow.created_at == at) & (ObligationRow.id < row_id)))
    return list(session.scalars(query))


