"""Orders through the gateway: sustained confirmed orders per second, and placeOrder -> CONFIRMED
latency at a fixed offered rate, beside raw nameko RPC and event rates measured in the same run.

Run: `python bench/orders.py [--services veta-run|runner] [--seconds 15] [--rates 100,25]` with
RabbitMQ (and its management API) and PostgreSQL on their default local ports. Everything runs
against a throw-away vhost and throw-away databases. `VETA_TEST_POSTGRES` names another
PostgreSQL, e.g. over its Unix socket: `postgresql://postgres@/postgres?host=/var/run/postgresql`.

- `--services veta-run` (default): each service is its own `veta run <service>` process, as in
  a real deployment (certification, listings, orders, gateway; payouts is not on this path).
  `--services runner`: all of them in one child process, one nameko ServiceRunner.
- The raw figures come from a tiny echo service (`@rpc echo`, an `@event_handler` counting)
  in its own process: nameko RPC calls/s from the same number of clients, and events/s
  dispatched with publisher confirms and handled.
- This process is only the client: HTTP placeOrder from green threads, each with its own
  requests session, and a consumer of `order_confirmed` events bound to orders' exchange, so
  CONFIRMED is seen the moment orders announces it (no polling).
- After each run it reads the services' tables to show where the time of an order goes:
  placement, each outbox's wait for the relay, and each consumer's delay.

Prints rates, p50/p99 and the goals (>= 300 confirmed/s sustained; p99 < 250 ms at 100/s).
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
import requests  # noqa: E402
from kombu import Connection, Consumer, Queue  # noqa: E402
from nameko.events import event_handler  # noqa: E402
from nameko.rpc import rpc  # noqa: E402
from nameko.standalone.events import event_dispatcher, get_event_exchange  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throwaway import SECRET, backends  # noqa: E402
from gateway.auth import TokenSettings, issue_token  # noqa: E402
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role  # noqa: E402

ON_PATH = ("certification", "listings", "orders", "gateway")
PLACE = """mutation ($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { code message } } }"""
GOAL_RATE, GOAL_P99_MS = 300.0, 250.0


class BenchEcho:
    """The least a nameko service can do: answer an RPC, count an event."""

    name = "bench_echo"
    handled = 0

    @rpc
    def echo(self, value: Any) -> Any:
        return value

    @rpc
    def count(self) -> int:
        return BenchEcho.handled

    @event_handler("bench", "pinged")
    def on_pinged(self, payload: Any) -> None:
        BenchEcho.handled += 1


RUNNER = """
import eventlet; eventlet.monkey_patch()
import json, sys
sys.path.insert(0, {root!r})
from nameko.runners import ServiceRunner
from veta.services import SERVICE_CLASSES
from bench.orders import BenchEcho
config, names = json.loads(sys.argv[1]), sys.argv[2:]
runner = ServiceRunner(config)
for name in names:
    runner.add_service(BenchEcho if name == "bench_echo" else SERVICE_CLASSES[name])
runner.start()
print("started", flush=True)
runner.wait()
"""


def runner_process(config: dict[str, Any], names: list[str]) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER.format(root=str(ROOT)), json.dumps(config), *names],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    return child


def veta_run(config: dict[str, Any], name: str) -> subprocess.Popen[str]:
    # The gateway on the bench's port; each service its probes on a free one of its own.
    address = (config["WEB_SERVER_ADDRESS"] if name == "gateway"
               else config["WEB_SERVER_ADDRESSES"][name])
    env = {**os.environ, "VETA_AMQP_URI": config["AMQP_URI"], "VETA_JWT_SECRET": SECRET,
           "VETA_HTTP_ADDRESS": address,
           "VETA_MAX_WORKERS": str(config["max_workers"])}
    env.update({f"VETA_{s.upper()}_DATABASE_URL": url for s, url in config["DATABASES"].items()})
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / "veta"), "run", name], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True)


@contextmanager
def throwaway_system(port: int, services: str, workers: int) -> Iterator[dict[str, Any]]:
    with backends(port, workers) as config:
        children = [runner_process(config, ["bench_echo"])]
        config["PIDS"] = {}
        try:
            if services == "runner":
                children.append(runner_process(config, list(ON_PATH)))
                config["PIDS"]["all services"] = children[-1].pid
            else:
                for name in ON_PATH:
                    children.append(veta_run(config, name))
                    config["PIDS"][name] = children[-1].pid
            wait_until_up(config)
            yield config
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User plus system CPU time a process has used so far, from /proc; with `reaped`, also
    that of its children that have ended (PostgreSQL's backends, once they exit)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used so far (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


class CpuMeter:
    """CPU used by each of our processes, and by the rest of the machine, over a run."""

    def __init__(self, ours: dict[str, int]) -> None:
        self.ours = ours
        self.before = self.sample()

    def sample(self) -> dict[str, float]:
        figures = {name: cpu_seconds(pid) for name, pid in self.ours.items()}
        figures["this client"] = cpu_seconds(os.getpid())
        for name, command in (("PostgreSQL (every backend)", "postgres"),
                              ("RabbitMQ", "beam.smp")):
            figures[name] = sum(cpu_seconds(pid, reaped=True)
                                for pid in processes_named(command))
        figures["machine"] = machine_cpu_seconds()
        return figures

    def used(self) -> dict[str, float]:
        after = self.sample()
        used = {name: after[name] - self.before.get(name, 0.0) for name in after}
        machine = used.pop("machine")
        used["the rest: kernel (interrupts), anything else"] = machine - sum(used.values())
        return used


def processes_named(command: str) -> list[int]:
    """The ids of the processes running `command` (PostgreSQL's postmaster and its backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
    return found


def wait_until_up(config: dict[str, Any]) -> None:
    url = f"http://{config['WEB_SERVER_ADDRESS']}/graphql"
    caller = Caller(subject="bench", role=Role.ADMIN).context()
    deadline = time.monotonic() + 60
    while True:
        try:
            with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: caller},
                                 timeout=2) as proxy:
                proxy.certification.list_producers(1)
                proxy.listings.search_listings({}, 1)
                proxy.orders.list_orders({}, 1)
            if requests.get(url, timeout=2).status_code == 200:
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            eventlet.sleep(0.2)


def seed(config: dict[str, Any], lots: int) -> list[str]:
    """Lots enough for every order the bench will place (no lot ever runs out)."""
    caller = Caller(subject="bench", role=Role.ADMIN).context()
    today = date.today()
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: caller}) as proxy:
        producers = []
        for n in range(10):
            producer = proxy.certification.register_producer(
                {"name": f"Cooperativa {n}", "country": "CO", "region": "Antioquia"})
            proxy.certification.grant_certification({
                "producer_id": producer["id"], "standard": "FAIRMINED",
                "certificate_number": f"B-{n}-{producer['id'][:6]}",
                "valid_from": (today - timedelta(days=10)).isoformat(),
                "valid_until": (today + timedelta(days=300)).isoformat()})
            producers.append(producer["id"])
        ids: list[str] = []
        while len(ids) < lots:
            try:
                ids.append(proxy.listings.publish_listing({
                    "producer_id": producers[len(ids) % len(producers)],
                    "standard": "FAIRMINED", "form": "CAST_BAR",
                    "gross_weight": "1000000.000", "fineness": "999.9",
                    "mine_site": {"name": "Mina", "region": "Antioquia", "country": "CO"},
                    "mercury_free": True, "assay_reference": f"A-{len(ids)}"})["id"])
            except Exception:
                eventlet.sleep(0.05)  # listings has not heard of the certificate yet
    return ids


class Confirmations:
    """Consumes order_confirmed from orders' exchange; when each order was confirmed."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.at: dict[str, float] = {}
        self.connection = Connection(config["AMQP_URI"])
        exchange = get_event_exchange("orders", config)
        exchange(self.connection.default_channel).declare()
        self.queue = Queue(f"bench-confirmed-{uuid.uuid4().hex}", exchange=exchange,
                           routing_key="order_confirmed", auto_delete=True, exclusive=True)
        self.consumer = Consumer(self.connection, [self.queue], callbacks=[self._on],
                                 accept=["json"], no_ack=True)
        self.consumer.consume()
        self.running = True
        self.thread = eventlet.spawn(self._drain)

    def _on(self, body: dict[str, Any], _message: Any) -> None:
        self.at[body["order_id"]] = time.perf_counter()

    def _drain(self) -> None:
        while self.running:
            with suppress(TimeoutError):
                self.connection.drain_events(timeout=0.2)

    def stop(self) -> None:
        self.running = False
        self.thread.wait()
        self.connection.release()


class Buyers:
    """HTTP clients of the gateway: one requests session per green thread."""

    def __init__(self, config: dict[str, Any], lots: list[str]) -> None:
        self.url = f"http://{config['WEB_SERVER_ADDRESS']}/graphql"
        self.token = issue_token(TokenSettings(secret=SECRET), Role.BUYER, "bench-buyer")
        self.lots = lots
        self.sessions: dict[int, requests.Session] = {}
        self.placed: dict[str, float] = {}
        self.answered: list[float] = []
        self.failures = 0
        self.next = 0

    def place(self) -> None:
        session = self.sessions.setdefault(id(eventlet.getcurrent()), requests.Session())
        lot = self.lots[self.next % len(self.lots)]
        self.next += 1
        started = time.perf_counter()
        try:
            response = session.post(self.url, timeout=30, json={
                "query": PLACE, "variables": {"input": {
                    "buyerId": "bench-buyer", "listingId": lot, "fineWeight": "1.000"}}},
                headers={"Authorization": f"Bearer {self.token}"})
            order = response.json()["data"]["placeOrder"]["order"]
        except Exception:
            self.failures += 1
            return
        if order is None:
            self.failures += 1
            return
        self.placed[order["id"]] = started
        self.answered.append(time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * share) - 1, 0)] * 1000 if ordered else float("nan")


def sustained(config: dict[str, Any], lots: list[str], clients: int,
              seconds: float) -> dict[str, float]:
    """As many orders as `clients` closed-loop buyers can place; confirmed per second."""
    confirmations = Confirmations(config)
    buyers = Buyers(config, lots)
    deadline = time.perf_counter() + seconds

    def buyer() -> None:
        while time.perf_counter() < deadline:
            buyers.place()

    meter = CpuMeter(config["PIDS"])
    started = time.perf_counter()
    pool = eventlet.GreenPool(clients)
    for _ in range(clients):
        pool.spawn_n(buyer)
    pool.waitall()
    wait_for(lambda: set(buyers.placed) <= set(confirmations.at), 60)
    cpu = meter.used()
    confirmations.stop()
    window = [t for t in confirmations.at.values() if t <= started + seconds]
    done = max(len(confirmations.at), 1)
    until_last = max(confirmations.at.values(), default=started + seconds) - started
    for name, used in cpu.items():
        config.setdefault("CPU_MS_PER_ORDER", {})[name] = used * 1000 / done
    return {"placed/s": len(buyers.placed) / seconds, "confirmed/s": len(window) / seconds,
            "all confirmed/s": len(confirmations.at) / until_last,
            "placeOrder p50": percentile(buyers.answered, 0.5),
            "placeOrder p99": percentile(buyers.answered, 0.99),
            "failures": buyers.failures, "n": len(buyers.placed)}


def at_rate(config: dict[str, Any], lots: list[str], rate: float,
            seconds: float) -> tuple[dict[str, float], list[str]]:
    """Orders placed at a fixed offered rate (open loop); placeOrder -> CONFIRMED times."""
    confirmations = Confirmations(config)
    buyers = Buyers(config, lots)
    pool = eventlet.GreenPool(1000)
    started = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            eventlet.sleep(delay)
        pool.spawn_n(buyers.place)
    pool.waitall()
    wait_for(lambda: set(buyers.placed) <= set(confirmations.at), 60)
    confirmations.stop()
    latencies = [confirmations.at[o] - t for o, t in buyers.placed.items()
                 if o in confirmations.at]
    achieved = total / (time.perf_counter() - started)
    return ({"offered/s": rate, "achieved/s": achieved,
             "to CONFIRMED p50": percentile(latencies, 0.5),
             "to CONFIRMED p99": percentile(latencies, 0.99),
             "placeOrder p50": percentile(buyers.answered, 0.5),
             "placeOrder p99": percentile(buyers.answered, 0.99),
             "failures": buyers.failures, "n": len(latencies)}, list(buyers.placed))


def raw_rpc(config: dict[str, Any], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        # One proxy per green thread: a shared one raises "Second simultaneous read".
        with ClusterRpcProxy(config) as proxy:
            while time.perf_counter() < deadline:
                begun = time.perf_counter()
                proxy.bench_echo.echo({"order_id": "x", "fine_weight": "1.000"})
                latencies.append(time.perf_counter() - begun)

    pool = eventlet.GreenPool(clients)
    for _ in range(clients):
        pool.spawn_n(client)
    pool.waitall()
    return {"calls/s": len(latencies) / seconds, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99)}


def raw_events(config: dict[str, Any], clients: int, seconds: float) -> dict[str, float]:
    with ClusterRpcProxy(config) as proxy:
        before = proxy.bench_echo.count()
        sent = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        def client() -> None:
            nonlocal sent
            dispatch = event_dispatcher(config)
            while time.perf_counter() < deadline:
                dispatch("bench", "pinged", {"order_id": "x", "fine_weight": "1.000"})
                sent += 1

        pool = eventlet.GreenPool(clients)
        for _ in range(clients):
            pool.spawn_n(client)
        pool.waitall()
        published = time.perf_counter() - started
        wait_for(lambda: proxy.bench_echo.count() - before >= sent, 120)
        handled = time.perf_counter() - started
    return {"dispatched/s": sent / published, "handled/s": sent / handled}


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            print("  (gave up waiting: some orders were never confirmed)", flush=True)
            return
        eventlet.sleep(0.05)


def stages(config: dict[str, Any], order_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Where an order's time goes, from the services' own tables: p50 and p99 in ms."""
    urls = {s: u.replace("postgresql+psycopg2://", "postgresql://")
            for s, u in config["DATABASES"].items()}
    ids = tuple(order_ids)
    with psycopg2.connect(urls["orders"]) as db, db.cursor() as cursor:
        cursor.execute("""
            SELECT o.id, o.created_at, c.at, p.created_at, p.sent_at, k.created_at, k.sent_at
            FROM orders o
            JOIN order_transitions c ON c.order_id = o.id AND c.to_status = 'CONFIRMED'
            JOIN outbox p ON p.event_id = o.placed_event_id
            JOIN outbox k ON k.event_type = 'order_confirmed'
                         AND k.payload->>'order_id' = o.id
            WHERE o.id IN %s""", (ids,))
        orders = {row[0]: row[1:] for row in cursor.fetchall()}
    with psycopg2.connect(urls["listings"]) as db, db.cursor() as cursor:
        cursor.execute("""
            SELECT r.order_id, r.created_at, x.created_at, x.sent_at
            FROM reservations r
            JOIN outbox x ON x.event_type = 'listing_reserved'
                         AND x.payload->>'order_id' = r.order_id
            WHERE r.order_id IN %s""", (ids,))
        reservations = {row[0]: row[1:] for row in cursor.fetchall()}
    spans: dict[str, list[float]] = {
        "order_placed waits in orders' outbox": [],
        "listings consumes order_placed, reserves": [],
        "listing_reserved waits in listings' outbox": [],
        "orders consumes listing_reserved, confirms": [],
        "order_confirmed waits in orders' outbox": []}
    for order_id, (_, confirmed, p_made, p_sent, k_made, k_sent) in orders.items():
        if order_id not in reservations:
            continue
        reserved, r_made, r_sent = reservations[order_id]
        for name, (a, b) in zip(spans, ((p_made, p_sent), (p_sent, reserved),
                                        (r_made, r_sent), (r_sent, confirmed),
                                        (k_made, k_sent)), strict=True):
            spans[name].append((b - a).total_seconds())
    return {name: (percentile(v, 0.5), percentile(v, 0.99)) for name, v in spans.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", choices=["veta-run", "runner"], default="veta-run")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rates", default="100,25",
                        help="offered orders/s, comma-separated; the first is the goal's")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop buyers")
    parser.add_argument("--workers", type=int, default=50, help="nameko max_workers")
    parser.add_argument("--lots", type=int, default=200)
    parser.add_argument("--port", type=int, default=18124)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with throwaway_system(args.port, args.services, args.workers) as config:
        lots = seed(config, args.lots)
        raw = raw_rpc(config, args.clients, args.seconds / 3)
        events = raw_events(config, 8, args.seconds / 3)
        offered = []
        for rate in rates:
            figures, ids = at_rate(config, lots, rate, args.seconds)
            offered.append((rate, figures, stages(config, ids)))
        most = sustained(config, lots, args.clients, args.seconds)

    how = ("one `veta run` process per service" if args.services == "veta-run"
           else "one ServiceRunner process for all services")
    print(f"\nservices: {how}, max_workers {args.workers}; {os.cpu_count()} cores shared "
          f"with PostgreSQL, RabbitMQ and this client")
    print(f"raw nameko RPC (echo, {args.clients} clients): {raw['calls/s']:8.1f} calls/s  "
          f"p50 {raw['p50']:.1f} ms  p99 {raw['p99']:.1f} ms")
    print(f"raw nameko events (8 dispatchers, confirms): {events['dispatched/s']:8.1f} "
          f"dispatched/s  {events['handled/s']:.1f} handled/s")
    print(f"sustained ({args.clients} closed-loop buyers, {args.seconds:.0f} s): "
          f"{most['confirmed/s']:.1f} confirmed/s within the run (goal >= {GOAL_RATE:.0f}), "
          f"{most['all confirmed/s']:.1f}/s counting to the last confirmation, "
          f"{most['placed/s']:.1f} placed/s, placeOrder p50 {most['placeOrder p50']:.1f} ms "
          f"p99 {most['placeOrder p99']:.1f} ms, failures {most['failures']:.0f}")
    print(f"ratios: confirmed orders/s over raw RPC calls/s "
          f"{most['confirmed/s'] / raw['calls/s']:.3f}; over raw events handled/s "
          f"{most['confirmed/s'] / events['handled/s']:.3f} (an order is 1 HTTP request, "
          f"1 RPC, 3 events, 3 transactions)")
    # What nameko alone allows on this machine: an order's one RPC and three events at the
    # raw rates, with no HTTP, GraphQL, database or rule. The goal cannot beat this.
    ceiling = 1 / (1 / raw["calls/s"] + 3 / events["handled/s"])
    print(f"nameko's own ceiling for 1 RPC + 3 events per order at the raw rates: "
          f"{ceiling:.0f} orders/s (goal {GOAL_RATE:.0f})")
    for rate, figures, where in offered:
        goal = f" (goal < {GOAL_P99_MS:.0f})" if rate == rates[0] else ""
        print(f"placeOrder at {rate:.0f}/s offered: achieved {figures['achieved/s']:.1f}/s; "
              f"to CONFIRMED p50 {figures['to CONFIRMED p50']:.1f} ms, "
              f"p99 {figures['to CONFIRMED p99']:.1f} ms{goal}; placeOrder answered "
              f"p50 {figures['placeOrder p50']:.1f} ms, p99 {figures['placeOrder p99']:.1f} ms;"
              f" n={figures['n']:.0f}, failures {figures['failures']:.0f}")
        print("  where the time goes (ms):                      p50    p99")
        for name, (p50, p99) in where.items():
            print(f"    {name:44} {p50:6.1f} {p99:6.1f}")
    cpu = config["CPU_MS_PER_ORDER"]
    print("CPU per confirmed order in the sustained run (ms):")
    for name, ms in cpu.items():
        print(f"  {name:54} {ms:6.2f}")
    total = sum(cpu.values())
    cores = os.cpu_count() or 1
    print(f"  {'total':54} {total:6.2f}  -> at most {cores * 1000 / total:.0f} "
          f"orders/s on {cores} cores")


if __name__ == "__main__":
    main()
