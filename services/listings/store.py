"""The listings database: lots, reservations, and the copy of producers' certificates."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.listings.domain import HeldCertification, Lot, LotForm, LotStatus, MineSite
from shared.persistence import messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)


class LotRow(Base):
    __tablename__ = "lots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    form: Mapped[str] = mapped_column(String(16))
    gross_mg: Mapped[int] = mapped_column(BigInteger)
    fineness_tenths: Mapped[int] = mapped_column(Integer)
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    available_mg: Mapped[int] = mapped_column(BigInteger)
    mine_site_name: Mapped[str] = mapped_column(String(200))
    mine_site_region: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[str | None] = mapped_column(String(16))
    longitude: Mapped[str | None] = mapped_column(String(16))
    mercury_free: Mapped[bool] = mapped_column(Boolean)
    assay_reference: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_lots_search", "status", "standard", "country", "fineness_tenths"),
        Index("ix_lots_newest", "created_at", "id"),
    )

    def to_domain(self) -> Lot:
        return Lot(
            id=self.id, producer_id=self.producer_id, standard=Standard(self.standard),
            form=LotForm(self.form), gross_mg=self.gross_mg,
            fineness_tenths=self.fineness_tenths,
            mine_site=MineSite(name=self.mine_site_name, region=self.mine_site_region,
                               country=self.country, latitude=self.latitude,
                               longitude=self.longitude),
            mercury_free=self.mercury_free, assay_reference=self.assay_reference,
            status=LotStatus(self.status), available_mg=self.available_mg)

    def update_from(self, lot: Lot) -> None:
        self.available_mg = lot.available_mg
        self.status = str(lot.status)

    @classmethod
    def from_domain(cls, lot: Lot, created_at: datetime) -> LotRow:
        return cls(
            id=lot.id, producer_id=lot.producer_id, standard=str(lot.standard),
            form=str(lot.form), gross_mg=lot.gross_mg, fineness_tenths=lot.fineness_tenths,
            fine_mg=lot.fine_mg, available_mg=lot.available_mg,
            mine_site_name=lot.mine_site.name, mine_site_region=lot.mine_site.region,
            country=lot.mine_site.country, latitude=lot.mine_site.latitude,
            longitude=lot.mine_site.longitude, mercury_free=lot.mercury_free,
            assay_reference=lot.assay_reference, status=str(lot.status),
            created_at=created_at)


class ReservationRow(Base):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"), index=True)
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HeldCertificationRow(Base):
    __tablename__ = "held_certifications"

    certification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))

    def to_domain(self) -> HeldCertification:
        return HeldCertification(
            certification_id=self.certification_id, producer_id=self.producer_id,
            standard=Standard(self.standard), valid_from=self.valid_from,
            valid_until=self.valid_until, status=self.status)


def held_by(session: Session, producer_id: str) -> list[HeldCertification]:
    rows = session.scalars(select(HeldCertificationRow)
                           .where(HeldCertificationRow.producer_id == producer_id))
    return [row.to_domain() for row in rows]


def search(session: Session, *, standards: list[str], min_fineness_tenths: int | None,
           country: str | None, first: int,
           after: tuple[datetime, str] | None) -> list[LotRow]:
    """Orderable lots, newest first, one page after the (created_at, id) cursor."""
    query = (select(LotRow)
             .where(LotRow.status.in_([str(LotStatus.PUBLISHED),
                                       str(LotStatus.PARTIALLY_RESERVED)]))
             .order_by(LotRow.created_at.desc(), LotRow.id.desc()).limit(first))
    if standards:
        query = query.where(LotRow.standard.in_(standards))
    if min_fineness_tenths is not None:
        query = query.where(LotRow.fineness_tenths >= min_fineness_tenths)
    if country:
        query = query.where(LotRow.country == country)
    if after is not None:
        created_at, lot_id = after
        query = query.where((LotRow.created_at < created_at)
                            | ((LotRow.created_at == created_at) & (LotRow.id < lot_id)))
    return list(session.scalars(query))
