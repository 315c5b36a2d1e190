"""Customers' books derived from the journal, and the cache of committed books.

`load_books` is the one derivation of what is left of each grant (units relieved, deferred
revenue released), open invoices, the customer credit balance, refunds, overage, subscriptions
and guarantees, from the journal and the stored records, with one query per kind of state for
many customers at once. `BookCache` keeps books a process committed, so that its next
transaction for the same customers need not derive them again.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.book import CustomerBook, GuaranteeState, Overage, SubState, book_view
from ledger.core.posting import grant_state
from ledger.core.records import (
    CustomerRecord,
    GrantRecord,
    GuaranteeMonthRecord,
    GuaranteeRecord,
    SubscriptionPeriodRecord,
    SubscriptionRecord,
)
from ledger.store import keys
from ledger.store.db import chunks, in_values
from ledger.store.lots import LotBalance, lot_balances
from ledger.core.grants import GrantState
from ledger.store.models import (
    Customer,
    Event,
    Grant,
    Guarantee,
    GuaranteeMonth,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Subscription,
    SubscriptionPeriod,
    UsageEvent,
)
from ledger.core.periods import period_of, start_of_day

R = TypeVar("R")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def record_of(row: Any, cls: type[R]) -> R:
    """The plain record ``cls`` of a stored row (fields taken by name)."""
    return cls(**{name: getattr(row, name) for name in _field_names(cls)})  # type: ignore[arg-type]


def values_of(record: Any) -> dict[str, Any]:
    """A record's fields as a dict, for the table of the same shape (its instance dict: the
    records are plain dataclasses, so it holds exactly their fields, in order)."""
    return dict(vars(record))


class BookCache:
    """Customer books kept in memory between transactions by one process (the importer between
    its chunks, an API worker between calls), so that a posting need not derive them from the
    journal again: the ~11 queries of `load_books` become the one that reads the customers.

    Safe by construction: every transaction that writes for a customer writes a fresh random
    token into ``customer.book_version`` (``ledger.store.writer``), and a kept book is reused
    only if the row, read in the new transaction (under the customer lock on PostgreSQL), still
    carries the token of the posting that kept it; any other writer since (another process, a
    close) has written its own token. A book is taken out of the cache while a posting uses it
    and put back after that posting commits, so one that fails or rolls back leaves nothing
    stale; the group commit's path (`ledger.store.grouped`) puts its books back before it
    commits, so that the next group builds on them, and drops them if it fails: a book kept
    under a token that was never committed is never reused, as no customer row carries it. Books with subscriptions or guarantees are not kept. At most ``size`` books, least
    recently used dropped first. With LEDGER_CHECK_BOOK_CACHE=1 (the test suite sets it) every
    reuse is compared with a fresh derivation from the journal and a difference raises
    AssertionError.
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

    def peek(self, db: str, customer_id: str, token: int) -> CustomerBook | None:
        """The kept book of ``customer_id`` if it is kept under ``token``; it stays in the cache."""
        with self._lock:
            kept = self._books.get((db, customer_id))
            return kept[1] if kept is not None and kept[0] == token else None

    def drop(self, db: str, token: int, customer_ids: Sequence[str]) -> None:
        """Forget the books of ``customer_ids`` that are kept under ``token`` (the posting that
        wrote it failed); a book kept since under another token stays."""
        with self._lock:
            for customer_id in customer_ids:
                kept = self._books.get((db, customer_id))
                if kept is not None and kept[0] == token:
                    del self._books[(db, customer_id)]

    def put(self, db: str, token: int, books: Mapping[str, CustomerBook]) -> None:
        """Keep ``books`` (customer id -> book), as committed by the posting that wrote ``token``."""
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


BOOKS = BookCache()
"""This process's `BookCache`."""


def _numbered(book: CustomerBook) -> CustomerBook:
    """Order the book's grants as a load does ((effective_at, id)) and number them 1..n."""
    book.grants = {g.id: g for g in sorted(book.grants.values(), key=lambda g: (g.effective_at, g.id))}
    for i, g in enumerate(book.grants.values(), start=1):
        g.seq = i
    return book


def check_kept_book(session: Session, book: CustomerBook, tz) -> None:
    """Compare a kept book with the one the journal gives now (through ``session``); raises
    AssertionError naming the fields that differ. The caller holds the customer's lock, or the
    journal may have moved on."""
    fresh = load_books(session, [book.customer.id], tz)
    kept, derived = book_view(_numbered(book)), book_view(fresh[book.customer.id])
    if kept != derived:
        diff = {k: (kept[k], derived[k]) for k in kept if kept[k] != derived[k] and k != "grants"}
        for gid in sorted(set(kept["grants"]) | set(derived["grants"])):
            a, b = kept["grants"].get(gid, {}), derived["grants"].get(gid, {})
            diff.update({f"{gid}.{f}": (a.get(f), b.get(f)) for f in sorted(set(a) | set(b))
                         if a.get(f) != b.get(f)})
        raise AssertionError(f"kept book of {book.customer.id} differs from the journal (kept, derived): {diff}")


def load_books(session: Session, ids: Sequence[str], tz, *, given: Mapping[str, Customer] | None = None,
               cache: BookCache | None = None, db: str = "") -> dict[str, CustomerBook]:
    """The books of the known customers among ``ids``: kept ones from ``cache`` (under key
    ``db``) when their row still carries the kept token, the others derived from the journal,
    in chunks of 2,000 customers. ``given``: customer rows already read in this transaction
    (by the customer locks), not queried again."""
    out: dict[str, CustomerBook] = {}
    for chunk in chunks(sorted(set(ids)), 2000):
        out.update(_load_chunk(session, list(chunk), tz, given or {}, cache, db))
    return out


def _load_chunk(session: Session, ids: list[str], tz, given: Mapping[str, Customer], cache: BookCache | None,
                db: str) -> dict[str, CustomerBook]:
    s = session
    customers: dict[str, Customer | CustomerRecord] = {c: given[c] for c in ids if c in given}
    missing = [c for c in ids if c not in customers]
    if missing:  # plain records, not ORM objects: a close reads every customer here
        columns = [getattr(Customer, name) for name in _field_names(CustomerRecord)]
        customers.update((row.id, CustomerRecord(*row))
                         for row in s.execute(sa.select(*columns).where(in_values(s, Customer.id, missing))))
    out: dict[str, CustomerBook] = {}
    if cache is not None:
        for cid, row in list(customers.items()):
            book = cache.take(db, cid, row.book_version)
            if book is not None:
                book.customer = record_of(row, CustomerRecord)
                if os.environ.get("LEDGER_CHECK_BOOK_CACHE") == "1":
                    check_kept_book(session, book, tz)
                out[cid] = _numbered(book)
                del customers[cid]
    if not customers:
        return out
    ids = sorted(customers)
    grants, voided = _grant_states(s, ids, customers)
    facts = _balances(s, ids)
    for cid in ids:
        row = customers[cid]
        book = CustomerBook(record_of(row, CustomerRecord), grants.get(cid, {}), row.steps_through,
                            facts["open_invoices"].get(cid, {}))
        book.credit_balance = facts["credit_balance"].get(cid, 0)
        book.refunded_base = facts["refunded"].get(cid, {})
        out[cid] = _numbered(book)
    loaded = [out[c] for c in ids]
    _load_subscriptions(s, loaded, tz)
    _load_overage(s, loaded, voided)
    _load_guarantees(s, loaded)
    return out


def _grant_states(s: Session, ids: list[str], customers: Mapping[str, Customer | CustomerRecord]
                  ) -> tuple[dict[str, dict[str, GrantState]], dict[str, set[str]]]:
    """Each customer's grants with units relieved and amount released from their lot balances
    (`ledger.store.lots.lot_balances`: the journal's 9100 and 2100 lines), breakage estimates and
    voids applied; and each customer's voided event ids."""
    lots = lot_balances(s, customer_ids=ids)
    estimates: dict[str, list[tuple[datetime, str, str]]] = {}
    voided: dict[str, set[str]] = defaultdict(set)
    for eid, cid, kind, at, payload in s.execute(
            sa.select(Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.payload)
            .where(in_values(s, Event.customer_id, ids), Event.type.in_(["breakage.estimate_changed", "event.voided"]))):
        body = json.loads(payload)
        if kind == "event.voided":
            voided[cid].add(body["target_event_id"])
        else:
            estimates.setdefault(body["grant_ref"], []).append((at, eid, body["expected_rate"]))
    out: dict[str, dict[str, GrantState]] = defaultdict(dict)
    columns = [getattr(Grant, name) for name in _field_names(GrantRecord)]  # plain rows: no ORM objects
    for row in s.execute(sa.select(*columns).where(in_values(s, Grant.customer_id, ids))
                         .order_by(Grant.effective_at, Grant.id)):
        g = GrantRecord(*row)
        lot = lots.get(g.id) or LotBalance(g.id)
        state = grant_state(g, relieved=g.units - lot.outstanding, released=g.amount - lot.deferred)
        if g.id in estimates:
            state.rate = Fraction(Decimal(max(estimates[g.id])[2]))
        state.voided = g.event_id in voided[g.customer_id] and g.source in ("commitment", "topup", "promotional")
        steps_through = customers[g.customer_id].steps_through
        # a voided grant has nothing left to expire (as a void marks it)
        state.expiry_done = state.voided or (g.expires_at is not None and steps_through is not None
                                             and g.expires_at <= steps_through)
        out[g.customer_id][g.id] = state
    return out, voided


def _balances(s: Session, ids: list[str]) -> dict[str, dict]:
    """Per customer: open receivables by invoice (oldest first), the credit balance (2200) and
    the net refunded per grant."""
    open_invoices: dict[str, dict[str, int]] = defaultdict(dict)
    for cid, number, v in s.execute(
            sa.select(JournalLine.customer_id, JournalLine.invoice_number,
                      sa.func.sum(JournalLine.debit - JournalLine.credit))
            .join(Invoice, keys.line_invoice())
            .where(in_values(s, JournalLine.customer_id, ids), JournalLine.account_code == A.RECEIVABLE)
            .group_by(JournalLine.customer_id, JournalLine.invoice_number, Invoice.issue_date)
            .order_by(Invoice.issue_date, JournalLine.invoice_number)):
        if v:
            open_invoices[cid][number] = int(v)
    credit_balance = {cid: int(v) for cid, v in s.execute(
        sa.select(JournalLine.customer_id, sa.func.sum(JournalLine.credit - JournalLine.debit))
        .where(in_values(s, JournalLine.customer_id, ids), JournalLine.account_code == A.CUSTOMER_CREDIT)
        .group_by(JournalLine.customer_id))}
    refunded: dict[str, dict[str, int]] = defaultdict(dict)
    for cid, gid, base in s.execute(
            sa.select(JournalLine.customer_id, JournalLine.grant_id, sa.func.sum(JournalLine.debit - JournalLine.credit))
            .join(JournalEntry, keys.entry_lines())
            .where(in_values(s, JournalEntry.customer_id, ids), in_values(s, JournalLine.customer_id, ids),
                   JournalEntry.kind == "refund",
                   JournalLine.account_code.in_([A.DEFERRED_CREDITS, A.REFUNDS_CONCESSIONS]))
            .group_by(JournalLine.customer_id, JournalLine.grant_id)):
        refunded[cid][gid] = int(base)
    return {"open_invoices": open_invoices, "credit_balance": credit_balance, "refunded": refunded}


def _load_subscriptions(s: Session, books: list[CustomerBook], tz) -> None:
    """Subscriptions with their billed months; months whose platform fee is still deferred
    are pending recognition at the day after their service end."""
    by_id = {b.customer.id: b for b in books}
    subs = list(s.execute(sa.select(Subscription).where(in_values(s, Subscription.customer_id, by_id))
                          .order_by(Subscription.start_date, Subscription.id)).scalars())
    if not subs:
        return
    with_subs = sorted({row.customer_id for row in subs})
    deferred = dict(s.execute(
        sa.select(JournalLine.invoice_number, sa.func.sum(JournalLine.credit - JournalLine.debit))
        .where(in_values(s, JournalLine.customer_id, with_subs), JournalLine.account_code == A.DEFERRED_SUBSCRIPTIONS)
        .group_by(JournalLine.invoice_number)).all())
    periods: dict[str, dict[str, SubscriptionPeriodRecord]] = {}
    for p in s.execute(sa.select(SubscriptionPeriod)
                       .where(in_values(s, SubscriptionPeriod.customer_id, with_subs))).scalars():
        periods.setdefault(p.subscription_id, {})[p.period] = record_of(p, SubscriptionPeriodRecord)
    for row in subs:
        st = SubState(record_of(row, SubscriptionRecord), periods.get(row.id, {}))
        for p in st.periods.values():
            if int(deferred.get(p.invoice_number) or 0):
                st.pending[p.invoice_number] = (start_of_day(p.service_end + timedelta(days=1), tz), p.platform_fee)
        by_id[row.customer_id].subs.append(st)


def _load_overage(s: Session, books: list[CustomerBook], voided: dict[str, set[str]]) -> None:
    """Overage units per (accounting month, price) from the usage rows, less the voided ones,
    and what each month's overage invoices billed."""
    by_id = {b.customer.id: b for b in books}
    gone = sorted({eid for cid in by_id for eid in voided.get(cid, ())})
    q = (sa.select(UsageEvent.customer_id, JournalEntry.entry_date, UsageEvent.overage_price,
                   sa.func.sum(UsageEvent.overage_units))
         .join(JournalEntry, keys.usage_entry())
         .where(in_values(s, UsageEvent.customer_id, by_id), UsageEvent.overage_units > 0,
                sa.not_(in_values(s, UsageEvent.id, gone)))
         .group_by(UsageEvent.customer_id, JournalEntry.entry_date, UsageEvent.overage_price))
    for cid, d, price, units in s.execute(q):  # a row per customer, day and price
        by_id[cid].overage.setdefault((period_of(d), price), Overage()).units += int(units)
    q = (sa.select(Invoice.customer_id, Invoice.service_period, InvoiceLine.unit_price,
                   sa.func.sum(InvoiceLine.quantity), sa.func.sum(InvoiceLine.amount))
         .join(Invoice, keys.invoice_lines())
         .where(in_values(s, Invoice.customer_id, by_id), Invoice.category == "overage")
         .group_by(Invoice.customer_id, Invoice.service_period, InvoiceLine.unit_price))
    for cid, period, price, qty, amount in s.execute(q):
        acc = by_id[cid].overage.setdefault((period, price), Overage())
        acc.invoiced_units += int(qty)
        acc.invoiced_amount += int(amount)


def _load_guarantees(s: Session, books: list[CustomerBook]) -> None:
    """Guarantees with the months already evaluated."""
    by_id = {b.customer.id: b for b in books}
    rows = list(s.execute(sa.select(Guarantee).where(in_values(s, Guarantee.customer_id, by_id))
                          .order_by(Guarantee.start_month, Guarantee.id)).scalars())
    if not rows:
        return
    done: dict[str, dict[str, GuaranteeMonthRecord]] = {}
    for m in s.execute(sa.select(GuaranteeMonth).where(
            in_values(s, GuaranteeMonth.customer_id, sorted({r.customer_id for r in rows})))).scalars():
        done.setdefault(m.guarantee_id, {})[m.period] = record_of(m, GuaranteeMonthRecord)
    for row in rows:
        by_id[row.customer_id].guarantees.append(GuaranteeState(record_of(row, GuaranteeRecord), done.get(row.id, {})))
