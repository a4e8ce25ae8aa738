"""Moving money: collect a premium from the buyer, transfer it to the cooperative, reverse it.

Each step commits its intent before calling Stripe and records Stripe's answer in a second
unit of work, so a crash between the two leaves a SUBMITTED obligation that the sweep finds
and finishes by sending the same request under the same idempotency key (or, once Stripe may
have forgotten that key, by finding at Stripe the transfer it made).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import stripe

from services.payouts import domain, store
from services.payouts.config import PayoutSettings
from services.payouts.domain import Change, Obligation, ObligationStatus
from services.payouts.events import (
    PremiumApproved,
    PremiumEvent,
    PremiumFunded,
    PremiumHoldPlaced,
    PremiumPaymentFailed,
    PremiumReleased,
    PremiumReversed,
    PremiumTransferred,
)
from services.payouts.stripe_api import Refusal, StripeAccess, refusal, timestamp
from shared.errors import Conflict, NotFound, Unavailable
from shared.persistence import ServiceDatabase, UnitOfWork
from shared.values import format_money

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def premium_event(cls: type[PremiumEvent], ob: Obligation, **facts: Any) -> PremiumEvent:
    return cls(obligation_id=ob.id, order_id=ob.order_id, producer_id=ob.producer_id,
               standard=ob.standard, amount=format_money(ob.amount_cents),
               currency=ob.currency, **facts)


def announce(uow: UnitOfWork, ob: Obligation, change: Change | None,
             request: domain.ReversalRequest | None = None) -> None:
    """Raise the event a change stands for, if it is one the other services hear of;
    `request` is finance's, when a reversal was asked for in Veta."""
    if change is None:
        return
    if change.action == "FUNDED" and change.to_status is ObligationStatus.FUNDED:
        uow.raise_event(premium_event(PremiumFunded, ob,
                                      payment_intent_id=ob.payment_intent_id or ""))
    elif change.action == "APPROVED":
        uow.raise_event(premium_event(PremiumApproved, ob, approved_by=list(ob.approvals)))
    elif change.action == "PAID":
        uow.raise_event(premium_event(PremiumTransferred, ob, transfer_id=ob.transfer_id or ""))
    elif change.action in ("FUNDING_FAILED", "TRANSFER_FAILED"):
        uow.raise_event(premium_event(
            PremiumPaymentFailed, ob, stage=str(ob.failure_stage), code=ob.failure_code or "",
            reason=ob.failure_message or "", retryable=ob.retryable))
    elif change.action == "REVERSED":
        uow.raise_event(premium_event(
            PremiumReversed, ob, transfer_id=ob.transfer_id or "",
            amount_reversed=format_money(ob.reversed_cents),
            requested_by=request.actor if request else None,
            reason=request.reason if request else None))
    elif change.action == "HELD":
        uow.raise_event(premium_event(PremiumHoldPlaced, ob, reason=change.reason or ""))
    elif change.action in ("HOLD_LIFTED", "HOLD_RELEASED"):
        uow.raise_event(premium_event(PremiumReleased, ob, reason=change.reason or "",
                                      released_by=change.actor))


def save(uow: UnitOfWork, row: store.ObligationRow, ob: Obligation, at: datetime,
         *changes: Change | None, request: domain.ReversalRequest | None = None) -> None:
    row.update_from(ob, at)
    store.record_changes(uow.session, list(changes))
    for change in changes:
        announce(uow, ob, change, request)


# --- funding -----------------------------------------------------------------------------------

def fund(db: ServiceDatabase, access: StripeAccess, obligation_id: str, now: Clock) -> None:
    """Ask the buyer's payment for the premium: a PaymentIntent per order (transfer_group =
    the order), confirmed off-session with the buyer's saved payment method if there is one,
    or left for the buyer to pay. Success arrives as payment_intent.succeeded."""
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None or row.status != ObligationStatus.CALCULATED:
            return
        funding = uow.session.get(store.FundingRow, row.buyer_id)
        payment_method = funding.payment_method if funding else None
        existing, attempt = row.payment_intent_id, row.funding_attempts + 1
        params: dict[str, Any] = {
            "amount": row.amount_cents, "currency": row.currency.lower(),
            "transfer_group": row.order_id,
            "description": f"Certification premium ({row.standard}) on order {row.order_id}",
            "metadata": {"obligation_id": row.id, "order_id": row.order_id,
                         "buyer_id": row.buyer_id, "producer_id": row.producer_id}}
        if funding and funding.customer_id:
            params["customer"] = funding.customer_id
        if payment_method:
            params.update(payment_method=payment_method, confirm=True, off_session=True)
        if existing:
            if not payment_method:
                return  # the buyer pays the open intent themselves
            row.funding_attempts = attempt
    try:
        if existing:
            intent = access.api.confirm_payment_intent(
                existing, payment_method, domain.funding_confirm_key(obligation_id, attempt))
        else:
            intent = access.api.create_payment_intent(params, domain.funding_key(obligation_id))
    except stripe.CardError as declined:
        intent_id = _intent_of(declined) or existing
        _record_funding(db, obligation_id, intent_id, now(), declined.code or "card_declined",
                        declined.user_message or str(declined))
        return
    except Exception as error:  # recorded below when definitive; otherwise the sweep retries
        why = refusal(error)
        log.warning("funding %s: %s %s", obligation_id, why.code, why.message)
        if why.definitive:
            _record_funding(db, obligation_id, existing, now(), why.code, why.message)
        return
    _record_funding(db, obligation_id, str(intent["id"]), now(), None, None, intent)


def _intent_of(error: stripe.CardError) -> str | None:
    body: dict[str, Any] = error.json_body if isinstance(error.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent") or {}
    return intent.get("id") if isinstance(intent, dict) else None


def _record_funding(db: ServiceDatabase, obligation_id: str, intent_id: str | None,
                    at: datetime, code: str | None, message: str | None,
                    intent: dict[str, Any] | None = None) -> None:
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None:
            return
        ob = row.to_domain()
        if intent_id and not ob.payment_intent_id:
            ob.record_payment_intent(intent_id)
        change = ob.funding_failed(code, message or "", at) if code else None
        if intent_id and intent is not None and intent.get("status") == "succeeded":
            # Stripe's answer already says the buyer paid: fund now rather than depend on
            # the webhook alone (a webhook lost for good would leave the premium unfunded).
            # `fund` is idempotent, so the webhook arriving later changes nothing.
            change = ob.fund(intent_id, intent.get("latest_charge"), at)
        save(uow, row, ob, at, change)


# --- transfers ---------------------------------------------------------------------------------

def transfer(db: ServiceDatabase, access: StripeAccess, settings: PayoutSettings,
             obligation_id: str, now: Clock) -> None:
    """Claim, send, record. Safe to call from any number of replicas at once."""
    claimed = _claim(db, settings, obligation_id, now())
    if claimed is None:
        return
    ob, resend = claimed
    try:
        made = _transfer_made_before(access, settings, ob, resend, now())
    except Exception as error:  # not Stripe's answer to the transfer: never kept as one
        _record_look_up_failure(db, settings, obligation_id, refusal(error), now())
        return
    if made is None:
        try:
            made = access.api.create_transfer(_transfer_params(ob),
                                              domain.transfer_key(ob.id, ob.attempt))
        except Exception as error:  # every outcome is recorded, none lost
            _record_refusal(db, settings, obligation_id, refusal(error), now())
            return
    else:
        log.info("obligation %s: Stripe already made transfer %s, adopted instead of sending "
                 "attempt %s", ob.id, made.get("id"), ob.attempt)
    confirm_transfer(db, obligation_id, made, now(), actor="payouts")


def _transfer_made_before(access: StripeAccess, settings: PayoutSettings, ob: Obligation,
                          resend: bool, at: datetime) -> dict[str, Any] | None:
    """The transfer an earlier send made for the obligation, found among its order's
    transfers at Stripe (every page), when sending now could make a second one: under a new
    key, or under a key Stripe may have forgotten. None if there is no need to look (the key
    replays) or Stripe made none. It is recorded like Stripe's answer or its webhook."""
    if not ob.must_look_before_sending(resend, at, settings.idempotency_window):
        return None
    found = access.api.transfers_of(ob.order_id, ob.id)
    return found[0] if found else None


def _transfer_params(ob: Obligation) -> dict[str, Any]:
    """Built only from what the obligation stored at its claim, so that a re-send under the
    same key is byte-for-byte the same request (Stripe refuses a key reused otherwise)."""
    return {"amount": ob.amount_cents, "currency": ob.currency.lower(),
            "destination": ob.destination, "transfer_group": ob.order_id,
            "description": f"Certification premium ({ob.standard}) on order {ob.order_id}",
            "metadata": {"obligation_id": ob.id, "order_id": ob.order_id,
                         "producer_id": ob.producer_id}}


def _claim(db: ServiceDatabase, settings: PayoutSettings, obligation_id: str,
           at: datetime) -> tuple[Obligation, bool] | None:
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None:
            return None
        ob = row.to_domain()
        if ob.status is ObligationStatus.SUBMITTED:
            if ob.lease_until is not None and ob.lease_until > at:
                return None  # someone else is sending it right now
            ob.renew_lease(at, settings.lease)
            save(uow, row, ob, at)
            return ob, True
        due = ob.status is ObligationStatus.APPROVED or (
            ob.status is ObligationStatus.FAILED and ob.retryable
            and ob.failure_stage is domain.FailureStage.TRANSFER
            and (ob.next_attempt_at is None or ob.next_attempt_at <= at))
        if not due:
            return None
        account = store.account_of(uow.session, ob.producer_id)
        if account is None or not account.transfers_active:
            wait = domain.backoff(ob.failures + 1, settings.retry_base_seconds,
                                  settings.retry_cap_seconds)
            save(uow, row, ob, at, ob.wait_for_account(at, wait))
            return None
        change = ob.submit(account.stripe_account_id, at, settings.lease)
        save(uow, row, ob, at, change)
        return ob, False


# --- connected accounts ------------------------------------------------------------------------

def refresh_accounts(db: ServiceDatabase, access: StripeAccess, settings: PayoutSettings,
                     now: Clock) -> None:
    """Ask Stripe for each connected account that approved premiums wait on and that Veta
    does not know to take transfers: its account.updated may have been lost for good.

    Each account is asked at most once per `account_refresh_seconds`, however many premiums
    wait on it and however many replicas sweep; the time is claimed before Stripe is asked,
    so an error (logged) is asked about again after the same interval, never in a loop.
    """
    at = now()
    checked_before = at - settings.account_refresh
    with db.reading() as session:
        waiting = store.waiting_accounts(session, checked_before, settings.batch)
    for account_id in waiting:
        with db.unit_of_work() as uow:
            claimed = store.claim_account_check(uow.session, account_id, at, checked_before)
        if not claimed:
            continue  # another replica asked
        try:
            account = access.api.retrieve_account(account_id)
        except Exception as error:  # the next interval asks again; the sweep goes on
            why = refusal(error)
            log.warning("asking Stripe for account %s: %s %s (asked again in %s s)",
                        account_id, why.code, why.message, settings.account_refresh_seconds)
            continue
        with db.unit_of_work() as uow:
            apply_account(uow, account, now())


def apply_account(uow: UnitOfWork, account: dict[str, Any], at: datetime) -> None:
    """What Stripe says of a connected account, from account.updated or from asking Stripe:
    whether it takes transfers. Premiums waiting on its onboarding are then due at once,
    not after the backoff they were waiting out."""
    row = uow.session.query(store.AccountRow).filter_by(
        stripe_account_id=account.get("id")).first()
    if row is None:
        return
    active = (account.get("capabilities") or {}).get("transfers") == "active"
    if active and not row.transfers_active:
        store.wake_waiting(uow.session, row.producer_id, at)
    row.transfers_active = active
    row.updated_at = at


def _record_refusal(db: ServiceDatabase, settings: PayoutSettings, obligation_id: str,
                    why: Any, at: datetime) -> None:
    log.warning("transfer for %s: %s (%s) %s", obligation_id, why.code,
                "definitive" if why.definitive else "unanswered", why.message)

    def change(ob: Obligation, wait: timedelta) -> Change | None:
        if why.definitive:
            return ob.transfer_failed(why.code, why.message, why.retryable, at, wait)
        return ob.transfer_unanswered(why.code, why.message, at, wait)

    _while_submitted(db, settings, obligation_id, at, change)


def _record_look_up_failure(db: ServiceDatabase, settings: PayoutSettings, obligation_id: str,
                            why: Refusal, at: datetime) -> None:
    """Stripe did not list the order's transfers: nothing was sent, and whatever the error,
    it says nothing of the transfer (never a refusal that would allow a new key). Still
    SUBMITTED, looked for again after the backoff."""
    log.warning("listing the transfers of obligation %s: %s %s (nothing sent)", obligation_id,
                why.code, why.message)
    _while_submitted(db, settings, obligation_id, at, lambda ob, wait: ob.transfer_unanswered(
        why.code, f"listing the order's transfers: {why.message}", at, wait,
        then="nothing sent; will look again before sending"))


def _while_submitted(db: ServiceDatabase, settings: PayoutSettings, obligation_id: str,
                     at: datetime, change: Callable[[Obligation, timedelta], Change | None]
                     ) -> None:
    """Apply `change(obligation, backoff)` to an obligation still SUBMITTED, else nothing."""
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None or row.status != ObligationStatus.SUBMITTED:
            return
        ob = row.to_domain()
        wait = domain.backoff(ob.failures + 1, settings.retry_base_seconds,
                              settings.retry_cap_seconds)
        save(uow, row, ob, at, change(ob, wait))


def confirm_transfer(db: ServiceDatabase, obligation_id: str, made: dict[str, Any],
                     at: datetime, actor: str) -> None:
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None:
            return
        apply_transfer(uow, row, made, at, actor)


def apply_transfer(uow: UnitOfWork, row: store.ObligationRow, made: dict[str, Any],
                   at: datetime, actor: str) -> None:
    ob = row.to_domain()
    created = timestamp(made.get("created")) or at
    try:
        change = ob.transfer_created(str(made["id"]), created, at, actor=actor)
    except Conflict:
        # A second transfer for one obligation: keep the first, let reconciliation show it.
        log.error("obligation %s: Stripe reports a second transfer %s", ob.id, made["id"])
        return
    save(uow, row, ob, at, change)
    if made.get("amount_reversed"):
        apply_reversals(uow, row, made, at)


def apply_reversals(uow: UnitOfWork, row: store.ObligationRow, made: dict[str, Any],
                    at: datetime) -> None:
    """Record the reversals a transfer object lists (Stripe lists the newest first)."""
    listed = (made.get("reversals") or {}).get("data") or []
    for reversal in reversed(listed):
        record_reversal(uow, row, reversal, str(made["id"]), at)
    stripe_total = int(made.get("amount_reversed") or 0)
    if stripe_total > row.reversed_cents:
        # Only reversals Veta holds by their Stripe id are counted (so none twice); Stripe
        # lists ten, and reconciliation shows the others as missing in Veta.
        log.error("transfer %s: Stripe has %s cents reversed, obligation %s records %s",
                  made["id"], stripe_total, row.id, row.reversed_cents)


def record_reversal(uow: UnitOfWork, row: store.ObligationRow, reversal: dict[str, Any],
                    transfer_id: str, at: datetime, requested_as: str | None = None) -> None:
    """Record one Stripe reversal, once, in the name of the request that asked for it (the
    idempotency key in its metadata, or `requested_as` when the caller knows it).

    Stripe's reply and its transfer.reversed webhook both come here, in either order, under
    the obligation's lock: the first records the reversal, its history row and the running
    total; the second finds the reversal by its Stripe id and changes nothing.
    """
    if uow.session.get(store.ReversalRow, reversal["id"]) is not None:
        return
    uow.session.add(store.ReversalRow(
        id=reversal["id"], obligation_id=row.id, transfer_id=transfer_id,
        amount_cents=int(reversal["amount"]), currency=str(reversal["currency"]),
        created_at=timestamp(reversal.get("created")) or at))
    key = requested_as or (reversal.get("metadata") or {}).get("idempotency_key")
    request = store.reversal_request(uow.session, key) if key else None
    if request is not None and request.obligation_id != row.id:
        request = None
    if request is not None:
        request.reversal_id, request.reversed_at = reversal["id"], at
    uow.session.flush()
    ob = row.to_domain()
    # Made in Stripe's dashboard, no request names it: Stripe is all Veta can name.
    actor, why = (request.actor, request.reason) if request is not None else ("stripe", None)
    change = ob.reversed(store.reversed_total(uow.session, row.id), at, actor, why)
    save(uow, row, ob, at, change,
         request=request.to_domain() if request is not None else None)


def reverse(db: ServiceDatabase, access: StripeAccess, settings: PayoutSettings,
            obligation_id: str, amount_cents: int | None, actor: str, reason: str,
            now: Clock, client_key: str | None = None) -> None:
    """Take some or all of a paid premium back from the cooperative's account.

    The request is committed before Stripe is asked, and the reversal carries its key in
    its metadata, so Stripe's webhook may arrive before the reply (or instead of it) and
    still record who asked and why. A request sent again under the caller's `client_key`
    is the first one: its outcome if it has one, else the same call to Stripe again (or,
    once Stripe may have forgotten the key, the reversal found under it at Stripe).
    """
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        if row is None:
            raise NotFound("no such payout", field="payout_id")
        kept = (store.requested_reversal(uow.session, obligation_id, client_key)
                if client_key is not None else None)
        if kept is not None:
            # Found by the caller's key, not by the amount: the reversed total may have
            # moved since (the webhook recorded it while the answer was lost).
            kept.asked_again(amount_cents, reason)
            if kept.reversal_id is not None:
                return
            if kept.refusal is not None:
                raise Conflict(f"Stripe did not reverse it: {kept.refusal} (its answer to "
                               "this request; a new one can try again)", field="payout_id")
            request = kept
        else:
            request = store.keep_reversal_request(uow.session, row.to_domain().request_reversal(
                amount_cents, actor, reason, now(), client_key))
    try:
        made = _reversal_made_before(access, settings, request, now())
    except Exception as error:  # not Stripe's answer to the request: never kept as one
        why = refusal(error)
        log.warning("listing the reversals of %s: %s %s", request.transfer_id, why.code,
                    why.message)
        raise Unavailable(f"Stripe did not say whether it already reversed it: {why.message} "
                          "(asking again cannot reverse it twice)", field="payout_id") from None
    if made is None:
        try:
            made = access.api.create_reversal(request.transfer_id, request.amount_cents,
                                              reversal_metadata(request),
                                              request.idempotency_key)
        except Exception as error:
            why = refusal(error)
            if why.definitive:
                _record_reversal_refusal(db, request, f"{why.code}: {why.message}")
            if why.definitive:
                raise Conflict(f"Stripe did not reverse it: {why.message}",
                               field="payout_id") from None
            # No answer is not a refusal: the same request may be sent again, safely.
            raise Unavailable(f"Stripe did not reverse it: {why.message} (asking again "
                              "cannot reverse it twice)", field="payout_id") from None
    with db.unit_of_work() as uow:
        row = store.lock_obligation(uow.session, obligation_id)
        assert row is not None
        record_reversal(uow, row, made, request.transfer_id, now(), request.idempotency_key)


def _reversal_made_before(access: StripeAccess, settings: PayoutSettings,
                          request: domain.ReversalRequest, at: datetime) -> dict[str, Any] | None:
    """The reversal Stripe made for a request first sent so long ago that Stripe may have
    forgotten its key (sent again, it would be a second reversal), found by the key its
    metadata carries; None if the request is recent (the key replays) or Stripe made none."""
    if not request.may_be_forgotten(at, settings.idempotency_window):
        return None
    return access.api.reversal_made_under(request.transfer_id, request.idempotency_key)


def reversal_metadata(request: domain.ReversalRequest) -> dict[str, str]:
    """Built only from the stored request, so that asking again is the same request."""
    return {"obligation_id": request.obligation_id, "reason": request.reason[:500],
            "requested_by": request.actor, "idempotency_key": request.idempotency_key}


def _record_reversal_refusal(db: ServiceDatabase, request: domain.ReversalRequest,
                             refusal_text: str) -> None:
    with db.unit_of_work() as uow:
        kept = store.reversal_request(uow.session, request.idempotency_key)
        if kept is not None and kept.reversal_id is None:
            kept.refusal = refusal_text
