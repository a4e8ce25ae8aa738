"""Payouts queries and mutations: premiums owed, finance's decisions, Stripe onboarding and
reconciliation. Finance sees everything and alone moves money; a producer reads its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import Standard
from gateway.context import RequestContext, context
from gateway.errors import Refused, UserError
from gateway.inputs import keyed_command, plain
from gateway.payouts.types import (
    OnboardingLink,
    Payout,
    PayoutAccount,
    PayoutConnection,
    PayoutFilter,
    PremiumRate,
    Reconciliation,
    ReconciliationConnection,
    ReconciliationLine,
    ReconciliationSource,
)
from gateway.scalars import Date
from shared.caller import Role

READERS = (Role.FINANCE, Role.PRODUCER)  # administrators read too (ctx.require admits them)


class Query(graphene.ObjectType):
    payouts = graphene.Field(PayoutConnection, required=True, producer_id=graphene.ID(),
                             filter=PayoutFilter(), first=connections.PageSize,
                             after=connections.After)
    payout = graphene.Field(Payout, id=graphene.ID(required=True))
    premium_rates = graphene.List(graphene.NonNull(PremiumRate), required=True)
    payout_account = graphene.Field(PayoutAccount, producer_id=graphene.ID(required=True))
    reconciliations = graphene.Field(ReconciliationConnection, required=True,
                                     period=graphene.String(), first=connections.PageSize,
                                     after=connections.After)
    reconciliation = graphene.Field(Reconciliation, id=graphene.ID(required=True))

    @staticmethod
    def resolve_payouts(_root: Any, info: Any, producer_id: str | None = None,
                        filter: Any = None, first: int | None = None,
                        after: str | None = None) -> Any:
        ctx = context(info)
        wanted = plain(dict(filter or {}))
        producer_id = wanted.pop("producer_id", None) or producer_id

        def page() -> Any:
            result = connections.build(PayoutConnection, ctx.call(
                "payouts", "list_obligations", producer_id=producer_id, first=first,
                after=after, filter=wanted))
            nodes = connections.nodes(result)
            ctx.producers.expect(o["producer_id"] for o in nodes)
            ctx.obligations.expect(o["id"] for o in nodes)
            return result
        return ctx.read(page, *READERS)

    @staticmethod
    def resolve_payout(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)

        def find() -> Any:
            found = ctx.obligations.get(id)
            if found is None:
                raise Refused("NOT_FOUND", "no such payout", "id")
            return found
        return ctx.read(find, *READERS)

    @staticmethod
    def resolve_premium_rates(_root: Any, info: Any) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.call("payouts", "list_premium_rates"))

    @staticmethod
    def resolve_payout_account(_root: Any, info: Any, producer_id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.call("payouts", "get_payout_account", producer_id),
                        *READERS)

    @staticmethod
    def resolve_reconciliations(_root: Any, info: Any, period: str | None = None,
                                first: int | None = None, after: str | None = None) -> Any:
        ctx = context(info)
        return ctx.read(lambda: connections.build(ReconciliationConnection, ctx.call(
            "payouts", "list_reconciliations", period=period, first=first, after=after)),
            Role.FINANCE)

    @staticmethod
    def resolve_reconciliation(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.call("payouts", "get_reconciliation", id), Role.FINANCE)


def money_moves(ctx: RequestContext, payload_cls: Any, field: str,
                action: Callable[[], Any]) -> Any:
    """A mutation only finance staff may make: administrators operate, they do not pay."""
    def guarded() -> Any:
        caller = ctx.require(Role.FINANCE)
        if caller.role is not Role.FINANCE:
            raise Refused("FORBIDDEN", "only finance staff move money")
        return action()
    return ctx.mutate(payload_cls, field, guarded)


class PayoutPayload(graphene.ObjectType):
    payout = graphene.Field(Payout)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


def _payout_mutation(name: str, method: str, doc: str) -> type[graphene.Mutation]:
    input_cls = type(f"{name}Input", (graphene.InputObjectType,), {
        "payout_id": graphene.ID(required=True),
        "reason": graphene.String(description="Why (required to reject or release a hold)"),
    })

    def mutate(_root: Any, info: Any, input: Any) -> PayoutPayload:
        ctx = context(info)
        return money_moves(ctx, PayoutPayload, "payout",
                           lambda: ctx.call("payouts", method, plain(input)))

    arguments = type("Arguments", (), {"input": input_cls(required=True)})
    return type(name, (graphene.Mutation,), {
        "__doc__": doc, "Arguments": arguments, "Output": PayoutPayload,
        "mutate": staticmethod(mutate)})


ApprovePayout = _payout_mutation(
    "ApprovePayout", "approve_payout",
    "Approve a FUNDED payout (FINANCE). Above the four-eyes threshold a second, different "
    "finance user must approve too; whoever approved first cannot give the second approval.")
RejectPayout = _payout_mutation(
    "RejectPayout", "reject_payout",
    "Refuse a payout as it stands, with a reason (FINANCE): its approvals are voided.")
ReleasePayoutHold = _payout_mutation(
    "ReleasePayoutHold", "release_payout_hold",
    "Pay despite the producer's suspended certification, with a reason (FINANCE).")
RetryPayout = _payout_mutation(
    "RetryPayout", "retry_payout",
    "Try a FAILED payout again now: the buyer's payment or the transfer (FINANCE).")


class CreateStripeOnboardingLinkInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    return_url = graphene.String(description="Where Stripe sends the cooperative when done")
    refresh_url = graphene.String(description="Where Stripe sends it if the link expired")


class OnboardingLinkPayload(graphene.ObjectType):
    link = graphene.Field(OnboardingLink)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class CreateStripeOnboardingLink(graphene.Mutation):
    """Open the cooperative's Stripe Express account (once) and return a fresh onboarding
    link (FINANCE, or the PRODUCER itself)."""

    class Arguments:
        input = CreateStripeOnboardingLinkInput(required=True)

    Output = OnboardingLinkPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> OnboardingLinkPayload:
        ctx = context(info)
        return ctx.mutate(OnboardingLinkPayload, "link", lambda: ctx.call(
            "payouts", "create_onboarding_link", plain(input)), Role.FINANCE, Role.PRODUCER)


class AddPremiumRateInput(graphene.InputObjectType):
    standard = Standard(required=True)
    usd_per_kg = graphene.String(required=True, description="USD per kg of fine gold")
    effective_from = Date(required=True, description="Today or later")


class PremiumRatePayload(graphene.ObjectType):
    rate = graphene.Field(PremiumRate)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class AddPremiumRate(graphene.Mutation):
    """Extend the dated premium rate table (FINANCE); obligations already owed keep theirs."""

    class Arguments:
        input = AddPremiumRateInput(required=True)

    Output = PremiumRatePayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> PremiumRatePayload:
        ctx = context(info)
        return money_moves(ctx, PremiumRatePayload, "rate", lambda: ctx.call(
            "payouts", "add_premium_rate", plain(input)))


class RunReconciliationInput(graphene.InputObjectType):
    period = graphene.String(required=True, description="A month (2026-10) or a year (2026)")
    source = ReconciliationSource(default_value="API")


class ReconciliationPayload(graphene.ObjectType):
    reconciliation = graphene.Field(Reconciliation)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class RunReconciliation(graphene.Mutation):
    """Match the period's payouts and buyer payments against Stripe (FINANCE). Each run is
    kept; running a period again makes a new run."""

    class Arguments:
        input = RunReconciliationInput(required=True)

    Output = ReconciliationPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> ReconciliationPayload:
        ctx = context(info)
        return money_moves(ctx, ReconciliationPayload, "reconciliation", lambda: ctx.call(
            "payouts", "run_reconciliation", plain(input)))


class ResolveDiscrepancyInput(graphene.InputObjectType):
    line_id = graphene.ID(required=True)
    note = graphene.String(required=True)


class DiscrepancyPayload(graphene.ObjectType):
    line = graphene.Field(ReconciliationLine)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class ResolveDiscrepancy(graphene.Mutation):
    """Explain a discrepancy (FINANCE); every note is kept in the line's history."""

    class Arguments:
        input = ResolveDiscrepancyInput(required=True)

    Output = DiscrepancyPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> DiscrepancyPayload:
        ctx = context(info)
        return money_moves(ctx, DiscrepancyPayload, "line", lambda: ctx.call(
            "payouts", "resolve_discrepancy", plain(input)))


class ReversePayoutInput(graphene.InputObjectType):
    payout_id = graphene.ID(required=True)
    amount = graphene.String(description="USD to take back, e.g. \"120.50\"; all if absent")
    reason = graphene.String(required=True)
    idempotency_key = graphene.String(
        description="Send the same key again (a retry after a timeout) to get the first "
                    "request's outcome rather than a second reversal; the same key with "
                    "another amount or reason is refused. One is made up if you send none.")


class ReversePayout(graphene.Mutation):
    """Take a PAID premium back from the cooperative, in full or in part (FINANCE): a Stripe
    transfer reversal, for a delivery found wrong after payment."""

    class Arguments:
        input = ReversePayoutInput(required=True)

    Output = PayoutPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> PayoutPayload:
        ctx = context(info)
        command = keyed_command(input)
        return money_moves(ctx, PayoutPayload, "payout",
                           lambda: ctx.call("payouts", "reverse_payout", command))


class SetBuyerFundingInput(graphene.InputObjectType):
    buyer_id = graphene.ID(required=True)
    payment_method = graphene.String(required=True,
                                     description="A Stripe payment method id, pm_…")
    customer_id = graphene.String(description="The buyer's Stripe customer id, cus_…")


class BuyerFunding(graphene.ObjectType):
    buyer_id = graphene.ID(required=True)
    payment_method = graphene.String(required=True)


class BuyerFundingPayload(graphene.ObjectType):
    funding = graphene.Field(BuyerFunding)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class SetBuyerFunding(graphene.Mutation):
    """The payment method a buyer's premiums are collected from (the BUYER itself, or
    FINANCE on its behalf)."""

    class Arguments:
        input = SetBuyerFundingInput(required=True)

    Output = BuyerFundingPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> BuyerFundingPayload:
        ctx = context(info)
        return ctx.mutate(BuyerFundingPayload, "funding", lambda: ctx.call(
            "payouts", "set_buyer_funding", plain(input)), Role.BUYER, Role.FINANCE)


class Mutation(graphene.ObjectType):
    reverse_payout = ReversePayout.Field()
    set_buyer_funding = SetBuyerFunding.Field()
    approve_payout = ApprovePayout.Field()
    reject_payout = RejectPayout.Field()
    release_payout_hold = ReleasePayoutHold.Field()
    retry_payout = RetryPayout.Field()
    create_stripe_onboarding_link = CreateStripeOnboardingLink.Field()
    add_premium_rate = AddPremiumRate.Field()
    run_reconciliation = RunReconciliation.Field()
    resolve_discrepancy = ResolveDiscrepancy.Field()
