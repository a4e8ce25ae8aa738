"""Fault 2: RabbitMQ itself is stopped and started again (`rabbitmqctl stop_app/start_app`)
while buyers keep ordering.

While it is down the gateway answers within its RPC timeout with UNAVAILABLE instead of
hanging; afterwards every process reconnects by itself (one that died is restarted so that
the rest can be checked, and fails the test) and the invariants of fault 1 hold.
This stops the machine's only broker for a few seconds: every other test running on the
machine sees it too, so it is started again in a `finally` (and at exit, at worst).
"""

from __future__ import annotations

import time
from typing import Any

import eventlet
import requests

from shared.caller import Role
from tests.reliability import invariants
from tests.reliability.harness import PROCESSES, System, running_system, scale
from tests.reliability.load import Market, OrderLoad, error_codes

BROWSE = "{ listings(first: 1) { edges { node { id } } } }"


def ask_while_down(system: System) -> dict[str, Any]:
    """One query that needs a service, timed: how the gateway answers without a broker."""
    started = time.monotonic()
    try:
        response = requests.post(system.gateway_url, json={"query": BROWSE}, timeout=(
            2, system.rpc_timeout * 6), headers={
                "Authorization": f"Bearer {system.token(Role.BUYER, 'buyer-outage')}"})
        answer = {"status": response.status_code,
                  "codes": error_codes(response.json()) if response.status_code == 200
                  else [response.text[:200]]}
    except requests.RequestException as exc:
        answer = {"status": None, "codes": [type(exc).__name__]}
    answer["seconds"] = round(time.monotonic() - started, 2)
    return answer


def outage(system: System, after: float = 6.0, down_for: float = 8.0) -> dict[str, Any]:
    """Stop the broker mid-load, ask the gateway twice while it is down, start it again,
    and time how long until every process answers again."""
    eventlet.sleep(after)
    seen: dict[str, Any] = {}
    try:
        system.broker.stop_app()
        system.summary.broker_restarts += 1
        stopped = time.monotonic()
        seen["answers while down"] = [ask_while_down(system), ask_while_down(system)]
        eventlet.sleep(max(0.0, down_for - (time.monotonic() - stopped)))
    finally:
        system.broker.start_app()
    started = time.monotonic()
    seen["died"] = {}
    for process in PROCESSES:
        if system.processes[process].poll() is not None:
            # A process that did not survive the outage is restarted, as Kubernetes would,
            # so that the invariants are still checked; the test fails on it at the end.
            seen["died"][process] = system.log_tail(process, 1)[-300:]
            system.restart(process)
        system.wait_ready(process, timeout=120)
    seen["seconds until every process answered again"] = round(time.monotonic() - started, 1)
    return seen


def test_orders_survive_the_broker_stopping_and_starting_mid_load() -> None:
    orders = scale()
    with running_system("RabbitMQ stopped and started under load") as system:
        market = Market.open(system, producers=4, lots=max(10, orders // 5), tag="mq")
        load = OrderLoad(system, market, orders)
        broken = eventlet.spawn(outage, system)
        load.run(spread_over=max(20.0, orders * 0.1))
        seen = broken.wait()
        system.summary.figures.update(seen)
        system.recover()
        findings = invariants.check(system, load.intents)
        troubles = load.troubles()
        system.summary.figures["client troubles"] = troubles[:10]
    assert findings.violations == []
    assert troubles == []
    assert system.summary.http_5xx == 0
    assert system.summary.orders_placed > orders // 2
    assert seen["died"] == {}, "processes did not survive the outage (defect J)"
    answers = seen["answers while down"]
    assert all(a["seconds"] <= system.rpc_timeout + 2 for a in answers), answers
    assert [a["codes"] for a in answers] == [["UNAVAILABLE"], ["UNAVAILABLE"]], (
        "the gateway must say UNAVAILABLE without a broker (defect I)", answers)
