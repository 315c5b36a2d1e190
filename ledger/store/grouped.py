"""Many usage events of many customers in one transaction and two round trips: the group commit
of the HTTP API (``ledger.services.serving``) when this process keeps every customer's book.

The general path (``import_events``) sends some twenty statements through SQLAlchemy for a group,
and reads and checks in the database what the serving process already knows; under load most of
a group's time is that client-side work. This path applies the group with the same accounting
core (one `ledger.core.posting.Posting` over the kept books: the same drawdown, time-driven steps,
entries and records, events in the same order), then:

1. one round trip outside any transaction: the import batch id and one journal entry id per
   entry, drawn from their sequences (a failed group leaves gaps, as a rolled-back INSERT does);
2. one pipeline: BEGIN; the posting gate (shared); the customers' rows locked in id order; the
   check, under the locks, of what the run in memory assumed (``ledger_expect``, migration 0008: every
   customer row still carries the token its kept book was written with, no event id is stored,
   the closed periods are the same); the batch row; every row of the posting, one statement per
   table (`ledger.store.writer.grouped_statements`, built before the pipeline); COMMIT.

If the check fails PostgreSQL raises SQLSTATE LX001 and skips the rest of the pipeline, so
nothing is written; the kept books are dropped and the caller takes the general path, which
derives them from the journal under the locks and reports duplicates and conflicts. The path
declines (returns None, nothing written) whenever the general path has something to say or to
write beyond usage: an unknown customer or one whose book is not kept, an id twice in the group,
usage before its customer was created, an unknown action, a step that writes a document or a
grant, Citus (one statement may not lock customers of several shards).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.core.book import CustomerBook
from ledger.core.posting import ImportSummary, Posting, apply_order
from ledger.events import SourcedEvent, UsageRecorded
from ledger.store import books as kept
from ledger.store.db import is_citus
from ledger.store.events import GATE_KEY
from ledger.store.pipeline import (
    ATTEMPTS,
    check_kept,
    closed_seen,
    general_path_reports,
    only_usage,
    remember_closed,
)
from ledger.store.reader import SessionStore
from ledger.store.writer import (
    ENTRY_SEQUENCE,
    INSERT_BATCH,
    Statement,
    check_drafts,
    grouped_statements,
    new_token,
    send_statements,
)

_IDS = ("SELECT nextval(pg_get_serial_sequence('import_batch', 'id')), "
        f"ARRAY(SELECT nextval(s.seq) FROM {ENTRY_SEQUENCE}, generate_series(1, %s))")
APPLYING = threading.Lock()
"""Held while a group is applied over the kept books and its statements built: one at a time in
a process, so that each builds on the books the previous one kept (see `post_usage_group`)."""
_CLOSED = "SELECT period FROM accounting_period WHERE status = 'closed' ORDER BY period"
_CHANGED = "LX001"
_GATE = f"SELECT pg_advisory_xact_lock_shared({GATE_KEY})"
# _LOCK_ROWS and _EXPECT look up a group's customers and event ids with ``= ANY(array)``. They are
# sent unprepared (psycopg's prepare=False), so the server plans them for the values of each group:
# a cached generic plan made while usage_event was small kept scanning it whole as it grew (6 ms a
# group at 10,000 rows, growing), comparing every row with every id, and the customer scan did the
# same; planned with the values, the array is hashed, and lookups in a large table use its key.
_LOCK_ROWS = "SELECT 1 FROM customer WHERE id = ANY(%b::varchar[]) ORDER BY id FOR UPDATE"
# after the locks, so with a snapshot that sees what was committed before them (READ COMMITTED)
_EXPECT = ("SELECT ledger_expect("
           "(SELECT count(*) FROM customer AS c JOIN unnest(%(customers)b::varchar[], %(tokens)b::bigint[])"
           " AS k(id, token) ON c.id = k.id AND c.book_version = k.token) = %(n)s"
           " AND NOT EXISTS (SELECT 1 FROM usage_event WHERE id = ANY(%(ids)b::varchar[]))"
           " AND NOT EXISTS (SELECT 1 FROM event WHERE id = ANY(%(ids)b::varchar[]))"
           " AND (SELECT coalesce(string_agg(period, ',' ORDER BY period), '') FROM accounting_period"
           " WHERE status = 'closed') = %(closed)s,"
           " 'the kept books, the event ids or the closed periods')")


def groupable(events: Sequence[SourcedEvent]) -> bool:
    """True when every event is a usage event and no id comes twice (what this path may take)."""
    return (all(isinstance(se.event, UsageRecorded) for se in events)
            and len({se.id for se in events}) == len(events))


def all_kept(db: str, events: Sequence[SourcedEvent]) -> bool:
    """True when this process keeps the book of every customer of ``events`` (usage events) for
    database ``db`` (its URL): a group of them may take this path."""
    return all(kept.BOOKS.token_of(db, se.event.customer_id) is not None for se in events)  # type: ignore[attr-defined]


def post_usage_group(session: Session, catalog: Catalog, events: Sequence[SourcedEvent],
                     sources: Sequence[str]) -> ImportSummary | None:
    """Post ``events`` (usage events, `groupable`) in one transaction and commit, as
    `import_events(session, catalog, events, sources=sources)` would; PostgreSQL only.

    Returns the summary, or None when this path declines or the database says an assumption
    changed (see the module docstring): nothing was written, and the books it took from the
    process's kept books are dropped. raises PeriodLockedError or UnbalancedEntryError as the
    writer does (nothing written), psycopg.Error when the connection broke.

    Groups are applied one at a time in a process (``APPLYING``), and each keeps its books under
    its new token as soon as its rows are built, before it commits: the next group (another
    committer thread) builds on them while this one is in the database. That is safe because a
    kept book is used only where the customer row, under its lock, carries its token: the next
    group's transaction waits for this one's locks, and finds this one's token only if it
    committed. A group that fails drops the books kept under its token."""
    if not events or is_citus(session):
        return None
    db = str(session.get_bind().url)
    pooled = session.get_bind().raw_connection()
    raw: psycopg.Connection = pooled.driver_connection  # type: ignore[assignment]
    # autocommit: psycopg sends no BEGIN of its own (a round trip); the pipeline sends it
    raw.autocommit = True
    try:
        with APPLYING:
            group = _apply(raw, session, catalog, events, sources, db)
        if group is None:
            return None
        return _send(raw, session, catalog, group, db)
    finally:
        if raw.broken:
            pooled.invalidate()  # not back into the pool
        else:
            if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raw.rollback()
            raw.autocommit = False
            pooled.close()


@dataclass
class _Group:
    """A group applied in memory and its statements, ready to send (`_send`)."""

    run: Posting
    statements: list[Statement]
    expect: dict
    customers: list[str]
    batch_id: int
    entries: int
    token: int


def _apply(raw: psycopg.Connection, session: Session, catalog: Catalog, events: Sequence[SourcedEvent],
           sources: Sequence[str], db: str) -> _Group | None:
    """Apply ``events`` over the kept books and build the group's statements; the books are kept
    again under the group's new token (see `post_usage_group`). None when the path declines."""
    closed = closed_seen(db)
    if closed is None:
        closed = [p for (p,) in raw.execute(_CLOSED).fetchall()]
        remember_closed(db, closed)
    books = _take_books(db, events, catalog)
    if books is None:
        return None
    run = Posting(catalog, SessionStore(session, catalog.tz, cache=kept.BOOKS, db=db), closed=closed)
    for _, book in books:
        run.adopt(book)
    for se in sorted(events, key=apply_order):
        run.apply(se)
    if session.in_transaction() or not only_usage(run, session):
        # the run read the database (an invoice number at a month end) or writes more than usage
        ATTEMPTS["group_declined"] += 1
        session.rollback()
        return None
    check_drafts(run.entries().drafts, closed)
    token = new_token()
    customers = [book.customer.id for _, book in books]
    (batch_id, entry_ids), = raw.execute(_IDS, (len(run.entries().drafts),)).fetchall()
    summary = run.summary
    statements = [(INSERT_BATCH, (batch_id, json.dumps(list(sources)), summary.posted, 0, summary.quarantined,
                                  summary.late)),
                  *grouped_statements(run, token, batch_id, entry_ids, sources)]
    expect = {"customers": customers, "tokens": [t for t, _ in books], "n": len(books),
              "ids": [se.id for se in events], "closed": ",".join(closed)}
    kept.BOOKS.put(db, token, run.books)
    return _Group(run, statements, expect, customers, batch_id, len(entry_ids), token)


def _take_books(db: str, events: Sequence[SourcedEvent], catalog: Catalog) -> list[tuple[int, CustomerBook]] | None:
    """(token, book) of every customer of ``events``, in id order, taken from the kept books;
    None (every book put back) when one is not kept or the general path would report an event."""
    taken: list[tuple[int, CustomerBook]] = []
    ok = True
    customers = sorted({se.event.customer_id for se in events})  # type: ignore[attr-defined]
    for cid in customers:
        token = kept.BOOKS.token_of(db, cid)
        book = kept.BOOKS.take(db, cid, token) if token is not None else None
        if book is None:
            ok = False
            break
        taken.append((token, book))
    if ok:
        by_id = {book.customer.id: book for _, book in taken}
        ok = not any(general_path_reports(se.event, by_id[se.event.customer_id].customer, catalog)  # type: ignore[attr-defined]
                     for se in events)
    if not ok:
        for token, book in taken:
            kept.BOOKS.put(db, token, {book.customer.id: book})
        ATTEMPTS["group_cold" if len(taken) < len(customers) else "group_declined"] += 1
        return None
    return taken


def _send(raw: psycopg.Connection, session: Session, catalog: Catalog, group: _Group, db: str) -> ImportSummary | None:
    """The pipeline of the module docstring on ``raw`` (autocommit, no transaction open); on a
    failure the books kept under the group's token are dropped."""
    failed: psycopg.Error | None = None
    with raw.cursor() as cur:
        try:
            with raw.pipeline():
                # an error read back while statements are still being sent is kept here, so that
                # leaving the pipeline (which then reports it as aborted) is not a second error
                try:
                    cur.execute("BEGIN")
                    cur.execute(_GATE)
                    cur.execute(_LOCK_ROWS, (group.customers,), prepare=False)
                    cur.execute(_EXPECT, group.expect, prepare=False)
                    send_statements(cur, group.statements)
                    cur.execute("COMMIT")
                except psycopg.Error as exc:
                    failed = exc
        except psycopg.Error as exc:
            failed = failed or exc
    if failed is not None:
        kept.BOOKS.drop(db, group.token, group.customers)
        if raw.broken:
            raise failed
        changed = failed.sqlstate == _CHANGED
        if changed:
            remember_closed(db, None)  # read again next time, in case a period was closed
        ATTEMPTS["group_changed" if changed else "group_error"] += 1
        return None
    ATTEMPTS["group_posted"] += 1
    if os.environ.get("LEDGER_CHECK_BOOK_CACHE") == "1":
        with APPLYING:  # no group builds on these books meanwhile; one that already has is checked after its own commit
            for customer in group.customers:
                book = kept.BOOKS.peek(db, customer, group.token)
                if book is not None:
                    check_kept(session, catalog, book, group.token)
    summary = group.run.summary
    summary.import_id = group.batch_id
    summary.entries = group.entries
    return summary
