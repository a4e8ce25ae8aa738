"""The certification database: producers and their certificates, and the messaging tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.certification.domain import Certification, CertificationStatus, Producer
from shared.persistence import messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)


class ProducerRow(Base):
    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), index=True)
    region: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def to_domain(self) -> Producer:
        return Producer(id=self.id, name=self.name, country=self.country, region=self.region)


class CertificationRow(Base):
    __tablename__ = "certifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(ForeignKey("producers.id"), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    certificate_number: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16))

    def to_domain(self) -> Certification:
        return Certification(
            id=self.id, producer_id=self.producer_id, standard=Standard(self.standard),
            certificate_number=self.certificate_number, valid_from=self.valid_from,
            valid_until=self.valid_until, status=CertificationStatus(self.status))

    @classmethod
    def from_domain(cls, certification: Certification) -> CertificationRow:
        return cls(
            id=certification.id, producer_id=certification.producer_id,
            standard=str(certification.standard),
            certificate_number=certification.certificate_number,
            valid_from=certification.valid_from, valid_until=certification.valid_until,
            status=str(certification.status))


def certifications_of(session: Session, producer_ids: list[str]) -> list[Certification]:
    rows = session.scalars(select(CertificationRow)
                           .where(CertificationRow.producer_id.in_(producer_ids))
                           .order_by(CertificationRow.valid_from))
    return [row.to_domain() for row in rows]


def producers_by_id(session: Session, producer_ids: list[str]) -> list[Producer]:
    rows = session.scalars(select(ProducerRow).where(ProducerRow.id.in_(producer_ids)))
    return [row.to_domain() for row in rows]


def page_of_producers(session: Session, first: int,
                      after: tuple[datetime, str] | None) -> list[ProducerRow]:
    """Producers, newest first, one page after the (created_at, id) cursor."""
    query = (select(ProducerRow).order_by(ProducerRow.created_at.desc(), ProducerRow.id.desc())
             .limit(first))
    if after is not None:
        at, row_id = after
        query = query.where((ProducerRow.created_at < at)
                            | ((ProducerRow.created_at == at) & (ProducerRow.id < row_id)))
    return list(session.scalars(query))
