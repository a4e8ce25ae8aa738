"""The certification database: producers, their certificates and every change to them.

The expiry timer's queries live here too: they claim due certificates row by row so that
replicas running the timer at once never transition (or announce) one certificate twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.certification.domain import (
    EXPIRY_WARNING,
    LIVE,
    Certification,
    CertificationStatus,
    Change,
    Contact,
    MineSite,
    Producer,
)
from shared.persistence import BigId, messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)


def _sites_to_json(sites: list[MineSite]) -> list[dict[str, Any]]:
    return [{"name": s.name, "municipality": s.municipality, "latitude": s.latitude,
             "longitude": s.longitude, "mineral": s.mineral} for s in sites]


class ProducerRow(Base):
    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), index=True)
    region: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mine_sites: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    contact: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stripe_account_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)

    def to_domain(self) -> Producer:
        return Producer(
            id=self.id, name=self.name, country=self.country, region=self.region,
            mine_sites=[MineSite(**site) for site in (self.mine_sites or [])],
            contact=Contact(**(self.contact or {})), stripe_account_id=self.stripe_account_id,
            version=self.version or 1)

    def update_from(self, producer: Producer, at: datetime) -> None:
        self.name, self.country, self.region = producer.name, producer.country, producer.region
        self.mine_sites = _sites_to_json(producer.mine_sites)
        self.contact = contact_json(producer.contact)
        self.stripe_account_id = producer.stripe_account_id
        self.version = producer.version
        self.updated_at = at

    @classmethod
    def from_domain(cls, producer: Producer, at: datetime) -> ProducerRow:
        row = cls(id=producer.id, created_at=at)
        row.update_from(producer, at)
        return row


def contact_json(contact: Contact) -> dict[str, Any]:
    return {"name": contact.name, "email": contact.email, "phone": contact.phone}


class CertificationRow(Base):
    __tablename__ = "certifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(ForeignKey("producers.id"), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    certificate_number: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16))
    certifier: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    expiry_warned: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # What the timer looks for: live certificates by the day their validity ends.
        Index("ix_certifications_live_until", "valid_until",
              postgresql_where=text("status IN ('CERTIFIED', 'SUSPENDED')"),
              sqlite_where=text("status IN ('CERTIFIED', 'SUSPENDED')")),
    )

    def to_domain(self) -> Certification:
        return Certification(
            id=self.id, producer_id=self.producer_id, standard=Standard(self.standard),
            certificate_number=self.certificate_number, valid_from=self.valid_from,
            valid_until=self.valid_until, status=CertificationStatus(self.status),
            certifier=self.certifier, scope=tuple(self.scope or ()), version=self.version or 1,
            expiry_warned=bool(self.expiry_warned))

    def update_from(self, certification: Certification) -> None:
        self.status = str(certification.status)
        self.version = certification.version
        self.expiry_warned = certification.expiry_warned

    @classmethod
    def from_domain(cls, certification: Certification) -> CertificationRow:
        return cls(
            id=certification.id, producer_id=certification.producer_id,
            standard=str(certification.standard),
            certificate_number=certification.certificate_number,
            valid_from=certification.valid_from, valid_until=certification.valid_until,
            status=str(certification.status), certifier=certification.certifier,
            scope=list(certification.scope), version=certification.version,
            expiry_warned=certification.expiry_warned)


class HistoryRow(Base):
    """Append-only: one row per change of a certificate's status, the grant included."""

    __tablename__ = "certification_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    certification_id: Mapped[str] = mapped_column(ForeignKey("certifications.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # A version is written once: a second writer of the same change fails, not duplicates.
        Index("ux_certification_history_version", "certification_id", "version", unique=True),
    )

    def to_domain(self) -> Change:
        return Change(
            certification_id=self.certification_id, version=self.version,
            from_status=CertificationStatus(self.from_status) if self.from_status else None,
            to_status=CertificationStatus(self.to_status), at=self.at, actor=self.actor,
            reason=self.reason)

    @classmethod
    def from_domain(cls, change: Change) -> HistoryRow:
        return cls(certification_id=change.certification_id, version=change.version,
                   from_status=str(change.from_status) if change.from_status else None,
                   to_status=str(change.to_status), at=change.at, actor=change.actor,
                   reason=change.reason)


def certifications_of(session: Session, producer_ids: list[str]) -> list[Certification]:
    rows = session.scalars(select(CertificationRow)
                           .where(CertificationRow.producer_id.in_(producer_ids))
                           .order_by(CertificationRow.valid_from, CertificationRow.id))
    return [row.to_domain() for row in rows]


def history_of(session: Session, certification_ids: list[str]) -> list[Change]:
    if not certification_ids:
        return []
    rows = session.scalars(select(HistoryRow)
                           .where(HistoryRow.certification_id.in_(certification_ids))
                           .order_by(HistoryRow.certification_id, HistoryRow.version))
    return [row.to_domain() for row in rows]


def producer_rows(session: Session, producer_ids: list[str]) -> list[ProducerRow]:
    return list(session.scalars(select(ProducerRow).where(ProducerRow.id.in_(producer_ids))))


def producers_by_id(session: Session, producer_ids: list[str]) -> list[Producer]:
    return [row.to_domain() for row in producer_rows(session, producer_ids)]


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


def claim_due_for_expiry(session: Session, today: date, limit: int) -> list[CertificationRow]:
    """Live certificates whose validity ended before `today`, locked for this transaction.

    On PostgreSQL, rows another replica has claimed are skipped, and a row it has already
    expired no longer matches when it is locked, so each is expired by exactly one replica.
    SQLite serialises writers (BEGIN IMMEDIATE), which gives the same guarantee.
    """
    query = (select(CertificationRow)
             .where(CertificationRow.status.in_([str(s) for s in LIVE]),
                    CertificationRow.valid_until < today)
             .order_by(CertificationRow.valid_until, CertificationRow.id).limit(limit)
             .with_for_update(skip_locked=True))
    return list(session.scalars(query))


def claim_due_for_warning(session: Session, today: date, limit: int) -> list[CertificationRow]:
    """Certified certificates ending within the warning period and not yet warned about."""
    query = (select(CertificationRow)
             .where(CertificationRow.status == str(CertificationStatus.CERTIFIED),
                    CertificationRow.expiry_warned.is_(False),
                    CertificationRow.valid_until >= today,
                    CertificationRow.valid_until <= today + EXPIRY_WARNING)
             .order_by(CertificationRow.valid_until, CertificationRow.id).limit(limit)
             .with_for_update(skip_locked=True))
    return list(session.scalars(query))
