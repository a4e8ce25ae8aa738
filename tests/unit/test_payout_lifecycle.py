"""Payout rules (services/payouts/domain.py): states, four eyes, holds, attempts and keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.payouts.domain import (
    INITIAL_RATES,
    CertificateCopy,
    FailureStage,
    Obligation,
    ObligationStatus,
    PremiumRate,
    backoff,
    extend_rates,
    is_blocked,
    parse_period,
    requested_reversal_key,
    reversal_key,
    transfer_key,
)
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.values import Standard

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
THRESHOLD = 1_000_000


def obligation(amount_cents: int = 366_000, **fields: object) -> Obligation:
    return Obligation(id="ob-1", order_id="o-1", producer_id="p-1", buyer_id="b-1",
                      standard=Standard.FAIRMINED, fine_mg=915_000, usd_per_kg=Decimal("4000"),
                      amount_cents=amount_cents, currency="USD",
                      delivered_on=date(2026, 10, 1), **fields)  # type: ignore[arg-type]


def funded(amount_cents: int = 366_000) -> Obligation:
    ob = obligation(amount_cents)
    ob.fund("pi_1", "ch_1", T0)
    return ob


def paid() -> Obligation:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    ob.transfer_created("tr_1", T0, T0)
    return ob


# --- the happy path -----------------------------------------------------------------------

def test_a_premium_goes_calculated_funded_approved_submitted_paid_with_a_history() -> None:
    ob = obligation()
    steps = [ob.fund("pi_1", "ch_1", T0), ob.approve("alice", T0, THRESHOLD),
             ob.submit("acct_1", T0, LEASE), ob.transfer_created("tr_1", T0, T0)]
    assert [(c.from_status, c.to_status) for c in steps if c] == [
        ("CALCULATED", "FUNDED"), ("FUNDED", "APPROVED"), ("APPROVED", "SUBMITTED"),
        ("SUBMITTED", "PAID")]
    assert [c.actor for c in steps if c] == ["stripe", "alice", "payouts", "stripe"]
    assert (ob.status, ob.transfer_id, ob.attempt) == (ObligationStatus.PAID, "tr_1", 1)


def test_a_repeated_funding_or_transfer_confirmation_changes_nothing() -> None:
    ob = paid()
    assert ob.fund("pi_1", "ch_1", T0) is None
    assert ob.transfer_created("tr_1", T0, T0) is None
    assert ob.status is ObligationStatus.PAID


def test_a_second_transfer_for_one_obligation_is_refused() -> None:
    with pytest.raises(Conflict):
        paid().transfer_created("tr_2", T0, T0)


def test_an_unfunded_premium_cannot_be_approved() -> None:
    with pytest.raises(Conflict):
        obligation().approve("alice", T0, THRESHOLD)


# --- four eyes ---------------------------------------------------------------------------

def test_at_the_threshold_one_approval_is_enough() -> None:
    ob = funded(THRESHOLD)
    assert ob.approve("alice", T0, THRESHOLD).to_status is ObligationStatus.APPROVED


def test_above_the_threshold_two_different_finance_users_must_approve() -> None:
    ob = funded(THRESHOLD + 1)
    first = ob.approve("alice", T0, THRESHOLD)
    assert (first.action, ob.status, ob.approvals) == (
        "APPROVAL_REQUESTED", ObligationStatus.FUNDED, ["alice"])
    second = ob.approve("bob", T0, THRESHOLD)
    assert (second.to_status, ob.approvals) == (ObligationStatus.APPROVED, ["alice", "bob"])


def test_whoever_asked_first_cannot_give_the_second_approval() -> None:
    ob = funded(THRESHOLD + 1)
    ob.approve("alice", T0, THRESHOLD)
    with pytest.raises(Forbidden):
        ob.approve("alice", T0, THRESHOLD)
    assert (ob.status, ob.approvals) == (ObligationStatus.FUNDED, ["alice"])


def test_a_rejection_voids_the_approvals_given_so_far() -> None:
    ob = funded(THRESHOLD + 1)
    ob.approve("alice", T0, THRESHOLD)
    change = ob.reject("bob", T0, "amount disputed by the buyer")
    assert (change.to_status, ob.approvals, change.reason) == (
        ObligationStatus.FUNDED, [], "amount disputed by the buyer")
    ob.approve("alice", T0, THRESHOLD)  # a fresh request may start again
    assert ob.approvals == ["alice"]


# --- transfers: attempts, keys, failures --------------------------------------------------

def test_the_idempotency_key_is_derived_from_the_obligation_and_attempt() -> None:
    assert transfer_key("ob-1", 1) == "veta-premium-ob-1-transfer-1"
    assert transfer_key("ob-1", 1) == transfer_key("ob-1", 1) != transfer_key("ob-1", 2)


def test_an_unanswered_transfer_stays_submitted_and_keeps_its_attempt_and_key() -> None:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    change = ob.transfer_unanswered("network", "no answer", T0, timedelta(seconds=30))
    assert (ob.status, ob.attempt, change.to_status) == (ObligationStatus.SUBMITTED, 1,
                                                         ObligationStatus.SUBMITTED)
    assert ob.next_attempt_at == T0 + timedelta(seconds=30)
    ob.renew_lease(T0 + timedelta(seconds=31), LEASE)
    assert ob.attempt == 1  # re-sent under the same key


def test_a_definitive_failure_is_failed_and_only_then_a_new_attempt_gets_a_new_key() -> None:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    change = ob.transfer_failed("balance_insufficient", "top up", True, T0,
                                timedelta(seconds=30))
    assert change is not None and change.to_status is ObligationStatus.FAILED
    assert (ob.failure_stage, ob.failure_code, ob.retryable) == (
        FailureStage.TRANSFER, "balance_insufficient", True)
    ob.submit("acct_1", T0 + timedelta(minutes=1), LEASE)
    assert (ob.status, ob.attempt) == (ObligationStatus.SUBMITTED, 2)
    ob.transfer_created("tr_2", T0, T0)
    assert (ob.failure_code, ob.failures) == (None, 0)


def test_stripe_is_looked_at_before_a_new_key_or_one_it_may_have_forgotten() -> None:
    window = timedelta(hours=23)
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    assert ob.must_look_before_sending(False, T0, window) is False  # the first send
    ob.transfer_unanswered("network", "no answer", T0, timedelta(seconds=30))
    assert ob.must_look_before_sending(True, T0 + window, window) is False  # the key replays
    assert ob.must_look_before_sending(True, T0 + window + timedelta(seconds=1), window) is True
    ob.renew_lease(T0 + window + timedelta(seconds=1), LEASE)
    assert ob.submitted_at == T0  # a re-send does not restart the key's day

    ob.transfer_failed("balance_insufficient", "top up", True, T0, timedelta(seconds=30))
    ob.submit("acct_1", T0 + timedelta(minutes=1), LEASE)
    # Attempt 2's key is new to Stripe: looked for before its first send and every re-send.
    assert ob.must_look_before_sending(False, T0 + timedelta(minutes=1), window) is True
    assert ob.must_look_before_sending(True, T0 + timedelta(minutes=2), window) is True


def test_a_failed_look_at_stripe_says_nothing_was_sent() -> None:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    change = ob.transfer_unanswered("api_error", "listing the order's transfers: boom", T0,
                                    timedelta(seconds=30), then="nothing sent")
    assert (change.action, change.reason, ob.status, ob.attempt) == (
        "TRANSFER_UNANSWERED", "api_error: listing the order's transfers: boom; nothing sent",
        ObligationStatus.SUBMITTED, 1)


def test_a_declined_card_fails_the_funding_and_a_retry_asks_the_buyer_again() -> None:
    ob = obligation()
    change = ob.funding_failed("card_declined", "Your card was declined.", T0)
    assert change is not None and (ob.status, ob.failure_stage, ob.retryable) == (
        ObligationStatus.FAILED, FailureStage.FUNDING, False)
    assert ob.funding_failed("card_declined", "again", T0) is None  # the webhook repeats it
    with pytest.raises(Conflict):
        ob.submit("acct_1", T0, LEASE)
    assert ob.retry("alice", T0).to_status is ObligationStatus.CALCULATED
    assert ob.fund("pi_1", "ch_2", T0) is not None and ob.status is ObligationStatus.FUNDED


def test_waiting_for_onboarding_is_a_retryable_failure_recorded_once() -> None:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    first = ob.wait_for_account(T0, timedelta(seconds=30))
    again = ob.wait_for_account(T0 + timedelta(seconds=31), timedelta(seconds=60))
    assert first is not None and again is None
    assert (ob.status, ob.failure_code, ob.retryable, ob.failures) == (
        ObligationStatus.FAILED, "no_connected_account", True, 2)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 30, 200).total_seconds() for n in (1, 2, 3, 4, 5)] == [
        30, 60, 120, 200, 200]


def test_partial_then_full_reversal() -> None:
    ob = paid()
    part = ob.reversed(100_000, T0)
    assert part is not None and "in part" in (part.reason or "")
    assert (ob.status, ob.reversed_cents) == (ObligationStatus.REVERSED, 100_000)
    assert ob.reversed(100_000, T0) is None
    whole = ob.reversed(366_000, T0)
    assert whole is not None and "in full" in (whole.reason or "")
    with pytest.raises(Conflict):
        ob.reversed(366_001, T0)


def test_a_reversal_request_names_who_how_much_and_why_and_moves_nothing_yet() -> None:
    ob = paid()
    whole = ob.request_reversal(None, "carla", "the assay was wrong", T0)
    assert (whole.amount_cents, whole.transfer_id, whole.actor, whole.reason) == (
        366_000, "tr_1", "carla", "the assay was wrong")
    assert whole.idempotency_key == reversal_key("ob-1", 0, 366_000)
    assert (ob.status, ob.reversed_cents) == (ObligationStatus.PAID, 0)
    ob.reversed(100_000, T0)
    # The key starts from what is already reversed: the next request is a new one.
    assert ob.request_reversal(50_000, "carla", "more", T0).idempotency_key == (
        reversal_key("ob-1", 100_000, 50_000))


@pytest.mark.parametrize("amount_cents", [0, -1, 266_001])
def test_a_reversal_request_is_refused_beyond_what_is_left(amount_cents: int) -> None:
    ob = paid()
    ob.reversed(100_000, T0)
    with pytest.raises(Conflict, match=r"between 0\.01 and 2660\.00"):
        ob.request_reversal(amount_cents, "carla", "why", T0)


def test_a_payout_that_was_never_paid_cannot_be_reversed() -> None:
    with pytest.raises(Conflict, match="no transfer to reverse"):
        funded().request_reversal(None, "carla", "why", T0)


def test_a_callers_key_keeps_naming_the_same_stripe_call_as_the_total_moves() -> None:
    ob = paid()
    first = ob.request_reversal(50_000, "carla", "assay corrected", T0, client_key="form-1")
    assert first.idempotency_key == requested_reversal_key("ob-1", "form-1")
    assert (first.client_key, first.whole) == ("form-1", False)
    # Stripe's webhook records it before the answer comes: the same key still names the
    # same call to Stripe, where the keyless key would now name a new reversal.
    ob.reversed(50_000, T0, "carla", "assay corrected")
    again = ob.request_reversal(50_000, "carla", "assay corrected", T0, client_key="form-1")
    assert again.idempotency_key == first.idempotency_key
    assert reversal_key("ob-1", 50_000, 50_000) != reversal_key("ob-1", 0, 50_000)


def test_a_callers_key_names_one_request_of_one_obligation() -> None:
    keys = {requested_reversal_key("ob-1", "form-1"), requested_reversal_key("ob-1", "form-2"),
            requested_reversal_key("ob-2", "form-1")}
    assert len(keys) == 3
    # Any 64 printable characters fit Stripe's key and its column (120).
    longest = requested_reversal_key("0" * 36, "ü " * 32)
    assert longest.startswith(f"veta-premium-{'0' * 36}-reversal-") and len(longest) <= 120
    assert longest == requested_reversal_key("0" * 36, "ü " * 32)


def test_the_same_key_asked_again_must_carry_the_same_amount_and_reason() -> None:
    part = paid().request_reversal(50_000, "carla", "assay corrected", T0, client_key="k")
    part.asked_again(50_000, "assay corrected")  # the same request: no complaint
    with pytest.raises(Conflict, match=r"used to reverse 500\.00") as refused:
        part.asked_again(40_000, "assay corrected")
    assert refused.value.field == "idempotency_key"
    with pytest.raises(Conflict, match="another reason") as refused:
        part.asked_again(50_000, "buyer refunded")
    assert refused.value.field == "idempotency_key"
    # "All that is left" is its own request: not the same as naming the amount it came to.
    whole = paid().request_reversal(None, "carla", "buyer refunded", T0, client_key="k")
    assert (whole.amount_cents, whole.whole) == (366_000, True)
    whole.asked_again(None, "buyer refunded")
    with pytest.raises(Conflict, match="used to reverse all that was left"):
        whole.asked_again(366_000, "buyer refunded")
    with pytest.raises(Conflict, match=r"used to reverse 500\.00"):
        part.asked_again(None, "assay corrected")


def test_a_request_older_than_the_key_window_may_have_been_forgotten_by_stripe() -> None:
    request = paid().request_reversal(50_000, "carla", "assay corrected", T0, client_key="k")
    window = timedelta(hours=23)
    assert request.may_be_forgotten(T0 + window, window) is False  # its key still replays
    assert request.may_be_forgotten(T0 + window + timedelta(seconds=1), window) is True


def test_a_recorded_reversal_keeps_who_asked_and_why_in_the_history() -> None:
    ob = paid()
    change = ob.reversed(100_000, T0, "carla", "the assay was wrong")
    assert change is not None and (change.actor, change.reason) == (
        "carla", "reversed in part: 100000 of 366000 cents (the assay was wrong)")


# --- holds ---------------------------------------------------------------------------------

def test_a_hold_returns_the_payout_where_it_was() -> None:
    ob = funded()
    held = ob.hold(T0, "certification suspended", blocked_since=T0)
    assert held is not None and (ob.status, ob.held_from) == (ObligationStatus.ON_HOLD,
                                                             ObligationStatus.FUNDED)
    with pytest.raises(Conflict):
        ob.approve("alice", T0, THRESHOLD)
    lifted = ob.lift_hold(T0, "certification reinstated")
    assert lifted is not None and ob.status is ObligationStatus.FUNDED


def test_money_already_sent_is_never_held() -> None:
    ob = funded()
    ob.approve("alice", T0, THRESHOLD)
    ob.submit("acct_1", T0, LEASE)
    assert ob.hold(T0, "suspended", blocked_since=T0) is None
    assert paid().hold(T0, "suspended", blocked_since=T0) is None


def test_a_payment_arriving_during_a_hold_is_kept_for_after_it() -> None:
    ob = obligation()
    ob.hold(T0, "suspended", blocked_since=T0)
    ob.fund("pi_1", "ch_1", T0)
    assert (ob.status, ob.held_from) == (ObligationStatus.ON_HOLD, ObligationStatus.FUNDED)
    ob.lift_hold(T0, "reinstated")
    assert ob.status is ObligationStatus.FUNDED


def test_finance_releases_a_hold_and_the_same_suspension_does_not_hold_it_again() -> None:
    ob = funded()
    ob.hold(T0, "suspended", blocked_since=T0)
    released = ob.release_hold("alice", T0 + timedelta(hours=1), "audited on site")
    assert (released.actor, released.reason, ob.status) == (
        "alice", "audited on site", ObligationStatus.FUNDED)
    assert ob.hold(T0 + timedelta(hours=2), "suspended (again)", blocked_since=T0) is None
    later = ob.hold(T0 + timedelta(days=3), "suspended anew",
                    blocked_since=T0 + timedelta(days=3))
    assert later is not None and ob.status is ObligationStatus.ON_HOLD


def cert(status: str, certification_id: str = "c-1", valid_until: date | None = None
         ) -> CertificateCopy:
    return CertificateCopy(certification_id, "p-1", Standard.FAIRMINED, status, 2, T0,
                           date(2026, 1, 1), valid_until or date(2027, 1, 1))


@pytest.mark.parametrize("status", ["SUSPENDED", "EXPIRED", "WITHDRAWN"])
def test_a_suspended_expired_or_withdrawn_certificate_blocks_its_standard(status: str) -> None:
    assert is_blocked([cert(status)], Standard.FAIRMINED, date(2026, 10, 5))
    assert not is_blocked([cert(status)], Standard.FAIRMINED_ECOLOGICAL, date(2026, 10, 5))


def test_a_valid_renewal_is_not_blocked_by_the_old_certificate_expiring() -> None:
    renewal = cert("CERTIFIED", "c-2")
    assert not is_blocked([cert("EXPIRED"), renewal], Standard.FAIRMINED, date(2026, 10, 5))
    assert not is_blocked([cert("CERTIFIED")], Standard.FAIRMINED, date(2026, 10, 5))
    assert not is_blocked([], Standard.FAIRMINED, date(2026, 10, 5))


def test_an_older_certification_event_does_not_overwrite_a_newer_one() -> None:
    copy = cert("SUSPENDED")
    assert copy.is_older_than(3, T0) and not copy.is_older_than(2, T0 + timedelta(days=1))
    unversioned = CertificateCopy("c-1", "p-1", Standard.FAIRMINED, "SUSPENDED", None, T0)
    assert unversioned.is_older_than(None, T0 + timedelta(seconds=1))
    assert not unversioned.is_older_than(None, T0 - timedelta(seconds=1))


# --- rates and periods ---------------------------------------------------------------------

def test_finance_extends_the_rate_table_from_today_on() -> None:
    today = date(2026, 10, 5)
    rate = PremiumRate(Standard.FAIRMINED, Decimal("4500"), date(2027, 1, 1))
    assert extend_rates(list(INITIAL_RATES), rate, today) is rate
    with pytest.raises(InvalidInput):
        extend_rates(list(INITIAL_RATES), PremiumRate(
            Standard.FAIRMINED, Decimal("4500"), date(2026, 10, 4)), today)
    with pytest.raises(InvalidInput):
        extend_rates(list(INITIAL_RATES), PremiumRate(
            Standard.FAIRMINED, Decimal("-1"), date(2027, 1, 1)), today)
    with pytest.raises(Conflict):
        extend_rates([*INITIAL_RATES, rate], rate, today)


def test_periods_are_months_or_years() -> None:
    october = parse_period("2026-10")
    assert (october.start, october.end, october.months()) == (
        date(2026, 10, 1), date(2026, 11, 1), ["2026-10"])
    december = parse_period("2026-12")
    assert december.end == date(2027, 1, 1)
    assert len(parse_period("2026").months()) == 12
    for bad in ("2026-13", "26-10", "october"):
        with pytest.raises(InvalidInput):
            parse_period(bad)
