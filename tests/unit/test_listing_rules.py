"""Listing rules (services/listings/domain.py): publishing under a certificate, reserving gold."""

import copy
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.listings.domain import (
    ORDERABLE,
    HeldCertification,
    Lot,
    LotForm,
    LotStatus,
    MineSite,
    can_publish,
    publish,
)
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

TODAY = date(2026, 6, 15)
SITE = MineSite(name="La Llanada", region="Nariño", country="CO")


def held(standard: Standard = Standard.FAIRMINED, *, producer_id: str = "p-1",
         valid_from: date = date(2026, 1, 1), valid_until: date = date(2026, 12, 31),
         status: str = "CERTIFIED") -> HeldCertification:
    return HeldCertification(certification_id="c-1", producer_id=producer_id, standard=standard,
                             valid_from=valid_from, valid_until=valid_until, status=status)


def publish_lot(certificates: list[HeldCertification], standard: Standard = Standard.FAIRMINED,
                *, mercury_free: bool = True, today: date = TODAY, gross_mg: int = 1_000_000,
                fineness_tenths: int = 9150) -> Lot:
    return publish(lot_id="lot-1", producer_id="p-1", standard=standard, form=LotForm.DORE,
                   gross_mg=gross_mg, fineness_tenths=fineness_tenths, mine_site=SITE,
                   mercury_free=mercury_free, assay_reference="ASSAY-1", held=certificates,
                   today=today)


def lot(status: LotStatus = LotStatus.PUBLISHED, gross_mg: int = 1_000_000,
        fineness_tenths: int = 9150) -> Lot:
    return Lot(id="lot-1", producer_id="p-1", standard=Standard.FAIRMINED, form=LotForm.DORE,
               gross_mg=gross_mg, fineness_tenths=fineness_tenths, mine_site=SITE,
               mercury_free=True, assay_reference="ASSAY-1", status=status)


# --- publish --------------------------------------------------------------------------------

def test_publish_is_refused_without_any_certificate() -> None:
    with pytest.raises(Conflict) as caught:
        publish_lot([])
    assert caught.value.field == "standard"


@pytest.mark.parametrize(
    "certificate",
    [
        held(valid_from=TODAY + timedelta(days=1), valid_until=date(2027, 12, 31)),
        held(valid_from=date(2025, 1, 1), valid_until=TODAY - timedelta(days=1)),
        held(status="SUSPENDED"),
        held(status="WITHDRAWN"),
        held(status="EXPIRED"),
        held(Standard.CRAFT),
        held(producer_id="p-2"),
    ],
    ids=["future", "past", "suspended", "withdrawn", "expired", "other-standard",
         "other-producer"],
)
def test_publish_is_refused_without_a_certificate_valid_today(
        certificate: HeldCertification) -> None:
    with pytest.raises(Conflict) as caught:
        publish_lot([certificate])
    assert caught.value.field == "standard"
    assert caught.value.code == "CONFLICT"


@pytest.mark.parametrize("today", [date(2026, 1, 1), TODAY, date(2026, 12, 31)],
                         ids=["first-day", "mid", "last-day"])
def test_publish_is_allowed_with_a_certificate_valid_today(today: date) -> None:
    published = publish_lot([held()], today=today)
    assert published.status is LotStatus.PUBLISHED
    assert published.available_mg == published.fine_mg == 915_000


def test_publish_finds_the_valid_certificate_among_others() -> None:
    certificates = [held(status="WITHDRAWN"), held(Standard.CRAFT), held(producer_id="p-2"),
                    held(valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31)),
                    held()]
    assert publish_lot(certificates).status is LotStatus.PUBLISHED


def test_fairmined_ecological_requires_mercury_free_gold() -> None:
    with pytest.raises(InvalidInput) as caught:
        publish_lot([held(Standard.FAIRMINED_ECOLOGICAL)], Standard.FAIRMINED_ECOLOGICAL,
                    mercury_free=False)
    assert caught.value.field == "mercury_free"


def test_fairmined_ecological_mercury_free_gold_is_published() -> None:
    published = publish_lot([held(Standard.FAIRMINED_ECOLOGICAL)],
                            Standard.FAIRMINED_ECOLOGICAL, mercury_free=True)
    assert published.standard is Standard.FAIRMINED_ECOLOGICAL
    assert published.mercury_free is True


def test_fairmined_ecological_certificate_does_not_cover_plain_fairmined() -> None:
    with pytest.raises(Conflict):
        publish_lot([held(Standard.FAIRMINED_ECOLOGICAL)], Standard.FAIRMINED)


@pytest.mark.parametrize("standard", [Standard.FAIRMINED, Standard.CRAFT])
def test_other_standards_may_publish_gold_that_is_not_mercury_free(standard: Standard) -> None:
    assert publish_lot([held(standard)], standard, mercury_free=False).mercury_free is False


def test_can_publish_checks_producer_standard_and_day() -> None:
    certificates = [held()]
    assert can_publish(certificates, "p-1", Standard.FAIRMINED, TODAY)
    assert not can_publish(certificates, "p-2", Standard.FAIRMINED, TODAY)
    assert not can_publish(certificates, "p-1", Standard.CRAFT, TODAY)
    assert not can_publish(certificates, "p-1", Standard.FAIRMINED, date(2027, 1, 1))


# --- fine weight ----------------------------------------------------------------------------

def test_lot_fine_weight_is_derived_from_gross_and_fineness() -> None:
    assert lot(gross_mg=1_000_000, fineness_tenths=9150).fine_mg == 915_000
    assert lot(gross_mg=300, fineness_tenths=9150).fine_mg == 274  # 274.5 -> 274 (half-even)
    assert lot(gross_mg=100, fineness_tenths=9150).fine_mg == 92   # 91.5 -> 92 (half-even)
    corrected = lot()
    corrected.fineness_tenths = 9000
    assert corrected.fine_mg == 900_000


def test_a_new_lot_has_all_its_fine_gold_available() -> None:
    assert lot().available_mg == 915_000


def test_a_lot_loaded_with_its_available_weight_keeps_it() -> None:
    loaded = Lot(id="lot-1", producer_id="p-1", standard=Standard.FAIRMINED, form=LotForm.DORE,
                 gross_mg=1_000_000, fineness_tenths=9150, mine_site=SITE, mercury_free=True,
                 assay_reference="A", status=LotStatus.SOLD_OUT, available_mg=0)
    assert loaded.available_mg == 0
    assert loaded.fine_mg == 915_000


# --- reserve --------------------------------------------------------------------------------

def test_reserve_reduces_available_exactly_and_marks_the_lot_partially_reserved() -> None:
    subject = lot()
    subject.reserve(100_001)
    assert subject.available_mg == 814_999
    assert subject.status is LotStatus.PARTIALLY_RESERVED
    subject.reserve(1)
    assert subject.available_mg == 814_998
    assert subject.status is LotStatus.PARTIALLY_RESERVED


def test_reserving_the_last_milligram_sells_the_lot_out() -> None:
    subject = lot()
    subject.reserve(914_999)
    subject.reserve(1)
    assert subject.available_mg == 0
    assert subject.status is LotStatus.SOLD_OUT


def test_reserving_everything_at_once_sells_the_lot_out() -> None:
    subject = lot()
    subject.reserve(915_000)
    assert subject.available_mg == 0
    assert subject.status is LotStatus.SOLD_OUT


@pytest.mark.parametrize("status", [LotStatus.PUBLISHED, LotStatus.PARTIALLY_RESERVED])
def test_reserving_more_than_available_is_refused_and_changes_nothing(
        status: LotStatus) -> None:
    subject = lot(status)
    subject.available_mg = 500_000
    before = copy.deepcopy(subject)
    with pytest.raises(Conflict) as caught:
        subject.reserve(500_001)
    assert caught.value.field == "fine_weight"
    assert subject == before


@pytest.mark.parametrize("fine_mg", [0, -1, -915_000])
def test_reserving_nothing_or_a_negative_weight_is_refused(fine_mg: int) -> None:
    subject = lot()
    with pytest.raises(Conflict):
        subject.reserve(fine_mg)
    assert subject.available_mg == 915_000
    assert subject.status is LotStatus.PUBLISHED


@pytest.mark.parametrize("status", [s for s in LotStatus if s not in ORDERABLE])
def test_a_lot_that_is_not_orderable_refuses_reservations(status: LotStatus) -> None:
    subject = lot(status)
    with pytest.raises(Conflict) as caught:
        subject.reserve(1)
    assert status.lower() in caught.value.message
    assert subject.available_mg == 915_000
    assert subject.status is status


def test_orderable_statuses_are_published_and_partially_reserved() -> None:
    assert frozenset({LotStatus.PUBLISHED, LotStatus.PARTIALLY_RESERVED}) == ORDERABLE


def test_refusal_explains_without_changing_anything() -> None:
    subject = lot()
    assert subject.refusal(915_000) is None
    assert subject.refusal(915_001) == "not enough fine gold available"
    assert subject.refusal(0) == "fine weight must be positive"
    assert lot(LotStatus.SUSPENDED).refusal(1) == "lot is suspended"
    assert subject.available_mg == 915_000


@given(
    gross_mg=st.integers(min_value=1, max_value=5_000_000),
    fineness_tenths=st.integers(min_value=1, max_value=9999),
    attempts=st.lists(st.integers(min_value=-10, max_value=6_000_000), max_size=60),
)
def test_any_sequence_of_reservations_never_oversells(
        gross_mg: int, fineness_tenths: int, attempts: list[int]) -> None:
    subject = lot(gross_mg=gross_mg, fineness_tenths=fineness_tenths)
    fine = subject.fine_mg
    accepted = 0
    for attempt in attempts:
        available_before = subject.available_mg
        try:
            subject.reserve(attempt)
        except Conflict:
            assert subject.available_mg == available_before
            assert attempt <= 0 or attempt > available_before or available_before == 0
            continue
        assert 0 < attempt <= available_before
        accepted += attempt
        assert subject.available_mg >= 0
        assert subject.status is (LotStatus.SOLD_OUT if subject.available_mg == 0
                                  else LotStatus.PARTIALLY_RESERVED)
    assert subject.available_mg >= 0
    assert accepted == fine - subject.available_mg


@given(st.lists(st.integers(min_value=1, max_value=1_000), min_size=1, max_size=200))
def test_reservations_that_fit_are_all_accepted(sizes: list[int]) -> None:
    subject = lot(gross_mg=sum(sizes), fineness_tenths=9999)
    subject.available_mg = sum(sizes)
    for size in sizes:
        subject.reserve(size)
    assert subject.available_mg == 0
    assert subject.status is LotStatus.SOLD_OUT
