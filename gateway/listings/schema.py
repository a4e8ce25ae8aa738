"""Listings queries and mutations: search certified lots, publish a lot."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import Standard
from gateway.context import context
from gateway.errors import UserError
from gateway.inputs import plain
from gateway.listings.types import Listing, ListingConnection, LotForm
from shared.caller import Role


class ListingFilter(graphene.InputObjectType):
    standard = graphene.List(graphene.NonNull(Standard))
    min_fineness = graphene.String(description="Per mille, e.g. \"900.0\"")
    country = graphene.String(description="ISO 3166-1 alpha-2 of the mine site")


class Query(graphene.ObjectType):
    listing = graphene.Field(Listing, id=graphene.ID(required=True))
    listings = graphene.Field(ListingConnection, required=True, filter=ListingFilter(),
                              first=connections.PageSize, after=connections.After)

    @staticmethod
    def resolve_listing(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.listings.get(id))

    @staticmethod
    def resolve_listings(_root: Any, info: Any, filter: Any = None, first: int | None = None,
                         after: str | None = None) -> Any:
        ctx = context(info)

        def search() -> Any:
            page = connections.build(ListingConnection, ctx.call(
                "listings", "search_listings", plain(filter or {}), first, after))
            ctx.producers.expect(lot["producer_id"] for lot in connections.nodes(page))
            return page
        return ctx.read(search)


class MineSiteInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    region = graphene.String(required=True)
    country = graphene.String(required=True)
    latitude = graphene.String()
    longitude = graphene.String()


class PublishListingInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    form = graphene.Field(LotForm, required=True)
    gross_weight = graphene.String(required=True, description="Grams, e.g. \"1000.000\"")
    fineness = graphene.String(required=True, description="Per mille, e.g. \"915.0\"")
    mine_site = graphene.Field(MineSiteInput, required=True)
    mercury_free = graphene.Boolean(required=True)
    assay_reference = graphene.String(required=True)


class PublishListingPayload(graphene.ObjectType):
    listing = graphene.Field(Listing)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class PublishListing(graphene.Mutation):
    """Put a lot on the market under a standard the producer holds today (PRODUCER)."""

    class Arguments:
        input = PublishListingInput(required=True)

    Output = PublishListingPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> PublishListingPayload:
        ctx = context(info)
        return ctx.mutate(PublishListingPayload, "listing", lambda: ctx.call(
            "listings", "publish_listing", plain(input)), Role.PRODUCER)


class Mutation(graphene.ObjectType):
    publish_listing = PublishListing.Field()
