"""Events the certification service raises: facts about producers and their certificates."""

from __future__ import annotations

from datetime import date

from shared.events import Event
from shared.values import Standard


class CertificationEvent(Event):
    source = "certification"


class ProducerRegistered(CertificationEvent):
    """A cooperative joined Veta."""

    type = "producer_registered"
    producer_id: str
    name: str
    country: str
    region: str


class CertificationGranted(CertificationEvent):
    """A certifier granted a producer a standard for a period."""

    type = "certification_granted"
    certification_id: str
    producer_id: str
    standard: Standard
    certificate_number: str
    valid_from: date
    valid_until: date
