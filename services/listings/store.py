"""The listings database: lots, reservations, and listings' copies of producers and certificates.

Search lives here: every filter and sort is one SQL query with keyset pagination, backed on
PostgreSQL by partial indexes over the lots on the market and a trigram index for free text.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    and_,
    case,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.listings.domain import (
    ORDERABLE,
    HeldCertification,
    Lot,
    LotForm,
    LotStanding,
    LotStatus,
    MineSite,
    fold,
)
from shared.errors import InvalidInput
from shared.persistence import insert_if_absent, messaging_tables
from shared.values import Standard


class Base(DeclarativeBase):
    pass


messaging = messaging_tables(Base.metadata)

MARKET = text("status IN ('PUBLISHED', 'PARTIALLY_RESERVED')")


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
    assay_lab: Mapped[str | None] = mapped_column(String(200))
    extraction_from: Mapped[date | None] = mapped_column(Date)
    extraction_until: Mapped[date | None] = mapped_column(Date)
    export_permit: Mapped[str | None] = mapped_column(String(100))
    price_basis_permille: Mapped[int] = mapped_column(Integer, default=0)
    ever_reserved: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    producer_name: Mapped[str] = mapped_column(String(200), default="")
    site_text: Mapped[str] = mapped_column(String(200), default="")
    """The mine-site name folded (no case, no accents)."""
    search_text: Mapped[str] = mapped_column(String(403), default="")
    """`site_text | folded producer name`: what free-text search matches."""

    __table_args__ = (
        Index("ix_lots_search", "status", "standard", "country", "fineness_tenths"),
        Index("ix_lots_newest", "created_at", "id"),
        # One partial index per sort over the lots on the market: a search walks one in
        # order and stops after a page, whatever else it filters on.
        Index("ix_lots_market_newest", "created_at", "id",
              postgresql_where=MARKET, sqlite_where=MARKET),
        Index("ix_lots_market_fineness", "fineness_tenths", "id",
              postgresql_where=MARKET, sqlite_where=MARKET),
        Index("ix_lots_market_available", "available_mg", "id",
              postgresql_where=MARKET, sqlite_where=MARKET),
        # The cascade finds a producer's lots under one standard.
        Index("ix_lots_producer_standard", "producer_id", "standard", "status"),
        # Free text (LIKE '%word%'): a trigram GIN index on PostgreSQL with pg_trgm, a plain
        # one elsewhere (it only keeps the schema identical); see the 0002 migration.
        Index("ix_lots_search_text_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
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
            status=LotStatus(self.status), available_mg=self.available_mg,
            assay_lab=self.assay_lab, extraction_from=self.extraction_from,
            extraction_until=self.extraction_until, export_permit=self.export_permit,
            price_basis_permille=self.price_basis_permille or 0,
            ever_reserved=bool(self.ever_reserved))

    def update_from(self, lot: Lot, at: datetime | None = None) -> None:
        self.standard, self.form = str(lot.standard), str(lot.form)
        self.gross_mg, self.fineness_tenths = lot.gross_mg, lot.fineness_tenths
        self.fine_mg, self.available_mg = lot.fine_mg, lot.available_mg
        self.mine_site_name, self.mine_site_region = lot.mine_site.name, lot.mine_site.region
        self.country = lot.mine_site.country
        self.latitude, self.longitude = lot.mine_site.latitude, lot.mine_site.longitude
        self.mercury_free, self.assay_reference = lot.mercury_free, lot.assay_reference
        self.status = str(lot.status)
        self.assay_lab, self.export_permit = lot.assay_lab, lot.export_permit
        self.extraction_from, self.extraction_until = lot.extraction_from, lot.extraction_until
        self.price_basis_permille = lot.price_basis_permille
        self.ever_reserved = lot.ever_reserved
        self.site_text = fold(lot.mine_site.name)
        self.search_text = self.site_text + producer_suffix(self.producer_name or "")
        if at is not None:
            self.updated_at = at

    @classmethod
    def from_domain(cls, lot: Lot, created_at: datetime, producer_name: str = "") -> LotRow:
        row = cls(id=lot.id, producer_id=lot.producer_id, created_at=created_at,
                  updated_at=created_at, producer_name=producer_name)
        row.update_from(lot)
        return row


def producer_suffix(producer_name: str) -> str:
    return f" | {fold(producer_name)}"


class ReservationRow(Base):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lot_id: Mapped[str] = mapped_column(ForeignKey("lots.id"), index=True)
    fine_mg: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_reason: Mapped[str | None] = mapped_column(String(200))


class HeldCertificationRow(Base):
    __tablename__ = "held_certifications"

    certification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def to_domain(self) -> HeldCertification:
        return HeldCertification(
            certification_id=self.certification_id, producer_id=self.producer_id,
            standard=Standard(self.standard), valid_from=self.valid_from,
            valid_until=self.valid_until, status=self.status, scope=tuple(self.scope or ()),
            version=self.version, changed_at=self.changed_at)

    def update_from(self, held: HeldCertification) -> None:
        self.valid_from, self.valid_until = held.valid_from, held.valid_until
        self.status, self.scope = held.status, list(held.scope)
        self.version, self.changed_at = held.version, held.changed_at


class ProducerRow(Base):
    """Listings' copy of a producer, from certification events: names for search, and the
    row a cascade or a publication locks so that they never interleave for one producer."""

    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def lock_producer(session: Session, producer_id: str) -> ProducerRow:
    """The producer's row, created empty if no event about it has arrived yet, locked.

    Everything that decides whether a producer's lots are on the market takes this lock
    first, so a suspension and a publication (or two certificate events) never interleave.
    """
    insert_if_absent(session, ProducerRow, ["id"], id=producer_id, name="")
    row = session.get(ProducerRow, producer_id, with_for_update=True,
                      populate_existing=True)
    assert row is not None
    return row


def lock_held(session: Session, certification_id: str) -> HeldCertificationRow | None:
    return session.get(HeldCertificationRow, certification_id, with_for_update=True)


def held_by(session: Session, producer_id: str) -> list[HeldCertification]:
    rows = session.scalars(select(HeldCertificationRow)
                           .where(HeldCertificationRow.producer_id == producer_id))
    return [row.to_domain() for row in rows]


def standings(session: Session, producer_id: str, standard: str) -> list[LotStanding]:
    statuses = [str(s) for s in (*ORDERABLE, LotStatus.SOLD_OUT, LotStatus.SUSPENDED)]
    rows = session.execute(
        select(LotRow.id, LotRow.status, LotRow.mine_site_name, LotRow.fine_mg,
               LotRow.available_mg)
        .where(LotRow.producer_id == producer_id, LotRow.standard == standard,
               LotRow.status.in_(statuses)))
    return [LotStanding(id=r.id, status=LotStatus(r.status), site_name=r.mine_site_name,
                        fine_mg=r.fine_mg, available_mg=r.available_mg) for r in rows]


def suspend_lots(session: Session, ids: list[str], at: datetime) -> list[str]:
    """Take lots off the market in one statement; returns those it changed."""
    if not ids:
        return []
    market = [str(LotStatus.PUBLISHED), str(LotStatus.PARTIALLY_RESERVED),
              str(LotStatus.SOLD_OUT)]
    changed = session.execute(
        update(LotRow).where(LotRow.id.in_(ids), LotRow.status.in_(market))
        .values(status=str(LotStatus.SUSPENDED), updated_at=at).returning(LotRow.id))
    return [row.id for row in changed]


def restore_lots(session: Session, ids: Iterable[str], at: datetime) -> list[tuple[str, str]]:
    """Put suspended lots back with the status their remaining gold gives them."""
    ids = list(ids)
    if not ids:
        return []
    status = case(
        (LotRow.available_mg <= 0, str(LotStatus.SOLD_OUT)),
        (LotRow.available_mg >= LotRow.fine_mg, str(LotStatus.PUBLISHED)),
        else_=str(LotStatus.PARTIALLY_RESERVED))
    changed = session.execute(
        update(LotRow).where(LotRow.id.in_(ids), LotRow.status == str(LotStatus.SUSPENDED))
        .values(status=status, updated_at=at).returning(LotRow.id, LotRow.status))
    return [(row.id, row.status) for row in changed]


def rename_producer(session: Session, producer_id: str, name: str) -> None:
    """Keep the producer's name on its lots, for free-text search."""
    session.execute(update(LotRow).where(LotRow.producer_id == producer_id)
                    .values(producer_name=name,
                            search_text=LotRow.site_text + literal(producer_suffix(name))))


# --- search ---------------------------------------------------------------------------------

class Sort(enum.StrEnum):
    NEWEST = "NEWEST"
    FINENESS = "FINENESS"
    AVAILABLE_WEIGHT = "AVAILABLE_WEIGHT"


SORT_KEYS = {
    Sort.NEWEST: LotRow.created_at,
    Sort.FINENESS: LotRow.fineness_tenths,
    Sort.AVAILABLE_WEIGHT: LotRow.available_mg,
}


@dataclass(frozen=True)
class ListingQuery:
    """What a buyer looks for; every field narrows the search, None or empty means any."""

    standards: list[str] = field(default_factory=list)
    producer_ids: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    region: str | None = None
    forms: list[str] = field(default_factory=list)
    mercury_free: bool | None = None
    min_fineness_tenths: int | None = None
    max_fineness_tenths: int | None = None
    min_available_mg: int | None = None
    statuses: list[str] = field(default_factory=lambda: [str(s) for s in ORDERABLE])
    text: str | None = None


def encode_cursor(sort: Sort, row: LotRow) -> str:
    key: Any = getattr(row, SORT_KEYS[sort].key)
    if isinstance(key, datetime):
        key = key.isoformat()
    raw = json.dumps([str(sort), key, row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str | None) -> tuple[Any, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        given_sort, key, row_id = json.loads(raw)
        if given_sort != str(sort) or not isinstance(row_id, str):
            raise ValueError
        if sort is Sort.NEWEST:
            key = datetime.fromisoformat(key)
        elif not isinstance(key, int) or isinstance(key, bool):
            raise ValueError
        return key, row_id
    except (ValueError, TypeError, RecursionError):
        raise InvalidInput("not a cursor this API gave out for this sort", field="after") \
            from None


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(session: Session, query: ListingQuery, *, sort: Sort = Sort.NEWEST, first: int,
           after: tuple[Any, str] | None = None) -> list[LotRow]:
    """One page of lots matching `query`, in `sort` order (largest first), after a cursor."""
    key = SORT_KEYS[sort]
    conditions: list[Any] = [LotRow.status.in_(query.statuses)]
    if query.standards:
        conditions.append(LotRow.standard.in_(query.standards))
    if query.producer_ids:
        conditions.append(LotRow.producer_id.in_(query.producer_ids))
    if query.countries:
        conditions.append(LotRow.country.in_(query.countries))
    if query.region:
        conditions.append(LotRow.mine_site_region == query.region)
    if query.forms:
        conditions.append(LotRow.form.in_(query.forms))
    if query.mercury_free is not None:
        conditions.append(LotRow.mercury_free.is_(query.mercury_free))
    if query.min_fineness_tenths is not None:
        conditions.append(LotRow.fineness_tenths >= query.min_fineness_tenths)
    if query.max_fineness_tenths is not None:
        conditions.append(LotRow.fineness_tenths <= query.max_fineness_tenths)
    if query.min_available_mg is not None:
        conditions.append(LotRow.available_mg >= query.min_available_mg)
    if query.text:
        conditions.extend(LotRow.search_text.like(_like(word), escape="\\")
                          for word in fold(query.text).split())
    if after is not None:
        conditions.append(tuple_(key, LotRow.id) < tuple_(*after))
    statement = (select(LotRow).where(and_(*conditions))
                 .order_by(key.desc(), LotRow.id.desc()).limit(first))
    return list(session.scalars(statement))


def lots_of_producers(session: Session, producer_ids: list[str], statuses: list[str] | None,
                      per_producer: int) -> list[LotRow]:
    """The newest lots of each producer (up to `per_producer` each), in one query."""
    number = func.row_number().over(partition_by=LotRow.producer_id,
                                    order_by=(LotRow.created_at.desc(), LotRow.id.desc()))
    ranked = (select(LotRow.id, number.label("n"))
              .where(LotRow.producer_id.in_(producer_ids)))
    if statuses is not None:
        ranked = ranked.where(LotRow.status.in_(statuses))
    sub = ranked.subquery()
    rows = session.scalars(select(LotRow).join(sub, sub.c.id == LotRow.id)
                           .where(sub.c.n <= per_producer)
                           .order_by(LotRow.producer_id, LotRow.created_at.desc(),
                                     LotRow.id.desc()))
    return list(rows)


