"""The event envelope and registry (shared/events.py) and every service's event catalogue."""

import inspect
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import pytest

import services.certification.events as certification_events
import services.listings.events as listings_events
import services.orders.events as orders_events
import services.payouts.events as payouts_events
from shared.events import Event
from shared.values import Standard

MODULES = {
    "certification": certification_events,
    "listings": listings_events,
    "orders": orders_events,
    "payouts": payouts_events,
}
SNAKE_CASE = re.compile(r"^[a-z]+(_[a-z]+)+$")
IRREGULAR_PAST_PARTICIPLES = frozenset({"withdrawn", "expiring"})
"""Names that are facts without "-ed": the design names certification_withdrawn, and the
certification issue names certification_expiring (the fact that a certificate is now within
its warning period)."""


def declared_events() -> list[type[Event]]:
    """Every concrete event (one with its own `type`) declared in the four services."""
    found = []
    for module in MODULES.values():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, Event) and cls.__module__ == module.__name__
                    and "type" in cls.__dict__):
                found.append(cls)
    return found


EVENTS = declared_events()


@pytest.fixture
def sample_cls() -> Iterator[type[Event]]:
    """A throw-away event class, removed from the shared registry afterwards."""

    class SampleHappened(Event):
        source: ClassVar[str] = "tests"
        type: ClassVar[str] = "sample_happened"
        schema_version: ClassVar[int] = 3
        lot_id: str
        fine_weight: str

    yield SampleHappened
    Event.registry.pop(("tests", "sample_happened"), None)


@pytest.fixture
def sample(sample_cls: type[Event]) -> Callable[[], Event]:
    return lambda: sample_cls.model_validate(
        {"lot_id": "lot-1", "fine_weight": "915.000", "correlation_id": "corr-1"})


# --- envelope -------------------------------------------------------------------------------

Sample = Callable[[], Any]


def test_envelope_carries_id_time_type_source_version_and_correlation(sample: Sample) -> None:
    body = sample().envelope()
    assert {"event_id", "occurred_at", "type", "source", "schema_version",
            "correlation_id"} <= set(body)
    assert UUID(body["event_id"]).version == 4
    assert body["type"] == "sample_happened"
    assert body["source"] == "tests"
    assert body["schema_version"] == 3
    assert body["correlation_id"] == "corr-1"
    assert body["lot_id"] == "lot-1"
    assert body["fine_weight"] == "915.000"


def test_envelope_default_schema_version_is_1() -> None:
    event = orders_events.OrderShipped(order_id="o-1", shipment_reference="AWB-1")
    assert event.envelope()["schema_version"] == 1


def test_envelope_occurred_at_is_utc(sample: Sample) -> None:
    before = datetime.now(UTC)
    event = sample()
    after = datetime.now(UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    occurred = datetime.fromisoformat(event.envelope()["occurred_at"])
    assert occurred.utcoffset() == timedelta(0)
    assert before <= occurred <= after


def test_envelope_is_plain_json(sample: Sample) -> None:
    body = sample().envelope()
    assert json.loads(json.dumps(body)) == body


def test_each_event_gets_its_own_id(sample: Sample) -> None:
    assert sample().event_id != sample().event_id


def test_correlation_id_defaults_to_none(sample_cls: type[Any]) -> None:
    event = sample_cls(lot_id="l", fine_weight="1.000")
    assert event.correlation_id is None
    assert event.envelope()["correlation_id"] is None


def test_from_envelope_round_trips(sample: Sample, sample_cls: type[Any]) -> None:
    event = sample()
    back = sample_cls.from_envelope(json.loads(json.dumps(event.envelope())))
    assert back == event
    assert back.event_id == event.event_id
    assert back.occurred_at == event.occurred_at
    assert back.occurred_at.utcoffset() == timedelta(0)


def test_from_envelope_ignores_unknown_fields(sample: Sample, sample_cls: type[Any]) -> None:
    event = sample()
    body = event.envelope() | {"added_in_v4": "anything", "nested": {"a": 1}}
    back = sample_cls.from_envelope(body)
    assert back == event
    assert "added_in_v4" not in back.model_dump()


def test_from_envelope_still_requires_the_facts(sample: Sample, sample_cls: type[Any]) -> None:
    body = sample().envelope()
    del body["lot_id"]
    with pytest.raises(ValueError, match="lot_id"):
        sample_cls.from_envelope(body)


def test_events_are_immutable(sample: Sample) -> None:
    with pytest.raises(ValueError):
        sample().lot_id = "other"


def test_a_subclass_with_its_own_type_is_registered(sample_cls: type[Event]) -> None:
    assert Event.registry[("tests", "sample_happened")] is sample_cls


def test_a_base_without_its_own_type_is_not_registered() -> None:
    registered = set(Event.registry.values())
    bases = [cls for module in MODULES.values()
             for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, Event) and cls.__module__ == module.__name__
             and "type" not in cls.__dict__]
    assert certification_events.CertificationEvent in bases
    for cls in bases:
        assert cls not in registered, cls.__name__


# --- the catalogue --------------------------------------------------------------------------

def test_every_service_declares_events() -> None:
    assert {cls.source for cls in EVENTS} == set(MODULES)


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.__name__)
def test_event_is_registered_under_its_source_and_type(cls: type[Event]) -> None:
    assert Event.registry[(cls.source, cls.type)] is cls


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.__name__)
def test_event_source_is_the_service_that_declares_it(cls: type[Event]) -> None:
    assert MODULES[cls.source].__name__ == cls.__module__


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.__name__)
def test_event_type_is_past_tense_snake_case(cls: type[Event]) -> None:
    assert SNAKE_CASE.match(cls.type), cls.type
    last_word = cls.type.rsplit("_", 1)[-1]
    assert last_word.endswith("ed") or last_word in IRREGULAR_PAST_PARTICIPLES, (
        f"{cls.__name__}.type {cls.type!r} is not past tense")


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.__name__)
def test_event_has_a_positive_schema_version(cls: type[Event]) -> None:
    assert isinstance(cls.schema_version, int)
    assert cls.schema_version >= 1


def test_event_types_are_unique_across_services() -> None:
    types = [cls.type for cls in EVENTS]
    assert len(types) == len(set(types))


def test_the_catalogue_names_the_known_facts() -> None:
    assert {(cls.source, cls.type) for cls in EVENTS} >= {
        ("certification", "producer_registered"),
        ("certification", "certification_granted"),
        ("listings", "listing_published"),
        ("listings", "listing_reserved"),
        ("listings", "reservation_rejected"),
        ("orders", "order_placed"),
        ("orders", "order_confirmed"),
        ("orders", "order_rejected"),
        ("orders", "order_shipped"),
        ("orders", "order_delivered"),
        ("payouts", "premium_obligation_created"),
    }


def test_a_service_event_round_trips_through_its_envelope() -> None:
    event = orders_events.OrderDelivered(
        order_id="o-1", buyer_id="b-1", listing_id="l-1", producer_id="p-1",
        standard=Standard.FAIRMINED, ordered_fine_weight="915.000",
        received_gross_weight="1000.000", received_fineness="914.0",
        delivered_fine_weight="914.000", delivered_on=date(2026, 3, 1))
    body = event.envelope()
    assert body["standard"] == "FAIRMINED"
    assert body["delivered_on"] == "2026-03-01"
    assert (body["source"], body["type"]) == ("orders", "order_delivered")
    cls = Event.registry[(body["source"], body["type"])]
    assert cls.from_envelope(body) == event
