"""One usage event in one transaction with one round trip (or two, and COMMIT): the PostgreSQL
path of `ledger.api.Ledger.record_usage`.

The general path (``import_events``) sends about ten statements through SQLAlchemy for one usage
event, and with two workers on two cores most of a call's time is that client-side work per
statement, not PostgreSQL's. This path applies the event with the same accounting core (a
`ledger.core.posting.Posting`: the same drawdown, time-driven steps, entries and records) and
sends the rows through the writer's pipelined strategy (`ledger.store.writer.send_posting`).

**One round trip** (`_post_kept`), when this process keeps the customer's book from an earlier
call (`ledger.store.books.BOOKS`) and knows the closed periods:

1. in memory: the event applied to the kept book, the entries checked (balanced, open period)
   as the writer checks them;
2. one pipeline: BEGIN; lock the customer row (``SELECT ... FOR UPDATE``); check under the lock
   what step 1 assumed (``ledger_expect``, migration 0008: the row still carries the token the
   kept book was written with, so nobody else has written for the customer since; the event id
   is stored in neither event table; the closed periods are the same); every row; COMMIT.

If the check fails, PostgreSQL raises SQLSTATE LX001 and skips the rest of the pipeline, so
nothing is written; the kept book is dropped and the call takes the two-round-trip path below,
which derives the book from the journal under the lock. So a kept book is only ever used for a
write after the database has confirmed, under the customer's lock, that it is the journal's.

**Two round trips** (`_post`), otherwise:

1. one round trip: lock the customer row (as `ledger.store.events.lock_customers` does), look
   the event id up in ``usage_event`` and ``event``, read the closed periods and draw the import
   batch id;
2. in memory: the customer's book (kept while the row still carries the token of the posting
   that kept it, derived from the journal otherwise), the event applied to it, the entries
   checked;
3. one round trip with every row, then COMMIT.

When the event's time-driven steps write more than usage (an overage invoice at a month end, a
rollover grant: `Posting.writes_only_usage` is false), the posting is written by the writer's
session strategy (`write_posting`) in the same transaction (on the one-round-trip path: the call
goes to the two-round-trip path first). The path declines (returns None; rolled back, nothing
written) when the general path has a problem to report: an unknown customer, usage before the
customer was created, an unknown action; the caller then takes the general path.
tests/integration/test_direct.py posts the same calls both ways and compares the books.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.core.book import CustomerBook
from ledger.core.posting import ImportSummary, Posting
from ledger.errors import InvalidInputError
from ledger.events import SourcedEvent, UsageRecorded
from ledger.store.models import Customer
from ledger.store import books as kept
from ledger.store import usage_rows
from ledger.store.books import check_kept_book
from ledger.store.reader import SessionStore
from ledger.store.writer import (
    BATCH_JUST_INSERTED,
    INSERT_BATCH,
    INSERT_BATCH_FROM_SEQUENCE,
    check_drafts,
    new_token,
    send_posting,
    write_posting,
)
from ledger.core.checks import stored_conflict

_CUSTOMER_COLUMNS = tuple(c.name for c in Customer.__table__.columns)
_LOCK = f"SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM customer WHERE id = %s FOR UPDATE"
# a later table wins in ledger.store.events.existing_events (usage_event after event); ids are unique across both
_STORED_EVENT = "SELECT content_hash, source FROM event WHERE id = %(id)s"
# a usage row's hash and source come from its fields (`ledger.store.usage_rows.stored_facts`)
_STORED_USAGE = (f"SELECT {', '.join('u.' + f for f in usage_rows.FIELDS)}, u.import_id, u.file_index, u.line, k.source"
                 " FROM usage_event u LEFT JOIN usage_source k ON k.customer_id = u.customer_id AND k.id = u.id"
                 " WHERE u.id = %(id)s")
_CLOSED = "SELECT period FROM accounting_period WHERE status = 'closed' ORDER BY period"
_BATCH_ID = "SELECT nextval(pg_get_serial_sequence('import_batch', 'id'))"
_LOCK_ROW = "SELECT 1 FROM customer WHERE id = %s FOR UPDATE"
# Run after _LOCK_ROW, so under the customer's lock and with a snapshot taken after it (READ
# COMMITTED: one per statement). ledger_expect (migration 0008) raises SQLSTATE LX001 unless
# every assumption of the kept run still holds; NULL (no such customer) counts as false.
_EXPECT = ("SELECT ledger_expect("
           "(SELECT book_version FROM customer WHERE id = %(customer)s) = %(token)s"
           # SELECT 1, not an empty target list: Citus plans these subqueries on their own
           " AND NOT EXISTS (SELECT 1 FROM usage_event WHERE id = %(id)s)"
           " AND NOT EXISTS (SELECT 1 FROM event WHERE id = %(id)s)"
           " AND (SELECT coalesce(string_agg(period, ',' ORDER BY period), '') FROM accounting_period"
           " WHERE status = 'closed') = %(closed)s,"
           " 'the kept book, the event id or the closed periods')")
_CHANGED = "LX001"


def closed_seen(db: str) -> list[str] | None:
    """The closed periods of database ``db`` (its URL) as this process last read them, None when
    it has not (or forgot them after a check under the lock found them changed)."""
    return _CLOSED_SEEN.get(db)


def remember_closed(db: str, closed: list[str] | None) -> None:
    """Note the closed periods of ``db`` as just read (None: forget them)."""
    if closed is None:
        _CLOSED_SEEN.pop(db, None)
    else:
        _CLOSED_SEEN[db] = closed


def _utc(value: Any) -> Any:
    """A timestamptz as `models.UTCDateTime` gives it back: in UTC."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


# what the one-round-trip path did, per process (for tests and benchmarks): "posted" in one round
# trip, or handed to the two-round-trip path because the database said an assumption had changed
# ("changed"), another database error ("error"), or the run wrote more than usage ("not_usage")
ATTEMPTS: Counter[str] = Counter()
# the closed periods each database had when this process last read them (the kept path's guess,
# checked under the lock by _EXPECT)
_CLOSED_SEEN: dict[str, list[str]] = {}


def post_usage(session: Session, catalog: Catalog, se: SourcedEvent, sources: Sequence[str]) -> ImportSummary | None:
    """Post one parsed ``usage.recorded`` event in the session's transaction and commit, as
    `import_events(session, catalog, [se], sources=sources)` would; PostgreSQL only.

    Returns the summary, or None when this path declines (see the module docstring): then the
    transaction has been rolled back and nothing was written. raises InvalidInputError when the
    id is already stored with other content (nothing written), PeriodLockedError or
    UnbalancedEntryError as the writer does, sqlalchemy.exc.DBAPIError (IntegrityError, ...)
    for what the database refuses; the transaction is rolled back on every error.
    """
    ev = se.event
    if not isinstance(ev, UsageRecorded):
        raise TypeError(f"post_usage takes a usage.recorded event, not {ev.type}")  # type: ignore[attr-defined]
    sources = list(sources)
    try:
        summary = _post_kept(session, catalog, se, ev, sources)
        if summary is None:
            raw: psycopg.Connection = session.connection().connection.driver_connection  # type: ignore[assignment]
            summary = _post(session, raw, catalog, se, ev, sources)
    except psycopg.Error as exc:
        session.rollback()
        raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error) from exc
    except BaseException:
        session.rollback()
        raise
    if summary is None:
        session.rollback()
    return summary


def _post_kept(session: Session, catalog: Catalog, se: SourcedEvent, ev: UsageRecorded,
               sources: list[str]) -> ImportSummary | None:
    """The event in one round trip, when this process keeps the customer's book (put there by this
    path, so that its customer row is a plain object) and knows the closed periods: the run
    applies the event to the kept book first, then one pipeline locks the customer, checks the
    assumptions (`_EXPECT`), writes every row and commits. Returns None, with nothing written and
    the session rolled back, when it does not apply or an assumption failed (the kept book is then
    dropped): the caller takes `_post`."""
    db = str(session.get_bind().url)
    closed = _CLOSED_SEEN.get(db)
    token = kept.BOOKS.token_of(db, ev.customer_id)
    if closed is None or token is None:
        return None
    book = kept.BOOKS.take(db, ev.customer_id, token)
    if book is None:
        return None
    if general_path_reports(ev, book.customer, catalog):  # through `_post`
        kept.BOOKS.put(db, token, {ev.customer_id: book})
        return None
    run = Posting(catalog, SessionStore(session, catalog.tz, cache=kept.BOOKS, db=db), closed=closed)
    run.adopt(book)
    run.apply(se)
    if session.in_transaction():
        # the run used the database (it took an invoice number at a month end, ...): not under
        # the customer's lock, so `_post` does it again under it
        ATTEMPTS["read"] += 1
        session.rollback()
        return None
    if not only_usage(run, session):
        ATTEMPTS["not_usage"] += 1
        session.rollback()
        return None
    token_now = _checked_drafts(run, closed)
    # a connection of the engine's pool, not the session's: the session never starts a
    # transaction here (nothing for SQLAlchemy to begin, commit or roll back)
    pooled = session.get_bind().raw_connection()
    try:
        return _send_kept(pooled.driver_connection, session, catalog, se, sources, run, token, token_now, closed, db)
    finally:
        if pooled.driver_connection.broken:
            pooled.invalidate()  # not back into the pool
        else:
            pooled.close()


def _send_kept(raw: psycopg.Connection, session: Session, catalog: Catalog, se: SourcedEvent, sources: list[str],
               run: Posting, token: int, new_token: int, closed: list[str], db: str) -> ImportSummary | None:
    """The pipeline of `_post_kept` on ``raw`` (a pooled connection, no transaction open)."""
    (book,) = run.books.values()
    customer = book.customer
    summary = run.summary
    # psycopg starts a transaction with BEGIN and a pipeline sync of its own: a round trip. In
    # autocommit mode it sends nothing itself, and BEGIN goes in the pipeline with the rest.
    raw.autocommit = True
    failed: psycopg.Error | None = None
    with raw.cursor() as cur, raw.cursor() as batch:
        try:
            with raw.pipeline():
                # an error read back while statements are still being sent is kept here, so
                # that leaving the pipeline (which then reports it as aborted) is not an error
                # raised while handling another, which psycopg logs as "error ignored"
                try:
                    cur.execute("BEGIN")
                    cur.execute(_LOCK_ROW, (customer.id,))
                    cur.execute(_EXPECT, {"customer": customer.id, "token": token, "id": se.id,
                                          "closed": ",".join(closed)})
                    batch.execute(INSERT_BATCH_FROM_SEQUENCE,
                                  (_sources(sources), summary.posted, 0, summary.quarantined, summary.late))
                    send_posting(cur, run, book.steps_through, new_token, BATCH_JUST_INSERTED, sources)
                    cur.execute("COMMIT")
                except psycopg.Error as exc:
                    failed = exc
        except psycopg.Error as exc:
            failed = failed or exc
        finally:  # the pooled connection goes back as SQLAlchemy left it, whatever happened
            if not raw.broken:
                if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    raw.rollback()
                raw.autocommit = False
        if failed is not None:
            if raw.broken:
                raise failed
            ATTEMPTS["changed" if failed.sqlstate == _CHANGED else "error"] += 1
            return None
        (import_id,) = batch.fetchone()  # type: ignore[misc]
    ATTEMPTS["posted"] += 1
    if os.environ.get("LEDGER_CHECK_BOOK_CACHE") == "1":
        check_kept(session, catalog, book, new_token)
    kept.BOOKS.put(db, new_token, run.books)
    summary.import_id = import_id
    summary.entries = len(run.entries().drafts)
    return summary


def check_kept(session: Session, catalog: Catalog, book: CustomerBook, token: int) -> None:
    """LEDGER_CHECK_BOOK_CACHE=1 (the test suite): the book this path keeps must be the journal's,
    checked under the customer's lock unless another writer has moved the customer on since."""
    with Session(session.get_bind()) as check:
        current = check.execute(sa.text("SELECT book_version FROM customer WHERE id = :c FOR UPDATE"),
                                {"c": book.customer.id}).scalar_one()
        if current == token:
            check_kept_book(check, book, catalog.tz)
        check.rollback()


def _post(session: Session, raw: psycopg.Connection, catalog: Catalog, se: SourcedEvent, ev: UsageRecorded,
          sources: list[str]) -> ImportSummary | None:
    with raw.pipeline():
        lock = raw.execute(_LOCK, (ev.customer_id,))
        stored = raw.execute(_STORED_EVENT, {"id": se.id})
        stored_usage = raw.execute(_STORED_USAGE, {"id": se.id})
        closed_rows = raw.execute(_CLOSED)
        batch = raw.execute(_BATCH_ID)
    row = lock.fetchone()
    prior = stored.fetchone()
    usage_row = stored_usage.fetchone()
    closed = [p for (p,) in closed_rows.fetchall()]
    (batch_id,) = batch.fetchone()  # type: ignore[misc]
    db = str(session.get_bind().url)
    _CLOSED_SEEN[db] = closed
    if usage_row is not None:
        (prior,) = usage_rows.stored_facts(session, [usage_row])
    if prior is not None:
        stored_hash, stored_source = prior
        if stored_hash != se.content_hash:
            raise InvalidInputError([stored_conflict(se, stored_hash, stored_source)])
        with raw.pipeline():  # an identical re-post: counted as a duplicate, as the general path does
            raw.execute(INSERT_BATCH, (batch_id, _sources(sources), 0, 1, 0, 0))
        session.commit()
        return ImportSummary(import_id=batch_id, duplicates=1)
    if row is None:
        return None  # unknown customer: the general path reports it
    customer = Customer(**{c: _utc(v) for c, v in zip(_CUSTOMER_COLUMNS, row)})
    if general_path_reports(ev, customer, catalog):
        return None

    run = Posting(catalog, SessionStore(session, catalog.tz, given=[customer], cache=kept.BOOKS, db=db),
                  closed=closed, import_id=batch_id)
    run.preload([customer.id])  # the kept book, or the journal's (then kept after COMMIT)
    run.apply(se)
    summary = run.summary
    batch_row = (batch_id, _sources(sources), summary.posted, 0, summary.quarantined, summary.late)
    if not only_usage(run, session):
        # a time-driven step wrote more than usage (an overage invoice, a rollover grant, ...):
        # the run's own finish writes it all, as on the general path
        raw.execute(INSERT_BATCH, batch_row)
        token = write_posting(session, run)
        session.commit()
        kept.BOOKS.put(db, token, run.books)
        return summary
    token = _checked_drafts(run, closed)
    with raw.pipeline(), raw.cursor() as cur:
        cur.execute(INSERT_BATCH, batch_row)
        send_posting(cur, run, run.books[customer.id].steps_through, token, {}, sources)
    session.commit()
    kept.BOOKS.put(db, token, run.books)
    summary.entries = len(run.entries().drafts)
    return summary


def general_path_reports(ev: UsageRecorded, customer: Customer, catalog: Catalog) -> bool:
    """True when the general path refuses the event with a problem to report (usage before the
    customer was created, an action the rate card lacks): this path then declines it."""
    return ev.occurred_at < customer.created_at or (ev.action is not None and ev.action not in catalog.model.rate_card)


def only_usage(run: Posting, session: Session) -> bool:
    """True when the run writes nothing but what `send_posting` sends: `Posting.writes_only_usage`,
    and nothing added to, changed in or deleted from the session."""
    return run.writes_only_usage() and not (session.new or session.dirty or session.deleted)


def _checked_drafts(run: Posting, closed: list[str]) -> int:
    """Build the run's entries and check every one as the writer does (balanced, not in a
    ``closed`` period: raises UnbalancedEntryError, PeriodLockedError); returns the book
    version token the run writes."""
    check_drafts(run.entries().drafts, closed)
    return new_token()


def _sources(sources: list[str]) -> str:
    """import_batch.sources: the JSON list the general path writes (`import_events`)."""
    return json.dumps(sources)
