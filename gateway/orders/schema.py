"""Orders queries and mutations: place, cancel, decline, ship and receive orders; find them.

Roles are checked here and ownership again in the orders service: a buyer sees and acts on
its own orders only, a producer on the orders for its lots.
"""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.context import context
from gateway.errors import Refused, UserError
from gateway.inputs import keyed_command, plain
from gateway.orders.types import LbmaFixing, Order, OrderConnection, OrderStatus
from gateway.scalars import Date
from shared.caller import Role


class OrderFilter(graphene.InputObjectType):
    status = graphene.List(graphene.NonNull(OrderStatus), description="Any of these")
    listing_id = graphene.ID(description="Orders for this lot")
    placed_from = Date(description="Placed on or after this day (UTC)")
    placed_to = Date(description="Placed on or before this day (UTC)")


class Query(graphene.ObjectType):
    order = graphene.Field(Order, id=graphene.ID(required=True))
    orders = graphene.Field(OrderConnection, required=True, filter=OrderFilter(),
                            first=connections.PageSize, after=connections.After,
                            description="A buyer's own orders, a producer's for its lots; "
                                        "newest first")

    @staticmethod
    def resolve_order(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)

        def find() -> Any:
            found = ctx.orders.get(id)
            if not found:
                raise Refused("NOT_FOUND", "no such order", "id")
            return found
        return ctx.read(find, Role.BUYER, Role.PRODUCER, Role.FINANCE)

    @staticmethod
    def resolve_orders(_root: Any, info: Any, filter: Any = None, first: int | None = None,
                       after: str | None = None) -> Any:
        ctx = context(info)

        def page() -> Any:
            result = connections.build(OrderConnection, ctx.call(
                "orders", "list_orders", filter=plain(filter or {}), first=first, after=after))
            ctx.listings.expect(order["listing_id"] for order in connections.nodes(result))
            return result
        return ctx.read(page, Role.BUYER, Role.PRODUCER, Role.FINANCE)


class OrderPayload(graphene.ObjectType):
    order = graphene.Field(Order)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


def order_mutation(method: str, *roles: Role) -> Any:
    """A resolver that sends the mutation's input to the orders service as is."""

    def mutate(_root: Any, info: Any, input: Any) -> OrderPayload:
        ctx = context(info)
        return ctx.mutate(OrderPayload, "order", lambda: ctx.call(
            "orders", method, plain(input)), *roles)
    return mutate


class PriceBasisInput(graphene.InputObjectType):
    percent_of_lbma = graphene.String(required=True,
                                      description="Share of the LBMA price, e.g. \"98.50\"; "
                                                  "Fairmined gold: at least 95")
    fixing = graphene.Field(LbmaFixing, description="AM or PM fixing (default PM)")


class PlaceOrderInput(graphene.InputObjectType):
    buyer_id = graphene.ID(required=True)
    listing_id = graphene.ID(required=True)
    fine_weight = graphene.String(required=True, description="Fine gold wanted, in grams")
    price_basis = graphene.Field(PriceBasisInput)
    idempotency_key = graphene.String(
        description="Send the same key again (a retry after a timeout) to get the same order "
                    "back rather than a second one; one is made up if you send none.")


class PlaceOrder(graphene.Mutation):
    """Order fine gold from a lot (BUYER); it is PENDING until the lot reserves it."""

    class Arguments:
        input = PlaceOrderInput(required=True)

    Output = OrderPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> OrderPayload:
        ctx = context(info)
        command = keyed_command(input)
        return ctx.mutate(OrderPayload, "order", lambda: ctx.call(
            "orders", "place_order", command), Role.BUYER)


class CancelOrderInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    reason = graphene.String()


class CancelOrder(graphene.Mutation):
    """Withdraw an order before it ships, also while on hold (BUYER); the gold goes back."""

    class Arguments:
        input = CancelOrderInput(required=True)

    Output = OrderPayload
    mutate = order_mutation("cancel_order", Role.BUYER)


class DeclineOrderInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    reason = graphene.String(required=True)


class DeclineOrder(graphene.Mutation):
    """Refuse a confirmed order before shipping it, saying why (PRODUCER)."""

    class Arguments:
        input = DeclineOrderInput(required=True)

    Output = OrderPayload
    mutate = order_mutation("decline_order", Role.PRODUCER)


class MarkOrderShippedInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    shipment_reference = graphene.String(required=True, description="Tracking reference")
    carrier = graphene.String()
    export_permit = graphene.String(description="The export permit the gold travels under")


class MarkOrderShipped(graphene.Mutation):
    """The producer sent the gold (PRODUCER)."""

    class Arguments:
        input = MarkOrderShippedInput(required=True)

    Output = OrderPayload
    mutate = order_mutation("mark_order_shipped", Role.PRODUCER)


class ConfirmDeliveryInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)
    received_gross_weight = graphene.String(required=True, description="Grams on arrival")
    received_fineness = graphene.String(required=True, description="Per mille, by assay")


class ConfirmDelivery(graphene.Mutation):
    """The buyer received and assayed the gold (BUYER); the premium becomes owed and
    matching sourcing commitments are drawn down."""

    class Arguments:
        input = ConfirmDeliveryInput(required=True)

    Output = OrderPayload
    mutate = order_mutation("confirm_delivery", Role.BUYER)


class SettleOrderInput(graphene.InputObjectType):
    order_id = graphene.ID(required=True)


class SettleOrder(graphene.Mutation):
    """Close a delivered order by hand (FINANCE). Orders carrying a premium settle by
    themselves when it reaches the cooperative; this is for those that carry none (CRAFT)."""

    class Arguments:
        input = SettleOrderInput(required=True)

    Output = OrderPayload
    mutate = order_mutation("settle_order", Role.FINANCE)


class Mutation(graphene.ObjectType):
    settle_order = SettleOrder.Field()
    place_order = PlaceOrder.Field()
    cancel_order = CancelOrder.Field()
    decline_order = DeclineOrder.Field()
    mark_order_shipped = MarkOrderShipped.Field()
    confirm_delivery = ConfirmDelivery.Field()
