"""GraphQL types for sourcing commitments: their terms, progress, drawdowns and the lots that
would fill what remains."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import graphene

from gateway.certification.types import Producer, Standard
from gateway.context import RequestContext, context
from gateway.listings.types import Listing
from gateway.orders.types import Order
from gateway.scalars import Date, DateTime, Weight
from shared.values import format_grams

SEARCH_PAGE = 100


class CommitmentStatus(graphene.Enum):
    ACTIVE = "ACTIVE"
    FULFILLED = "FULFILLED"
    LAPSED = "LAPSED"
    CANCELLED = "CANCELLED"


class Pace(graphene.Enum):
    """Whether at least the elapsed share of the period's quantity has been delivered."""

    ON_TRACK = "ON_TRACK"
    BEHIND = "BEHIND"


class CommitmentProgress(graphene.ObjectType):
    committed = graphene.Field(Weight, required=True)
    ordered = graphene.Field(Weight, required=True,
                             description="Fine gold on matching orders placed in the period "
                                         "and not rejected or cancelled")
    delivered = graphene.Field(Weight, required=True,
                               description="Delivered fine gold drawn against it")
    remaining = graphene.Field(Weight, required=True)
    expected = graphene.Field(Weight, required=True,
                              description="What an even pace would have delivered by today")
    percentage = graphene.String(required=True, description="Delivered over committed, %")
    elapsed_share = graphene.String(required=True, description="Share of the period gone, "
                                                               "0 to 1")
    pace = graphene.Field(Pace, required=True)

    @staticmethod
    def resolve_committed(p: dict[str, Any], _info: Any) -> Any:
        return Weight.of(p["committed"])

    @staticmethod
    def resolve_ordered(p: dict[str, Any], _info: Any) -> Any:
        return Weight.of(p["ordered"])

    @staticmethod
    def resolve_delivered(p: dict[str, Any], _info: Any) -> Any:
        return Weight.of(p["delivered"])

    @staticmethod
    def resolve_remaining(p: dict[str, Any], _info: Any) -> Any:
        return Weight.of(p["remaining"])

    @staticmethod
    def resolve_expected(p: dict[str, Any], _info: Any) -> Any:
        return Weight.of(p["expected"])


class Drawdown(graphene.ObjectType):
    """What one delivered order counted towards a commitment (part of it, if it straddled)."""

    order = graphene.Field(Order)
    order_id = graphene.ID(required=True)
    fine_weight = graphene.Field(Weight, required=True)
    delivered_on = Date(required=True)

    @staticmethod
    def resolve_order(d: dict[str, Any], info: Any) -> Any:
        return context(info).orders.get(d["order_id"])

    @staticmethod
    def resolve_fine_weight(d: dict[str, Any], _info: Any) -> Any:
        return Weight.of(d["fine_weight"])


class LotSuggestion(graphene.ObjectType):
    """A lot on the market that matches a commitment, and how much of it would help."""

    listing = graphene.Field(Listing, required=True)
    suggested_fine_weight = graphene.Field(
        Weight, required=True, description="The lot's available fine gold, up to what remains")
    fills_remainder = graphene.Boolean(required=True,
                                       description="One order for this lot would fulfil it")

    @staticmethod
    def resolve_suggested_fine_weight(s: dict[str, Any], _info: Any) -> Any:
        return Weight.of(s["suggested_fine_weight"])


class Commitment(graphene.ObjectType):
    """A buyer's promise to source fine gold under some standards over a period."""

    id = graphene.ID(required=True)
    buyer_id = graphene.ID(required=True)
    fine_weight = graphene.Field(Weight, required=True, description="Fine gold committed")
    standards = graphene.List(graphene.NonNull(Standard), required=True)
    countries = graphene.List(graphene.NonNull(graphene.String), required=True,
                              description="Mine-site countries it is limited to; empty: any")
    producer_ids = graphene.List(graphene.NonNull(graphene.ID), required=True,
                                 description="Producers it is limited to; empty: any")
    producers = graphene.List(graphene.NonNull(Producer), required=True)
    price_ceiling = graphene.String(description="At most this % of the LBMA price")
    period_start = Date(required=True)
    period_end = Date(required=True)
    status = graphene.Field(CommitmentStatus, required=True)
    reason = graphene.String()
    progress = graphene.Field(CommitmentProgress, required=True)
    drawdowns = graphene.List(graphene.NonNull(Drawdown), required=True)
    lots_to_fill_remainder = graphene.List(
        graphene.NonNull(LotSuggestion), required=True,
        first=graphene.Int(default_value=10, description="How many lots, 1 to 100"),
        description="Orderable lots matching the commitment's standards, countries and "
                    "producers, best first: those that alone fill what remains (least left "
                    "over first), then the largest others")
    created_at = DateTime(required=True)
    updated_at = DateTime(required=True)

    @staticmethod
    def resolve_fine_weight(c: dict[str, Any], _info: Any) -> Any:
        return Weight.of(c["fine_weight"])

    @staticmethod
    def resolve_producers(c: dict[str, Any], info: Any) -> Any:
        loader = context(info).producers
        loader.expect(c["producer_ids"])
        return [p for p in (loader.get(i) for i in c["producer_ids"]) if p]

    @staticmethod
    def resolve_price_ceiling(c: dict[str, Any], _info: Any) -> Any:
        return c["price_ceiling_percent"]

    @staticmethod
    def resolve_lots_to_fill_remainder(c: dict[str, Any], info: Any, first: int = 10) -> Any:
        ctx = context(info)
        return ctx.read(lambda: lots_to_fill(ctx, c, max(1, min(first, SEARCH_PAGE))))


def milligrams(grams: str) -> int:
    """A weight the services sent (a decimal string of grams, zero allowed) in milligrams."""
    return int(Decimal(grams) * 1000)


def lots_to_fill(ctx: RequestContext, commitment: dict[str, Any],
                 first: int) -> list[dict[str, Any]]:
    """Search listings with the commitment's filters and rank what comes back.

    Composition only: one search for orderable lots under the commitment's standards, in its
    countries and from its producers if it names any, most available gold first (the
    SEARCH_PAGE largest); the gateway then ranks them against what remains.
    """
    remaining = milligrams(commitment["progress"]["remaining"])
    if commitment["status"] != "ACTIVE" or remaining == 0:
        return []
    search: dict[str, Any] = {"standard": commitment["standards"]}
    if commitment["countries"]:
        search["country"] = commitment["countries"]
    if commitment["producer_ids"]:
        search["producer_id"] = commitment["producer_ids"]
    page = ctx.call("listings", "search_listings", search, SEARCH_PAGE, None,
                    "AVAILABLE_WEIGHT")
    candidates = [(item["node"], milligrams(item["node"]["available_fine_weight"]))
                  for item in page["items"]]

    def best_first(candidate: tuple[dict[str, Any], int]) -> tuple[int, int, str]:
        lot, available = candidate
        if available >= remaining:
            return (0, available - remaining, lot["id"])  # fills it, least left over first
        return (1, -available, lot["id"])  # then the largest, fewest orders to fill it

    ranked = sorted((c for c in candidates if c[1] > 0), key=best_first)[:first]
    ctx.producers.expect(lot["producer_id"] for lot, _ in ranked)
    return [{"listing": lot, "suggested_fine_weight": format_grams(min(available, remaining)),
             "fills_remainder": available >= remaining} for lot, available in ranked]


class CommitmentConnection(graphene.relay.Connection):
    class Meta:
        node = Commitment
