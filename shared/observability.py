"""What operators see of a running service: health probes, Prometheus metrics, JSON logs.

Every service class mixes in `Operations`, which adds /health/live, /health/ready and
/metrics, and a `Telemetry` dependency that times each entrypoint and puts the service,
entrypoint, correlation id and event id on every log line written while it runs.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import eventlet.corolocal
from kombu import Connection
from nameko.containers import WorkerContext
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from werkzeug.wrappers import Request, Response

from shared.http import http
from shared.metrics import (
    ENTRYPOINT_SECONDS,
    EVENTS_CONSUMED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_SECONDS,
)

_local = eventlet.corolocal.local()
log = logging.getLogger(__name__)


def log_context() -> dict[str, Any]:
    """Fields of the entrypoint running in this green thread, for log lines."""
    return dict(getattr(_local, "fields", {}) or {})


def bind(**fields: Any) -> None:
    """Add fields (a correlation id the gateway just chose, say) to this entrypoint's logs."""
    _local.fields = {**log_context(), **fields}


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    # Stamped when the record is made, in the green thread that made it: a handler that
    # formats later, elsewhere, still knows which request the line belongs to.
    record = _base_factory(*args, **kwargs)
    record.veta = log_context()
    return record


logging.setLogRecordFactory(_record_with_context)


def _kind(entrypoint: Any) -> str:
    for cls, name in ((Rpc, "rpc"), (EventHandler, "event"), (Timer, "timer"),
                      (HttpRequestHandler, "http")):
        if isinstance(entrypoint, cls):
            return name
    return "other"


class Telemetry(DependencyProvider):
    """Times every entrypoint and labels the log lines written while it runs."""

    def worker_setup(self, worker_ctx: WorkerContext) -> None:
        fields = {"service": worker_ctx.service_name,
                  "entrypoint": worker_ctx.entrypoint.method_name,
                  "correlation_id": worker_ctx.context_data.get("correlation_id")}
        if worker_ctx.args and isinstance(worker_ctx.args[0], dict) \
                and "event_id" in worker_ctx.args[0]:
            fields["event_id"] = worker_ctx.args[0]["event_id"]
        _local.fields = fields
        _local.started = time.perf_counter()

    def worker_result(self, worker_ctx: WorkerContext, result: Any = None,
                      exc_info: Any = None) -> None:
        outcome = "ok" if exc_info is None else type(exc_info[1]).__name__
        kind = _kind(worker_ctx.entrypoint)
        seconds = time.perf_counter() - getattr(_local, "started", time.perf_counter())
        ENTRYPOINT_SECONDS.labels(service=worker_ctx.service_name,
                                  entrypoint=worker_ctx.entrypoint.method_name, kind=kind,
                                  outcome=outcome).observe(seconds)
        # Probes and scrapes arrive every few seconds; they are not worth a line each.
        level = logging.DEBUG if kind == "http" else logging.INFO
        log.log(level, "%s %s: %s in %.1f ms", kind, worker_ctx.entrypoint.method_name,
                outcome, seconds * 1000)
        if kind == "event":
            EVENTS_CONSUMED.labels(service=worker_ctx.service_name,
                                   type=getattr(worker_ctx.entrypoint, "event_type", "?"),
                                   outcome=outcome).inc()

    def worker_teardown(self, worker_ctx: WorkerContext) -> None:
        _local.fields = {}


class BrokerCheck(DependencyProvider):
    """Answers whether the broker accepts a connection now."""

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        config = self.container.config

        def reachable() -> bool:
            try:
                with Connection(config["AMQP_URI"], connect_timeout=2,
                                transport_options=config.get("TRANSPORT_OPTIONS") or {}) as c:
                    c.ensure_connection(max_retries=1)
                return True
            except Exception:
                return False
        return reachable


class Operations:
    """Mixed into every service: liveness, readiness and metrics over the service's HTTP port."""

    name: str
    telemetry = Telemetry()
    broker_reachable = BrokerCheck()
    max_outbox_lag_seconds = 60.0

    @http("GET", "/health/live")
    def health_live(self, request: Request) -> Response:
        return _json({"status": "live"})

    @http("GET", "/health/ready")
    def health_ready(self, request: Request) -> Response:
        checks: dict[str, Any] = {"broker": self.broker_reachable()}
        database = getattr(self, "db", None)
        if database is not None:
            checks.update(self._database_checks(database))
        ready = all(value is True for key, value in checks.items() if key != "outbox_backlog")
        return _json({"status": "ready" if ready else "not ready", "checks": checks},
                     200 if ready else 503)

    @http("GET", "/metrics")
    def metrics(self, request: Request) -> Response:
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    def _database_checks(self, database: Any) -> dict[str, Any]:
        outbox = database.tables.outbox
        try:
            with database.reading() as session:
                session.execute(text("SELECT 1"))
                backlog, oldest = session.execute(
                    select(func.count(), func.min(outbox.c.created_at))
                    .where(outbox.c.sent_at.is_(None))).one()
        except Exception:
            log.exception("readiness: database check failed")
            return {"database": False}
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - oldest).total_seconds()
        OUTBOX_BACKLOG.labels(service=self.name).set(backlog)
        OUTBOX_OLDEST_SECONDS.labels(service=self.name).set(age)
        return {"database": True, "outbox_backlog": backlog,
                "outbox_lag": age <= self.max_outbox_lag_seconds}


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


SECRET_PATTERNS = re.compile(
    r"(Bearer\s+[A-Za-z0-9._~+/=-]+|sk_(test|live)_[A-Za-z0-9]+|whsec_[A-Za-z0-9]+"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def redact(text_: str) -> str:
    return SECRET_PATTERNS.sub("[redacted]", text_)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the running entrypoint's fields; secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname, "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "veta", None) or {}
        body.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            body["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, default=str)


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic.runtime.plugins", "kombu.mixins", "kombu.connection"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
