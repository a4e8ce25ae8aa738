"""GraphQL types for lots of gold on the market."""

from __future__ import annotations

from typing import Any

import graphene

from gateway.certification.types import CertificationStatus, Producer, Standard
from gateway.context import context
from gateway.scalars import Date, DateTime, Weight


class LotForm(graphene.Enum):
    DORE = "DORE"
    GRAIN = "GRAIN"
    NUGGET = "NUGGET"
    CAST_BAR = "CAST_BAR"


class LotStatus(graphene.Enum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    PARTIALLY_RESERVED = "PARTIALLY_RESERVED"
    SOLD_OUT = "SOLD_OUT"
    WITHDRAWN = "WITHDRAWN"
    SUSPENDED = "SUSPENDED"


class ListingSort(graphene.Enum):
    NEWEST = "NEWEST"
    FINENESS = "FINENESS"
    AVAILABLE_WEIGHT = "AVAILABLE_WEIGHT"

    @property
    def description(self) -> str:
        return {"NEWEST": "Most recently listed first",
                "FINENESS": "Highest fineness first",
                "AVAILABLE_WEIGHT": "Most fine gold available first"}[self.name]


class MineSite(graphene.ObjectType):
    name = graphene.String(required=True)
    region = graphene.String(required=True)
    country = graphene.String(required=True)
    latitude = graphene.String()
    longitude = graphene.String()


class Listing(graphene.ObjectType):
    """A lot of certified gold a producer offers."""

    id = graphene.ID(required=True)
    producer = graphene.Field(Producer)
    producer_name = graphene.String(required=True)
    certification_status = graphene.Field(
        CertificationStatus,
        description="The producer's status today for the standard this lot claims.")
    standard = graphene.Field(Standard, required=True)
    form = graphene.Field(LotForm, required=True)
    gross_weight = graphene.Field(Weight, required=True)
    fineness = graphene.String(required=True, description="Per mille, e.g. \"915.0\"")
    fine_weight = graphene.Field(Weight, required=True)
    available_fine_weight = graphene.Field(Weight, required=True)
    mine_site = graphene.Field(MineSite, required=True)
    mercury_free = graphene.Boolean(required=True)
    assay_reference = graphene.String(required=True)
    assay_lab = graphene.String()
    extraction_from = Date()
    extraction_until = Date()
    export_permit = graphene.String(description="Export permit reference, if any")
    price_basis_permille = graphene.Int(
        required=True,
        description="Asking price against the LBMA price of the day, in per mille: -30 is "
                    "LBMA less 3.0%. Fairmined lots never go below -50 (95% of LBMA).")
    status = graphene.Field(LotStatus, required=True)
    created_at = DateTime(required=True)
    updated_at = DateTime()

    @staticmethod
    def resolve_producer(lot: dict[str, Any], info: Any) -> Any:
        return context(info).producers.get(lot["producer_id"])

    @staticmethod
    def resolve_certification_status(lot: dict[str, Any], info: Any) -> str | None:
        producer = context(info).producers.get(lot["producer_id"])
        if producer is None:
            return None
        held = [c for c in producer["certifications"] if c["standard"] == lot["standard"]]
        if any(c["valid_today"] for c in held):
            return "CERTIFIED"
        return held[-1]["status"] if held else None

    @staticmethod
    def resolve_gross_weight(lot: dict[str, Any], _info: Any) -> Any:
        return Weight.of(lot["gross_weight"])

    @staticmethod
    def resolve_fine_weight(lot: dict[str, Any], _info: Any) -> Any:
        return Weight.of(lot["fine_weight"])

    @staticmethod
    def resolve_available_fine_weight(lot: dict[str, Any], _info: Any) -> Any:
        return Weight.of(lot["available_fine_weight"])


class ListingConnection(graphene.relay.Connection):
    class Meta:
        node = Listing
