"""What the month close reads and writes besides the posting itself (docs/design.md §6.4-6.6, §9.2):
the close's locks, the first period with activity, the customers it steps through, the sealed
close record and the locked period row, the reopen record, and the late events it reports.

On PostgreSQL the close record, its seal and the period lock are written by the database
functions ``ledger_close_period()`` and ``ledger_reopen_period()`` (migration 0010, SECURITY
DEFINER): the writer role of `ledger db roles` may not write those tables itself (docs/design.md
§9.5), and the seal is computed in the server, so no row the writer can write makes `verify`
trust what it should not. On SQLite (no roles) the same rows are written here, the seal by
`ledger.store.seals.seal_period`; both give the same bytes.

``ledger.services.closing`` runs the close and the reopen and controls their transactions;
everything here runs in the caller's transaction and never commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core.periods import first_day, last_day, period_of
from ledger.errors import PeriodOrderError
from ledger.store.db import is_postgres
from ledger.store import keys
from ledger.store.events import lock_customer_rows, posting_gate
from ledger.store.models import AccountingPeriod, Customer, Event, JournalEntry, PeriodClose, UsageEvent
from ledger.store.roles import lock_journal
from ledger.store.seals import latest_closes, seal_period

CloseRecord = PeriodClose
"""A row of the audit trail (table ``period_close``): period, action (close | reopen), at (UTC),
by, reason; for a close also journal_head, entries, seal, previous_seal and checks (a JSON list).
The records returned here are detached from their session: their values stay readable after
the transaction ends."""

REFUSED = "LX002"
"""The SQLSTATE ledger_close_period() and ledger_reopen_period() raise for a period out of order."""

T = TypeVar("T")


def lock_for_close(session: Session) -> list[str]:
    """Take the close's locks, in the order of docs/design.md §6.6, until the transaction ends,
    and return every customer id in id order (the close's order).

    PostgreSQL: the posting gate, exclusively (no posting runs meanwhile, and a second close or
    a reopen waits for this one); every customer row (SELECT ... FOR UPDATE, in id order:
    `ledger.store.events.lock_customer_rows`, one customer a statement on Citus); then
    SHARE ROW EXCLUSIVE on journal_entry (`ledger.store.roles.lock_journal`). SQLite: the
    database's write lock, taken by a write that changes nothing, so a second close waits here
    (busy timeout) and then sees the first one committed."""
    if not is_postgres(session):
        session.execute(sa.update(AccountingPeriod).where(sa.false()).values(status=AccountingPeriod.status)
                        .execution_options(synchronize_session=False))
        return customer_ids(session)
    posting_gate(session, exclusive=True)
    ids = lock_customer_rows(session, Customer.id)
    lock_journal(session)
    return ids


def first_activity_period(session: Session) -> str | None:
    """The earliest period ('YYYY-MM') with a journal entry; None for an empty journal."""
    d = session.execute(sa.select(sa.func.min(JournalEntry.entry_date))).scalar_one()
    return period_of(d) if d else None


def customer_ids(session: Session) -> list[str]:
    """Every customer id, in id order (the close's order)."""
    return list(session.execute(sa.select(Customer.id).order_by(Customer.id)).scalars())


def seal_and_lock(session: Session, period: str, *, at: datetime, by: str, checks: str) -> CloseRecord:
    """Seal ``period`` (the hash chain over its entries from the previous closed period's seal,
    docs/design.md §9.2) with a new close record (``at`` aware UTC, ``by``, ``checks`` as JSON
    text), and mark its period row closed by ``by`` at ``at``; flushed, not committed. Returns
    the close record, detached. On PostgreSQL through ``ledger_close_period()``, which checks
    the period's order again under its locks (raises PeriodOrderError)."""
    if is_postgres(session):
        close_id = _refused_as_order_error(lambda: session.execute(
            sa.text("SELECT ledger_close_period(:p, :at, :by, :checks)"),
            {"p": period, "at": at, "by": by, "checks": checks}).scalar_one())
        return _detached(session, close_id)
    record = seal_period(session, PeriodClose(period=period, action="close", at=at, by=by, checks=checks))
    row = session.get(AccountingPeriod, period) or AccountingPeriod(period=period, status="open")
    row.status, row.closed_by, row.closed_at = "closed", by, at
    session.add(row)
    session.flush()
    session.expunge(record)  # keep its values readable after the commit
    return record


def record_reopen(session: Session, period: str, *, at: datetime, by: str, reason: str) -> CloseRecord:
    """Record the reopen of closed ``period`` (who, when, why) and mark its period row open;
    flushed, not committed. Returns the reopen record, detached. On PostgreSQL through
    ``ledger_reopen_period()``, which takes the close's locks and checks again that ``period``
    is the last closed one (raises PeriodOrderError); a role without EXECUTE on it (the writer)
    gets the database's permission error."""
    if is_postgres(session):
        close_id = _refused_as_order_error(lambda: session.execute(
            sa.text("SELECT ledger_reopen_period(:p, :at, :by, :reason)"),
            {"p": period, "at": at, "by": by, "reason": reason}).scalar_one())
        return _detached(session, close_id)
    record = PeriodClose(period=period, action="reopen", at=at, by=by, reason=reason)
    session.add(record)
    row = session.get(AccountingPeriod, period)
    assert row is not None
    row.status = "open"
    session.add(row)
    session.flush()
    session.expunge(record)
    return record


def _refused_as_order_error(call: Callable[[], T]) -> T:
    """``call()``; a refusal of the close or reopen functions (SQLSTATE LX002) becomes a
    PeriodOrderError with the database's message."""
    try:
        return call()
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != REFUSED:
            raise
        diag = getattr(exc.orig, "diag", None)
        raise PeriodOrderError(str(getattr(diag, "message_primary", None) or exc.orig).strip()) from None


def _detached(session: Session, close_id: int) -> CloseRecord:
    """The period_close row ``close_id``, read and detached from ``session``."""
    record = session.execute(sa.select(PeriodClose).where(PeriodClose.id == close_id)
                             .execution_options(populate_existing=True)).scalar_one()
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
        sa.select(UsageEvent.id).join(JournalEntry, keys.usage_entry())
        .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)).scalars())
    return sorted(ids)
