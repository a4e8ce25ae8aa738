"""Certification service entrypoints: register producers, grant certificates, answer lookups.

Each entrypoint validates its input, checks the caller, runs the rule from `domain` inside
one unit of work and returns plain dicts. Events leave through the outbox.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from nameko.rpc import rpc
from pydantic import Field

from services.certification import domain, store
from services.certification.events import CertificationGranted, ProducerRegistered
from shared.caller import Caller, CallerIdentity, Role, required
from shared.clock import Clock, Now
from shared.errors import NotFound, VetaError
from shared.messaging import Database
from shared.pagination import decode_cursor, encode_cursor, page_size
from shared.persistence import ServiceDatabase
from shared.validation import Command, CountryCode, Identifier, Name, Reference, parse
from shared.values import Standard

MAX_BATCH = 500


class RegisterProducer(Command):
    name: Name
    country: CountryCode
    region: Name


class GrantCertification(Command):
    producer_id: Identifier
    standard: Standard
    certificate_number: Reference
    valid_from: date
    valid_until: date


class ProducerIds(Command):
    ids: list[Identifier] = Field(max_length=MAX_BATCH)


def producer_view(producer: domain.Producer, certifications: list[domain.Certification],
                  today: date) -> dict[str, Any]:
    return {
        "id": producer.id, "name": producer.name, "country": producer.country,
        "region": producer.region,
        "certifications": [
            {"id": c.id, "standard": str(c.standard), "certificate_number": c.certificate_number,
             "valid_from": c.valid_from.isoformat(), "valid_until": c.valid_until.isoformat(),
             "status": str(c.status), "valid_today": c.is_valid_on(today)}
            for c in certifications if c.producer_id == producer.id
        ],
    }


class CertificationService:
    name = "certification"

    db: ServiceDatabase = Database(store.messaging)
    caller: Caller | None = CallerIdentity()
    clock: Now = Clock()

    @rpc(expected_exceptions=VetaError)
    def register_producer(self, data: dict[str, Any]) -> dict[str, Any]:
        required(self.caller).require(Role.CERTIFIER)
        command = parse(RegisterProducer, data)
        producer = domain.Producer(id=str(uuid.uuid4()), name=command.name,
                                   country=command.country, region=command.region)
        with self.db.unit_of_work() as uow:
            uow.session.add(store.ProducerRow(
                id=producer.id, name=producer.name, country=producer.country,
                region=producer.region, created_at=self.clock.now()))
            uow.raise_event(ProducerRegistered(
                producer_id=producer.id, name=producer.name, country=producer.country,
                region=producer.region))
        return producer_view(producer, [], self.clock.today())

    @rpc(expected_exceptions=VetaError)
    def grant_certification(self, data: dict[str, Any]) -> dict[str, Any]:
        required(self.caller).require(Role.CERTIFIER)
        command = parse(GrantCertification, data)
        with self.db.unit_of_work() as uow:
            producer = uow.session.get(store.ProducerRow, command.producer_id,
                                       with_for_update=True)
            if producer is None:
                raise NotFound("no such producer", field="producer_id")
            existing = store.certifications_of(uow.session, [producer.id])
            certification = domain.grant(
                existing, certification_id=str(uuid.uuid4()), producer_id=producer.id,
                standard=command.standard, certificate_number=command.certificate_number,
                valid_from=command.valid_from, valid_until=command.valid_until)
            uow.session.add(store.CertificationRow.from_domain(certification))
            uow.raise_event(CertificationGranted(
                certification_id=certification.id, producer_id=producer.id,
                standard=certification.standard,
                certificate_number=certification.certificate_number,
                valid_from=certification.valid_from, valid_until=certification.valid_until))
            return producer_view(producer.to_domain(), [*existing, certification],
                                 self.clock.today())

    @rpc(expected_exceptions=VetaError)
    def get_producers(self, ids: list[str]) -> list[dict[str, Any]]:
        """Producers with their certifications, in one call for a whole page of ids."""
        command = parse(ProducerIds, {"ids": ids})
        unique = list(dict.fromkeys(command.ids))
        with self.db.reading() as session:
            producers = store.producers_by_id(session, unique)
            certifications = store.certifications_of(session, unique)
        today = self.clock.today()
        return [producer_view(p, certifications, today) for p in producers]

    @rpc(expected_exceptions=VetaError)
    def list_producers(self, first: int | None = None, after: str | None = None
                       ) -> dict[str, Any]:
        size = page_size(first)
        with self.db.reading() as session:
            rows = store.page_of_producers(session, size + 1, decode_cursor(after))
            certifications = store.certifications_of(session, [row.id for row in rows])
        today = self.clock.today()
        return {
            "items": [{"cursor": encode_cursor(row.created_at, row.id),
                       "node": producer_view(row.to_domain(), certifications, today)}
                      for row in rows[:size]],
            "has_next_page": len(rows) > size,
        }
