"""Certification rules (services/certification/domain.py): granting and status on a day."""

from datetime import date, timedelta

import pytest

from services.certification.domain import Certification, CertificationStatus, grant, status_on
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

S = CertificationStatus
FROM = date(2026, 1, 1)
UNTIL = date(2026, 12, 31)


def cert(standard: Standard = Standard.FAIRMINED, *, number: str = "FM-001",
         valid_from: date = FROM, valid_until: date = UNTIL,
         status: CertificationStatus = S.CERTIFIED, cid: str = "c-1") -> Certification:
    return Certification(id=cid, producer_id="p-1", standard=standard,
                         certificate_number=number, valid_from=valid_from,
                         valid_until=valid_until, status=status)


def grant_one(existing: list[Certification], standard: Standard = Standard.FAIRMINED, *,
              number: str = "FM-NEW", valid_from: date = FROM,
              valid_until: date = UNTIL) -> Certification:
    return grant(existing, certification_id="c-new", producer_id="p-1", standard=standard,
                 certificate_number=number, valid_from=valid_from, valid_until=valid_until)


# --- grant ----------------------------------------------------------------------------------

def test_grant_returns_a_certified_certificate_with_the_given_facts() -> None:
    granted = grant_one([])
    assert granted == Certification(
        id="c-new", producer_id="p-1", standard=Standard.FAIRMINED, certificate_number="FM-NEW",
        valid_from=FROM, valid_until=UNTIL, status=S.CERTIFIED)


def test_grant_refuses_validity_ending_before_it_starts() -> None:
    with pytest.raises(InvalidInput) as caught:
        grant_one([], valid_from=date(2026, 6, 2), valid_until=date(2026, 6, 1))
    assert caught.value.field == "valid_until"


def test_grant_allows_a_single_day_of_validity() -> None:
    granted = grant_one([], valid_from=date(2026, 6, 1), valid_until=date(2026, 6, 1))
    assert granted.is_valid_on(date(2026, 6, 1))


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [
        (FROM, UNTIL),                                # identical
        (date(2026, 6, 1), date(2027, 5, 31)),        # starts inside
        (date(2025, 6, 1), date(2026, 5, 31)),        # ends inside
        (date(2026, 3, 1), date(2026, 4, 1)),         # contained
        (date(2025, 1, 1), date(2027, 12, 31)),       # contains
        (UNTIL, date(2027, 12, 31)),                  # shares the last day
        (date(2025, 1, 1), FROM),                     # shares the first day
    ],
)
@pytest.mark.parametrize("live", [S.CERTIFIED, S.SUSPENDED])
def test_grant_refuses_an_overlapping_live_certificate_for_the_same_standard(
        valid_from: date, valid_until: date, live: CertificationStatus) -> None:
    with pytest.raises(Conflict) as caught:
        grant_one([cert(status=live)], valid_from=valid_from, valid_until=valid_until)
    assert caught.value.field == "valid_from"


@pytest.mark.parametrize(
    ("valid_from", "valid_until"),
    [(UNTIL + timedelta(days=1), date(2027, 12, 31)),
     (date(2025, 1, 1), FROM - timedelta(days=1))],
)
def test_grant_allows_an_adjacent_period_for_the_same_standard(
        valid_from: date, valid_until: date) -> None:
    granted = grant_one([cert()], valid_from=valid_from, valid_until=valid_until)
    assert granted.status is S.CERTIFIED


@pytest.mark.parametrize("other", [Standard.FAIRMINED_ECOLOGICAL, Standard.CRAFT])
def test_grant_allows_an_overlapping_certificate_for_a_different_standard(
        other: Standard) -> None:
    granted = grant_one([cert(Standard.FAIRMINED)], other)
    assert granted.standard is other


def test_grant_allows_a_new_certificate_over_a_withdrawn_one() -> None:
    granted = grant_one([cert(status=S.WITHDRAWN)])
    assert granted.status is S.CERTIFIED
    assert granted.valid_from == FROM


def test_grant_refuses_a_duplicate_certificate_number() -> None:
    # Even when the dates do not overlap, the same certificate cannot be recorded twice.
    existing = [cert(number="FM-001", valid_from=date(2024, 1, 1), valid_until=date(2024, 12, 31))]
    with pytest.raises(Conflict) as caught:
        grant_one(existing, number="FM-001")
    assert caught.value.field == "certificate_number"


def test_grant_refuses_a_duplicate_certificate_number_even_of_a_withdrawn_certificate() -> None:
    with pytest.raises(Conflict) as caught:
        grant_one([cert(number="FM-001", status=S.WITHDRAWN)], number="FM-001")
    assert caught.value.field == "certificate_number"


def test_grant_checks_every_existing_certificate() -> None:
    existing = [
        cert(Standard.CRAFT, number="CR-1", cid="c-1"),
        cert(number="FM-1", valid_from=date(2024, 1, 1), valid_until=date(2024, 12, 31),
             cid="c-2"),
        cert(number="FM-2", valid_from=date(2026, 7, 1), valid_until=date(2027, 6, 30),
             cid="c-3"),
    ]
    with pytest.raises(Conflict):
        grant_one(existing, valid_from=date(2026, 1, 1), valid_until=date(2026, 7, 1))
    assert grant_one(existing, valid_from=date(2025, 1, 1),
                     valid_until=date(2026, 6, 30)).status is S.CERTIFIED


# --- is_valid_on ----------------------------------------------------------------------------

def test_certificate_is_valid_on_its_first_and_last_day_and_not_beyond() -> None:
    c = cert()
    assert c.is_valid_on(FROM)
    assert c.is_valid_on(UNTIL)
    assert c.is_valid_on(date(2026, 7, 15))
    assert not c.is_valid_on(UNTIL + timedelta(days=1))
    assert not c.is_valid_on(FROM - timedelta(days=1))


@pytest.mark.parametrize("status", [S.SUSPENDED, S.EXPIRED, S.WITHDRAWN, S.APPLICANT])
def test_only_a_certified_certificate_is_valid(status: CertificationStatus) -> None:
    assert not cert(status=status).is_valid_on(date(2026, 7, 15))


def test_overlaps_includes_shared_boundary_days() -> None:
    c = cert()
    assert c.overlaps(UNTIL, date(2027, 1, 1))
    assert c.overlaps(date(2025, 1, 1), FROM)
    assert not c.overlaps(UNTIL + timedelta(days=1), date(2027, 1, 1))
    assert not c.overlaps(date(2025, 1, 1), FROM - timedelta(days=1))


# --- status_on ------------------------------------------------------------------------------

def test_status_is_none_when_the_producer_never_applied_for_the_standard() -> None:
    assert status_on([], Standard.FAIRMINED, FROM) is None
    assert status_on([cert(Standard.CRAFT)], Standard.FAIRMINED, FROM) is None


def test_status_is_applicant_before_the_first_certificate_starts() -> None:
    assert status_on([cert()], Standard.FAIRMINED, FROM - timedelta(days=1)) is S.APPLICANT


def test_status_is_certified_from_first_to_last_day() -> None:
    for day in (FROM, date(2026, 7, 15), UNTIL):
        assert status_on([cert()], Standard.FAIRMINED, day) is S.CERTIFIED


def test_status_is_expired_the_day_after_validity_ends() -> None:
    assert status_on([cert()], Standard.FAIRMINED, UNTIL + timedelta(days=1)) is S.EXPIRED
    assert status_on([cert()], Standard.FAIRMINED, date(2030, 1, 1)) is S.EXPIRED


def test_status_is_expired_when_the_certificate_was_marked_expired() -> None:
    assert status_on([cert(status=S.EXPIRED)], Standard.FAIRMINED,
                     UNTIL + timedelta(days=1)) is S.EXPIRED


@pytest.mark.parametrize("status", [S.SUSPENDED, S.WITHDRAWN])
def test_status_within_validity_follows_the_certificate(status: CertificationStatus) -> None:
    assert status_on([cert(status=status)], Standard.FAIRMINED, date(2026, 7, 15)) is status


def test_status_is_certified_under_a_renewal_after_an_expiry() -> None:
    history = [cert(valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31), cid="old",
                    number="FM-0"),
               cert(cid="new")]
    assert status_on(history, Standard.FAIRMINED, date(2025, 12, 31)) is S.CERTIFIED
    assert status_on(history, Standard.FAIRMINED, FROM) is S.CERTIFIED


def test_status_is_expired_in_a_gap_before_a_future_renewal() -> None:
    history = [cert(valid_from=date(2024, 1, 1), valid_until=date(2024, 12, 31), cid="old",
                    number="FM-0"),
               cert(cid="new")]
    assert status_on(history, Standard.FAIRMINED, date(2025, 6, 1)) is S.EXPIRED


def test_status_ignores_other_standards() -> None:
    history = [cert(Standard.FAIRMINED, status=S.WITHDRAWN),
               cert(Standard.FAIRMINED_ECOLOGICAL, cid="eco", number="FE-1")]
    assert status_on(history, Standard.FAIRMINED, date(2026, 7, 15)) is S.WITHDRAWN
    assert status_on(history, Standard.FAIRMINED_ECOLOGICAL, date(2026, 7, 15)) is S.CERTIFIED
