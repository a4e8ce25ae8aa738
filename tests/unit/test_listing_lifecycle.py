"""Lot lifecycle rules: drafts, scope, price floor, edits, withdrawal, release, the cascade."""

from datetime import UTC, date, datetime

import pytest

from services.listings.domain import (
    HeldCertification,
    Lot,
    LotForm,
    LotStanding,
    LotStatus,
    MineSite,
    cascade,
    draft,
    fold,
    publish,
    status_for,
)
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

TODAY = date(2026, 6, 15)
SITE = MineSite(name="Mina La Esperanza", region="Antioquia", country="CO")
OTHER_SITE = MineSite(name="Socavón Santa Rosa", region="Antioquia", country="CO")
T = datetime(2026, 6, 1, tzinfo=UTC)


def held(standard: Standard = Standard.FAIRMINED, status: str = "CERTIFIED",
         scope: tuple[str, ...] = (), cid: str = "c-1") -> HeldCertification:
    return HeldCertification(certification_id=cid, producer_id="p-1", standard=standard,
                             valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31),
                             status=status, scope=scope, version=1, changed_at=T)


def new_draft(standard: Standard = Standard.FAIRMINED, **kw: object) -> Lot:
    values: dict[str, object] = dict(
        lot_id="lot-1", producer_id="p-1", standard=standard, form=LotForm.DORE,
        gross_mg=1_000_000, fineness_tenths=9150, mine_site=SITE, mercury_free=True,
        assay_reference="A-1", today=TODAY)
    values.update(kw)
    return draft(**values)  # type: ignore[arg-type]


def test_a_draft_needs_no_certificate_and_publishing_it_does() -> None:
    lot = new_draft()
    assert lot.status is LotStatus.DRAFT and lot.available_mg == 915_000
    with pytest.raises(Conflict):
        lot.publish([], TODAY)
    assert lot.status is LotStatus.DRAFT
    lot.publish([held()], TODAY)
    assert lot.status is LotStatus.PUBLISHED


def test_only_a_draft_can_be_published() -> None:
    lot = new_draft()
    lot.publish([held()], TODAY)
    with pytest.raises(Conflict):
        lot.publish([held()], TODAY)


def test_the_mine_site_must_be_in_the_certificates_scope() -> None:
    scoped = held(scope=("mina la esperanza",))
    assert new_draft().status is LotStatus.DRAFT
    lot = new_draft(mine_site=OTHER_SITE)
    with pytest.raises(Conflict) as caught:
        lot.publish([scoped], TODAY)
    assert caught.value.field == "mine_site.name"
    published = publish(lot_id="l", producer_id="p-1", standard=Standard.FAIRMINED,
                        form=LotForm.GRAIN, gross_mg=1, fineness_tenths=9999, mine_site=SITE,
                        mercury_free=False, assay_reference="A", held=[scoped], today=TODAY)
    assert published.status is LotStatus.PUBLISHED


@pytest.mark.parametrize("standard", [Standard.FAIRMINED, Standard.FAIRMINED_ECOLOGICAL])
def test_fairmined_gold_is_never_offered_below_95_percent_of_lbma(standard: Standard) -> None:
    assert new_draft(standard, price_basis_permille=-50).price_basis_permille == -50
    with pytest.raises(InvalidInput) as caught:
        new_draft(standard, price_basis_permille=-51)
    assert caught.value.field == "price_basis_permille"


def test_craft_gold_may_be_offered_at_a_deeper_discount() -> None:
    assert new_draft(Standard.CRAFT, price_basis_permille=-120).price_basis_permille == -120


def test_the_extraction_period_is_in_order_and_in_the_past() -> None:
    lot = new_draft(extraction_from=date(2026, 3, 1), extraction_until=date(2026, 5, 31))
    assert (lot.extraction_from, lot.extraction_until) == (date(2026, 3, 1), date(2026, 5, 31))
    with pytest.raises(InvalidInput) as caught:
        new_draft(extraction_from=date(2026, 5, 1), extraction_until=date(2026, 4, 1))
    assert caught.value.field == "extraction_until"
    with pytest.raises(InvalidInput) as caught:
        new_draft(extraction_until=date(2026, 6, 16))
    assert caught.value.field == "extraction_until"


def published_lot() -> Lot:
    lot = new_draft()
    lot.publish([held()], TODAY)
    return lot


def test_a_published_lot_without_orders_can_change_weight_and_fineness() -> None:
    lot = published_lot()
    lot.edit({"gross_mg": 2_000_000, "fineness_tenths": 9000, "export_permit": "EX-1"},
             [held()], TODAY)
    assert (lot.fine_mg, lot.available_mg, lot.export_permit) == (1_800_000, 1_800_000, "EX-1")


def test_what_a_buyer_relied_on_is_frozen_once_the_lot_was_reserved() -> None:
    lot = published_lot()
    lot.reserve(100_000)
    lot.release(100_000)
    assert lot.status is LotStatus.PUBLISHED and lot.ever_reserved
    changes: list[dict[str, object]] = [{"gross_mg": 1}, {"fineness_tenths": 9990},
                                        {"standard": Standard.CRAFT},
                                        {"mine_site": OTHER_SITE}]
    for change in changes:
        with pytest.raises(Conflict) as caught:
            lot.edit(change, [held(), held(Standard.CRAFT, cid="c-2")], TODAY)
        assert caught.value.field == next(iter(change))
    lot.edit({"price_basis_permille": 10, "gross_mg": 1_000_000}, [held()], TODAY)
    assert lot.price_basis_permille == 10 and lot.available_mg == 915_000


@pytest.mark.parametrize("status", [LotStatus.PARTIALLY_RESERVED, LotStatus.SOLD_OUT,
                                    LotStatus.WITHDRAWN, LotStatus.SUSPENDED])
def test_only_draft_or_published_lots_can_be_edited(status: LotStatus) -> None:
    lot = published_lot()
    lot.status = status
    with pytest.raises(Conflict):
        lot.edit({"export_permit": "EX-2"}, [held()], TODAY)
    assert lot.export_permit is None


def test_editing_a_published_lot_rechecks_its_certificate_and_content() -> None:
    lot = published_lot()
    with pytest.raises(Conflict):
        lot.edit({"standard": Standard.CRAFT}, [held()], TODAY)
    with pytest.raises(InvalidInput):
        lot.edit({"standard": Standard.FAIRMINED_ECOLOGICAL, "mercury_free": False},
                 [held(Standard.FAIRMINED_ECOLOGICAL)], TODAY)
    assert lot.standard is Standard.FAIRMINED and lot.mercury_free


def test_withdrawal_keeps_reservations_and_is_refused_when_nothing_is_left() -> None:
    lot = published_lot()
    lot.reserve(15_000)
    lot.withdraw()
    assert lot.status is LotStatus.WITHDRAWN and lot.available_mg == 900_000
    with pytest.raises(Conflict):
        lot.withdraw()
    sold = published_lot()
    sold.reserve(915_000)
    with pytest.raises(Conflict):
        sold.withdraw()


def test_a_release_restores_the_weight_and_the_market_status() -> None:
    lot = published_lot()
    lot.reserve(915_000)
    assert lot.status is LotStatus.SOLD_OUT
    lot.release(15_000)
    assert (lot.available_mg, lot.status) == (15_000, LotStatus.PARTIALLY_RESERVED)
    lot.release(900_000)
    assert (lot.available_mg, lot.status) == (915_000, LotStatus.PUBLISHED)


@pytest.mark.parametrize("status", [LotStatus.SUSPENDED, LotStatus.WITHDRAWN])
def test_a_release_on_a_lot_off_the_market_keeps_it_off(status: LotStatus) -> None:
    lot = published_lot()
    lot.reserve(500_000)
    lot.status = status
    lot.release(500_000)
    assert (lot.available_mg, lot.status) == (915_000, status)


def test_status_for_remaining_gold() -> None:
    assert status_for(10, 0) is LotStatus.SOLD_OUT
    assert status_for(10, 4) is LotStatus.PARTIALLY_RESERVED
    assert status_for(10, 10) is LotStatus.PUBLISHED


# --- cascade ------------------------------------------------------------------------------------

def standing(lot_id: str, status: LotStatus, site: str = SITE.name,
             available: int = 915_000) -> LotStanding:
    return LotStanding(id=lot_id, status=status, site_name=site, fine_mg=915_000,
                       available_mg=available)


LOTS = [standing("a", LotStatus.PUBLISHED), standing("b", LotStatus.PARTIALLY_RESERVED, "x", 1),
        standing("c", LotStatus.SOLD_OUT, available=0)]


@pytest.mark.parametrize("status", ["SUSPENDED", "EXPIRED", "WITHDRAWN"])
def test_losing_the_certificate_suspends_every_lot_on_the_market(status: str) -> None:
    decision = cascade(LOTS, [held(status=status)], "p-1", Standard.FAIRMINED, TODAY)
    assert decision.suspend == ["a", "b", "c"] and decision.restore == {}


def test_regaining_it_restores_each_lot_to_what_its_gold_gives_it() -> None:
    suspended = [standing(s.id, LotStatus.SUSPENDED, s.site_name, s.available_mg) for s in LOTS]
    decision = cascade(suspended, [held()], "p-1", Standard.FAIRMINED, TODAY)
    assert decision.suspend == []
    assert decision.restore == {"a": LotStatus.PUBLISHED, "b": LotStatus.PARTIALLY_RESERVED,
                                "c": LotStatus.SOLD_OUT}


def test_another_valid_certificate_for_the_same_standard_keeps_the_lots_up() -> None:
    certificates = [held(status="SUSPENDED"), held(cid="c-2")]
    assert cascade(LOTS, certificates, "p-1", Standard.FAIRMINED, TODAY).suspend == []


def test_a_lot_outside_the_remaining_scope_is_suspended_alone() -> None:
    decision = cascade(LOTS, [held(scope=(SITE.name,))], "p-1", Standard.FAIRMINED, TODAY)
    assert decision.suspend == ["b"]


def test_a_newer_change_wins_by_version_and_without_one_by_time() -> None:
    copy = held()
    assert copy.is_older_than(2, T) and not copy.is_older_than(1, T)
    unversioned = HeldCertification("c", "p", Standard.CRAFT, TODAY, TODAY, "CERTIFIED",
                                    changed_at=T)
    assert unversioned.is_older_than(None, datetime(2026, 6, 2, tzinfo=UTC))
    assert not unversioned.is_older_than(None, T)


def test_text_is_folded_for_matching() -> None:
    assert fold("  Cooperativa  Aurífera RÍO Verde ") == "cooperativa aurifera rio verde"
