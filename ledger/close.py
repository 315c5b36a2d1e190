"""The month close (DESIGN section 6): every customer's time-driven steps due by the period end
(platform revenue of subscription months ending, overage invoices in arrears, expiries with
rollover and breakage true-ups, next month's subscription bills), invariants 1-5 as at the
period end, then the period is locked.

Periods close in order, starting with the earliest period with activity; closing a closed
period again is a no-op. On PostgreSQL the close takes a SHARE ROW EXCLUSIVE lock on
journal_entry for its (short) transaction, so no posting can slip into the period between the
invariant checks and the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.db import is_postgres
from ledger.engine import Run
from ledger.errors import InvariantError, PeriodOrderError
from ledger.invariants import check_all
from ledger.models import AccountingPeriod, Customer, Event, JournalEntry, UsageEvent
from ledger.periods import closed_periods, first_day, last_day, next_period, parse_period, period_end, period_of


@dataclass
class CloseResult:
    period: str
    already_closed: bool = False
    entries: int = 0
    late_events: list[str] = field(default_factory=list)


def first_activity_period(session: Session) -> str | None:
    """The earliest period with a journal entry."""
    d = session.execute(sa.select(sa.func.min(JournalEntry.entry_date))).scalar_one()
    return period_of(d) if d else None


def close_period(session: Session, catalog: Catalog, period: str, *, closed_by: str = "ledger",
                 now: datetime | None = None) -> CloseResult:
    """Run the close of ``period`` and lock it; commits. Idempotent.

    raises PeriodOrderError (an earlier period is still open), InvariantError (nothing changed).
    ``now`` (aware) is recorded as closed_at; it does not affect any posting.
    """
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
        if is_postgres(session):
            session.execute(sa.text("LOCK TABLE journal_entry IN SHARE ROW EXCLUSIVE MODE"))
        run = Run(session, catalog)
        until = period_end(period, catalog.tz)
        for cid in session.execute(sa.select(Customer.id).order_by(Customer.id)).scalars():
            run.close_through(run.book(cid), until)
        summary = run.finish()
        violations = check_all(session, through=last_day(period), tz=catalog.tz)
        if violations:
            raise InvariantError(violations)
        row = session.get(AccountingPeriod, period) or AccountingPeriod(period=period, status="open")
        row.status, row.closed_by = "closed", closed_by
        row.closed_at = now or datetime.now(timezone.utc)
        session.add(row)
        session.flush()
        late = late_events(session, period)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return CloseResult(period, entries=summary.entries, late_events=late)


def late_events(session: Session, period: str) -> list[str]:
    """Ids of late events posted in ``period`` (business events and usage)."""
    d0, d1 = first_day(period), last_day(period)
    ids = list(session.execute(sa.select(Event.id).where(Event.late.is_(True), Event.posted_date >= d0,
                                                         Event.posted_date <= d1)).scalars())
    ids += list(session.execute(
        sa.select(UsageEvent.id).join(JournalEntry, JournalEntry.id == UsageEvent.entry_id)
        .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)).scalars())
    return sorted(ids)
