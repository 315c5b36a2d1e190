"""The month close (docs/design.md §6.4): every customer's time-driven steps due by the period end
(platform revenue of subscription months ending, overage invoices in arrears, expiries with
rollover and breakage true-ups, guarantee credits, next month's subscription bills, credit
balances applied), invariants 1-5 as at the period end and the seals of earlier periods
(invariant 6), then the period is sealed (`ledger.store.seals`: a hash chain over its entries) and
locked, with a close record: who, when, journal head, seal, checks passed. `reopen_period`
reopens the last closed period with a reason; both are in the audit trail (period_close).

Periods close in order, starting with the earliest period with activity; closing a closed
period again is a no-op. On PostgreSQL the close takes a SHARE ROW EXCLUSIVE lock on
journal_entry for its (short) transaction, so no posting can slip into the period between the
invariant checks and the lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.core.posting import Posting
from ledger.core.schedule import close_through
from ledger.store.reader import SessionStore
from ledger.store.writer import write_posting
from ledger.errors import InvariantError, PeriodOrderError
from ledger.store.invariants import Violation, check_all
from ledger.store.models import AccountingPeriod, Customer, Event, JournalEntry, PeriodClose, UsageEvent
from ledger.store.roles import lock_journal
from ledger.store.seals import latest_closes, seal_period, verify_seals
from ledger.store.periods import closed_periods
from ledger.core.periods import first_day, last_day, next_period, parse_period, period_end, period_of


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
    record: PeriodClose | None = None


def first_activity_period(session: Session) -> str | None:
    """The earliest period with a journal entry."""
    d = session.execute(sa.select(sa.func.min(JournalEntry.entry_date))).scalar_one()
    return period_of(d) if d else None


def close_period(session: Session, catalog: Catalog, period: str, *, closed_by: str = "ledger",
                 now: datetime | None = None, progress: Callable[[str, int, int], None] | None = None) -> CloseResult:
    """Run the close of ``period`` and lock it; commits. Idempotent.

    raises PeriodOrderError (an earlier period is still open), InvariantError (nothing changed).
    ``now`` (aware) is recorded as closed_at; it does not affect any posting. ``progress`` is
    called as (stage, done, total) while the close runs: "period-end steps" once per customer,
    then "checks" and "seal".
    """
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    parse_period(period)
    closed = closed_periods(session)
    if period in closed:
        return CloseResult(period, already_closed=True)
    expected = next_period(closed[-1]) if closed else first_activity_period(session)
    if expected is not None and period != expected:
        if period > expected:
            raise PeriodOrderError(f"cannot close {period}: {expected} is still open (periods close in order)")
        raise PeriodOrderError(f"cannot close {period}: it is before the first open period {expected}")
    try:
        lock_journal(session)  # SHARE ROW EXCLUSIVE on journal_entry (PostgreSQL), also for the writer role
        posting = Posting(catalog, SessionStore(session, catalog.tz), closed=closed)
        until = period_end(period, catalog.tz)
        customers = list(session.execute(sa.select(Customer.id).order_by(Customer.id)).scalars())
        posting.preload(customers)
        for i, cid in enumerate(customers, start=1):
            close_through(posting, posting.book(cid), until)
            report("period-end steps", i, len(customers))
        write_posting(session, posting)
        summary = posting.summary
        report("checks", 0, 1)
        violations = check_all(session, through=last_day(period), tz=catalog.tz)
        breaks = verify_seals(session, only=set(closed[-1:]))  # the seal this period's chain extends
        if violations or breaks:
            raise InvariantError(violations + [Violation(6, str(b.period), str(b)) for b in breaks])
        report("checks", 1, 1)
        report("seal", 0, 1)
        at = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        record = seal_period(session, PeriodClose(period=period, action="close", at=at, by=closed_by,
                                                  checks=json.dumps(list(CHECKS))))
        row = session.get(AccountingPeriod, period) or AccountingPeriod(period=period, status="open")
        row.status, row.closed_by, row.closed_at = "closed", closed_by, at
        session.add(row)
        session.flush()
        late = late_events(session, period)
        report("seal", 1, 1)
        session.expunge(record)  # keep its values readable after the commit
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return CloseResult(period, entries=summary.entries, late_events=late, record=record)


def reopen_period(session: Session, period: str, *, reason: str, by: str = "ledger",
                  now: datetime | None = None) -> PeriodClose:
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
        record = PeriodClose(period=period, action="reopen", at=at, by=by, reason=reason.strip())
        session.add(record)
        row = session.get(AccountingPeriod, period)
        assert row is not None
        row.status = "open"
        session.add(row)
        session.flush()
        session.expunge(record)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return record


def close_record(session: Session, period: str) -> PeriodClose | None:
    """The close record in force for ``period`` (its latest close, unless reopened since)."""
    return latest_closes(session).get(period)


def late_events(session: Session, period: str) -> list[str]:
    """Ids of late events posted in ``period`` (business events and usage)."""
    d0, d1 = first_day(period), last_day(period)
    ids = list(session.execute(sa.select(Event.id).where(Event.late.is_(True), Event.posted_date >= d0,
                                                         Event.posted_date <= d1)).scalars())
    ids += list(session.execute(
        sa.select(UsageEvent.id).join(JournalEntry, JournalEntry.id == UsageEvent.entry_id)
        .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)).scalars())
    return sorted(ids)
