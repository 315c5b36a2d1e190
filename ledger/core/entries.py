"""Journal entries as values: a posting (`Line`), an entry being built (`EntryDraft`), the kinds
of entry (`EntryKind`) and the checks every entry passes before it is written (`check_draft`).

Pure: no database. The one writer (`ledger.store.writer`) writes only drafts that passed
`check_draft`; on PostgreSQL the database checks balance and the period lock again.

Worked example, a top-up of $20.00 + 8.25% tax for 1,000 credits (docs/design.md §5)::

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
from enum import StrEnum

from ledger.errors import InternalError, PeriodLockedError, UnbalancedEntryError
from ledger.core.periods import period_of


class EntryKind(StrEnum):
    """What a journal entry records (the ``kind`` column; docs/design.md §5)."""

    PURCHASE = "purchase"  # a commitment or top-up invoiced
    PROMOTION = "promotion"  # promotional credits granted
    SUBSCRIPTION = "subscription"  # a plan month billed in advance
    RECOGNITION = "recognition"  # platform revenue of a month, ratable
    CONSUMPTION = "consumption"  # usage of one customer and day
    PROPORTIONAL_BREAKAGE = "proportional_breakage"  # breakage recognised with usage
    BREAKAGE_ESTIMATE = "breakage_estimate"  # catch-up to a new breakage estimate
    ROLLOVER = "rollover"  # unused credits moved into a new grant
    EXPIRY = "expiry"  # breakage at expiry
    OVERAGE_INVOICE = "overage_invoice"  # overage invoiced in arrears
    PAYMENT = "payment"
    REFUND = "refund"
    GUARANTEE_CREDIT = "guarantee_credit"  # no-increase guarantee credit note
    CREDIT_APPLIED = "credit_applied"  # customer credit balance applied to an invoice
    VOID = "void"  # the mirror of a voided event's entries
    RECLASS = "reclass"  # a cancelled paid invoice moved to the customer credit balance
    USAGE_HELD = "usage_held"  # usage beyond a soft cap, held for review (CREDIT lines only)
    USAGE_RELEASED = "usage_released"  # held usage approved or rejected (CREDIT lines only)


@dataclass(frozen=True, slots=True)
class Line:
    """One posting. debit/credit: int >= 0, exactly one positive, minor units of ``commodity``
    (an ISO 4217 currency or CREDIT)."""

    account: str
    commodity: str
    debit: int = 0
    credit: int = 0
    customer_id: str | None = None
    grant_id: str | None = None
    invoice_number: str | None = None
    event_id: str | None = None


@dataclass(slots=True)
class EntryDraft:
    """A journal entry not yet written. ``entry_date`` (reporting timezone) decides its period;
    ``occurred_at`` (aware) is the event time it records."""

    entry_date: date
    occurred_at: datetime
    kind: EntryKind
    description: str
    customer_id: str | None = None
    event_id: str | None = None
    import_id: int | None = None
    lines: list[Line] = field(default_factory=list)

    @property
    def line_count(self) -> int:
        """How many lines the entry has: written with it (journal_entry.line_count), so the
        database can refuse a line added to it later."""
        return len(self.lines)

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
    """Check one entry before it is written (docs/design.md §7): it has lines, each line has
    exactly one positive int side, it balances per commodity, and its period is open.

    raises InternalError (an entry without lines: no rule may post one, `Posting.entries` drops
    those no document names), UnbalancedEntryError, PeriodLockedError or ValueError (bad line)."""
    if not draft.lines:
        raise InternalError(f"journal entry '{draft.description}' ({draft.kind}, {draft.entry_date}) has no lines")
    for ln in draft.lines:
        if not (isinstance(ln.debit, int) and isinstance(ln.credit, int)) or ln.debit < 0 or ln.credit < 0 or (ln.debit > 0) == (ln.credit > 0):
            raise ValueError(f"journal entry '{draft.description}': line {ln} must have exactly one positive side")
    bad = draft.imbalance()
    if bad:
        raise UnbalancedEntryError(draft.description, *bad)
    period = period_of(draft.entry_date)
    if period in closed:
        raise PeriodLockedError(period, draft.entry_date.isoformat(), draft.description)
