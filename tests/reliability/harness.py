"""The whole system as separate OS processes, to break on purpose: start, kill, restart, wait.

`System` runs every service and the gateway with `veta run` on a throw-away RabbitMQ vhost and
throw-away PostgreSQL databases, knows when each is ready and when the system has gone quiet,
and keeps the figures a reliability test prints at its end (`Summary`).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import eventlet
import psycopg2
import requests
from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.utils import find_free_port
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from gateway.auth import TokenSettings, issue_token
from services.payouts.stripe_local import StripeLocal
from shared import dead_letters
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role
from shared.migrations import upgrade
from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "reliability"
PROCESSES = (*SERVICES, "gateway")
POSTGRES = os.environ.get("VETA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("VETA_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672").rstrip("/")
RABBIT_API = os.environ.get("VETA_TEST_RABBIT_API", "http://guest:guest@127.0.0.1:15672")
SUMMARIES: list[Summary] = []
"""Every summary finished in this run, for the terminal report (see conftest.py)."""

FOUR_EYES_THRESHOLD_CENTS = 6000
"""USD 60: the load's premiums are USD 16 to 144, so some need one FINANCE approval, some two."""
PAYOUTS_ENV = {
    "VETA_PAYOUTS_FOUR_EYES_THRESHOLD_CENTS": str(FOUR_EYES_THRESHOLD_CENTS),
    # A claim left by a killed payouts is taken again after its lease: keep that, the Stripe
    # timeout under it and the retry backoff short so a run waits seconds, not minutes.
    "VETA_PAYOUTS_SWEEP_SECONDS": "1", "VETA_PAYOUTS_LEASE_SECONDS": "10",
    "VETA_PAYOUTS_STRIPE_TIMEOUT_SECONDS": "5", "VETA_PAYOUTS_RETRY_BASE_SECONDS": "2",
    "VETA_PAYOUTS_RETRY_CAP_SECONDS": "10"}
READY_CALLS: dict[str, Callable[[Any], Any]] = {
    "certification": lambda rpc: rpc.certification.list_producers(first=1),
    "listings": lambda rpc: rpc.listings.search_listings({}, 1),
    "orders": lambda rpc: rpc.orders.list_orders({}, 1),
    "payouts": lambda rpc: rpc.payouts.list_obligations(None, 1),
}
"""A cheap RPC each service answers once it is consuming (services get /health/ready later)."""


def scale(default: int = 100) -> int:
    """Orders a load test places: VETA_RELIABILITY_ORDERS for the full size, else CI's size."""
    return int(os.environ.get("VETA_RELIABILITY_ORDERS", default))


def free_port_pair() -> int:
    """A free port for the gateway; the other services bind their own (WEB_SERVER_ADDRESSES
    in the tests' config), so one free port is all a system needs."""
    return int(find_free_port())


def veta_command() -> list[str]:
    script = Path(sys.executable).with_name("veta")
    if script.exists():
        return [str(script)]
    found = shutil.which("veta")
    if found is None:
        raise RuntimeError("the `veta` command is not installed: pip install -e '.[test]'")
    return [found]


@dataclass
class Summary:
    """What a reliability test did and found; printed at its end, and saved with its logs."""

    test: str
    orders_placed: int = 0
    orders_in_databases: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    restarts: int = 0
    broker_restarts: int = 0
    connections_terminated: int = 0
    events_duplicated: int = 0
    client_retries: int = 0
    ambiguous_answers: int = 0
    unavailable_answers: int = 0
    internal_errors: int = 0
    http_5xx: int = 0
    invariants_checked: int = 0
    violations: list[str] = field(default_factory=list)
    dead_letters: int = 0
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "-"
        lines = [
            f"reliability summary: {self.test} ({self.seconds:.1f} s)",
            f"  orders placed {self.orders_placed}, in the databases {self.orders_in_databases}"
            f" ({statuses})",
            f"  kills {self.kills}, restarts {self.restarts}, broker restarts "
            f"{self.broker_restarts}, database connections terminated "
            f"{self.connections_terminated}",
            f"  events duplicated {self.events_duplicated}, client retries "
            f"{self.client_retries}, ambiguous answers {self.ambiguous_answers}, "
            f"UNAVAILABLE answers {self.unavailable_answers}",
            f"  invariants checked {self.invariants_checked}, violations "
            f"{len(self.violations)}, dead letters {self.dead_letters}, 5xx "
            f"{self.http_5xx}, INTERNAL errors {self.internal_errors}",
        ]
        for name, value in sorted(self.figures.items()):
            if name == "invariants by kind":  # the full list is in summary.json
                name, value = "invariant kinds", len(value)
            lines.append(f"  {name}: {value}")
        lines += [f"  VIOLATION {v}" for v in self.violations[:25]]
        if len(self.violations) > 25:
            lines.append(f"  ... and {len(self.violations) - 25} more")
        return "\n".join(lines)

    def finish(self, started: float, directory: Path | None = None) -> None:
        self.seconds = time.monotonic() - started
        SUMMARIES.append(self)
        print(self.render(), flush=True)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "summary.json").write_text(json.dumps(asdict(self), indent=2))


class Broker:
    """RabbitMQ from outside: the management API for vhosts and queues, and `rabbitmqctl` to
    stop and start the broker application."""

    def __init__(self, api: str = RABBIT_API) -> None:
        parts = urlsplit(api)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port}/api"
        self.auth = (parts.username or "guest", parts.password or "guest")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.base + path, auth=self.auth, timeout=10,
                                    **kwargs)
        response.raise_for_status()
        return response

    def create_vhost(self, vhost: str) -> None:
        name = quote(vhost, safe="")
        self._call("PUT", f"/vhosts/{name}")
        self._call("PUT", f"/permissions/{name}/{quote(self.auth[0], safe='')}",
                   json={"configure": ".*", "write": ".*", "read": ".*"})

    def delete_vhost(self, vhost: str) -> None:
        with suppress(requests.RequestException):
            self._call("DELETE", f"/vhosts/{quote(vhost, safe='')}")

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        """The vhost's queues; message counts here lag by the statistics interval (5 s)."""
        columns = "name,messages,messages_ready,messages_unacknowledged,consumers"
        answer = self._call("GET", f"/queues/{quote(vhost, safe='')}",
                            params={"columns": columns})
        queues: list[dict[str, Any]] = answer.json()
        return queues

    def stop_app(self) -> None:
        """Stop the broker application (the whole machine's broker: use sparingly). It is
        started again by `start_app`, or at exit if a test never got that far."""
        atexit.register(self.start_app)
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120,
                       capture_output=True)

    def start_app(self) -> None:
        atexit.unregister(self.start_app)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=180,
                       capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "60"], check=True,
                       timeout=120, capture_output=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self._call("GET", "/overview")
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                eventlet.sleep(0.5)


class Databases:
    """One throw-away PostgreSQL database per service, migrated, dropped at the end."""

    def __init__(self, run: str, pooled: bool = False) -> None:
        self.pooled = pooled
        self.names = {service: f"veta_rel_{run}_{service}" for service in SERVICES}
        base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        self.urls = {service: f"{base}/{name}" for service, name in self.names.items()}
        self.engines: dict[str, Engine] = {}
        self._admin: Any = None

    @classmethod
    def attach(cls, urls: dict[str, str]) -> Databases:
        """Databases made elsewhere (the test session's), to look at, not to create or drop."""
        databases = cls("attached")
        databases.urls = dict(urls)
        databases.names = {service: url.rsplit("/", 1)[1] for service, url in urls.items()}
        databases.engines = {service: create_engine(url, poolclass=NullPool)
                             for service, url in urls.items()}
        return databases

    def admin(self) -> Any:
        deadline = time.monotonic() + 180
        while self._admin is None or self._admin.closed:
            try:
                self._admin = psycopg2.connect(POSTGRES)
                self._admin.autocommit = True
            except psycopg2.OperationalError as exc:
                # The server's connection slots are shared by everyone's tests: wait.
                if "too many clients" not in str(exc) or time.monotonic() > deadline:
                    raise
                eventlet.sleep(0.5)
        return self._admin

    def create(self) -> None:
        with self.admin().cursor() as cursor:
            for name in self.names.values():
                cursor.execute(f'CREATE DATABASE "{name}"')
        for service, url in self.urls.items():
            upgrade(service, url)
            # No pool by default: the harness holds no connection between looks, since
            # terminating connections is one of the faults and the server's slots are shared.
            self.engines[service] = (create_engine(url, pool_size=1, max_overflow=1)
                                     if self.pooled else create_engine(url, poolclass=NullPool))

    @contextmanager
    def connect(self, service: str) -> Iterator[Any]:
        """A connection to a service's database, waiting out a server with no free slot
        (the development machines share one PostgreSQL among everyone's tests)."""
        deadline = time.monotonic() + 180
        while True:
            try:
                connection = self.engines[service].connect()
                break
            except OperationalError as exc:
                if "too many clients" not in str(exc) or time.monotonic() > deadline:
                    raise
                eventlet.sleep(0.5)
        with connection:
            yield connection

    def drop(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        with self.admin().cursor() as cursor:
            for name in self.names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.close()

    def terminate(self, service: str, busy_only: bool = False) -> int:
        """Drop the service's connections to its database (only those inside a statement or
        a transaction if `busy_only`); returns how many were terminated."""
        busy = " AND state IN ('active', 'idle in transaction')" if busy_only else ""
        with self.admin().cursor() as cursor:
            cursor.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                           "FROM pg_stat_activity WHERE datname = %s "
                           "AND pid <> pg_backend_pid()" + busy, (self.names[service],))
            terminated: int = cursor.fetchone()[0]
        return terminated

    def scalar(self, service: str, sql: str, **params: Any) -> Any:
        with self.connect(service) as connection:
            return connection.execute(text(sql), params).scalar()

    def unsent(self) -> dict[str, int]:
        """Outbox rows not yet published, per service."""
        return {service: int(self.scalar(service, "SELECT count(*) FROM outbox "
                                                  "WHERE sent_at IS NULL"))
                for service in self.engines}

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        """Every table of every service database, as (rows, digest of their contents)."""
        prints: dict[str, tuple[int, str]] = {}
        for service in self.engines:
            with self.connect(service) as connection:
                tables = connection.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version' ORDER BY tablename")).scalars().all()
                query = " UNION ALL ".join(
                    f"SELECT '{table}', count(*), coalesce(md5(string_agg(md5(t::text), '' "
                    f"ORDER BY md5(t::text))), '') FROM \"{table}\" t" for table in tables)
                for table, rows, digest in connection.execute(text(query)):
                    prints[f"{service}.{table}"] = (rows, digest)
        return prints

    def progress(self) -> tuple[int, ...]:
        """Counts that grow whenever a service applies an event or raises one."""
        counts: list[int] = []
        for service in SERVICES:
            with self.connect(service) as connection:
                counts.extend(connection.execute(text(
                    "SELECT (SELECT count(*) FROM applied_events), "
                    "(SELECT count(*) FROM outbox)")).one())
        return tuple(counts)


class NotQuiet(AssertionError):
    """The system kept moving, or kept a backlog, past the time allowed."""


class System:
    """Veta as separate processes: four services and the gateway, each started by `veta run`."""

    def __init__(self, name: str, *, rpc_timeout: float = 5.0, stripe: bool = True,
                 extra_env: dict[str, dict[str, str]] | None = None) -> None:
        run = uuid.uuid4().hex[:8]
        self.name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
        self.vhost = f"veta_rel_{run}"
        self.amqp_uri = f"{AMQP}/{self.vhost}"
        self.config: dict[str, Any] = {"AMQP_URI": self.amqp_uri, "serializer": "json"}
        self.broker = Broker()
        self.databases = Databases(run)
        self.secret = "reliability-" + uuid.uuid4().hex
        self.rpc_timeout = rpc_timeout
        self.extra_env = extra_env or {}
        self.stripe = StripeLocal() if stripe else None
        if self.stripe is not None:
            # Stripe retries a webhook for days; the local one gives up after about a second,
            # which a payouts restart outlasts. Keep trying for ~30 s, longer than a restart.
            self.stripe.webhook_retry_delays = (0.05, 0.25, 1.0, 2.0, 4.0, 8.0, 15.0)
        self.ports: dict[str, int] = {}
        for process in PROCESSES:
            self._new_port(process)
        self.logs = ARTIFACTS / f"{self.name}-{run}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = dict.fromkeys(PROCESSES, 0)
        self.summary = Summary(name)
        self.started_at = time.monotonic()
        self._amqp: Connection | None = None
        self._queue_names: list[str] = []

    # --- lifecycle --------------------------------------------------------------------------

    def _new_port(self, process: str) -> None:
        """A port shared with no other process of the system (payouts serves Stripe's
        webhooks on its own HTTP address)."""
        taken = {port for name, port in self.ports.items() if name != process}
        while (port := find_free_port()) in taken:
            pass
        self.ports[process] = port
        self.gateway_url = f"http://127.0.0.1:{self.ports.get('gateway', 0)}/graphql"
        if process == "payouts" and self.stripe is not None:
            self.stripe.add_webhook_url(f"http://127.0.0.1:{port}/stripe/webhooks")

    def start(self) -> None:
        if self.stripe is not None:
            self.stripe.start()
        self.broker.create_vhost(self.vhost)
        self.databases.create()
        for process in PROCESSES:
            self.spawn(process)
        for process in PROCESSES:
            self.wait_ready(process)

    def env(self, process: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("VETA_")}
        env.update(
            VETA_AMQP_URI=self.amqp_uri, VETA_JWT_SECRET=self.secret,
            VETA_HTTP_ADDRESS=f"127.0.0.1:{self.ports[process]}", VETA_LOG_FORMAT="json",
            VETA_RPC_TIMEOUT=str(self.rpc_timeout), PYTHONUNBUFFERED="1",
            # The gateway's workers mostly wait on RPC; let it hold the load's concurrency.
            VETA_MAX_WORKERS="24" if process == "gateway" else "10")
        if process in SERVICES:
            env[f"VETA_{process.upper()}_DATABASE_URL"] = self.databases.urls[process]
        if process == "payouts" and self.stripe is not None:
            env.update(VETA_STRIPE_API_BASE=self.stripe.url,
                       VETA_STRIPE_API_KEY=self.stripe.api_key,
                       VETA_STRIPE_WEBHOOK_SECRET=self.stripe.webhook_secret, **PAYOUTS_ENV)
        env.update(self.extra_env.get(process, {}))
        return env

    def spawn(self, process: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.starts[process] += 1
        with open(self.logs / f"{process}.log", "ab") as log:
            log.write(f"=== veta run {process} (start {self.starts[process]}) ===\n".encode())
            log.flush()
            self.processes[process] = subprocess.Popen(
                [*veta_command(), "run", process], cwd=ROOT, env=self.env(process),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, process: str, timeout: float = 90.0) -> float:
        """Until the process answers (the gateway `{ me { role } }`, a service an RPC)."""
        started = time.monotonic()
        rebinds = 0
        while True:
            if self.processes[process].poll() is not None:
                if "Address already in use" in self.log_tail(process, 3) and rebinds < 3:
                    # Another program on the machine took the port since it was chosen.
                    rebinds += 1
                    self._new_port(process)
                    self.spawn(process)
                    continue
                raise RuntimeError(f"{process} exited with {self.processes[process].returncode}"
                                   f":\n{self.log_tail(process)}")
            if self._answers(process):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{process} not ready after {timeout:.0f} s:\n"
                                   f"{self.log_tail(process)}")
            eventlet.sleep(0.2)

    def _answers(self, process: str) -> bool:
        try:
            if process == "gateway":
                response = requests.post(
                    self.gateway_url, json={"query": "{ me { role } }"}, timeout=3,
                    headers={"Authorization": f"Bearer {self.token(Role.ADMIN)}"})
                return bool(response.status_code == 200
                            and (response.json().get("data") or {}).get("me"))
            with self.rpc(Role.ADMIN, timeout=3) as rpc:
                READY_CALLS[process](rpc)
            return True
        except Exception:
            return False

    def kill(self, process: str, sig: int = signal.SIGKILL) -> None:
        running = self.processes[process]
        running.send_signal(sig)
        running.wait(timeout=30)
        self.summary.kills += 1

    def restart(self, process: str) -> float:
        """Start a killed process again; returns how long it took to answer."""
        if self.processes[process].poll() is None:
            raise RuntimeError(f"{process} is still running")
        self.spawn(process)
        took = self.wait_ready(process)
        self.summary.restarts += 1
        return took

    def stop_all(self) -> None:
        for running in self.processes.values():
            if running.poll() is None:
                running.send_signal(signal.SIGTERM)
        for running in self.processes.values():
            try:
                running.wait(timeout=15)
            except subprocess.TimeoutExpired:
                running.kill()
                running.wait(timeout=10)

    def close(self, keep_databases: bool = False) -> None:
        self.stop_all()
        if self._amqp is not None:
            with suppress(Exception):
                self._amqp.release()
        if self.stripe is not None:
            self.stripe.stop()
        if not keep_databases:
            self.databases.drop()
        self.broker.delete_vhost(self.vhost)

    def log_tail(self, process: str, lines: int = 30) -> str:
        path = self.logs / f"{process}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- callers ----------------------------------------------------------------------------

    def token(self, role: Role, organisation: str | None = None,
              subject: str | None = None) -> str:
        return issue_token(TokenSettings(secret=self.secret), role, organisation,
                           subject=subject or f"reliability-{role.lower()}")

    @contextmanager
    def rpc(self, role: Role, organisation: str | None = None,
            timeout: float | None = 10.0) -> Iterator[Any]:
        caller = Caller(subject=f"reliability-{role.lower()}", role=role,
                        organisation=organisation)
        with ClusterRpcProxy(self.config, context_data={CALLER_CONTEXT_KEY: caller.context()},
                             timeout=timeout) as proxy:
            yield proxy

    # --- the broker's view ------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._amqp is None:
            self._amqp = Connection(self.amqp_uri, connect_timeout=5)
        return self._amqp

    def queue_depth(self, name: str) -> int:
        """Messages ready in a queue, exactly, now (0 if it does not exist)."""
        for attempt in range(3):
            try:
                channel = self._connection().channel()
                try:
                    _, ready, _ = channel.queue_declare(queue=name, passive=True)
                    return int(ready)
                finally:
                    with suppress(Exception):
                        channel.close()
            except QueueNotFound:
                return 0
            except Exception:
                if self._amqp is not None:
                    with suppress(Exception):
                        self._amqp.release()
                self._amqp = None
                if attempt == 2:
                    raise
                eventlet.sleep(0.5)
        return 0

    def durable_queues(self) -> list[str]:
        """The services' own queues (not the reply queues of RPC callers)."""
        names = [q["name"] for q in self.broker.queues(self.vhost)]
        return sorted(n for n in names if not n.startswith(("rpc.reply-", "amq.")))

    def backlog(self) -> dict[str, int]:
        if not self._queue_names or len(self._queue_names) < 8:
            self._queue_names = self.durable_queues()
        depths = {name: self.queue_depth(name) for name in self._queue_names}
        return {name: depth for name, depth in depths.items() if depth}

    def dead_letter_count(self) -> int:
        return self.queue_depth(dead_letters.QUEUE.name)

    def dead_letters(self) -> list[dict[str, Any]]:
        if not self.dead_letter_count():
            return []
        return dead_letters.list_letters(self.config)

    # --- quiet ------------------------------------------------------------------------------

    def quiesce(self, timeout: float = 90.0, settle: int = 4) -> float:
        """Wait until every outbox is drained, no queue holds a message and the databases
        stopped changing for `settle` looks in a row; returns the seconds it took."""
        started = time.monotonic()
        last: tuple[int, ...] | None = None
        stable = 0
        while True:
            unsent = {k: v for k, v in self.databases.unsent().items() if v}
            backlog = {k: v for k, v in self.backlog().items()
                       if k != dead_letters.QUEUE.name}
            progress = self.databases.progress()
            quiet = not unsent and not backlog and progress == last
            stable = stable + 1 if quiet else 0
            last = progress
            if stable >= settle:
                unacked = sum(q.get("messages_unacknowledged") or 0
                              for q in self.broker.queues(self.vhost))
                if unacked == 0:
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise NotQuiet(f"not quiet after {timeout:.0f} s: unsent {unsent}, "
                               f"queued {backlog}")
            eventlet.sleep(0.3)

    def pending_orders(self) -> int:
        return int(self.databases.scalar(
            "orders", "SELECT count(*) FROM orders WHERE status = 'PENDING'"))

    def recover(self, timeout: float = 150.0) -> None:
        """Wait for quiet; then, if orders are still PENDING (an answer lost on the way),
        for the orders service's sweep to ask listings again (after 30 s), and quiet again;
        then for the payouts in flight to be paid."""
        started = time.monotonic()
        self.summary.figures["seconds to quiet"] = round(self.quiesce(timeout), 1)
        pending = self.pending_orders()
        if pending:
            self.summary.figures["PENDING at first quiet (left to the sweep)"] = pending
            while self.pending_orders() and time.monotonic() - started < timeout:
                eventlet.sleep(1.0)
            self.quiesce(max(timeout - (time.monotonic() - started), 30.0))
        self.settle_payouts(started, timeout)

    def payouts_in_flight(self) -> int:
        """Obligations the payouts sweep has yet to finish: approved, submitted, or failed
        with a retryable refusal (it tries again after a backoff)."""
        if self.stripe is None:
            return 0
        return int(self.databases.scalar("payouts", (
            "SELECT count(*) FROM obligations WHERE status IN ('APPROVED', 'SUBMITTED')"
            " OR (status = 'FAILED' AND failure_stage = 'TRANSFER' AND retryable)")))

    def settle_payouts(self, started: float, timeout: float) -> None:
        """Quiet is not enough for money: the sweep acts every second and a claim left by a
        killed process waits out its lease. Wait for every approved premium to be paid or
        refused for good, then for the services to hear of it."""
        in_flight = self.payouts_in_flight()
        if not in_flight:
            return
        self.summary.figures["payouts in flight at quiet"] = in_flight
        waited = time.monotonic()
        while self.payouts_in_flight() and time.monotonic() - started < timeout:
            eventlet.sleep(0.5)
        self.summary.figures["seconds waiting for payouts"] = round(
            time.monotonic() - waited, 1)
        self.quiesce(max(timeout - (time.monotonic() - started), 30.0))

    def log_lines(self, *needles: str, processes: tuple[str, ...] = SERVICES) -> int:
        """Lines of the processes' JSON logs that contain every one of `needles`."""
        total = 0
        for process in processes:
            path = self.logs / f"{process}.log"
            if path.exists():
                with open(path, errors="replace") as log:
                    total += sum(1 for line in log if all(n in line for n in needles))
        return total

    def events_skipped_as_duplicates(self) -> int:
        """Deliveries the services recognised as already applied (from their JSON logs)."""
        return self.log_lines("already applied")

    def logged_errors(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for process in PROCESSES:
            path = self.logs / f"{process}.log"
            if path.exists():
                with open(path, errors="replace") as log:
                    counts[process] = sum(1 for line in log if '"level": "ERROR"' in line)
        return {k: v for k, v in counts.items() if v}


@contextmanager
def running_system(name: str, **options: Any) -> Iterator[System]:
    """A started System, always stopped and cleaned up, its logs kept under artifacts/."""
    system = System(name, **options)
    try:
        system.start()
        yield system
    finally:
        try:
            if not system.summary.events_duplicated:
                system.summary.events_duplicated = system.events_skipped_as_duplicates()
            errors = system.logged_errors()
            if errors:
                system.summary.figures["ERROR log lines"] = errors
            system.summary.finish(system.started_at, system.logs)
        finally:
            system.close(keep_databases=os.environ.get("VETA_RELIABILITY_KEEP") == "1")
