"""Reconciliation runs: stream Veta's ledger and Stripe's records through the matcher, store
every line, and export a run as CSV or the premiums it covers as a chart.

Used by the service's RPC and by `veta reconcile`; the matching itself is in
`reconciliation` (pure), the storage in `store`.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import insert

from services.payouts import reconciliation as core
from services.payouts import store
from services.payouts.chart import premiums_chart
from services.payouts.domain import Period, parse_period
from services.payouts.stripe_api import StripeApi
from shared.errors import Conflict, NotFound
from shared.persistence import ServiceDatabase

log = logging.getLogger(__name__)
API, REPORT = "API", "REPORT"
BATCH = 5000


def _utc(day: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month(at: datetime) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m")


def month_of_timestamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m")


def veta_side(db: ServiceDatabase, period: Period) -> Iterator[core.Entry]:
    with db.reading() as session:
        for kind, obligation, stripe_id, amount, currency, producer, standard, booked in \
                store.ledger(session, _utc(period.start), _utc(period.end)):
            yield core.entry(kind, obligation, stripe_id, amount, currency, producer, standard,
                             _month(booked))


def api_side(api: StripeApi, period: Period) -> Iterator[core.Record]:
    return core.records_from_balance_transactions(
        api.balance_transactions(_utc(period.start), _utc(period.end)), month_of_timestamp)


def report_side(stream: IO[str], period: Period) -> Iterator[tuple[Any, ...]]:
    """A balance-change report may span more than the period: keep the period's rows."""
    months = set(period.months())
    return (r for r in core.read_balance_change_csv(stream) if r[7] in months)


def start(db: ServiceDatabase, period: Period, source: str, actor: str,
          now: datetime) -> str:
    run_id = str(uuid.uuid4())
    with db.unit_of_work() as uow:
        uow.session.add(store.RunRow(id=run_id, period=period.label, source=source,
                                     status="RUNNING", started_by=actor, started_at=now))
    return run_id


def execute(db: ServiceDatabase, run_id: str, period: Period,
            stripe_records: Iterable[tuple[Any, ...]], now: Callable[[], datetime]) -> None:
    """Match and store every line in batches; the run ends DONE with its totals, or FAILED
    with the reason (its partial lines are removed, so a run is whole or empty)."""
    with db.reading() as session:
        accounts = store.producer_of_account(session)
    totals = core.Totals()
    table = store.LineRow.__table__
    columns = store.LineRow.FIELDS
    try:
        lines = core.match(veta_side(db, period), stripe_records, accounts, totals)
        batch: list[dict[str, Any]] = []
        for seq, line in enumerate(lines, start=1):
            batch.append({"run_id": run_id, "seq": seq, **dict(zip(columns, line,
                                                                    strict=True))})
            if len(batch) == BATCH:
                _insert(db, table, batch)
                batch = []
        _insert(db, table, batch)
    except Exception as error:
        log.exception("reconciliation run %s failed", run_id)
        with db.unit_of_work() as uow:
            uow.session.query(store.LineRow).filter_by(run_id=run_id).delete()
            run = uow.session.get(store.RunRow, run_id)
            assert run is not None
            run.status, run.finished_at, run.error = "FAILED", now(), str(error)[:2000]
        return
    with db.unit_of_work() as uow:
        run = uow.session.get(store.RunRow, run_id)
        assert run is not None
        run.status, run.finished_at, run.summary = "DONE", now(), totals.summary()


def _insert(db: ServiceDatabase, table: Any, batch: list[dict[str, Any]]) -> None:
    if batch:
        with db.unit_of_work() as uow:
            uow.session.execute(insert(table), batch)


def resolve(db: ServiceDatabase, run_id: str, seq: int, note: str, actor: str,
            at: datetime) -> store.LineRow:
    """Finance explains a discrepancy; every note is kept, the latest shows on the line."""
    with db.unit_of_work() as uow:
        line = uow.session.get(store.LineRow, (run_id, seq), with_for_update=True)
        if line is None:
            raise NotFound("no such reconciliation line", field="line_id")
        if line.status == core.MATCHED:
            raise Conflict("a matched line has no discrepancy to resolve", field="line_id")
        line.resolved_by, line.resolved_at, line.resolution = actor, at, note
        uow.session.add(store.ResolutionRow(run_id=run_id, seq=seq, note=note, actor=actor,
                                            at=at))
        uow.session.flush()
        return line


def export_csv(db: ServiceDatabase, run_id: str, stream: IO[str]) -> int:
    """Every line of a run, with producer names and how each discrepancy was resolved."""
    with db.reading() as session:
        if session.get(store.RunRow, run_id) is None:
            raise NotFound("no such reconciliation", field="id")
        names = store.producer_names(session)
        rows = ((*(getattr(row, name) for name in store.LineRow.FIELDS),
                 f"{row.run_id}:{row.seq}", names.get(row.producer_id, ""),
                 row.resolution or "", row.resolved_by or "",
                 row.resolved_at.isoformat() if row.resolved_at else "")
                for row in store.all_lines(session, run_id))
        return core.write_lines(
            ((*row[:12], row[12:]) for row in rows), stream,
            extra_columns=("line_id", "producer_name", "resolution", "resolved_by",
                           "resolved_at"),
            extra=lambda line: line[12])


def export_text(db: ServiceDatabase, run_id: str) -> str:
    out = io.StringIO()
    export_csv(db, run_id, out)
    return out.getvalue()


def paid_per_producer_and_month(db: ServiceDatabase, period: Period
                                ) -> dict[str, dict[str, int]]:
    """Premiums that reached cooperatives (transfers less reversals) by producer name."""
    paid: dict[str, dict[str, int]] = {}
    with db.reading() as session:
        names = store.producer_names(session)
        for kind, _o, _s, amount, _c, producer, _std, booked in store.ledger(
                session, _utc(period.start), _utc(period.end)):
            if kind == core.PAYMENT:
                continue
            name = names.get(producer, producer[:8])
            months = paid.setdefault(name, {})
            sign = -1 if kind == core.REVERSAL else 1
            months[_month(booked)] = months.get(_month(booked), 0) + sign * amount
    return paid


def chart(db: ServiceDatabase, period: Period) -> str:
    return premiums_chart(paid_per_producer_and_month(db, period), period.months(),
                          f"Premiums paid per producer and month, {period.label} (USD)")


def command_line(config: dict[str, Any], period_text: str, *, csv_path: str | None,
                 chart_path: str | None, report_path: str | None, run_id: str | None,
                 actor: str, now: Callable[[], datetime]) -> dict[str, Any]:
    """`veta reconcile`: run a period against Stripe (its API, or a downloaded balance-change
    report) or take a stored run, and write its CSV and chart. Returns the run's summary."""
    from sqlalchemy.orm import sessionmaker

    from services.payouts.config import PayoutSettings
    from shared.persistence import make_engine

    url = (config.get("DATABASES") or {}).get("payouts")
    if not url:
        raise Conflict("set VETA_PAYOUTS_DATABASE_URL", field="")
    period = parse_period(period_text)
    engine = make_engine(url)
    db = ServiceDatabase(sessionmaker(engine, expire_on_commit=False), store.messaging)
    try:
        if run_id is None:
            if report_path:
                run_id = start(db, period, REPORT, actor, now())
                with open(report_path, newline="") as report:
                    execute(db, run_id, period, report_side(report, period), now)
            else:
                api = StripeApi(PayoutSettings.from_config(config))
                run_id = start(db, period, API, actor, now())
                execute(db, run_id, period, api_side(api, period), now)
        with db.reading() as session:
            run = session.get(store.RunRow, run_id)
            if run is None:
                raise NotFound("no such reconciliation", field="run")
            summary = {"id": run.id, "period": run.period, "source": run.source,
                       "status": run.status, "error": run.error,
                       "counts": (run.summary or {}).get("counts", {})}
        if csv_path:
            with open(csv_path, "w", newline="") as out:
                export_csv(db, run_id, out)
        if chart_path:
            with open(chart_path, "w") as out:
                out.write(chart(db, parse_period(summary["period"])))
        return summary
    finally:
        engine.dispose()
