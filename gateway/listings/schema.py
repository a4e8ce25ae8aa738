"""Listings queries and mutations: search certified lots; draft, publish, edit, withdraw one."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import Standard
from gateway.context import context
from gateway.errors import UserError
from gateway.inputs import plain
from gateway.listings.types import Listing, ListingConnection, ListingSort, LotForm, LotStatus
from gateway.scalars import Date
from shared.caller import Role


class ListingFilter(graphene.InputObjectType):
    standard = graphene.List(graphene.NonNull(Standard), description="Any of these")
    producer_id = graphene.ID()
    country = graphene.String(description="ISO 3166-1 alpha-2 of the mine site")
    region = graphene.String(description="The mine site's region, exactly")
    form = graphene.List(graphene.NonNull(LotForm), description="Any of these")
    mercury_free = graphene.Boolean()
    min_fineness = graphene.String(description="Per mille, e.g. \"900.0\"")
    max_fineness = graphene.String(description="Per mille, e.g. \"999.9\"")
    min_available_fine_weight = graphene.String(description="Grams, e.g. \"100.000\"")
    status = graphene.List(graphene.NonNull(LotStatus),
                           description="Default: lots that can be ordered. Drafts only "
                                       "with your own producerId.")
    text = graphene.String(description="Words to find in producer or mine-site names")


class Query(graphene.ObjectType):
    listing = graphene.Field(Listing, id=graphene.ID(required=True))
    listings = graphene.Field(ListingConnection, required=True, filter=ListingFilter(),
                              sort=graphene.Argument(ListingSort, default_value="NEWEST"),
                              first=connections.PageSize, after=connections.After)

    @staticmethod
    def resolve_listing(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.listings.get(id))

    @staticmethod
    def resolve_listings(_root: Any, info: Any, filter: Any = None, sort: Any = "NEWEST",
                         first: int | None = None, after: str | None = None) -> Any:
        ctx = context(info)

        def search() -> Any:
            page = connections.build(ListingConnection, ctx.call(
                "listings", "search_listings", plain(filter or {}), first, after,
                plain(sort)))
            producer_ids = [lot["producer_id"] for lot in connections.nodes(page)]
            ctx.producers.expect(producer_ids)
            ctx.producer_lots.expect(producer_ids)
            return page
        return ctx.read(search)


class MineSiteInput(graphene.InputObjectType):
    name = graphene.String(required=True, description="As in the certificate's scope")
    region = graphene.String(required=True)
    country = graphene.String(required=True)
    latitude = graphene.String()
    longitude = graphene.String()


class LotFields:
    """What a lot says about itself; shared by every input that creates or edits one."""

    form = graphene.Field(LotForm)
    gross_weight = graphene.String(description="Grams, e.g. \"1000.000\"")
    fineness = graphene.String(description="Per mille, e.g. \"915.0\"")
    mine_site = graphene.Field(MineSiteInput)
    mercury_free = graphene.Boolean(description="Required true for FAIRMINED_ECOLOGICAL")
    assay_reference = graphene.String()
    assay_lab = graphene.String()
    extraction_from = Date()
    extraction_until = Date()
    export_permit = graphene.String()
    price_basis_permille = graphene.Int(
        description="Per mille against LBMA (default 0); Fairmined lots at least -50")


class PublishListingInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    form = graphene.Field(LotForm, required=True)
    gross_weight = graphene.String(required=True, description="Grams, e.g. \"1000.000\"")
    fineness = graphene.String(required=True, description="Per mille, e.g. \"915.0\"")
    mine_site = graphene.Field(MineSiteInput, required=True)
    mercury_free = graphene.Boolean(required=True)
    assay_reference = graphene.String(required=True)
    assay_lab = LotFields.assay_lab
    extraction_from = LotFields.extraction_from
    extraction_until = LotFields.extraction_until
    export_permit = LotFields.export_permit
    price_basis_permille = LotFields.price_basis_permille


class ListingIdInput(graphene.InputObjectType):
    listing_id = graphene.ID(required=True)


class UpdateListingInput(graphene.InputObjectType):
    """Only the fields given change; weight, fineness, standard and origin are frozen once
    buyers have ordered from the lot."""

    listing_id = graphene.ID(required=True)
    standard = graphene.Field(Standard)
    form = LotFields.form
    gross_weight = LotFields.gross_weight
    fineness = LotFields.fineness
    mine_site = LotFields.mine_site
    mercury_free = LotFields.mercury_free
    assay_reference = LotFields.assay_reference
    assay_lab = LotFields.assay_lab
    extraction_from = LotFields.extraction_from
    extraction_until = LotFields.extraction_until
    export_permit = LotFields.export_permit
    price_basis_permille = LotFields.price_basis_permille


class WithdrawListingInput(graphene.InputObjectType):
    listing_id = graphene.ID(required=True)
    reason = graphene.String()


def _payload(name: str) -> Any:
    return type(name, (graphene.ObjectType,), {
        "listing": graphene.Field(Listing),
        "errors": graphene.List(graphene.NonNull(UserError), required=True)})


PublishListingPayload = _payload("PublishListingPayload")
CreateListingDraftPayload = _payload("CreateListingDraftPayload")
PublishListingDraftPayload = _payload("PublishListingDraftPayload")
UpdateListingPayload = _payload("UpdateListingPayload")
WithdrawListingPayload = _payload("WithdrawListingPayload")


def _listing_mutation(payload: Any, method: str) -> Any:
    def mutate(_root: Any, info: Any, input: Any) -> Any:
        ctx = context(info)
        return ctx.mutate(payload, "listing", lambda: ctx.call(
            "listings", method, plain(input)), Role.PRODUCER)
    return staticmethod(mutate)


class PublishListing(graphene.Mutation):
    """Put a lot on the market under a standard the producer holds today (PRODUCER)."""

    class Arguments:
        input = PublishListingInput(required=True)

    Output = PublishListingPayload
    mutate = _listing_mutation(PublishListingPayload, "publish_listing")


class CreateListingDraft(graphene.Mutation):
    """Save a lot as a draft, seen only by its producer, to publish later (PRODUCER)."""

    class Arguments:
        input = PublishListingInput(required=True)

    Output = CreateListingDraftPayload
    mutate = _listing_mutation(CreateListingDraftPayload, "create_listing_draft")


class PublishListingDraft(graphene.Mutation):
    """Publish a draft, once the producer holds its standard for its mine site (PRODUCER)."""

    class Arguments:
        input = ListingIdInput(required=True)

    Output = PublishListingDraftPayload
    mutate = _listing_mutation(PublishListingDraftPayload, "publish_listing_draft")


class UpdateListing(graphene.Mutation):
    """Edit a draft or published lot of your own (PRODUCER)."""

    class Arguments:
        input = UpdateListingInput(required=True)

    Output = UpdateListingPayload
    mutate = _listing_mutation(UpdateListingPayload, "update_listing")


class WithdrawListing(graphene.Mutation):
    """Take a lot off the market; reservations already made stand (PRODUCER)."""

    class Arguments:
        input = WithdrawListingInput(required=True)

    Output = WithdrawListingPayload
    mutate = _listing_mutation(WithdrawListingPayload, "withdraw_listing")


class Mutation(graphene.ObjectType):
    publish_listing = PublishListing.Field()
    create_listing_draft = CreateListingDraft.Field()
    publish_listing_draft = PublishListingDraft.Field()
    update_listing = UpdateListing.Field()
    withdraw_listing = WithdrawListing.Field()
