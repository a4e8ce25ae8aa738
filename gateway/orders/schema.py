"""Orders queries and mutations: place an order, ship it, confirm its delivery."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.context import context
from gateway.errors import Refused, UserError
from gateway.inputs import plain
from gateway.orders.types import Order, OrderConnection
from shared.caller import Role


class Query(graphene.ObjectType):
    order = graphene.Field(Order, id=graphene.ID(required=True))
    orders = graphene.Field(OrderConnection, required=True, first=connections.PageSize,
                            after=connections.After)

    @staticmethod
    def resolve_order(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)

        def find() -> Any:
            found = ctx.call("orders", "get_orders", [id])
            if not found:
                raise Refused("NOT_FOUND", "no such order", "id")
            return found[0]
        return ctx.read(find)

    @staticmethod
    def resolve_orders(_root: Any, info: Any, first: int | None = None,
                       after: str | None = None) -> Any:
        ctx = context(info)

        def page() -> Any:
            result = connections.build(OrderConnection, ctx.call(
                "orders", "list_orders", first=first, after=after))
            ctx.listings.expect(order["listing_id"] for order in connections.nodes(result))
            return result
        return ctx.read(page)


class OrderPayload(graphene.ObjectType):
    order = graphene.Field(Order)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class PlaceOrderInput(graphene.InputObjectType):
    buyer_id = graphene.ID(required=True)
    listing_id = graphene.ID(required=True)
    fine_weight = graphene.String(required=True, description="Fine gold wanted, in grams")


class PlaceOrder(graphene.Mutation):
    """Order fine gold from a lot (BUYER); it is PENDING until the lot reserves it."""

    class Arguments:
        input = PlaceOrderInput(required=True)

    Output = OrderPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> OrderPayload:
        ctx = context(info)
        return ctx.mutate(OrderPayload, "order", lambda: ctx.call(
            "orders", "place_order", plain(input)), Role.BUYER)


class MarkOrderShippedInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    shipment_reference = graphene.String(required=True)


class MarkOrderShipped(graphene.Mutation):
    """The producer sent the gold (PRODUCER)."""

    class Arguments:
        input = MarkOrderShippedInput(required=True)

    Output = OrderPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> OrderPayload:
        ctx = context(info)
        return ctx.mutate(OrderPayload, "order", lambda: ctx.call(
            "orders", "mark_order_shipped", plain(input)), Role.PRODUCER)


class ConfirmDeliveryInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    received_gross_weight = graphene.String(required=True, description="Grams on arrival")
    received_fineness = graphene.String(required=True, description="Per mille, by assay")


class ConfirmDelivery(graphene.Mutation):
    """The buyer received and assayed the gold (BUYER); the premium becomes owed."""

    class Arguments:
        input = ConfirmDeliveryInput(required=True)

    Output = OrderPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> OrderPayload:
        ctx = context(info)
        return ctx.mutate(OrderPayload, "order", lambda: ctx.call(
            "orders", "confirm_delivery", plain(input)), Role.BUYER)


class Mutation(graphene.ObjectType):
    place_order = PlaceOrder.Field()
    mark_order_shipped = MarkOrderShipped.Field()
    confirm_delivery = ConfirmDelivery.Field()
