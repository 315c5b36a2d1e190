"""The time-driven steps of a customer, run in event time (docs/design.md §6).

Before an event dated t is applied for a customer, every step of that customer due at or
before t runs first, earliest first: platform revenue of ended subscription months, overage
invoices in arrears, guarantee credits, expiries with rollover, and the next months' bills. So
one file spanning several months gives the same books as importing month by month with a close
in between. At the same instant (a month boundary) the steps run in the order of `Step`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING

from ledger.core.book import CustomerBook
from ledger.core.grants import first_due_expiry
from ledger.core.periods import first_day, period_end, start_of_day

if TYPE_CHECKING:
    from ledger.core.posting import Posting


class Step(IntEnum):
    """Priorities of steps due at the same instant: platform revenue of the month ending, its
    overage invoice, its guarantee credit (after the overage invoice, which it counts),
    expiries and rollovers, then the next month's bill (which the credit reduces)."""

    RECOGNISE = 0
    OVERAGE = 1
    GUARANTEE = 2
    EXPIRE = 3
    BILL = 4


def next_step(p: Posting, book: CustomerBook, until: datetime) -> tuple[datetime, Step, Callable[[], None]] | None:
    """The customer's earliest step due at or before ``until``: (due, priority, action) or None."""
    from ledger.core.rules import expiry, guarantee, subscriptions, usage

    best = None

    def offer(due: datetime, prio: Step, action) -> None:
        nonlocal best
        if due <= until and (best is None or (due, prio) < best[:2]):
            best = (due, prio, action)

    for sub in book.subs:
        if sub.pending:
            number = min(sub.pending, key=lambda n: (sub.pending[n][0], n))
            offer(sub.pending[number][0], Step.RECOGNISE,
                  lambda sub=sub, number=number: subscriptions.recognise(p, book, sub, number))
        m = sub.next_month()
        if m is not None:
            due = start_of_day(max(sub.row.start_date, first_day(m)), p.tz)
            offer(due, Step.BILL, lambda sub=sub, m=m: subscriptions.bill_month(p, book, sub, m))
    for (period, price), acc in sorted(book.overage.items()):
        if acc.units > acc.invoiced_units:
            offer(period_end(period, p.tz), Step.OVERAGE, lambda period=period: usage.invoice_overage(p, book, period))
    for gs in book.guarantees:
        m = gs.next_month()
        if m is not None:
            offer(period_end(m, p.tz), Step.GUARANTEE, lambda gs=gs, m=m: guarantee.close_month(p, book, gs, m))
    due = first_due_expiry(book.grants.values(), until)
    if due is not None:
        offer(due.expires_at, Step.EXPIRE, lambda g=due: expiry.expire(p, book, g))  # type: ignore[arg-type]
    return best


def run_steps(p: Posting, book: CustomerBook, until: datetime) -> None:
    """Run every step of the customer due at or before ``until``, in time order: platform
    revenue of ended subscription months (ratable), overage invoices in arrears, expiries with
    rollover (breakage at expiry, ASC 606-10-55-48), next months' bills."""
    while (step := next_step(p, book, until)) is not None:
        due, _, action = step
        action()
        advance(book, due)


def advance(book: CustomerBook, through: datetime) -> None:
    """Move the customer's steps cursor to ``through``. An empty grant whose expiry the cursor
    reaches has had its expiry too, although no step ran for it (a grant holding units gets its
    own expiry step, with its rollover, which marks it): units that a voided usage returns later
    expire again without rolling over, in this posting as in any later one, which derives the
    same from ``steps_through`` (``ledger.store.books``)."""
    if book.steps_through is None or through > book.steps_through:
        book.steps_through = through
        for g in book.grants.values():
            if g.remaining == 0 and g.expires_at is not None and g.expires_at <= through:
                g.expiry_done = True


def catch_up(p: Posting, book: CustomerBook, t: datetime) -> None:
    """After an event added something due in the past (a late grant or a backdated start)."""
    run_steps(p, book, max(t, book.steps_through) if book.steps_through else t)


def close_through(p: Posting, book: CustomerBook, until: datetime) -> None:
    """Run the customer's steps due by ``until`` (a period end) and mark them run through it."""
    run_steps(p, book, until)
    advance(book, until)
