"""GraphQL types for cooperatives, their mine sites, and their certificates with history."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.context import PRODUCER_LOTS, context
from gateway.scalars import Date, DateTime

PRODUCER_LOTS_MAX = PRODUCER_LOTS
"""Lots shown under a producer; more through `listings(filter: {producerId})`."""


class Standard(graphene.Enum):
    FAIRMINED = "FAIRMINED"
    FAIRMINED_ECOLOGICAL = "FAIRMINED_ECOLOGICAL"
    CRAFT = "CRAFT"


class CertificationStatus(graphene.Enum):
    APPLICANT = "APPLICANT"
    CERTIFIED = "CERTIFIED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"


class CertificationChange(graphene.ObjectType):
    """One step in a certificate's life: who moved it, when, and why."""

    version = graphene.Int(required=True)
    from_status = graphene.Field(CertificationStatus)
    to_status = graphene.Field(CertificationStatus, required=True)
    at = DateTime(required=True)
    actor = graphene.String(required=True)
    reason = graphene.String()

    @staticmethod
    def resolve_from_status(change: dict[str, Any], _info: Any) -> str | None:
        return change["from"]

    @staticmethod
    def resolve_to_status(change: dict[str, Any], _info: Any) -> str:
        return str(change["to"])


class Certification(graphene.ObjectType):
    id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    certificate_number = graphene.String(required=True)
    certifier = graphene.String(description="The certification body")
    scope = graphene.List(graphene.NonNull(graphene.String), required=True,
                          description="Mine sites covered; empty covers all the producer's")
    valid_from = Date(required=True)
    valid_until = Date(required=True)
    status = graphene.Field(CertificationStatus, required=True)
    valid_today = graphene.Boolean(required=True)
    history = graphene.List(graphene.NonNull(CertificationChange), required=True)


class ProducerMineSite(graphene.ObjectType):
    name = graphene.String(required=True)
    municipality = graphene.String()
    latitude = graphene.String()
    longitude = graphene.String()
    mineral = graphene.String(required=True)


class Contact(graphene.ObjectType):
    name = graphene.String()
    email = graphene.String()
    phone = graphene.String()


class Producer(graphene.ObjectType):
    """A certified cooperative (or one applying)."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True, description="The legal name")
    country = graphene.String(required=True, description="ISO 3166-1 alpha-2")
    region = graphene.String(required=True)
    mine_sites = graphene.List(graphene.NonNull(ProducerMineSite), required=True)
    contact = graphene.Field(Contact, description="Shown to certifiers, finance and itself")
    stripe_account_id = graphene.String(
        description="Stripe connected account for premium payouts, once onboarded")
    created_at = DateTime()
    updated_at = DateTime()
    certifications = graphene.List(graphene.NonNull(Certification), required=True)
    lots = graphene.List(
        graphene.NonNull(lambda: _listing_type()), required=True,
        first=graphene.Int(default_value=10,
                           description=f"At most {PRODUCER_LOTS_MAX}, newest first"),
        description="The producer's newest lots (drafts only for itself)")

    @staticmethod
    def resolve_lots(producer: dict[str, Any], info: Any, first: int = 10) -> Any:
        ctx = context(info)
        first = max(0, min(first, PRODUCER_LOTS_MAX))
        found = ctx.producer_lots.get(producer["id"])
        lots = (found or {}).get("lots", [])[:first]
        ctx.producers.prime([producer])
        return lots


def _listing_type() -> Any:
    # The lot type lives with listings; imported late because it refers back to Producer.
    from gateway.listings.types import Listing

    return Listing


class ProducerConnection(graphene.relay.Connection):
    class Meta:
        node = Producer


class CertificationStatusAnswer(graphene.ObjectType):
    """What a producer held for a standard at an instant, from the recorded history."""

    producer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    at = DateTime(required=True)
    status = graphene.Field(CertificationStatus,
                            description="Null if it held nothing for the standard then")
