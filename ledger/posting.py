"""The one write path for journal rows.

Every journal entry is built as an ``EntryDraft`` (a small value), checked here for balance
per commodity and for an open period, and only then written. On PostgreSQL the database checks
the same again at COMMIT (deferred constraint trigger), refuses UPDATE/DELETE, and refuses
postings dated in a locked period (migrations/sql/).

Worked example, a top-up of $20.00 + 8.25% tax for 1,000 credits::

    Dr 1100 Accounts receivable        21.65 USD
        Cr 2100 Deferred revenue           20.00 USD   (grant top-1)
        Cr 2400 Sales tax payable           1.65 USD
    Dr 9000 Credits issued             1,000 CREDIT
        Cr 9100 Credits outstanding        1,000 CREDIT (grant top-1)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger.db import COPY_ROWS, bulk_insert, copy_rows, is_postgres
from ledger.errors import PeriodLockedError, UnbalancedEntryError
from ledger.models import JournalEntry, JournalLine
from ledger.periods import closed_periods, period_of


@dataclass(frozen=True)
class Line:
    """One posting. debit/credit: int >= 0, exactly one positive, minor units of ``commodity``."""

    account: str
    commodity: str
    debit: int = 0
    credit: int = 0
    customer_id: str | None = None
    grant_id: str | None = None
    invoice_number: str | None = None
    event_id: str | None = None


@dataclass
class EntryDraft:
    """A journal entry not yet written. entry_date decides its period."""

    entry_date: date
    occurred_at: datetime
    kind: str
    description: str
    customer_id: str | None = None
    event_id: str | None = None
    import_id: int | None = None
    lines: list[Line] = field(default_factory=list)

    def dr(self, account: str, commodity: str, amount: int, **dims) -> "EntryDraft":
        """Add a debit of ``amount`` (skipped when 0; a negative amount becomes a credit)."""
        return self._add(account, commodity, amount, 0, dims)

    def cr(self, account: str, commodity: str, amount: int, **dims) -> "EntryDraft":
        """Add a credit of ``amount`` (skipped when 0; a negative amount becomes a debit)."""
        return self._add(account, commodity, 0, amount, dims)

    def _add(self, account, commodity, debit, credit, dims) -> "EntryDraft":
        if debit < 0 or credit < 0:
            debit, credit = -credit, -debit
        if debit or credit:
            dims.setdefault("customer_id", self.customer_id)
            self.lines.append(Line(account, commodity, debit, credit, **dims))
        return self

    def imbalance(self) -> tuple[str, int, int] | None:
        """(commodity, debits, credits) of the first commodity that does not balance, or None."""
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for ln in self.lines:
            totals[ln.commodity][0] += ln.debit
            totals[ln.commodity][1] += ln.credit
        for commodity in sorted(totals):
            d, c = totals[commodity]
            if d != c:
                return commodity, d, c
        return None


def check_draft(draft: EntryDraft, closed: set[str]) -> None:
    """raises UnbalancedEntryError, PeriodLockedError or ValueError (empty entry, bad line)."""
    if not draft.lines:
        raise ValueError(f"journal entry '{draft.description}' has no lines")
    for ln in draft.lines:
        if not (isinstance(ln.debit, int) and isinstance(ln.credit, int)) or ln.debit < 0 or ln.credit < 0 or (ln.debit > 0) == (ln.credit > 0):
            raise ValueError(f"journal entry '{draft.description}': line {ln} must have exactly one positive side")
    bad = draft.imbalance()
    if bad:
        raise UnbalancedEntryError(draft.description, *bad)
    period = period_of(draft.entry_date)
    if period in closed:
        raise PeriodLockedError(period, draft.entry_date.isoformat(), draft.description)


ENTRY_COLUMNS = ("entry_date", "occurred_at", "kind", "description", "customer_id", "event_id", "import_id")
"""The journal_entry columns a draft fills (its attributes of the same names); the id comes from the sequence."""
LINE_COLUMNS = ("entry_id", "account_code", "commodity", "debit", "credit", "customer_id", "grant_id",
                "invoice_number", "event_id")
"""The journal_line columns, in the order of `line_values`."""
_NEXT_ENTRY_IDS = "SELECT nextval(pg_get_serial_sequence('journal_entry', 'id')) FROM generate_series(1, :n)"


def post(session: Session, drafts: Sequence[EntryDraft], *, closed: Sequence[str] | None = None) -> list[int]:
    """Check and write ``drafts`` in order inside the session's transaction; returns entry ids.
    ``closed``: the closed periods ('YYYY-MM') if the caller has read them in this transaction
    (read here otherwise); the database's own period-lock trigger stays the last word.

    raises UnbalancedEntryError, PeriodLockedError (nothing is written when any draft fails).
    """
    if not drafts:
        return []
    closed = set(closed_periods(session) if closed is None else closed)
    for d in drafts:
        check_draft(d, closed)
    columns = ENTRY_COLUMNS
    if len(drafts) >= COPY_ROWS and is_postgres(session):
        # A bulk import posts ~10,000 entries a chunk: ids drawn from the sequence in one query
        # and the rows sent with COPY cost a tenth of INSERT ... RETURNING. The triggers (open
        # period, lines present at COMMIT) fire as for INSERT; ids may have gaps, as with INSERT.
        for d in drafts:
            if d.occurred_at.tzinfo is None:  # what UTCDateTime refuses on the INSERT path
                raise ValueError(f"journal entry '{d.description}': naive occurred_at {d.occurred_at!r}")
        ids = sorted(session.execute(sa.text(_NEXT_ENTRY_IDS), {"n": len(drafts)}).scalars())
        copy_rows(session, JournalEntry.__tablename__, ("id", *columns),
                  ((entry_id, *(getattr(d, c) for c in columns)) for entry_id, d in zip(ids, drafts)))
    else:
        ids = list(session.execute(sa.insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True),
                                   [{c: getattr(d, c) for c in columns} for d in drafts]).scalars())
    bulk_insert(session, JournalLine.__table__,
                [dict(zip(LINE_COLUMNS, line_values(entry_id, ln))) for entry_id, d in zip(ids, drafts) for ln in d.lines])
    return ids


def line_values(entry_id: int, ln: Line) -> tuple:
    """The journal_line row of ``ln`` in entry ``entry_id``, in the order of `LINE_COLUMNS`."""
    return (entry_id, ln.account, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
            ln.invoice_number, ln.event_id)
