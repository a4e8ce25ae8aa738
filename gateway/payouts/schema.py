"""Payouts queries: the premiums owed to cooperatives (finance sees all, a producer its own)."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.context import context
from gateway.payouts.types import PayoutConnection
from shared.caller import Role


class Query(graphene.ObjectType):
    payouts = graphene.Field(PayoutConnection, required=True, producer_id=graphene.ID(),
                             first=connections.PageSize, after=connections.After)

    @staticmethod
    def resolve_payouts(_root: Any, info: Any, producer_id: str | None = None,
                        first: int | None = None, after: str | None = None) -> Any:
        ctx = context(info)

        def page() -> Any:
            result = connections.build(PayoutConnection, ctx.call(
                "payouts", "list_obligations", producer_id=producer_id, first=first,
                after=after))
            ctx.producers.expect(o["producer_id"] for o in connections.nodes(result))
            return result
        return ctx.read(page, Role.FINANCE, Role.PRODUCER)
