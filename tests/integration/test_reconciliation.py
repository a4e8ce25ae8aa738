"""Reconciliation over the real payouts database and the local Stripe server: every line
kind, the API and the balance-change report agreeing, resolutions kept, the CLI's export.

The databases are shared by the whole test run, so assertions look at this test's own
obligations; the two sources are compared on every line.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from services.payouts import runs, store
from services.payouts.domain import parse_period
from shared.caller import Role
from shared.errors import Conflict, Forbidden
from shared.persistence import ServiceDatabase, make_engine
from tests.integration import test_payouts as harness
from tests.integration.test_payouts import Flow, rpc_by
from veta import cli

# The payouts harness's fixtures, used here under the same names.
stripe_server = harness.stripe_server
payouts_config = harness.payouts_config
flow = harness.flow


def tamper(flow: Flow, sql: str, **params: Any) -> None:
    engine = create_engine(flow.config["DATABASES"]["payouts"])
    with engine.begin() as connection:
        connection.execute(text(sql), params)
    engine.dispose()


def build_month(flow: Flow) -> dict[str, str]:
    """Premiums paid this month, with one of every discrepancy planted."""
    producer = flow.producer()
    ids = {name: flow.paid("100.000", producer_id=producer)["id"]
           for name in ("matched", "reversed", "amount", "currency", "duplicate")}
    with rpc_by(flow.config, "finance-ana") as rpc:
        rpc.payouts.reverse_payout({"payout_id": ids["reversed"], "amount": "100.00",
                                    "reason": "assay corrected"})
    # Veta's books disagree with Stripe's on an amount and on a currency.
    tamper(flow, "UPDATE obligations SET amount_cents = amount_cents + 1 WHERE id = :id",
           id=ids["amount"])
    tamper(flow, "UPDATE obligations SET currency = 'EUR' WHERE id = :id", id=ids["currency"])
    # A second transfer for one obligation, and one Veta never asked for.
    account = flow.account(producer)["stripe_account_id"]
    for obligation_id in (ids["duplicate"], str(uuid.uuid4())):
        flow.client.v1.transfers.create({
            "amount": 40000, "currency": "usd", "destination": account,
            "metadata": {"obligation_id": obligation_id}})
    ids["stray"] = obligation_id
    # A transfer Veta recorded that Stripe never made.
    ids["missing"] = str(uuid.uuid4())
    tamper(flow, """INSERT INTO obligations (id, order_id, producer_id, buyer_id, standard,
               fine_mg, usd_per_kg, amount_cents, currency, delivered_on, status, created_at,
               funding_attempts, approvals, attempt, retryable, failures, reversed_cents,
               transfer_id, transferred_at)
               VALUES (:id, :order, :producer, 'refinery-x', 'FAIRMINED', 100000, '4000',
               40000, 'USD', CURRENT_DATE, 'PAID', now(), 0, '[]', 1, false, 0, 0,
               :transfer, now())""",
           id=ids["missing"], order=str(uuid.uuid4()), producer=producer,
           transfer="tr_never_made_" + uuid.uuid4().hex[:8])
    return ids


def line_key(line: dict[str, Any] | tuple[Any, ...]) -> tuple[Any, ...]:
    values = tuple(line.get(name) for name in store.LineRow.FIELDS) \
        if isinstance(line, dict) else tuple(line)
    return values


def all_lines(flow: Flow, run_id: str) -> list[dict[str, Any]]:
    found, after = [], None
    with rpc_by(flow.config, "finance-ana") as rpc:
        while True:
            page = rpc.payouts.reconciliation_lines(run_id, first=100, after=after)
            found += [item["node"] for item in page["items"]]
            if not page["has_next_page"]:
                return found
            after = page["items"][-1]["cursor"]


def test_every_line_kind_and_the_api_and_report_sources_agree(flow: Flow) -> None:
    ids = build_month(flow)
    period = datetime.now(UTC).strftime("%Y-%m")
    with rpc_by(flow.config, "finance-ana") as rpc:
        run = rpc.payouts.run_reconciliation({"period": period})
    assert run["status"] == "DONE", run["error"]
    lines = all_lines(flow, run["id"])
    mine = Counter((line["status"], line["kind"]) for line in lines
                   if line["obligation_id"] in ids.values())
    assert mine == Counter({
        ("MATCHED", "PAYMENT"): 3, ("MATCHED", "TRANSFER"): 3, ("MATCHED", "REVERSAL"): 1,
        ("AMOUNT_MISMATCH", "PAYMENT"): 1, ("AMOUNT_MISMATCH", "TRANSFER"): 1,
        ("CURRENCY_MISMATCH", "PAYMENT"): 1, ("CURRENCY_MISMATCH", "TRANSFER"): 1,
        ("DUPLICATE", "TRANSFER"): 1, ("MISSING_IN_VETA", "TRANSFER"): 1,
        ("MISSING_IN_STRIPE", "TRANSFER"): 1})
    [duplicate] = [line for line in lines if line["status"] == "DUPLICATE"
                   and line["obligation_id"] == ids["duplicate"]]
    assert duplicate["veta_stripe_id"] != duplicate["stripe_id"]
    assert run["counts"]["MATCHED"] >= 7

    # The same period from Stripe's balance-change report gives the same lines.
    engine = make_engine(flow.config["DATABASES"]["payouts"])
    db = ServiceDatabase(sessionmaker(engine, expire_on_commit=False), store.messaging)
    report = flow.server.balance_change_csv(payment_metadata_keys=("obligation_id",))
    parsed = parse_period(period)
    from_report = runs.start(db, parsed, runs.REPORT, "test", datetime.now(UTC))
    runs.execute(db, from_report, parsed, runs.report_side(io.StringIO(report), parsed),
                 lambda: datetime.now(UTC))
    engine.dispose()
    assert Counter(map(line_key, all_lines(flow, from_report))) == Counter(
        map(line_key, lines))


def test_discrepancies_are_resolved_with_notes_and_the_history_is_kept(flow: Flow) -> None:
    ids = build_month(flow)
    period = datetime.now(UTC).strftime("%Y-%m")
    with rpc_by(flow.config, "finance-ana") as rpc:
        run = rpc.payouts.run_reconciliation({"period": period})
        lines = all_lines(flow, run["id"])
        [stray] = [line for line in lines if line["obligation_id"] == ids["stray"]]
        [matched] = [line for line in lines if line["obligation_id"] == ids["matched"]
                     and line["kind"] == "TRANSFER"]
        rpc.payouts.resolve_discrepancy({"line_id": stray["id"],
                                         "note": "manual transfer, see ticket 12"})
        resolved = rpc.payouts.resolve_discrepancy({"line_id": stray["id"],
                                                    "note": "refunded by the coop"})
        with pytest.raises(Conflict):
            rpc.payouts.resolve_discrepancy({"line_id": matched["id"], "note": "x"})
        open_ones = rpc.payouts.reconciliation_lines(run["id"], first=100,
                                                     unresolved_only=True)
    assert (resolved["resolution"], resolved["resolved_by"]) == ("refunded by the coop",
                                                                 "finance-ana")
    assert [n["note"] for n in resolved["notes"]] == ["manual transfer, see ticket 12",
                                                      "refunded by the coop"]
    assert stray["id"] not in [item["node"]["id"] for item in open_ones["items"]]
    with rpc_by(flow.config, "admin-1", Role.ADMIN) as rpc, pytest.raises(Forbidden):
        rpc.payouts.resolve_discrepancy({"line_id": stray["id"], "note": "admin"})
    # A run again is a new run; the old one and its notes are kept.
    with rpc_by(flow.config, "finance-ben") as rpc:
        again = rpc.payouts.run_reconciliation({"period": period})
        listed = rpc.payouts.list_reconciliations(period=period, first=100)
    assert again["id"] != run["id"]
    assert {run["id"], again["id"]} <= {item["node"]["id"] for item in listed["items"]}


def test_veta_reconcile_exports_a_run_as_csv_and_a_chart(
        flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ids = build_month(flow)
    period = datetime.now(UTC).strftime("%Y-%m")
    monkeypatch.setenv("VETA_PAYOUTS_DATABASE_URL", flow.config["DATABASES"]["payouts"])
    monkeypatch.setenv("VETA_STRIPE_API_KEY", flow.server.api_key)
    monkeypatch.setenv("VETA_STRIPE_API_BASE", flow.server.url)
    exported, chart = tmp_path / "october.csv", tmp_path / "october.svg"
    cli.main(["reconcile", "--period", period, "--csv", str(exported),
              "--chart", str(chart)])
    assert f"wrote {exported}" in capsys.readouterr().out
    rows = list(csv.DictReader(exported.open()))
    mine = Counter(row["status"] for row in rows if row["obligation_id"] in ids.values())
    assert mine["DUPLICATE"] == mine["MISSING_IN_VETA"] == mine["MISSING_IN_STRIPE"] == 1
    [stray] = [row for row in rows if row["obligation_id"] == ids["stray"]]
    assert (stray["stripe_amount"], stray["veta_amount"], stray["kind"]) == (
        "400.00", "", "TRANSFER")
    assert {"line_id", "producer_name", "resolution"} <= set(rows[0])
    svg = chart.read_text()
    assert svg.startswith("<svg") and period in svg and "Cooperativa" in svg

    # The same from a downloaded report, then a stored run exported again by its id.
    report = tmp_path / "balance_change.csv"
    report.write_text(flow.server.balance_change_csv(payment_metadata_keys=("obligation_id",)))
    again = tmp_path / "from-report.csv"
    cli.main(["reconcile", "--period", period, "--report", str(report), "--csv", str(again)])
    run_id = capsys.readouterr().out.split()[1]
    from_report = list(csv.DictReader(again.open()))
    assert sorted(r["status"] for r in from_report) == sorted(r["status"] for r in rows)
    copy = tmp_path / "copy.csv"
    cli.main(["reconcile", "--period", period, "--run", run_id, "--csv", str(copy)])
    assert copy.read_text() == again.read_text()
