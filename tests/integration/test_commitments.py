"""Sourcing commitments in the orders service over the real RabbitMQ and PostgreSQL: drawn down
by matching deliveries (the lot's country kept from listing_published), split when a delivery
straddles, amended, cancelled, lapsed by the timer, seen only by whom they concern, and made
once when asked for again under one idempotency key."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import eventlet
import pytest
from nameko.testing.utils import get_container

from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.service import OrdersService
from shared.caller import Role
from shared.clock import clock_of
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.helpers import eventually, rpc_as
from tests.integration.test_orders_lifecycle import (
    FAST_TIMERS,
    certified_producer,
    place,
    publish,
    tap,
)


@pytest.fixture
def buyer() -> str:
    """A buyer of its own for each test: commitments and orders outlive a test."""
    return f"jeweller-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(veta_config: dict[str, Any]) -> dict[str, Any]:
    return {**veta_config, "ORDERS": dict(FAST_TIMERS)}


@pytest.fixture
def system(runner_factory: Any, config: dict[str, Any]) -> Any:
    # No payouts: nothing here needs it, and it would take a web port.
    runner = runner_factory(config, CertificationService, ListingsService, OrdersService)
    runner.start()
    return runner


def period(days_before: int = 10, days_after: int = 80) -> dict[str, str]:
    today = date.today()
    return {"period_start": (today - timedelta(days=days_before)).isoformat(),
            "period_end": (today + timedelta(days=days_after)).isoformat()}


def commit(config: dict[str, Any], grams: str, buyer: str,
           **terms: Any) -> dict[str, Any]:
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        return dict(rpc.orders.create_commitment({
            "buyer_id": buyer, "fine_weight": grams, "standards": ["FAIRMINED"],
            **period(), **terms}))


def receive(system: Any, config: dict[str, Any], buyer: str, producer: str, lot_id: str,
            ordered: str, gross: str, fineness: str = "915.0", **extra: Any) -> dict[str, Any]:
    """An order for `ordered` g that arrives as `gross` g at `fineness`."""
    order = place(system, config, buyer, lot_id, ordered, **extra)
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        rpc.orders.mark_order_shipped({"order_id": order["id"], "shipment_reference": "AWB"})
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        return dict(rpc.orders.confirm_delivery({
            "order_id": order["id"], "received_gross_weight": gross,
            "received_fineness": fineness}))


def commitment(config: dict[str, Any], commitment_id: str, org: str | None,
               role: Role = Role.BUYER) -> dict[str, Any]:
    with rpc_as(config, role, org) as rpc:
        return dict(rpc.orders.get_commitments([commitment_id])[0])


def test_deliveries_from_the_committed_country_draw_it_down_until_fulfilled(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    producer, _ = certified_producer(system, config)
    colombian = publish(system, config, producer)  # mined in CO
    with tap(config, "orders", "commitment_created", "commitment_progressed",
             "commitment_fulfilled") as events:
        created = commit(config, "600.000", buyer, countries=["CO"])
        assert created["progress"] == {
            "committed": "600.000", "ordered": "0.000", "delivered": "0.000",
            "remaining": "600.000", "expected": created["progress"]["expected"],
            "percentage": "0.00", "elapsed_share": created["progress"]["elapsed_share"],
            "pace": created["progress"]["pace"]}

        # 437.500 g at 914.6 per mille = 400.138 g delivered against 400 g ordered.
        first = receive(system, config, buyer, producer, colombian["id"], "400.000", "437.500",
                        "914.6")
        progress = commitment(config, created["id"], buyer)["progress"]
        assert (progress["ordered"], progress["delivered"], progress["remaining"],
                progress["percentage"]) == ("400.000", "400.138", "199.862", "66.69")
        # An open order counts as ordered but not as delivered.
        place(system, config, buyer, colombian["id"], "50.000")
        assert commitment(config, created["id"], buyer)["progress"]["ordered"] == "450.000"

        # The next delivery straddles what remains: 199.862 g of its 250 g count.
        second = receive(system, config, buyer, producer, colombian["id"], "250.000", "273.224")
        done = commitment(config, created["id"], buyer)
        assert done["status"] == "FULFILLED"
        assert (done["progress"]["delivered"], done["progress"]["remaining"],
                done["progress"]["percentage"]) == ("600.000", "0.000", "100.00")
        assert [(d["order_id"], d["fine_weight"]) for d in done["drawdowns"]] == [
            (first["id"], "400.138"), (second["id"], "199.862")]
        fulfilled = eventually(lambda: events.of("commitment_fulfilled"))
        progressed = events.of("commitment_progressed")
        assert [e["type"] for e in events.of("commitment_created")] == ["commitment_created"]
    assert [(e["order_id"], e["drawn_fine_weight"], e["remaining_fine_weight"])
            for e in progressed] == [(first["id"], "400.138", "199.862"),
                                     (second["id"], "199.862", "0.000")]
    assert fulfilled[0]["commitment_id"] == created["id"]


def test_gold_from_another_country_producer_price_or_buyer_does_not_count(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    producer, _ = certified_producer(system, config)
    colombian = publish(system, config, producer)
    peruvian = commit(config, "100.000", buyer, countries=["PE"])
    elsewhere = commit(config, "100.000", buyer, producer_ids=["another-producer"])
    capped = commit(config, "100.000", buyer, price_ceiling="99.00")
    stranger = f"refinery-{uuid.uuid4().hex[:8]}"
    someone_elses = commit(config, "100.000", stranger)
    receive(system, config, buyer, producer, colombian["id"], "50.000", "54.645",
            price_basis={"percent_of_lbma": "99.50"})
    for created, who in ((peruvian, buyer), (elsewhere, buyer), (capped, buyer),
                         (someone_elses, stranger)):
        after = commitment(config, created["id"], who)
        assert (after["progress"]["delivered"], after["progress"]["ordered"],
                after["drawdowns"]) == ("0.000", "0.000", [])


def test_a_delivery_larger_than_one_commitment_spills_into_the_next(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    quarter = commit(config, "100.000", buyer, **period(10, 20))
    year = commit(config, "1000.000", buyer, **period(10, 300))
    order = receive(system, config, buyer, producer, lot["id"], "300.000", "327.869")  # 300.000 g
    assert commitment(config, quarter["id"], buyer)["drawdowns"] == [
        {"order_id": order["id"], "fine_weight": "100.000",
         "delivered_on": order["delivered_on"]}]
    assert commitment(config, year["id"], buyer)["progress"]["delivered"] == "200.000"


def test_a_commitment_is_amended_and_cancelled_by_its_buyer_only(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    producer, _ = certified_producer(system, config)
    lot = publish(system, config, producer)
    created = commit(config, "500.000", buyer)
    receive(system, config, buyer, producer, lot["id"], "200.000", "218.579")  # 200.000 g
    with rpc_as(config, Role.BUYER, "refinery-2") as rpc, pytest.raises(NotFound):
        rpc.orders.amend_commitment({"commitment_id": created["id"], "fine_weight": "1.000"})
    with rpc_as(config, Role.BUYER, buyer) as rpc, \
            tap(config, "orders", "commitment_amended", "commitment_cancelled") as events:
        with pytest.raises(Conflict) as too_low:
            rpc.orders.amend_commitment({"commitment_id": created["id"],
                                         "fine_weight": "199.999"})
        assert too_low.value.field == "fine_weight"
        with pytest.raises(InvalidInput) as bad:
            rpc.orders.amend_commitment({"commitment_id": created["id"],
                                         "countries": ["XX"]})
        assert bad.value.field == "countries.0"
        amended = rpc.orders.amend_commitment({
            "commitment_id": created["id"], "fine_weight": "800.000",
            "standards": ["FAIRMINED", "FAIRMINED_ECOLOGICAL"], "countries": ["CO", "PE"],
            "period_end": (date.today() + timedelta(days=100)).isoformat(),
            "price_ceiling": "99.50"})
        assert (amended["fine_weight"], amended["standards"], amended["countries"],
                amended["price_ceiling_percent"], amended["progress"]["delivered"]) == (
            "800.000", ["FAIRMINED", "FAIRMINED_ECOLOGICAL"], ["CO", "PE"], "99.50",
            "200.000")
        cancelled = rpc.orders.cancel_commitment({"commitment_id": created["id"],
                                                  "reason": "the workshop closed"})
        assert (cancelled["status"], cancelled["reason"]) == ("CANCELLED",
                                                              "the workshop closed")
        with pytest.raises(Conflict):
            rpc.orders.amend_commitment({"commitment_id": created["id"],
                                         "fine_weight": "900.000"})
        [amended_event] = eventually(lambda: events.of("commitment_amended"))
        [cancelled_event] = eventually(lambda: events.of("commitment_cancelled"))
    assert amended_event["countries"] == ["CO", "PE"]
    assert cancelled_event["delivered_fine_weight"] == "200.000"


def test_a_commitment_lapses_when_its_period_ends_short(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    created = commit(config, "500.000", buyer, **period(10, 5))
    clock = clock_of(get_container(system, OrdersService))
    with tap(config, "orders", "commitment_lapsed") as events:
        clock.move_to(datetime.now(UTC) + timedelta(days=5))
        assert commitment(config, created["id"], buyer)["status"] == "ACTIVE"  # its last day
        clock.move_to(datetime.now(UTC) + timedelta(days=6))
        [lapsed] = eventually(lambda: events.of("commitment_lapsed",
                                                commitment_id=created["id"]))
    assert (lapsed["commitment_id"], lapsed["remaining_fine_weight"]) == (created["id"],
                                                                          "500.000")
    after = commitment(config, created["id"], buyer)
    assert after["status"] == "LAPSED"
    assert (after["progress"]["elapsed_share"], after["progress"]["pace"]) == ("1.0000",
                                                                               "BEHIND")


def test_a_commitment_is_seen_by_its_buyer_and_the_producers_it_names_only(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    producer, _ = certified_producer(system, config)
    stranger = f"refinery-{uuid.uuid4().hex[:8]}"
    named = commit(config, "100.000", buyer, producer_ids=[producer])
    unnamed = commit(config, "100.000", buyer)
    with rpc_as(config, Role.PRODUCER, producer) as rpc:
        assert [i["node"]["id"] for i in rpc.orders.list_commitments()["items"]] == \
            [named["id"]]
        assert rpc.orders.get_commitments([unnamed["id"]]) == []
        with pytest.raises(Forbidden):
            rpc.orders.create_commitment({"buyer_id": buyer, "fine_weight": "1.000",
                                          "standards": ["CRAFT"], **period()})
    with rpc_as(config, Role.BUYER, stranger) as rpc:
        assert rpc.orders.list_commitments()["items"] == []
        assert rpc.orders.get_commitments([named["id"], unnamed["id"]]) == []
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        page = rpc.orders.list_commitments({"status": ["ACTIVE"]}, first=1)
        rest = rpc.orders.list_commitments({"status": ["ACTIVE"]}, first=1,
                                           after=page["items"][0]["cursor"])
        past = rpc.orders.list_commitments({"active_to": "2001-01-01"})
    assert [i["node"]["id"] for i in page["items"] + rest["items"]] == [unnamed["id"],
                                                                        named["id"]]
    assert page["has_next_page"] and not rest["has_next_page"]
    assert past["items"] == []


def test_a_commitment_needs_valid_terms_and_nothing_is_written_otherwise(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        with pytest.raises(InvalidInput) as refused:
            rpc.orders.create_commitment({
                "buyer_id": buyer, "fine_weight": "0", "standards": [],
                "period_start": "2027-01-01", "period_end": "2026-01-01",
                "price_ceiling": "99.999"})
        assert {p["field"] for p in refused.value.problems} == {
            "fine_weight", "standards", "price_ceiling"}
        with pytest.raises(InvalidInput) as backwards:
            rpc.orders.create_commitment({"buyer_id": buyer, "fine_weight": "1.000",
                                          "standards": ["FAIRMINED"],
                                          "period_start": "2030-02-01",
                                          "period_end": "2030-01-01"})
        assert backwards.value.field == "period_end"
        assert rpc.orders.list_commitments()["items"] == []


# --- asked for again under one idempotency key ----------------------------------------------


def created_once(events: Any, commitment_id: str) -> list[dict[str, Any]]:
    """The commitment_created events raised for a commitment, once its later cancellation has
    been seen: the relay publishes in outbox order, so any second one would be there by now."""
    eventually(lambda: events.of("commitment_cancelled", commitment_id=commitment_id))
    return events.of("commitment_created", commitment_id=commitment_id)


def test_a_commitment_asked_for_again_under_its_key_is_made_once_and_raised_once(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    request = {"buyer_id": buyer, "fine_weight": "750.000", "standards": ["FAIRMINED"],
               "countries": ["CO", "PE"], **period(), "idempotency_key": "q3-programme"}
    with rpc_as(config, Role.BUYER, buyer) as rpc, \
            tap(config, "orders", "commitment_created", "commitment_cancelled") as events:
        first = rpc.orders.create_commitment(request)
        # A retry after a lost answer, or the broker redelivering the call: the same terms
        # (countries in another order are the same terms) find the same commitment.
        again = rpc.orders.create_commitment({**request, "countries": ["PE", "CO"]})
        assert again == first
        # Amended since, it still answers a late retry of the request that made it.
        rpc.orders.amend_commitment({"commitment_id": first["id"], "fine_weight": "900.000"})
        late = rpc.orders.create_commitment(request)
        assert (late["id"], late["fine_weight"]) == (first["id"], "900.000")
        for other in ({"fine_weight": "751.000"}, {"countries": ["CO"]},
                      {"standards": ["FAIRMINED", "CRAFT"]}, {"price_ceiling": "99.00"},
                      period(10, 81)):
            with pytest.raises(Conflict) as reused:
                rpc.orders.create_commitment({**request, **other})
            assert reused.value.field == "idempotency_key", other
        # Another key, or another buyer's same key, is another commitment.
        second = rpc.orders.create_commitment({**request, "idempotency_key": "q4-programme"})
        listed = [i["node"]["id"] for i in rpc.orders.list_commitments()["items"]]
        rpc.orders.cancel_commitment({"commitment_id": first["id"]})
        [created] = created_once(events, first["id"])
    assert second["id"] != first["id"]
    assert sorted(listed) == sorted([first["id"], second["id"]])
    assert (created["fine_weight"], created["countries"]) == ("750.000", ["CO", "PE"])
    stranger = f"refinery-{uuid.uuid4().hex[:8]}"
    theirs = commit(config, "750.000", stranger, countries=["CO", "PE"],
                    idempotency_key="q3-programme")
    assert theirs["id"] not in (first["id"], second["id"])


def test_a_retry_after_the_period_ended_finds_its_commitment_rather_than_a_refusal(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    request = {"buyer_id": buyer, "fine_weight": "100.000", "standards": ["CRAFT"],
               **period(10, 2), "idempotency_key": "po-77"}
    with rpc_as(config, Role.BUYER, buyer) as rpc:
        first = rpc.orders.create_commitment(request)
        clock_of(get_container(system, OrdersService)).move_to(
            datetime.now(UTC) + timedelta(days=5))
        assert rpc.orders.create_commitment(request)["id"] == first["id"]
        with pytest.raises(InvalidInput) as ended:  # without the key it is a new request
            rpc.orders.create_commitment({**request, "idempotency_key": "po-78"})
    assert ended.value.field == "period_end"


def test_requests_racing_under_one_key_make_one_commitment(
        system: Any, config: dict[str, Any], buyer: str) -> None:
    request = {"buyer_id": buyer, "fine_weight": "250.000", "standards": ["FAIRMINED"],
               **period(), "idempotency_key": "double-click"}

    def ask() -> dict[str, Any]:
        return commit(config, "250.000", buyer, idempotency_key="double-click")

    with tap(config, "orders", "commitment_created", "commitment_cancelled") as events:
        # A double click, or a retry racing the first attempt: each waits for the other's
        # transaction instead of failing on the commitment's id.
        pool = eventlet.GreenPool()
        answers = list(pool.imap(lambda _: ask(), range(6)))
        with rpc_as(config, Role.BUYER, buyer) as rpc:
            assert rpc.orders.create_commitment(request)["id"] == answers[0]["id"]
            assert len(rpc.orders.list_commitments()["items"]) == 1
            rpc.orders.cancel_commitment({"commitment_id": answers[0]["id"]})
        created = created_once(events, answers[0]["id"])
    assert {a["id"] for a in answers} == {answers[0]["id"]}
    assert len(created) == 1
