"""Sourcing-commitment rules (services/orders/domain.py): matching, drawdown across straddling
deliveries, progress and pace, amendment, cancellation and lapse, and what makes a request
sent again the same commitment."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from services.orders.domain import (
    Commitment,
    CommitmentStatus,
    OrderFacts,
    Pace,
    Scope,
    commitment_id_for,
    draw_down,
    new_commitment,
    requested_terms_digest,
)
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

FME = Standard.FAIRMINED_ECOLOGICAL
Q1 = (date(2027, 1, 1), date(2027, 3, 31))  # 90 days


def commitment(fine_mg: int = 2_000_000, scope: Scope | None = None, cid: str = "c-1",
               period: tuple[date, date] = Q1) -> Commitment:
    return Commitment(id=cid, buyer_id="b-1", fine_mg=fine_mg, period_start=period[0],
                      period_end=period[1], scope=scope or Scope(frozenset({FME})))


def delivery(mg: int = 500_000, on: date = date(2027, 2, 1), **overrides: object
             ) -> OrderFacts:
    facts = OrderFacts(order_id="o-1", buyer_id="b-1", standard=FME, producer_id="p-1",
                       country="CO", price_bp=9900, placed_on=date(2027, 1, 15),
                       ordered_mg=mg, delivered_on=on, delivered_mg=mg)
    return replace(facts, **overrides)  # type: ignore[arg-type]


# --- matching -------------------------------------------------------------------------------

def test_a_delivery_of_the_committed_standard_in_the_period_matches() -> None:
    assert commitment().can_draw(delivery())


@pytest.mark.parametrize("overrides", [
    {"buyer_id": "someone-else"}, {"standard": Standard.FAIRMINED}, {"standard": None},
    {"delivered_on": date(2026, 12, 31)}, {"delivered_on": date(2027, 4, 1)},
    {"delivered_on": None}])
def test_another_buyer_standard_or_a_delivery_outside_the_period_does_not_match(
        overrides: dict[str, object]) -> None:
    assert not commitment().can_draw(delivery(**overrides))  # type: ignore[arg-type]


def test_a_delivery_on_the_first_and_last_day_of_the_period_matches() -> None:
    assert commitment().can_draw(delivery(on=date(2027, 1, 1)))
    assert commitment().can_draw(delivery(on=date(2027, 3, 31)))


def test_any_of_several_standards_matches() -> None:
    both = commitment(scope=Scope(frozenset({FME, Standard.FAIRMINED})))
    assert both.can_draw(delivery(standard=Standard.FAIRMINED))


def test_a_country_restriction_needs_the_lots_country_known_and_listed() -> None:
    peru_or_bolivia = commitment(scope=Scope(frozenset({FME}), countries=frozenset({"PE",
                                                                                  "BO"})))
    assert peru_or_bolivia.can_draw(delivery(country="PE"))
    assert not peru_or_bolivia.can_draw(delivery(country="CO"))
    assert not peru_or_bolivia.can_draw(delivery(country=None))


def test_a_producer_restriction_matches_only_named_producers() -> None:
    named = commitment(scope=Scope(frozenset({FME}), producer_ids=frozenset({"p-2"})))
    assert not named.can_draw(delivery())
    assert named.can_draw(delivery(producer_id="p-2"))


def test_a_price_ceiling_matches_orders_priced_at_or_below_it_only() -> None:
    capped = commitment(scope=Scope(frozenset({FME}), price_ceiling_bp=9900))
    assert capped.can_draw(delivery(price_bp=9900))
    assert not capped.can_draw(delivery(price_bp=9901))
    assert not capped.can_draw(delivery(price_bp=None))


def test_a_scope_names_at_least_one_standard() -> None:
    with pytest.raises(InvalidInput) as caught:
        Scope(frozenset())
    assert caught.value.field == "standards"


def test_a_ceiling_below_the_fairmined_floor_is_refused_when_only_fairmined_is_wanted() -> None:
    with pytest.raises(InvalidInput) as caught:
        Scope(frozenset({FME}), price_ceiling_bp=9499)
    assert caught.value.field == "price_ceiling"
    assert Scope(frozenset({FME, Standard.CRAFT}), price_ceiling_bp=9000).price_ceiling_bp \
        == 9000


# --- drawdown -------------------------------------------------------------------------------

def test_a_matching_delivery_draws_the_commitment_down_by_the_delivered_weight() -> None:
    subject = commitment()
    [(drawn, taken)] = draw_down([subject], delivery(mg=499_044))
    assert drawn is subject and taken == 499_044
    assert (subject.delivered_mg, subject.remaining_mg) == (499_044, 1_500_956)
    assert subject.status is CommitmentStatus.ACTIVE


def test_the_same_order_never_draws_twice() -> None:
    subject = commitment()
    draw_down([subject], delivery())
    assert draw_down([subject], delivery()) == []
    assert subject.delivered_mg == 500_000


def test_a_straddling_delivery_fills_the_remainder_and_the_rest_goes_to_the_next() -> None:
    first = commitment(fine_mg=300_000, cid="c-q1")
    year = commitment(fine_mg=5_000_000, cid="c-year", period=(date(2027, 1, 1),
                                                                date(2027, 12, 31)))
    taken = draw_down([year, first], delivery(mg=500_000))
    assert [(c.id, mg) for c, mg in taken] == [("c-q1", 300_000), ("c-year", 200_000)]
    assert first.status is CommitmentStatus.FULFILLED and first.remaining_mg == 0
    assert year.delivered_mg == 200_000


def test_what_no_commitment_needs_is_not_drawn() -> None:
    small = commitment(fine_mg=100_000)
    [(_, taken)] = draw_down([small], delivery(mg=500_000))
    assert taken == 100_000 and small.delivered_mg == 100_000


def test_commitments_ending_sooner_are_drawn_first_then_the_older() -> None:
    a = commitment(fine_mg=100_000, cid="b", period=(date(2027, 1, 1), date(2027, 6, 30)))
    b = commitment(fine_mg=100_000, cid="a", period=(date(2027, 1, 1), date(2027, 6, 30)))
    c = commitment(fine_mg=100_000, cid="c", period=(date(2026, 12, 1), date(2027, 6, 30)))
    taken = draw_down([a, b, c], delivery(mg=150_000))
    assert [(x.id, mg) for x, mg in taken] == [("c", 100_000), ("a", 50_000)]


def test_inactive_commitments_take_nothing() -> None:
    cancelled = commitment()
    cancelled.cancel("changed supplier strategy")
    assert draw_down([cancelled], delivery()) == []
    with pytest.raises(Conflict):
        cancelled.draw("o-2", 1)


# --- progress -------------------------------------------------------------------------------

def test_progress_reports_committed_ordered_delivered_remaining_and_percentage() -> None:
    subject = commitment()
    draw_down([subject], delivery(mg=499_044))
    progress = subject.progress(ordered_mg=1_200_000, today=date(2027, 2, 1))
    assert (progress.committed_mg, progress.ordered_mg, progress.delivered_mg,
            progress.remaining_mg) == (2_000_000, 1_200_000, 499_044, 1_500_956)
    assert progress.percentage == Decimal("24.95")  # 24.9522 %


def test_on_track_means_at_least_the_elapsed_share_was_delivered() -> None:
    subject = commitment(fine_mg=900_000)  # 90-day period: 10 g per day
    draw_down([subject], delivery(mg=310_000))
    day_31 = subject.progress(0, date(2027, 2, 1))  # 31 days elapsed: 310 g expected
    assert (day_31.elapsed_days, day_31.expected_mg, day_31.pace) == (31, 310_000,
                                                                      Pace.ON_TRACK)
    day_32 = subject.progress(0, date(2027, 2, 2))
    assert (day_32.expected_mg, day_32.pace) == (320_000, Pace.BEHIND)


def test_before_the_period_nothing_is_expected_and_after_it_everything_is() -> None:
    subject = commitment()
    before = subject.progress(0, date(2026, 12, 1))
    assert (before.elapsed_days, before.elapsed_share, before.pace) == (0, Decimal("0.0000"),
                                                                        Pace.ON_TRACK)
    after = subject.progress(0, date(2027, 5, 1))
    assert (after.elapsed_days, after.elapsed_share, after.pace) == (90, Decimal("1.0000"),
                                                                     Pace.BEHIND)


def test_a_fulfilled_commitment_is_at_one_hundred_percent_and_on_track() -> None:
    subject = commitment(fine_mg=500_000)
    draw_down([subject], delivery(mg=700_000))
    progress = subject.progress(0, date(2027, 5, 1))
    assert (progress.percentage, progress.remaining_mg, progress.pace) == (
        Decimal("100.00"), 0, Pace.ON_TRACK)


def test_an_order_placed_in_the_period_counts_as_ordered() -> None:
    subject = commitment()
    assert subject.counts_as_ordered(delivery())
    assert not subject.counts_as_ordered(delivery(placed_on=date(2026, 12, 31)))


# --- creating, amending, cancelling, lapsing ------------------------------------------------

def test_a_commitment_needs_a_quantity_and_a_period_that_has_not_ended() -> None:
    scope = Scope(frozenset({FME}))
    with pytest.raises(InvalidInput) as caught:
        new_commitment(commitment_id="c", buyer_id="b", fine_mg=1, period_start=Q1[0],
                       period_end=Q1[1], scope=scope, today=date(2027, 4, 1))
    assert caught.value.field == "period_end"
    with pytest.raises(InvalidInput) as caught:
        commitment(period=(Q1[1], Q1[0]))
    assert caught.value.field == "period_end"
    with pytest.raises(InvalidInput) as caught:
        commitment(fine_mg=0)
    assert caught.value.field == "fine_weight"
    with pytest.raises(InvalidInput):
        commitment(period=(date(2027, 1, 1), date(2032, 1, 31)))


def test_an_amendment_changes_the_terms_but_not_what_was_drawn() -> None:
    subject = commitment()
    draw_down([subject], delivery())
    peru = Scope(frozenset({FME}), countries=frozenset({"PE"}))
    fulfilled = subject.amend(today=date(2027, 2, 2), fine_mg=3_000_000,
                              period_end=date(2027, 6, 30), scope=peru)
    assert not fulfilled
    assert (subject.fine_mg, subject.period_end, subject.delivered_mg) == (
        3_000_000, date(2027, 6, 30), 500_000)
    assert not subject.can_draw(delivery(order_id="o-2"))
    assert subject.can_draw(delivery(order_id="o-2", country="PE"))


def test_an_amendment_cannot_go_below_what_was_delivered_and_can_fulfil() -> None:
    subject = commitment()
    draw_down([subject], delivery())
    with pytest.raises(Conflict) as caught:
        subject.amend(today=date(2027, 2, 2), fine_mg=499_999)
    assert caught.value.field == "fine_weight"
    assert subject.amend(today=date(2027, 2, 2), fine_mg=500_000) is True
    assert subject.status is CommitmentStatus.FULFILLED


def test_an_amendment_cannot_end_the_period_in_the_past() -> None:
    with pytest.raises(InvalidInput) as caught:
        commitment().amend(today=date(2027, 2, 2), period_end=date(2027, 2, 1))
    assert caught.value.field == "period_end"


@pytest.mark.parametrize("status", [CommitmentStatus.FULFILLED, CommitmentStatus.LAPSED,
                                    CommitmentStatus.CANCELLED])
def test_only_an_active_commitment_is_amended_cancelled_or_lapsed(
        status: CommitmentStatus) -> None:
    subject = commitment()
    subject.status = status
    with pytest.raises(Conflict):
        subject.amend(today=date(2027, 2, 1), fine_mg=1_000)
    with pytest.raises(Conflict):
        subject.cancel("no")
    with pytest.raises(Conflict):
        subject.lapse(date(2027, 5, 1))
    assert subject.status is status


def test_a_commitment_lapses_only_after_its_last_day() -> None:
    subject = commitment()
    with pytest.raises(Conflict):
        subject.lapse(date(2027, 3, 31))
    subject.lapse(date(2027, 4, 1))
    assert subject.status is CommitmentStatus.LAPSED


def test_cancelling_keeps_the_reason() -> None:
    subject = commitment()
    subject.cancel("the refinery closed")
    assert (subject.status, subject.reason) == (CommitmentStatus.CANCELLED,
                                                "the refinery closed")


# --- asking again ---------------------------------------------------------------------------

def test_one_buyer_and_key_always_name_the_same_commitment() -> None:
    first = commitment_id_for("b-1", "q3-programme")
    assert commitment_id_for("b-1", "q3-programme") == first
    assert len(first) == 36  # fits the commitments' id column
    assert len({first, commitment_id_for("b-1", "q4-programme"),
                commitment_id_for("b-2", "q3-programme")}) == 3


def test_a_separator_in_a_buyer_or_key_cannot_make_two_requests_one() -> None:
    assert commitment_id_for("a/b", "c") != commitment_id_for("a", "b/c")


def digest(**overrides: object) -> str:
    terms: dict[str, object] = {
        "fine_mg": 2_000_000, "period_start": Q1[0], "period_end": Q1[1],
        "scope": Scope(frozenset({FME, Standard.CRAFT}), countries=frozenset({"CO", "PE"}),
                       producer_ids=frozenset({"p-1", "p-2"}), price_ceiling_bp=9900)}
    terms.update(overrides)
    return requested_terms_digest(**terms)  # type: ignore[arg-type]


def test_the_same_terms_in_another_order_are_the_same_request() -> None:
    reordered = Scope(frozenset({Standard.CRAFT, FME}), countries=frozenset({"PE", "CO"}),
                      producer_ids=frozenset({"p-2", "p-1"}), price_ceiling_bp=9900)
    assert digest(scope=reordered) == digest()


@pytest.mark.parametrize("overrides", [
    {"fine_mg": 2_000_001}, {"period_start": date(2027, 1, 2)},
    {"period_end": date(2027, 3, 30)},
    {"scope": Scope(frozenset({FME}), countries=frozenset({"CO", "PE"}),
                    producer_ids=frozenset({"p-1", "p-2"}), price_ceiling_bp=9900)},
    {"scope": Scope(frozenset({FME, Standard.CRAFT}), countries=frozenset({"CO"}),
                    producer_ids=frozenset({"p-1", "p-2"}), price_ceiling_bp=9900)},
    {"scope": Scope(frozenset({FME, Standard.CRAFT}), countries=frozenset({"CO", "PE"}),
                    producer_ids=frozenset({"p-1"}), price_ceiling_bp=9900)},
    {"scope": Scope(frozenset({FME, Standard.CRAFT}), countries=frozenset({"CO", "PE"}),
                    producer_ids=frozenset({"p-1", "p-2"}), price_ceiling_bp=9950)},
    {"scope": Scope(frozenset({FME, Standard.CRAFT}), countries=frozenset({"CO", "PE"}),
                    producer_ids=frozenset({"p-1", "p-2"}))}])
def test_any_other_term_is_another_request(overrides: dict[str, object]) -> None:
    assert digest(**overrides) != digest()
