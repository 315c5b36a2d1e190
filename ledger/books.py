"""Customer books: the working state an `engine.Run` derives from the journal for each customer
(its grants with what is left of them, subscriptions, overage, guarantees, open invoices), and
`BookCache`, which keeps committed books in memory between transactions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from ledger import guarantee as G
from ledger.grants import GrantState
from ledger.models import (
    Customer,
    Guarantee,
    GuaranteeMonth,
    Subscription,
    SubscriptionPeriod,
)
from ledger.periods import first_day, next_period, period_of
from ledger.posting import EntryDraft


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

    row: Subscription
    periods: dict[str, SubscriptionPeriod]
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
    """A guarantee with the months already evaluated (``done``: period -> stored row)."""

    row: Guarantee
    done: dict[str, GuaranteeMonth] = field(default_factory=dict)
    new: bool = False

    @property
    def months(self) -> list[str]:
        return G.window(self.row.start_month, self.row.months)

    def next_month(self) -> str | None:
        """The month whose close evaluates next (monthly: each month; cumulative: the last), or None."""
        months = self.months
        if self.row.basis == "cumulative":
            return None if self.done else months[-1]
        return next((m for m in months if m not in self.done), None)


@dataclass
class CustomerBook:
    """One customer's working state during a run, derived from the journal at load time."""

    customer: Customer
    grants: dict[str, GrantState]
    steps_through: datetime | None
    open_invoices: dict[str, int]  # invoice number -> open receivable, oldest first
    subs: list[SubState] = field(default_factory=list)
    overage: dict[tuple[str, str], Overage] = field(default_factory=dict)  # (period, price) -> Overage
    refunded_base: dict[str, int] = field(default_factory=dict)  # grant id -> net refunded so far
    credit_balance: int = 0  # 2200: overpayments, cancelled paid invoices, guarantee credits not yet applied
    guarantees: list[GuaranteeState] = field(default_factory=list)
    new: bool = False


@dataclass
class ConsumptionBucket:
    """The consumption entry of one customer, day and import, filled as usage is drawn."""

    draft: EntryDraft
    per_grant: dict[str, list[int]] = field(default_factory=dict)  # grant id -> [units, usage, breakage]
    overage_units: int = 0
    overage_amount: int = 0
    usage_ids: list[str] = field(default_factory=list)
    last_at: datetime | None = None


class BookCache:
    """Customer books kept in memory between transactions by one process (the importer between
    its chunks, an API worker between calls), so that a run need not derive them from the
    journal again: the ~11 queries of `Run.preload` become the one that reads the customers.

    Safe by construction: every run that loads a book writes a fresh random token into
    ``customer.book_version`` (`Run.finish`), and a kept book is reused only if the row,
    read in the new transaction (under the customer lock on PostgreSQL), still carries the
    token of the run that kept it; any other writer since (another process, a close) has
    written its own token. A book is taken out of the cache while a run uses it and put back
    only after that run commits, so a run that fails or rolls back leaves nothing stale.
    Books with subscriptions or guarantees are not kept (their rows are ORM objects of the
    session that loaded them). At most ``size`` books, least recently used dropped first.
    With LEDGER_CHECK_BOOK_CACHE=1 (the test suite sets it) every reuse is compared with a
    fresh derivation from the journal and a difference raises AssertionError.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._books: OrderedDict[tuple[str, str], tuple[int, CustomerBook]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def take(self, db: str, customer_id: str, token: int) -> CustomerBook | None:
        """The kept book of ``customer_id`` if it was kept under ``token``; it leaves the cache."""
        with self._lock:
            kept = self._books.pop((db, customer_id), None)
            if kept is not None and token and kept[0] == token:
                self.hits += 1
                return kept[1]
            self.misses += 1
            return None

    def token_of(self, db: str, customer_id: str) -> int | None:
        """The token under which the book of ``customer_id`` is kept, None when none is; the book
        stays in the cache (`take` it with that token)."""
        with self._lock:
            kept = self._books.get((db, customer_id))
            return kept[0] if kept is not None else None

    def put(self, db: str, token: int, books: Mapping[str, CustomerBook]) -> None:
        """Keep ``books`` (customer id -> book), as committed by the run that wrote ``token``
        (their customer rows are expired by the commit and are not read here)."""
        with self._lock:
            for customer_id, book in books.items():
                if book.subs or book.guarantees:
                    continue
                book.new = False
                key = (db, customer_id)
                self._books[key] = (token, book)
                self._books.move_to_end(key)
            while len(self._books) > self.size:
                self._books.popitem(last=False)




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
