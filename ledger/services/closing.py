"""The month close (docs/design.md §6.4): every customer's time-driven steps due by the period end
(platform revenue of subscription months ending, overage invoices in arrears, expiries with
rollover and breakage true-ups, guarantee credits, next month's subscription bills, credit
balances applied), invariants 1-5 as at the period end and the seals of earlier periods
(invariant 6), then the period is sealed (`ledger.store.seals`: a hash chain over its entries) and
locked, with a close record: who, when, journal head, seal, checks passed. `reopen_period`
reopens the last closed period with a reason; both are in the audit trail (period_close).
`close_month` closes and writes the close package (docs/design.md §9.6).

Periods close in order, starting with the earliest period with activity; closing a closed
period again is a no-op. Before its period-end steps the close takes its locks in the order of
docs/design.md §6.6 (`ledger.store.closing.lock_for_close`; on PostgreSQL the posting gate, every
customer row, then SHARE ROW EXCLUSIVE on journal_entry), so no posting slips into the period
between the invariant checks and the lock, an import started meanwhile waits instead of
deadlocking, and of two closes of one period started together one closes it and the other then
finds it closed (`CloseResult.already_closed`), as a second close run after the first does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.periods import last_day, next_period, parse_period, period_end
from ledger.core.posting import Posting
from ledger.core.schedule import close_through
from ledger.errors import InvariantError, PeriodOrderError
from ledger.store.closing import (
    CloseRecord,
    close_record,
    first_activity_period,
    late_events,
    lock_for_close,
    record_reopen,
    seal_and_lock,
)
from ledger.store.invariants import Violation, check_all
from ledger.store.periods import closed_periods
from ledger.store.reader import SessionStore
from ledger.store.seals import verify_seals
from ledger.store.writer import write_posting

if TYPE_CHECKING:
    from ledger.store.db import Session

__all__ = ["CHECKS", "CloseMonth", "CloseResult", "close_month", "close_period", "close_record",
           "first_activity_period", "late_events", "reopen_period"]

Progress = Callable[[str, int, int], None]

CHECKS = (
    "invariant 1: every entry and the trial balance balance per commodity",
    "invariant 2: every grant's units and deferred balance follow its formula",
    "invariant 3: deferred revenue equals the open grants and subscription months",
    "invariant 4: billed + unbilled = recognised + deferred + credit notes, per customer; guarantee credits",
    "invariant 5: documents equal their receivable lines; numbering is gap-free",
    "invariant 6: the previous closed period's seal holds and the chain of closes is unbroken",
)
"""What a close checks before it seals, in the words of its close record."""


@dataclass
class CloseResult:
    """What `close_period` did: entries posted by the period-end steps, the close record
    (who, when, journal head, seal, checks) and the late events posted in the period."""

    period: str
    already_closed: bool = False
    entries: int = 0
    late_events: list[str] = field(default_factory=list)
    record: CloseRecord | None = None


@dataclass
class CloseMonth:
    """What `close_month` did: the close, and the close package's manifest.json with the number
    of files it lists (None, None without a package)."""

    close: CloseResult
    manifest: Path | None = None
    files: int | None = None


def _expected(session: Session, period: str, closed: list[str]) -> None:
    """raises PeriodOrderError unless ``period`` is the next period to close."""
    expected = next_period(closed[-1]) if closed else first_activity_period(session)
    if expected is not None and period != expected:
        if period > expected:
            raise PeriodOrderError(f"cannot close {period}: {expected} is still open (periods close in order)")
        raise PeriodOrderError(f"cannot close {period}: it is before the first open period {expected}")


def close_period(session: Session, catalog: Catalog, period: str, *, closed_by: str = "ledger",
                 now: datetime | None = None, progress: Progress | None = None) -> CloseResult:
    """Run the close of ``period`` and lock it; commits. Idempotent.

    raises PeriodOrderError (an earlier period is still open), InvariantError (nothing changed).
    ``now`` (aware) is recorded as closed_at; it does not affect any posting. ``progress`` is
    called as (stage, done, total) while the close runs: "period-end steps" once per customer,
    then "checks" and "seal". A close may issue documents (overage invoices, guarantee credit
    notes): raises CatalogError before anything is posted when the catalog has no company.
    """
    catalog.require_company("closing a period")
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    parse_period(period)
    closed = closed_periods(session)
    if period in closed:  # without a lock: a role that may only read gets the package again
        return CloseResult(period, already_closed=True)
    _expected(session, period, closed)
    try:
        customers = lock_for_close(session)
        closed = closed_periods(session)  # again under the locks: a close that ran meanwhile has committed
        if period in closed:
            session.rollback()
            return CloseResult(period, already_closed=True)
        _expected(session, period, closed)
        entries = _period_end_steps(session, catalog, period, closed, customers, report)
        report("checks", 0, 1)
        violations = check_all(session, through=last_day(period), tz=catalog.tz)
        breaks = verify_seals(session, only=set(closed[-1:]))  # the seal this period's chain extends
        if violations or breaks:
            raise InvariantError(violations + [Violation(6, str(b.period), str(b)) for b in breaks])
        report("checks", 1, 1)
        report("seal", 0, 1)
        at = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        record = seal_and_lock(session, period, at=at, by=closed_by, checks=json.dumps(list(CHECKS)))
        late = late_events(session, period)
        report("seal", 1, 1)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return CloseResult(period, entries=entries, late_events=late, record=record)


def _period_end_steps(session: Session, catalog: Catalog, period: str, closed: list[str], customers: list[str],
                      report: Progress) -> int:
    """The time-driven steps of every customer in ``customers`` (ids, in the close's order)
    through the end of ``period``, written in the session's transaction; returns the number of
    journal entries they posted."""
    posting = Posting(catalog, SessionStore(session, catalog.tz), closed=closed)
    until = period_end(period, catalog.tz)
    posting.preload(customers)
    for i, cid in enumerate(customers, start=1):
        close_through(posting, posting.book(cid), until)
        report("period-end steps", i, len(customers))
    write_posting(session, posting)
    return posting.summary.entries


def close_month(session: Session, catalog: Catalog, period: str, *, out_dir: str | Path | None = None,
                closed_by: str = "ledger", progress: Progress | None = None,
                on_closed: Callable[[CloseResult], None] | None = None,
                on_document: Callable[[], None] | None = None) -> CloseMonth:
    """`close_period` (committed), then with ``out_dir`` the close package of ``period`` written
    there (`reports.package.write_package`; again, identically, if it was already closed).

    ``on_closed(result)`` is called once the close is committed, before the package is
    written; ``on_document()`` once per document PDF of the package. raises as `close_period`,
    and OSError if the package cannot be written (the close stays committed).
    """
    result = close_period(session, catalog, period, closed_by=closed_by, progress=progress)
    if on_closed is not None:
        on_closed(result)
    if not out_dir:
        return CloseMonth(result)
    from reports.package import write_package

    manifest = write_package(session, catalog, period, out_dir, on_document=on_document)
    count = len(json.loads(manifest.read_text(encoding="utf-8"))["files"])
    session.rollback()
    return CloseMonth(result, manifest, count)


def reopen_period(session: Session, period: str, *, reason: str, by: str = "ledger",
                  now: datetime | None = None) -> CloseRecord:
    """Reopen ``period`` (the last closed one): it accepts postings again until it is closed
    (and sealed) anew. Records who, when and why in the audit trail; commits.

    raises PeriodOrderError (not closed, or a later period is closed), ValueError (empty reason).
    """
    parse_period(period)
    if not reason or not reason.strip():
        raise ValueError("a reopen needs a reason")
    closed = closed_periods(session)
    if period not in closed:
        raise PeriodOrderError(f"cannot reopen {period}: it is not closed")
    if period != closed[-1]:
        raise PeriodOrderError(f"cannot reopen {period}: {closed[-1]} is closed after it (only the last closed "
                               "period can be reopened)")
    try:
        at = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        record = record_reopen(session, period, at=at, by=by, reason=reason.strip())
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return record
