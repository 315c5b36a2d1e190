"""Reads of the journal for the audit export (``ledger.export``) and the forecasts
(``ledger.forecast``): balances, the entries with their lines, the chart, customers' names, and
on PostgreSQL the CSV rows of an export made by the server (``COPY ... TO STDOUT``).

The export's reads show the journal as stored: off Citus an entry's lines are those naming it,
whatever customer they name (`ledger.store.keys`, the reads as stored); the forecasts' join by
(customer, entry id).

Every function takes a Session and returns plain values: tuples, dicts, int minor units of a
line's commodity (CREDIT: int units), ``entry_date`` dates (inclusive bounds, None = open).
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import BinaryIO

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.money import CREDIT, exponent
from ledger.store import keys
from ledger.store.db import is_citus, is_postgres, one_snapshot
from ledger.store.models import Account, Customer, JournalEntry, JournalLine, SubscriptionPeriod

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "'", "\x00")
CSV_BLANKS = ("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
              "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""Copies of ``ledger.export.text``'s constants (the store imports no export module): the
characters ``csv_cell`` neutralises with a leading ``'`` at the start of a text cell, also
after leading blanks. The server-side CSV rows (`copy_csv_sql`) do the same
(tests/integration/test_export.py and test_csv_injection.py compare their bytes with the
Python writer's, and these constants with the export's)."""


def read_snapshot(session: Session) -> bool:
    """Make every later statement of ``session`` read one snapshot (`ledger.store.db.one_snapshot`)
    when no transaction is open; inside an open transaction the caller's transaction decides.
    True when this began the snapshot on PostgreSQL on a connection of the session's own
    (REPEATABLE READ, READ ONLY, nothing written: other connections may then share it, see
    `copy_csv_rows`)."""
    if session.in_transaction():
        return False
    one_snapshot(session)
    return is_postgres(session) and isinstance(session.get_bind(), sa.Engine)


def _range(q, start: date | None, end: date | None):
    if start is not None:
        q = q.where(JournalEntry.entry_date >= start)
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    return q


def journal_balances(session: Session, *, before: date | None = None, through: date | None = None) -> dict[tuple[str, str], int]:
    """Life-to-date balances from the database: {(account code, commodity): net int minor units,
    debit positive}, zero balances left out, over entries dated before ``before`` (exclusive)
    and/or through ``through`` (inclusive); both None: the whole journal."""
    q = (sa.select(JournalLine.account_code, JournalLine.commodity,
                   sa.func.sum(JournalLine.debit) - sa.func.sum(JournalLine.credit))
         .group_by(JournalLine.account_code, JournalLine.commodity))
    if before is not None or through is not None:  # every line has its entry (foreign key): no join without a date
        q = q.join(JournalEntry, keys.entry_lines(by_customer=is_citus(session)))
    if before is not None:
        q = q.where(JournalEntry.entry_date < before)
    if through is not None:
        q = q.where(JournalEntry.entry_date <= through)
    return {(code, commodity): int(net) for code, commodity, net in session.execute(q) if int(net) != 0}


def deferred_on_ledger(session: Session, through: date | None = None) -> dict[str, int]:
    """Deferred revenue on the ledger (2100 + 2150, credit - debit) per commodity, over entries
    dated through ``through`` (inclusive; None: the whole journal): int minor units (CREDIT
    lines, if any, under ``CREDIT``)."""
    q = (sa.select(JournalLine.commodity, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_(A.DEFERRED_ACCOUNTS)))
    if through is not None:
        q = q.where(JournalEntry.entry_date <= through)
    return {cur: int(v) for cur, v in session.execute(q.group_by(JournalLine.commodity))}


def deferred_fees(session: Session, through: date) -> list[tuple[str, str, date | None, int]]:
    """(customer_id, currency, service_end, amount) of every non-zero 2150 balance (platform fees
    not yet recognised) per invoice at ``through``; service_end: the billed subscription
    month's last day, None when no month has the invoice. amount: int minor units."""
    q = (sa.select(JournalLine.customer_id, JournalLine.commodity, JournalLine.invoice_number,
                   sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code == A.DEFERRED_SUBSCRIPTIONS, JournalEntry.entry_date <= through)
         .group_by(JournalLine.customer_id, JournalLine.commodity, JournalLine.invoice_number))
    balances = [(cid, cur, number, int(v)) for cid, cur, number, v in session.execute(q) if int(v)]
    ends = dict(session.execute(sa.select(SubscriptionPeriod.invoice_number, SubscriptionPeriod.service_end)).all()) if balances else {}
    return [(cid, cur, ends.get(number), amount) for cid, cur, number, amount in balances]


def chart(session: Session) -> list[tuple[str, str, str, str]]:
    """The chart of accounts: (code, name, type, normal balance) per account."""
    return [(a.code, a.name, a.type, a.normal_balance) for a in session.execute(sa.select(Account)).scalars()]


def customer_names(session: Session) -> dict[str, str]:
    """Every customer's name, by customer id."""
    return dict(session.execute(sa.select(Customer.id, Customer.name)).all())


def used_accounts(session: Session, start: date | None, end: date | None) -> tuple[list[tuple[str, str]], date | None]:
    """The (account code, commodity) pairs the lines of entries dated in [start, end] use,
    sorted, and the first entry date with lines in that range (None when none). Without a date
    bound the pairs are read from the lines alone (no join); the first date is the first entry
    with a line, found by walking the entries in date order."""
    by_customer = is_citus(session)
    pairs = sa.select(JournalLine.account_code, JournalLine.commodity).distinct()
    if start is not None or end is not None:
        pairs = _range(pairs.join(JournalEntry, keys.entry_lines(by_customer=by_customer)), start, end)
    has_line = sa.select(JournalLine.id).where(keys.entry_lines(by_customer=by_customer)).exists()
    first = _range(sa.select(JournalEntry.entry_date).where(has_line), start, end).order_by(JournalEntry.entry_date).limit(1)
    return sorted((a, c) for a, c in session.execute(pairs)), session.execute(first).scalar()


def journal_entries(session: Session, start: date | None = None, end: date | None = None,
                    *, chunk: int = 5000) -> Iterator[tuple[tuple, list[tuple]]]:
    """The journal entries dated in [start, end] (inclusive, None = open-ended), ordered by
    (entry_date, entry id), each as (head, lines): head = (entry id, entry_date, occurred_at,
    kind, description, customer_id, event_id, import_id); lines in id order, each (line id,
    account code, commodity, debit, credit, customer_id, grant_id, invoice_number, event_id),
    debit and credit int >= 0. Streamed in chunks of ``chunk`` rows."""
    e, ln = JournalEntry, JournalLine
    columns = (e.id, e.entry_date, e.occurred_at, e.kind, e.description, e.customer_id, e.event_id, e.import_id,
               ln.id, ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
               ln.invoice_number, ln.event_id)
    q = _range(sa.select(*columns).join(ln, keys.entry_lines(e, ln, by_customer=is_citus(session))), start, end)
    q = q.order_by(e.entry_date, e.id, ln.id)
    head: tuple | None = None
    lines: list[tuple] = []
    for row in session.connection().execute(q.execution_options(yield_per=chunk)):  # Core: no ORM row loading
        if head is None or row[0] != head[0]:
            if head is not None:
                yield head, lines
            head, lines = tuple(row[:8]), []
        lines.append((row[8], row[9], row[10], int(row[11]), int(row[12]), row[13], row[14], row[15], row[16]))
    if head is not None:
        yield head, lines


# --------------------------------------------------------------------------- CSV rows by the server
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
            JOIN journal_line l ON {keys.entry_lines_sql('e', 'l', by_customer=by_customer)}
            JOIN (VALUES {values}) AS x(c, m, e, cc) ON x.c = l.commodity
            LEFT JOIN (SELECT code, {text('code')} || ',' || {text('name')} || ',' AS cells FROM account) a
              ON a.code = l.account_code
            LEFT JOIN (SELECT id, {text('id')} || ',' || {text('name')} || ',' AS cells FROM customer) c
              ON c.id = l.customer_id AND l.customer_id <> ''
            LEFT JOIN (SELECT id, customer_id, {text('id')} || ',' AS cells FROM credit_grant) g
              ON {keys.line_grant_sql('l', 'g')}
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


def entries_by_date(session: Session, start: date | None, end: date | None) -> list[tuple[date, int]]:
    """(entry_date, number of entries) of every date with entries in [start, end] (inclusive,
    None = open), dates ascending."""
    q = _range(sa.select(JournalEntry.entry_date, sa.func.count()).group_by(JournalEntry.entry_date)
               .order_by(JournalEntry.entry_date), start, end)
    return [(day, int(n)) for day, n in session.execute(q)]


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


class _Part(threading.Thread):
    """A part of the rows copied on a connection of its own, in the snapshot ``snapshot``
    exported by the session's transaction, into a spooled temporary file (in memory up to
    64 MiB). ``connected`` tells whether the connection was made and the snapshot imported
    (``error`` before that: the caller copies the part itself)."""

    def __init__(self, engine: sa.Engine, snapshot: str, sql: str) -> None:
        super().__init__(name="ledger-export-copy", daemon=True)
        self.engine, self.snapshot, self.sql = engine, snapshot, sql
        self.spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        self.connected = False
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
                self.connected = True
                _copy_into(conn.connection.driver_connection, self.sql, self.spool)
                conn.rollback()
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


def copy_csv_rows(session: Session, out: BinaryIO, start: date | None, end: date | None,
                  commodities: Iterable[str], *, cuts: Sequence[date] = ()) -> list[int]:
    """PostgreSQL only: the rows ``write_csv`` writes (no header, no opening entry) for the
    entries dated in [start, end], byte for byte, made by the server and written to ``out`` in
    order. Returns the bytes written per part (a part: the entries dated after the previous
    cut, through the next; one part without ``cuts``).

    ``cuts``: dates ascending, within [start, end). The first part is copied on the session's
    connection and streamed to ``out``; each other part is copied at the same time on a
    connection of its own (`_Part`) that imports the session's snapshot (``SET TRANSACTION
    SNAPSHOT``), so every part reads what the session reads; the session's transaction must
    then be REPEATABLE READ and have written nothing (`read_snapshot` returning True). A part
    whose connection cannot be made is copied on the session's connection after the others
    before it. ``commodities``: every commodity the lines use (a line in another one is not
    exported, and the caller's tie-out check then fails). Raises ValueError as
    `copy_csv_sql`."""
    by_customer = is_citus(session)
    sqls = [copy_csv_sql(start, through, commodities, after=after, by_customer=by_customer)
            for after, through in zip([None, *cuts], [*cuts, end], strict=True)]
    if sqls[0] is None:
        return []
    conn = session.connection()
    raw = conn.connection.driver_connection
    parts: list[_Part] = []
    if len(sqls) > 1:
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        bind = session.get_bind()
        engine = bind if isinstance(bind, sa.Engine) else bind.engine
        parts = [_Part(engine, snapshot, sql) for sql in sqls[1:]]  # type: ignore[arg-type]  # (never None)
    try:
        sizes = [_copy_into(raw, sqls[0], out)]  # type: ignore[arg-type]
        for part, sql in zip(parts, sqls[1:], strict=True):
            part.join()
            sizes.append(part.drain(out) if part.connected else _copy_into(raw, sql, out))  # type: ignore[arg-type]
    finally:
        for part in parts:
            part.join()
            part.spool.close()
    return sizes
