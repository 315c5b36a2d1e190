"""One usage event in one transaction with two round trips and COMMIT: the PostgreSQL write path of
`ledger.api.Ledger.record_usage` (issue 6, B3).

The general path (`engine.import_events`) sends about ten statements through SQLAlchemy for one
usage event, and with two workers on two cores most of a call's time is that client-side work
per statement, not PostgreSQL's. This path applies the event with the same `engine.Run` (the
same drawdown, time-driven steps, entries and rows) and talks to PostgreSQL through psycopg's
pipeline mode instead:

1. one round trip: lock the customer row (``SELECT ... FOR UPDATE``, as `validation.lock_customers`
   does), look the event id up in ``usage_event`` and ``event``, read the closed periods and
   draw the import batch id;
2. in memory: the customer's book (kept by `engine.BOOKS` while the row still carries the token
   of the run that kept it, derived from the journal otherwise), the event applied to it, the
   entry drafts checked (balanced, open period) as `posting.post` checks them;
3. one round trip with every row (the import batch, the customer's ``steps_through`` and
   ``book_version``, entries, lines, the usage row, its draws or its quarantine row), then
   COMMIT. The lines and usage rows of each entry follow it and name it by ``currval`` of the
   entry sequence. The database's triggers (closed periods, entries
   without lines) fire as on the general path.

When the event's time-driven steps write more than usage (an overage invoice at a month end, a
rollover grant: `Run.writes_only_usage` is false), the run completes through `Run.finish`, the
general path's writer, in the same transaction. The path declines (returns None; rolled back,
nothing written) when the general path has a problem to report: an unknown customer, usage
before the customer was created, an unknown action; the caller then takes the general path.
tests/test_direct.py posts the same calls both ways and compares the books.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlmodel import Session

from ledger import engine
from ledger.catalog import Catalog
from ledger.engine import ImportSummary, Run
from ledger.errors import InvalidInputError
from ledger.events import SourcedEvent, UsageRecorded
from ledger.models import (
    Customer,
    ImportBatch,
    JournalEntry,
    JournalLine,
    Quarantine,
    UsageDraw,
    UsageEvent,
)
from ledger.posting import ENTRY_COLUMNS, LINE_COLUMNS, check_draft, line_values
from ledger.validation import stored_conflict

_CUSTOMER_COLUMNS = tuple(c.name for c in Customer.__table__.columns)
_LOCK = f"SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM customer WHERE id = %s FOR UPDATE"
# a later table wins in validation.existing_events (usage_event after event); ids are unique across both
_STORED = ("SELECT content_hash, source FROM usage_event WHERE id = %(id)s "
           "UNION ALL SELECT content_hash, source FROM event WHERE id = %(id)s")
_CLOSED = "SELECT period FROM accounting_period WHERE status = 'closed' ORDER BY period"
_BATCH_ID = "SELECT nextval(pg_get_serial_sequence('import_batch', 'id'))"
_CURSOR = "UPDATE customer SET steps_through = %s, book_version = %s WHERE id = %s"
_BATCH_COLUMNS = ("id", "sources", "posted", "duplicates", "quarantined", "late")
_QUARANTINE_COLUMNS = tuple(c.name for c in Quarantine.__table__.columns)
_DRAW_COLUMNS = ("usage_event_id", "grant_id", "customer_id", "units")


def _insert(table: sa.Table, columns: Sequence[str], sql: dict[str, str] | None = None) -> str:
    """INSERT of one row of ``columns``: a parameter each, or the SQL expression ``sql[column]``."""
    values = ", ".join((sql or {}).get(c, "%s") for c in columns)
    return f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({values})'


# Each entry takes its id from the sequence as it is inserted; its lines and usage rows, sent
# right after it in the same pipeline, name it with currval: this connection's last value of
# the sequence (no round trip to draw the ids first). Entries get their ids in draft order, as
# `posting.post` gives them.
_ENTRY_JUST_INSERTED = {"entry_id": "currval(pg_get_serial_sequence('journal_entry', 'id'))"}
_INSERT_ENTRY_FROM_SEQUENCE = _insert(JournalEntry.__table__, ENTRY_COLUMNS)
_INSERT_LINE_OF_IT = _insert(JournalLine.__table__, LINE_COLUMNS, _ENTRY_JUST_INSERTED)


_INSERT_BATCH = _insert(ImportBatch.__table__, _BATCH_COLUMNS)
_INSERT_DRAW = _insert(UsageDraw.__table__, _DRAW_COLUMNS)
_INSERT_QUARANTINE = _insert(Quarantine.__table__, _QUARANTINE_COLUMNS)


def _utc(value: Any) -> Any:
    """A timestamptz as `models.UTCDateTime` gives it back: in UTC."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def post_usage(session: Session, catalog: Catalog, se: SourcedEvent, sources: Sequence[str]) -> ImportSummary | None:
    """Post one parsed ``usage.recorded`` event in the session's transaction and commit, as
    `engine.import_events(session, catalog, [se], sources=sources)` would; PostgreSQL only.

    Returns the summary, or None when this path declines (see the module docstring): then the
    transaction has been rolled back and nothing was written. raises InvalidInputError when the
    id is already stored with other content (nothing written), PeriodLockedError or
    UnbalancedEntryError as `posting.post` does, sqlalchemy.exc.DBAPIError (IntegrityError, ...)
    for what the database refuses; the transaction is rolled back on every error.
    """
    ev = se.event
    if not isinstance(ev, UsageRecorded):
        raise TypeError(f"post_usage takes a usage.recorded event, not {ev.type}")  # type: ignore[attr-defined]
    raw: psycopg.Connection = session.connection().connection.driver_connection  # type: ignore[assignment]
    try:
        summary = _post(session, raw, catalog, se, ev, list(sources))
    except psycopg.Error as exc:
        session.rollback()
        raise sa.exc.DBAPIError.instance(None, None, exc, psycopg.Error) from exc
    except BaseException:
        session.rollback()
        raise
    if summary is None:
        session.rollback()
    return summary


def _post(session: Session, raw: psycopg.Connection, catalog: Catalog, se: SourcedEvent, ev: UsageRecorded,
          sources: list[str]) -> ImportSummary | None:
    with raw.pipeline():
        lock = raw.execute(_LOCK, (ev.customer_id,))
        stored = raw.execute(_STORED, {"id": se.id})
        closed_rows = raw.execute(_CLOSED)
        batch = raw.execute(_BATCH_ID)
    row = lock.fetchone()
    prior = stored.fetchone()
    closed = [p for (p,) in closed_rows.fetchall()]
    (batch_id,) = batch.fetchone()  # type: ignore[misc]
    if prior is not None:
        stored_hash, stored_source = prior
        if stored_hash != se.content_hash:
            raise InvalidInputError([stored_conflict(se, stored_hash, stored_source)])
        with raw.pipeline():  # an identical re-post: counted as a duplicate, as the general path does
            raw.execute(_INSERT_BATCH, (batch_id, _sources(sources), 0, 1, 0, 0))
        session.commit()
        return ImportSummary(import_id=batch_id, duplicates=1)
    if row is None:
        return None  # unknown customer: the general path reports it
    customer = Customer(**{c: _utc(v) for c, v in zip(_CUSTOMER_COLUMNS, row)})
    if ev.occurred_at < customer.created_at or (ev.action is not None and ev.action not in catalog.model.rate_card):
        return None  # the general path reports it

    run = Run(session, catalog, batch_id, cache=engine.BOOKS, closed=closed, db=str(session.get_bind().url))
    run.preload([customer.id], rows=[customer])  # the kept book, or the journal's (then kept after COMMIT)
    run.apply(se)
    summary = run.summary
    batch_row = (batch_id, _sources(sources), summary.posted, 0, summary.quarantined, summary.late)
    if not run.writes_only_usage() or session.new or session.dirty or session.deleted:
        # a time-driven step wrote more than usage (an overage invoice, a rollover grant, ...):
        # the run's own finish writes it all, as on the general path
        raw.execute(_INSERT_BATCH, batch_row)
        run.finish()
        session.execute(sa.update(Customer).where(Customer.id == customer.id)  # ``customer`` is not in the session
                        .values(steps_through=run.books[customer.id].steps_through))
        session.commit()
        engine.BOOKS.put(run.db, run.token, run.books)
        return summary
    run.fill_consumption()
    closed_set = set(closed)
    for d in run.drafts:
        check_draft(d, closed_set)
    usage_of: dict[int, list[dict]] = defaultdict(list)  # id(draft) -> the usage rows it carries
    for usage in run.usage_rows:
        bucket = run.usage_bucket.get(usage["id"])
        usage_of[id(bucket.draft) if bucket is not None else 0].append(usage)
    token = run.new_token()
    book = run.books[customer.id]
    with raw.pipeline(), raw.cursor() as cur:
        cur.execute(_INSERT_BATCH, batch_row)
        cur.execute(_CURSOR, (book.steps_through, token, customer.id))
        for draft in run.drafts:  # each entry, then what names it by currval
            cur.execute(_INSERT_ENTRY_FROM_SEQUENCE, tuple(getattr(draft, c) for c in ENTRY_COLUMNS))
            cur.executemany(_INSERT_LINE_OF_IT, [line_values(0, ln)[1:] for ln in draft.lines])
            for usage in usage_of.pop(id(draft), ()):
                columns = tuple(c for c in usage if c != "entry_id") + ("entry_id",)
                cur.execute(_insert(UsageEvent.__table__, columns, _ENTRY_JUST_INSERTED),
                            tuple(usage[c] for c in columns[:-1]))
        for usage in usage_of.pop(0, ()):  # quarantined: in no entry
            cur.execute(_insert(UsageEvent.__table__, tuple(usage)), tuple(usage.values()))
        if run.draw_rows:
            cur.executemany(_INSERT_DRAW, [tuple(r[c] for c in _DRAW_COLUMNS) for r in run.draw_rows])
        if run.quarantine_rows:
            cur.executemany(_INSERT_QUARANTINE, [tuple(getattr(q, c) for c in _QUARANTINE_COLUMNS)
                                                 for q in run.quarantine_rows])
    session.commit()
    engine.BOOKS.put(run.db, token, run.books)
    summary.entries = len(run.drafts)
    return summary


def _sources(sources: list[str]) -> str:
    """import_batch.sources: the JSON list the general path writes (`engine.import_events`)."""
    return json.dumps(sources)
