"""Audit exports of the journal (``ledger export journal``): CSV, JSONL, Beancount, hledger.

Every export holds the journal entries whose ``entry_date`` lies in ``[start, end]`` (both
inclusive, both optional), ordered by (entry_date, entry id, line id), with for each entry its
id, entry_date, occurred_at (UTC, RFC 3339), kind, event id, import id and description, and for
each line its account, commodity (ISO currency or ``CREDIT``), debit or credit, and the
dimensions customer_id (with the customer's name), grant_id, invoice_number and event_id.

When ``start`` is given, the export opens with one *opening balance* entry (kind
``opening_balance``, no entry id, dated the day before ``start``) that carries the life-to-date
balance of every account and commodity before ``start``. It balances per commodity like any
entry, so the balances of every export equal the trial balance at ``end`` (life to date),
whatever the range: ``read_balances(text, fmt) == balances_from_trial_balance(trial_balance(...))``
when ``end`` is a period's last day.

Amounts. The journal holds int minor units (a currency's ISO 4217 exponent: USD 2, JPY 0, KWD 3;
``CREDIT`` has exponent 0). CSV and JSONL give both the decimal string in major units
("21.65") and the int minor units (2165), on separate debit and credit sides, never signed.
Beancount and hledger give signed amounts in major units with the commodity's decimals
(debit positive, credit negative): ``21.65 USD``, ``1500 JPY``, ``1000 CREDIT``.

Files. ``export_journal`` writes FILE (atomically: a temporary file renamed into place), then
``FILE.manifest.json`` (file name, sha256, byte/line/entry/posting counts, date range, opening
and closing balances per account and commodity) and ``FILE.sha256`` in ``sha256sum`` format
covering FILE and its manifest (``cd DIR && sha256sum -c FILE.sha256``). The output is
deterministic: the same journal and arguments give the same bytes (no timestamps).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ledger import __version__
from ledger.core.money import CREDIT
from ledger.export.model import (
    CSV_COLUMNS,
    FORMATS,
    OPENING_KIND,
    AccountInfo,
    ExportContext,
    ExportEntry,
    ExportError,
    ExportLine,
    ExportResult,
)
from ledger.export.readers import (
    balances_from_trial_balance,
    read_balances,
    read_beancount_balances,
    read_csv_balances,
    read_hledger_balances,
    read_jsonl_balances,
)
from ledger.export.text import (
    beancount_string,
    csv_cell,
    csv_uncell,
    decimals,
    hledger_text,
    ledger_account_name,
    major,
    to_minor_units,
)
from ledger.export.tieout import CountingWriter, read_csv_movements, start_reader_import
from ledger.export.writers import (
    WRITERS,
    commodities,
    entry_object,
    fmt_balances,
    write_beancount,
    write_csv,
    write_hledger,
    write_jsonl,
)
from ledger.store.csv_rows import copy_csv_sql
from ledger.store.pg import Snapshot

if TYPE_CHECKING:
    from ledger.store.db import Session

    Books = Session | Snapshot

__all__ = [
    "CSV_COLUMNS", "FORMATS", "OPENING_KIND", "AccountInfo", "CountingWriter", "ExportContext", "ExportEntry",
    "ExportError", "ExportLine", "ExportResult", "balances_from_trial_balance", "beancount_string",
    "copy_csv_rows", "copy_csv_sql", "csv_cell", "csv_uncell", "entry_object", "export_journal", "hledger_text",
    "is_postgres", "iter_entries", "journal_balances", "ledger_account_name", "major", "read_balances",
    "read_beancount_balances", "read_csv_balances", "read_csv_movements", "read_hledger_balances",
    "read_jsonl_balances", "split_dates", "to_minor_units", "write_beancount", "write_csv", "write_hledger", "write_jsonl",
]

_CountingWriter = CountingWriter  # the name tests/integration/test_export.py imports


def _store_read(name: str):
    """The read ``name`` of the books an export reads: on a Session the function of
    `ledger.store.journal` (imported on first use: it imports SQLAlchemy), on a PostgreSQL
    `ledger.store.pg.Snapshot` its method; same arguments and answer either way. A name of this
    module, so that a test may replace it."""
    def read(books, *args, **kw):
        if isinstance(books, Snapshot):
            return getattr(books, name)(*args, **kw)
        from ledger.store import journal

        return getattr(journal, name)(books, *args, **kw)

    read.__name__ = read.__qualname__ = name
    read.__doc__ = f"`ledger.store.journal.{name}` of a Session, or the method of a `ledger.store.pg.Snapshot`."
    return read


chart = _store_read("chart")
customer_names = _store_read("customer_names")
entries_by_date = _store_read("entries_by_date")
first_entry_date = _store_read("first_entry_date")
journal_balances = _store_read("journal_balances")
journal_entries = _store_read("journal_entries")
used_accounts = _store_read("used_accounts")
copy_csv_rows = _store_read("copy_csv_rows")


def is_postgres(books: Books) -> bool:
    """Whether ``books`` (a Session or a `ledger.store.pg.Snapshot`) read a PostgreSQL database."""
    if isinstance(books, Snapshot):
        return True
    from ledger.store.db import is_postgres as on_postgres

    return on_postgres(books)


def read_snapshot(books: Books) -> bool:
    """`ledger.store.journal.read_snapshot` of a Session; True for a `ledger.store.pg.Snapshot`
    (its transaction is such a snapshot)."""
    if isinstance(books, Snapshot):
        return True
    from ledger.store.journal import read_snapshot as begin

    return begin(books)


def iter_entries(session: Books, start: date | None = None, end: date | None = None,
                 *, chunk: int = 5000) -> Iterator[ExportEntry]:
    """The journal entries dated in [start, end] (inclusive, None = open-ended) with their lines,
    ordered by (entry_date, entry id), lines by id; streamed in chunks of ``chunk`` rows
    (`ledger.store.journal.journal_entries`)."""
    for head, lines in journal_entries(session, start, end, chunk=chunk):
        yield ExportEntry(*head, tuple(ExportLine(*ln) for ln in lines))


def _opening_entry(opening: dict[tuple[str, str], int], day: date) -> ExportEntry:
    lines = tuple(ExportLine(None, code, commodity, max(net, 0), max(-net, 0))
                  for (code, commodity), net in sorted(opening.items(), key=lambda kv: (kv[0][1] == CREDIT, kv[0][1], kv[0][0])))
    return ExportEntry(None, day, None, OPENING_KIND, f"Balances brought forward at {day.isoformat()}",
                       None, None, None, lines)


@dataclass
class _Plan:
    """What an export holds, read before its entries: the range, the balances brought forward
    (``opening``, dated ``opening_day``), the first date of an entry with lines in the range
    (None when there is none), the writers' context and, when read with the accounts used (an
    export without ``start``), the journal's balances at ``end`` (``journal``, else None)."""

    start: date | None
    end: date | None
    opening: dict[tuple[str, str], int]
    opening_day: date | None
    first_entry: date | None
    ctx: ExportContext
    journal: dict[tuple[str, str], int] | None = None


@dataclass
class _Tally:
    """What went into the file: net movements {(account code, commodity): int minor units, debit
    positive}, entries and postings (the opening entry not counted); ``journal``: the journal's
    balances at the export's end when already read (`journal_balances`: with the accounts used,
    `_plan`, or side by side with the read-back), else None."""

    movements: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    entries: int = 0
    postings: int = 0
    journal: dict[tuple[str, str], int] | None = None


def _plan(session: Books, start: date | None, end: date | None, *, names: bool = True) -> _Plan:
    """Read the chart, the balances before ``start``, the accounts used and (``names``)
    customers' names; raises ExportError when lines use an account missing from the chart.
    Without ``start`` the accounts used are those of the journal's balances at ``end`` (zeros
    kept), read once for both."""
    accounts = {code: AccountInfo(code, name, type_, normal) for code, name, type_, normal in chart(session)}
    opening = journal_balances(session, before=start) if start is not None else {}
    journal = None
    if start is None:
        nets = journal_balances(session, through=end, zeros=True)
        used_pairs, first_entry = sorted(nets), first_entry_date(session, start, end)
        journal = {key: net for key, net in nets.items() if net != 0}
    else:
        used_pairs, first_entry = used_accounts(session, start, end)
    used = sorted(set(used_pairs) | set(opening))
    opening_day = start - timedelta(days=1) if start is not None else None
    first_date = opening_day if opening else first_entry
    unknown = sorted({a for a, _ in used} - accounts.keys())
    if unknown:
        raise ExportError(f"journal lines use accounts missing from the chart: {', '.join(unknown)}")
    span = ("all entry dates" if start is None and end is None else
            f"entry dates {start.isoformat() if start else 'first'} to {end.isoformat() if end else 'last'}")
    ctx = ExportContext(accounts, customer_names(session) if names else {}, used, first_date, f"Journal export, {span}")
    return _Plan(start, end, opening, opening_day, first_entry, ctx, journal)


def _counted(session: Books, plan: _Plan, tally: _Tally) -> Iterator[ExportEntry]:
    """The export's entries (the opening entry first, when there is one), tallied as they go."""
    if plan.opening:
        yield _opening_entry(plan.opening, plan.opening_day)  # type: ignore[arg-type]
    for e in iter_entries(session, plan.start, plan.end):
        tally.entries += 1
        tally.postings += len(e.lines)
        for ln in e.lines:
            tally.movements[(ln.account, ln.commodity)] += ln.debit - ln.credit
        yield e


def _check_commodities(codes: Iterable[str]) -> None:
    """Refuse what the server-side CSV rows cannot carry: ValueError for an unknown commodity,
    ExportError for a code that is not [A-Z0-9]+ (it is written into their SQL)."""
    pairs = sorted({(c, decimals(c)) for c in codes})
    bad = [c for c, _ in pairs if not re.fullmatch(r"[A-Z0-9]+", c)]
    if bad:
        raise ExportError(f"unexpected commodity code(s) in the journal: {bad}")


COPY_PARTS = 2
"""Parts of a PostgreSQL CSV export copied side by side, each on a connection of its own
(`ledger.store.journal.copy_csv_rows`), when the export has its own snapshot."""

SPLIT_MIN_ENTRIES = 20_000
"""Entries an export must hold to be copied in `COPY_PARTS` parts (fewer: one part; a part's
connection costs more than it saves)."""


def split_dates(counts: list[tuple[date, int]], parts: int) -> list[date]:
    """The cut dates that split entries counted per date (``counts``: (date, entries), dates
    ascending) into at most ``parts`` runs of consecutive dates holding about as many entries
    each: run i holds the dates after cut i-1 through cut i (the last run: after the last cut).
    A date is never split; no run is empty. Pure."""
    total = sum(n for _, n in counts)
    cuts: list[date] = []
    seen = 0
    for day, n in counts[:-1]:
        seen += n
        if len(cuts) < parts - 1 and seen * parts >= total * (len(cuts) + 1):
            cuts.append(day)
    return cuts


def _copy_csv(session: Books, tmp: Path, plan: _Plan, tally: _Tally, shared: bool) -> tuple[str, int, int]:
    """The CSV export on PostgreSQL: header and opening entry from ``write_csv``, the journal's
    rows from ``copy_csv_rows`` (in `COPY_PARTS` parts side by side when ``shared``, the
    session's snapshot being one other connections may share, and the export holds at least
    `SPLIT_MIN_ENTRIES` entries), written through a `CountingWriter` (sha256, bytes, lines of
    what was written). The rows are then read back from the file (`read_csv_movements`, the
    parts' regions side by side) for the tie-out check: their entry id, account, commodity and
    minor amounts go into ``tally``, and meanwhile (unless ``tally.journal`` holds them already)
    the journal's balances at the end into ``tally.journal``. Returns the file's (sha256 hex, bytes, lines), of the bytes written."""
    _check_commodities(c for _, c in plan.ctx.used)
    head = io.StringIO(newline="")
    write_csv(head, [_opening_entry(plan.opening, plan.opening_day)] if plan.opening else [], plan.ctx)  # type: ignore[arg-type]
    head_bytes = head.getvalue().encode("utf-8")
    cuts: list[date] = []
    if shared and COPY_PARTS > 1:
        counts = entries_by_date(session, plan.start, plan.end)
        if sum(n for _, n in counts) >= SPLIT_MIN_ENTRIES:
            cuts = split_dates(counts, COPY_PARTS)
    loading = start_reader_import()
    try:
        with open(tmp, "wb") as fh:
            rows = CountingWriter(fh, head_bytes)
            sizes = copy_csv_rows(session, rows, plan.start, plan.end, {c for _, c in plan.ctx.used}, cuts=cuts)
    finally:
        loading.join()
    splits = [len(head_bytes) + sum(sizes[:i]) for i in range(1, len(sizes or ()))]
    if tally.journal is not None:
        nets, entries, postings = read_csv_movements(tmp, len(head_bytes), splits)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-export-readback") as pool:
            reading = pool.submit(read_csv_movements, tmp, len(head_bytes), splits)
            tally.journal = journal_balances(session, through=plan.end)  # while the file is read back
            nets, entries, postings = reading.result()
    for key, net in nets.items():
        tally.movements[key] += net
    tally.entries += entries
    tally.postings += postings
    return rows.sha.hexdigest(), rows.bytes, rows.lines


def _write(session: Books, tmp: Path, fmt: str, plan: _Plan, tally: _Tally, shared: bool) -> tuple[str, int, int] | None:
    """Write the export to ``tmp``: on PostgreSQL a CSV by the server (`_copy_csv`, returning the
    (sha256, bytes, lines) it counted), else by the format's writer (None). Removes ``tmp`` on
    any error."""
    try:
        if fmt == "csv" and is_postgres(session):
            return _copy_csv(session, tmp, plan, tally, shared)
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            WRITERS[fmt](fh, _counted(session, plan, tally), plan.ctx)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return None


def _tie_out(session: Books, tmp: Path, plan: _Plan, tally: _Tally) -> dict[tuple[str, str], int]:
    """The balances at the export's end (brought forward + movements, zeros left out), checked
    against the journal's (`journal_balances` through ``end``, unless ``tally.journal`` holds
    them); raises ExportError, removing ``tmp``, when they differ."""
    closing = dict(plan.opening)
    for key, net in tally.movements.items():
        closing[key] = closing.get(key, 0) + net
    closing = {k: v for k, v in closing.items() if v != 0}
    expected = tally.journal if tally.journal is not None else journal_balances(session, through=plan.end)
    if closing != expected:
        tmp.unlink()
        diff = sorted(k for k in closing.keys() | expected.keys() if closing.get(k, 0) != expected.get(k, 0))
        raise ExportError(f"export does not tie to the journal's balances at {plan.end or 'the end'}: {diff[:5]}")
    return closing


def _manifest(path: Path, fmt: str, written: tuple[str, int, int], plan: _Plan, tally: _Tally,
              closing: dict[tuple[str, str], int]) -> dict:
    """The manifest of ``path`` (see the module docstring)."""
    digest, size, nlines = written
    start, end, first_entry, accounts = plan.start, plan.end, plan.first_entry, plan.ctx.accounts
    return {
        "schema": 1,
        "generator": f"credit-ledger {__version__}",
        "file": path.name,
        "format": fmt,
        "sha256": digest,
        "bytes": size,
        "lines": nlines,
        "entries": tally.entries,
        "postings": tally.postings,
        "opening_entry": bool(plan.opening),
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "first_entry_date": first_entry.isoformat() if first_entry else None,
        "commodities": commodities(plan.ctx),
        "amounts": "decimal strings in major units (a currency's ISO 4217 exponent; CREDIT units), "
                   "net_minor: int minor units, debit positive",
        "opening_balances": fmt_balances(plan.opening, accounts),
        "balances": fmt_balances(closing, accounts),
    }


def export_journal(session: Books, out: str | os.PathLike, fmt: str, *, start: date | None = None,
                   end: date | None = None) -> ExportResult:
    """Write the journal dated in [start, end] to ``out`` in ``fmt`` (one of ``FORMATS``), with
    ``out.manifest.json`` and ``out.sha256`` beside it (see the module docstring).

    session: a Session, or for a CSV a `ledger.store.pg.Snapshot` of PostgreSQL books (what
    ``ledger export journal --format csv`` reads there, without SQLAlchemy). start, end:
    inclusive entry dates, None = open-ended; with ``start`` the export begins with the opening
    balance entry. Every statement reads one snapshot (`db.one_snapshot`, when ``session`` has
    no transaction open, or the Snapshot's own; the connections that copy parts of a PostgreSQL CSV
    side by side import that snapshot), so postings made meanwhile are not in the file and do
    not break its tie-out. Returns an ``ExportResult``. Raises ExportError when start is
    after end, the format is unknown (or not csv for a Snapshot), or the exported lines do not add up to the journal's
    balances at ``end`` (never expected: a self-check); ValueError for an unknown commodity;
    OSError when FILE cannot be written (no partial FILE is left behind).
    """
    if fmt not in WRITERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if start is not None and end is not None and start > end:
        raise ExportError(f"--from {start.isoformat()} is after --to {end.isoformat()}: nothing to export")
    if isinstance(session, Snapshot) and fmt != "csv":
        raise ExportError(f"a PostgreSQL snapshot of the books is exported as csv, not {fmt}: export a Session")
    shared = read_snapshot(session)  # else the caller's transaction decides what is read
    path = Path(out)
    plan = _plan(session, start, end, names=not (fmt == "csv" and is_postgres(session)))
    tally = _Tally(journal=plan.journal)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    written = _write(session, tmp, fmt, plan, tally, shared)
    closing = _tie_out(session, tmp, plan, tally)
    os.replace(tmp, path)
    if written is None:
        data = path.read_bytes()
        written = (hashlib.sha256(data).hexdigest(), len(data), data.count(b"\n"))
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest_bytes = (json.dumps(_manifest(path, fmt, written, plan, tally, closing), indent=2, ensure_ascii=False)
                      + "\n").encode("utf-8")
    manifest_path.write_bytes(manifest_bytes)
    sha_path = path.with_name(path.name + ".sha256")
    sha_path.write_text(f"{written[0]}  {path.name}\n{hashlib.sha256(manifest_bytes).hexdigest()}  {manifest_path.name}\n",
                        encoding="utf-8")
    return ExportResult(path, manifest_path, sha_path, fmt, written[0], written[1], written[2], tally.entries,
                        tally.postings, closing, plan.opening)
