"""Certification rules: who a producer is, which standards it holds, and on which days.

Pure Python: no nameko, no database, no clock. Dates are passed in by the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from shared.errors import Conflict, InvalidInput
from shared.values import Standard


class CertificationStatus(enum.StrEnum):
    APPLICANT = "APPLICANT"
    CERTIFIED = "CERTIFIED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    WITHDRAWN = "WITHDRAWN"


@dataclass
class Producer:
    id: str
    name: str
    country: str
    region: str


@dataclass
class Certification:
    id: str
    producer_id: str
    standard: Standard
    certificate_number: str
    valid_from: date
    valid_until: date
    status: CertificationStatus

    def is_valid_on(self, day: date) -> bool:
        return (self.status is CertificationStatus.CERTIFIED
                and self.valid_from <= day <= self.valid_until)

    def overlaps(self, valid_from: date, valid_until: date) -> bool:
        return self.valid_from <= valid_until and valid_from <= self.valid_until


def grant(existing: list[Certification], *, certification_id: str, producer_id: str,
          standard: Standard, certificate_number: str, valid_from: date,
          valid_until: date) -> Certification:
    """A new certificate, refused if its validity is empty or overlaps a live one."""
    if valid_until < valid_from:
        raise InvalidInput("validity cannot end before it starts", field="valid_until")
    for other in existing:
        if other.certificate_number == certificate_number and other.standard is standard:
            raise Conflict(f"certificate {certificate_number} is already recorded",
                           field="certificate_number")
        if (other.standard is standard and other.status is not CertificationStatus.WITHDRAWN
                and other.overlaps(valid_from, valid_until)):
            raise Conflict(f"the producer already holds {standard} from {other.valid_from} "
                           f"to {other.valid_until}", field="valid_from")
    return Certification(
        id=certification_id, producer_id=producer_id, standard=standard,
        certificate_number=certificate_number, valid_from=valid_from,
        valid_until=valid_until, status=CertificationStatus.CERTIFIED,
    )


def status_on(certifications: list[Certification], standard: Standard,
              day: date) -> CertificationStatus | None:
    """The status a producer holds for `standard` on `day`, or None if it never applied."""
    relevant = [c for c in certifications if c.standard is standard]
    if not relevant:
        return None
    if any(c.is_valid_on(day) for c in relevant):
        return CertificationStatus.CERTIFIED
    current = [c for c in relevant if c.valid_from <= day]
    if not current:
        return CertificationStatus.APPLICANT
    latest = max(current, key=lambda c: c.valid_from)
    if latest.status is CertificationStatus.CERTIFIED and day > latest.valid_until:
        return CertificationStatus.EXPIRED
    return latest.status
