"""The certification service over real RabbitMQ and PostgreSQL: lifecycle, history, timer."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eventlet.event import Event
from nameko.testing.services import entrypoint_hook
from nameko.testing.utils import get_extension
from nameko.timer import Timer
from sqlalchemy import create_engine, text

from services.certification.service import CertificationService
from shared.caller import Role
from shared.clock import clock_of
from shared.errors import Conflict, Forbidden, InvalidInput
from tests.helpers import rpc_as, validity

SITES = [{"name": "Mina La Esperanza", "municipality": "Segovia", "latitude": "7.0794",
          "longitude": "-74.7036"},
         {"name": "Socavón Santa Rosa", "municipality": "Remedios"}]


@pytest.fixture
def certification(container_factory: Any, veta_config: dict[str, Any]) -> Any:
    container = container_factory(CertificationService, veta_config)
    container.start()
    return container


@pytest.fixture
def db(database_urls: dict[str, str]) -> Any:
    engine = create_engine(database_urls["certification"])
    yield engine
    engine.dispose()


def register(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    with rpc_as(config, Role.CERTIFIER) as rpc:
        return dict(rpc.certification.register_producer(
            {"name": f"Cooperativa {uuid.uuid4().hex[:6]}", "country": "CO",
             "region": "Antioquia", "mine_sites": SITES, **extra}))


def grant(config: dict[str, Any], producer_id: str, standard: str = "FAIRMINED",
          **dates: str) -> dict[str, Any]:
    with rpc_as(config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.grant_certification({
            "producer_id": producer_id, "standard": standard,
            "certificate_number": f"{standard[:2]}-{uuid.uuid4().hex[:8]}",
            "certifier": "Alliance for Responsible Mining", "scope": ["Mina La Esperanza"],
            **(dates or validity())})
    return dict(next(c for c in producer["certifications"] if c["standard"] == standard))


def outbox(db: Any, event_type: str, certification_id: str) -> list[dict[str, Any]]:
    with db.connect() as connection:
        rows = connection.execute(text(
            "SELECT payload FROM outbox WHERE event_type = :t "
            "AND payload->>'certification_id' = :c ORDER BY id"),
            {"t": event_type, "c": certification_id}).scalars().all()
    return list(rows)


def test_a_certificate_is_suspended_reinstated_and_withdrawn_with_its_history(
        certification: Any, veta_config: dict[str, Any], db: Any) -> None:
    producer = register(veta_config)
    assert [s["name"] for s in producer["mine_sites"]] == ["Mina La Esperanza",
                                                           "Socavón Santa Rosa"]
    held = grant(veta_config, producer["id"])
    assert held["scope"] == ["Mina La Esperanza"] and held["version"] == 1
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        rpc.certification.suspend_certification(
            {"certification_id": held["id"], "reason": "mercury found in tailings"})
        rpc.certification.reinstate_certification(
            {"certification_id": held["id"], "reason": "retort installed"})
        after = rpc.certification.withdraw_certification(
            {"certification_id": held["id"], "reason": "false origin declared"})
        with pytest.raises(Conflict) as refused:
            rpc.certification.reinstate_certification({"certification_id": held["id"]})
        assert "withdrawn" in refused.value.message
        with pytest.raises(InvalidInput) as no_reason:
            rpc.certification.suspend_certification({"certification_id": held["id"]})
        assert no_reason.value.field == "reason"

    [final] = after["certifications"]
    assert final["status"] == "WITHDRAWN" and final["version"] == 4
    assert [(h["from"], h["to"], h["actor"], h["reason"]) for h in final["history"]] == [
        (None, "CERTIFIED", "test-certifier", "granted"),
        ("CERTIFIED", "SUSPENDED", "test-certifier", "mercury found in tailings"),
        ("SUSPENDED", "CERTIFIED", "test-certifier", "retort installed"),
        ("CERTIFIED", "WITHDRAWN", "test-certifier", "false origin declared")]
    for event_type, version in (("certification_suspended", 2),
                                ("certification_reinstated", 3),
                                ("certification_withdrawn", 4)):
        [event] = outbox(db, event_type, held["id"])
        assert event["version"] == version and event["producer_id"] == producer["id"]
        assert event["scope"] == ["Mina La Esperanza"]


def test_only_certifiers_change_certificates_and_scopes_name_real_sites(
        certification: Any, veta_config: dict[str, Any]) -> None:
    producer = register(veta_config)
    held = grant(veta_config, producer["id"])
    with rpc_as(veta_config, Role.PRODUCER, producer["id"]) as rpc, \
            pytest.raises(Forbidden):
        rpc.certification.suspend_certification({"certification_id": held["id"],
                                                 "reason": "self-suspension"})
    with rpc_as(veta_config, Role.CERTIFIER) as rpc, pytest.raises(InvalidInput) as refused:
        rpc.certification.grant_certification({
            "producer_id": producer["id"], "standard": "CRAFT", "certificate_number": "CR-9",
            "scope": ["Mina Fantasma"], **validity()})
    assert refused.value.field == "scope.0"


def test_producer_details_are_updated_by_whom_each_belongs_to(
        certification: Any, veta_config: dict[str, Any], db: Any) -> None:
    producer = register(veta_config, contact={"name": "Ana", "email": "ana@coop.co"})
    grant(veta_config, producer["id"])
    with rpc_as(veta_config, Role.PRODUCER, producer["id"]) as rpc:
        mine = rpc.certification.update_producer(
            {"producer_id": producer["id"], "contact": {"phone": "+57 300 000 0000"}})
        assert mine["contact"]["phone"] == "+57 300 000 0000"
        with pytest.raises(Forbidden) as refused:
            rpc.certification.update_producer({"producer_id": producer["id"],
                                               "name": "New name"})
        assert refused.value.field == "name"
    with rpc_as(veta_config, Role.FINANCE) as rpc:
        paid = rpc.certification.update_producer(
            {"producer_id": producer["id"], "stripe_account_id": "acct_1Nv0FGQ9RKHgCVdK"})
        assert paid["stripe_account_id"] == "acct_1Nv0FGQ9RKHgCVdK"
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        with pytest.raises(Conflict) as covered:
            rpc.certification.update_producer(
                {"producer_id": producer["id"], "mine_sites": [SITES[1]]})
        assert covered.value.field == "mine_sites"
        renamed = rpc.certification.update_producer(
            {"producer_id": producer["id"], "name": "Cooperativa Renombrada"})
    assert renamed["name"] == "Cooperativa Renombrada"
    assert renamed["updated_at"] > renamed["created_at"]
    with rpc_as(veta_config, Role.BUYER, "refinery-1") as rpc:
        [seen] = rpc.certification.get_producers([producer["id"]])
    assert seen["stripe_account_id"] is None and seen["contact"]["email"] is None
    with db.connect() as connection:
        versions = connection.execute(text(
            "SELECT payload->>'version' FROM outbox WHERE event_type = 'producer_updated' "
            "AND payload->>'producer_id' = :p ORDER BY id"), {"p": producer["id"]}).scalars()
        assert list(versions) == ["2", "3", "4"]


def test_status_at_a_past_instant_is_answered_from_the_history(
        certification: Any, veta_config: dict[str, Any]) -> None:
    clock = clock_of(certification)
    start = datetime.now(UTC)
    producer = register(veta_config)
    held = grant(veta_config, producer["id"])  # valid from 30 days ago
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        clock.move_to(start + timedelta(days=2))
        rpc.certification.suspend_certification({"certification_id": held["id"],
                                                 "reason": "audit"})
        clock.move_to(start + timedelta(days=5))
        rpc.certification.reinstate_certification({"certification_id": held["id"]})

        def status(at: str) -> str | None:
            answer = rpc.certification.certification_status(producer["id"], "FAIRMINED", at)
            return answer["status"]

        day = start.date()
        assert status((day - timedelta(days=10)).isoformat()) == "CERTIFIED"
        assert status((day - timedelta(days=31)).isoformat()) is None
        assert status((start + timedelta(days=3)).isoformat()) == "SUSPENDED"
        assert status((day + timedelta(days=6)).isoformat()) == "CERTIFIED"
        assert status((day + timedelta(days=366)).isoformat()) == "EXPIRED"
        assert rpc.certification.certification_status(
            producer["id"], "CRAFT", day.isoformat())["status"] is None
        with pytest.raises(InvalidInput) as refused:
            status("2026-05-01T10:00:00")
        assert refused.value.field == "at"


def test_the_timer_warns_30_days_ahead_once_then_expires_and_catches_up_after_downtime(
        certification: Any, veta_config: dict[str, Any], db: Any) -> None:
    clock = clock_of(certification)
    today = datetime.now(UTC).replace(hour=12)
    producer = register(veta_config)
    soon = grant(veta_config, producer["id"], "FAIRMINED",
                 valid_from=(today.date() - timedelta(days=100)).isoformat(),
                 valid_until=(today.date() + timedelta(days=20)).isoformat())
    later = grant(veta_config, producer["id"], "CRAFT",
                  valid_from=(today.date() - timedelta(days=100)).isoformat(),
                  valid_until=(today.date() + timedelta(days=25)).isoformat())
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        rpc.certification.suspend_certification({"certification_id": later["id"],
                                                 "reason": "pending audit"})

    with entrypoint_hook(certification, "expire_certificates") as tick:
        tick()
        tick()  # a second tick on the same day warns nobody again
        [warning] = outbox(db, "certification_expiring", soon["id"])
        assert warning["valid_until"] == soon["valid_until"]
        assert outbox(db, "certification_expiring", later["id"]) == []  # suspended

        # Down for a month: the first tick after the restart expires both, one event each.
        clock.move_to(today + timedelta(days=30))
        tick()
        tick()
    for held in (soon, later):
        [expired] = outbox(db, "certification_expired", held["id"])
        assert expired["actor"] == "veta-expiry-timer"
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        [seen] = rpc.certification.get_producers([producer["id"]])
    assert {c["standard"]: c["status"] for c in seen["certifications"]} == {
        "FAIRMINED": "EXPIRED", "CRAFT": "EXPIRED"}
    craft = next(c for c in seen["certifications"] if c["standard"] == "CRAFT")
    assert [h["to"] for h in craft["history"]] == ["CERTIFIED", "SUSPENDED", "EXPIRED"]


def test_replicas_running_the_timer_at_once_expire_each_certificate_exactly_once(
        container_factory: Any, veta_config: dict[str, Any], db: Any) -> None:
    replicas = [container_factory(CertificationService, veta_config) for _ in range(3)]
    for replica in replicas:
        replica.start()
    today = datetime.now(UTC).replace(hour=12)
    ends = (today.date() + timedelta(days=3)).isoformat()
    certificates = []
    for _ in range(12):
        producer = register(veta_config)
        for standard in ("FAIRMINED", "CRAFT"):
            certificates.append(grant(
                veta_config, producer["id"], standard,
                valid_from=(today.date() - timedelta(days=10)).isoformat(), valid_until=ends))
    for replica in replicas:
        clock_of(replica).move_to(today + timedelta(days=4))

    def tick(replica: Any) -> Event:
        """Fire the replica's timer entrypoint now, as its own timer would."""
        done = Event()

        def finished(worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
            done.send(exc_info)
            return result, exc_info

        timer = get_extension(replica, Timer, method_name="expire_certificates")
        replica.spawn_worker(timer, (), {}, handle_result=finished)
        return done

    # Six ticks at once on three replicas; each must end without error.
    for done in [tick(replica) for replica in replicas for _ in range(2)]:
        assert done.wait() is None
    with db.connect() as connection:
        for held in certificates:
            changes = connection.execute(text(
                "SELECT count(*) FROM certification_history WHERE certification_id = :c "
                "AND to_status = 'EXPIRED'"), {"c": held["id"]}).scalar_one()
            assert changes == 1
            assert len(outbox(db, "certification_expired", held["id"])) == 1


def test_a_certificate_whose_validity_already_ended_is_refused(
        certification: Any, veta_config: dict[str, Any]) -> None:
    producer = register(veta_config)
    ended = date.today() - timedelta(days=1)
    with rpc_as(veta_config, Role.CERTIFIER) as rpc, pytest.raises(InvalidInput) as refused:
        rpc.certification.grant_certification({
            "producer_id": producer["id"], "standard": "CRAFT", "certificate_number": "CR-0",
            "valid_from": (ended - timedelta(days=300)).isoformat(),
            "valid_until": ended.isoformat()})
    assert refused.value.field == "valid_until"
