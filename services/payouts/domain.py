"""Premium rules: the dated rate table, the premium a delivery earns, and the obligation's life.

Pure Python. A premium is the delivered fine weight times the rate in force on the delivery
date, rounded half-even to the cent once, at the end. An obligation then moves CALCULATED →
FUNDED → APPROVED → SUBMITTED → PAID, or to FAILED, REVERSED or ON_HOLD; every move is
guarded here and returns the history entry it adds. Times are always passed in.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from shared.errors import Conflict, Forbidden, InvalidInput
from shared.values import Standard, format_money, premium_cents


class ObligationStatus(enum.StrEnum):
    CALCULATED = "CALCULATED"
    FUNDED = "FUNDED"
    APPROVED = "APPROVED"
    SUBMITTED = "SUBMITTED"
    PAID = "PAID"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    ON_HOLD = "ON_HOLD"


class FailureStage(enum.StrEnum):
    """Which money movement failed: collecting from the buyer, or paying the cooperative."""

    FUNDING = "FUNDING"
    TRANSFER = "TRANSFER"


# Approved, but the cooperative's connected account does not take transfers yet.
NO_CONNECTED_ACCOUNT = "no_connected_account"


@dataclass(frozen=True)
class PremiumRate:
    standard: Standard
    usd_per_kg: Decimal
    effective_from: date


# The published Fairmined premiums; finance extends the table with later rates.
INITIAL_RATES = (
    PremiumRate(Standard.FAIRMINED, Decimal("4000"), date(2014, 1, 1)),
    PremiumRate(Standard.FAIRMINED_ECOLOGICAL, Decimal("6000"), date(2014, 1, 1)),
)


def rate_in_force(rates: list[PremiumRate], standard: Standard, on: date) -> PremiumRate | None:
    """The latest rate for `standard` that took effect on or before `on`; None if there is none."""
    candidates = [r for r in rates if r.standard is standard and r.effective_from <= on]
    return max(candidates, key=lambda r: r.effective_from) if candidates else None


def extend_rates(rates: list[PremiumRate], new: PremiumRate, today: date) -> PremiumRate:
    """A new dated rate, refused if it would rewrite the past or repeat a date.

    Rates take effect today or later: premiums already owed keep the rate they were computed
    at, and a delivery is always priced by a table that was known on its delivery date.
    """
    if new.usd_per_kg < 0:
        raise InvalidInput("a premium rate cannot be negative", field="usd_per_kg")
    if new.usd_per_kg.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput("a rate per kg has at most two decimals (cents)", field="usd_per_kg")
    if new.effective_from < today:
        raise InvalidInput("a new rate takes effect today or later", field="effective_from")
    if any(r.standard is new.standard and r.effective_from == new.effective_from
           for r in rates):
        raise Conflict(f"{new.standard} already has a rate from {new.effective_from}",
                       field="effective_from")
    return new


@dataclass(frozen=True)
class Change:
    """One entry of an obligation's history: who moved it, from what, to what, when and why."""

    obligation_id: str
    action: str
    from_status: ObligationStatus | None
    to_status: ObligationStatus
    actor: str
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class ReversalRequest:
    """Finance asking Stripe to take (some of) a paid premium back: who, how much and why.

    Kept before Stripe is asked, under the request's idempotency key, so that the reversal is
    recorded in its name whichever of Stripe's reply and its webhook arrives first.
    """

    idempotency_key: str  # Stripe's: the key its call is sent (and re-sent) under
    obligation_id: str
    transfer_id: str
    amount_cents: int
    currency: str
    actor: str
    reason: str
    requested_at: datetime
    client_key: str | None = None  # the caller's own key, when it sent one
    whole: bool = False  # asked for all that was left, not for an amount
    reversal_id: str | None = None  # the Stripe reversal that carried it out, once recorded
    refusal: str | None = None  # Stripe's definitive refusal

    def may_be_forgotten(self, at: datetime, window: timedelta) -> bool:
        """Asked for longer ago than `window`: Stripe may have forgotten its key, so the
        same call sent again could make a second reversal instead of replaying the first."""
        return at - self.requested_at > window

    def asked_again(self, amount_cents: int | None, reason: str) -> None:
        """The caller's key sent again must carry the request it first carried: anything
        else is a different reversal, and a key names one request only."""
        asked = None if self.whole else self.amount_cents
        if amount_cents != asked:
            first = "all that was left" if asked is None else format_money(asked)
            raise Conflict(f"this idempotency key was used to reverse {first}; a different "
                           "reversal needs a new key", field="idempotency_key")
        if reason != self.reason:
            raise Conflict("this idempotency key was used with another reason; a different "
                           "reversal needs a new key", field="idempotency_key")


@dataclass
class Obligation:
    id: str
    order_id: str
    producer_id: str
    buyer_id: str
    standard: Standard
    fine_mg: int
    usd_per_kg: Decimal
    amount_cents: int
    currency: str
    delivered_on: date
    status: ObligationStatus = ObligationStatus.CALCULATED
    # Funding: the buyer's payment of the premium (one PaymentIntent per order).
    payment_intent_id: str | None = None
    charge_id: str | None = None
    funded_at: datetime | None = None
    funding_attempts: int = 0
    # Four eyes: who approved, in order.
    approvals: list[str] = field(default_factory=list)
    # The transfer to the cooperative: attempt n is sent under transfer_key(id, n).
    attempt: int = 0
    destination: str | None = None
    transfer_id: str | None = None
    transferred_at: datetime | None = None
    submitted_at: datetime | None = None
    lease_until: datetime | None = None
    # The last failure (or, while SUBMITTED, the last unanswered attempt).
    failure_stage: FailureStage | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    retryable: bool = False
    failures: int = 0
    next_attempt_at: datetime | None = None
    reversed_cents: int = 0
    # A hold remembers where the obligation was, to return there.
    held_from: ObligationStatus | None = None
    hold_reason: str | None = None
    held_at: datetime | None = None
    hold_released_at: datetime | None = None
    paid_at: datetime | None = None

    # --- moves ----------------------------------------------------------------------------

    def _move(self, to: ObligationStatus, action: str, actor: str, at: datetime,
              reason: str | None = None) -> Change:
        before, self.status = self.status, to
        return Change(self.id, action, before, to, actor, at, reason)

    def _refuse(self, action: str, *allowed: ObligationStatus) -> None:
        if self.status not in allowed:
            raise Conflict(f"a payout that is {self.status} cannot be {action}", field="status")

    @property
    def is_funded(self) -> bool:
        return self.funded_at is not None

    def record_payment_intent(self, payment_intent_id: str) -> None:
        self.payment_intent_id = payment_intent_id

    def fund(self, payment_intent_id: str, charge_id: str | None, at: datetime) -> Change | None:
        """The buyer's payment succeeded. None if it was already known (a repeated webhook)."""
        if self.is_funded:
            return None
        self.payment_intent_id = payment_intent_id
        self.charge_id = charge_id
        self.funded_at = at
        if self.status is ObligationStatus.ON_HOLD:
            if self.held_from in (ObligationStatus.CALCULATED, ObligationStatus.FAILED):
                self.held_from = ObligationStatus.FUNDED
            return Change(self.id, "FUNDED", self.status, self.status, "stripe", at,
                          "the buyer's payment succeeded while on hold")
        if self.status is ObligationStatus.CALCULATED or (
                self.status is ObligationStatus.FAILED
                and self.failure_stage is FailureStage.FUNDING):
            self._clear_failure()
            return self._move(ObligationStatus.FUNDED, "FUNDED", "stripe", at,
                              "the buyer's payment succeeded")
        # Funding recorded late (the obligation moved on): keep the fact, not a new state.
        return Change(self.id, "FUNDED", self.status, self.status, "stripe", at,
                      "the buyer's payment succeeded")

    def funding_failed(self, code: str, message: str, at: datetime) -> Change | None:
        """The buyer's payment was declined: FAILED until someone retries it."""
        if self.is_funded or self.status not in (ObligationStatus.CALCULATED,
                                                 ObligationStatus.FAILED):
            return None
        if (self.status is ObligationStatus.FAILED and self.failure_code == code
                and self.failure_stage is FailureStage.FUNDING):
            return None
        self.failure_stage, self.failure_code, self.failure_message = (
            FailureStage.FUNDING, code, message)
        # A declined card is not retried by itself: the buyer must pay another way first.
        self.retryable, self.next_attempt_at = False, None
        self.failures += 1
        return self._move(ObligationStatus.FAILED, "FUNDING_FAILED", "stripe", at,
                          f"{code}: {message}")

    def approvals_needed(self, four_eyes_threshold_cents: int) -> int:
        return 2 if self.amount_cents > four_eyes_threshold_cents else 1

    def approve(self, actor: str, at: datetime, four_eyes_threshold_cents: int,
                note: str | None = None) -> Change:
        """Record a finance approval; above the threshold a second, different person is
        needed. Whoever asked (the first approver) cannot also give the second approval."""
        self._refuse("approved", ObligationStatus.FUNDED)
        if actor in self.approvals:
            raise Forbidden("you already approved this payout: a second finance user must "
                            "approve it", field="payout_id")
        self.approvals.append(actor)
        needed = self.approvals_needed(four_eyes_threshold_cents)
        if len(self.approvals) < needed:
            return Change(self.id, "APPROVAL_REQUESTED", self.status, self.status, actor, at,
                          note or f"first of {needed} approvals")
        return self._move(ObligationStatus.APPROVED, "APPROVED", actor, at, note)

    def reject(self, actor: str, at: datetime, reason: str) -> Change:
        """Refuse the payout as it stands: approvals are voided and it waits in FUNDED
        (or CALCULATED if the buyer has not paid) for a fresh decision."""
        self._refuse("rejected", ObligationStatus.CALCULATED, ObligationStatus.FUNDED,
                     ObligationStatus.APPROVED, ObligationStatus.FAILED)
        if self.status is ObligationStatus.FAILED and self.failure_stage is FailureStage.FUNDING:
            raise Conflict("the buyer has not paid this premium yet: nothing to reject",
                           field="status")
        self.approvals = []
        self._clear_failure()
        back = ObligationStatus.FUNDED if self.is_funded else ObligationStatus.CALCULATED
        return self._move(back, "REJECTED", actor, at, reason)

    def hold(self, at: datetime, reason: str, blocked_since: datetime) -> Change | None:
        """Hold a payout that has not left yet; None if it cannot or need not be held.

        A hold finance released after the suspension began stays released: the same
        suspension, announced again or late, does not hold it a second time.
        """
        if self.status not in (ObligationStatus.CALCULATED, ObligationStatus.FUNDED,
                               ObligationStatus.APPROVED, ObligationStatus.FAILED):
            return None
        if self.hold_released_at is not None and self.hold_released_at >= blocked_since:
            return None
        self.held_from, self.hold_reason, self.held_at = self.status, reason, at
        self.next_attempt_at = None
        return self._move(ObligationStatus.ON_HOLD, "HELD", "certification", at, reason)

    def lift_hold(self, at: datetime, reason: str) -> Change | None:
        """The certification is good again: back where it was held from."""
        if self.status is not ObligationStatus.ON_HOLD:
            return None
        return self._unhold("HOLD_LIFTED", "certification", at, reason)

    def release_hold(self, actor: str, at: datetime, reason: str) -> Change:
        """Finance pays despite the suspension, and says why."""
        self._refuse("released from a hold", ObligationStatus.ON_HOLD)
        self.hold_released_at = at
        return self._unhold("HOLD_RELEASED", actor, at, reason)

    def _unhold(self, action: str, actor: str, at: datetime, reason: str) -> Change:
        back = self.held_from or ObligationStatus.CALCULATED
        if back is ObligationStatus.FAILED and self.retryable:
            self.next_attempt_at = at
        self.held_from, self.hold_reason, self.held_at = None, None, None
        return self._move(back, action, actor, at, reason)

    def submit(self, destination: str, at: datetime, lease: timedelta) -> Change:
        """Claim the transfer: SUBMITTED is written before Stripe is called, so that a
        crash after the call is found and finished with the same idempotency key.

        A new attempt number (hence a new key) only follows a definitive failure, when
        Stripe is known to have made no transfer under the previous key.
        """
        self._refuse("submitted", ObligationStatus.APPROVED, ObligationStatus.FAILED)
        if self.status is ObligationStatus.FAILED and self.failure_stage is not \
                FailureStage.TRANSFER:
            raise Conflict("the buyer's payment failed: retry the funding first", field="status")
        # Re-sends of a SUBMITTED attempt never come here, so every claim is a new attempt.
        self.attempt += 1
        self.destination = destination
        self.submitted_at = at
        self.lease_until = at + lease
        self.next_attempt_at = None
        return self._move(ObligationStatus.SUBMITTED, "SUBMITTED", "payouts", at,
                          f"transfer attempt {self.attempt}")

    def wait_for_account(self, at: datetime, retry_after: timedelta) -> Change | None:
        """Approved, but the cooperative has no connected account that takes transfers yet:
        FAILED, retried by itself once onboarding may have finished."""
        self._refuse("paid", ObligationStatus.APPROVED, ObligationStatus.FAILED)
        code = NO_CONNECTED_ACCOUNT
        first = self.failure_code != code or self.status is not ObligationStatus.FAILED
        self.failure_stage, self.failure_code = FailureStage.TRANSFER, code
        self.failure_message = "the cooperative has not finished Stripe onboarding"
        self.retryable, self.failures = True, self.failures + 1
        self.next_attempt_at = at + retry_after
        if not first:
            return None
        return self._move(ObligationStatus.FAILED, "TRANSFER_FAILED", "payouts", at,
                          f"{code}: {self.failure_message}")

    def renew_lease(self, at: datetime, lease: timedelta) -> None:
        """Claim a SUBMITTED obligation again to re-send its transfer (same key)."""
        self._refuse("re-sent", ObligationStatus.SUBMITTED)
        self.lease_until = at + lease

    def must_look_before_sending(self, resend: bool, at: datetime, window: timedelta) -> bool:
        """Whether the order's transfers at Stripe must be looked through before this attempt
        is sent, because sending it could make a second transfer instead of finding the first.

        Attempt n > 1 always looks: its key is new to Stripe, which knows nothing of what an
        earlier key made (and if a look before its first send went unanswered, its re-send
        must look again). A re-send looks once the attempt was submitted longer ago than
        `window`: Stripe forgets a key 24 hours after its first use, and the same request then
        makes a new transfer instead of replaying the one it made. `submitted_at` is written
        just before the first send, so the age errs on the side of looking.
        """
        if self.attempt > 1:
            return True
        return resend and (self.submitted_at is None or at - self.submitted_at > window)

    def transfer_created(self, transfer_id: str, created_at: datetime, at: datetime,
                         actor: str = "stripe") -> Change | None:
        """Stripe confirms the transfer exists (its reply or transfer.created): PAID.

        Stripe is the authority on money that moved, so a transfer it reports is recorded
        whatever Veta thought; a second confirmation changes nothing.
        """
        if self.transfer_id == transfer_id and self.status in (
                ObligationStatus.PAID, ObligationStatus.REVERSED):
            return None
        if self.transfer_id is not None and self.transfer_id != transfer_id:
            raise Conflict(f"obligation {self.id} was already paid by {self.transfer_id}, "
                           f"not {transfer_id}", field="transfer_id")
        self.transfer_id, self.transferred_at, self.paid_at = transfer_id, created_at, at
        self.lease_until, self.next_attempt_at = None, None
        self._clear_failure()
        if self.status is ObligationStatus.REVERSED:
            return None
        return self._move(ObligationStatus.PAID, "PAID", actor, at, f"transfer {transfer_id}")

    def transfer_failed(self, code: str, message: str, retryable: bool, at: datetime,
                        retry_after: timedelta) -> Change | None:
        """Stripe refused the transfer for good under this key: FAILED, with its reason."""
        if self.status is not ObligationStatus.SUBMITTED:
            return None
        self.failure_stage, self.failure_code, self.failure_message = (
            FailureStage.TRANSFER, code, message)
        self.retryable = retryable
        self.failures += 1
        self.lease_until = None
        self.next_attempt_at = at + retry_after if retryable else None
        return self._move(ObligationStatus.FAILED, "TRANSFER_FAILED", "stripe", at,
                          f"{code}: {message}")

    def transfer_unanswered(self, code: str, message: str, at: datetime,
                            retry_after: timedelta,
                            then: str = "will re-send with the same key") -> Change:
        """No definite answer (network, timeout, rate limit, Stripe's 5xx): still SUBMITTED,
        to be re-sent with the same key, which can never make a second transfer (once
        Stripe may have forgotten the key, only after looking for what it made)."""
        self._refuse("left unanswered", ObligationStatus.SUBMITTED)
        self.failure_stage, self.failure_code, self.failure_message = (
            FailureStage.TRANSFER, code, message)
        self.failures += 1
        self.lease_until = at + retry_after
        self.next_attempt_at = at + retry_after
        return Change(self.id, "TRANSFER_UNANSWERED", self.status, self.status, "stripe", at,
                      f"{code}: {message}; {then}")

    def retry(self, actor: str, at: datetime) -> Change:
        """Finance asks for a failed step again now."""
        self._refuse("retried", ObligationStatus.FAILED)
        if self.failure_stage is FailureStage.FUNDING:
            self._clear_failure()
            return self._move(ObligationStatus.CALCULATED, "RETRY_FUNDING", actor, at,
                              "collect the premium from the buyer again")
        self.retryable = True
        self.next_attempt_at = at
        return Change(self.id, "RETRY_REQUESTED", self.status, self.status, actor, at,
                      "send the transfer again")

    def request_reversal(self, amount_cents: int | None, actor: str, reason: str,
                         at: datetime, client_key: str | None = None) -> ReversalRequest:
        """Finance asks to take back `amount_cents` (None: all that is left) of the transfer,
        under the caller's `client_key` if it sent one.

        Nothing moves here: the obligation changes only when Stripe's reversal is recorded.
        """
        if self.transfer_id is None or self.status not in (ObligationStatus.PAID,
                                                           ObligationStatus.REVERSED):
            raise Conflict(f"a payout that is {self.status} has no transfer to reverse",
                           field="payout_id")
        left = self.amount_cents - self.reversed_cents
        amount = left if amount_cents is None else amount_cents
        if not 0 < amount <= left:
            raise Conflict(f"between 0.01 and {format_money(left)} can be reversed",
                           field="amount")
        key = (reversal_key(self.id, self.reversed_cents, amount) if client_key is None
               else requested_reversal_key(self.id, client_key))
        return ReversalRequest(key, self.id, self.transfer_id, amount, self.currency, actor,
                               reason, at, client_key=client_key, whole=amount_cents is None)

    def reversed(self, amount_reversed_cents: int, at: datetime, actor: str = "stripe",
                 note: str | None = None) -> Change | None:
        """Some or all of the transfer came back (the running total); `note` is why, when
        the person who asked for it said so."""
        if amount_reversed_cents <= self.reversed_cents:
            return None
        if amount_reversed_cents > self.amount_cents:
            raise Conflict("more reversed than was paid", field="amount")
        self.reversed_cents = amount_reversed_cents
        part = "in full" if amount_reversed_cents == self.amount_cents else "in part"
        reason = f"reversed {part}: {amount_reversed_cents} of {self.amount_cents} cents"
        if note:
            reason = f"{reason} ({note})"
        if self.status is ObligationStatus.REVERSED:
            return Change(self.id, "REVERSED", self.status, self.status, actor, at, reason)
        return self._move(ObligationStatus.REVERSED, "REVERSED", actor, at, reason)

    def _clear_failure(self) -> None:
        self.failure_stage = self.failure_code = self.failure_message = None
        self.retryable, self.failures, self.next_attempt_at = False, 0, None


def obligation_for(*, obligation_id: str, order_id: str, producer_id: str, buyer_id: str,
                   standard: Standard, fine_mg: int, delivered_on: date,
                   rates: list[PremiumRate]) -> Obligation | None:
    """The premium owed on a delivery, or None when its standard carries no premium (CRAFT)."""
    rate = rate_in_force(rates, standard, delivered_on)
    if rate is None:
        return None
    return Obligation(
        id=obligation_id, order_id=order_id, producer_id=producer_id, buyer_id=buyer_id,
        standard=standard, fine_mg=fine_mg, usd_per_kg=rate.usd_per_kg,
        amount_cents=premium_cents(fine_mg, rate.usd_per_kg), currency="USD",
        delivered_on=delivered_on)


# --- idempotency keys and retries ---------------------------------------------------------

def transfer_key(obligation_id: str, attempt: int) -> str:
    """The Idempotency-Key of a transfer attempt: the same for every re-send of an attempt."""
    return f"veta-premium-{obligation_id}-transfer-{attempt}"


def funding_key(obligation_id: str) -> str:
    return f"veta-premium-{obligation_id}-funding"


def funding_confirm_key(obligation_id: str, attempt: int) -> str:
    return f"veta-premium-{obligation_id}-funding-confirm-{attempt}"


def reversal_key(obligation_id: str, reversed_cents: int, amount_cents: int) -> str:
    """A reversal asked for without a key of the caller's: reversing the same amount from
    the same starting point is the same request."""
    return f"veta-premium-{obligation_id}-reversal-{reversed_cents}-{amount_cents}"


# The caller's key may be 64 characters of anything printable: a name-based UUID of it fits
# Stripe's key (and its column) and is the same each time the key is sent again.
REVERSAL_KEYS = uuid.UUID("3b0d9f62-5c1e-4f7a-8e2d-6a9c4b7e1f05")


def requested_reversal_key(obligation_id: str, client_key: str) -> str:
    """A reversal asked for under the caller's own key: the same key is the same request,
    whatever has been reversed since, so it is never made twice."""
    named = uuid.uuid5(REVERSAL_KEYS, f"{obligation_id}/{client_key}")
    return f"veta-premium-{obligation_id}-reversal-{named}"


def account_key(producer_id: str) -> str:
    return f"veta-producer-{producer_id}-connect-account"


def backoff(failures: int, base_seconds: float, cap_seconds: float) -> timedelta:
    """Exponential backoff: base, twice base, four times base ... up to the cap."""
    exponent = max(failures - 1, 0)
    return timedelta(seconds=min(base_seconds * 2 ** min(exponent, 30), cap_seconds))


# --- the certification copy that drives holds ------------------------------------------------

CERTIFIED = "CERTIFIED"
BLOCKING = frozenset({"SUSPENDED", "EXPIRED", "WITHDRAWN"})


@dataclass
class CertificateCopy:
    """What payouts knows of one certificate, from certification's events."""

    certification_id: str
    producer_id: str
    standard: Standard
    status: str
    version: int | None
    changed_at: datetime
    valid_from: date | None = None
    valid_until: date | None = None

    def is_older_than(self, version: int | None, at: datetime) -> bool:
        if version is not None and self.version is not None:
            return version > self.version
        return at > self.changed_at

    def is_good_on(self, day: date) -> bool:
        return self.status == CERTIFIED and (
            self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until)


def is_blocked(certificates: list[CertificateCopy], standard: Standard, today: date) -> bool:
    """Payouts under `standard` wait while a certificate is suspended, expired or withdrawn
    and no other certificate for it is good today (a renewal does not wait on the old one)."""
    mine = [c for c in certificates if c.standard is standard]
    if any(c.is_good_on(today) for c in mine):
        return False
    return any(c.status in BLOCKING for c in mine)


# --- periods -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """A reconciliation or filter period: a calendar month (2026-10) or year (2026), UTC."""

    label: str
    start: date
    end: date  # exclusive

    def months(self) -> list[str]:
        out, day = [], self.start
        while day < self.end:
            out.append(f"{day.year:04d}-{day.month:02d}")
            day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return out


def parse_period(text: str, field_name: str = "period") -> Period:
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", text.strip())
    if not match:
        raise InvalidInput("a period is a month (2026-10) or a year (2026)", field=field_name)
    year = int(match.group(1))
    if match.group(2) is None:
        return Period(f"{year:04d}", date(year, 1, 1), date(year + 1, 1, 1))
    month = int(match.group(2))
    if not 1 <= month <= 12:
        raise InvalidInput("the month must be 01 to 12", field=field_name)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return Period(f"{year:04d}-{month:02d}", date(year, month, 1), end)
