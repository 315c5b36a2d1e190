"""Reads of the journal for the audit export (``ledger.export``) and the forecasts
(``ledger.forecast``): balances, the entries with their lines, the chart, customers' names, and
on PostgreSQL the CSV rows of an export made by the server (``COPY ... TO STDOUT``).

Every function takes a Session and returns plain values: tuples, dicts, int minor units of a
line's commodity (CREDIT: int units), ``entry_date`` dates (inclusive bounds, None = open).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date
from typing import BinaryIO

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.money import CREDIT, exponent
from ledger.store.db import one_snapshot
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


def read_snapshot(session: Session) -> None:
    """Make every later statement of ``session`` read one snapshot (`ledger.store.db.one_snapshot`)
    when no transaction is open; inside an open transaction the caller's transaction decides."""
    if not session.in_transaction():
        one_snapshot(session)


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
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .group_by(JournalLine.account_code, JournalLine.commodity))
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
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
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
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
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


def used_accounts(session: Session, start: date | None, end: date | None) -> list[tuple[str, str, date]]:
    """(account code, commodity, first entry date) of every pair the lines of entries dated in
    [start, end] use."""
    q = _range(sa.select(JournalLine.account_code, JournalLine.commodity, sa.func.min(JournalEntry.entry_date))
               .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
               .group_by(JournalLine.account_code, JournalLine.commodity), start, end)
    return [tuple(row) for row in session.execute(q).all()]  # type: ignore[misc]


def journal_entries(session: Session, start: date | None = None, end: date | None = None,
                    *, chunk: int = 5000) -> Iterator[tuple[tuple, list[tuple]]]:
    """The journal entries dated in [start, end] (inclusive, None = open-ended), ordered by
    (entry_date, entry id), each as (head, lines): head = (entry id, entry_date, occurred_at,
    kind, description, customer_id, event_id, import_id); lines in id order, each (line id,
    account code, commodity, debit, credit, customer_id, grant_id, invoice_number, event_id),
    debit and credit int >= 0. Streamed in chunks of ``chunk`` rows."""
    e, ln = JournalEntry, JournalLine
    q = _range(sa.select(e.id, e.entry_date, e.occurred_at, e.kind, e.description, e.customer_id, e.event_id,
                         e.import_id, ln.id, ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id,
                         ln.grant_id, ln.invoice_number, ln.event_id)
               .join(ln, ln.entry_id == e.id), start, end).order_by(e.entry_date, e.id, ln.id)
    head: tuple | None = None
    lines: list[tuple] = []
    for row in session.execute(q.execution_options(yield_per=chunk)):
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


def _sql_text(expr: str) -> str:
    """SQL for the CSV field ``write_csv`` writes for a text cell: ``csv_cell``, then quoted as
    ``csv_line`` quotes (a comma, double quote, CR or LF inside); NULL and '' give an empty
    field."""
    cell = f"CASE WHEN {expr} ~ {_SQL_FORMULA} THEN '''' || {expr} ELSE {expr} END"
    quoted = f"'\"' || replace({cell}, '\"', '\"\"') || '\"'"  # csv_cell adds no comma, quote, CR or LF
    return f"coalesce(CASE WHEN {expr} ~ '[,\"\\r\\n]' THEN {quoted} ELSE {cell} END, '')"


def _sql_major(expr: str) -> str:
    """SQL for ``major(expr, commodity)`` of an amount >= 0, given the joined exponent row ``x``
    (x.m: the numeric 10 ** -decimals, written with that many decimals: 1, 0.01, 0.001)."""
    return f"({expr}::numeric * x.m)::text"  # exact: a product's scale is the sum of the scales


def _sql_iso(expr: str) -> str:
    """SQL for ``_iso(expr)``: UTC, RFC 3339, a fraction only when not zero, then ``Z``."""
    utc = f"({expr} AT TIME ZONE 'UTC')"
    return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {utc}) = {utc} "
            f"THEN '' ELSE to_char({utc}, '.US') END || 'Z'")


def _unit(commodity: str) -> str:
    """One minor unit of ``commodity`` in major units, as ``major(1, commodity)`` writes it:
    "1" (CREDIT, JPY), "0.01" (USD), "0.001" (KWD). Raises ValueError for an unknown commodity."""
    exp = 0 if commodity == CREDIT else exponent(commodity)
    return f"0.{'0' * (exp - 1)}1" if exp else "1"


def copy_csv_rows(session: Session, out: BinaryIO, start: date | None, end: date | None,
                  commodities: Iterable[str]) -> None:
    """PostgreSQL only: the rows ``write_csv`` writes (no header, no opening entry) for the
    entries dated in [start, end], byte for byte, made by the server and streamed to ``out``.

    The SQL formats every field as ``write_csv`` does (``csv_cell``, then quoted where Python's
    csv writer quotes; decimal and minor amounts as ``major``; dates; UTC instants; CRLF line
    ends) and joins an entry's lines into one value, which ``COPY (SELECT ...) TO STDOUT``
    sends as one message: its CSV mode with \\x01 as quote character wraps each value in \\x01
    (the value holds a line end) and doubles any \\x01 inside, which is undone here.
    ``commodities``: every commodity the lines use (a line in another one is not exported, and
    the caller's tie-out check then fails)."""
    sql = copy_csv_sql(start, end, commodities)
    if sql is None:
        return
    # compiling these expressions costs more than it saves; the sorts (about 50 MB a process at
    # 450,000 lines) in memory, not in files (4 MB by default)
    session.execute(sa.text("SET LOCAL jit = off"))
    session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    raw = session.connection().connection.driver_connection
    batch: list[bytes] = []

    def flush() -> None:
        data = b"".join(batch).replace(b"\x01\x01", b"\x01")
        out.write(data)
        batch.clear()

    with raw.cursor() as cur, cur.copy(sql) as copy:
        for message in copy:  # one entry: \x01 + its lines + \x01 + LF
            batch.append(bytes(message[1:-2]))
            if len(batch) >= 4096:
                flush()
    flush()


def copy_csv_sql(start: date | None, end: date | None, commodities: Iterable[str]) -> str | None:
    """The ``COPY (SELECT ...) TO STDOUT`` statement of `copy_csv_rows`; None when there are no
    commodities (nothing to export). Raises ValueError for an unknown commodity or a code that
    is not [A-Z0-9]+ (it is written into the SQL; ``ledger.export`` refuses both before)."""
    units = sorted({(c, _unit(c)) for c in commodities})
    if not units:
        return None
    bad = [c for c, _ in units if not re.fullmatch(r"[A-Z0-9]+", c)]
    if bad:
        raise ValueError(f"unexpected commodity code(s) in the journal: {bad}")
    values = ", ".join(f"('{c}', {unit}::numeric)" for c, unit in units)
    where = []
    if start is not None:
        where.append(f"entry_date >= DATE '{start.isoformat()}'")
    if end is not None:
        where.append(f"entry_date <= DATE '{end.isoformat()}'")
    return _copy_select("WHERE " + " AND ".join(where) if where else "", values)


def _copy_select(where: str, values: str) -> str:
    """The COPY statement of `copy_csv_sql`: ``where`` filters journal_entry (or is empty),
    ``values`` lists (commodity, one minor unit in major units) rows.

    Each line is formatted by the parallel workers in the join's projection (PostgreSQL pulls
    the subqueries up, so the entry's fields too are formatted once per line; PostgreSQL 15
    cannot aggregate string_agg in the workers, so formatting them once per entry would make
    the leader do all the work, measured slower). The cells of accounts, customers and grants
    are taken from the joined rows; a value not among them is formatted from the line's own.
    concat_ws skips NULLs, so every field it joins is a non-NULL text (a line without a
    customer gives an empty field, as in write_csv)."""
    text = _sql_text
    sql = f"""
        COPY (
          SELECT string_agg(line, '' ORDER BY line_id) FROM (
            SELECT e.entry_date, e.id, l.id AS line_id,
                   concat_ws(',', e.head, l.id, coalesce(a.code_f, {text('l.account_code')}), coalesce(a.name_f, ''), x.c,
                             {_sql_major('l.debit')}, {_sql_major('l.credit')}, l.debit, l.credit,
                             CASE WHEN c.id IS NULL THEN {text('l.customer_id')} ELSE c.id_f END, coalesce(c.name_f, ''),
                             CASE WHEN g.id IS NULL THEN {text('l.grant_id')} ELSE g.id_f END,
                             {text('l.invoice_number')}, {text('l.event_id')}) || E'\\r\\n' AS line
            FROM (SELECT id, entry_date,
                         concat_ws(',', id, to_char(entry_date, 'YYYY-MM-DD'), {_sql_iso('occurred_at')},
                                   {text('kind')}, {text('event_id')}, coalesce(import_id::text, ''),
                                   {text('description')}) AS head
                  FROM journal_entry {where}) e
            JOIN journal_line l ON l.entry_id = e.id
            JOIN (VALUES {values}) AS x(c, m) ON x.c = l.commodity
            LEFT JOIN (SELECT code, {text('code')} AS code_f, {text('name')} AS name_f FROM account) a
              ON a.code = l.account_code
            LEFT JOIN (SELECT id, {text('id')} AS id_f, {text('name')} AS name_f FROM customer) c
              ON c.id = l.customer_id AND l.customer_id <> ''
            LEFT JOIN (SELECT id, {text('id')} AS id_f FROM credit_grant) g
              ON g.id = l.grant_id
            ORDER BY e.entry_date, e.id, l.id
          ) lines
          GROUP BY entry_date, id
          ORDER BY entry_date, id
        ) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"""
    return sql
