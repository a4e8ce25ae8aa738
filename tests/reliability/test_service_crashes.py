"""Fault 1: every process is SIGKILLed in turn and restarted while buyers keep ordering.

Nothing is lost (every order answered, every outbox drained, no dead letters), nothing is
oversold (reserved weight is exactly what each lot lost) and nothing is paid twice (one
premium obligation per delivered order). Size: VETA_RELIABILITY_ORDERS (default 100).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import eventlet
from nameko.standalone.events import event_dispatcher

from gateway.service import GatewayService
from services.listings.service import ListingsService
from shared.caller import Role
from shared.errors import Conflict
from tests.helpers import GraphQL, eventually, lot_input, rpc_as, validity
from tests.reliability import invariants
from tests.reliability.harness import PROCESSES, System, free_port_pair, running_system, scale
from tests.reliability.load import Market, OrderLoad


def kill_each_in_turn(system: System, load: OrderLoad, pause: float = 1.5) -> None:
    """SIGKILL each process in turn, leave it down a moment, restart it, and so on round
    the processes until the load is over and every process has been killed once."""
    chance = random.Random(1)
    restarts: list[float] = []
    turn = 0
    while turn < len(PROCESSES) or load.finished < len(load.intents):
        process = PROCESSES[turn % len(PROCESSES)]
        eventlet.sleep(pause * (0.5 + chance.random()))
        system.kill(process)
        eventlet.sleep(0.2 + chance.random() * 0.6)
        restarts.append(system.restart(process))
        turn += 1
    system.summary.figures["slowest restart (s)"] = round(max(restarts), 1)


def test_no_order_is_lost_oversold_or_paid_twice_when_each_process_is_killed_mid_load(
        ) -> None:
    orders = scale()
    with running_system("kill -9 each process in turn under load") as system:
        market = Market.open(system, producers=4, lots=max(10, orders // 5), tag="k9")
        load = OrderLoad(system, market, orders)
        chaos = eventlet.spawn(kill_each_in_turn, system, load)
        started = time.monotonic()
        load.run(spread_over=max(20.0, orders * 0.1))
        chaos.wait()
        system.summary.figures["load seconds"] = round(time.monotonic() - started, 1)
        system.recover()
        findings = invariants.check(system, load.intents)
        troubles = load.troubles()
        system.summary.figures["client troubles"] = len(troubles)
    summary = system.summary
    assert summary.kills >= len(PROCESSES) and summary.restarts == summary.kills
    assert findings.violations == []
    assert troubles == []
    assert summary.orders_placed > orders // 2
    assert summary.http_5xx == 0
    assert summary.internal_errors == 0, (
        "clients were told 'internal error' while a service was down, not UNAVAILABLE "
        "(docs/reliability.md, defect G)")


def test_a_nested_field_whose_service_is_down_is_unavailable_not_an_internal_error(
        runner_factory: Any, veta_config: dict[str, Any]) -> None:
    """A lot's producer comes from certification through a loader; with certification down
    the client must read UNAVAILABLE (retry later), as it does for a top-level field."""
    config = {**veta_config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port_pair()}",
              "RPC_TIMEOUT": 2}
    runner_factory(config, ListingsService, GatewayService).start()
    with rpc_as(config, Role.PRODUCER, "coop-down") as rpc:
        # listings learns of certificates by event: tell it of one directly.
        event_dispatcher(config)("certification", "certification_granted", {
            "event_id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00+00:00",
            "type": "certification_granted", "source": "certification", "schema_version": 1,
            "certification_id": str(uuid.uuid4()), "producer_id": "coop-down",
            "standard": "CRAFT", "certificate_number": "CRAFT-DOWN", **validity()})
        lot = eventually(lambda: _published(rpc), timeout=20)
    body = GraphQL(config).run("query ($id: ID!) { listing(id: $id) { id producer { name } } }",
                               {"id": lot}, role=Role.BUYER, organisation="buyer-down")
    assert body["data"]["listing"]["id"] == lot
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAVAILABLE"], body


def _published(rpc: Any) -> str | None:
    try:
        return str(rpc.listings.publish_listing(lot_input("coop-down", "CRAFT"))["id"])
    except Conflict:  # listings has not heard of the certificate yet
        return None
