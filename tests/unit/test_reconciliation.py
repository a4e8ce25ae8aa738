"""Reconciliation's core (services/payouts/reconciliation.py): every line kind, the totals,
the two CSV readers and the SVG chart, on small hand-made data."""

from __future__ import annotations

import io
from typing import Any

import pytest

from services.payouts import reconciliation as core
from services.payouts.chart import premiums_chart

CHARGE_HEADER = ("balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,"
                 "reporting_category,source_id,description,customer_facing_amount,"
                 "customer_facing_currency,automatic_payout_id,connected_account,"
                 "transfer_metadata[obligation_id],payment_metadata[obligation_id]\n")


def transfer_entry(obligation: str, amount: int = 1000, stripe_id: str = "",
                   currency: str = "usd", producer: str = "p-1") -> core.Entry:
    return core.entry(core.TRANSFER, obligation, stripe_id, amount, currency, producer,
                      "FAIRMINED", "2026-10")


def transfer_record(obligation: str, stripe_id: str, amount: int = 1000,
                    currency: str = "usd") -> core.Record:
    return core.record(core.TRANSFER, obligation, stripe_id, amount, currency, "acct_1",
                       "2026-10")


def lines(entries: list[core.Entry], records: list[core.Record],
          totals: core.Totals | None = None) -> list[tuple[Any, ...]]:
    return list(core.match(entries, records, {"acct_1": "p-1"}, totals))


def statuses(found: list[tuple[Any, ...]]) -> list[tuple[str, str, str]]:
    return sorted((line[0], line[2], line[7]) for line in found)


def test_every_line_kind_from_one_small_ledger() -> None:
    entries = [
        transfer_entry("ob-match", stripe_id="tr_a"),
        transfer_entry("ob-missing", stripe_id="tr_gone"),
        transfer_entry("ob-amount", stripe_id="tr_c", amount=1000),
        transfer_entry("ob-currency", stripe_id="tr_d"),
        transfer_entry("ob-double", stripe_id="tr_e"),
        core.entry(core.REVERSAL, "ob-match", "trr_1", 250, "usd", "p-1", "FAIRMINED",
                   "2026-10"),
        core.entry(core.PAYMENT, "ob-match", "ch_1", 1000, "usd", "p-1", "FAIRMINED",
                   "2026-10"),
    ]
    records = [
        transfer_record("ob-match", "tr_a"),
        transfer_record("ob-amount", "tr_c", amount=1001),
        transfer_record("ob-currency", "tr_d", currency="eur"),
        transfer_record("ob-double", "tr_e"),
        transfer_record("ob-double", "tr_e2"),
        transfer_record("ob-unknown", "tr_stray"),
        core.record(core.REVERSAL, "ob-match", "trr_1", 250, "usd", "acct_1", "2026-10"),
        core.record(core.PAYMENT, "ob-match", "ch_1", 1000, "usd", "", "2026-10"),
    ]
    assert statuses(lines(entries, records)) == sorted([
        ("MATCHED", "ob-match", "tr_a"), ("MATCHED", "ob-match", "trr_1"),
        ("MATCHED", "ob-match", "ch_1"), ("MISSING_IN_STRIPE", "ob-missing", ""),
        ("AMOUNT_MISMATCH", "ob-amount", "tr_c"), ("CURRENCY_MISMATCH", "ob-currency", "tr_d"),
        ("MATCHED", "ob-double", "tr_e"), ("DUPLICATE", "ob-double", "tr_e2"),
        ("MISSING_IN_VETA", "ob-unknown", "tr_stray")])


@pytest.mark.parametrize("order", [["tr_e", "tr_e2"], ["tr_e2", "tr_e"]])
def test_the_transfer_veta_recorded_matches_whichever_comes_first(order: list[str]) -> None:
    found = lines([transfer_entry("ob-1", stripe_id="tr_e")],
                  [transfer_record("ob-1", stripe_id) for stripe_id in order])
    assert statuses(found) == [("DUPLICATE", "ob-1", "tr_e2"), ("MATCHED", "ob-1", "tr_e")]


def test_without_a_recorded_id_the_first_transfer_matches_and_the_next_is_a_duplicate() -> None:
    found = lines([transfer_entry("ob-1")], [transfer_record("ob-1", "tr_x"),
                                             transfer_record("ob-1", "tr_y")])
    assert statuses(found) == [("DUPLICATE", "ob-1", "tr_y"), ("MATCHED", "ob-1", "tr_x")]


def test_two_stray_transfers_for_one_unknown_obligation() -> None:
    found = lines([], [transfer_record("ob-9", "tr_x"), transfer_record("ob-9", "tr_y")])
    assert statuses(found) == [("DUPLICATE", "ob-9", "tr_y"),
                               ("MISSING_IN_VETA", "ob-9", "tr_x")]
    assert {line[3] for line in found} == {"p-1"}  # the producer, from its account


def test_a_duplicate_in_vetas_own_ledger_is_reported() -> None:
    found = lines([transfer_entry("ob-1", stripe_id="tr_a"),
                   transfer_entry("ob-1", stripe_id="tr_a")], [transfer_record("ob-1", "tr_a")])
    assert [line[0] for line in found] == ["DUPLICATE", "MATCHED"]


def test_transfers_without_metadata_are_each_missing_in_veta() -> None:
    found = lines([], [transfer_record("", "tr_x"), transfer_record("", "tr_y")])
    assert [line[0] for line in found] == ["MISSING_IN_VETA", "MISSING_IN_VETA"]


def test_totals_by_producer_standard_and_month() -> None:
    totals = core.Totals()
    lines([transfer_entry("ob-1", 1000, "tr_a"), transfer_entry("ob-2", 500, "tr_b",
                                                                 producer="p-2"),
           core.entry(core.REVERSAL, "ob-1", "trr_1", 300, "usd", "p-1", "FAIRMINED",
                      "2026-10")],
          [transfer_record("ob-1", "tr_a"),
           core.record(core.REVERSAL, "ob-1", "trr_1", 300, "usd", "acct_1", "2026-10")],
          totals)
    summary = totals.summary()
    assert summary["counts"]["MATCHED"] == 2 and summary["counts"]["MISSING_IN_STRIPE"] == 1
    by_producer = {row["producer"]: row for row in summary["by_producer"]}
    assert (by_producer["p-1"]["veta_paid"], by_producer["p-1"]["stripe_paid"]) == (700, 700)
    assert (by_producer["p-2"]["veta_paid"], by_producer["p-2"]["stripe_paid"],
            by_producer["p-2"]["discrepancies"]) == (500, 0, 1)
    [standard] = summary["by_standard"]
    assert (standard["standard"], standard["veta_paid"], standard["lines"]) == (
        "FAIRMINED", 1200, 3)
    assert [row["month"] for row in summary["by_month"]] == ["2026-10"]


def test_amounts_read_exactly_from_major_units() -> None:
    assert [core.minor_units(t) for t in ("12.34", "-12.34", "0.05", "1500", "7.5")] == [
        1234, -1234, 5, 1500, 750]
    assert [core.major_units(c) for c in (1234, -5, 0, None)] == ["12.34", "-0.05", "0.00", ""]


def test_the_balance_change_report_is_read_with_quoted_fields_and_other_categories() -> None:
    report = CHARGE_HEADER + (
        'txn_1,2026-10-02 10:00:00,2026-10-02 10:00:00,usd,100.00,3.20,96.80,charge,ch_1,'
        '"Premium, order 7",100.00,usd,,,,ob-1\n'
        "txn_2,2026-10-03 10:00:00,2026-10-03 10:00:00,usd,-100.00,0.00,-100.00,transfer,"
        "tr_1,,,,,acct_1,ob-1,\n"
        "txn_3,2026-10-04 10:00:00,2026-10-04 10:00:00,usd,25.00,0.00,25.00,"
        "transfer_reversal,trr_1,,,,,acct_1,ob-1,\n"
        "txn_4,2026-10-05 10:00:00,2026-10-05 10:00:00,usd,-50.00,0.00,-50.00,payout,po_1,"
        ",,,,,,\n")
    records = list(core.read_balance_change_csv(io.StringIO(report)))
    assert [(r[1], r[2], r[3], r[4], r[7]) for r in records] == [
        ("PAYMENT", "ob-1", "ch_1", 10000, "2026-10"),
        ("TRANSFER", "ob-1", "tr_1", 10000, "2026-10"),
        ("REVERSAL", "ob-1", "trr_1", 2500, "2026-10")]


def test_the_ledger_csv_reads_back_what_veta_writes() -> None:
    text = (",".join(core.LEDGER_COLUMNS) + "\n"
            "TRANSFER,ob-1,tr_1,100.00,USD,p-1,FAIRMINED,2026-10-03T10:00:00+00:00\n"
            "REVERSAL,ob-1,trr_1,25.00,usd,p-1,FAIRMINED,2026-10-04T10:00:00+00:00\n")
    entries = list(core.read_ledger_csv(io.StringIO(text)))
    assert entries == [
        tuple(transfer_entry("ob-1", 10000, "tr_1")),
        tuple(core.entry(core.REVERSAL, "ob-1", "trr_1", 2500, "usd", "p-1", "FAIRMINED",
                         "2026-10"))]


def test_api_balance_transactions_become_the_same_records_as_the_report() -> None:
    transfer = {"id": "tr_1", "destination": "acct_1", "metadata": {"obligation_id": "ob-1"}}
    transactions = [
        {"reporting_category": "charge", "amount": 10000, "currency": "usd", "created": 0,
         "source": {"id": "ch_1", "metadata": {"obligation_id": "ob-1"}}},
        {"reporting_category": "transfer", "amount": -10000, "currency": "usd", "created": 0,
         "source": transfer},
        {"reporting_category": "transfer_reversal", "amount": 2500, "currency": "usd",
         "created": 0, "source": {"id": "trr_1", "transfer": transfer}},
        {"reporting_category": "payout", "amount": -5, "currency": "usd", "created": 0,
         "source": "po_1"},
    ]
    records = list(core.records_from_balance_transactions(transactions, lambda _: "2026-10"))
    assert [(r[0], r[4], r[6]) for r in records] == [
        ("ob-1", 10000, ""), ("ob-1", 10000, "acct_1"), ("trr_1", 2500, "acct_1")]


def test_lines_are_written_as_csv_with_amounts_in_major_units() -> None:
    out = io.StringIO()
    count = core.write_lines(lines([transfer_entry("ob-1", 1234, "tr_a")],
                                   [transfer_record("ob-1", "tr_a", 1234)]), out)
    header, row = out.getvalue().splitlines()
    assert count == 1 and header.split(",") == list(core.LINE_COLUMNS)
    assert row == "MATCHED,TRANSFER,ob-1,p-1,FAIRMINED,2026-10,tr_a,tr_a,12.34,12.34,usd,usd"


def test_the_chart_is_an_svg_with_a_bar_per_producer_and_month_and_escaped_names() -> None:
    svg = premiums_chart({"Coop <Río>": {"2026-10": 250_000, "2026-11": 100_000},
                          "Sol Andino": {"2026-11": 50_000}}, ["2026-10", "2026-11"])
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "Coop &lt;Río&gt;" in svg and "<Río>" not in svg
    assert svg.count("<rect") == 1 + 2 * 2 + 2  # background, bars, legend keys
    assert "USD 2,500.00" in svg
