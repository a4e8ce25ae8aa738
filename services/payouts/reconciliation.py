"""Reconciliation's core: match Veta's ledger against Stripe's records, line by line, streaming.

Pure Python (csv module, dicts and tuples; no pandas, no database). Veta's side is indexed by
its match key and Stripe's side streams past it, so a million rows a side stay well under
1 GiB; both sides can come from CSV files, the database or Stripe's API pages.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from itertools import compress, repeat
from operator import itemgetter, ne
from sys import intern
from typing import IO, Any, NamedTuple

MATCHED = "MATCHED"
MISSING_IN_STRIPE = "MISSING_IN_STRIPE"
MISSING_IN_VETA = "MISSING_IN_VETA"
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
DUPLICATE = "DUPLICATE"
STATUSES = (MATCHED, MISSING_IN_STRIPE, MISSING_IN_VETA, AMOUNT_MISMATCH, CURRENCY_MISMATCH,
            DUPLICATE)

PAYMENT = "PAYMENT"      # the buyer paid the premium in (a charge)
TRANSFER = "TRANSFER"    # the premium went out to the cooperative
REVERSAL = "REVERSAL"    # some of a transfer came back
KINDS = (PAYMENT, TRANSFER, REVERSAL)
# Stripe's reporting categories, as the balance-change report and balance transactions name them.
CATEGORY_KIND = {"charge": PAYMENT, "transfer": TRANSFER, "transfer_reversal": REVERSAL}

# Veta's ledger CSV (what `veta reconcile` reads back and the bench generates).
LEDGER_COLUMNS = ("kind", "obligation_id", "stripe_id", "amount", "currency", "producer_id",
                  "standard", "booked_at")
LINE_COLUMNS = ("status", "kind", "obligation_id", "producer_id", "standard", "month",
                "veta_stripe_id", "stripe_id", "veta_amount", "stripe_amount", "veta_currency",
                "stripe_currency")


class Entry(NamedTuple):
    """One money movement as Veta recorded it. `amount` is positive, in minor units."""

    key: str
    kind: str
    obligation_id: str
    stripe_id: str
    amount: int
    currency: str
    producer_id: str
    standard: str
    month: str


class Record(NamedTuple):
    """One balance change as Stripe reports it, signs removed (a transfer's -12.34 is 1234)."""

    key: str
    kind: str
    obligation_id: str
    stripe_id: str
    amount: int
    currency: str
    account: str
    month: str


class Line(NamedTuple):
    status: str
    kind: str
    obligation_id: str
    producer_id: str
    standard: str
    month: str
    veta_stripe_id: str
    stripe_id: str
    veta_amount: int | None
    stripe_amount: int | None
    veta_currency: str
    stripe_currency: str


def match_key(kind: str, obligation_id: str, stripe_id: str) -> str:
    """Within its kind: payments and transfers are one per obligation (a second one is a
    DUPLICATE), while an obligation may have several reversals, each its own Stripe object.
    The key is the id string itself, so a million keys cost no new strings."""
    if kind == REVERSAL:
        return stripe_id
    return obligation_id or "?" + stripe_id


def entry(kind: str, obligation_id: str, stripe_id: str, amount: int, currency: str,
          producer_id: str, standard: str, month: str) -> Entry:
    # Interned: Veta's side is held in memory whole, and these repeat on every row.
    return Entry(match_key(kind, obligation_id, stripe_id), intern(kind), obligation_id,
                 stripe_id, amount, intern(currency.lower()), intern(producer_id),
                 intern(standard), intern(month))


def record(kind: str, obligation_id: str, stripe_id: str, amount: int, currency: str,
           account: str, month: str) -> Record:
    return Record(match_key(kind, obligation_id, stripe_id), kind, obligation_id, stripe_id,
                  amount, currency.lower(), account, month)


def match(entries: Iterable[Entry | tuple[Any, ...]],
          records: Iterable[Record | tuple[Any, ...]],
          producer_of_account: Mapping[str, str] | None = None,
          totals: Totals | None = None) -> Iterator[tuple[Any, ...]]:
    """Every line of the reconciliation (as `Line`-shaped tuples): first Veta's own
    duplicates, then Stripe's records in the order they come, then what Veta has and Stripe
    does not. `totals`, if given, is kept up to date as lines are made.

    When Veta knows the Stripe id of a movement, only that Stripe object matches it; any
    other Stripe object for the same obligation is a DUPLICATE (a second payment), whichever
    arrives first. When Veta does not know it (the reply was lost), the first one matches.
    """
    with paused_collector():
        yield from _match(entries, records, producer_of_account, totals)
    # The collector resumes only once _match is done and its index freed: resumed earlier,
    # its first pass would walk every tuple made while it was paused (about a second).


def _match(entries: Iterable[Entry | tuple[Any, ...]],
           records: Iterable[Record | tuple[Any, ...]],
           producer_of_account: Mapping[str, str] | None,
           totals: Totals | None) -> Iterator[tuple[Any, ...]]:
    # Plain tuples, local names and as few lookups in the million-key dicts as possible
    # (each is a cache miss): this loop runs once per row, a million times a side.
    accounts = producer_of_account or {}
    count = (totals or Totals()).add
    indexes: dict[str, dict[str, tuple[Any, ...]]] = {kind: {} for kind in KINDS}
    for entry in entries:
        index = indexes[entry[1]]
        if entry[0] in index:
            line: tuple[Any, ...] = (DUPLICATE, entry[1], entry[2], entry[6], entry[7],
                                     entry[8], entry[3], "", entry[4], None, entry[5], "")
            count(line)
            yield line
        else:
            index[entry[0]] = entry
    strays: dict[str, set[str]] = {kind: set() for kind in KINDS}
    # Totals.add, inlined for matched lines: nearly every line is one.
    cells = totals.cells if totals is not None else {}
    tally = totals.counts if totals is not None else dict.fromkeys(STATUSES, 0)
    for r in records:
        kind = r[1]
        index = indexes[kind]
        key = r[0]
        e = index.get(key)
        if e is None:
            if key in strays[kind]:
                line = (DUPLICATE, kind, r[2], accounts.get(r[6], r[6]), "", r[7], "",
                        r[3], None, r[4], "", r[5])
            else:
                strays[kind].add(key)
                line = (MISSING_IN_VETA, kind, r[2], accounts.get(r[6], r[6]), "", r[7],
                        "", r[3], None, r[4], "", r[5])
        elif len(e) == 1:  # matched already: a second payment, told as the first one
            e = e[0]
            line = (DUPLICATE, kind, r[2], e[6], e[7], r[7], e[3], r[3], None, r[4], "",
                    r[5])
        elif e[3] and e[3] != r[3]:  # Veta paid with another object: a second payment
            line = (DUPLICATE, kind, r[2], e[6], e[7], r[7], e[3], r[3], None, r[4], "",
                    r[5])
        else:
            # Marked matched where it stands, wrapped in a 1-tuple: cheaper than moving
            # it to another million-key dict (one cache miss less per row).
            index[key] = (e,)
            if e[5] == r[5] and e[4] == r[4]:
                line = (MATCHED, kind, e[2], e[6], e[7], r[7], e[3], r[3], e[4], r[4],
                        e[5], r[5])
                tally[MATCHED] += 1
                cell_key = (e[6], e[7], r[7], kind, e[5])
                cell = cells.get(cell_key)
                if cell is None:
                    cell = cells[cell_key] = [0, 0, 0, 0]
                cell[0] += e[4]
                cell[1] += r[4]
                cell[2] += 1
                yield line
                continue
            line = (CURRENCY_MISMATCH if e[5] != r[5] else AMOUNT_MISMATCH, kind, e[2],
                    e[6], e[7], r[7], e[3], r[3], e[4], r[4], e[5], r[5])
        count(line)
        yield line
    for index in indexes.values():
        for e in unmatched(index):
            line = (MISSING_IN_STRIPE, e[1], e[2], e[6], e[7], e[8], e[3], "", e[4], None,
                    e[5], "")
            count(line)
            yield line


def unmatched(index: dict[str, tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The entries of an index not yet matched (not wrapped), in the order they came;
    filtered in C, since nearly all of a million are matched."""
    values = index.values()
    return compress(values, map(ne, map(len, values), repeat(1)))


@contextmanager
def paused_collector() -> Iterator[None]:
    """Pause the cyclic garbage collector while matching: the index holds a million tuples
    and no cycles, and every collection would walk all of them again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- totals ---------------------------------------------------------------------------------

class Totals:
    """Sums by producer, standard and month, kept in one pass over the lines.

    Each line adds to one cell keyed (producer, standard, month, kind, currency); the three
    roll-ups are made from the cells at the end, so a million lines cost one dict update each.
    """

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str, str, str], list[int]] = {}
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)

    def add(self, line: Line | tuple[Any, ...]) -> None:
        self.counts[line[0]] += 1
        currency = line[10] or line[11]
        key = (line[3], line[4], line[5], line[1], currency)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0, 0, 0, 0]
        if line[8] is not None:
            cell[0] += line[8]
        if line[9] is not None:
            cell[1] += line[9]
        cell[2] += 1
        if line[0] != MATCHED:
            cell[3] += 1

    def counting(self, lines: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """Pass the lines through, adding each."""
        add = self.add
        for line in lines:
            add(line)
            yield line

    def by(self, dimension: str) -> list[dict[str, Any]]:
        """Rows of totals by "producer", "standard" or "month" (and currency): premiums paid
        (transfers less reversals) and collected (buyer payments), on each side."""
        position = {"producer": 0, "standard": 1, "month": 2}[dimension]
        groups: dict[tuple[str, str], dict[str, int]] = {}
        for key, (veta, stripe, lines, discrepancies) in self.cells.items():
            group = groups.setdefault((key[position], key[4]), {
                "veta_paid": 0, "stripe_paid": 0, "veta_collected": 0,
                "stripe_collected": 0, "lines": 0, "discrepancies": 0})
            sign, column = {TRANSFER: (1, "paid"), REVERSAL: (-1, "paid"),
                            PAYMENT: (1, "collected")}[key[3]]
            group[f"veta_{column}"] += sign * veta
            group[f"stripe_{column}"] += sign * stripe
            group["lines"] += lines
            group["discrepancies"] += discrepancies
        return [{dimension: name, "currency": currency, **values}
                for (name, currency), values in sorted(groups.items())]

    def summary(self) -> dict[str, Any]:
        return {"counts": dict(self.counts),
                "by_producer": self.by("producer"), "by_standard": self.by("standard"),
                "by_month": self.by("month")}


# --- amounts ---------------------------------------------------------------------------------

def minor_units(text: str) -> int:
    """A decimal major-unit string ("-12.34", "1500" for zero-decimal currencies) as an int."""
    if len(text) > 3 and text[-3] == ".":
        # The first "." is the one at -3 unless the text is malformed, and then int() refuses.
        return int(text.replace(".", "", 1))
    if "." not in text:
        return int(text)
    return int(Decimal(text).scaleb(2).to_integral_exact())


def major_units(amount: int | None) -> str:
    """Cents as the decimal string Veta puts on the wire ("12.34", "-0.05")."""
    if amount is None:
        return ""
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    return f"{sign}{amount // 100}.{amount % 100:02d}"


# --- reading the two sides from CSV ---------------------------------------------------------

def csv_rows(stream: IO[str]) -> Iterator[list[str]]:
    """The rows `csv.reader(stream)` makes, about twice as fast on plain lines.

    Parsing character by character is most of the reading time, and nearly every line of
    a ledger or a balance-change report has no quote: such a line is what `str.split(",")`
    makes of it, in C. A line that could mean anything else to csv (a quote, a stray
    carriage return or NUL, a field near csv's size limit) goes to one `csv.reader` that
    reads on from the same stream when a quoted field spans lines.
    """
    lines = iter(stream)
    pending: list[str] = []

    def feed() -> Iterator[str]:
        while True:
            while pending:
                yield pending.pop()
            line = next(lines, None)
            if line is None:
                return
            yield line

    parser = csv.reader(feed())
    limit = csv.field_size_limit()
    for line in lines:
        # A text stream ends each line with one "\n", "\r\n" or "\r" (or none at the end).
        text = line.rstrip("\r\n")
        if '"' in text or "\r" in text or "\n" in text or "\0" in text or len(text) >= limit:
            pending.append(line)
            row = next(parser, None)
            if row is None:
                return
            yield row
        elif text:
            yield text.split(",")
        else:
            yield []


def read_ledger_csv(stream: IO[str]) -> Iterator[tuple[Any, ...]]:
    """Veta's ledger as `LEDGER_COLUMNS`: amounts in major units, booked_at ISO 8601."""
    reader = csv_rows(stream)
    header = next(reader, None)
    if header is None:
        return
    columns = itemgetter(*(header.index(name) for name in LEDGER_COLUMNS))
    for kind, obligation_id, stripe_id, amount, currency, producer, standard, booked in map(
            columns, reader):
        kind = intern(kind)
        key = stripe_id if kind == REVERSAL else obligation_id or "?" + stripe_id
        cents = (int(amount.replace(".", "", 1)) if len(amount) > 3 and amount[-3] == "."
                 else minor_units(amount))
        yield (key, kind, obligation_id, stripe_id, cents, intern(currency.lower()),
               intern(producer), intern(standard), intern(booked[:7]))


def read_balance_change_csv(stream: IO[str], metadata_key: str = "obligation_id"
                            ) -> Iterator[tuple[Any, ...]]:
    """Stripe's itemised balance-change report (balance_change_from_activity.itemized):
    charges, transfers and transfer reversals; payouts, fees and the rest are not premiums.

    The obligation comes from `payment_metadata[obligation_id]` for a charge and from
    `transfer_metadata[obligation_id]` for a transfer or its reversal.
    """
    reader = csv_rows(stream)
    header = next(reader, None)
    if header is None:
        return
    transfer_meta = f"transfer_metadata[{metadata_key}]"
    payment_meta = f"payment_metadata[{metadata_key}]"
    wanted = ["reporting_category", "source_id", "gross", "currency", "connected_account",
              "created_utc"]
    indices = [header.index(name) for name in wanted]
    # A report without a metadata column still reconciles: everything is then unmatched.
    blank = len(header)
    indices.append(header.index(transfer_meta) if transfer_meta in header else blank)
    indices.append(header.index(payment_meta) if payment_meta in header else blank)
    columns = itemgetter(*indices)
    pad = [""] if blank in indices else []
    kinds = CATEGORY_KIND
    for category, source, gross, currency, account, created, t_meta, p_meta in map(
            columns, (row + pad for row in reader) if pad else reader):
        kind = kinds.get(category)
        if kind is None:
            continue
        cents = (int(gross.replace(".", "", 1)) if len(gross) > 3 and gross[-3] == "."
                 else minor_units(gross))
        if kind == TRANSFER:
            yield (t_meta or "?" + source, kind, t_meta, source, -cents, currency.lower(),
                   account, created[:7])
        elif kind == REVERSAL:
            yield (source, kind, t_meta, source, cents, currency.lower(), account,
                   created[:7])
        else:
            yield (p_meta or "?" + source, kind, p_meta, source, cents, currency.lower(),
                   account, created[:7])


def records_from_balance_transactions(transactions: Iterable[Mapping[str, Any]],
                                      month_of: Callable[[int], str],
                                      metadata_key: str = "obligation_id") -> Iterator[Record]:
    """Stripe's records from balance transactions fetched through the API, each with its
    `source` expanded (and a reversal's `source.transfer`), as plain dicts."""
    for bt in transactions:
        kind = CATEGORY_KIND.get(str(bt.get("reporting_category")))
        if kind is None:
            continue
        source = bt.get("source") or {}
        if isinstance(source, str):
            source = {"id": source}
        parent = source.get("transfer") if kind == REVERSAL else source
        if not isinstance(parent, Mapping):
            parent = {}
        metadata = parent.get("metadata") or {}
        account = str(parent.get("destination") or "") if kind != PAYMENT else ""
        amount = int(bt["amount"])
        yield record(kind, str(metadata.get(metadata_key, "")), str(source.get("id", "")),
                     -amount if kind == TRANSFER else amount, str(bt["currency"]),
                     account, month_of(int(bt["created"])))


# --- writing lines ----------------------------------------------------------------------------

def line_row(line: Line | tuple[Any, ...]) -> tuple[Any, ...]:
    return (*line[:8], major_units(line[8]), major_units(line[9]), line[10], line[11])


def write_lines(lines: Iterable[tuple[Any, ...]], stream: IO[str],
                extra_columns: tuple[str, ...] = (),
                extra: Callable[[Any], tuple[Any, ...]] | None = None) -> int:
    """Write lines as CSV (amounts in major units); returns how many."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow((*LINE_COLUMNS, *extra_columns))
    count = 0
    if extra is None:
        write, money = writer.writerow, major_units
        for line in lines:
            write((*line[:8], money(line[8]), money(line[9]), line[10], line[11]))
            count += 1
    else:
        for line in lines:
            writer.writerow((*line_row(line), *extra(line)))
            count += 1
    return count
