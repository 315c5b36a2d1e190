"""The set-based import of a usage CSV (PostgreSQL): the server parses and checks the file, the
accounting core posts one sum per customer and day, and the usage rows are written by one
INSERT ... SELECT (docs/design.md §6).

`import_staged` COPYs the file into a staging table (`ledger.store.staging`), and posts nothing
unless set operations prove the general path would read it the same way (plain cells, no id
repeated or already stored, known customers, nothing late). Then every customer-day goes, in
the order of its first event, to `ledger.core.rules.usage.post_usage_day`; a day that crosses a
time-driven step, sees a grant start or end, or reaches the hard cap is posted event by event
by the general rules, its events put back in their places in time. The entries (one per
customer-day, as the general path makes them) are written by the one writer, then each staged
event's usage row names its entry and its place in the entry's drawdown stream. One transaction:
anything refused rolls all of it back.
"""

from __future__ import annotations

import heapq
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.periods import first_open_day
from ledger.core.posting import ImportSummary, Posting
from ledger.core.records import UsageDay
from ledger.core.rules.usage import post_usage_day
from ledger.events import SourcedEvent, UsageRecorded, content_hash
from ledger.store import books as kept
from ledger.store import imports, staging
from ledger.store.db import is_postgres, is_unique_violation
from ledger.store.events import posting_gate
from ledger.store.periods import closed_periods
from ledger.store.reader import SessionStore
from ledger.store.writer import write_posting

if TYPE_CHECKING:
    from ledger.store.db import Session


def can_stage(session: Session, files: list[str | Path], dry_run: bool) -> bool:
    """True when the set-based path may take the import: PostgreSQL, one plain ``credits`` usage
    CSV (`ledger.store.staging.plain_usage_csv`), not a dry run."""
    return (not dry_run and len(files) == 1 and Path(files[0]).suffix.lower() == ".csv" and is_postgres(session)
            and staging.plain_usage_csv(files[0]))


def import_staged(session: Session, catalog: Catalog, path: str | Path) -> ImportSummary | None:
    """Import usage CSV ``path`` set-based and commit; None (nothing posted, the transaction
    rolled back) when the file is not one the staging path proves it reads as the general path
    does, or a concurrent import stored one of its ids first: the caller then imports it through
    the general rules, which report its problems and count its duplicates. Lock order: the
    posting gate, then the staged customers in id order, as every posting takes them.
    raises what posting raises (UnbalancedEntryError, PeriodLockedError, database errors), after
    rolling back."""
    file = str(path)
    posting_gate(session)  # first: no close runs until this transaction ends
    closed = closed_periods(session)
    reason = staging.stage_usage(session, path, catalog.tz.key)
    locked = staging.lock_staged_customers(session) if reason is None else []
    if reason is not None or staging.staged_customers_unknown_or_late(session, first_open_day(closed)):
        session.rollback()
        return None
    try:
        summary, token, posting = _post(session, catalog, file, closed, locked)
    except BaseException as exc:
        session.rollback()
        if is_unique_violation(exc):  # a concurrent import stored one of its ids first
            return None
        raise
    session.commit()
    kept.BOOKS.put(imports.books_key(session), token, posting.books)
    return summary


def _post(session: Session, catalog: Catalog, file: str, closed: list[str],
          locked: list) -> tuple[ImportSummary, int, Posting]:
    """Post the staged file in the open transaction (see the module docstring); ``locked``: the
    staged customers' rows, locked."""
    db = imports.books_key(session)
    batch_id = imports.open_batch(session, [file], 0)
    posting = Posting(catalog, SessionStore(session, catalog.tz, given=locked, cache=kept.BOOKS, db=db),
                      closed=closed, import_id=batch_id)
    posting.preload(row.id for row in locked)
    queue: list[tuple] = [(d.first_at, d.first_line, 0, d) for d in staging.staged_days(session)]
    heapq.heapify(queue)
    whole: dict[tuple, tuple[int, str | None]] = {}
    expanded: list[tuple] = []
    while queue:
        at, line, _, item = heapq.heappop(queue)
        if isinstance(item, UsageDay):
            done = post_usage_day(posting, item)
            if done is not None:
                whole[item.customer_id, item.day] = done
                continue
            expanded.append((item.customer_id, item.day))
            for event_id, t, credits, n in staging.staged_events(session, item.customer_id, item.day):
                ev = UsageRecorded.model_construct(id=event_id, type="usage.recorded", occurred_at=t.astimezone(timezone.utc),
                                                   customer_id=item.customer_id, credits=credits, action=None, quantity=None)
                heapq.heappush(queue, (ev.occurred_at, n, 1, SourcedEvent(ev, file, n, content_hash(ev))))
        else:
            posting.apply(item)
    token = write_posting(session, posting)
    journal = posting.entries()
    buckets = [(cid, day, journal.ids[journal.bucket_entry[cid, day]], drawable, price)
               for (cid, day), (drawable, price) in whole.items()]
    staging.insert_staged_usage(session, buckets, import_id=batch_id, expanded=expanded)
    summary = posting.summary
    summary.set_based = True
    imports.finish_batch(session, batch_id, posted=summary.posted, quarantined=summary.quarantined, late=summary.late)
    return summary, token, posting
