"""A customer's book: the working state the accounting rules read and change for one customer
(its grants with what is left of each, subscriptions, overage, guarantees, open invoices, the
customer credit balance), derived from the journal by the store (``ledger.store.books``).

Pure values. The names follow docs/design.md: a *grant* is a lot of credits; *relieved* units
have left it (consumed, rolled over, expired or refunded) and *released* is the amount of
deferred revenue they took with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction

from ledger.core.records import (
    CustomerRecord,
    GuaranteeMonthRecord,
    GuaranteeRecord,
    SubscriptionPeriodRecord,
    SubscriptionRecord,
)
from ledger.core.grants import GrantState
from ledger.core.guarantee import window
from ledger.core.periods import first_day, next_period, period_of


@dataclass
class Overage:
    """Overage of one customer, accounting month and price: units posted, and how many of them
    (and what amount) were invoiced. Posted amount = round(units x price) (cumulative)."""

    units: int = 0
    invoiced_units: int = 0
    invoiced_amount: int = 0


@dataclass
class SubState:
    """A subscription with its billed months; ``pending`` maps invoice number -> (recognition
    time, platform fee Fp) for months whose platform revenue is not yet recognised."""

    row: SubscriptionRecord
    periods: dict[str, SubscriptionPeriodRecord]
    pending: dict[str, tuple[datetime, int]] = field(default_factory=dict)
    new: bool = False
    changed: bool = False

    def active_on(self, d: date) -> bool:
        return self.row.start_date <= d and (self.row.end_date is None or d <= self.row.end_date)

    def next_month(self) -> str | None:
        """The next calendar month to bill, or None when the subscription has ended."""
        m = next_period(max(self.periods)) if self.periods else period_of(self.row.start_date)
        if self.row.end_date is not None and first_day(m) > self.row.end_date:
            return None
        return m


@dataclass
class GuaranteeState:
    """A guarantee with the months already evaluated (``done``: period -> stored month)."""

    row: GuaranteeRecord
    done: dict[str, GuaranteeMonthRecord] = field(default_factory=dict)
    new: bool = False

    @property
    def months(self) -> list[str]:
        return window(self.row.start_month, self.row.months)

    def next_month(self) -> str | None:
        """The month whose close evaluates next (monthly: each month; cumulative: the last), or None."""
        months = self.months
        if self.row.basis == "cumulative":
            return None if self.done else months[-1]
        return next((m for m in months if m not in self.done), None)


@dataclass
class CustomerBook:
    """One customer's working state, derived from the journal when loaded."""

    customer: CustomerRecord
    grants: dict[str, GrantState]
    steps_through: datetime | None
    open_invoices: dict[str, int]  # invoice number -> open receivable, oldest first
    subs: list[SubState] = field(default_factory=list)
    overage: dict[tuple[str, str], Overage] = field(default_factory=dict)  # (period, price) -> Overage
    refunded_base: dict[str, int] = field(default_factory=dict)  # grant id -> net refunded so far
    credit_balance: int = 0  # 2200: overpayments, cancelled paid invoices, guarantee credits not yet applied
    guarantees: list[GuaranteeState] = field(default_factory=list)
    new: bool = False
    # credits consumed per accounting month, read when a soft cap first needs them (period -> units)
    month_used: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ConsumptionBucket:
    """The usage of one customer on one accounting day in one posting, summed as it is drawn;
    it becomes one consumption entry (and a proportional-breakage entry when a grant uses that
    method) when the posting's entries are built (`ledger.core.rules.usage.consumption_entries`)."""

    customer_id: str
    entry_date: date
    first_at: datetime
    per_grant: dict[str, list[int]] = field(default_factory=dict)  # grant id -> [units, usage, breakage]
    # the draws in drawdown order: [grant id, units], consecutive draws of one grant merged; each
    # becomes one Dr 9100 line, so the entry's lines give every event's grants (`draw`)
    segments: list[list] = field(default_factory=list)
    drawn: int = 0  # units drawn from grants so far (the next event's draw_start)
    overage_units: int = 0
    overage_amount: int = 0
    cost: Fraction = Fraction(0)  # cost to serve the day's usage, exact minor units (rounded once, in the entry)
    usage_ids: list[str] = field(default_factory=list)
    last_at: datetime | None = None
    events: int = 0  # usage events posted into the bucket (usage_ids, or a count from a set-based import)

    def draw(self, grant_id: str, units: int) -> None:
        """Append ``units`` drawn from ``grant_id`` to the drawdown stream (merged with the last
        segment when it is the same grant)."""
        if self.segments and self.segments[-1][0] == grant_id:
            self.segments[-1][1] += units
        else:
            self.segments.append([grant_id, units])
        self.drawn += units


def book_view(book: CustomerBook) -> dict:
    """What a book holds, for comparing a kept book with a fresh derivation: every field of its
    grants but the run-local sequence number, whose order it keeps."""
    grants = sorted(book.grants.values(), key=lambda g: g.seq)
    return {"customer": book.customer.id, "steps_through": book.steps_through,
            "grant_order": [g.id for g in grants],
            "grants": {g.id: {k: v for k, v in vars(g).items() if k != "seq"} for g in grants},
            "open_invoices": list(book.open_invoices.items()),
            "overage": {k: (o.units, o.invoiced_units, o.invoiced_amount) for k, o in sorted(book.overage.items())},
            "refunded_base": dict(sorted(book.refunded_base.items())), "credit_balance": book.credit_balance,
            "subs": len(book.subs), "guarantees": len(book.guarantees)}
