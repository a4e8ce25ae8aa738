"""Events the payouts service raises: premiums owed and their progress to the cooperative."""

from __future__ import annotations

from shared.events import Event
from shared.values import Standard


class PayoutsEvent(Event):
    source = "payouts"


class PremiumObligationCreated(PayoutsEvent):
    """A delivery earned a premium that the cooperative is owed."""

    type = "premium_obligation_created"
    obligation_id: str
    order_id: str
    producer_id: str
    standard: Standard
    fine_weight: str
    usd_per_kg: str
    amount: str
    currency: str


class PremiumEvent(PayoutsEvent):
    """Common facts of a step in a premium's way to the cooperative."""

    obligation_id: str
    order_id: str
    producer_id: str
    standard: Standard
    amount: str
    currency: str


class PremiumFunded(PremiumEvent):
    """The buyer paid the premium in (its Stripe PaymentIntent succeeded)."""

    type = "premium_funded"
    payment_intent_id: str


class PremiumApproved(PremiumEvent):
    """Finance approved the payout (two different people above the four-eyes threshold)."""

    type = "premium_approved"
    approved_by: list[str]


class PremiumTransferred(PremiumEvent):
    """Stripe made the transfer to the cooperative's connected account."""

    type = "premium_transferred"
    transfer_id: str


class PremiumPaymentFailed(PremiumEvent):
    """Collecting the premium or transferring it failed; `retryable` says whether Veta
    retries by itself (with backoff) or waits for finance."""

    type = "premium_payment_failed"
    stage: str
    code: str
    reason: str
    retryable: bool


class PremiumReversed(PremiumEvent):
    """Some or all of a paid premium came back from the cooperative's account.
    `amount_reversed` is the running total; `requested_by` and `reason` are finance's
    request, absent for a reversal made in Stripe's dashboard."""

    type = "premium_reversed"
    transfer_id: str
    amount_reversed: str
    requested_by: str | None = None
    reason: str | None = None


class PremiumHoldPlaced(PremiumEvent):
    """The producer's certification for this standard is not good: the payout waits."""

    type = "premium_hold_placed"
    reason: str


class PremiumReleased(PremiumEvent):
    """A hold ended: the certification is good again, or finance released it with a reason."""

    type = "premium_released"
    reason: str
    released_by: str


class PayoutAccountCreated(PayoutsEvent):
    """Veta opened a Stripe Connect account for a cooperative (the id lives with payouts)."""

    type = "payout_account_created"
    producer_id: str
    stripe_account_id: str
