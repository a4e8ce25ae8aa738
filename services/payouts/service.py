"""Payouts service entrypoints: premiums owed, approved by finance, paid over Stripe Connect.

Deliveries become obligations (once per order, at the rate in force); finance approves them
(four eyes above a threshold); a sweep collects each premium from its buyer and transfers it
to the cooperative exactly once; Stripe's signed webhooks confirm each step; reconciliation
matches the ledger against Stripe. Only FINANCE moves money; a producer reads its own.
"""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StringConstraints
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

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
from services.orders.events import OrderDelivered
from services.payouts import domain, runs, store, transfers, webhooks
from services.payouts.config import PayoutSettings
from services.payouts.entrypoints import http, sweep
from services.payouts.events import PayoutAccountCreated, PremiumObligationCreated
from services.payouts.stripe_api import Stripe, StripeAccess, refusal, verified_event
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable, VetaError
from shared.messaging import Database, consumes, rpc
from shared.observability import Operations
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase, UnitOfWork
from shared.validation import Command, Identifier, parse
from shared.values import Standard, format_grams, format_money, grams_to_mg

log = logging.getLogger(__name__)

Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=500)]


class PayoutAction(Command):
    payout_id: Identifier
    reason: Reason | None = None


class ReversePayout(Command):
    payout_id: Identifier
    amount: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d{1,2})?$")] | None = None
    reason: Reason
    # The caller's name for this request: sent again, it is the same reversal, never a
    # second one. Without it the amount and the reversed total name the request.
    idempotency_key: Identifier | None = None


class AddPremiumRate(Command):
    standard: Standard
    usd_per_kg: Annotated[str, StringConstraints(pattern=r"^\d{1,9}(\.\d{1,2})?$")]
    effective_from: date


class OnboardingLink(Command):
    producer_id: Identifier
    return_url: Url | None = None
    refresh_url: Url | None = None


class BuyerFunding(Command):
    buyer_id: Identifier
    payment_method: Annotated[str, StringConstraints(pattern=r"^pm_\w+$", max_length=64)]
    customer_id: Annotated[str, StringConstraints(pattern=r"^cus_\w+$",
                                                  max_length=64)] | None = None


class RunReconciliation(Command):
    period: Annotated[str, StringConstraints(max_length=7)]
    source: str = Field(default=runs.API, pattern=f"^{runs.API}$")


class ResolveDiscrepancy(Command):
    line_id: Identifier
    note: Reason


class ObligationFilter(Command):
    status: list[domain.ObligationStatus] = Field(default_factory=list, max_length=8)
    standard: Standard | None = None
    period: str | None = None


# --- views --------------------------------------------------------------------------------

def obligation_view(row: store.ObligationRow,
                    history: list[store.HistoryRow] | None = None,
                    threshold_cents: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "order_id": row.order_id, "producer_id": row.producer_id,
        "buyer_id": row.buyer_id, "standard": row.standard,
        "fine_weight": format_grams(row.fine_mg), "usd_per_kg": row.usd_per_kg,
        "amount": format_money(row.amount_cents), "currency": row.currency,
        "delivered_on": row.delivered_on.isoformat(), "status": row.status,
        "created_at": row.created_at.isoformat(),
        "updated_at": (row.updated_at or row.created_at).isoformat(),
        "payment_intent_id": row.payment_intent_id, "charge_id": row.charge_id,
        "funded_at": row.funded_at.isoformat() if row.funded_at else None,
        "approvals": list(row.approvals or []),
        "approvals_needed": (row.to_domain().approvals_needed(threshold_cents)
                             if threshold_cents is not None else None),
        "attempt": row.attempt, "transfer_id": row.transfer_id,
        "idempotency_key": domain.transfer_key(row.id, row.attempt) if row.attempt else None,
        "paid_at": row.paid_at.isoformat() if row.paid_at else None,
        "reversed_amount": format_money(row.reversed_cents or 0),
        "failure": None if not row.failure_code else {
            "stage": row.failure_stage, "code": row.failure_code,
            "message": row.failure_message, "retryable": bool(row.retryable),
            "failures": row.failures,
            "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at
            else None},
        "hold": None if row.status != domain.ObligationStatus.ON_HOLD else {
            "reason": row.hold_reason, "held_from": row.held_from,
            "held_at": row.held_at.isoformat() if row.held_at else None},
    }
    if history is not None:
        view["history"] = [{"action": h.action, "from": h.from_status, "to": h.to_status,
                            "actor": h.actor, "at": h.at.isoformat(), "reason": h.reason}
                           for h in history]
    return view


def run_view(row: store.RunRow) -> dict[str, Any]:
    summary = row.summary or {}
    return {"id": row.id, "period": row.period, "source": row.source, "status": row.status,
            "started_by": row.started_by, "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "error": row.error, "counts": summary.get("counts") or {},
            "by_producer": summary.get("by_producer") or [],
            "by_standard": summary.get("by_standard") or [],
            "by_month": summary.get("by_month") or []}


def line_view(row: store.LineRow, notes: list[store.ResolutionRow]) -> dict[str, Any]:
    return {"id": f"{row.run_id}:{row.seq}", "seq": row.seq,
            **{name: getattr(row, name) for name in store.LineRow.FIELDS},
            "veta_amount": None if row.veta_amount is None else format_money(row.veta_amount),
            "stripe_amount": (None if row.stripe_amount is None
                              else format_money(row.stripe_amount)),
            "resolution": row.resolution, "resolved_by": row.resolved_by,
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
            "notes": [{"note": n.note, "actor": n.actor, "at": n.at.isoformat()}
                      for n in notes if n.seq == row.seq]}


def line_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"line:{seq}".encode()).decode().rstrip("=")


def decode_line_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind != "line":
            raise ValueError
        return int(seq)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("not a cursor this API gave out", field="after") from None


def split_line_id(line_id: str) -> tuple[str, int]:
    run_id, _, seq = line_id.rpartition(":")
    if not run_id or not seq.isdigit():
        raise NotFound("no such reconciliation line", field="line_id")
    return run_id, int(seq)


# --- who may ------------------------------------------------------------------------------

def finance(caller: Caller | None) -> Caller:
    """Money moves only by FINANCE: not even an administrator approves or pays."""
    caller = required(caller)
    if caller.role is not Role.FINANCE:
        raise Forbidden("only finance staff move money")
    return caller


def staff(caller: Caller | None) -> Caller:
    caller = required(caller)
    if caller.role not in (Role.FINANCE, Role.ADMIN):
        raise Forbidden("only finance staff see reconciliations")
    return caller


def may_see(caller: Caller, row: store.ObligationRow) -> bool:
    if caller.role in (Role.FINANCE, Role.ADMIN):
        return True
    return caller.role is Role.PRODUCER and caller.organisation == row.producer_id


class PayoutsService(Operations):
    name = "payouts"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()
    stripe: StripeAccess = Stripe()

    @property
    def settings(self) -> PayoutSettings:
        return self.stripe.provider.settings

    # --- obligations: reading -------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def list_obligations(self, producer_id: str | None = None, first: int | None = None,
                         after: str | None = None,
                         filter: dict[str, Any] | None = None) -> dict[str, Any]:
        caller = required(self.caller)
        if caller.role is Role.PRODUCER:
            if producer_id not in (None, caller.organisation):
                raise Forbidden("a producer sees only its own premiums", field="producer_id")
            producer_id = caller.organisation
        elif caller.role not in (Role.FINANCE, Role.ADMIN):
            raise Forbidden("only finance staff and producers see premiums")
        wanted = parse(ObligationFilter, filter or {})
        period = domain.parse_period(wanted.period) if wanted.period else None
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.page_of_obligations(
                session, producer_id=producer_id, first=size + 1, after=decode_cursor(after),
                statuses=[str(s) for s in wanted.status], standard=wanted.standard,
                delivered=(period.start, period.end) if period else None)
        threshold = self.settings.four_eyes_threshold_cents
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": obligation_view(row, threshold_cents=threshold)}
                      for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }

    @rpc(expected_exceptions=VetaError)
    def get_obligations(self, ids: list[str]) -> list[dict[str, Any]]:
        """Obligations the caller may see among `ids`, each with its full history."""
        caller = required(self.caller)
        if len(ids) > 500:
            raise InvalidInput("at most 500 ids", field="ids")
        with self.db.reading() as session:
            rows = [row for row in session.scalars(
                select(store.ObligationRow).where(store.ObligationRow.id.in_(ids)))
                if may_see(caller, row)]
            history = store.history(session, [row.id for row in rows])
        threshold = self.settings.four_eyes_threshold_cents
        return [obligation_view(row, [h for h in history if h.obligation_id == row.id],
                                threshold) for row in rows]

    # --- obligations: finance's decisions --------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def approve_payout(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(PayoutAction, data)
        threshold = self.settings.four_eyes_threshold_cents
        return self._decide(command.payout_id, lambda ob, at: ob.approve(
            caller.subject, at, threshold, command.reason))

    @rpc(expected_exceptions=VetaError)
    def reject_payout(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(PayoutAction, data)
        reason = self._reason(command)
        return self._decide(command.payout_id, lambda ob, at: ob.reject(
            caller.subject, at, reason))

    @rpc(expected_exceptions=VetaError)
    def release_payout_hold(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(PayoutAction, data)
        reason = self._reason(command)
        return self._decide(command.payout_id, lambda ob, at: ob.release_hold(
            caller.subject, at, reason))

    @rpc(expected_exceptions=VetaError)
    def retry_payout(self, data: dict[str, Any]) -> dict[str, Any]:
        """Try a FAILED step again now: the buyer's payment, or the transfer (with a new
        key only because the last one definitively failed)."""
        caller = finance(self.caller)
        command = parse(PayoutAction, data)
        self._decide(command.payout_id, lambda ob, at: ob.retry(caller.subject, at))
        if self.stripe.configured:
            transfers.fund(self.db, self.stripe, command.payout_id, self.clock.now)
            transfers.transfer(self.db, self.stripe, self.settings, command.payout_id,
                               self.clock.now)
        return self._view(command.payout_id)

    @rpc(expected_exceptions=VetaError)
    def reverse_payout(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(ReversePayout, data)
        amount = int(Decimal(command.amount) * 100) if command.amount else None
        transfers.reverse(self.db, self.stripe, self.settings, command.payout_id, amount,
                          caller.subject, command.reason, self.clock.now,
                          command.idempotency_key)
        return self._view(command.payout_id)

    def _reason(self, command: PayoutAction) -> str:
        if not command.reason:
            raise InvalidInput("say why", field="reason")
        return command.reason

    def _decide(self, payout_id: str, decide: Any) -> dict[str, Any]:
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            row = store.lock_obligation(uow.session, payout_id)
            if row is None:
                raise NotFound("no such payout", field="payout_id")
            ob = row.to_domain()
            transfers.save(uow, row, ob, now, decide(ob, now))
        return self._view(payout_id)

    def _view(self, payout_id: str) -> dict[str, Any]:
        with self.db.reading() as session:
            row = session.get(store.ObligationRow, payout_id)
            if row is None:
                raise NotFound("no such payout", field="payout_id")
            return obligation_view(row, store.history(session, [payout_id]),
                                   self.settings.four_eyes_threshold_cents)

    # --- rates, accounts, buyers' funding --------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def list_premium_rates(self) -> list[dict[str, Any]]:
        required(self.caller)
        with self.db.reading() as session:
            rows = session.scalars(select(store.RateRow).order_by(
                store.RateRow.standard, store.RateRow.effective_from))
            return [{"standard": r.standard, "usd_per_kg": r.usd_per_kg,
                     "effective_from": r.effective_from.isoformat(),
                     "recorded_by": r.recorded_by} for r in rows]

    @rpc(expected_exceptions=VetaError)
    def add_premium_rate(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(AddPremiumRate, data)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            rate = domain.extend_rates(store.rates(uow.session), domain.PremiumRate(
                command.standard, Decimal(command.usd_per_kg), command.effective_from),
                now.date())
            uow.session.add(store.RateRow(
                standard=str(rate.standard), usd_per_kg=str(rate.usd_per_kg),
                effective_from=rate.effective_from, recorded_by=caller.subject,
                recorded_at=now))
        return {"standard": str(rate.standard), "usd_per_kg": str(rate.usd_per_kg),
                "effective_from": rate.effective_from.isoformat(),
                "recorded_by": caller.subject}

    @rpc(expected_exceptions=VetaError)
    def create_onboarding_link(self, data: dict[str, Any]) -> dict[str, Any]:
        """Open the cooperative's Express account (once) and a fresh onboarding link."""
        caller = required(self.caller)
        if caller.role not in (Role.FINANCE, Role.ADMIN, Role.PRODUCER):
            raise Forbidden("only finance staff or the cooperative itself onboard it")
        command = parse(OnboardingLink, data)
        if caller.role is Role.PRODUCER:
            caller.require_organisation(Role.PRODUCER, command.producer_id)
        with self.db.reading() as session:
            producer = session.get(store.ProducerRow, command.producer_id)
            account = store.account_of(session, command.producer_id)
            account_id = account.stripe_account_id if account else None
        if producer is None:
            raise NotFound("no such producer", field="producer_id")
        api = self.stripe.api
        try:
            if account_id is None:
                made = api.create_account(producer.id, producer.country,
                                          domain.account_key(producer.id))
                account_id = self._keep_account(producer.id, str(made["id"]), caller.subject)
            link = api.account_link(
                account_id, command.refresh_url or self.settings.onboarding_refresh_url,
                command.return_url or self.settings.onboarding_return_url)
        except VetaError:
            raise
        except Exception as error:
            why = refusal(error)
            if why.definitive:
                raise Conflict(f"Stripe refused: {why.message}", field="producer_id") from None
            raise Unavailable(f"Stripe did not answer: {why.message}",
                              field="producer_id") from None
        return {"producer_id": producer.id, "stripe_account_id": account_id,
                "url": link["url"], "expires_at": link["expires_at"]}

    def _keep_account(self, producer_id: str, account_id: str, actor: str) -> str:
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            existing = store.account_of(uow.session, producer_id)
            if existing is not None:  # another request won; Stripe's key made it the same
                return existing.stripe_account_id
            uow.session.add(store.AccountRow(
                producer_id=producer_id, stripe_account_id=account_id, transfers_active=False,
                created_by=actor, created_at=now, updated_at=now))
            uow.raise_event(PayoutAccountCreated(producer_id=producer_id,
                                                 stripe_account_id=account_id))
        return account_id

    @rpc(expected_exceptions=VetaError)
    def get_payout_account(self, producer_id: str) -> dict[str, Any] | None:
        caller = required(self.caller)
        if caller.role is Role.PRODUCER:
            caller.require_organisation(Role.PRODUCER, producer_id)
        elif caller.role not in (Role.FINANCE, Role.ADMIN):
            raise Forbidden("only finance staff or the cooperative see its account")
        with self.db.reading() as session:
            account = store.account_of(session, producer_id)
            if account is None:
                return None
            last = session.scalars(select(store.BankPayoutRow).where(
                store.BankPayoutRow.stripe_account_id == account.stripe_account_id)
                .order_by(store.BankPayoutRow.updated_at.desc()).limit(1)).first()
            return {"producer_id": producer_id, "stripe_account_id": account.stripe_account_id,
                    "transfers_active": account.transfers_active,
                    "last_bank_payout": None if last is None else {
                        "id": last.id, "amount": format_money(last.amount_cents),
                        "currency": last.currency, "status": last.status,
                        "failure_code": last.failure_code}}

    @rpc(expected_exceptions=VetaError)
    def set_buyer_funding(self, data: dict[str, Any]) -> dict[str, Any]:
        """The buyer's saved payment method, charged off-session for each premium."""
        caller = required(self.caller)
        command = parse(BuyerFunding, data)
        if caller.role is not Role.FINANCE:
            caller.require_organisation(Role.BUYER, command.buyer_id)
        with self.db.unit_of_work() as uow:
            row = uow.session.get(store.FundingRow, command.buyer_id)
            if row is None:
                row = store.FundingRow(buyer_id=command.buyer_id)
                uow.session.add(row)
            row.payment_method, row.customer_id = command.payment_method, command.customer_id
            row.updated_by, row.updated_at = caller.subject, self.clock.now()
        return {"buyer_id": command.buyer_id, "payment_method": command.payment_method}

    # --- reconciliation ---------------------------------------------------------------------

    @rpc(expected_exceptions=VetaError)
    def run_reconciliation(self, data: dict[str, Any]) -> dict[str, Any]:
        """Match the period's ledger against Stripe's balance transactions (API pages).
        Runs to the end here; a caller that stops waiting finds the run stored later."""
        caller = finance(self.caller)
        command = parse(RunReconciliation, data)
        period = domain.parse_period(command.period)
        api = self.stripe.api
        run_id = runs.start(self.db, period, command.source, caller.subject, self.clock.now())
        runs.execute(self.db, run_id, period, runs.api_side(api, period), self.clock.now)
        return self.get_reconciliation(run_id)

    @rpc(expected_exceptions=VetaError)
    def list_reconciliations(self, period: str | None = None, first: int | None = None,
                             after: str | None = None) -> dict[str, Any]:
        staff(self.caller)
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.page_of_runs(session, period, size + 1, decode_cursor(after))
        return {"items": [{"cursor": encode_cursor(row.started_at, row.id),
                           "node": run_view(row)} for row in rows[:size]],
                "has_next_page": len(rows) > size}

    @rpc(expected_exceptions=VetaError)
    def get_reconciliation(self, run_id: str) -> dict[str, Any]:
        staff(self.caller)
        with self.db.reading() as session:
            row = session.get(store.RunRow, run_id)
            if row is None:
                raise NotFound("no such reconciliation", field="id")
            return run_view(row)

    @rpc(expected_exceptions=VetaError)
    def reconciliation_lines(self, run_id: str, first: int | None = None,
                             after: str | None = None, status: list[str] | None = None,
                             unresolved_only: bool = False) -> dict[str, Any]:
        staff(self.caller)
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.lines_page(session, run_id, size + 1, decode_line_cursor(after),
                                    status, unresolved_only)
            notes = store.notes_of(session, run_id, [row.seq for row in rows[:size]])
        return {"items": [{"cursor": line_cursor(row.seq), "node": line_view(row, notes)}
                          for row in rows[:size]],
                "has_next_page": len(rows) > size}

    @rpc(expected_exceptions=VetaError)
    def reconciliation_csv(self, run_id: str) -> str:
        staff(self.caller)
        return runs.export_text(self.db, run_id)

    @rpc(expected_exceptions=VetaError)
    def reconciliation_chart(self, run_id: str) -> str:
        """Premiums paid per producer and month over the run's period, as SVG."""
        run = self.get_reconciliation(run_id)
        return runs.chart(self.db, domain.parse_period(run["period"]))

    @rpc(expected_exceptions=VetaError)
    def resolve_discrepancy(self, data: dict[str, Any]) -> dict[str, Any]:
        caller = finance(self.caller)
        command = parse(ResolveDiscrepancy, data)
        run_id, seq = split_line_id(command.line_id)
        line = runs.resolve(self.db, run_id, seq, command.note, caller.subject,
                            self.clock.now())
        with self.db.reading() as session:
            return line_view(line, store.notes_of(session, run_id, [seq]))

    # --- what other services tell us ----------------------------------------------------------

    @consumes("orders", OrderDelivered.type)
    def on_order_delivered(self, payload: dict[str, Any]) -> None:
        event = OrderDelivered.from_envelope(payload)
        now = self.clock.now()
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            exists = uow.session.scalar(select(store.ObligationRow.id)
                                        .where(store.ObligationRow.order_id == event.order_id))
            if exists is not None:
                return
            obligation = domain.obligation_for(
                obligation_id=str(uuid.uuid4()), order_id=event.order_id,
                producer_id=event.producer_id, buyer_id=event.buyer_id,
                standard=event.standard, fine_mg=grams_to_mg(event.delivered_fine_weight),
                delivered_on=event.delivered_on, rates=store.rates(uow.session))
            if obligation is None:
                return
            row = store.ObligationRow.from_domain(obligation, now)
            uow.session.add(row)
            uow.session.flush()
            store.record_changes(uow.session, [domain.Change(
                obligation.id, "CALCULATED", None, obligation.status, "orders", now,
                f"delivered {format_grams(obligation.fine_mg)} g fine on "
                f"{obligation.delivered_on} at USD {obligation.usd_per_kg}/kg")])
            uow.raise_event(PremiumObligationCreated(
                obligation_id=obligation.id, order_id=obligation.order_id,
                producer_id=obligation.producer_id, standard=obligation.standard,
                fine_weight=format_grams(obligation.fine_mg),
                usd_per_kg=str(obligation.usd_per_kg),
                amount=format_money(obligation.amount_cents), currency=obligation.currency))
            certificates = store.certificates_of(uow.session, event.producer_id)
            if domain.is_blocked(certificates, event.standard, now.date()):
                since = max(c.changed_at for c in certificates if c.standard is event.standard)
                transfers.save(uow, row, obligation, now, obligation.hold(
                    now, f"{event.standard} certification is not good", since))

    @consumes("certification", ProducerRegistered.type)
    def on_producer_registered(self, payload: dict[str, Any]) -> None:
        self._producer(ProducerRegistered.from_envelope(payload))

    @consumes("certification", ProducerUpdated.type)
    def on_producer_updated(self, payload: dict[str, Any]) -> None:
        self._producer(ProducerUpdated.from_envelope(payload))

    def _producer(self, event: ProducerRegistered | ProducerUpdated) -> None:
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.ProducerRow, event.producer_id, with_for_update=True)
            if row is None:
                row = store.ProducerRow(id=event.producer_id)
                uow.session.add(row)
            elif (event.version is not None and row.version is not None
                  and event.version <= row.version) or (
                    event.version is None and event.occurred_at <= row.changed_at):
                return  # an older name arriving late
            row.name, row.country = event.name, event.country
            row.version, row.changed_at = event.version, event.occurred_at

    @consumes("certification", CertificationGranted.type)
    def on_certification_granted(self, payload: dict[str, Any]) -> None:
        event = CertificationGranted.from_envelope(payload)
        self._certificate(event, domain.CERTIFIED, event.valid_from, event.valid_until)

    @consumes("certification", CertificationSuspended.type)
    def on_certification_suspended(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationSuspended.from_envelope(payload), "SUSPENDED")

    @consumes("certification", CertificationExpired.type)
    def on_certification_expired(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationExpired.from_envelope(payload), "EXPIRED")

    @consumes("certification", CertificationWithdrawn.type)
    def on_certification_withdrawn(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationWithdrawn.from_envelope(payload), "WITHDRAWN")

    @consumes("certification", CertificationReinstated.type)
    def on_certification_reinstated(self, payload: dict[str, Any]) -> None:
        self._changed(CertificationReinstated.from_envelope(payload), domain.CERTIFIED)

    def _changed(self, event: CertificationChanged, status: str) -> None:
        self._certificate(event, status, event.valid_from, event.valid_until)

    def _certificate(self, event: CertificationGranted | CertificationChanged, status: str,
                     valid_from: date | None, valid_until: date | None) -> None:
        """Keep the certificate's newest status, then hold or free the producer's payouts
        under that standard accordingly."""
        with self.db.unit_of_work() as uow:
            if not uow.first_time(event):
                return
            row = uow.session.get(store.CertificateRow, event.certification_id,
                                  with_for_update=True)
            if row is None:
                row = store.CertificateRow(
                    certification_id=event.certification_id, producer_id=event.producer_id,
                    standard=str(event.standard), status=status, version=event.version,
                    changed_at=event.occurred_at)
                uow.session.add(row)
            elif row.to_domain().is_older_than(event.version, event.occurred_at):
                row.status, row.version, row.changed_at = status, event.version, \
                    event.occurred_at
            else:
                log.info("ignoring %s for %s: already have a newer status", event.type,
                         event.certification_id)
                return
            row.valid_from = valid_from or row.valid_from
            row.valid_until = valid_until or row.valid_until
            uow.session.flush()
            reason = event.type.replace("_", " ")
            if isinstance(event, CertificationChanged) and event.reason:
                reason += f": {event.reason}"
            self._apply_holds(uow, event.producer_id, event.standard, reason,
                              event.occurred_at)

    def _apply_holds(self, uow: UnitOfWork, producer_id: str, standard: Standard,
                     reason: str, since: Any) -> None:
        now = self.clock.now()
        certificates = store.certificates_of(uow.session, producer_id)
        if domain.is_blocked(certificates, standard, now.date()):
            statuses: tuple[str, ...] = ("CALCULATED", "FUNDED", "APPROVED", "FAILED")
            for row in store.holdable(uow.session, producer_id, str(standard), statuses):
                ob = row.to_domain()
                transfers.save(uow, row, ob, now, ob.hold(now, reason, since))
        else:
            for row in store.holdable(uow.session, producer_id, str(standard), ("ON_HOLD",)):
                ob = row.to_domain()
                transfers.save(uow, row, ob, now, ob.lift_hold(now, reason))

    # --- Stripe ---------------------------------------------------------------------------------

    @http("POST", "/stripe/webhooks")
    def stripe_webhook(self, request: Request) -> Response:
        """Stripe's events, verified on the raw body: forged or stale → 400, nothing done."""
        secret = self.settings.webhook_secret
        if not secret:
            log.error("a Stripe webhook arrived but STRIPE.webhook_secret is not set")
            return Response("webhooks are not configured\n", status=503)
        try:
            event = verified_event(request.get_data(cache=False),
                                   request.headers.get("Stripe-Signature"), secret)
        except Exception as error:  # SignatureVerificationError, or a body that is not JSON
            log.warning("refused a webhook: %s", error)
            return Response("signature verification failed\n", status=400)
        with self.db.unit_of_work() as uow:
            applied = webhooks.apply(uow, event, self.clock.now())
        return Response("applied\n" if applied else "already applied\n", status=200)

    @sweep(interval=2.0)
    def move_money(self) -> None:
        """Ask Stripe for accounts premiums wait on, collect premiums not yet asked for, and
        send (or finish sending) transfers."""
        if not self.stripe.configured:
            return
        try:
            transfers.refresh_accounts(self.db, self.stripe, self.settings, self.clock.now)
        except Exception:  # the premiums that can move still move
            log.exception("asking Stripe for waiting accounts failed; the next sweep tries")
        batch = self.settings.batch
        with self.db.reading() as session:
            funding = store.due_for_funding(session, batch)
            due = store.due_for_transfer(session, self.clock.now(), batch)
        steps: list[tuple[str, Any]] = [
            (o, lambda o=o: transfers.fund(self.db, self.stripe, o, self.clock.now))
            for o in funding]
        steps += [(o, lambda o=o: transfers.transfer(self.db, self.stripe, self.settings, o,
                                                     self.clock.now)) for o in due]
        for obligation_id, step in steps:
            try:
                step()
            except Exception:  # one obligation's trouble must not stop the others
                log.exception("moving money for %s failed; the next sweep tries again",
                              obligation_id)
