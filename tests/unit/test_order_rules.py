"""Order rules (services/orders/domain.py): the saga's guarded transitions and delivery."""

import copy
from collections.abc import Callable
from datetime import date
from itertools import product
from typing import Any

import pytest

from services.orders.domain import (
    ALLOWED,
    Order,
    OrderStatus,
    ReceivingAssay,
    order_id_for,
    same_placement,
)
from shared.errors import Conflict
from shared.values import Standard

S = OrderStatus
PAIRS = list(product(OrderStatus, OrderStatus))
ALLOWED_PAIRS = [(a, b) for a, b in PAIRS if b in ALLOWED[a]]
REFUSED_PAIRS = [(a, b) for a, b in PAIRS if b not in ALLOWED[a]]
TERMINAL = {S.REJECTED, S.SETTLED, S.CANCELLED}
ASSAY = ReceivingAssay(gross_mg=1_000_000, fineness_tenths=9140)


def order(status: OrderStatus = S.PENDING) -> Order:
    return Order(id="o-1", buyer_id="b-1", listing_id="l-1", fine_mg=915_000, status=status)


def pair_id(pair: tuple[OrderStatus, OrderStatus]) -> str:
    return f"{pair[0]}->{pair[1]}"


# --- the transition table -------------------------------------------------------------------

def test_allowed_covers_every_status() -> None:
    assert set(ALLOWED) == set(OrderStatus)


def test_the_matrix_has_every_pair_once() -> None:
    assert len(PAIRS) == len(set(PAIRS)) == len(OrderStatus) ** 2
    assert len(ALLOWED_PAIRS) + len(REFUSED_PAIRS) == len(PAIRS)
    assert ALLOWED_PAIRS and REFUSED_PAIRS


def test_the_saga_of_the_design_is_allowed() -> None:
    for pair in [(S.PENDING, S.CONFIRMED), (S.PENDING, S.REJECTED), (S.PENDING, S.CANCELLED),
                 (S.CONFIRMED, S.SHIPPED), (S.CONFIRMED, S.CANCELLED),
                 (S.SHIPPED, S.DELIVERED), (S.DELIVERED, S.SETTLED)]:
        assert pair in ALLOWED_PAIRS, pair_id(pair)


def test_gold_that_has_left_cannot_be_cancelled_or_rejected() -> None:
    for source in (S.SHIPPED, S.DELIVERED, S.SETTLED):
        assert S.CANCELLED not in ALLOWED[source]
        assert S.REJECTED not in ALLOWED[source]


def test_terminal_statuses_lead_nowhere() -> None:
    for status in TERMINAL:
        assert ALLOWED[status] == frozenset()


def test_no_status_moves_to_itself_or_back_to_pending() -> None:
    for status, targets in ALLOWED.items():
        assert status not in targets
        assert S.PENDING not in targets


def test_every_status_is_reachable_from_pending() -> None:
    reached, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for target in ALLOWED[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(OrderStatus)


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids=pair_id)
def test_an_allowed_transition_succeeds(pair: tuple[OrderStatus, OrderStatus]) -> None:
    source, target = pair
    subject = order(source)
    assert subject._move(target) is source
    assert subject.status is target


@pytest.mark.parametrize("pair", REFUSED_PAIRS, ids=pair_id)
def test_any_other_transition_is_a_conflict_and_changes_nothing(
        pair: tuple[OrderStatus, OrderStatus]) -> None:
    source, target = pair
    subject = order(source)
    before = copy.deepcopy(subject)
    with pytest.raises(Conflict) as caught:
        subject._move(target)
    assert caught.value.field == "status"
    assert str(source) in caught.value.message and str(target) in caught.value.message
    assert subject == before


# --- the named steps ------------------------------------------------------------------------

Step = Callable[[Order], OrderStatus]
STEPS: dict[str, tuple[OrderStatus, Step]] = {
    "confirm": (S.CONFIRMED, lambda o: o.confirm("p-1", Standard.FAIRMINED)),
    "reject": (S.REJECTED, lambda o: o.reject("not enough fine gold available")),
    "cancel": (S.CANCELLED, lambda o: o.cancel("changed plans")),
    "decline": (S.CANCELLED, lambda o: o.decline("export permit refused")),
    "hold": (S.ON_HOLD, lambda o: o.hold("certification suspended")),
    "release_hold": (S.CONFIRMED, lambda o: o.release_hold()),
    "ship": (S.SHIPPED, lambda o: o.ship("AWB-1")),
    "deliver": (S.DELIVERED, lambda o: o.deliver(ASSAY, date(2026, 6, 15))),
    "settle": (S.SETTLED, lambda o: o.settle()),
}
STEP_CASES = [(name, source) for name in STEPS for source in OrderStatus]


def step_sources(name: str) -> set[OrderStatus]:
    """The statuses a named step starts from, found by trying it from each."""
    _, step = STEPS[name]
    sources = set()
    for source in OrderStatus:
        try:
            step(order(source))
        except Conflict:
            continue
        sources.add(source)
    return sources


@pytest.mark.parametrize(("name", "source"), STEP_CASES, ids=lambda v: str(v))
def test_a_named_step_moves_only_along_the_table_or_changes_nothing(
        name: str, source: OrderStatus) -> None:
    target, step = STEPS[name]
    subject = order(source)
    before = copy.deepcopy(subject)
    try:
        returned = step(subject)
    except Conflict as refused:
        assert refused.field == "status"
        assert subject == before
        return
    assert target in ALLOWED[source], f"{name} moved {source}->{target} outside ALLOWED"
    assert returned is source
    assert subject.status is target


def test_every_allowed_transition_has_a_named_step() -> None:
    covered = {(source, STEPS[name][0]) for name in STEPS for source in step_sources(name)}
    assert covered == set(ALLOWED_PAIRS)


@pytest.mark.parametrize(
    ("name", "sources"),
    [("confirm", {S.PENDING}), ("reject", {S.PENDING}), ("ship", {S.CONFIRMED}),
     ("deliver", {S.SHIPPED}), ("settle", {S.DELIVERED})],
)
def test_the_saga_steps_start_only_where_the_design_says(
        name: str, sources: set[OrderStatus]) -> None:
    assert step_sources(name) == sources


def test_confirm_records_producer_and_standard() -> None:
    subject = order()
    subject.confirm("p-1", Standard.FAIRMINED_ECOLOGICAL)
    assert (subject.producer_id, subject.standard) == ("p-1", Standard.FAIRMINED_ECOLOGICAL)


def test_reject_records_the_reason() -> None:
    subject = order()
    subject.reject("lot is suspended")
    assert subject.reason == "lot is suspended"


def test_ship_records_the_shipment_reference() -> None:
    subject = order(S.CONFIRMED)
    subject.ship("AWB-123")
    assert subject.shipment_reference == "AWB-123"


def test_the_happy_path_runs_from_pending_to_settled() -> None:
    subject = order()
    assert subject.confirm("p-1", Standard.FAIRMINED) is S.PENDING
    assert subject.ship("AWB-1") is S.CONFIRMED
    assert subject.deliver(ASSAY) is S.SHIPPED
    assert subject.settle() is S.DELIVERED
    assert subject.status is S.SETTLED


# --- delivery -------------------------------------------------------------------------------

def test_an_undelivered_order_has_no_delivered_weight() -> None:
    assert order(S.SHIPPED).delivered_fine_mg is None
    assert order(S.SHIPPED).assay is None


def test_deliver_records_the_receiving_assay_and_its_fine_weight() -> None:
    subject = order(S.SHIPPED)
    subject.deliver(ASSAY, date(2026, 6, 15))
    assert subject.assay == ASSAY
    assert subject.delivered_on == date(2026, 6, 15)
    # 1000.000 g at 914.0 per mille = 914.000 g, short of the 915.000 g ordered
    assert subject.delivered_fine_mg == 914_000
    assert subject.fine_mg == 915_000


def test_delivered_fine_weight_may_exceed_the_order() -> None:
    subject = order(S.SHIPPED)
    subject.deliver(ReceivingAssay(gross_mg=1_000_100, fineness_tenths=9160))
    assert subject.delivered_fine_mg == 916_092  # 1000.100 g x 916.0 per mille = 916.0916 g
    assert subject.fine_mg == 915_000


def test_delivered_fine_weight_rounds_half_even() -> None:
    assert ReceivingAssay(gross_mg=300, fineness_tenths=9150).fine_mg == 274  # 274.5 mg
    assert ReceivingAssay(gross_mg=100, fineness_tenths=9150).fine_mg == 92   # 91.5 mg


def test_a_refused_delivery_records_no_assay() -> None:
    subject = order(S.CONFIRMED)
    with pytest.raises(Conflict):
        subject.deliver(ASSAY)
    assert subject.assay is None
    assert subject.delivered_fine_mg is None
    assert subject.status is S.CONFIRMED


# --- placed again under one idempotency key -------------------------------------------------

def test_one_buyer_and_key_always_name_the_same_order_as_before() -> None:
    # Pinned: a retry sent across a deploy must find the order the first attempt placed.
    assert order_id_for("refinery-4", "po-2026-0042") == "66c89583-7cb5-5234-a03f-716fcf74725d"
    assert len({order_id_for("refinery-4", "po-2026-0042"), order_id_for("refinery-4", "po-1"),
                order_id_for("refinery-5", "po-2026-0042")}) == 3


def test_an_order_without_a_key_is_a_new_order_each_time() -> None:
    assert order_id_for("refinery-4", None) != order_id_for("refinery-4", None)


def test_the_same_request_under_a_key_is_answered_with_the_order_it_placed() -> None:
    earlier = order()
    assert same_placement(earlier, buyer_id="b-1", listing_id="l-1", fine_mg=915_000) is earlier


@pytest.mark.parametrize("request_", [
    {"buyer_id": "b-1", "listing_id": "l-2", "fine_mg": 915_000},
    {"buyer_id": "b-1", "listing_id": "l-1", "fine_mg": 915_001},
], ids=["another lot", "another weight"])
def test_a_key_used_for_another_order_is_refused(request_: dict[str, Any]) -> None:
    with pytest.raises(Conflict) as refused:
        same_placement(order(), **request_)
    assert refused.value.field == "idempotency_key"


def test_another_buyers_order_under_a_colliding_key_is_refused_like_any_other() -> None:
    # The derivation joins buyer and key with "/", so these two requests name one order.
    assert order_id_for("b", "1/po") == order_id_for("b/1", "po")
    theirs = Order(id=order_id_for("b", "1/po"), buyer_id="b", listing_id="l-1",
                   fine_mg=915_000)
    with pytest.raises(Conflict) as own:
        same_placement(theirs, buyer_id="b", listing_id="l-1", fine_mg=1)
    with pytest.raises(Conflict) as refused:  # even asking for exactly its lot and weight
        same_placement(theirs, buyer_id="b/1", listing_id="l-1", fine_mg=915_000)
    assert (refused.value.field, refused.value.message) == ("idempotency_key",
                                                            own.value.message)
