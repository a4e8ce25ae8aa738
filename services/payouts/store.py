"""The payouts database: rates, obligations and their history, Stripe accounts and events,
the certification copy that drives holds, reconciliation runs and their lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
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
    Text,
    UniqueConstraint,
    and_,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.payouts.domain import (
    NO_CONNECTED_ACCOUNT,
    CertificateCopy,
    Change,
    FailureStage,
    Obligation,
    ObligationStatus,
    PremiumRate,
    ReversalRequest,
)
from shared.persistence import BigId, insert_if_absent, messaging_tables
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
    recorded_by: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

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
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    charge_id: Mapped[str | None] = mapped_column(String(64))
    funded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    funding_attempts: Mapped[int] = mapped_column(Integer, default=0)
    approvals: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    destination: Mapped[str | None] = mapped_column(String(64))
    transfer_id: Mapped[str | None] = mapped_column(String(64))
    transferred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_stage: Mapped[str | None] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reversed_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    held_from: Mapped[str | None] = mapped_column(String(16))
    hold_reason: Mapped[str | None] = mapped_column(Text)
    held_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hold_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_obligations_producer_standard", "producer_id", "standard"),
                      Index("ix_obligations_delivered_on", "delivered_on"),
                      # A Stripe transfer pays one obligation, never two.
                      UniqueConstraint("transfer_id", name="uq_obligations_transfer_id"))

    MOVING = ("payment_intent_id", "charge_id", "funded_at", "funding_attempts", "attempt",
              "destination", "transfer_id", "transferred_at", "submitted_at", "lease_until",
              "failure_code", "failure_message", "retryable", "failures", "next_attempt_at",
              "reversed_cents", "hold_reason", "held_at", "hold_released_at", "paid_at")

    @classmethod
    def from_domain(cls, obligation: Obligation, created_at: datetime) -> ObligationRow:
        row = cls(
            id=obligation.id, order_id=obligation.order_id, producer_id=obligation.producer_id,
            buyer_id=obligation.buyer_id, standard=str(obligation.standard),
            fine_mg=obligation.fine_mg, usd_per_kg=str(obligation.usd_per_kg),
            amount_cents=obligation.amount_cents, currency=obligation.currency,
            delivered_on=obligation.delivered_on, created_at=created_at)
        row.update_from(obligation, created_at)
        return row

    def to_domain(self) -> Obligation:
        return Obligation(
            id=self.id, order_id=self.order_id, producer_id=self.producer_id,
            buyer_id=self.buyer_id, standard=Standard(self.standard), fine_mg=self.fine_mg,
            usd_per_kg=Decimal(self.usd_per_kg), amount_cents=self.amount_cents,
            currency=self.currency, delivered_on=self.delivered_on,
            status=ObligationStatus(self.status), approvals=list(self.approvals or []),
            failure_stage=FailureStage(self.failure_stage) if self.failure_stage else None,
            held_from=ObligationStatus(self.held_from) if self.held_from else None,
            **{name: getattr(self, name) for name in self.MOVING
               if getattr(self, name) is not None})

    def update_from(self, obligation: Obligation, at: datetime) -> None:
        self.status = str(obligation.status)
        self.approvals = list(obligation.approvals)
        self.failure_stage = str(obligation.failure_stage) if obligation.failure_stage else None
        self.held_from = str(obligation.held_from) if obligation.held_from else None
        for name in self.MOVING:
            setattr(self, name, getattr(obligation, name))
        self.updated_at = at


class HistoryRow(Base):
    """Every change of every obligation: actor, time, reason."""

    __tablename__ = "obligation_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    obligation_id: Mapped[str] = mapped_column(ForeignKey("obligations.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class AccountRow(Base):
    """A cooperative's Stripe Connect (Express) account: payouts owns the id."""

    __tablename__ = "connected_accounts"

    producer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stripe_account_id: Mapped[str] = mapped_column(String(64), unique=True)
    transfers_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When payouts last asked Stripe for the account itself (account.updated may be lost).
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProducerRow(Base):
    """The few facts about producers payouts needs (names for exports and charts)."""

    __tablename__ = "producers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    version: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FundingRow(Base):
    """How a buyer pays premiums: a Stripe customer and a saved payment method."""

    __tablename__ = "buyer_funding"

    buyer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(64))
    payment_method: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CertificateRow(Base):
    """Payouts' own copy of each certificate's status, from certification's events."""

    __tablename__ = "certificates"

    certification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    producer_id: Mapped[str] = mapped_column(String(36), index=True)
    standard: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)

    def to_domain(self) -> CertificateCopy:
        return CertificateCopy(self.certification_id, self.producer_id,
                               Standard(self.standard), self.status, self.version,
                               self.changed_at, self.valid_from, self.valid_until)


class StripeEventRow(Base):
    """Stripe event ids already applied, recorded with their effect (each applies once)."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReversalRow(Base):
    __tablename__ = "reversals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # trr_…
    obligation_id: Mapped[str] = mapped_column(ForeignKey("obligations.id"), index=True)
    transfer_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReversalRequestRow(Base):
    """Finance's request for a reversal, committed before Stripe is asked. `reversal_id` is
    the Stripe reversal that carried it out (recorded once, by its reply or its webhook)."""

    __tablename__ = "reversal_requests"
    # The caller's key names one request of an obligation (NULLs, requests sent without a
    # key, do not clash).
    __table_args__ = (UniqueConstraint("obligation_id", "client_key",
                                       name="uq_reversal_requests_client_key"),)

    # One request per key: asking for the same reversal again re-sends this one.
    idempotency_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    obligation_id: Mapped[str] = mapped_column(ForeignKey("obligations.id"), index=True)
    transfer_id: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reversal_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe's last definitive refusal; cleared when a request without a caller's key is
    # asked for again (one with a key answers with it instead).
    refusal: Mapped[str | None] = mapped_column(Text)
    # The idempotency key the caller sent (`idempotencyKey`), if any, and whether it asked
    # for all that was left: what the same key must carry again.
    client_key: Mapped[str | None] = mapped_column(String(64))
    whole: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def to_domain(self) -> ReversalRequest:
        return ReversalRequest(self.idempotency_key, self.obligation_id, self.transfer_id,
                               self.amount_cents, self.currency, self.actor, self.reason,
                               self.requested_at, client_key=self.client_key,
                               whole=self.whole, reversal_id=self.reversal_id,
                               refusal=self.refusal)


class BankPayoutRow(Base):
    """A cooperative's payout from its Stripe balance to its bank (payout.paid / failed)."""

    __tablename__ = "bank_payouts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # po_…
    stripe_account_id: Mapped[str] = mapped_column(String(64), index=True)
    producer_id: Mapped[str | None] = mapped_column(String(36))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    __tablename__ = "reconciliation_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class LineRow(Base):
    __tablename__ = "reconciliation_lines"

    run_id: Mapped[str] = mapped_column(ForeignKey("reconciliation_runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    obligation_id: Mapped[str] = mapped_column(String(64))
    producer_id: Mapped[str] = mapped_column(String(64))
    standard: Mapped[str] = mapped_column(String(32))
    month: Mapped[str] = mapped_column(String(7))
    veta_stripe_id: Mapped[str] = mapped_column(String(64))
    stripe_id: Mapped[str] = mapped_column(String(64))
    veta_amount: Mapped[int | None] = mapped_column(BigInteger)
    stripe_amount: Mapped[int | None] = mapped_column(BigInteger)
    veta_currency: Mapped[str] = mapped_column(String(3))
    stripe_currency: Mapped[str] = mapped_column(String(3))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_reconciliation_lines_status", "run_id", "status", "seq"),)

    FIELDS = ("status", "kind", "obligation_id", "producer_id", "standard", "month",
              "veta_stripe_id", "stripe_id", "veta_amount", "stripe_amount", "veta_currency",
              "stripe_currency")


class ResolutionRow(Base):
    """Every note finance wrote on a discrepancy, kept after a later one."""

    __tablename__ = "discrepancy_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_discrepancy_notes_line", "run_id", "seq"),)


# --- queries ---------------------------------------------------------------------------------

def rates(session: Session) -> list[PremiumRate]:
    return [row.to_domain() for row in session.scalars(select(RateRow))]


def record_changes(session: Session, changes: list[Change | None]) -> None:
    for change in changes:
        if change is None:
            continue
        session.add(HistoryRow(
            obligation_id=change.obligation_id, action=change.action,
            from_status=str(change.from_status) if change.from_status else None,
            to_status=str(change.to_status), actor=change.actor, at=change.at,
            reason=change.reason))


def history(session: Session, ids: list[str]) -> list[HistoryRow]:
    if not ids:
        return []
    return list(session.scalars(select(HistoryRow).where(HistoryRow.obligation_id.in_(ids))
                                .order_by(HistoryRow.id)))


def lock_obligation(session: Session, obligation_id: str) -> ObligationRow | None:
    return session.get(ObligationRow, obligation_id, with_for_update=True)


def page_of_obligations(session: Session, *, producer_id: str | None, first: int,
                        after: tuple[datetime, str] | None, statuses: list[str] | None = None,
                        standard: str | None = None,
                        delivered: tuple[date, date] | None = None) -> list[ObligationRow]:
    query = (select(ObligationRow)
             .order_by(ObligationRow.created_at.desc(), ObligationRow.id.desc()).limit(first))
    if producer_id is not None:
        query = query.where(ObligationRow.producer_id == producer_id)
    if statuses:
        query = query.where(ObligationRow.status.in_(statuses))
    if standard is not None:
        query = query.where(ObligationRow.standard == standard)
    if delivered is not None:
        query = query.where(ObligationRow.delivered_on >= delivered[0],
                            ObligationRow.delivered_on < delivered[1])
    if after is not None:
        at, row_id = after
        query = query.where((ObligationRow.created_at < at)
                            | ((ObligationRow.created_at == at) & (ObligationRow.id < row_id)))
    return list(session.scalars(query))


def due_for_funding(session: Session, limit: int) -> list[str]:
    query = (select(ObligationRow.id)
             .where(ObligationRow.status == ObligationStatus.CALCULATED,
                    ObligationRow.payment_intent_id.is_(None))
             .order_by(ObligationRow.created_at).limit(limit))
    return list(session.scalars(query))


def due_for_transfer(session: Session, now: datetime, limit: int) -> list[str]:
    """APPROVED ones, SUBMITTED ones whose claim lapsed (a crash or a lost reply), and
    retryable FAILED transfers whose backoff has passed."""
    query = (select(ObligationRow.id).where(or_(
        ObligationRow.status == ObligationStatus.APPROVED,
        and_(ObligationRow.status == ObligationStatus.SUBMITTED,
             or_(ObligationRow.lease_until.is_(None), ObligationRow.lease_until <= now)),
        and_(ObligationRow.status == ObligationStatus.FAILED,
             ObligationRow.failure_stage == FailureStage.TRANSFER,
             ObligationRow.retryable.is_(True), ObligationRow.next_attempt_at <= now)))
        .order_by(ObligationRow.updated_at).limit(limit))
    return list(session.scalars(query))


def claim(session: Session, row: ObligationRow, expected_status: str,
          expected_updated_at: datetime | None, values: dict[str, Any]) -> bool:
    """Compare-and-set: only one replica or green thread wins a claim on an obligation."""
    condition = [ObligationRow.id == row.id, ObligationRow.status == expected_status]
    if expected_updated_at is not None:
        condition.append(ObligationRow.updated_at == expected_updated_at)
    result = session.execute(update(ObligationRow).where(*condition).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def certificates_of(session: Session, producer_id: str) -> list[CertificateCopy]:
    return [row.to_domain() for row in session.scalars(
        select(CertificateRow).where(CertificateRow.producer_id == producer_id))]


def holdable(session: Session, producer_id: str, standard: str,
             statuses: tuple[str, ...]) -> list[ObligationRow]:
    return list(session.scalars(
        select(ObligationRow).where(ObligationRow.producer_id == producer_id,
                                    ObligationRow.standard == standard,
                                    ObligationRow.status.in_(statuses))
        .with_for_update()))


def record_stripe_event(session: Session, event_id: str, event_type: str,
                        at: datetime) -> bool:
    """Record a Stripe event as applied; False if it already was. Two deliveries of one event
    racing: the second waits on the first's row, then finds it (or, if the first rolled
    back, records it itself), so neither answers Stripe with an error."""
    return insert_if_absent(session, StripeEventRow, ["event_id"], event_id=event_id,
                            type=event_type, received_at=at)


def keep_reversal_request(session: Session, request: ReversalRequest) -> ReversalRequest:
    """Store finance's request, or find the one already kept under its key: the same
    reversal asked for again is the same request (Stripe refuses a key reused with other
    parameters), so the first request's actor and reason stand. The caller holds the
    obligation's lock."""
    row = session.get(ReversalRequestRow, request.idempotency_key)
    if row is None:
        session.add(ReversalRequestRow(
            idempotency_key=request.idempotency_key, obligation_id=request.obligation_id,
            transfer_id=request.transfer_id, amount_cents=request.amount_cents,
            currency=request.currency, actor=request.actor, reason=request.reason,
            requested_at=request.requested_at, client_key=request.client_key,
            whole=request.whole))
        return request
    row.refusal = None
    return row.to_domain()


def reversal_request(session: Session, idempotency_key: str) -> ReversalRequestRow | None:
    return session.get(ReversalRequestRow, idempotency_key)


def requested_reversal(session: Session, obligation_id: str,
                       client_key: str) -> ReversalRequest | None:
    """The request an obligation keeps under the caller's key, if that key was sent before."""
    row = session.scalar(select(ReversalRequestRow).where(
        ReversalRequestRow.obligation_id == obligation_id,
        ReversalRequestRow.client_key == client_key))
    return None if row is None else row.to_domain()


def reversed_total(session: Session, obligation_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(ReversalRow.amount_cents), 0))
                              .where(ReversalRow.obligation_id == obligation_id)) or 0)


def account_of(session: Session, producer_id: str) -> AccountRow | None:
    return session.get(AccountRow, producer_id)


def waiting_accounts(session: Session, checked_before: datetime, limit: int) -> list[str]:
    """Connected accounts not known to take transfers, with an approved premium waiting on
    them, that Stripe has not been asked about since `checked_before`."""
    o = ObligationRow
    waiting = select(o.id).where(o.producer_id == AccountRow.producer_id, or_(
        o.status == ObligationStatus.APPROVED,
        and_(o.status == ObligationStatus.FAILED, o.failure_stage == FailureStage.TRANSFER,
             o.retryable.is_(True), o.failure_code == NO_CONNECTED_ACCOUNT)))
    query = (select(AccountRow.stripe_account_id)
             .where(AccountRow.transfers_active.is_(False), waiting.exists(),
                    or_(AccountRow.checked_at.is_(None), AccountRow.checked_at <= checked_before))
             .order_by(AccountRow.checked_at.asc().nulls_first()).limit(limit))
    return list(session.scalars(query))


def claim_account_check(session: Session, stripe_account_id: str, at: datetime,
                        checked_before: datetime) -> bool:
    """Compare-and-set: of the replicas and sweeps that find an account due, one asks."""
    result = session.execute(update(AccountRow).where(
        AccountRow.stripe_account_id == stripe_account_id,
        or_(AccountRow.checked_at.is_(None), AccountRow.checked_at <= checked_before))
        .values(checked_at=at))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def wake_waiting(session: Session, producer_id: str, at: datetime) -> None:
    """The producer's premiums waiting on its onboarding are due now."""
    o = ObligationRow
    session.execute(update(o).where(
        o.producer_id == producer_id, o.status == ObligationStatus.FAILED,
        o.failure_stage == FailureStage.TRANSFER, o.retryable.is_(True),
        o.failure_code == NO_CONNECTED_ACCOUNT).values(next_attempt_at=at))


def producer_of_account(session: Session) -> dict[str, str]:
    return {account: producer for account, producer in session.execute(
        select(AccountRow.stripe_account_id, AccountRow.producer_id))}


def producer_names(session: Session) -> dict[str, str]:
    return {producer: name for producer, name in session.execute(
        select(ProducerRow.id, ProducerRow.name))}


def ledger(session: Session, start: datetime, end: datetime,
           batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Veta's money movements in [start, end), streamed: (kind, obligation, stripe id,
    amount, currency, producer, standard, booked at). A transfer is booked when Stripe made
    it, or when Veta sent it if Stripe's answer never came."""
    o = ObligationRow
    payments = (select(o.id, o.charge_id, o.amount_cents, o.currency, o.producer_id,
                       o.standard, o.funded_at)
                .where(o.funded_at >= start, o.funded_at < end).order_by(o.id)
                .execution_options(yield_per=batch))
    for row in session.execute(payments):
        yield ("PAYMENT", row[0], row[1] or "", row[2], row[3], row[4], row[5], row[6])
    booked = func.coalesce(o.transferred_at, o.submitted_at)
    transfers = (select(o.id, o.transfer_id, o.amount_cents, o.currency, o.producer_id,
                        o.standard, booked)
                 .where(o.status.in_(("SUBMITTED", "PAID", "REVERSED")), booked >= start,
                        booked < end).order_by(o.id).execution_options(yield_per=batch))
    for row in session.execute(transfers):
        yield ("TRANSFER", row[0], row[1] or "", row[2], row[3], row[4], row[5], row[6])
    r = ReversalRow
    reversals = (select(r.obligation_id, r.id, r.amount_cents, r.currency, o.producer_id,
                        o.standard, r.created_at).join(o, o.id == r.obligation_id)
                 .where(r.created_at >= start, r.created_at < end).order_by(r.id)
                 .execution_options(yield_per=batch))
    for row in session.execute(reversals):
        yield ("REVERSAL", row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def lines_page(session: Session, run_id: str, first: int, after: int | None,
               statuses: list[str] | None, unresolved_only: bool) -> list[LineRow]:
    query = (select(LineRow).where(LineRow.run_id == run_id).order_by(LineRow.seq)
             .limit(first))
    if after is not None:
        query = query.where(LineRow.seq > after)
    if statuses:
        query = query.where(LineRow.status.in_(statuses))
    if unresolved_only:
        query = query.where(LineRow.status != "MATCHED", LineRow.resolved_at.is_(None))
    return list(session.scalars(query))


def all_lines(session: Session, run_id: str, batch: int = 5000) -> Iterator[LineRow]:
    yield from session.scalars(select(LineRow).where(LineRow.run_id == run_id)
                               .order_by(LineRow.seq).execution_options(yield_per=batch))


def page_of_runs(session: Session, period: str | None, first: int,
                 after: tuple[datetime, str] | None) -> list[RunRow]:
    query = (select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc())
             .limit(first))
    if period:
        query = query.where(RunRow.period == period)
    if after is not None:
        at, row_id = after
        query = query.where((RunRow.started_at < at)
                            | ((RunRow.started_at == at) & (RunRow.id < row_id)))
    return list(session.scalars(query))


def notes_of(session: Session, run_id: str, seqs: list[int]) -> list[ResolutionRow]:
    if not seqs:
        return []
    return list(session.scalars(select(ResolutionRow).where(
        ResolutionRow.run_id == run_id, ResolutionRow.seq.in_(seqs)).order_by(ResolutionRow.id)))
