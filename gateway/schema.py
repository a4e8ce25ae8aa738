"""The one schema: each domain's Query and Mutation composed, plus who-am-I."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.certification import schema as certification
from gateway.commitments import schema as commitments
from gateway.context import context
from gateway.listings import schema as listings
from gateway.orders import schema as orders
from gateway.payouts import schema as payouts


class Role(graphene.Enum):
    PRODUCER = "PRODUCER"
    BUYER = "BUYER"
    CERTIFIER = "CERTIFIER"
    FINANCE = "FINANCE"
    ADMIN = "ADMIN"


class Me(graphene.ObjectType):
    subject = graphene.String(required=True)
    role = graphene.Field(Role, required=True)
    organisation = graphene.ID(description="The producer or buyer this account acts for")


class Query(certification.Query, listings.Query, orders.Query, commitments.Query,
            payouts.Query, graphene.ObjectType):
    me = graphene.Field(Me)

    @staticmethod
    def resolve_me(_root: Any, info: Any) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.caller.context() if ctx.caller else None)


class Mutation(certification.Mutation, listings.Mutation, orders.Mutation,
               commitments.Mutation, payouts.Mutation, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation)
