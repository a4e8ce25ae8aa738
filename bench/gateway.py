"""Gateway read and mutation throughput over HTTP, side by side with raw nameko RPC.

Run: `python bench/gateway.py [--seconds 10] [--clients 8] [--lots 60]` with RabbitMQ and
PostgreSQL on their default local ports. The services and the gateway run in a child
process (one nameko ServiceRunner, as `veta dev` would with real servers); this process is
only the client. The read is a page of 50 lots with each lot's producer and certificates;
the raw equivalent is the two RPC calls the gateway makes for it. Prints requests/s,
p50/p99 and the gateway/raw ratio (goal: the read at >= 50% of the raw RPC rate).
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throwaway import SECRET, backends  # noqa: E402
from gateway.auth import TokenSettings, issue_token  # noqa: E402
from shared.caller import CALLER_CONTEXT_KEY, Caller, Role  # noqa: E402

READ = """{ listings(first: 50) { edges { node { id fineWeight { grams } certificationStatus
  producer { name certifications { standard status validUntil } } } } } }"""
REGISTER = """mutation ($input: RegisterProducerInput!) {
  registerProducer(input: $input) { producer { id } errors { code } } }"""
RUNNER = """
import eventlet; eventlet.monkey_patch()
import json, sys
from nameko.runners import ServiceRunner
from veta.services import SERVICE_CLASSES
runner = ServiceRunner(json.loads(sys.argv[1]))
for cls in SERVICE_CLASSES.values():
    runner.add_service(cls)
runner.start()
print("started", flush=True)
runner.wait()
"""


@contextmanager
def throwaway_system(port: int) -> Iterator[dict[str, Any]]:
    with backends(port, workers=20) as config:
        child = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(config)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "started"
            yield config
        finally:
            child.terminate()
            child.wait(timeout=30)


def seed(config: dict[str, Any], lots: int) -> None:
    caller = Caller(subject="bench", role=Role.ADMIN).context()
    today = date.today()
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: caller}) as rpc:
        producers = []
        for n in range(10):
            producer = rpc.certification.register_producer(
                {"name": f"Cooperativa {n}", "country": "CO", "region": "Antioquia"})
            rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": "FAIRMINED",
                "certificate_number": f"B-{n}-{producer['id'][:6]}",
                "valid_from": (today - timedelta(days=10)).isoformat(),
                "valid_until": (today + timedelta(days=300)).isoformat()})
            producers.append(producer["id"])
        published = 0
        while published < lots:
            producer = producers[published % len(producers)]
            try:
                rpc.listings.publish_listing({
                    "producer_id": producer, "standard": "FAIRMINED", "form": "DORE",
                    "gross_weight": f"{500 + published}.000", "fineness": "910.0",
                    "mine_site": {"name": "Mina", "region": "Antioquia", "country": "CO"},
                    "mercury_free": True, "assay_reference": f"A-{published}"})
                published += 1
            except Exception:
                eventlet.sleep(0.05)  # listings has not heard of the certificate yet


def measure(work: Callable[[], None], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            work()
            latencies.append(time.perf_counter() - started)

    pool = eventlet.GreenPool(clients)
    for _ in range(clients):
        pool.spawn_n(client)
    pool.waitall()
    ordered = sorted(latencies)
    return {"rate": len(ordered) / seconds, "p50": statistics.median(ordered) * 1000,
            "p99": ordered[int(len(ordered) * 0.99) - 1] * 1000, "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--lots", type=int, default=60)
    parser.add_argument("--port", type=int, default=18123)
    args = parser.parse_args()

    with throwaway_system(args.port) as config:
        seed(config, args.lots)
        url = f"http://127.0.0.1:{args.port}/graphql"
        settings = TokenSettings(secret=SECRET)
        buyer = issue_token(settings, Role.BUYER, "bench-buyer")
        certifier = issue_token(settings, Role.CERTIFIER)
        caller = Caller(subject="bench", role=Role.CERTIFIER).context()
        standalone: dict[int, ClusterRpcProxy] = {}
        proxies: dict[int, Any] = {}

        def rpc() -> Any:
            # One proxy per green thread: a shared one raises "Second simultaneous read".
            me = id(eventlet.getcurrent())
            if me not in proxies:
                standalone[me] = ClusterRpcProxy(config,
                                                 context_data={CALLER_CONTEXT_KEY: caller})
                proxies[me] = standalone[me].start()
            return proxies[me]

        sessions: dict[int, requests.Session] = {}

        def post(query: str, variables: dict[str, Any], token: str) -> None:
            session = sessions.setdefault(id(eventlet.getcurrent()), requests.Session())
            response = session.post(url, json={"query": query, "variables": variables},
                                    headers={"Authorization": f"Bearer {token}"}, timeout=30)
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, body

        def raw_read() -> None:
            page = rpc().listings.search_listings({}, 50, None)
            ids = sorted({item["node"]["producer_id"] for item in page["items"]})
            rpc().certification.get_producers(ids)

        def raw_write() -> None:
            rpc().certification.register_producer(
                {"name": "Cooperativa Bench", "country": "PE", "region": "Puno"})

        results = {
            "raw RPC read (search + producers)": measure(raw_read, args.clients, args.seconds),
            "gateway read (page of 50 lots)": measure(
                lambda: post(READ, {}, buyer), args.clients, args.seconds),
            "raw RPC mutation (register_producer)": measure(raw_write, args.clients,
                                                            args.seconds),
            "gateway mutation (registerProducer)": measure(
                lambda: post(REGISTER, {"input": {"name": "Cooperativa Bench",
                                                  "country": "PE", "region": "Puno"}},
                             certifier), args.clients, args.seconds),
        }
        for proxy in standalone.values():
            proxy.stop()

    print(f"{'':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'n':>7}")
    for name, figures in results.items():
        print(f"{name:40} {figures['rate']:8.1f} {figures['p50']:8.1f} "
              f"{figures['p99']:8.1f} {figures['n']:7.0f}")
    read = results["gateway read (page of 50 lots)"]["rate"] / \
        results["raw RPC read (search + producers)"]["rate"]
    write = results["gateway mutation (registerProducer)"]["rate"] / \
        results["raw RPC mutation (register_producer)"]["rate"]
    print(f"gateway/raw read ratio: {read:.2f} (goal >= 0.50); mutation ratio: {write:.2f}")


if __name__ == "__main__":
    main()
