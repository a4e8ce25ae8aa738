"""Events the certification service raises: facts about producers and their certificates."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from shared.events import Event
from shared.values import Standard


class MineSiteFacts(BaseModel):
    """A producer's mine site as events carry it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    municipality: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    mineral: str = "gold"


class CertificationEvent(Event):
    source = "certification"


class ProducerRegistered(CertificationEvent):
    """A cooperative joined Veta."""

    type = "producer_registered"
    producer_id: str
    name: str
    country: str
    region: str
    mine_sites: list[MineSiteFacts] = []
    version: int = 1


class CertificationGranted(CertificationEvent):
    """A certifier granted a producer a standard for a period."""

    type = "certification_granted"
    certification_id: str
    producer_id: str
    standard: Standard
    certificate_number: str
    valid_from: date
    valid_until: date
    certifier: str | None = None
    scope: list[str] = []
    """Mine-site names covered; empty covers every site of the producer."""
    version: int = 1
    """The certificate's version: each later change of its status carries a higher one."""


class ProducerUpdated(CertificationEvent):
    """A producer's details changed; the fields carry the new values."""

    type = "producer_updated"
    producer_id: str
    name: str
    country: str
    region: str
    mine_sites: list[MineSiteFacts] = []
    version: int | None = None
    """Increases with every change of the producer: consumers keep the highest they saw."""


class CertificationChanged(CertificationEvent):
    """Common facts of a change in a certificate's status."""

    certification_id: str
    producer_id: str
    standard: Standard
    reason: str | None = None
    version: int | None = None
    """The certificate's version after this change: apply a change only if it is newer."""
    certificate_number: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    scope: list[str] | None = None
    actor: str | None = None


class CertificationSuspended(CertificationChanged):
    """The producer may not sell under this standard until reinstated."""

    type = "certification_suspended"


class CertificationReinstated(CertificationChanged):
    """A suspension was lifted: the certificate is valid again."""

    type = "certification_reinstated"


class CertificationExpiring(CertificationChanged):
    """A certificate's validity ends within the warning period (30 days)."""

    type = "certification_expiring"
    valid_until: date


class CertificationExpired(CertificationChanged):
    """A certificate's validity ended; found by the expiry timer."""

    type = "certification_expired"
    valid_until: date


class CertificationWithdrawn(CertificationChanged):
    """The certificate was withdrawn for good; it cannot be reinstated."""

    type = "certification_withdrawn"
