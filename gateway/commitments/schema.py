"""Commitments queries and mutations: a buyer commits, amends, cancels, and follows progress.

A buyer sees its own commitments, a producer those that name it; the orders service checks
again.
"""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import Standard
from gateway.commitments.types import Commitment, CommitmentConnection, CommitmentStatus
from gateway.context import context
from gateway.errors import Refused, UserError
from gateway.inputs import keyed_command, plain
from gateway.scalars import Date
from shared.caller import Role


class CommitmentFilter(graphene.InputObjectType):
    status = graphene.List(graphene.NonNull(CommitmentStatus), description="Any of these")
    active_from = Date(description="Only commitments whose period overlaps from this day…")
    active_to = Date(description="…to this day")


class Query(graphene.ObjectType):
    commitment = graphene.Field(Commitment, id=graphene.ID(required=True))
    commitments = graphene.Field(CommitmentConnection, required=True,
                                 filter=CommitmentFilter(), first=connections.PageSize,
                                 after=connections.After,
                                 description="A buyer's own commitments, or those naming a "
                                             "producer; newest first")

    @staticmethod
    def resolve_commitment(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)

        def find() -> Any:
            found = ctx.commitments.get(id)
            if not found:
                raise Refused("NOT_FOUND", "no such commitment", "id")
            return found
        return ctx.read(find, Role.BUYER, Role.PRODUCER)

    @staticmethod
    def resolve_commitments(_root: Any, info: Any, filter: Any = None,
                            first: int | None = None, after: str | None = None) -> Any:
        ctx = context(info)

        def page() -> Any:
            result = connections.build(CommitmentConnection, ctx.call(
                "orders", "list_commitments", filter=plain(filter or {}), first=first,
                after=after))
            ctx.producers.expect(p for c in connections.nodes(result)
                                 for p in c["producer_ids"])
            return result
        return ctx.read(page, Role.BUYER, Role.PRODUCER)


class CommitmentPayload(graphene.ObjectType):
    commitment = graphene.Field(Commitment)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


def commitment_mutation(method: str) -> Any:
    def mutate(_root: Any, info: Any, input: Any) -> CommitmentPayload:
        ctx = context(info)
        return ctx.mutate(CommitmentPayload, "commitment", lambda: ctx.call(
            "orders", method, plain(input)), Role.BUYER)
    return mutate


class CreateCommitmentInput(graphene.InputObjectType):
    buyer_id = graphene.ID(required=True)
    fine_weight = graphene.String(required=True, description="Fine gold to source, in grams")
    standards = graphene.List(graphene.NonNull(Standard), required=True)
    period_start = Date(required=True)
    period_end = Date(required=True, description="The last day of the period")
    countries = graphene.List(graphene.NonNull(graphene.String),
                              description="Only gold mined in these countries")
    producer_ids = graphene.List(graphene.NonNull(graphene.ID),
                                 description="Only gold from these producers")
    price_ceiling = graphene.String(description="At most this % of LBMA, e.g. \"99.00\"")
    idempotency_key = graphene.String(
        description="Send the same key again (a retry after a timeout) to get the same "
                    "commitment back rather than a second one; the same key with other terms "
                    "is refused. One is made up if you send none.")


class CreateCommitment(graphene.Mutation):
    """Commit to source fine gold under some standards over a period (BUYER)."""

    class Arguments:
        input = CreateCommitmentInput(required=True)

    Output = CommitmentPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> CommitmentPayload:
        ctx = context(info)
        command = keyed_command(input)
        return ctx.mutate(CommitmentPayload, "commitment", lambda: ctx.call(
            "orders", "create_commitment", command), Role.BUYER)


class AmendCommitmentInput(graphene.InputObjectType):
    commitment_id = graphene.ID(required=True)
    fine_weight = graphene.String(description="Not below what was already delivered")
    period_end = Date()
    standards = graphene.List(graphene.NonNull(Standard))
    countries = graphene.List(graphene.NonNull(graphene.String),
                              description="An empty list lifts the restriction")
    producer_ids = graphene.List(graphene.NonNull(graphene.ID),
                                 description="An empty list lifts the restriction")
    price_ceiling = graphene.String()
    remove_price_ceiling = graphene.Boolean()


class AmendCommitment(graphene.Mutation):
    """Change an active commitment's terms; what was delivered stays counted (BUYER)."""

    class Arguments:
        input = AmendCommitmentInput(required=True)

    Output = CommitmentPayload
    mutate = commitment_mutation("amend_commitment")


class CancelCommitmentInput(graphene.InputObjectType):
    commitment_id = graphene.ID(required=True)
    reason = graphene.String()


class CancelCommitment(graphene.Mutation):
    """Withdraw an active commitment (BUYER)."""

    class Arguments:
        input = CancelCommitmentInput(required=True)

    Output = CommitmentPayload
    mutate = commitment_mutation("cancel_commitment")


class Mutation(graphene.ObjectType):
    create_commitment = CreateCommitment.Field()
    amend_commitment = AmendCommitment.Field()
    cancel_commitment = CancelCommitment.Field()
