"""Search at 100,000 lots, and how fast a suspension empties search of a producer's lots.

Seeds a throw-away PostgreSQL database (bulk COPY) with 100,000 lots across 2,000 producers,
one of which has 1,000 lots, then:

1. times 10 representative filtered searches through the listings service's own query code
   (`ListingFilter` parsing and `store.search`), each run 60 times after a warm-up, and prints
   p50/p95 per search and over all (goal: p95 < 20 ms);
2. runs the listings service on real RabbitMQ (a throw-away vhost), publishes
   `certification_suspended` for the producer with 1,000 lots, and times how long until the
   last of them has left search (goal: < 1 s); then the same for `certification_reinstated`
   bringing them back, three rounds.

Run (PostgreSQL on 127.0.0.1:5432 and RabbitMQ with its management API on :15672, as on the
development machines):

    .venv/bin/python bench/search.py [--lots 100000] [--producers 2000]

Figures on the 2-core development machine (PostgreSQL 15 with pg_trgm, RabbitMQ 3), one run:

    seeded 100,000 lots across 2,000 producers in 6.0 s
    search (ms)                                       p50     p95
    orderable, newest                                 0.6     1.1
    ecological gold, newest                           0.6     0.9
    Fairmined >= 950.0 in CO, by fineness             0.7     0.9
    grain from PE, by available weight                0.7     1.3
    mercury-free >= 1 kg, by available weight         0.6     0.8
    one producer, newest                              0.6     0.8
    text "esperanza", newest                          0.6     0.8
    text "aurifera rio", by fineness                  0.9     1.7
    CRAFT <= 900.0 in Antioquia                       1.0     1.3
    Fairmined by fineness, page 3 (cursor)            0.7     1.3
    all searches                                      0.7     1.2   (goal p95 < 20 ms: 16x under)
    suspension -> 1,000 lots gone from search: 0.15 s, 0.19 s, 0.30 s (goal < 1 s: 3.3x under)
    reinstatement -> 1,000 lots back in search: 0.22 s, 0.16 s, 0.26 s

Harder cases measured by hand the same way: a rare combination (nuggets >= 999.0 from MN)
p95 1.4 ms, a word found nowhere 3.5 ms, three rarer words sorted by fineness 10.0 ms.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import io  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from services.listings import store  # noqa: E402
from services.listings.domain import fold  # noqa: E402
from services.listings.service import ListingFilter  # noqa: E402
from shared.validation import parse  # noqa: E402
from shared.values import fine_weight_mg  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
RABBIT = "amqp://guest:guest@127.0.0.1:5672/"
RABBIT_API = "http://127.0.0.1:15672/api"

COUNTRIES = {"CO": ["Antioquia", "Chocó", "Nariño", "Bolívar"],
             "PE": ["Puno", "Madre de Dios", "Arequipa", "La Libertad"],
             "BO": ["La Paz", "Potosí", "Oruro"], "EC": ["Zamora Chinchipe", "El Oro"],
             "GH": ["Ashanti", "Western"], "MN": ["Töv", "Bayankhongor"]}
WORDS = ["Aurífera", "Río", "Verde", "Sol", "Andino", "Oro", "Limpio", "Sur", "Esperanza",
         "Santa", "Rosa", "Illimani", "Minera", "Nueva", "Estrella", "Cóndor", "Quebrada",
         "Alto", "Dorado", "Pacífico", "Montaña", "Luz", "Piedra", "Cerro", "Valle"]
STANDARDS = ["FAIRMINED", "FAIRMINED_ECOLOGICAL", "CRAFT"]
FORMS = ["DORE", "GRAIN", "NUGGET", "CAST_BAR"]
STATUSES = (["PUBLISHED"] * 85 + ["PARTIALLY_RESERVED"] * 7 + ["SOLD_OUT"] * 3
            + ["DRAFT"] * 3 + ["WITHDRAWN"] * 2)


def name(rng: random.Random, first: str, words: int) -> str:
    return " ".join([first, *rng.sample(WORDS, words)])


def create_database() -> tuple[str, str]:
    db = f"veta_bench_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{db}"')
    connection.close()
    return db, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"


def drop_database(db: str) -> None:
    connection = psycopg2.connect(ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    connection.close()


def copy(cursor: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")

    buffer = io.StringIO("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


def seed(dsn: str, lots: int, producers: int, big: int) -> dict[str, Any]:
    """Producers, their certificates and lots, with one producer holding `big` lots."""
    rng = random.Random(2026)
    today = date.today()
    producer_rows, held_rows = [], []
    for number in range(producers):
        producer_id = str(uuid.UUID(int=rng.getrandbits(128)))
        country = rng.choice(list(COUNTRIES))
        producer_rows.append((producer_id, name(rng, "Cooperativa", 3), country,
                              rng.choice(COUNTRIES[country]), 1))
        for standard in STANDARDS:
            held_rows.append((str(uuid.uuid4()), producer_id, standard,
                              today - timedelta(days=100), today + timedelta(days=265),
                              "CERTIFIED", "[]", 1))
        if number == 0:
            continue
    lot_rows = []
    start = datetime.now(UTC) - timedelta(days=365)
    owners = ([producer_rows[0]] * big
              + [producer_rows[1 + i % (producers - 1)] for i in range(lots - big)])
    for index, (producer_id, producer_name, country, _region, _v) in enumerate(owners):
        region = rng.choice(COUNTRIES[country])
        gross = rng.randrange(50_000, 5_000_001)
        fineness = rng.randrange(8000, 10_000)
        fine = fine_weight_mg(gross, fineness)
        status = "PUBLISHED" if index < big else rng.choice(STATUSES)
        available = {"PUBLISHED": fine, "SOLD_OUT": 0,
                     "PARTIALLY_RESERVED": rng.randrange(1, max(fine, 2))}.get(status, fine)
        standard = "FAIRMINED" if index < big else rng.choice(STANDARDS)
        site = name(rng, rng.choice(["Mina", "Socavón", "Veta"]), 2)
        site_text = fold(site)
        lot_rows.append((
            str(uuid.UUID(int=rng.getrandbits(128))), producer_id, standard,
            rng.choice(FORMS), gross, fineness, fine, available, site, region, country,
            standard == "FAIRMINED_ECOLOGICAL" or rng.random() < 0.5, f"LAB-{index}", status,
            (start + timedelta(seconds=index * 300 + rng.randrange(300))).isoformat(),
            rng.choice([-50, -30, 0, 10]), False, producer_name, site_text,
            f"{site_text} | {fold(producer_name)}"))
    # COPY refuses eventlet's cooperative wait callback: seed in plain blocking mode.
    callback = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    connection = psycopg2.connect(dsn.replace("+psycopg2", ""))
    with connection, connection.cursor() as cursor:
        copy(cursor, "producers", ["id", "name", "country", "region", "version"],
             producer_rows)
        copy(cursor, "held_certifications",
             ["certification_id", "producer_id", "standard", "valid_from", "valid_until",
              "status", "scope", "version"], held_rows)
        copy(cursor, "lots",
             ["id", "producer_id", "standard", "form", "gross_mg", "fineness_tenths",
              "fine_mg", "available_mg", "mine_site_name", "mine_site_region", "country",
              "mercury_free", "assay_reference", "status", "created_at",
              "price_basis_permille", "ever_reserved", "producer_name", "site_text",
              "search_text"], lot_rows)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()
    psycopg2.extensions.set_wait_callback(callback)
    big_producer = producer_rows[0]
    big_certificate = next(h for h in held_rows
                           if h[1] == big_producer[0] and h[2] == "FAIRMINED")
    return {"producer_id": big_producer[0], "certification_id": big_certificate[0],
            "valid_from": big_certificate[3], "valid_until": big_certificate[4],
            "sample_producer": producer_rows[7][0]}


def searches(seeded: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, int]]:
    """(label, filter as the RPC receives it, sort, pages to skip with the cursor)."""
    return [
        ("orderable, newest", {}, "NEWEST", 0),
        ("ecological gold, newest", {"standard": ["FAIRMINED_ECOLOGICAL"]}, "NEWEST", 0),
        ("Fairmined >= 950.0 in CO, by fineness",
         {"standard": ["FAIRMINED", "FAIRMINED_ECOLOGICAL"], "country": "CO",
          "min_fineness": "950.0"}, "FINENESS", 0),
        ("grain from PE, by available weight", {"country": "PE", "form": ["GRAIN"]},
         "AVAILABLE_WEIGHT", 0),
        ("mercury-free >= 1 kg, by available weight",
         {"mercury_free": True, "min_available_fine_weight": "1000.000"},
         "AVAILABLE_WEIGHT", 0),
        ("one producer, newest", {"producer_id": seeded["sample_producer"]}, "NEWEST", 0),
        ('text "esperanza", newest', {"text": "esperanza"}, "NEWEST", 0),
        ('text "aurifera rio", by fineness', {"text": "aurifera rio"}, "FINENESS", 0),
        ("CRAFT <= 900.0 in Antioquia",
         {"standard": ["CRAFT"], "region": "Antioquia", "max_fineness": "900.0"},
         "NEWEST", 0),
        ("Fairmined by fineness, page 3 (cursor)", {"standard": ["FAIRMINED"]},
         "FINENESS", 2),
    ]


def run_search(session: Session, criteria: dict[str, Any], sort: str, skip: int) -> float:
    """One search as `search_listings` runs it; returns milliseconds."""
    order = store.Sort(sort)
    after = None
    if skip:
        query = parse(ListingFilter, criteria).query()
        for _ in range(skip):
            page = store.search(session, query, sort=order, first=21, after=after)
            after = store.decode_cursor(order, store.encode_cursor(order, page[19]))
    started = time.perf_counter()
    query = parse(ListingFilter, criteria).query()
    rows = store.search(session, query, sort=order, first=21, after=after)
    [store.encode_cursor(order, row) for row in rows[:20]]
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_searches(url: str, seeded: dict[str, Any], repeats: int) -> None:
    engine = create_engine(url)
    everything: list[float] = []
    print(f"\n{'search (ms)':<46}{'p50':>7}{'p95':>8}")
    with Session(engine) as session:
        for label, criteria, sort, skip in searches(seeded):
            for _ in range(5):
                run_search(session, criteria, sort, skip)
            timings = [run_search(session, criteria, sort, skip) for _ in range(repeats)]
            everything += timings
            print(f"{label:<46}{statistics.median(timings):>7.1f}"
                  f"{percentile(timings, 0.95):>8.1f}")
    p95 = percentile(everything, 0.95)
    print(f"{'all searches':<46}{statistics.median(everything):>7.1f}{p95:>8.1f}"
          f"     (goal p95 < 20 ms: {'met' if p95 < 20 else 'MISSED'}, "
          f"{20 / p95:.1f}x under)")
    engine.dispose()


def bench_cascade(url: str, seeded: dict[str, Any], rounds: int) -> None:
    from nameko.runners import ServiceRunner
    from nameko.standalone.events import event_dispatcher

    from services.certification.events import CertificationReinstated, CertificationSuspended
    from services.listings.service import ListingsService

    vhost = f"veta-bench-{uuid.uuid4().hex[:8]}"
    auth = ("guest", "guest")
    requests.put(f"{RABBIT_API}/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{RABBIT_API}/permissions/{vhost}/guest", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    config = {"AMQP_URI": f"{RABBIT}{vhost}", "DATABASES": {"listings": url},
              "serializer": "json", "max_workers": 10}
    runner = ServiceRunner(config)
    runner.add_service(ListingsService)
    runner.start()
    engine = create_engine(url)
    dispatch = event_dispatcher(config)
    query = parse(ListingFilter, {"producer_id": seeded["producer_id"]}).query()

    def visible() -> int:
        with Session(engine) as session:
            return len(store.search(session, query, first=1))

    def timed(event: Any, until_visible: bool) -> float:
        started = time.perf_counter()
        dispatch(event.source, event.type, event.envelope())
        deadline = started + 30
        while (visible() > 0) != until_visible:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{event.type} had no effect within 30 s")
            eventlet.sleep(0.002)
        return time.perf_counter() - started

    try:
        eventlet.sleep(1)  # queues declared and consumers attached
        facts = {"certification_id": seeded["certification_id"],
                 "producer_id": seeded["producer_id"], "standard": "FAIRMINED",
                 "valid_from": seeded["valid_from"], "valid_until": seeded["valid_until"]}
        gone, back = [], []
        version = 1
        for _ in range(rounds):
            version += 1
            gone.append(timed(CertificationSuspended(version=version, reason="bench",
                                                     **facts), until_visible=False))
            version += 1
            back.append(timed(CertificationReinstated(version=version, **facts),
                              until_visible=True))
        print(f"\nsuspension -> 1,000 lots gone from search: "
              f"{', '.join(f'{s:.2f} s' for s in gone)} "
              f"(goal < 1 s: {'met' if max(gone) < 1 else 'MISSED'}, "
              f"{1 / max(gone):.1f}x under)")
        print(f"reinstatement -> 1,000 lots back in search: "
              f"{', '.join(f'{s:.2f} s' for s in back)}")
    finally:
        runner.stop()
        engine.dispose()
        requests.delete(f"{RABBIT_API}/vhosts/{vhost}", auth=auth, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=100_000)
    parser.add_argument("--producers", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from shared.migrations import upgrade

    db, url = create_database()
    try:
        upgrade("listings", url)
        started = time.perf_counter()
        seeded = seed(url, args.lots, args.producers, big=1_000)
        print(f"seeded {args.lots:,} lots across {args.producers:,} producers in "
              f"{time.perf_counter() - started:.1f} s (database {db}, dropped at the end)")
        bench_searches(url, seeded, args.repeats)
        bench_cascade(url, seeded, args.rounds)
    finally:
        drop_database(db)


if __name__ == "__main__":
    main()
