"""Helpers for tests that drive the real services: callers, tokens, GraphQL over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import requests
from nameko.standalone.rpc import ClusterRpcProxy

from gateway.auth import TokenSettings, issue_token
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role


@contextmanager
def rpc_as(config: dict[str, Any], role: Role, organisation: str | None = None
           ) -> Iterator[Any]:
    caller = Caller(subject=f"test-{role.lower()}", role=role, organisation=organisation)
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: caller.context()}) as rpc:
        yield rpc


def token(config: dict[str, Any], role: Role, organisation: str | None = None) -> str:
    return issue_token(TokenSettings.from_config(config), role, organisation)


class GraphQL:
    """A client of the gateway over HTTP, as a frontend would be."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = f"http://{config['WEB_SERVER_ADDRESS']}/graphql"
        self.config = config

    def post(self, query: str, variables: dict[str, Any] | None = None,
             bearer: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return requests.post(self.url, json={"query": query, "variables": variables or {}},
                             headers=headers, timeout=30)

    def run(self, query: str, variables: dict[str, Any] | None = None, *,
            role: Role, organisation: str | None = None) -> dict[str, Any]:
        response = self.post(query, variables, token(self.config, role, organisation))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def validity(days_before: int = 30, days_after: int = 365) -> dict[str, str]:
    today = date.today()
    return {"valid_from": (today - timedelta(days=days_before)).isoformat(),
            "valid_until": (today + timedelta(days=days_after)).isoformat()}


def lot_input(producer_id: str, standard: str = "FAIRMINED", gross: str = "1000.000",
              fineness: str = "915.0", **overrides: Any) -> dict[str, Any]:
    lot = {
        "producer_id": producer_id, "standard": standard, "form": "DORE",
        "gross_weight": gross, "fineness": fineness,
        "mine_site": {"name": "Mina La Esperanza", "region": "Antioquia", "country": "CO"},
        "mercury_free": True, "assay_reference": "LAB-2026-001",
    }
    lot.update(overrides)
    return lot


def eventually(condition: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Wait until `condition()` is truthy (for states no entrypoint signals), or fail."""
    import eventlet

    with eventlet.Timeout(timeout, AssertionError(f"condition not met in {timeout}s")):
        while not (result := condition()):
            eventlet.sleep(interval)
    return result
