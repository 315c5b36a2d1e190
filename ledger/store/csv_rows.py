"""The CSV rows of a journal export made by PostgreSQL (``COPY (SELECT ...) TO STDOUT``), on a
psycopg connection alone: the statement (`copy_csv_sql`), its settings, and the copy of its
rows in parts side by side (`copy_parts`), each part on a connection of its own that imports
the first connection's snapshot.

Imports neither SQLAlchemy nor psycopg: the caller passes the connections
(`ledger.store.journal.copy_csv_rows` those of a Session, `ledger.store.pg.Snapshot` its own),
so the export of a command that needs no SQLAlchemy starts without it.
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, BinaryIO

from ledger.core.money import CREDIT, exponent
from ledger.store.keys_sql import entry_lines_sql, line_grant_sql

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "'", "\x00")
CSV_BLANKS = ("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
              "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""Copies of ``ledger.export.text``'s constants (the store imports no export module): the
characters ``csv_cell`` neutralises with a leading ``'`` at the start of a text cell, also
after leading blanks. The server-side CSV rows (`copy_csv_sql`) do the same
(tests/integration/test_export.py and test_csv_injection.py compare their bytes with the
Python writer's, and these constants with the export's)."""



def _sql_chars(chars: str) -> str:
    """``chars`` as the body of a bracket expression in an E'' literal: NUL left out (PostgreSQL
    text holds none), ``-`` last, ``'`` doubled, every character but an ASCII letter, digit or
    one of ``=+@-`` as a ``\\uXXXX`` escape (the server's encoding is UTF-8)."""
    body = sorted(set(chars) - {"\x00"}, key=lambda c: (c == "-", c))
    return "".join("''" if c == "'" else c if c.isascii() and (c.isalnum() or c in "=+@-") else f"\\u{ord(c):04x}"
                   for c in body)


_SQL_FORMULA = f"E'^[{_sql_chars(CSV_BLANKS)}]*[{_sql_chars(''.join(CSV_TRIGGERS))}]'"
"""What ``csv_cell`` neutralises, as a POSIX regular expression: blanks (maybe none), then a
trigger, at the start of the text."""

SAFE_LEAD = (65, 127)
"""Code points (inclusive) a text may start with and never be neutralised: ``A`` to DEL. Every
character of `CSV_TRIGGERS` and `CSV_BLANKS` lies outside (``@`` is 64), so `_sql_text` skips
the regular expression for such a text (most are ids and descriptions starting with a letter)."""


ENTRIES_PER_ROW = 256
"""Entry ids per bucket (`_copy_select`): a COPY message carries the lines of at most that many
entries, all of one date (about 0.1 MB at 2 lines an entry; fewer messages, less work per
message on both sides)."""


def _sql_text(expr: str) -> str:
    """SQL for the CSV field ``write_csv`` writes for a text cell: ``csv_cell``, then quoted as
    ``csv_line`` quotes (a comma, double quote, CR or LF inside); NULL and '' give an empty
    field. The formula test runs only on a text whose first character is not in `SAFE_LEAD`,
    and the quoting test is four LIKEs (each far cheaper than a regular expression)."""
    lo, hi = SAFE_LEAD
    cell = (f"CASE WHEN ascii({expr}) BETWEEN {lo} AND {hi} THEN {expr} "
            f"WHEN {expr} ~ {_SQL_FORMULA} THEN '''' || {expr} ELSE {expr} END")
    special = f"({expr} LIKE '%,%' OR {expr} LIKE '%\"%' OR {expr} LIKE E'%\\r%' OR {expr} LIKE E'%\\n%')"
    quoted = f"'\"' || replace({cell}, '\"', '\"\"') || '\"'"  # csv_cell adds no comma, quote, CR or LF
    return f"coalesce(CASE WHEN {special} THEN {quoted} ELSE {cell} END, '')"


def _sql_major(expr: str) -> str:
    """SQL for ``major(expr, commodity)`` of an amount >= 0, given the joined exponent row ``x``
    (x.m: the numeric 10 ** -decimals, written with that many decimals: 1, 0.01, 0.001)."""
    return f"({expr}::numeric * x.m)::text"  # exact: a product's scale is the sum of the scales


def _sql_amounts() -> str:
    """SQL for the fields commodity, debit, credit, debit_minor and credit_minor of line ``l``,
    each followed by a comma, given the joined row ``x`` (x.cc: the commodity and a comma; x.e:
    its decimals). A line with one side zero in a commodity without decimals (CREDIT, JPY: most
    lines) writes its int amount twice, with no numeric arithmetic."""
    return (f"CASE WHEN x.e = 0 AND l.credit = 0 THEN x.cc || l.debit || ',0,' || l.debit || ',0,' "
            f"WHEN x.e = 0 AND l.debit = 0 THEN x.cc || '0,' || l.credit || ',0,' || l.credit || ',' "
            f"ELSE x.cc || {_sql_major('l.debit')} || ',' || {_sql_major('l.credit')} || ',' || l.debit "
            f"|| ',' || l.credit || ',' END")


def _sql_iso(expr: str) -> str:
    """SQL for ``iso(expr)``: UTC, RFC 3339, a fraction only when not zero (then 6 digits), then
    ``Z``. Needs DateStyle ISO (`COPY_SETTINGS`): a timestamp's text is then ``YYYY-MM-DD
    HH:MM:SS`` with the fraction's trailing zeros left out (cheaper than ``to_char``)."""
    text = f"({expr} AT TIME ZONE 'UTC')::text"
    return (f"replace({text}, ' ', 'T') || CASE WHEN date_trunc('second', {expr}) = {expr} THEN 'Z' "
            f"ELSE repeat('0', 26 - octet_length({text})) || 'Z' END")


def _unit(commodity: str) -> str:
    """One minor unit of ``commodity`` in major units, as ``major(1, commodity)`` writes it:
    "1" (CREDIT, JPY), "0.01" (USD), "0.001" (KWD). Raises ValueError for an unknown commodity."""
    exp = 0 if commodity == CREDIT else exponent(commodity)
    return f"0.{'0' * (exp - 1)}1" if exp else "1"


def copy_csv_sql(start: date | None, end: date | None, commodities: Iterable[str], *,
                 after: date | None = None, by_customer: bool = False) -> str | None:
    """The ``COPY (SELECT ...) TO STDOUT`` statement of `copy_csv_rows` for the entries dated in
    [start, end] (inclusive, None = open) and after ``after`` (exclusive, None = no bound);
    None when there are no commodities (nothing to export). Raises ValueError for an unknown
    commodity or a code that is not [A-Z0-9]+ (it is written into the SQL; ``ledger.export``
    refuses both before). ``by_customer``: entries joined to their lines by (customer, entry id),
    where the books are distributed by customer (`ledger.store.keys`: the reads as stored)."""
    units = sorted({(c, _unit(c)) for c in commodities})
    if not units:
        return None
    bad = [c for c, _ in units if not re.fullmatch(r"[A-Z0-9]+", c)]
    if bad:
        raise ValueError(f"unexpected commodity code(s) in the journal: {bad}")
    values = ", ".join(f"('{c}', {unit}::numeric, {len(unit.partition('.')[2])}, '{c},')" for c, unit in units)
    bounds = [(">=", start), (">", after), ("<=", end)]
    where = " AND ".join(f"entry_date {op} DATE '{day.isoformat()}'" for op, day in bounds if day is not None)
    return _copy_select(f"WHERE {where}" if where else "", values, by_customer)


def _copy_select(where: str, values: str, by_customer: bool) -> str:
    """The COPY statement of `copy_csv_sql`: ``where`` filters journal_entry (or is empty),
    ``values`` lists (commodity, one minor unit in major units, decimals, the commodity and a
    comma) rows.

    An entry's own fields (``head``, ending with a comma) are formatted once per entry: OFFSET 0
    keeps PostgreSQL from pulling the subquery up into the join, where they would be formatted
    once per line. The cells of accounts, customers and grants come from the joined rows, each
    with its comma (fewer ``||``, each of which copies the line so far); a value not among them
    is formatted from the line's own. Every operand of ``||`` is a non-NULL text (a line without
    a customer gives empty fields, as in write_csv). Lines are joined to their entries as
    ``by_customer`` says, to their grants on (customer, grant id) (`ledger.store.keys`). The lines of
    the entries of one date whose ids share a bucket (id // `ENTRIES_PER_ROW`) are joined into
    one value, in (entry id, line id) order, so that one COPY message carries many entries
    (buckets ascend with ids, so the values in (date, bucket) order are the rows in (date,
    entry id, line id) order; the sort by bucket and id before the grouping makes each
    value's own ordering a check of a presorted run)."""
    text = _sql_text
    tail = (f"CASE WHEN l.invoice_number IS NULL AND l.event_id IS NULL THEN E',\\r\\n' "
            f"ELSE {text('l.invoice_number')} || ',' || {text('l.event_id')} || E'\\r\\n' END")
    line = (f"e.head || l.id || ',' || coalesce(a.cells, {text('l.account_code')} || ',,') || {_sql_amounts()} "
            f"|| coalesce(c.cells, {text('l.customer_id')} || ',,') || coalesce(g.cells, {text('l.grant_id')} || ',') "
            f"|| {tail}")
    return f"""
        COPY (
          SELECT string_agg(line, '' ORDER BY id, line_id) FROM (
            SELECT e.entry_date, e.id / {ENTRIES_PER_ROW} AS bucket, e.id, l.id AS line_id, {line} AS line
            FROM (SELECT id, customer_id, entry_date,
                         concat_ws(',', id, entry_date, {_sql_iso('occurred_at')},
                                   {text('kind')}, {text('event_id')}, coalesce(import_id::text, ''),
                                   {text('description')}) || ',' AS head
                  FROM journal_entry {where} OFFSET 0) e
            JOIN journal_line l ON {entry_lines_sql('e', 'l', by_customer=by_customer)}
            JOIN (VALUES {values}) AS x(c, m, e, cc) ON x.c = l.commodity
            LEFT JOIN (SELECT code, {text('code')} || ',' || {text('name')} || ',' AS cells FROM account) a
              ON a.code = l.account_code
            LEFT JOIN (SELECT id, {text('id')} || ',' || {text('name')} || ',' AS cells FROM customer) c
              ON c.id = l.customer_id AND l.customer_id <> ''
            LEFT JOIN (SELECT id, customer_id, {text('id')} || ',' AS cells FROM credit_grant) g
              ON {line_grant_sql('l', 'g')}
            ORDER BY e.entry_date, bucket, e.id, l.id
          ) lines
          GROUP BY entry_date, bucket
          ORDER BY entry_date, bucket
        ) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"""


COPY_SETTINGS = ("SET LOCAL DateStyle = 'ISO'", "SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'",
                 "SET LOCAL max_parallel_workers_per_gather = 0")
"""Set in every transaction that runs a COPY of `copy_csv_rows`: dates and timestamps as text in
ISO 8601 (`_sql_iso`, the entry date); no JIT (compiling these expressions costs more than it
saves); a part's sort (about 70 MB at 220,000 lines) in memory rather than in files; no
parallel workers (the plan that formats each entry once is serial, and the parts already run
side by side)."""


def _copy_into(raw, sql: str, out: BinaryIO) -> int:
    """Run one COPY statement of `copy_csv_sql` on the psycopg connection ``raw`` and write its
    rows to ``out`` in pieces of about 1 MiB or more; returns the bytes written. Each COPY
    message is one value: \\x01, lines, \\x01, LF (COPY's CSV mode with \\x01 as quote
    character wraps each value in \\x01, since it holds a line end, and doubles any \\x01
    inside, which is undone here)."""
    written = pending = 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal written, pending
        data = b"".join(batch).replace(b"\x01\x01", b"\x01")
        out.write(data)
        written += len(data)
        pending = 0
        batch.clear()

    with raw.cursor() as cur:
        for setting in COPY_SETTINGS:
            cur.execute(setting)
        with cur.copy(sql) as copy:
            for message in copy:
                batch.append(bytes(message[1:-2]))
                pending += len(message)
                if pending >= 1 << 20:
                    flush()
    flush()
    return written




SnapshotConnect = Callable[[str], AbstractContextManager[Any]]
"""What opens the connection of a part: called with a snapshot id (``pg_export_snapshot()``),
returns a context manager giving a psycopg connection in a REPEATABLE READ, READ ONLY
transaction that has imported that snapshot (``SET TRANSACTION SNAPSHOT``); it closes the
connection (or hands it back) on exit."""


class _Part(threading.Thread):
    """A part of the rows copied on a connection of its own (``connect(snapshot)``, see
    `SnapshotConnect`), into a spooled temporary file (in memory up to 64 MiB). ``connected``
    tells whether the connection was made and the snapshot imported (``error`` before that:
    the caller copies the part itself)."""

    def __init__(self, connect: SnapshotConnect, snapshot: str, sql: str) -> None:
        super().__init__(name="ledger-export-copy", daemon=True)
        self.connect, self.snapshot, self.sql = connect, snapshot, sql
        self.spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self.connected = False
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with self.connect(self.snapshot) as raw:
                self.connected = True
                _copy_into(raw, self.sql, self.spool)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc

    def drain(self, out: BinaryIO) -> int:
        """Wait for the part, then write its rows to ``out``; returns the bytes written. Raises
        what the part raised once connected."""
        self.join()
        if self.error is not None:
            raise self.error
        self.spool.seek(0)
        written = 0
        while chunk := self.spool.read(4 << 20):
            out.write(chunk)
            written += len(chunk)
        return written


def copy_parts(raw: Any, connect: SnapshotConnect, out: BinaryIO, sqls: Sequence[str]) -> list[int]:
    """Run the COPY statements ``sqls`` (of `copy_csv_sql`, in the order of their rows) and write
    their rows to ``out`` in that order; returns the bytes written per statement. The first runs
    on the psycopg connection ``raw`` (in a REPEATABLE READ transaction that has written
    nothing) and is streamed to ``out``; each other one at the same time on a connection of its
    own (``connect``, `SnapshotConnect`) that imports ``raw``'s snapshot, so every part reads
    what ``raw`` reads. A part whose connection cannot be made is copied on ``raw`` after the
    others before it. Raises what a statement raises."""
    parts: list[_Part] = []
    if len(sqls) > 1:
        with raw.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
        parts = [_Part(connect, snapshot, sql) for sql in sqls[1:]]
    try:
        sizes = [_copy_into(raw, sqls[0], out)]
        for part, sql in zip(parts, sqls[1:], strict=True):
            part.join()
            sizes.append(part.drain(out) if part.connected else _copy_into(raw, sql, out))
    finally:
        for part in parts:
            part.join()
            part.spool.close()
    return sizes
