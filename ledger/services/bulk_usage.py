"""The set-based import of a usage CSV (PostgreSQL): the server parses and checks the file, the
accounting core posts one sum per customer and day, and the usage rows are written by one
INSERT ... SELECT (docs/design.md §6).

`import_staged` COPYs the file into a staging table (`ledger.store.staging`), and posts nothing
unless set operations prove the general path would read it the same way (plain cells, no id
repeated or already stored, known customers, nothing late). Then every customer-day goes, in
the order of its first event, to `ledger.core.rules.usage.post_usage_day`; a day that crosses a
time-driven step, sees a grant start or end, or reaches the hard cap is posted event by event
by the general rules, its events (handed over as text with the day's sums) put back in their
places in time. The queue is in time order, so once it reaches the next local midnight no
later item can draw on the buckets of the days before it: their entries (one per customer-day,
as the general path makes them; `Posting.settle`) are then written by the one writer, and each
of their staged events' usage row naming its entry and its place in the entry's drawdown
stream, by a writer thread (`_Behind`) while the main thread posts the next day. The posting
uses the session only once the writer is idle. The rest (customers, contracts, the last day,
breakage entries, documents, the events posted one by one) is written at the end, so the
entries take the ids one write of the whole posting gives them. One transaction: anything
refused, in either thread, rolls all of it back.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.periods import first_open_day, local_date, period_of, start_of_day
from ledger.core.posting import ImportSummary, Posting
from ledger.core.records import UsageDay
from ledger.core.rules import review
from ledger.core.rules.usage import post_usage_day
from ledger.events import SourcedEvent, UsageRecorded, content_hash
from ledger.store import books as kept
from ledger.store import imports, staging
from ledger.store.db import is_postgres, is_unique_violation
from ledger.store.events import posting_gate
from ledger.store.periods import closed_periods
from ledger.store.reader import SessionStore
from ledger.store.writer import insert_entries, write_posting

if TYPE_CHECKING:
    from ledger.store.db import Session


def can_stage(session: Session, files: list[str | Path], dry_run: bool) -> bool:
    """True when the set-based path may take the import: PostgreSQL, one plain ``credits`` usage
    CSV (`ledger.store.staging.plain_usage_csv`), not a dry run."""
    return (not dry_run and len(files) == 1 and Path(files[0]).suffix.lower() == ".csv" and is_postgres(session)
            and staging.plain_usage_csv(files[0]))


def import_staged(session: Session, catalog: Catalog, path: str | Path,
                  progress: Callable[[int, int], None] | None = None) -> ImportSummary | None:
    """Import usage CSV ``path`` set-based and commit; None (nothing posted, the transaction
    rolled back) when the file is not one the staging path proves it reads as the general path
    does, or a concurrent import stored one of its ids first: the caller then imports it through
    the general rules, which report its problems and count its duplicates. Lock order: the
    posting gate, then the staged customers in id order, as every posting takes them.
    ``progress(done, total)``: called from the writer thread each time the days posted so far
    are written (``done`` of the file's ``total`` events; the days posted event by event count
    once posted, and are written last); the caller reports the whole file after the COMMIT.
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
        summary, token, posting = _post(session, catalog, file, closed, locked, progress)
    except BaseException as exc:
        session.rollback()
        if is_unique_violation(exc):  # a concurrent import stored one of its ids first
            return None
        raise
    session.commit()
    kept.BOOKS.put(imports.books_key(session), token, posting.books)
    return summary


def _post(session: Session, catalog: Catalog, file: str, closed: list[str], locked: list,
          progress: Callable[[int, int], None] | None) -> tuple[ImportSummary, int, Posting]:
    """Post the staged file in the open transaction (see the module docstring); ``locked``: the
    staged customers' rows, locked. The entries and usage rows of each finished day are
    written by the writer thread (`_Behind`) while the next day posts."""
    db = imports.books_key(session)
    batch_id = imports.open_batch(session, [file], 0)
    behind = _Behind()
    posting = Posting(catalog, _AfterWriter(SessionStore(session, catalog.tz, given=locked, cache=kept.BOOKS, db=db),
                                            behind), closed=closed, import_id=batch_id)
    posting.preload(row.id for row in locked)
    queue: list[tuple] = [(d.first_at, d.first_line, 0, d, stream) for d, stream in staging.staged_days(session)]
    heapq.heapify(queue)
    days = _Days(session, posting, batch_id, progress, sum(item.events for *_, item, _ in queue))
    # a soft cap's month reads its consumption from the journal once: before this posting's
    # first days are written
    capped = {row.id for row in locked if catalog.soft_cap(row.id) is not None}
    for cid, month in sorted({(d.customer_id, period_of(d.day)) for *_, d, _ in queue if d.customer_id in capped}):
        review.month_used(posting, posting.book(cid), month)
    end_of_day = None  # the next local midnight: the days before it are done once an item reaches it
    done = 0  # the events of the items taken from the queue (a day posted event by event counts once)
    try:
        while queue:
            at, _, _, item, stream = heapq.heappop(queue)
            if end_of_day is None or at >= end_of_day:
                if end_of_day is not None:  # the days before ``at`` are done: written while the next posts
                    behind.send(days.settled(done))
                end_of_day = start_of_day(local_date(at, catalog.tz) + timedelta(days=1), catalog.tz).astimezone(timezone.utc)
            if isinstance(item, UsageDay):
                done += item.events
                whole = post_usage_day(posting, item)
                if whole is not None:
                    days.whole[item.customer_id, item.day] = whole
                    continue
                for event_id, t, credits, n in staging.staged_events(stream):
                    ev = UsageRecorded.model_construct(id=event_id, type="usage.recorded", occurred_at=t,
                                                       customer_id=item.customer_id, credits=credits, action=None, quantity=None)
                    heapq.heappush(queue, (t, n, 1, SourcedEvent(ev, file, n, content_hash(ev)), None))
            else:
                posting.apply(item)
        behind.wait()
    finally:
        behind.close()
    posting.forget(len(days.ids))
    token = write_posting(session, posting, written=days.ids)
    days.write_usage(posting.entries().ids)
    summary = posting.summary
    summary.set_based = True
    imports.finish_batch(session, batch_id, posted=summary.posted, quarantined=summary.quarantined, late=summary.late)
    return summary, token, posting


class _Days:
    """The posting's days as they are written: ``whole`` the customer-days posted whole and not
    written yet ((customer id, day) -> (units the grants cover, overage price or None)),
    ``ids`` the ids of the entries written so far, in journal order; ``progress(done, total)``
    is told, once each job is written, how many of the file's ``total`` events it has posted."""

    def __init__(self, session: Session, posting: Posting, batch_id: int,
                 progress: Callable[[int, int], None] | None = None, total: int = 0) -> None:
        self.session, self.posting, self.batch_id = session, posting, batch_id
        self.progress, self.total = progress, total
        self.whole: dict[tuple[str, date], tuple[int, str | None]] = {}
        self.ids: list[int] = []

    def settled(self, done: int) -> Callable[[], None]:
        """The journal posted so far turned into entries (`Posting.settle`) and the job that
        writes them and the usage rows of their whole customer-days, for the writer thread;
        ``done``: how many of the file's events the posting has taken so far."""
        self.posting.forget(len(self.ids))  # what the writer thread has written so far
        drafts = self.posting.settle()
        whole, self.whole = self.whole, {}
        buckets = [(cid, day, self.posting.entry_of(cid, day), drawable, price)
                   for (cid, day), (drawable, price) in whole.items()]

        def write() -> None:
            self.ids += insert_entries(self.session, drafts, closed=self.posting.closed, copy=True)
            self._insert_usage(buckets, self.ids)
            if self.progress:
                self.progress(done, self.total)
        return write

    def write_usage(self, ids: list[int]) -> None:
        """Write the usage rows of the customer-days posted whole not written yet; ``ids``: the
        journal's entry ids (`ledger.core.posting.Journal.ids`)."""
        journal = self.posting.entries()
        self._insert_usage([(cid, day, journal.bucket_entry[cid, day], drawable, price)
                            for (cid, day), (drawable, price) in self.whole.items()], ids)
        self.whole = {}

    def _insert_usage(self, buckets: list[tuple[str, date, int, int, str | None]], ids: list[int]) -> None:
        """The usage rows of ``buckets`` ((customer id, day, entry index, drawable, price)), a
        statement a day (`ledger.store.staging.insert_staged_usage`)."""
        by_day: dict[date, list[tuple[str, int, int, str | None]]] = {}
        for cid, day, index, drawable, price in buckets:
            by_day.setdefault(day, []).append((cid, ids[index], drawable, price))
        for day in sorted(by_day):
            staging.insert_staged_usage(self.session, day, by_day[day], import_id=self.batch_id)


class _Behind:
    """The writer thread: runs the jobs given to `send` one at a time, in order, on the
    transaction's connection, while the caller posts on. The caller uses the session only
    after `wait` and before the next `send`, and calls `close` in any case before it commits
    or rolls back. A job's error is raised by the next `send` or `wait`; the jobs after a
    failed one raise its error instead of running."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-import-writer")
        self._last: Future | None = None

    def send(self, job: Callable[[], None]) -> None:
        """Run ``job`` after those sent before; raises the error of one that failed already."""
        if self._last is not None and self._last.done():
            self._last.result()
        self._last = self._pool.submit(_after, self._last, job)

    def wait(self) -> None:
        """Return once every job sent has run; raises the first one's error."""
        if self._last is not None:
            self._last.result()

    def close(self) -> None:
        """Stop the thread once the job it runs has ended (the jobs not started are dropped):
        the connection is the caller's again, to roll back or go on."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _after(before: Future | None, job: Callable[[], None]) -> None:
    """Run ``job`` unless the job ``before`` it failed (raises that job's error instead)."""
    if before is not None:
        before.result()
    job()


class _AfterWriter:
    """A `ledger.core.ports.LedgerStore` that lets the writer thread finish before each call
    of ``store`` (the same session: one user at a time)."""

    def __init__(self, store: SessionStore, behind: _Behind) -> None:
        self._store, self._behind = store, behind

    def __getattr__(self, name: str):
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            self._behind.wait()
            return method(*args, **kwargs)
        return call
