"""Reconciliation at a million rows: Veta's pure-Python matching against a pandas merge.

Generates Veta's ledger CSV and Stripe's balance-change CSV (1,000,000 rows each by default,
with a realistic sprinkling of every discrepancy kind), then times, each in a fresh process,
Veta's reconciliation (read both, match, classify every line, totals; then again also
writing every line as CSV) and pandas doing the same two reads and an outer merge (alone,
then with the classification), and prints wall and CPU seconds, peak memory and the ratios.
pandas comes from the `bench` extra:
    pip install -e '.[bench]' && python bench/reconcile.py [--rows 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRIPE_COLUMNS = (
    "balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee",
    "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "automatic_payout_id", "connected_account",
    "transfer_metadata[obligation_id]", "payment_metadata[obligation_id]",
)
LEDGER_COLUMNS = ("kind", "obligation_id", "stripe_id", "amount", "currency", "producer_id",
                  "standard", "booked_at")
# Out of every 10,000 Stripe rows: how many of each discrepancy the generator plants.
PER_10K = {"missing_in_stripe": 10, "missing_in_veta": 10, "amount": 10, "currency": 5,
           "duplicate": 5, "payout": 20}


def _major(cents: int) -> str:
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _stamp(rng: random.Random, start: int) -> int:
    return start + rng.randrange(31 * 86400)


def generate(rows: int, directory: Path, seed: int = 7) -> tuple[Path, Path, dict[str, int]]:
    """Write ledger.csv and balance_change.csv with about `rows` rows each."""
    rng = random.Random(seed)
    producers = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(300)]
    accounts = {p: "acct_" + uuid.UUID(int=rng.getrandbits(128)).hex[:16] for p in producers}
    standards = ("FAIRMINED", "FAIRMINED_ECOLOGICAL")
    start = 1_790_812_800  # 2026-10-01 00:00:00 UTC
    ledger: list[tuple[str, ...]] = []
    stripe: list[tuple[int, tuple[str, ...]]] = []
    planted = dict.fromkeys(PER_10K, 0)

    def stripe_row(at: int, category: str, source: str, cents: int, currency: str,
                   account: str, t_meta: str, p_meta: str) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
        fee = (cents * 29 + 500) // 1000 + 30 if category == "charge" else 0
        stripe.append((at, (
            "txn_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24], when, when, currency,
            _major(cents), _major(fee), _major(cents - fee), category, source,
            "premium, Veta" if category == "charge" else "", _major(cents)
            if category == "charge" else "", currency if category == "charge" else "", "",
            account, t_meta, p_meta)))

    def plant(kind: str) -> bool:
        if rng.randrange(10_000) < PER_10K[kind]:
            planted[kind] += 1
            return True
        return False

    while len(ledger) < rows:
        obligation = str(uuid.UUID(int=rng.getrandbits(128)))
        producer = rng.choice(producers)
        account = accounts[producer]
        standard = rng.choice(standards)
        cents = rng.randrange(10_000, 5_000_000)
        paid_at, sent_at = _stamp(rng, start), _stamp(rng, start)
        charge = "ch_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
        transfer = "tr_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
        booked = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(sent_at))
        ledger.append(("PAYMENT", obligation, charge, _major(cents), "usd", producer, standard,
                       booked))
        ledger.append(("TRANSFER", obligation, transfer, _major(cents), "usd", producer,
                       standard, booked))
        stripe_row(paid_at, "charge", charge, cents, "usd", "", "", obligation)
        if plant("missing_in_stripe"):
            pass
        else:
            amount = cents + rng.choice((-1, 1, 100)) if plant("amount") else cents
            currency = "eur" if plant("currency") else "usd"
            stripe_row(sent_at, "transfer", transfer, -amount, currency, account, obligation, "")
        if plant("duplicate"):
            twin = "tr_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
            stripe_row(sent_at + 5, "transfer", twin, -cents, "usd", account, obligation, "")
        if rng.randrange(100) < 4:  # a partial reversal
            reversal = "trr_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
            back = cents // 4
            ledger.append(("REVERSAL", obligation, reversal, _major(back), "usd", producer,
                           standard, booked))
            stripe_row(sent_at + 60, "transfer_reversal", reversal, back, "usd", account,
                       obligation, "")
        if plant("missing_in_veta"):
            stray = "tr_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24]
            stripe_row(_stamp(rng, start), "transfer", stray, -cents, "usd", account,
                       str(uuid.UUID(int=rng.getrandbits(128))), "")
        if plant("payout"):
            stripe_row(_stamp(rng, start), "payout", "po_" + uuid.uuid4().hex[:24], -cents,
                       "usd", "", "", "")
    stripe.sort(key=lambda item: item[0])
    ledger_path, stripe_path = directory / "ledger.csv", directory / "balance_change.csv"
    with ledger_path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(LEDGER_COLUMNS)
        writer.writerows(ledger)
    with stripe_path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STRIPE_COLUMNS)
        writer.writerows(row for _, row in stripe)
    return ledger_path, stripe_path, {"ledger_rows": len(ledger), "stripe_rows": len(stripe),
                                      **planted}


# --- the two contenders, each run in its own process ---------------------------------------

def run_veta(ledger: str, stripe: str, out: str | None) -> dict[str, object]:
    from services.payouts.reconciliation import (
        Totals,
        match,
        read_balance_change_csv,
        read_ledger_csv,
        write_lines,
    )

    started, cpu = time.perf_counter(), time.process_time()
    totals = Totals()
    with open(ledger, newline="") as v, open(stripe, newline="") as s:
        lines = match(read_ledger_csv(v), read_balance_change_csv(s), totals=totals)
        if out is None:  # like pandas: the lines are made and classified, not written
            written = sum(1 for _ in lines)
        else:
            with open(out, "w", newline="") as o:
                written = write_lines(lines, o)
    summary = totals.summary()
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "lines": written,
            "counts": summary["counts"], "producers": len(summary["by_producer"])}


def run_pandas(ledger: str, stripe: str, classify: bool) -> dict[str, object]:
    import numpy as np
    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    v = pd.read_csv(ledger, dtype=str, usecols=["kind", "obligation_id", "stripe_id",
                                                "amount", "currency"])
    s = pd.read_csv(stripe, dtype=str, keep_default_na=False, usecols=[
        "reporting_category", "source_id", "gross", "currency",
        "transfer_metadata[obligation_id]", "payment_metadata[obligation_id]"])
    s = s[s["reporting_category"].isin(["charge", "transfer", "transfer_reversal"])]
    v["key"] = np.where(v["kind"] == "REVERSAL", "R" + v["stripe_id"],
                        v["kind"].str[0] + v["obligation_id"])
    category = s["reporting_category"]
    s = s.assign(key=np.where(category == "transfer_reversal", "R" + s["source_id"],
                              np.where(category == "charge",
                                       "P" + s["payment_metadata[obligation_id]"],
                                       "T" + s["transfer_metadata[obligation_id]"])))
    merged = v.merge(s, on="key", how="outer", indicator=True, suffixes=("_veta", "_stripe"))
    result: dict[str, object] = {"rows": len(merged)}
    if classify:
        veta_cents = pd.to_numeric(merged["amount"]).mul(100).round()
        stripe_cents = pd.to_numeric(merged["gross"]).abs().mul(100).round()
        status = np.select(
            [merged["_merge"] == "left_only", merged["_merge"] == "right_only",
             merged.duplicated("key", keep="first"),
             merged["currency_veta"] != merged["currency_stripe"],
             veta_cents != stripe_cents],
            ["MISSING_IN_STRIPE", "MISSING_IN_VETA", "DUPLICATE", "CURRENCY_MISMATCH",
             "AMOUNT_MISMATCH"], "MATCHED")
        result["counts"] = pd.Series(status).value_counts().to_dict()
    result["seconds"] = time.perf_counter() - started
    result["cpu"] = time.process_time() - cpu
    return result


def child(args: argparse.Namespace) -> None:
    if args.child in ("veta", "veta+csv"):
        result = run_veta(args.ledger, args.stripe, args.out if args.child == "veta+csv"
                          else None)
    else:
        result = run_pandas(args.ledger, args.stripe, classify=args.child == "pandas-classify")
    result["peak_mib"] = peak_mib()
    print(json.dumps(result, default=int))


def peak_mib() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss would
    carry over the parent's high-water mark (the generator's) into the child."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, ledger: Path, stripe: Path, out: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--ledger", str(ledger),
                           "--stripe", str(stripe), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to write the CSVs (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs each")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ledger", help=argparse.SUPPRESS)
    parser.add_argument("--stripe", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.dir or scratch)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ledger, stripe, planted = generate(args.rows, directory)
        print(f"generated in {time.perf_counter() - started:.1f} s: {planted}")
        print(f"  {ledger} ({ledger.stat().st_size / 2**20:.0f} MiB), "
              f"{stripe} ({stripe.stat().st_size / 2**20:.0f} MiB)")
        out = directory / "lines.csv"
        results = {}
        for kind in ("veta", "veta+csv", "pandas-merge", "pandas-classify"):
            runs = [measure(kind, ledger, stripe, out) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
            results[kind] = best
            print(f"{kind:16s} {float(best['seconds']):6.2f} s wall "  # type: ignore[arg-type]
                  f"{float(best['cpu']):6.2f} s cpu  "  # type: ignore[arg-type]
                  f"peak {float(best['peak_mib']):6.0f} MiB"  # type: ignore[arg-type]
                  f"  {best.get('counts', '')}")
        for clock in ("seconds", "cpu"):
            for ours, theirs in (("veta", "pandas-merge"), ("veta", "pandas-classify"),
                                 ("veta+csv", "pandas-classify")):
                ratio = float(results[ours][clock]) / float(  # type: ignore[arg-type]
                    results[theirs][clock])  # type: ignore[arg-type]
                print(f"ratio {ours} / {theirs} ({'wall' if clock == 'seconds' else 'cpu'}):"
                      f" {ratio:.2f}")


if __name__ == "__main__":
    main()
