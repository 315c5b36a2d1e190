"""What the month close reads and writes besides the posting itself (docs/design.md §6.4, §9.2):
the first period with activity, the customers it steps through, the sealed close record and
the locked period row, the reopen record, and the late events it reports.

``ledger.services.closing`` runs the close and the reopen and controls their transactions;
everything here runs in the caller's transaction and never commits or rolls back.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core.periods import first_day, last_day, period_of
from ledger.store.models import AccountingPeriod, Customer, Event, JournalEntry, PeriodClose, UsageEvent
from ledger.store.seals import latest_closes, seal_period

CloseRecord = PeriodClose
"""A row of the audit trail (table ``period_close``): period, action (close | reopen), at (UTC),
by, reason; for a close also journal_head, entries, seal, previous_seal and checks (a JSON list).
The records returned here are detached from their session: their values stay readable after
the transaction ends."""


def first_activity_period(session: Session) -> str | None:
    """The earliest period ('YYYY-MM') with a journal entry; None for an empty journal."""
    d = session.execute(sa.select(sa.func.min(JournalEntry.entry_date))).scalar_one()
    return period_of(d) if d else None


def customer_ids(session: Session) -> list[str]:
    """Every customer id, in id order (the close's order)."""
    return list(session.execute(sa.select(Customer.id).order_by(Customer.id)).scalars())


def seal_and_lock(session: Session, period: str, *, at: datetime, by: str, checks: str) -> CloseRecord:
    """Seal ``period`` (`ledger.store.seals.seal_period`: the hash chain over its entries from
    the previous closed period's seal) with a new close record (``at`` aware UTC, ``by``,
    ``checks`` as JSON text), and mark its period row closed by ``by`` at ``at``; flushed, not
    committed. Returns the close record, detached."""
    record = seal_period(session, PeriodClose(period=period, action="close", at=at, by=by, checks=checks))
    row = session.get(AccountingPeriod, period) or AccountingPeriod(period=period, status="open")
    row.status, row.closed_by, row.closed_at = "closed", by, at
    session.add(row)
    session.flush()
    session.expunge(record)  # keep its values readable after the commit
    return record


def record_reopen(session: Session, period: str, *, at: datetime, by: str, reason: str) -> CloseRecord:
    """Record the reopen of closed ``period`` (who, when, why) and mark its period row open;
    flushed, not committed. Returns the reopen record, detached."""
    record = PeriodClose(period=period, action="reopen", at=at, by=by, reason=reason)
    session.add(record)
    row = session.get(AccountingPeriod, period)
    assert row is not None
    row.status = "open"
    session.add(row)
    session.flush()
    session.expunge(record)
    return record


def close_record(session: Session, period: str) -> CloseRecord | None:
    """The close record in force for ``period`` (its latest close, unless reopened since)."""
    return latest_closes(session).get(period)


def late_events(session: Session, period: str) -> list[str]:
    """Ids of the late events posted in ``period`` (business events by their posted date, usage by
    the date of the entry that carries it), sorted."""
    d0, d1 = first_day(period), last_day(period)
    ids = list(session.execute(sa.select(Event.id).where(Event.late.is_(True), Event.posted_date >= d0,
                                                         Event.posted_date <= d1)).scalars())
    ids += list(session.execute(
        sa.select(UsageEvent.id).join(JournalEntry, JournalEntry.id == UsageEvent.entry_id)
        .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)).scalars())
    return sorted(ids)
