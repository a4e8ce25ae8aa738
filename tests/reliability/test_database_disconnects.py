"""Fault 3: PostgreSQL connections are terminated mid-transaction, over and over, under load.

A transaction cut off is rolled back whole: no order without its history, no reservation
without the lot's decrement, no outbox event without its state change (nor the reverse),
whatever statement the connection was in when it died. Size: VETA_RELIABILITY_ORDERS.
"""

from __future__ import annotations

import random
import time

import eventlet
from eventlet.event import Event

from shared.settings import SERVICES
from tests.reliability import invariants
from tests.reliability.harness import System, running_system, scale
from tests.reliability.load import Market, OrderLoad


def drop_connections(system: System, stop: Event, interval: float = 0.15) -> None:
    """Terminate the backends of one service's database at a time: mostly those inside a
    statement or a transaction, sometimes every one (idle pooled connections too)."""
    chance = random.Random(3)
    sweeps = 0
    while not stop.ready():
        eventlet.sleep(interval * (0.5 + chance.random()))
        busy_only = chance.random() < 0.8
        system.summary.connections_terminated += system.databases.terminate(
            chance.choice(SERVICES), busy_only=busy_only)
        sweeps += 1
    system.summary.figures["termination sweeps"] = sweeps


def test_dropped_database_connections_leave_no_half_applied_state() -> None:
    orders = scale()
    with running_system("PostgreSQL connections terminated under load") as system:
        market = Market.open(system, producers=4, lots=max(10, orders // 5), tag="pg")
        load = OrderLoad(system, market, orders)
        stop = Event()
        dropper = eventlet.spawn(drop_connections, system, stop)
        started = time.monotonic()
        try:
            load.run(spread_over=max(15.0, orders * 0.08))
        finally:
            stop.send(None)
            dropper.wait()
        system.summary.figures["load seconds"] = round(time.monotonic() - started, 1)
        # A worker whose connection was terminated under it: a transaction cut off mid-way.
        system.summary.figures["transactions cut off (workers failed)"] = system.log_lines(
            "error handling worker", "terminating connection")
        system.recover()
        findings = invariants.check(system, load.intents)
        troubles = load.troubles()
        system.summary.figures["client troubles"] = troubles[:10]
    summary = system.summary
    assert summary.connections_terminated > 0
    assert findings.violations == []
    assert troubles == []
    assert summary.http_5xx == 0
    assert summary.orders_placed > orders // 2
