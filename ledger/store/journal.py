"""Reads of the journal for the audit export (``ledger.export``) and the forecasts
(``ledger.forecast``): balances, the entries with their lines, the chart, customers' names, and
on PostgreSQL the CSV rows of an export made by the server (``COPY ... TO STDOUT``, built by
`ledger.store.csv_rows`). The reads an export makes before its rows run the SQL text of
`ledger.store.journal_sql`, which `ledger.store.pg.Snapshot` runs too.

The export's reads show the journal as stored: off Citus an entry's lines are those naming it,
whatever customer they name (`ledger.store.keys`, the reads as stored); the forecasts' join by
(customer, entry id).

Every function takes a Session and returns plain values: tuples, dicts, int minor units of a
line's commodity (CREDIT: int units), ``entry_date`` dates (inclusive bounds, None = open).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.store import journal_sql as S
from ledger.store import keys
from ledger.store.csv_rows import (  # noqa: F401 - SAFE_LEAD, _Part, _sql_text: also given here (tests)
    CSV_BLANKS,
    CSV_TRIGGERS,
    SAFE_LEAD,
    SnapshotConnect,
    _Part,
    _sql_text,
    copy_csv_sql,
    copy_parts,
)
from ledger.store.db import is_citus, is_postgres, one_snapshot
from ledger.store.models import JournalEntry, JournalLine, SubscriptionPeriod


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


def _read(session: Session, read: S.Read, **types: Any) -> sa.Result:
    """The rows of a `ledger.store.journal_sql` read on ``session``: its parameters bound with
    the types of their values, the columns named in ``types`` read as those types (dates come
    back as dates on SQLite too)."""
    sql, params = read
    text = sa.text(S.colon_binds(sql)).bindparams(**params)
    return session.execute(text.columns(**types) if types else text)


def _range(q, start: date | None, end: date | None):
    if start is not None:
        q = q.where(JournalEntry.entry_date >= start)
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    return q


def journal_balances(session: Session, *, before: date | None = None, through: date | None = None,
                     zeros: bool = False) -> dict[tuple[str, str], int]:
    """Life-to-date balances from the database: {(account code, commodity): net int minor units,
    debit positive}, zero balances left out (kept with ``zeros``: then every pair some line
    uses), over entries dated before ``before`` (exclusive) and/or through ``through``
    (inclusive); both None: the whole journal."""
    rows = _read(session, S.journal_balances_sql(before=before, through=through, by_customer=is_citus(session)))
    return {(code, commodity): int(net) for code, commodity, net in rows if zeros or int(net) != 0}


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
    return [tuple(row) for row in _read(session, (S.CHART, {}))]  # type: ignore[misc]


def customer_names(session: Session) -> dict[str, str]:
    """Every customer's name, by customer id."""
    return dict(_read(session, (S.CUSTOMER_NAMES, {})).all())  # type: ignore[arg-type]


def used_accounts(session: Session, start: date | None, end: date | None) -> tuple[list[tuple[str, str]], date | None]:
    """The (account code, commodity) pairs the lines of entries dated in [start, end] use,
    sorted, and the first entry date with lines in that range (None when none). Without a date
    bound the pairs are read from the lines alone (no join); the first date is the first entry
    with a line, found by walking the entries in date order."""
    pairs = _read(session, S.used_accounts_sql(start, end, by_customer=is_citus(session)))
    return sorted((a, c) for a, c in pairs), first_entry_date(session, start, end)


def first_entry_date(session: Session, start: date | None, end: date | None) -> date | None:
    """The first entry date with lines in [start, end] (inclusive, None = open), found by walking
    the entries in date order; None when there is none."""
    return _read(session, S.first_entry_date_sql(start, end, by_customer=is_citus(session)), entry_date=sa.Date).scalar()


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


def entries_by_date(session: Session, start: date | None, end: date | None) -> list[tuple[date, int]]:
    """(entry_date, number of entries) of every date with entries in [start, end] (inclusive,
    None = open), dates ascending."""
    rows = _read(session, S.entries_by_date_sql(start, end), entry_date=sa.Date)
    return [(day, int(n)) for day, n in rows]



def _snapshot_connection(engine: sa.Engine) -> SnapshotConnect:
    """`ledger.store.csv_rows.SnapshotConnect` on a connection of ``engine``'s pool: REPEATABLE
    READ, READ ONLY for that one transaction (the pool's connection is handed back as it was)."""
    @contextlib.contextmanager
    def connect(snapshot: str) -> Iterator[Any]:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            yield conn.connection.driver_connection
            conn.rollback()

    return connect


def copy_csv_rows(session: Session, out: BinaryIO, start: date | None, end: date | None,
                  commodities: Iterable[str], *, cuts: Sequence[date] = ()) -> list[int]:
    """PostgreSQL only: the rows ``write_csv`` writes (no header, no opening entry) for the
    entries dated in [start, end], byte for byte, made by the server and written to ``out`` in
    order. Returns the bytes written per part (a part: the entries dated after the previous
    cut, through the next; one part without ``cuts``).

    ``cuts``: dates ascending, within [start, end). The first part is copied on the session's
    connection and streamed to ``out``; each other part is copied at the same time on a
    connection of its own that imports the session's snapshot
    (`ledger.store.csv_rows.copy_parts`), so every part reads what the session reads; the
    session's transaction must then be REPEATABLE READ and have written nothing
    (`read_snapshot` returning True). ``commodities``: every commodity the lines use (a line in
    another one is not exported, and the caller's tie-out check then fails). Raises ValueError
    as `copy_csv_sql`."""
    by_customer = is_citus(session)
    sqls = [copy_csv_sql(start, through, commodities, after=after, by_customer=by_customer)
            for after, through in zip([None, *cuts], [*cuts, end], strict=True)]
    if sqls[0] is None:
        return []
    bind = session.get_bind()
    engine = bind if isinstance(bind, sa.Engine) else bind.engine
    raw = session.connection().connection.driver_connection
    return copy_parts(raw, _snapshot_connection(engine), out, sqls)  # type: ignore[arg-type]  # (never None)
