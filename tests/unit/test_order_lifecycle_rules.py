"""Order rules beyond the happy path (services/orders/domain.py): cancel, decline, hold,
settle, the price floor, unanswered orders and the producers' standing."""

import copy
from datetime import UTC, date, datetime, timedelta

import pytest

from services.orders.domain import (
    ALLOWED,
    Certificate,
    CertificateStatus,
    LbmaFixing,
    Order,
    OrderStatus,
    Party,
    PendingAction,
    PendingPolicy,
    PriceBasis,
    ReceivingAssay,
    hold_reason,
    in_good_standing,
    percent_to_bp,
    price_refusal,
)
from shared.errors import Conflict, InvalidInput
from shared.values import Standard

S = OrderStatus
T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def order(status: OrderStatus = S.PENDING, **fields: object) -> Order:
    return Order(id="o-1", buyer_id="b-1", listing_id="l-1", fine_mg=915_000, status=status,
                 producer_id="p-1", standard=Standard.FAIRMINED, **fields)  # type: ignore[arg-type]


def refused(subject: Order, step: str, *args: object) -> Conflict:
    before = copy.deepcopy(subject)
    with pytest.raises(Conflict) as caught:
        getattr(subject, step)(*args)
    assert subject == before
    assert caught.value.field == "status"
    return caught.value


# --- the table with holds -------------------------------------------------------------------

def test_a_confirmed_order_can_be_held_and_a_held_one_released_or_cancelled_only() -> None:
    assert S.ON_HOLD in ALLOWED[S.CONFIRMED]
    assert ALLOWED[S.ON_HOLD] == {S.CONFIRMED, S.CANCELLED}


def test_pending_shipped_and_later_orders_are_never_held() -> None:
    for status in (S.SHIPPED, S.DELIVERED, S.SETTLED, S.PENDING):
        assert S.ON_HOLD not in ALLOWED[status]


# --- cancel ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [S.PENDING, S.CONFIRMED, S.ON_HOLD])
def test_the_buyer_cancels_before_shipping_even_on_hold(status: OrderStatus) -> None:
    subject = order(status)
    assert subject.cancel("found gold elsewhere") is status
    assert subject.status is S.CANCELLED
    assert (subject.reason, subject.cancelled_by) == ("found gold elsewhere", Party.BUYER)


@pytest.mark.parametrize("status", [S.REJECTED, S.SHIPPED, S.DELIVERED, S.SETTLED,
                                    S.CANCELLED])
def test_an_order_cannot_be_cancelled_once_shipped_or_closed(status: OrderStatus) -> None:
    error = refused(order(status), "cancel", "too late")
    assert error.message == f"an order that is {status} cannot be cancelled"


# --- decline --------------------------------------------------------------------------------

def test_the_producer_declines_a_confirmed_order_with_a_reason() -> None:
    subject = order(S.CONFIRMED)
    assert subject.decline("the bar failed our own assay") is S.CONFIRMED
    assert subject.status is S.CANCELLED
    assert subject.cancelled_by is Party.PRODUCER
    assert subject.reason == "the bar failed our own assay"


@pytest.mark.parametrize("status", [S.PENDING, S.ON_HOLD, S.SHIPPED, S.DELIVERED,
                                    S.CANCELLED, S.REJECTED])
def test_only_a_confirmed_order_can_be_declined(status: OrderStatus) -> None:
    refused(order(status), "decline", "no")


def test_a_decline_without_a_reason_is_refused_and_changes_nothing() -> None:
    subject = order(S.CONFIRMED)
    with pytest.raises(InvalidInput) as caught:
        subject.decline("   ")
    assert caught.value.field == "reason"
    assert subject.status is S.CONFIRMED and subject.cancelled_by is None


# --- hold and release -----------------------------------------------------------------------

def test_a_hold_records_why_and_its_release_clears_it() -> None:
    subject = order(S.CONFIRMED)
    assert subject.hold("certification suspended") is S.CONFIRMED
    assert (subject.status, subject.reason) == (S.ON_HOLD, "certification suspended")
    assert subject.release_hold() is S.ON_HOLD
    assert (subject.status, subject.reason) == (S.CONFIRMED, None)


@pytest.mark.parametrize("status", [s for s in OrderStatus if s is not S.CONFIRMED])
def test_only_a_confirmed_order_is_put_on_hold(status: OrderStatus) -> None:
    refused(order(status), "hold", "suspended")


@pytest.mark.parametrize("status", [s for s in OrderStatus if s is not S.ON_HOLD])
def test_only_a_held_order_is_released(status: OrderStatus) -> None:
    refused(order(status), "release_hold")


def test_a_held_order_is_not_confirmed_again_by_a_reservation() -> None:
    refused(order(S.ON_HOLD), "confirm", "p-1", Standard.FAIRMINED)


def test_a_held_order_cannot_ship() -> None:
    refused(order(S.ON_HOLD), "ship", "AWB-1")


def test_the_hold_reason_names_standard_status_and_why() -> None:
    assert hold_reason(Standard.FAIRMINED, CertificateStatus.SUSPENDED, "audit finding") == \
        "the producer's FAIRMINED certification is suspended: audit finding"
    assert hold_reason(Standard.CRAFT, CertificateStatus.EXPIRED, None) == \
        "the producer's CRAFT certification is expired"


# --- shipment, delivery, settlement ---------------------------------------------------------

def test_shipping_records_reference_carrier_and_export_permit() -> None:
    subject = order(S.CONFIRMED)
    subject.ship("AWB-123", "Brink's", "ANM-EXP-2027-0042")
    assert (subject.shipment_reference, subject.carrier, subject.export_permit) == \
        ("AWB-123", "Brink's", "ANM-EXP-2027-0042")


def test_delivery_records_the_day_it_arrived() -> None:
    subject = order(S.SHIPPED)
    subject.deliver(ReceivingAssay(1_000_000, 9150), date(2027, 2, 3))
    assert subject.delivered_on == date(2027, 2, 3)


def test_only_a_delivered_order_is_settled() -> None:
    subject = order(S.DELIVERED)
    assert subject.settle() is S.DELIVERED
    assert subject.status is S.SETTLED
    for status in (S.PENDING, S.CONFIRMED, S.SHIPPED, S.SETTLED, S.CANCELLED):
        refused(order(status), "settle")


@pytest.mark.parametrize("status", list(OrderStatus))
def test_a_late_reservation_is_given_back_only_for_rejected_or_cancelled_orders(
        status: OrderStatus) -> None:
    assert order(status).gives_back_late_reservations is (status in {S.REJECTED,
                                                                     S.CANCELLED})


# --- price basis ----------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "bp"), [("98.50", 9850), ("95", 9500), ("100.00", 10000),
                                           ("0.01", 1), ("200", 20000)])
def test_a_percentage_of_lbma_is_held_in_basis_points(given: str, bp: int) -> None:
    assert percent_to_bp(given) == bp


@pytest.mark.parametrize("given", ["98.505", "0", "-1", "200.01", "abc", "NaN", 98.5])
def test_a_percentage_of_lbma_is_refused_when_not_exact_or_out_of_range(given: object) -> None:
    with pytest.raises(ValueError):
        percent_to_bp(given)


@pytest.mark.parametrize("standard", [Standard.FAIRMINED, Standard.FAIRMINED_ECOLOGICAL])
def test_fairmined_gold_is_never_priced_below_95_percent_of_lbma(standard: Standard) -> None:
    assert price_refusal(standard, PriceBasis(9499)) == \
        f"{standard} gold sells for at least 95.00% of the LBMA price"
    assert price_refusal(standard, PriceBasis(9500, LbmaFixing.AM)) is None


def test_craft_gold_and_unpriced_orders_have_no_floor() -> None:
    assert price_refusal(Standard.CRAFT, PriceBasis(8000)) is None
    assert price_refusal(Standard.FAIRMINED, None) is None


# --- unanswered orders ----------------------------------------------------------------------

POLICY = PendingPolicy(retry_after=timedelta(seconds=30), give_up_after=timedelta(seconds=300))


@pytest.mark.parametrize(("asked_seconds_ago", "placed_seconds_ago", "action"), [
    (0, 0, PendingAction.WAIT),
    (29, 29, PendingAction.WAIT),
    (30, 30, PendingAction.RETRY),
    (10, 250, PendingAction.WAIT),
    (45, 250, PendingAction.RETRY),
    (1, 300, PendingAction.REJECT),
    (0, 10_000, PendingAction.REJECT),
])
def test_an_unanswered_order_waits_is_asked_again_then_rejected(
        asked_seconds_ago: int, placed_seconds_ago: int, action: PendingAction) -> None:
    now = T0 + timedelta(hours=1)
    assert POLICY.action(now - timedelta(seconds=placed_seconds_ago),
                         now - timedelta(seconds=asked_seconds_ago), now) is action


def test_a_timed_out_order_says_how_long_it_waited() -> None:
    assert POLICY.rejection_reason() == \
        "no answer about the lot within 300 s; the order was not reserved"


# --- the producer's standing ----------------------------------------------------------------

def certificate(status: CertificateStatus, cert: str = "c-1", version: int | None = 1,
                at: datetime = T0, valid_from: date | None = None) -> Certificate:
    return Certificate(cert, "p-1", Standard.FAIRMINED, status, changed_at=at, version=version,
                       valid_from=valid_from)


def test_nothing_known_about_a_producer_holds_nothing() -> None:
    assert in_good_standing([], date(2027, 1, 1)) is None


@pytest.mark.parametrize(("status", "good"), [
    (CertificateStatus.CERTIFIED, True), (CertificateStatus.SUSPENDED, False),
    (CertificateStatus.EXPIRED, False), (CertificateStatus.WITHDRAWN, False)])
def test_a_producer_is_in_good_standing_only_while_certified(status: CertificateStatus,
                                                             good: bool) -> None:
    assert in_good_standing([certificate(status)], date(2027, 1, 1)) is good


def test_a_renewal_keeps_the_producer_in_good_standing_when_the_old_certificate_expires(
        ) -> None:
    expired = certificate(CertificateStatus.EXPIRED, "old")
    renewal = certificate(CertificateStatus.CERTIFIED, "new", valid_from=date(2027, 1, 1))
    assert in_good_standing([expired, renewal], date(2027, 1, 1)) is True


def test_a_renewal_granted_ahead_of_time_counts_only_from_its_first_day() -> None:
    suspended = certificate(CertificateStatus.SUSPENDED, "current")
    renewal = certificate(CertificateStatus.CERTIFIED, "next", valid_from=date(2027, 6, 1))
    assert in_good_standing([suspended, renewal], date(2027, 5, 31)) is False
    assert in_good_standing([suspended, renewal], date(2027, 6, 1)) is True


def test_a_newer_version_of_a_certificate_wins_whatever_the_order_of_arrival() -> None:
    reinstated = certificate(CertificateStatus.CERTIFIED, version=3)
    assert reinstated.changed(CertificateStatus.SUSPENDED, 2, T0 + timedelta(1), None) is None
    suspended = reinstated.changed(CertificateStatus.SUSPENDED, 4, T0, None)
    assert suspended is not None and suspended.status is CertificateStatus.SUSPENDED
    assert suspended.version == 4


def test_without_versions_the_later_change_wins() -> None:
    current = certificate(CertificateStatus.SUSPENDED, version=None, at=T0)
    assert current.changed(CertificateStatus.CERTIFIED, None, T0 - timedelta(seconds=1),
                           None) is None
    later = current.changed(CertificateStatus.CERTIFIED, None, T0 + timedelta(seconds=1),
                            date(2026, 1, 1))
    assert later is not None and later.status is CertificateStatus.CERTIFIED
    assert later.valid_from == date(2026, 1, 1)


def test_a_withdrawn_certificate_is_never_reinstated() -> None:
    withdrawn = certificate(CertificateStatus.WITHDRAWN, version=2)
    assert withdrawn.changed(CertificateStatus.CERTIFIED, 3, T0 + timedelta(1), None) is None
