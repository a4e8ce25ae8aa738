"""What operators rely on: health probes, metrics, and log lines labelled with the request."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import requests
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from services.certification import store
from shared.messaging import Database
from shared.observability import JsonFormatter, Operations


class Probed(Operations):
    """The certification database behind a service that only has the operations mixin."""

    name = "certification"
    db = Database(store.messaging)

    @rpc
    def hello(self) -> str:
        logging.getLogger("probe").info("hello from the probe")
        return "hello"


@pytest.fixture
def probe_config(veta_config: dict[str, Any]) -> dict[str, Any]:
    """The probed service on the test's known web address rather than a free one."""
    return {key: value for key, value in veta_config.items() if key != "WEB_SERVER_ADDRESSES"}


def url(config: dict[str, Any], path: str) -> str:
    return f"http://{config['WEB_SERVER_ADDRESS']}{path}"


def test_a_running_service_is_live_and_ready(container_factory: Any,
                                             probe_config: dict[str, Any]) -> None:
    container_factory(Probed, probe_config).start()
    assert requests.get(url(probe_config, "/health/live"), timeout=5).status_code == 200
    ready = requests.get(url(probe_config, "/health/ready"), timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] is True
    assert ready.json()["checks"]["broker"] is True


def test_readiness_fails_when_the_database_is_unreachable(
        container_factory: Any, probe_config: dict[str, Any]) -> None:
    config = {**probe_config, "DATABASES": {
        "certification": "postgresql+psycopg2://postgres@127.0.0.1:1/none"}}
    container_factory(Probed, config).start()
    ready = requests.get(url(config, "/health/ready"), timeout=10)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] is False


def test_metrics_count_entrypoints(container_factory: Any,
                                   probe_config: dict[str, Any]) -> None:
    container_factory(Probed, probe_config).start()
    with ClusterRpcProxy(probe_config) as cluster:
        assert cluster.certification.hello() == "hello"
    text = requests.get(url(probe_config, "/metrics"), timeout=5).text
    assert ('veta_entrypoint_seconds_count{entrypoint="hello",kind="rpc",outcome="ok",'
            'service="certification"}') in text


def test_log_lines_carry_the_callers_correlation_id(
        container_factory: Any, probe_config: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    container_factory(Probed, probe_config).start()
    correlation_id = str(uuid.uuid4())
    caplog.set_level(logging.INFO)
    with ClusterRpcProxy(probe_config,
                         context_data={"correlation_id": correlation_id}) as cluster:
        cluster.certification.hello()
    [line] = [r for r in caplog.records if r.getMessage() == "hello from the probe"]
    rendered = JsonFormatter().format(line)
    assert f'"correlation_id": "{correlation_id}"' in rendered
    assert '"service": "certification"' in rendered and '"entrypoint": "hello"' in rendered


def test_json_logs_redact_tokens_and_keys() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "auth Bearer eyJhbGciOi.eyJzdWIi.sig with sk_test_abc123", None,
                               None)
    rendered = JsonFormatter().format(record)
    assert "eyJ" not in rendered and "sk_test_abc123" not in rendered
    assert "[redacted]" in rendered
