"""GraphQL types for cooperatives and their certificates."""

from __future__ import annotations

import graphene

from gateway.scalars import Date


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


class Certification(graphene.ObjectType):
    id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    certificate_number = graphene.String(required=True)
    valid_from = Date(required=True)
    valid_until = Date(required=True)
    status = graphene.Field(CertificationStatus, required=True)
    valid_today = graphene.Boolean(required=True)


class Producer(graphene.ObjectType):
    """A certified cooperative (or one applying)."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    country = graphene.String(required=True, description="ISO 3166-1 alpha-2")
    region = graphene.String(required=True)
    certifications = graphene.List(graphene.NonNull(Certification), required=True)


class ProducerConnection(graphene.relay.Connection):
    class Meta:
        node = Producer
