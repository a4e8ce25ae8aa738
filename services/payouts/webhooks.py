"""What each Stripe event does to payouts' records, applied once per event id.

The caller has verified the signature; here the event is recorded in `stripe_events` in the
same unit of work as its effect, so a redelivered event changes nothing. An event about
something Veta does not know is recorded and ignored: retrying it could never succeed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.payouts import store, transfers
from services.payouts.stripe_api import timestamp
from shared.persistence import UnitOfWork

log = logging.getLogger(__name__)


def apply(uow: UnitOfWork, event: dict[str, Any], at: datetime) -> bool:
    """Apply a verified event; False if it had already been applied."""
    if not store.record_stripe_event(uow.session, event["id"], event["type"], at):
        log.info("stripe event %s already applied", event["id"])
        return False
    handler = HANDLERS.get(event["type"])
    if handler is not None:
        handler(uow, event, (event.get("data") or {}).get("object") or {}, at)
    return True


def _obligation(uow: UnitOfWork, event: dict[str, Any],
                obj: dict[str, Any]) -> store.ObligationRow | None:
    obligation_id = (obj.get("metadata") or {}).get("obligation_id")
    row = store.lock_obligation(uow.session, obligation_id) if obligation_id else None
    if row is None:
        log.warning("stripe event %s (%s) names no obligation Veta knows (%s)", event["id"],
                    event["type"], obligation_id)
    return row


def transfer_created(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                     at: datetime) -> None:
    row = _obligation(uow, event, obj)
    if row is not None:
        transfers.apply_transfer(uow, row, obj, at, actor="stripe")


def transfer_reversed(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                      at: datetime) -> None:
    row = _obligation(uow, event, obj)
    if row is None:
        return
    if row.transfer_id is None:
        transfers.apply_transfer(uow, row, obj, at, actor="stripe")
    elif row.transfer_id == obj.get("id"):
        transfers.apply_reversals(uow, row, obj, at)
    else:
        log.error("transfer %s reversed, but obligation %s was paid by %s", obj.get("id"),
                  row.id, row.transfer_id)


def payment_succeeded(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                      at: datetime) -> None:
    row = _obligation(uow, event, obj)
    if row is None:
        return
    ob = row.to_domain()
    change = ob.fund(str(obj["id"]), obj.get("latest_charge"),
                     timestamp(event.get("created")) or at)
    transfers.save(uow, row, ob, at, change)


def payment_failed(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                   at: datetime) -> None:
    row = _obligation(uow, event, obj)
    if row is None:
        return
    ob = row.to_domain()
    if not ob.payment_intent_id:
        ob.record_payment_intent(str(obj["id"]))
    error = obj.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or "payment_failed"
    transfers.save(uow, row, ob, at, ob.funding_failed(
        code, error.get("message") or "the buyer's payment failed", at))


def bank_payout(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                at: datetime) -> None:
    """A cooperative's payout to its bank (events of its connected account)."""
    account = event.get("account") or obj.get("_account") or ""
    owner = uow.session.query(store.AccountRow).filter_by(stripe_account_id=account).first()
    row = uow.session.get(store.BankPayoutRow, obj["id"])
    if row is None:
        row = store.BankPayoutRow(id=obj["id"], stripe_account_id=account)
        uow.session.add(row)
    row.producer_id = owner.producer_id if owner else None
    row.amount_cents, row.currency = int(obj["amount"]), str(obj["currency"])
    row.status = str(obj.get("status") or event["type"].split(".")[-1])
    row.failure_code, row.failure_message = obj.get("failure_code"), obj.get("failure_message")
    row.updated_at = at
    if row.status == "failed":
        log.warning("payout %s to the bank of %s failed: %s", obj["id"], account,
                    row.failure_code)


def account_updated(uow: UnitOfWork, event: dict[str, Any], obj: dict[str, Any],
                    at: datetime) -> None:
    # The sweep applies what it asks Stripe of an account the same way (transfers.py).
    transfers.apply_account(uow, obj, at)


HANDLERS = {
    "transfer.created": transfer_created,
    "transfer.reversed": transfer_reversed,
    "payment_intent.succeeded": payment_succeeded,
    "payment_intent.payment_failed": payment_failed,
    "payout.paid": bank_payout,
    "payout.failed": bank_payout,
    "account.updated": account_updated,
}
