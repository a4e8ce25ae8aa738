"""Certification queries and mutations: producers, and the certificates certifiers record."""

from __future__ import annotations

from typing import Any

import graphene

from gateway import connections
from gateway.certification.types import (
    CertificationStatusAnswer,
    Producer,
    ProducerConnection,
    Standard,
)
from gateway.context import context
from gateway.errors import UserError
from gateway.inputs import plain
from gateway.scalars import Date
from shared.caller import Role


class Query(graphene.ObjectType):
    producer = graphene.Field(Producer, id=graphene.ID(required=True))
    producers = graphene.Field(ProducerConnection, required=True, first=connections.PageSize,
                               after=connections.After)
    certification_status = graphene.Field(
        CertificationStatusAnswer, required=True, producer_id=graphene.ID(required=True),
        standard=graphene.Argument(Standard, required=True),
        at=graphene.String(description="ISO date (the close of that day) or instant with "
                                       "offset; now if omitted"),
        description="A producer's status for a standard at any past instant")

    @staticmethod
    def resolve_producer(_root: Any, info: Any, id: str) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.producers.get(id))

    @staticmethod
    def resolve_producers(_root: Any, info: Any, first: int | None = None,
                          after: str | None = None) -> Any:
        ctx = context(info)

        def page() -> Any:
            built = connections.build(ProducerConnection, ctx.call(
                "certification", "list_producers", first=first, after=after))
            producers = connections.nodes(built)
            ctx.producers.prime(producers)
            ctx.producer_lots.expect(p["id"] for p in producers)
            return built
        return ctx.read(page)

    @staticmethod
    def resolve_certification_status(_root: Any, info: Any, producer_id: str, standard: Any,
                                     at: str | None = None) -> Any:
        ctx = context(info)
        return ctx.read(lambda: ctx.call("certification", "certification_status",
                                         producer_id, plain(standard), at))


class ProducerMineSiteInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    municipality = graphene.String()
    latitude = graphene.String()
    longitude = graphene.String()
    mineral = graphene.String()


class ContactInput(graphene.InputObjectType):
    name = graphene.String()
    email = graphene.String()
    phone = graphene.String()


class RegisterProducerInput(graphene.InputObjectType):
    name = graphene.String(required=True, description="The legal name")
    country = graphene.String(required=True, description="ISO 3166-1 alpha-2, e.g. CO")
    region = graphene.String(required=True)
    mine_sites = graphene.List(graphene.NonNull(ProducerMineSiteInput))
    contact = graphene.Field(ContactInput)


def _payload(name: str) -> Any:
    """Each mutation has its own payload type, as the public schema names them."""
    return type(name, (graphene.ObjectType,), {
        "producer": graphene.Field(Producer),
        "errors": graphene.List(graphene.NonNull(UserError), required=True)})


RegisterProducerPayload = _payload("RegisterProducerPayload")
UpdateProducerPayload = _payload("UpdateProducerPayload")
GrantCertificationPayload = _payload("GrantCertificationPayload")
SuspendCertificationPayload = _payload("SuspendCertificationPayload")
ReinstateCertificationPayload = _payload("ReinstateCertificationPayload")
WithdrawCertificationPayload = _payload("WithdrawCertificationPayload")


def _producer_mutation(payload: Any, method: str, *roles: Role) -> Any:
    def mutate(_root: Any, info: Any, input: Any) -> Any:
        ctx = context(info)
        return ctx.mutate(payload, "producer", lambda: ctx.call(
            "certification", method, plain(input)), *roles)
    return staticmethod(mutate)


class RegisterProducer(graphene.Mutation):
    """Register a cooperative (CERTIFIER)."""

    class Arguments:
        input = RegisterProducerInput(required=True)

    Output = RegisterProducerPayload
    mutate = _producer_mutation(RegisterProducerPayload, "register_producer", Role.CERTIFIER)


class UpdateProducerInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    name = graphene.String()
    country = graphene.String()
    region = graphene.String()
    mine_sites = graphene.List(graphene.NonNull(ProducerMineSiteInput),
                               description="Replaces the list; a covered site must stay")
    contact = graphene.Field(ContactInput)
    stripe_account_id = graphene.String(description="FINANCE only: acct_…")


class UpdateProducer(graphene.Mutation):
    """Change a producer: CERTIFIER all details, the PRODUCER its contact, FINANCE its
    Stripe account."""

    class Arguments:
        input = UpdateProducerInput(required=True)

    Output = UpdateProducerPayload
    mutate = _producer_mutation(UpdateProducerPayload, "update_producer",
                                Role.CERTIFIER, Role.PRODUCER, Role.FINANCE)


class GrantCertificationInput(graphene.InputObjectType):
    producer_id = graphene.ID(required=True)
    standard = graphene.Field(Standard, required=True)
    certificate_number = graphene.String(required=True)
    certifier = graphene.String(description="The certification body")
    scope = graphene.List(graphene.NonNull(graphene.String),
                          description="Mine-site names covered; omit to cover all")
    valid_from = Date(required=True)
    valid_until = Date(required=True)


class GrantCertification(graphene.Mutation):
    """Record that a producer holds a standard for a period (CERTIFIER)."""

    class Arguments:
        input = GrantCertificationInput(required=True)

    Output = GrantCertificationPayload
    mutate = _producer_mutation(GrantCertificationPayload, "grant_certification",
                                Role.CERTIFIER)


class CertificationChangeInput(graphene.InputObjectType):
    certification_id = graphene.ID(required=True)
    reason = graphene.String(description="Required to suspend or withdraw")


class SuspendCertification(graphene.Mutation):
    """Suspend a certificate: the producer's lots under it leave the market (CERTIFIER)."""

    class Arguments:
        input = CertificationChangeInput(required=True)

    Output = SuspendCertificationPayload
    mutate = _producer_mutation(SuspendCertificationPayload, "suspend_certification",
                                Role.CERTIFIER)


class ReinstateCertification(graphene.Mutation):
    """Lift a suspension: the producer's lots under it come back (CERTIFIER)."""

    class Arguments:
        input = CertificationChangeInput(required=True)

    Output = ReinstateCertificationPayload
    mutate = _producer_mutation(ReinstateCertificationPayload, "reinstate_certification",
                                Role.CERTIFIER)


class WithdrawCertification(graphene.Mutation):
    """Withdraw a certificate for good; it cannot be reinstated (CERTIFIER)."""

    class Arguments:
        input = CertificationChangeInput(required=True)

    Output = WithdrawCertificationPayload
    mutate = _producer_mutation(WithdrawCertificationPayload, "withdraw_certification",
                                Role.CERTIFIER)


class Mutation(graphene.ObjectType):
    register_producer = RegisterProducer.Field()
    update_producer = UpdateProducer.Field()
    grant_certification = GrantCertification.Field()
    suspend_certification = SuspendCertification.Field()
    reinstate_certification = ReinstateCertification.Field()
    withdraw_certification = WithdrawCertification.Field()

