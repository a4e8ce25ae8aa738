"""Certification queries and mutations: producers, and the certificates certifiers record."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import Producer, ProducerConnection, Standard
from gateway.context import context
from gateway.errors import UserError
from gateway.inputs import plain
from gateway.scalars import Date
from shared.caller import Role


class Query(graphene.ObjectType):
    producer = graphene.Field(Producer, id=graphene.ID(required=True))
    producers = graphene.Field(ProducerConnection, required=True, first=connections.PageSize,
                               after=connections.After)

    @staticmethod
    def resolve_producer(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.producers.get(id))

    @staticmethod
    def resolve_producers(_root: Any, info: Any, first: int | None = None,
                          after: str | None = None) -> Any:
        ctx = context(info)
        return ctx.read(lambda: connections.build(ProducerConnection, ctx.call(
            "certification", "list_producers", first=first, after=after)))


class RegisterProducerInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    country = graphene.String(required=True, description="ISO 3166-1 alpha-2, e.g. CO")
    region = graphene.String(required=True)


class RegisterProducerPayload(graphene.ObjectType):
    producer = graphene.Field(Producer)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class RegisterProducer(graphene.Mutation):
    """Register a cooperative (CERTIFIER)."""

    class Arguments:
        input = RegisterProducerInput(required=True)

    Output = RegisterProducerPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> RegisterProducerPayload:
        ctx = context(info)
        return ctx.mutate(RegisterProducerPayload, "producer", lambda: ctx.call(
            "certification", "register_producer", plain(input)), Role.CERTIFIER)


class GrantCertificationInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    certificate_number = graphene.String(required=True)
    valid_from = Date(required=True)
    valid_until = Date(required=True)


class GrantCertificationPayload(graphene.ObjectType):
    producer = graphene.Field(Producer)
    errors = graphene.List(graphene.NonNull(UserError), required=True)


class GrantCertification(graphene.Mutation):
    """Record that a producer holds a standard for a period (CERTIFIER)."""

    class Arguments:
        input = GrantCertificationInput(required=True)

    Output = GrantCertificationPayload

    @staticmethod
    def mutate(_root: Any, info: Any, input: Any) -> GrantCertificationPayload:
        ctx = context(info)
        return ctx.mutate(GrantCertificationPayload, "producer", lambda: ctx.call(
            "certification", "grant_certification", plain(input)), Role.CERTIFIER)


class Mutation(graphene.ObjectType):
    register_producer = RegisterProducer.Field()
    grant_certification = GrantCertification.Field()
