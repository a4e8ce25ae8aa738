"""GraphQL types for premium obligations, payouts, rates and reconciliation runs."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.certification.types import Producer, Standard
from gateway.context import context
from gateway.scalars import Date, DateTime, Money, Weight


class ObligationStatus(graphene.Enum):
    CALCULATED = "CALCULATED"
    FUNDED = "FUNDED"
    APPROVED = "APPROVED"
    SUBMITTED = "SUBMITTED"
    PAID = "PAID"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    ON_HOLD = "ON_HOLD"


class PayoutFailure(graphene.ObjectType):
    """Why the last attempt failed, in Stripe's words, and whether Veta retries by itself."""

    stage = graphene.String(required=True, description="FUNDING (the buyer) or TRANSFER")
    code = graphene.String(required=True)
    message = graphene.String()
    retryable = graphene.Boolean(required=True)
    failures = graphene.Int(required=True)
    next_attempt_at = DateTime()


class PayoutHold(graphene.ObjectType):
    reason = graphene.String()
    held_from = graphene.Field(ObligationStatus)
    held_at = DateTime()


class PayoutChange(graphene.ObjectType):
    """One entry of a payout's history: who did what, when and why."""

    action = graphene.String(required=True)
    from_status = graphene.Field(ObligationStatus)
    to_status = graphene.Field(ObligationStatus, required=True)
    actor = graphene.String(required=True)
    at = DateTime(required=True)
    reason = graphene.String()

    @staticmethod
    def resolve_from_status(change: dict[str, Any], _info: Any) -> str | None:
        return change["from"]

    @staticmethod
    def resolve_to_status(change: dict[str, Any], _info: Any) -> str:
        return str(change["to"])


def _money(amount: str | None, currency: str | None) -> dict[str, str] | None:
    if amount is None:
        return None
    return {"amount": amount, "currency": (currency or "USD").upper()}


class Payout(graphene.ObjectType):
    """The premium a delivery earned for its cooperative, and where its payment stands."""

    id = graphene.ID(required=True)
    order_id = graphene.ID(required=True)
    producer = graphene.Field(Producer)
    producer_id = graphene.ID(required=True)
    buyer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    fine_weight = graphene.Field(Weight, required=True)
    rate_per_kg = graphene.Field(Money, required=True,
                                 description="The premium per kg of fine gold in force")
    amount = graphene.Field(Money, required=True)
    delivered_on = Date(required=True)
    status = graphene.Field(ObligationStatus, required=True)
    created_at = DateTime(required=True)
    updated_at = DateTime(required=True)
    payment_intent_id = graphene.String(description="The buyer's Stripe PaymentIntent")
    funded_at = DateTime()
    approvals = graphene.List(graphene.NonNull(graphene.String), required=True,
                              description="Finance users who approved, in order")
    approvals_needed = graphene.Int(description="2 above the four-eyes threshold, else 1")
    attempt = graphene.Int(required=True, description="Transfer attempt number")
    idempotency_key = graphene.String(description="The key the current attempt is sent with")
    transfer_id = graphene.String()
    paid_at = DateTime()
    reversed_amount = graphene.Field(Money, required=True)
    failure = graphene.Field(PayoutFailure)
    hold = graphene.Field(PayoutHold)
    history = graphene.List(graphene.NonNull(PayoutChange), required=True)

    @staticmethod
    def resolve_producer(obligation: dict[str, Any], info: Any) -> Any:
        return context(info).producers.get(obligation["producer_id"])

    @staticmethod
    def resolve_fine_weight(obligation: dict[str, Any], _info: Any) -> Any:
        return Weight.of(obligation["fine_weight"])

    @staticmethod
    def resolve_rate_per_kg(obligation: dict[str, Any], _info: Any) -> Any:
        return {"amount": obligation["usd_per_kg"], "currency": "USD"}

    @staticmethod
    def resolve_amount(obligation: dict[str, Any], _info: Any) -> Any:
        return _money(obligation["amount"], obligation["currency"])

    @staticmethod
    def resolve_reversed_amount(obligation: dict[str, Any], _info: Any) -> Any:
        return _money(obligation.get("reversed_amount") or "0.00", obligation["currency"])

    @staticmethod
    def resolve_history(obligation: dict[str, Any], info: Any) -> Any:
        if "history" in obligation:
            return obligation["history"]
        full = context(info).obligations.get(obligation["id"])
        return full["history"] if full else []


class PayoutConnection(graphene.relay.Connection):
    class Meta:
        node = Payout


class PayoutFilter(graphene.InputObjectType):
    status = graphene.List(graphene.NonNull(ObligationStatus))
    producer_id = graphene.ID()
    standard = Standard()
    period = graphene.String(description="Delivered in this month (2026-10) or year (2026)")


class PremiumRate(graphene.ObjectType):
    standard = graphene.Field(Standard, required=True)
    rate_per_kg = graphene.Field(Money, required=True)
    effective_from = Date(required=True)
    recorded_by = graphene.String()

    @staticmethod
    def resolve_rate_per_kg(rate: dict[str, Any], _info: Any) -> Any:
        return {"amount": rate["usd_per_kg"], "currency": "USD"}


class BankPayout(graphene.ObjectType):
    id = graphene.ID(required=True)
    amount = graphene.Field(Money, required=True)
    status = graphene.String(required=True)
    failure_code = graphene.String()

    @staticmethod
    def resolve_amount(payout: dict[str, Any], _info: Any) -> Any:
        return _money(payout["amount"], payout["currency"])


class PayoutAccount(graphene.ObjectType):
    """A cooperative's Stripe Connect account, as payouts keeps it."""

    producer_id = graphene.ID(required=True)
    stripe_account_id = graphene.String(required=True)
    transfers_active = graphene.Boolean(required=True)
    last_bank_payout = graphene.Field(BankPayout)


class OnboardingLink(graphene.ObjectType):
    producer_id = graphene.ID(required=True)
    stripe_account_id = graphene.String(required=True)
    url = graphene.String(required=True, description="Send the cooperative here")
    expires_at = graphene.Int(required=True, description="Unix seconds")


class ReconciliationSource(graphene.Enum):
    API = "API"


class LineStatus(graphene.Enum):
    MATCHED = "MATCHED"
    MISSING_IN_STRIPE = "MISSING_IN_STRIPE"
    MISSING_IN_VETA = "MISSING_IN_VETA"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DUPLICATE = "DUPLICATE"


class LedgerKind(graphene.Enum):
    PAYMENT = "PAYMENT"
    TRANSFER = "TRANSFER"
    REVERSAL = "REVERSAL"


class DiscrepancyNote(graphene.ObjectType):
    note = graphene.String(required=True)
    actor = graphene.String(required=True)
    at = DateTime(required=True)


class ReconciliationLine(graphene.ObjectType):
    id = graphene.ID(required=True)
    seq = graphene.Int(required=True)
    status = graphene.Field(LineStatus, required=True)
    kind = graphene.Field(LedgerKind, required=True)
    obligation_id = graphene.String(required=True)
    producer_id = graphene.String(required=True)
    standard = graphene.String(required=True)
    month = graphene.String(required=True)
    veta_stripe_id = graphene.String(required=True)
    stripe_id = graphene.String(required=True)
    veta_amount = graphene.Field(Money)
    stripe_amount = graphene.Field(Money)
    resolution = graphene.String()
    resolved_by = graphene.String()
    resolved_at = DateTime()
    notes = graphene.List(graphene.NonNull(DiscrepancyNote), required=True)

    @staticmethod
    def resolve_veta_amount(line: dict[str, Any], _info: Any) -> Any:
        return _money(line["veta_amount"], line["veta_currency"])

    @staticmethod
    def resolve_stripe_amount(line: dict[str, Any], _info: Any) -> Any:
        return _money(line["stripe_amount"], line["stripe_currency"])


class ReconciliationLineConnection(graphene.relay.Connection):
    class Meta:
        node = ReconciliationLine


class LineCounts(graphene.ObjectType):
    matched = graphene.Int(required=True)
    missing_in_stripe = graphene.Int(required=True)
    missing_in_veta = graphene.Int(required=True)
    amount_mismatch = graphene.Int(required=True)
    currency_mismatch = graphene.Int(required=True)
    duplicate = graphene.Int(required=True)


class ReconciliationTotal(graphene.ObjectType):
    """Sums for one producer, standard or month: premiums paid out (transfers less
    reversals) and collected from buyers, on Veta's books and on Stripe's."""

    key = graphene.String(required=True, description="The producer id, standard or month")
    currency = graphene.String(required=True)
    veta_paid = graphene.Field(Money, required=True)
    stripe_paid = graphene.Field(Money, required=True)
    veta_collected = graphene.Field(Money, required=True)
    stripe_collected = graphene.Field(Money, required=True)
    lines = graphene.Int(required=True)
    discrepancies = graphene.Int(required=True)


class Reconciliation(graphene.ObjectType):
    id = graphene.ID(required=True)
    period = graphene.String(required=True)
    source = graphene.String(required=True)
    status = graphene.String(required=True, description="RUNNING, DONE or FAILED")
    started_by = graphene.String(required=True)
    started_at = DateTime(required=True)
    finished_at = DateTime()
    error = graphene.String()
    counts = graphene.Field(LineCounts, required=True)
    by_producer = graphene.List(graphene.NonNull(ReconciliationTotal), required=True)
    by_standard = graphene.List(graphene.NonNull(ReconciliationTotal), required=True)
    by_month = graphene.List(graphene.NonNull(ReconciliationTotal), required=True)
    lines = graphene.Field(ReconciliationLineConnection, required=True,
                           status=graphene.List(graphene.NonNull(LineStatus)),
                           unresolved_only=graphene.Boolean(default_value=False),
                           first=graphene.Int(), after=graphene.String())
    csv = graphene.String(required=True, description="Every line as CSV (amounts in major "
                          "units); `veta reconcile --csv` writes the same for large runs")
    chart_svg = graphene.String(required=True,
                                description="Premiums paid per producer and month (SVG)")

    @staticmethod
    def resolve_counts(run: dict[str, Any], _info: Any) -> Any:
        counts = run["counts"]
        return {name.lower(): counts.get(name, 0) for name in LineStatus._meta.enum.__members__}

    @staticmethod
    def _totals(run: dict[str, Any], dimension: str) -> list[dict[str, Any]]:
        out = []
        for row in run[f"by_{dimension}"]:
            currency = str(row["currency"] or "usd").upper()
            out.append({
                "key": row[dimension], "currency": currency, "lines": row["lines"],
                "discrepancies": row["discrepancies"],
                **{name: {"amount": _major(row[name]), "currency": currency}
                   for name in ("veta_paid", "stripe_paid", "veta_collected",
                                "stripe_collected")}})
        return out

    @staticmethod
    def resolve_by_producer(run: dict[str, Any], _info: Any) -> Any:
        return Reconciliation._totals(run, "producer")

    @staticmethod
    def resolve_by_standard(run: dict[str, Any], _info: Any) -> Any:
        return Reconciliation._totals(run, "standard")

    @staticmethod
    def resolve_by_month(run: dict[str, Any], _info: Any) -> Any:
        return Reconciliation._totals(run, "month")

    @staticmethod
    def resolve_lines(run: dict[str, Any], info: Any, status: list[str] | None = None,
                      unresolved_only: bool = False, first: int | None = None,
                      after: str | None = None) -> Any:
        from gateway import connections

        ctx = context(info)
        return connections.build(ReconciliationLineConnection, ctx.call(
            "payouts", "reconciliation_lines", run["id"], first=first, after=after,
            status=[str(getattr(s, "value", s)) for s in status or []],
            unresolved_only=unresolved_only))

    @staticmethod
    def resolve_csv(run: dict[str, Any], info: Any) -> Any:
        return context(info).call("payouts", "reconciliation_csv", run["id"])

    @staticmethod
    def resolve_chart_svg(run: dict[str, Any], info: Any) -> Any:
        return context(info).call("payouts", "reconciliation_chart", run["id"])


def _major(cents: int) -> str:
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


class ReconciliationConnection(graphene.relay.Connection):
    class Meta:
        node = Reconciliation
