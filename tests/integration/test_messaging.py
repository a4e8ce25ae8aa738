"""Messaging promises: an event survives a crash after commit; a duplicate changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, text

from services.certification.service import CertificationService
from services.listings.service import ListingsService
from services.orders.events import OrderDelivered, OrderPlaced
from services.payouts.service import PayoutsService
from shared.caller import Role
from shared.values import Standard
from tests.helpers import eventually, lot_input, rpc_as, validity

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """Stands for any consumer of certification events."""

    name = "test_listener"
    received: list[dict[str, Any]] = []

    @event_handler("certification", "producer_registered")
    def on_producer_registered(self, payload: dict[str, Any]) -> None:
        Listener.received.append(payload)


def test_an_event_committed_before_a_crash_is_published_after_restart(
        container_factory: Any, veta_config: dict[str, Any],
        database_urls: dict[str, str]) -> None:
    listener = container_factory(Listener, veta_config)
    listener.start()  # its queue exists before the event can be published
    name = f"Cooperativa {uuid.uuid4().hex[:6]}"

    crashed = subprocess.run(
        [sys.executable, str(ROOT / "tests/integration/crash_after_commit.py"),
         database_urls["certification"], name],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert crashed.returncode == -9, crashed.stderr
    producer = json.loads(crashed.stdout.strip().splitlines()[-1])

    engine = create_engine(database_urls["certification"])
    unsent = text("SELECT count(*) FROM outbox WHERE payload->>'producer_id' = :id "
                  "AND sent_at IS NULL")
    with engine.connect() as connection:
        assert connection.execute(unsent, {"id": producer["id"]}).scalar_one() == 1

    def is_ours(worker_ctx: Any, result: Any, exc_info: Any) -> bool:
        return bool(worker_ctx.args[0]["producer_id"] == producer["id"])

    restarted = container_factory(CertificationService, veta_config)
    with entrypoint_waiter(listener, "on_producer_registered", callback=is_ours, timeout=20):
        restarted.start()

    ours = [p for p in Listener.received if p["producer_id"] == producer["id"]]
    assert len(ours) == 1 and ours[0]["name"] == name

    def marked_sent() -> bool:
        with engine.connect() as connection:
            return connection.execute(unsent, {"id": producer["id"]}).scalar_one() == 0

    # The relay marks the row sent once the broker has confirmed it.
    eventually(marked_sent)
    engine.dispose()


def test_a_delivery_event_received_twice_creates_one_obligation(
        container_factory: Any, veta_config: dict[str, Any],
        database_urls: dict[str, str]) -> None:
    payouts = container_factory(PayoutsService, veta_config)
    payouts.start()
    order_id = str(uuid.uuid4())
    event = OrderDelivered(
        order_id=order_id, buyer_id="refinery-1", listing_id=str(uuid.uuid4()),
        producer_id=str(uuid.uuid4()), standard=Standard.FAIRMINED, ordered_fine_weight="100.000",
        received_gross_weight="110.000", received_fineness="910.0",
        delivered_fine_weight="100.100", delivered_on=date(2026, 11, 2))
    dispatch = event_dispatcher(veta_config)
    for _ in range(2):
        with entrypoint_waiter(payouts, "on_order_delivered"):
            dispatch("orders", event.type, event.envelope())

    engine = create_engine(database_urls["payouts"])
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT amount_cents FROM obligations WHERE order_id = :id"),
            {"id": order_id}).all()
        applied = connection.execute(
            text("SELECT count(*) FROM applied_events WHERE event_id = :id"),
            {"id": str(event.event_id)}).scalar_one()
    engine.dispose()
    assert rows == [(40040,)]  # 100.100 g x USD 4,000/kg = USD 400.40, once
    assert applied == 1


def test_an_order_placed_twice_reserves_its_gold_once(
        runner_factory: Any, veta_config: dict[str, Any]) -> None:
    from nameko.testing.utils import get_container

    runner = runner_factory(veta_config, CertificationService, ListingsService)
    runner.start()
    listings = get_container(runner, ListingsService)
    with rpc_as(veta_config, Role.CERTIFIER) as rpc:
        producer = rpc.certification.register_producer(
            {"name": "Cooperativa Doble", "country": "CO", "region": "Chocó"})
        with entrypoint_waiter(listings, "on_certification_granted"):
            rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": "FAIRMINED",
                "certificate_number": f"FM-{producer['id'][:8]}", **validity()})
    with rpc_as(veta_config, Role.PRODUCER, producer["id"]) as rpc:
        lot = rpc.listings.publish_listing(lot_input(producer["id"]))

    event = OrderPlaced(order_id=str(uuid.uuid4()), buyer_id="refinery-2",
                        listing_id=lot["id"], fine_weight="100.000")
    dispatch = event_dispatcher(veta_config)
    for _ in range(2):
        with entrypoint_waiter(listings, "on_order_placed"):
            dispatch("orders", event.type, event.envelope())

    with rpc_as(veta_config, Role.BUYER, "refinery-2") as rpc:
        [after] = rpc.listings.get_listings([lot["id"]])
    assert after["available_fine_weight"] == "815.000"
