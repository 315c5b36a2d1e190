"""Applying events to the books, in event time (DESIGN sections 4-6).

``import_events`` validates a whole batch first (nothing is posted if any event is invalid),
then applies the events in ``occurred_at`` order. Before an event dated t is applied for a
customer, every time-driven step of that customer due at or before t is run (platform revenue
of ended subscription months, overage invoices, expiries with rollover, next months' bills),
so one file spanning several months gives the same books as importing month by month with a
close in between. ``Run`` is the unit of work shared by the import and the close: it keeps each
customer's grants (with the units already relieved, derived from the journal), builds entry
drafts in event order, and hands them to the one posting path (ledger.posting.post). The books
themselves (`CustomerBook`, the kept-books cache) are in ``ledger.books``; the checks a batch
passes before anything is applied, and the customer locks, in ``ledger.validation``.

Usage is posted as one consumption entry per customer per day per import; every usage row keeps
the id of the entry that carries it and its draws per grant (table usage_draw), so an auditor can
go from revenue to the raw events.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger import accounts as A
from ledger import guarantee as G
from ledger.books import (
    BookCache,
    ConsumptionBucket,
    CustomerBook,
    GuaranteeState,
    Overage,
    SubState,
    book_view,
)
from ledger.catalog import Catalog
from ledger.db import bulk_insert, chunks, in_values
from ledger.errors import InputProblem, InvalidInputError
from ledger.events import (
    BreakageEstimateChanged,
    CommitmentPurchased,
    CreditsGranted,
    CustomerCreated,
    EventVoided,
    GuaranteeEnrolled,
    PaymentReceived,
    RefundIssued,
    SourcedEvent,
    SubscriptionCancelled,
    SubscriptionStarted,
    TopupPurchased,
    UsageRecorded,
    canonical_json,
)
from ledger.grants import GrantState, due_expiries, plan_drawdown, rollover_units
from ledger.invoicing import InvoiceDraft, new_invoice, unit_price_text
from ledger.models import (
    Customer,
    Event,
    Grant,
    Guarantee,
    GuaranteeMonth,
    ImportBatch,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Quarantine,
    Subscription,
    SubscriptionPeriod,
    UsageDraw,
    UsageEvent,
)
from ledger.money import (
    CREDIT,
    INT64_MAX,
    allocate,
    apply_rate,
    cumulative_share,
    format_units,
    major_str,
    parse_decimal,
    price_amount,
    round_div,
    to_minor,
)
from ledger.periods import (
    boundary_date,
    closed_periods,
    first_day,
    first_open_day,
    last_day,
    local_date,
    next_period,
    period_end,
    period_of,
    start_of_day,
)
from ledger.posting import EntryDraft, Line, post
from ledger.validation import lock_customers, validate_batch


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass
class ImportSummary:
    """What an import did. Counts are events; ``entries`` counts journal entries written."""

    posted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    late: int = 0
    entries: int = 0
    invoices: list[str] = field(default_factory=list)
    quarantine: list[tuple[str, str]] = field(default_factory=list)  # (event id, reason)
    late_events: list[str] = field(default_factory=list)
    dry_run: bool = False
    import_id: int | None = None


BOOKS = BookCache()
"""This process's `BookCache`, used by `import_events`."""


def _problem(se: SourcedEvent, fld: str, value: object, message: str) -> InvalidInputError:
    return InvalidInputError([InputProblem(se.file, se.line, fld, value, message)])


# Step priorities at the same instant (a month boundary): platform revenue of the month ending,
# overage invoice of that month, the guarantee credit of that month (after its overage invoice),
# expiries and rollovers, then the next month's subscription bill (which the credit reduces).
_RECOGNISE, _OVERAGE, _GUARANTEE, _EXPIRE, _BILL = range(5)


def check_kept_book(session: Session, catalog: Catalog, book: CustomerBook) -> None:
    """Compare a kept book with the one the journal gives now (`book_view`, through ``session``);
    raises AssertionError naming the fields that differ. The test suite's check of every reuse
    (LEDGER_CHECK_BOOK_CACHE=1); the caller holds the customer's lock, or the journal may have
    moved on."""
    fresh = Run(session, catalog)
    fresh._load_many([book.customer.id])
    kept, derived = book_view(book), book_view(fresh.books[book.customer.id])
    if kept != derived:
        diff = {k: (kept[k], derived[k]) for k in kept if kept[k] != derived[k] and k != "grants"}
        for gid in sorted(set(kept["grants"]) | set(derived["grants"])):
            a, b = kept["grants"].get(gid, {}), derived["grants"].get(gid, {})
            diff.update({f"{gid}.{f}": (a.get(f), b.get(f)) for f in sorted(set(a) | set(b))
                         if a.get(f) != b.get(f)})
        raise AssertionError(f"kept book of {book.customer.id} differs from the journal (kept, derived): {diff}")


class Run:
    """A unit of work over the books: apply events and time-driven steps, then ``finish``."""

    def __init__(self, session: Session, catalog: Catalog, import_id: int | None = None,
                 cache: BookCache | None = None, *, closed: list[str] | None = None, db: str | None = None):
        """closed: the closed periods, oldest first, if the caller has read them in this
        transaction (read here otherwise); db: the database's key in ``cache`` (its URL)."""
        self.session = session
        self.cache = cache
        self.db = db if db is not None else str(session.get_bind().url) if cache is not None else ""
        self.token = 0
        self.catalog = catalog
        self.tz = catalog.tz
        self.import_id = import_id
        self.closed = closed_periods(session) if closed is None else closed
        self.first_open: date | None = first_open_day(self.closed)
        self.books: dict[str, CustomerBook] = {}
        self.drafts: list[EntryDraft] = []
        self.buckets: dict[tuple[str, date], ConsumptionBucket] = {}
        self.invoices: list[tuple[InvoiceDraft, EntryDraft]] = []
        self.grant_rows: list[Grant] = []
        self.event_rows: list[Event] = []
        self.usage_rows: list[dict] = []
        self.usage_index: dict[str, dict] = {}
        self.usage_bucket: dict[str, ConsumptionBucket] = {}
        self.draw_rows: list[dict] = []
        self.draws_of: dict[str, list[tuple[str, int]]] = {}
        self.quarantine_rows: list[Quarantine] = []
        self.period_rows: list[SubscriptionPeriod] = []
        self.guarantee_month_rows: list[GuaranteeMonth] = []
        self.summary = ImportSummary(import_id=import_id)
        self._grant_seq = 0

    # ----------------------------------------------------------------- loading state
    def book(self, customer_id: str) -> CustomerBook:
        """The customer's book, loaded from the database on first use."""
        book = self.books.get(customer_id)
        if book is None:
            self.preload([customer_id])
            book = self.books.get(customer_id)
            if book is None:
                raise KeyError(customer_id)
        return book

    def preload(self, customer_ids: Iterable[str], rows: Sequence[Customer] = ()) -> None:
        """Load the books of every customer in ``customer_ids`` not loaded yet, with one query per
        kind of state for up to 2,000 customers at a time (not ~12 queries per customer).
        ``rows``: customer rows already read in this transaction, not queried again."""
        given = {r.id: r for r in rows}
        ids = sorted({c for c in customer_ids if c not in self.books})
        for chunk in chunks(ids, 2000):
            self._load_many(list(chunk), given)

    def _load_many(self, ids: list[str], given: Mapping[str, Customer] | None = None) -> None:
        """Derive the books of customers ``ids`` from the journal (see `CustomerBook`); unknown
        ids are skipped. ``given``: customer rows already read (by `lock_customers`)."""
        s = self.session

        def of(column):
            return in_values(s, column, ids)

        customers = {c: given[c] for c in ids if c in given} if given else {}
        if len(customers) < len(ids):
            missing = [c for c in ids if c not in customers]
            customers.update((c.id, c) for c in s.execute(sa.select(Customer).where(
                in_values(s, Customer.id, missing))).scalars())
        if self.cache is not None:
            for cid, row in list(customers.items()):
                book = self.cache.take(self.db, cid, row.book_version)
                if book is not None:
                    self._reuse(book, row)
                    del customers[cid]
            ids = [c for c in ids if c in customers]
        if not customers:
            return
        by_grant: dict[str, dict[str, int]] = {}
        for gid, account, d, c in s.execute(
                sa.select(JournalLine.grant_id, JournalLine.account_code, sa.func.sum(JournalLine.debit),
                          sa.func.sum(JournalLine.credit))
                .where(of(JournalLine.customer_id), JournalLine.grant_id.is_not(None),
                       JournalLine.account_code.in_([A.CREDITS_OUTSTANDING, A.DEFERRED_CREDITS]))
                .group_by(JournalLine.grant_id, JournalLine.account_code)):
            by_grant.setdefault(gid, {})[account] = int(c) - int(d)
        estimates: dict[str, list[tuple[datetime, str, str]]] = {}
        voided: dict[str, set[str]] = defaultdict(set)
        for eid, cid, kind, at, payload in s.execute(
                sa.select(Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.payload)
                .where(of(Event.customer_id), Event.type.in_(["breakage.estimate_changed", "event.voided"]))):
            body = json.loads(payload)
            if kind == "event.voided":
                voided[cid].add(body["target_event_id"])
            else:
                estimates.setdefault(body["grant_ref"], []).append((at, eid, body["expected_rate"]))
        grant_rows: dict[str, list[Grant]] = defaultdict(list)
        for g in s.execute(sa.select(Grant).where(of(Grant.customer_id)).order_by(Grant.effective_at, Grant.id)).scalars():
            grant_rows[g.customer_id].append(g)
        open_invoices: dict[str, dict[str, int]] = defaultdict(dict)
        for cid, number, v in s.execute(
                sa.select(JournalLine.customer_id, JournalLine.invoice_number,
                          sa.func.sum(JournalLine.debit - JournalLine.credit))
                .join(Invoice, Invoice.number == JournalLine.invoice_number)
                .where(of(JournalLine.customer_id), JournalLine.account_code == A.RECEIVABLE)
                .group_by(JournalLine.customer_id, JournalLine.invoice_number, Invoice.issue_date)
                .order_by(Invoice.issue_date, JournalLine.invoice_number)):
            if v:
                open_invoices[cid][number] = int(v)
        credit_balance = {cid: int(v) for cid, v in s.execute(
            sa.select(JournalLine.customer_id, sa.func.sum(JournalLine.credit - JournalLine.debit))
            .where(of(JournalLine.customer_id), JournalLine.account_code == A.CUSTOMER_CREDIT)
            .group_by(JournalLine.customer_id))}
        refunded: dict[str, dict[str, int]] = defaultdict(dict)
        for cid, gid, base in s.execute(
                sa.select(JournalLine.customer_id, JournalLine.grant_id, sa.func.sum(JournalLine.debit - JournalLine.credit))
                .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
                .where(of(JournalEntry.customer_id), of(JournalLine.customer_id), JournalEntry.kind == "refund",
                       JournalLine.account_code.in_([A.DEFERRED_CREDITS, A.REFUNDS_CONCESSIONS]))
                .group_by(JournalLine.customer_id, JournalLine.grant_id)):
            refunded[cid][gid] = int(base)
        for cid in ids:
            customer = customers.get(cid)
            if customer is None:
                continue
            steps_through = customer.steps_through
            grants: dict[str, GrantState] = {}
            for g in grant_rows.get(cid, []):
                bal = by_grant.get(g.id, {})
                outstanding = bal.get(A.CREDITS_OUTSTANDING, 0)
                state = self._state(g, relieved=g.units - outstanding, released=g.amount - bal.get(A.DEFERRED_CREDITS, 0))
                if g.id in estimates:
                    state.rate = Fraction(Decimal(max(estimates[g.id])[2]))
                state.voided = g.event_id in voided[cid] and g.source in ("commitment", "topup", "promotional")
                # a voided grant has nothing left to expire (as `_on_event_voided` marks it)
                state.expiry_done = state.voided or (g.expires_at is not None and steps_through is not None
                                                     and g.expires_at <= steps_through)
                grants[g.id] = state
            book = CustomerBook(customer, grants, steps_through, open_invoices.get(cid, {}))
            book.credit_balance = credit_balance.get(cid, 0)
            book.refunded_base = refunded.get(cid, {})
            self.books[cid] = book
        loaded = [self.books[c] for c in ids if c in customers]
        self._load_subscriptions(loaded)
        self._load_overage(loaded, voided)
        self._load_guarantees(loaded)

    def _reuse(self, book: CustomerBook, row: Customer) -> None:
        """`adopt` a kept book; with LEDGER_CHECK_BOOK_CACHE=1 compare it with the journal
        (`check_kept_book`)."""
        self.adopt(book, row)
        if os.environ.get("LEDGER_CHECK_BOOK_CACHE") == "1":
            check_kept_book(self.session, self.catalog, book)

    def adopt(self, book: CustomerBook, row: Customer) -> None:
        """Take a kept book into this run as a fresh load would give it: the customer row ``row``,
        and the grants in load order ((effective_at, id)) with this run's sequence numbers."""
        book.customer = row
        book.grants = {g.id: g for g in sorted(book.grants.values(), key=lambda g: (g.effective_at, g.id))}
        for g in book.grants.values():
            self._grant_seq += 1
            g.seq = self._grant_seq
        self.books[row.id] = book

    def _load_subscriptions(self, books: list[CustomerBook]) -> None:
        s = self.session
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
        periods: dict[str, dict[str, SubscriptionPeriod]] = {}
        for p in s.execute(sa.select(SubscriptionPeriod)
                           .where(in_values(s, SubscriptionPeriod.customer_id, with_subs))).scalars():
            periods.setdefault(p.subscription_id, {})[p.period] = p
        for row in subs:
            st = SubState(row, periods.get(row.id, {}))
            for p in st.periods.values():
                if int(deferred.get(p.invoice_number) or 0):
                    st.pending[p.invoice_number] = (start_of_day(p.service_end + timedelta(days=1), self.tz), p.platform_fee)
            by_id[row.customer_id].subs.append(st)

    def _load_overage(self, books: list[CustomerBook], voided: dict[str, set[str]]) -> None:
        """Overage units per (accounting month, price) from the usage rows, less the voided ones
        (``voided``: customer -> ids of its voided events), and what each month's overage
        invoices billed."""
        s = self.session
        by_id = {b.customer.id: b for b in books}
        gone = sorted({eid for cid in by_id for eid in voided.get(cid, ())})
        q = (sa.select(UsageEvent.customer_id, JournalEntry.entry_date, UsageEvent.overage_price,
                       sa.func.sum(UsageEvent.overage_units))
             .join(JournalEntry, JournalEntry.id == UsageEvent.entry_id)
             .where(in_values(s, UsageEvent.customer_id, by_id), UsageEvent.overage_units > 0,
                    sa.not_(in_values(s, UsageEvent.id, gone)))
             .group_by(UsageEvent.customer_id, JournalEntry.entry_date, UsageEvent.overage_price))
        for cid, d, price, units in s.execute(q):  # a row per customer, day and price
            by_id[cid].overage.setdefault((period_of(d), price), Overage()).units += int(units)
        q = (sa.select(Invoice.customer_id, Invoice.service_period, InvoiceLine.unit_price,
                       sa.func.sum(InvoiceLine.quantity), sa.func.sum(InvoiceLine.amount))
             .join(Invoice, Invoice.number == InvoiceLine.invoice_number)
             .where(in_values(s, Invoice.customer_id, by_id), Invoice.category == "overage")
             .group_by(Invoice.customer_id, Invoice.service_period, InvoiceLine.unit_price))
        for cid, period, price, qty, amount in s.execute(q):
            acc = by_id[cid].overage.setdefault((period, price), Overage())
            acc.invoiced_units += int(qty)
            acc.invoiced_amount += int(amount)

    def _load_guarantees(self, books: list[CustomerBook]) -> None:
        s = self.session
        by_id = {b.customer.id: b for b in books}
        rows = list(s.execute(sa.select(Guarantee).where(in_values(s, Guarantee.customer_id, by_id))
                              .order_by(Guarantee.start_month, Guarantee.id)).scalars())
        if not rows:
            return
        done: dict[str, dict[str, GuaranteeMonth]] = {}
        for m in s.execute(sa.select(GuaranteeMonth).where(
                in_values(s, GuaranteeMonth.customer_id, sorted({r.customer_id for r in rows})))).scalars():
            done.setdefault(m.guarantee_id, {})[m.period] = m
        for row in rows:
            by_id[row.customer_id].guarantees.append(GuaranteeState(row, done.get(row.id, {})))

    def _state(self, g: Grant, relieved: int = 0, released: int | None = None) -> GrantState:
        self._grant_seq += 1
        return GrantState(g.id, g.customer_id, g.source, g.units, g.amount, g.currency, g.effective_at,
                          g.expires_at, relieved, self._grant_seq, released=released, method=g.breakage_method,
                          rate=Fraction(Decimal(g.expected_breakage_rate)) if g.expected_breakage_rate else None,
                          rollover_percent=g.rollover_percent, rollover_max_periods=g.rollover_max_periods,
                          rollover_max_credits=g.rollover_max_credits, rollover_expires=g.rollover_expires,
                          generation=g.generation, root_id=_root(g.id), invoice_number=g.invoice_number,
                          overage_price=g.overage_price, renews=g.renews, contract_id=g.contract_id,
                          event_id=g.event_id)

    # ----------------------------------------------------------------- dating
    def accounting_date(self, t: datetime) -> tuple[date, bool]:
        """(entry date, late): the local date of t, or the first open day when t's period is closed."""
        d = local_date(t, self.tz)
        if self.first_open is not None and d < self.first_open:
            return self.first_open, True
        return d, False

    def _step_date(self, due: datetime, *, period_end: bool = True) -> date:
        """A step at a period boundary belongs to the period that ends there (DESIGN 6); a
        subscription bill is dated the day its month starts. Never before the first open day."""
        d = boundary_date(due, self.tz) if period_end else local_date(due, self.tz)
        return max(d, self.first_open) if self.first_open else d

    def _draft(self, d: date, t: datetime, kind: str, description: str, customer_id: str | None,
               event_id: str | None = None) -> EntryDraft:
        draft = EntryDraft(d, t, kind, description, customer_id, event_id, self.import_id)
        self.drafts.append(draft)
        return draft

    # ----------------------------------------------------------------- time-driven steps
    def _next_step(self, book: CustomerBook, until: datetime):
        """The customer's earliest step due at or before ``until``: (due, priority, action) or None."""
        best = None

        def offer(due: datetime, prio: int, action) -> None:
            nonlocal best
            if due <= until and (best is None or (due, prio) < best[:2]):
                best = (due, prio, action)

        for sub in book.subs:
            if sub.pending:
                number = min(sub.pending, key=lambda n: (sub.pending[n][0], n))
                offer(sub.pending[number][0], _RECOGNISE, lambda sub=sub, number=number: self._recognise(book, sub, number))
            m = sub.next_month()
            if m is not None:
                due = start_of_day(max(sub.row.start_date, first_day(m)), self.tz)
                offer(due, _BILL, lambda sub=sub, m=m: self._bill_month(book, sub, m))
        for (period, price), acc in sorted(book.overage.items()):
            if acc.units > acc.invoiced_units:
                offer(period_end(period, self.tz), _OVERAGE, lambda period=period: self._invoice_overage(book, period))
        for gs in book.guarantees:
            m = gs.next_month()
            if m is not None:
                offer(period_end(m, self.tz), _GUARANTEE, lambda gs=gs, m=m: self._guarantee_close(book, gs, m))
        for g in due_expiries(list(book.grants.values()), until)[:1]:
            offer(g.expires_at, _EXPIRE, lambda g=g: self._expire(book, g))  # type: ignore[arg-type]
        return best

    def run_steps(self, book: CustomerBook, until: datetime) -> None:
        """Run every step of the customer due at or before ``until``, in time order: platform
        revenue of ended subscription months (ratable, DESIGN 5), overage invoices in arrears,
        expiries with rollover (breakage at expiry, ASC 606-10-55-48), next months' bills."""
        while (step := self._next_step(book, until)) is not None:
            due, _, action = step
            action()
            self._advance(book, due)

    def _advance(self, book: CustomerBook, through: datetime) -> None:
        """Move the customer's steps cursor to ``through``. An empty grant whose expiry the cursor
        reaches has had its expiry too, although no step ran for it (a grant holding units gets
        its own expiry step, with its rollover, which marks it): units that a voided usage
        returns later expire again without rolling over, in this run as in any later one, which
        derives the same from ``steps_through`` (`_load_many`)."""
        if book.steps_through is None or through > book.steps_through:
            book.steps_through = through
            for g in book.grants.values():
                if g.remaining == 0 and g.expires_at is not None and g.expires_at <= through:
                    g.expiry_done = True

    def _catch_up(self, book: CustomerBook, t: datetime) -> None:
        """After an event added something due in the past (a late grant or a backdated start)."""
        self.run_steps(book, max(t, book.steps_through) if book.steps_through else t)

    def close_through(self, book: CustomerBook, until: datetime) -> None:
        """Run the customer's steps due by ``until`` (a period end) and mark them run through it."""
        self.run_steps(book, until)
        self._advance(book, until)

    def _expire(self, book: CustomerBook, g: GrantState) -> None:
        """Rollover (first expiry only) then breakage of the rest: Dr 2100(g) / Cr 2100(g') and
        Dr 9100(g) / Cr 9100(g') for r rolled units at their relieved amount; Dr 2100 / Cr 4050
        (the remaining deferred, a true-up for proportional grants) and Dr 9100 / Cr 9300."""
        assert g.expires_at is not None
        cid, cur = book.customer.id, g.currency
        d = self._step_date(g.expires_at)
        unused = g.remaining
        rolled = 0
        if not g.expiry_done:
            target = self._rollover_target(book, g)
            rolled = rollover_units(g, unused) if target is not None else 0
            if rolled:
                assert target is not None
                contract_id, effective_at, expires_at = target
                amount = g.relieve(rolled)
                new_id = f"{g.root_id or g.id}~r{g.generation + 1}"
                row = Grant(id=new_id, customer_id=cid, source="rollover", units=rolled, amount=amount, currency=cur,
                            effective_at=effective_at, expires_at=expires_at, breakage_method="at_expiry",
                            expected_breakage_rate=None, rollover_percent=g.rollover_percent,
                            rollover_max_periods=g.rollover_max_periods, rollover_max_credits=g.rollover_max_credits,
                            rollover_expires=g.rollover_expires, renews=None, overage_price=None,
                            contract_id=contract_id, generation=g.generation + 1, parent_grant_id=g.id,
                            event_id=g.event_id or "", invoice_number=g.invoice_number)
                self.grant_rows.append(row)
                book.grants[new_id] = self._state(row)
                draft = self._draft(d, g.expires_at, "rollover",
                                    f"Rollover of {format_units(rolled)} of {format_units(unused)} unused credits "
                                    f"from grant {g.id} into {new_id}", cid)
                draft.dr(A.DEFERRED_CREDITS, cur, amount, grant_id=g.id)
                draft.cr(A.DEFERRED_CREDITS, cur, amount, grant_id=new_id)
                draft.dr(A.CREDITS_OUTSTANDING, CREDIT, rolled, grant_id=g.id)
                draft.cr(A.CREDITS_OUTSTANDING, CREDIT, rolled, grant_id=new_id)
        rest = unused - rolled
        if rest:
            g.relieve(rest, track=False)
        amount = g.release_rest()
        g.expiry_done = True
        if rest or amount:
            draft = self._draft(d, g.expires_at, "expiry",
                                f"Grant {g.id} expired with {format_units(rest)} credits unused", cid)
            draft.dr(A.DEFERRED_CREDITS, cur, amount, grant_id=g.id)
            draft.cr(A.BREAKAGE_REVENUE, cur, amount, grant_id=g.id)
            draft.dr(A.CREDITS_OUTSTANDING, CREDIT, rest, grant_id=g.id)
            draft.cr(A.CREDITS_EXPIRED, CREDIT, rest, grant_id=g.id)

    def _rollover_target(self, book: CustomerBook, g: GrantState) -> tuple[str | None, datetime, datetime | None] | None:
        """Where g's rolled units go: (contract, effective_at, expires_at) or None (all expire).

        Subscription credits roll into the next month while the subscription runs; commitment
        credits only into a renewal (a commitment whose ``renews`` names g's commitment);
        with ``expires: false`` rolled credits never expire and need neither.
        """
        assert g.expires_at is not None
        if g.rollover_percent <= 0:
            return None
        if not g.rollover_expires:
            return g.contract_id, g.expires_at, None
        for sub in book.subs:
            if sub.row.id == g.contract_id:
                d = local_date(g.expires_at, self.tz)
                if not sub.active_on(d):
                    return None
                expires = start_of_day(first_day(next_period(period_of(d))), self.tz)
                if sub.row.end_date is not None:
                    expires = min(expires, start_of_day(sub.row.end_date + timedelta(days=1), self.tz))
                return sub.row.id, g.expires_at, expires
        for r in book.grants.values():
            if r.source == "commitment" and g.contract_id is not None and r.renews == g.contract_id:
                return r.id, max(g.expires_at, r.effective_at), r.expires_at
        return None

    def _recognise(self, book: CustomerBook, sub: SubState, number: str) -> None:
        """Month end of a subscription: Dr 2150 / Cr 4020 the month's platform fee Fp (ratable)."""
        due, fee = sub.pending.pop(number)
        c = book.customer
        draft = self._draft(self._step_date(due), due, "recognition",
                            f"Subscription revenue of {sub.row.plan_name} ({sub.row.id}), invoice {number}", c.id)
        draft.dr(A.DEFERRED_SUBSCRIPTIONS, c.currency, fee, invoice_number=number)
        draft.cr(A.SUBSCRIPTION_REVENUE, c.currency, fee, invoice_number=number)

    def _bill_month(self, book: CustomerBook, sub: SubState, m: str) -> None:
        """Bill month m in advance: the fee (prorated by days in a partial month, cumulative
        rounding; included credits floored) split by relative SSPs (ASC 606-10-32-28..33) into
        Fc for the included credits and Fp for platform access:
        Dr 1100 F+T / Cr 2100(grant) Fc / Cr 2150 Fp / Cr 2400 T; Dr 9000 q / Cr 9100(grant) q."""
        row, c = sub.row, book.customer
        first, last = first_day(m), last_day(m)
        start = max(row.start_date, first)
        end = min(last, row.end_date) if row.end_date else last
        days, dim = (end - start).days + 1, last.day
        fee = row.monthly_fee if days == dim else cumulative_share(row.monthly_fee, days, dim)
        credits = row.included_credits if days == dim else row.included_credits * days // dim
        credit_ssp = Decimal(row.included_credits) * Decimal(row.credit_ssp)
        platform_ssp = Decimal(row.platform_ssp)
        if credits == 0 or credit_ssp == 0:
            fc, fp = 0, fee
        elif platform_ssp == 0:
            fc, fp = fee, 0
        else:
            fc, fp = allocate(fee, [credit_ssp, platform_ssp])
        tax = apply_rate(fee, parse_decimal(c.tax_rate))
        due = start_of_day(start, self.tz)
        d = self._step_date(due, period_end=False)
        span = f"{start.isoformat()} to {end.isoformat()}" + (f", {days} of {dim} days" if days != dim else "")
        text = f"{row.plan_name} plan, {m} ({span}): {format_units(credits)} included credits"
        inv = new_invoice(self.session, customer_id=c.id, currency=c.currency, issue_date=d,
                          terms_days=self.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                          event_id=row.id, lines=[(text, 1, major_str(fee, c.currency), fee)],
                          category="subscription", service_period=m)
        grant_id = f"{row.id}:{m}" if credits else None
        if grant_id:
            grow = Grant(id=grant_id, customer_id=c.id, source="subscription", units=credits, amount=fc,
                         currency=c.currency, effective_at=due, expires_at=start_of_day(end + timedelta(days=1), self.tz),
                         breakage_method="at_expiry", expected_breakage_rate=None,
                         rollover_percent=row.rollover_percent, rollover_max_periods=row.rollover_max_periods,
                         rollover_max_credits=row.rollover_max_credits, rollover_expires=row.rollover_expires,
                         renews=None, overage_price=None, contract_id=row.id, generation=0, parent_grant_id=None,
                         event_id=row.id, invoice_number=inv.number)
            self.grant_rows.append(grow)
            book.grants[grant_id] = self._state(grow)
        period_row = SubscriptionPeriod(subscription_id=row.id, period=m, customer_id=c.id, service_start=start,
                                        service_end=end, fee=fee, credits_fee=fc, platform_fee=fp, credits=credits,
                                        invoice_number=inv.number, grant_id=grant_id)
        sub.periods[m] = period_row
        self.period_rows.append(period_row)
        if fp:
            sub.pending[inv.number] = (start_of_day(end + timedelta(days=1), self.tz), fp)
        draft = self._draft(d, due, "subscription", f"{text}; invoice {inv.number}", c.id, None)
        dims = {"invoice_number": inv.number}
        draft.dr(A.RECEIVABLE, c.currency, fee + tax, **dims)
        draft.cr(A.DEFERRED_CREDITS, c.currency, fc, grant_id=grant_id, **dims)
        draft.cr(A.DEFERRED_SUBSCRIPTIONS, c.currency, fp, **dims)
        draft.cr(A.SALES_TAX, c.currency, tax, **dims)
        draft.dr(A.CREDITS_ISSUED, CREDIT, credits, grant_id=grant_id)
        draft.cr(A.CREDITS_OUTSTANDING, CREDIT, credits, grant_id=grant_id)
        self._issue(book, inv, draft)

    def _invoice_overage(self, book: CustomerBook, period: str) -> None:
        """Overage of ``period`` invoiced in arrears: Dr 1100 O+T / Cr 1150 O / Cr 2400 T."""
        c = book.customer
        lines = []
        for (p, price), acc in sorted(book.overage.items()):
            if p != period or acc.units <= acc.invoiced_units:
                continue
            amount = price_amount(acc.units, price, c.currency) - acc.invoiced_amount
            lines.append((f"Overage {period}: credits used beyond the credits held", acc.units - acc.invoiced_units,
                          price, amount))
            acc.invoiced_units, acc.invoiced_amount = acc.units, acc.invoiced_amount + amount
        subtotal = sum(ln[3] for ln in lines)
        if subtotal <= 0:
            return
        due = period_end(period, self.tz)
        d = self._step_date(due)
        tax = apply_rate(subtotal, parse_decimal(c.tax_rate))
        inv = new_invoice(self.session, customer_id=c.id, currency=c.currency, issue_date=d,
                          terms_days=self.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                          event_id=f"overage:{c.id}:{period}", lines=lines, category="overage", service_period=period)
        draft = self._draft(d, due, "overage_invoice", f"Overage of {c.id} for {period}; invoice {inv.number}", c.id)
        draft.dr(A.RECEIVABLE, c.currency, subtotal + tax, invoice_number=inv.number)
        draft.cr(A.UNBILLED, c.currency, subtotal, invoice_number=inv.number)
        draft.cr(A.SALES_TAX, c.currency, tax, invoice_number=inv.number)
        self._issue(book, inv, draft)

    def _guarantee_close(self, book: CustomerBook, gs: GuaranteeState, m: str) -> None:
        """Evaluate the guarantee at the close of month m (DESIGN 5). Monthly basis: credit
        max(0, charges(m) - legacy); cumulative basis (m is the window's last month): one credit
        of max(0, sum of charges - months x legacy). A credit G is a price concession (variable
        consideration, ASC 606-10-32-5..9), posted with a credit note: Dr 4900 G / Dr 2400 tax /
        Cr 2200 G+tax; the credit balance is applied to the next invoice."""
        c, g = book.customer, gs.row
        months = [m] if g.basis == "monthly" else gs.months
        docs, sales = G.stored_inputs(self.session, c.id, self.tz)
        docs += [G.ChargeDocument(inv.number, inv.kind, inv.category, inv.service_period, inv.subtotal, inv.reference)
                 for inv, _ in self.invoices if inv.customer_id == c.id]
        stored = {s.invoice_number for s in sales}
        sales += [G.sale_of(x.invoice_number, x.source, x.effective_at, x.expires_at, self.tz)
                  for x in book.grants.values()
                  if x.source in ("topup", "commitment") and x.invoice_number and x.invoice_number not in stored]
        charges = G.monthly_charges(docs, sales, months)
        excess = sum(charges[x].total for x in months) - g.legacy_monthly_amount * len(months)
        credit = max(0, excess)
        cn_number = None
        due = period_end(m, self.tz)
        d = self._step_date(due)
        if credit:
            cur, legacy = c.currency, g.legacy_monthly_amount
            if g.basis == "monthly":
                text = (f"No-increase guarantee {m}: new bill {major_str(charges[m].total, cur)} less legacy "
                        f"per-seat bill {major_str(legacy, cur)}")
            else:
                text = (f"No-increase guarantee {months[0]} to {months[-1]} (cumulative): new bills "
                        f"{major_str(excess + legacy * len(months), cur)} less {len(months)} x legacy per-seat bill "
                        f"{major_str(legacy, cur)}")
            tax = apply_rate(credit, parse_decimal(c.tax_rate))
            cn = new_invoice(self.session, customer_id=c.id, currency=cur, issue_date=d, terms_days=0,
                             tax_rate=c.tax_rate, tax=tax, event_id=g.id, lines=[(text, 1, major_str(credit, cur), credit)],
                             kind="credit_note", category="guarantee", service_period=m)
            cn_number = cn.number
            draft = self._draft(d, due, "guarantee_credit", f"{text}; credit note {cn.number}", c.id, g.id)
            draft.dr(A.GUARANTEE_CREDITS, cur, credit, invoice_number=cn.number, event_id=g.id)
            draft.dr(A.SALES_TAX, cur, tax, invoice_number=cn.number, event_id=g.id)
            draft.cr(A.CUSTOMER_CREDIT, cur, credit + tax, invoice_number=cn.number, event_id=g.id)
            book.credit_balance += credit + tax
            self._issue(book, cn, draft)
        for x in months:
            ch = charges[x]
            row = GuaranteeMonth(guarantee_id=g.id, period=x, customer_id=c.id, subscription=ch.subscription,
                                 overage=ch.overage, topups=ch.topups, commitments=ch.commitments, charges=ch.total,
                                 legacy=g.legacy_monthly_amount, credit=credit if x == m else 0,
                                 credit_note=cn_number if x == m else None)
            gs.done[x] = row
            self.guarantee_month_rows.append(row)

    def _issue(self, book: CustomerBook, inv: InvoiceDraft, draft: EntryDraft) -> None:
        self.invoices.append((inv, draft))
        self.summary.invoices.append(inv.number)
        if inv.kind == "invoice":
            book.open_invoices[inv.number] = book.open_invoices.get(inv.number, 0) + inv.total
            self._apply_credit(book, inv.number, draft)

    def _apply_credit(self, book: CustomerBook, number: str, issued: EntryDraft) -> None:
        """The customer credit balance applied to a new invoice: Dr 2200 / Cr 1100 (DESIGN 5)."""
        amount = min(book.credit_balance, book.open_invoices.get(number, 0))
        if amount <= 0:
            return
        c = book.customer
        draft = self._draft(issued.entry_date, issued.occurred_at, "credit_applied",
                            f"Customer credit balance of {c.id} applied to invoice {number}", c.id)
        draft.dr(A.CUSTOMER_CREDIT, c.currency, amount, invoice_number=number)
        draft.cr(A.RECEIVABLE, c.currency, amount, invoice_number=number)
        book.credit_balance -= amount
        book.open_invoices[number] -= amount
        if book.open_invoices[number] == 0:
            del book.open_invoices[number]

    # ----------------------------------------------------------------- events
    def apply(self, se: SourcedEvent) -> None:
        ev = se.event
        handler = getattr(self, "_on_" + ev.type.replace(".", "_"))  # type: ignore[attr-defined]
        handler(se, ev)

    def _record_event(self, se: SourcedEvent, customer_id: str | None, d: date, late: bool) -> None:
        self.event_rows.append(Event(
            id=se.id, type=se.event.type, customer_id=customer_id, occurred_at=se.event.occurred_at,  # type: ignore[attr-defined]
            content_hash=se.content_hash, payload=canonical_json(se.event), status="posted", late=late,
            posted_date=d, source=se.source, import_id=self.import_id))
        self.summary.posted += 1
        if late:
            self.summary.late += 1
            self.summary.late_events.append(se.id)

    def _on_customer_created(self, se: SourcedEvent, ev: CustomerCreated) -> None:
        customer = Customer(id=ev.customer_id, name=ev.name, currency=ev.currency, tax_rate=ev.tax_rate,
                            address=json.dumps(ev.address, ensure_ascii=False), email=ev.email, locale=ev.locale,
                            country=ev.country, vat_id=ev.vat_id,
                            created_at=ev.occurred_at, steps_through=None)
        self.books[ev.customer_id] = CustomerBook(customer, {}, None, {}, new=True)
        d, late = self.accounting_date(ev.occurred_at)
        self._record_event(se, ev.customer_id, d, late)

    def _prepare(self, customer_id: str, t: datetime) -> tuple[CustomerBook, date, bool]:
        book = self.book(customer_id)
        d, late = self.accounting_date(t)
        self.run_steps(book, t)
        return book, d, late

    def _on_subscription_started(self, se: SourcedEvent, ev: SubscriptionStarted) -> None:
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        plan = self.catalog.plan(ev.plan)
        assert plan is not None  # validated
        for other in book.subs:
            if other.row.end_date is None or other.row.end_date >= ev.start_date:
                raise _problem(se, "start_date", ev.start_date.isoformat(),
                               f"customer {ev.customer_id} already has subscription {other.row.id} ({other.row.plan}) "
                               f"running then; cancel it first")
        cur = book.customer.currency
        row = Subscription(id=se.id, customer_id=ev.customer_id, plan=ev.plan, plan_name=plan.name, currency=cur,
                           monthly_fee=to_minor(plan.monthly_fee, cur), included_credits=plan.included_credits,
                           credit_ssp=plan.credit_ssp, platform_ssp=plan.platform_ssp, overage_price=plan.overage_price,
                           rollover_percent=plan.rollover.percent, rollover_max_periods=plan.rollover.max_periods,
                           rollover_max_credits=plan.rollover.max_credits, rollover_expires=plan.rollover.expires,
                           start_date=ev.start_date, end_date=None, cancel_event_id=None)
        book.subs.append(SubState(row, {}, new=True))
        self._record_event(se, ev.customer_id, d, late)
        self._catch_up(book, ev.occurred_at)

    def _on_subscription_cancelled(self, se: SourcedEvent, ev: SubscriptionCancelled) -> None:
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        running = [s for s in book.subs if s.row.end_date is None]
        if not running:
            ended = [s for s in book.subs if s.row.end_date is not None]
            why = (f"subscription {ended[-1].row.id} was already cancelled (end_date {ended[-1].row.end_date})"
                   if ended else "there is no subscription")
            raise _problem(se, "customer_id", ev.customer_id, f"cannot cancel: {why}")
        sub = running[-1]
        if ev.end_date < sub.row.start_date:
            raise _problem(se, "end_date", ev.end_date.isoformat(), f"is before the subscription's start_date {sub.row.start_date}")
        sub.row.end_date, sub.row.cancel_event_id = ev.end_date, se.id
        sub.changed = True
        self._record_event(se, ev.customer_id, d, late)

    def _new_grant(self, book: CustomerBook, se: SourcedEvent, *, grant_id: str, source: str, units: int,
                   amount: int, effective_at: datetime, expires_at: datetime | None,
                   invoice_number: str | None, policy: CommitmentPurchased | None = None) -> GrantState:
        rollover = policy.rollover if policy is not None else None
        breakage = policy.breakage if policy is not None else None
        row = Grant(id=grant_id, customer_id=book.customer.id, source=source, units=units, amount=amount,
                    currency=book.customer.currency, effective_at=effective_at, expires_at=expires_at,
                    breakage_method=breakage.method if breakage else "at_expiry",
                    expected_breakage_rate=breakage.expected_rate if breakage else None,
                    rollover_percent=rollover.percent if rollover else 0,
                    rollover_max_periods=rollover.max_periods if rollover else None,
                    rollover_max_credits=rollover.max_credits if rollover else None,
                    rollover_expires=rollover.expires if rollover else True,
                    renews=policy.renews if policy is not None else None,
                    overage_price=policy.overage_price if policy is not None else None,
                    contract_id=grant_id if source == "commitment" else None,
                    generation=0, parent_grant_id=None, event_id=se.id, invoice_number=invoice_number)
        self.grant_rows.append(row)
        state = self._state(row)
        book.grants[grant_id] = state
        return state

    def _sale(self, se: SourcedEvent, book: CustomerBook, d: date, *, grant_id: str, source: str, units: int,
              amount: int, effective_at: datetime, expires_at: datetime | None, line_text: str,
              policy: CommitmentPurchased | None = None) -> None:
        """A purchase invoiced now: Dr 1100 A+T / Cr 2100(grant) A / Cr 2400 T; Dr 9000 q / Cr 9100(grant) q."""
        c = book.customer
        tax = apply_rate(amount, parse_decimal(c.tax_rate))
        price = unit_price_text(amount, units, c.currency)
        # quantity x unit price shown only when exact; otherwise one line at the whole amount
        line = (line_text, units, price, amount) if price is not None else (line_text, 1, major_str(amount, c.currency), amount)
        inv = new_invoice(self.session, customer_id=c.id, currency=c.currency, issue_date=d,
                          terms_days=self.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                          event_id=se.id, lines=[line])
        self._new_grant(book, se, grant_id=grant_id, source=source, units=units, amount=amount,
                        effective_at=effective_at, expires_at=expires_at, invoice_number=inv.number, policy=policy)
        draft = self._draft(d, se.event.occurred_at, "purchase",  # type: ignore[attr-defined]
                            f"{line_text}; invoice {inv.number}", c.id, se.id)
        dims = {"invoice_number": inv.number, "event_id": se.id}
        draft.dr(A.RECEIVABLE, c.currency, amount + tax, **dims)
        draft.cr(A.DEFERRED_CREDITS, c.currency, amount, grant_id=grant_id, **dims)
        draft.cr(A.SALES_TAX, c.currency, tax, **dims)
        draft.dr(A.CREDITS_ISSUED, CREDIT, units, grant_id=grant_id, event_id=se.id)
        draft.cr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id, event_id=se.id)
        self._issue(book, inv, draft)

    def _on_commitment_purchased(self, se: SourcedEvent, ev: CommitmentPurchased) -> None:
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        if ev.renews is not None:
            old = book.grants.get(ev.renews)
            if old is None or old.source != "commitment":
                raise _problem(se, "renews", ev.renews, f"is not a commitment of customer {ev.customer_id}")
            if old.voided:
                raise _problem(se, "renews", ev.renews, f"commitment {ev.renews} was voided")
            if old.expiry_done:
                raise _problem(se, "renews", ev.renews,
                               f"commitment {ev.renews} already expired ({old.expires_at.isoformat() if old.expires_at else ''}) "
                               "before this renewal; a renewal must be recorded before the term it renews ends")
            if any(g.renews == ev.renews for g in book.grants.values()):
                raise _problem(se, "renews", ev.renews, "is already renewed by another commitment")
        cur = book.customer.currency
        amount = to_minor(ev.amount, cur)
        self._sale(se, book, d, grant_id=ev.commitment_id, source="commitment", units=ev.credits, amount=amount,
                   effective_at=start_of_day(ev.term_start, self.tz),
                   expires_at=start_of_day(ev.term_end + timedelta(days=1), self.tz),
                   line_text=(f"Prepaid commitment {ev.commitment_id}: {format_units(ev.credits)} credits, "
                              f"term {ev.term_start.isoformat()} to {ev.term_end.isoformat()}"),
                   policy=ev)
        self._record_event(se, ev.customer_id, d, late)
        self._catch_up(book, ev.occurred_at)

    def _on_topup_purchased(self, se: SourcedEvent, ev: TopupPurchased) -> None:
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        cur = book.customer.currency
        expires_at = ev.expires_at
        if ev.pack is not None:
            pack = self.catalog.topup(ev.pack)
            assert pack is not None  # validated
            units, amount = pack.credits, to_minor(pack.price, cur)
            if expires_at is None and pack.expires_after_months:
                expires_at = start_of_day(_add_months(local_date(ev.occurred_at, self.tz), pack.expires_after_months), self.tz)
            text = f"Top-up pack {ev.pack} ({ev.topup_id}): {format_units(units)} credits"
        else:
            assert ev.credits is not None and ev.amount is not None
            units, amount = ev.credits, to_minor(ev.amount, cur)
            text = f"Top-up {ev.topup_id}: {format_units(units)} credits"
        if expires_at is not None:
            text += f", expiring {boundary_date(expires_at, self.tz).isoformat()}"
        self._sale(se, book, d, grant_id=ev.topup_id, source="topup", units=units, amount=amount,
                   effective_at=ev.occurred_at, expires_at=expires_at, line_text=text)
        self._record_event(se, ev.customer_id, d, late)
        self._catch_up(book, ev.occurred_at)

    def _on_credits_granted(self, se: SourcedEvent, ev: CreditsGranted) -> None:
        """Promotional credits: zero cost basis, CREDIT lines only."""
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        self._new_grant(book, se, grant_id=ev.grant_id, source="promotional", units=ev.credits, amount=0,
                        effective_at=ev.occurred_at, expires_at=ev.expires_at, invoice_number=None)
        draft = self._draft(d, ev.occurred_at, "promotion",
                            f"Promotional grant {ev.grant_id}: {format_units(ev.credits)} credits ({ev.reason})",
                            book.customer.id, se.id)
        draft.dr(A.CREDITS_ISSUED, CREDIT, ev.credits, grant_id=ev.grant_id, event_id=se.id)
        draft.cr(A.CREDITS_OUTSTANDING, CREDIT, ev.credits, grant_id=ev.grant_id, event_id=se.id)
        self._record_event(se, ev.customer_id, d, late)
        self._catch_up(book, ev.occurred_at)

    def _overage_price(self, book: CustomerBook, t: datetime) -> str | None:
        """The per-credit overage price in effect at t: the running subscription's plan, else a
        commitment in its term with an overage price; None means a hard cap."""
        d = local_date(t, self.tz)
        for sub in book.subs:
            if sub.active_on(d) and sub.row.overage_price:
                return sub.row.overage_price
        terms = [g for g in book.grants.values() if g.source == "commitment" and g.overage_price
                 and g.effective_at <= t and (g.expires_at is None or t < g.expires_at)]
        if terms:
            return max(terms, key=lambda g: (g.effective_at, g.seq)).overage_price
        return None

    def _on_usage_recorded(self, se: SourcedEvent, ev: UsageRecorded) -> None:
        """Draw credits in consumption order; beyond the credits held, overage at the price in
        effect (Dr 1150 / Cr 4010, Dr 9050 / Cr 9200) or, without one, quarantine (hard cap)."""
        book = self.book(ev.customer_id)
        t = ev.occurred_at
        d, late = self.accounting_date(t)
        if book.steps_through is not None and t < book.steps_through:
            late = True
            t_eff = book.steps_through
        else:
            t_eff = t
        if late and self.first_open is not None:
            t_eff = max(t_eff, start_of_day(self.first_open, self.tz))
        self.run_steps(book, t_eff)
        credits = ev.credits if ev.credits is not None else self.catalog.model.rate_card[ev.action] * ev.quantity  # type: ignore[index,operator]
        plan, available = plan_drawdown(list(book.grants.values()), t_eff, credits)
        over, price = 0, None
        if not plan:
            price = self._overage_price(book, t_eff)
            if price is not None:
                plan = plan_drawdown(list(book.grants.values()), t_eff, available)[0] if available else []
                over = credits - available
        row = {"id": se.id, "customer_id": ev.customer_id, "occurred_at": t, "credits": credits,
               "action": ev.action, "quantity": ev.quantity, "content_hash": se.content_hash,
               "status": "posted", "late": late, "entry_id": None, "import_id": self.import_id, "source": se.source,
               "overage_units": over, "overage_price": price if over else None}
        self.usage_rows.append(row)
        self.usage_index[se.id] = row
        if late:
            self.summary.late += 1
            self.summary.late_events.append(se.id)
        if not plan and not over:
            row["status"] = "quarantined"
            reason = f"hard cap: {credits} credits requested, {available} available and no overage price"
            self.quarantine_rows.append(Quarantine(event_id=se.id, customer_id=ev.customer_id, occurred_at=t,
                                                   credits=credits, reason=reason, available=available,
                                                   import_id=self.import_id))
            self.summary.quarantined += 1
            self.summary.quarantine.append((se.id, reason))
            return
        bucket = self._bucket(book, d, t)
        draws = self.draws_of.setdefault(se.id, [])
        for g, units in plan:
            usage, breakage = g.consume(units)
            acc = bucket.per_grant.setdefault(g.id, [0, 0, 0])
            acc[0] += units
            acc[1] += usage
            acc[2] += breakage
            self.draw_rows.append({"usage_event_id": se.id, "grant_id": g.id, "customer_id": ev.customer_id,
                                   "units": units})
            draws.append((g.id, units))
        if over:
            assert price is not None
            acc_o = book.overage.setdefault((period_of(d), price), Overage())
            before = price_amount(acc_o.units, price, book.customer.currency)
            acc_o.units += over
            if price_amount(acc_o.units, price, book.customer.currency) > INT64_MAX // 2:
                raise _problem(se, "credits", credits, "the overage amount exceeds the 64-bit range of amounts")
            bucket.overage_units += over
            bucket.overage_amount += price_amount(acc_o.units, price, book.customer.currency) - before
        bucket.usage_ids.append(se.id)
        self.usage_bucket[se.id] = bucket
        self.summary.posted += 1

    def _bucket(self, book: CustomerBook, d: date, t: datetime) -> ConsumptionBucket:
        key = (book.customer.id, d)
        bucket = self.buckets.get(key)
        if bucket is None:
            draft = self._draft(d, t, "consumption", "", book.customer.id)
            bucket = self.buckets[key] = ConsumptionBucket(draft)
        if bucket.last_at is None or t > bucket.last_at:
            bucket.last_at = t
        return bucket

    def _on_payment_received(self, se: SourcedEvent, ev: PaymentReceived) -> None:
        """Dr 1000 / Cr 1100 per invoice settled (the named one, else oldest first) / Cr 2200 excess."""
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        c = book.customer
        amount = to_minor(ev.amount, c.currency)
        if ev.invoice_number is not None and ev.invoice_number not in book.open_invoices:
            known = self.session.get(Invoice, ev.invoice_number)
            if known is None or known.customer_id != c.id:
                raise _problem(se, "invoice_number", ev.invoice_number, f"is not an invoice of customer {c.id}")
        order = [ev.invoice_number] if ev.invoice_number else list(book.open_invoices)
        draft = self._draft(d, ev.occurred_at, "payment", f"Payment received from {c.id}", c.id, se.id)
        draft.dr(A.CASH, c.currency, amount, event_id=se.id)
        left = amount
        for number in order:
            open_amount = book.open_invoices.get(number, 0)
            take = min(left, open_amount)
            if take > 0:
                draft.cr(A.RECEIVABLE, c.currency, take, invoice_number=number, event_id=se.id)
                book.open_invoices[number] = open_amount - take
                if book.open_invoices[number] == 0:
                    del book.open_invoices[number]
                left -= take
            if left == 0:
                break
        draft.cr(A.CUSTOMER_CREDIT, c.currency, left, event_id=se.id)
        book.credit_balance += left
        draft.description = (f"Payment received from {c.id}" +
                             (f" for {', '.join(ln.invoice_number for ln in draft.lines if ln.invoice_number)}"
                              if any(ln.invoice_number for ln in draft.lines) else "") +
                             (f"; {left} minor units to customer credit balance" if left else ""))
        self._record_event(se, ev.customer_id, d, late)

    def _on_refund_issued(self, se: SourcedEvent, ev: RefundIssued) -> None:
        """Money back for credits of a grant, with a credit note. Unused units: Dr 2100(g) at their
        relieved amount (no revenue effect) and Dr 9100(g) / Cr 9400; units beyond the unused
        ones (``concession: true``) at cost basis to Dr 4910; the tax share (cumulative per
        grant) Dr 2400; Cr 1100 while the invoice is open (credit note), the rest Cr 2300."""
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        c = book.customer
        g = book.grants.get(ev.grant_ref)
        if g is None:
            raise _problem(se, "grant_ref", ev.grant_ref, f"unknown grant of customer {c.id}")
        if g.amount == 0:
            raise _problem(se, "grant_ref", ev.grant_ref, "is a promotional (zero cost) grant: there is no money to refund")
        if g.proportional:
            raise _problem(se, "grant_ref", ev.grant_ref, "refunds of proportional-breakage grants are not supported by this version")
        unused = g.remaining
        credits = ev.credits if ev.credits is not None else unused
        if g.voided:
            raise _problem(se, "grant_ref", ev.grant_ref, "was voided: its purchase was cancelled with a credit note")
        if credits == 0:
            raise _problem(se, "grant_ref", ev.grant_ref, f"grant {g.id} has no unused credits to refund")
        units = min(credits, unused)
        beyond = credits - units
        if beyond and not ev.concession:
            raise _problem(se, "credits", credits, f"grant {g.id} has only {unused} unused credits; refunding more "
                                                   "needs \"concession\": true (posted to 4910 Refunds and concessions)")
        amount = g.relieve(units) if units else 0
        concession = round_div(g.amount * beyond, g.units) if beyond else 0
        prior = book.refunded_base.get(g.id, 0)
        if prior + amount + concession > g.amount:
            raise _problem(se, "credits", credits, f"would bring the money refunded for grant {g.id} to "
                           f"{major_str(prior + amount + concession, c.currency)}, more than its "
                           f"{major_str(g.amount, c.currency)}")
        rate = parse_decimal(c.tax_rate)
        tax = apply_rate(prior + amount + concession, rate) - apply_rate(prior, rate)
        book.refunded_base[g.id] = prior + amount + concession
        total = amount + concession + tax
        if total == 0 and units == 0:
            raise _problem(se, "credits", credits, "refunds nothing")
        original = g.invoice_number
        open_amount = max(book.open_invoices.get(original, 0), 0) if original else 0
        to_receivable = min(total, open_amount)
        lines = []
        if units:
            lines.append((f"Refund of {format_units(units)} unused credits of grant {g.id}", units,
                          unit_price_text(amount, units, c.currency) or major_str(amount, c.currency), amount))
        if beyond:
            lines.append((f"Concession: {format_units(beyond)} used credits of grant {g.id}", beyond,
                          unit_price_text(concession, beyond, c.currency) or major_str(concession, c.currency), concession))
        cn = new_invoice(self.session, customer_id=c.id, currency=c.currency, issue_date=d, terms_days=0,
                         tax_rate=c.tax_rate, tax=tax, event_id=se.id, lines=lines, kind="credit_note",
                         category="refund", reference=original)
        draft = self._draft(d, ev.occurred_at, "refund", f"Refund to {c.id}, grant {g.id}; credit note {cn.number}"
                            + (f" for invoice {original}" if original else ""), c.id, se.id)
        draft.dr(A.DEFERRED_CREDITS, c.currency, amount, grant_id=g.id, event_id=se.id)
        draft.dr(A.REFUNDS_CONCESSIONS, c.currency, concession, grant_id=g.id, event_id=se.id)
        draft.dr(A.SALES_TAX, c.currency, tax, grant_id=g.id, event_id=se.id)
        draft.cr(A.RECEIVABLE, c.currency, to_receivable, invoice_number=original, event_id=se.id)
        draft.cr(A.REFUNDS_PAYABLE, c.currency, total - to_receivable, invoice_number=cn.number, event_id=se.id)
        draft.dr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=g.id, event_id=se.id)
        draft.cr(A.CREDITS_REFUNDED, CREDIT, units, grant_id=g.id, event_id=se.id)
        if to_receivable and original:
            book.open_invoices[original] -= to_receivable
            if book.open_invoices[original] == 0:
                del book.open_invoices[original]
        self._issue(book, cn, draft)
        self._record_event(se, ev.customer_id, d, late)

    def _on_breakage_estimate_changed(self, se: SourcedEvent, ev: BreakageEstimateChanged) -> None:
        """Cumulative catch-up to the new estimate: Dr 2100(g) / Cr 4050 (negative: reversed)."""
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        g = book.grants.get(ev.grant_ref)
        if g is None:
            raise _problem(se, "grant_ref", ev.grant_ref, f"unknown grant of customer {ev.customer_id}")
        if not g.proportional:
            raise _problem(se, "grant_ref", ev.grant_ref, "uses the at_expiry breakage method; only proportional grants have an estimate")
        if g.voided:
            raise _problem(se, "grant_ref", ev.grant_ref, "was voided: its purchase was cancelled with a credit note")
        if g.expiry_done:
            raise _problem(se, "grant_ref", ev.grant_ref, "has already expired; its breakage was trued up at expiry")
        catch_up = g.change_estimate(Fraction(Decimal(ev.expected_rate)))
        draft = self._draft(d, ev.occurred_at, "breakage_estimate",
                            f"Breakage estimate of grant {g.id} changed to {ev.expected_rate}: cumulative catch-up", ev.customer_id, se.id)
        draft.dr(A.DEFERRED_CREDITS, g.currency, catch_up, grant_id=g.id, event_id=se.id)
        draft.cr(A.BREAKAGE_REVENUE, g.currency, catch_up, grant_id=g.id, event_id=se.id)
        if not draft.lines:
            self.drafts.remove(draft)
        self._record_event(se, ev.customer_id, d, late)

    # ----------------------------------------------------------------- voids
    def _on_guarantee_enrolled(self, se: SourcedEvent, ev: GuaranteeEnrolled) -> None:
        """Enrol a customer in the no-increase guarantee; credits follow at month closes."""
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        c = book.customer
        months = G.window(ev.start_month, ev.months)
        for other in book.guarantees:
            if set(other.months) & set(months):
                raise _problem(se, "start_month", ev.start_month,
                               f"customer {c.id} is already enrolled ({other.row.id}, {other.months[0]} to "
                               f"{other.months[-1]}); guarantee windows may not overlap")
        row = Guarantee(id=se.id, customer_id=c.id, currency=c.currency,
                        legacy_monthly_amount=to_minor(ev.legacy_monthly_amount, c.currency),
                        start_month=ev.start_month, months=ev.months, basis=ev.basis, enrolled_at=ev.occurred_at)
        book.guarantees.append(GuaranteeState(row, new=True))
        self._record_event(se, c.id, d, late)
        self._catch_up(book, ev.occurred_at)

    def _on_event_voided(self, se: SourcedEvent, ev: EventVoided) -> None:
        """The mirror of the target's entries, dated in the first open period, once."""
        target = ev.target_event_id
        usage = self.usage_index.get(target)
        if usage is None:
            stored = self.session.get(UsageEvent, target)
            if stored is not None:
                usage = {"id": stored.id, "customer_id": stored.customer_id, "status": stored.status,
                         "overage_units": stored.overage_units, "overage_price": stored.overage_price,
                         "entry_id": stored.entry_id}
        if usage is not None:
            self._void_usage(se, ev, usage)
            return
        drafts = [dr for dr in self.drafts if dr.event_id == target]
        if drafts:
            customer_id = drafts[0].customer_id
            originals = [(dr.kind, dr.lines) for dr in drafts]
        else:
            entries = list(self.session.execute(sa.select(JournalEntry).where(JournalEntry.event_id == target)
                                                .order_by(JournalEntry.id)).scalars())
            if not entries:
                raise _problem(se, "target_event_id", target, "has no journal entries to void")
            customer_id = entries[0].customer_id
            originals = []
            for e in entries:
                lines = [Line(ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
                              ln.invoice_number, ln.event_id)
                         for ln in self.session.execute(sa.select(JournalLine).where(JournalLine.entry_id == e.id)
                                                        .order_by(JournalLine.id)).scalars()]
                originals.append((e.kind, lines))
        assert customer_id is not None
        book, d, late = self._prepare(customer_id, ev.occurred_at)
        c = book.customer
        for kind, lines in originals:
            for ln in lines:
                if ln.account == A.CREDITS_OUTSTANDING and ln.credit:
                    g = book.grants[ln.grant_id]  # type: ignore[index]
                    if g.relieved or g.expiry_done:
                        raise _problem(se, "target_event_id", target,
                                       f"credits of grant {g.id} were already used, rolled, refunded or expired "
                                       f"({g.relieved} of {g.units}); void that usage or refund the unused credits instead")
        notes = []
        for kind, lines in originals:
            draft = self._draft(d, ev.occurred_at, "void", "", c.id, se.id)
            for ln in lines:
                draft.lines.append(Line(ln.account, ln.commodity, ln.credit, ln.debit, ln.customer_id, ln.grant_id,
                                        ln.invoice_number, ln.event_id))
                if ln.account == A.CREDITS_OUTSTANDING and ln.credit:
                    g = book.grants[ln.grant_id]  # type: ignore[index]
                    g.relieved, g.released, g.expiry_done, g.voided = g.units, g.amount, True, True
                if ln.account == A.CUSTOMER_CREDIT:
                    book.credit_balance += ln.debit - ln.credit  # mirror of a credit to 2200 takes it back
                if ln.account == A.RECEIVABLE and ln.invoice_number:
                    delta = ln.credit - ln.debit  # mirror: a debit becomes a credit
                    book.open_invoices[ln.invoice_number] = book.open_invoices.get(ln.invoice_number, 0) + delta
                    if book.open_invoices[ln.invoice_number] == 0:
                        del book.open_invoices[ln.invoice_number]
            if kind == "purchase":
                number = next(ln.invoice_number for ln in lines if ln.account == A.RECEIVABLE)
                cn = self._cancel_invoice(book, se, number, d)
                notes.append(cn.number)
                self._issue(book, cn, draft)
            draft.description = (f"Void of event {target} ({kind}): {ev.reason}"
                                 + (f"; credit note {', '.join(notes)}" if notes else ""))
        for number, amount in list(book.open_invoices.items()):
            if amount < 0:  # a paid invoice cancelled: what was paid is now owed to the customer
                reclass = self._draft(d, ev.occurred_at, "reclass", f"Invoice {number} cancelled after payment: "
                                      f"{major_str(-amount, c.currency)} to customer credit balance", c.id, se.id)
                reclass.dr(A.RECEIVABLE, c.currency, -amount, invoice_number=number, event_id=se.id)
                reclass.cr(A.CUSTOMER_CREDIT, c.currency, -amount, event_id=se.id)
                del book.open_invoices[number]
                book.credit_balance += -amount
        self._record_event(se, c.id, d, late)

    def _cancel_invoice(self, book: CustomerBook, se: SourcedEvent, number: str, d: date) -> InvoiceDraft:
        """A credit note for the whole of invoice ``number`` (a voided purchase)."""
        pending = next((inv for inv, _ in self.invoices if inv.number == number), None)
        if pending is not None:
            lines, tax, rate = list(pending.lines), pending.tax, pending.tax_rate
        else:
            inv = self.session.get(Invoice, number)
            assert inv is not None
            lines = [(ln.description, ln.quantity, ln.unit_price, ln.amount) for ln in self.session.execute(
                sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number).order_by(InvoiceLine.position)).scalars()]
            tax, rate = inv.tax, inv.tax_rate
        c = book.customer
        return new_invoice(self.session, customer_id=c.id, currency=c.currency, issue_date=d, terms_days=0,
                           tax_rate=rate, tax=tax, event_id=se.id,
                           lines=[(f"Cancels: {t}", q, p, a) for t, q, p, a in lines], kind="credit_note",
                           category="void", reference=number)

    def _void_usage(self, se: SourcedEvent, ev: EventVoided, usage: dict) -> None:
        """Return a posted usage event's units to the grants they came from (the reverse of the
        cumulative formula at the current R, so each grant stays on it) and take back its
        overage: Dr 4000 (and 4050 for proportional grants) / Cr 2100(g), Dr 9200 / Cr 9100(g);
        Dr 4010 / Cr 1150, Dr 9200 / Cr 9050."""
        target = usage["id"]
        if usage["status"] != "posted":
            raise _problem(se, "target_event_id", target, "was quarantined, not posted: there is nothing to void")
        book, d, late = self._prepare(usage["customer_id"], ev.occurred_at)
        c = book.customer
        draws = self.draws_of.get(target)
        if draws is None:
            draws = [(gid, int(u)) for gid, u in self.session.execute(
                sa.select(UsageDraw.grant_id, UsageDraw.units).where(UsageDraw.usage_event_id == target)
                .order_by(UsageDraw.grant_id))]
        draft = self._draft(d, ev.occurred_at, "void", f"Void of usage event {target}: {ev.reason}", c.id, se.id)
        for gid, units in draws:
            g = book.grants[gid]
            usage_amount, breakage = g.unconsume(units)
            draft.dr(A.USAGE_REVENUE, c.currency, usage_amount, grant_id=gid, event_id=target)
            draft.dr(A.BREAKAGE_REVENUE, c.currency, breakage, grant_id=gid, event_id=target)
            draft.cr(A.DEFERRED_CREDITS, c.currency, usage_amount + breakage, grant_id=gid, event_id=target)
            draft.dr(A.CREDITS_CONSUMED, CREDIT, units, grant_id=gid, event_id=target)
            draft.cr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=gid, event_id=target)
        over, price = int(usage["overage_units"] or 0), usage["overage_price"]
        if over:
            bucket = self.usage_bucket.get(target)
            if bucket is not None:
                posted = bucket.draft.entry_date
            else:
                posted = self.session.get(JournalEntry, usage["entry_id"]).entry_date
            key = (period_of(posted), price)
            acc = book.overage[key]
            if acc.invoiced_units > acc.units - over:
                raise _problem(se, "target_event_id", target,
                               f"its overage for {period_of(posted)} is already invoiced; issue a refund or credit note instead")
            before = price_amount(acc.units, price, c.currency)
            acc.units -= over
            amount = before - price_amount(acc.units, price, c.currency)
            if not (acc.units or acc.invoiced_units or acc.invoiced_amount):
                del book.overage[key]  # nothing left for the month: as a book derived from the journal has it
            draft.dr(A.OVERAGE_REVENUE, c.currency, amount, event_id=target)
            draft.cr(A.UNBILLED, c.currency, amount, event_id=target)
            draft.dr(A.CREDITS_CONSUMED, CREDIT, over, event_id=target)
            draft.cr(A.CREDITS_OVERAGE, CREDIT, over, event_id=target)
        self._record_event(se, c.id, d, late)
        self._catch_up(book, ev.occurred_at)

    # ----------------------------------------------------------------- writing
    def fill_consumption(self) -> None:
        """Write each consumption entry's lines and description from its bucket, once, before
        posting: per grant Dr 2100 / Cr 4000 and Dr 9100 / Cr 9200; overage Dr 1150 / Cr 4010 and
        Dr 9050 / Cr 9200; proportional breakage as its own entry (ASC 606-10-55-48)."""
        for (customer_id, d), bucket in self.buckets.items():
            draft = bucket.draft
            units_total = 0
            cur = self.books[customer_id].customer.currency
            breakage_draft = None
            for grant_id, (units, usage, breakage) in bucket.per_grant.items():
                draft.dr(A.DEFERRED_CREDITS, cur, usage, grant_id=grant_id)
                draft.cr(A.USAGE_REVENUE, cur, usage, grant_id=grant_id)
                if breakage:  # proportional method: its own entry, so reports show it as breakage
                    if breakage_draft is None:
                        breakage_draft = self._draft(d, bucket.last_at or draft.occurred_at, "proportional_breakage",
                                                     f"Proportional breakage on usage of {customer_id} on {d.isoformat()} "
                                                     "(ASC 606-10-55-48)", customer_id)
                    breakage_draft.dr(A.DEFERRED_CREDITS, cur, breakage, grant_id=grant_id)
                    breakage_draft.cr(A.BREAKAGE_REVENUE, cur, breakage, grant_id=grant_id)
                draft.dr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id)
                draft.cr(A.CREDITS_CONSUMED, CREDIT, units, grant_id=grant_id)
                units_total += units
            if bucket.overage_units:
                draft.dr(A.UNBILLED, cur, bucket.overage_amount)
                draft.cr(A.OVERAGE_REVENUE, cur, bucket.overage_amount)
                draft.dr(A.CREDITS_OVERAGE, CREDIT, bucket.overage_units)
                draft.cr(A.CREDITS_CONSUMED, CREDIT, bucket.overage_units)
                units_total += bucket.overage_units
            draft.occurred_at = bucket.last_at or draft.occurred_at
            draft.description = (f"Usage of {customer_id} on {d.isoformat()}: {len(bucket.usage_ids)} events, "
                                 f"{format_units(units_total)} credits"
                                 + (f" ({format_units(bucket.overage_units)} as overage)" if bucket.overage_units else ""))

    def new_token(self) -> int:
        """Draw the book version this run writes to every customer it loaded (see `BookCache`)."""
        self.token = secrets.randbits(62) + 1
        return self.token

    def writes_only_usage(self) -> bool:
        """True when `finish` would write nothing but journal entries, usage rows, draws,
        quarantine rows and the loaded customers' ``steps_through`` and ``book_version``: no
        customer, grant, subscription, period, invoice, event or guarantee row (what
        `ledger.direct` writes itself; keep the two in step)."""
        return not (self.grant_rows or self.period_rows or self.invoices or self.event_rows
                    or self.guarantee_month_rows
                    or any(b.new or any(st.new or st.changed for st in b.subs) or any(gs.new for gs in b.guarantees)
                           for b in self.books.values()))

    def finish(self) -> ImportSummary:
        """Fill the consumption entries, post every draft through the posting path, and write the
        customers, grants, subscriptions, events, usage rows, draws, invoices and quarantine."""
        s = self.session
        self.fill_consumption()
        new_customers = [b.customer for b in self.books.values() if b.new]
        for b in self.books.values():
            b.customer.steps_through = b.steps_through
        s.add_all(new_customers)
        s.flush()
        # a new book version for every customer whose book this run loaded (see BookCache): one
        # statement, not an UPDATE per customer row
        self.new_token()
        for chunk in chunks(sorted(self.books), 10_000):
            s.execute(sa.update(Customer).where(in_values(s, Customer.id, chunk)).values(book_version=self.token)
                      .execution_options(synchronize_session=False))
        subs = [st.row for b in self.books.values() for st in b.subs if st.new or st.changed]
        if subs:
            s.add_all(subs)
            s.flush()
        if self.grant_rows:
            s.add_all(self.grant_rows)
            s.flush()
        if self.period_rows:
            s.add_all(self.period_rows)
            s.flush()
        new_guarantees = [gs.row for b in self.books.values() for gs in b.guarantees if gs.new]
        if new_guarantees:
            s.add_all(new_guarantees)
            s.flush()
        ids = post(s, self.drafts, closed=self.closed)
        entry_id = {id(draft): eid for draft, eid in zip(self.drafts, ids)}
        for inv, draft in self.invoices:
            invoice, lines = inv.rows(entry_id[id(draft)])
            s.add(invoice)
            s.flush()
            s.add_all(lines)
        for row in self.usage_rows:
            bucket = self.usage_bucket.get(row["id"])
            if bucket is not None:
                row["entry_id"] = entry_id[id(bucket.draft)]
        bulk_insert(s, UsageEvent.__table__, self.usage_rows)  # COPY on PostgreSQL
        bulk_insert(s, UsageDraw.__table__, self.draw_rows)
        s.add_all(self.event_rows)
        s.add_all(self.quarantine_rows)
        s.add_all(self.guarantee_month_rows)
        s.flush()
        self.summary.entries = len(ids)
        return self.summary


def _root(grant_id: str) -> str:
    """The original grant of a rollover chain: "com-1~r2" -> "com-1"."""
    return grant_id.split("~r", 1)[0]


_TYPE_ORDER = {"customer.created": 0, "usage.recorded": 2}


def apply_order(se: SourcedEvent) -> tuple:
    """Events apply in occurred_at order; at the same instant a customer is created first, then
    grants, purchases and payments, then usage; ties keep input order (the sort is stable)."""
    return (se.event.occurred_at, _TYPE_ORDER.get(se.event.type, 1))  # type: ignore[attr-defined]


def import_events(session: Session, catalog: Catalog, events: list[SourcedEvent], *, sources: Sequence[str] = (),
                  parse_problems: Sequence[InputProblem] = (), dry_run: bool = False) -> ImportSummary:
    """Validate and apply a batch of events atomically; commit unless ``dry_run``.

    raises InvalidInputError (every problem, nothing posted). Events are applied in occurred_at
    order (stable: file order breaks ties).
    """
    problems = list(parse_problems)
    locked = lock_customers(session, events)
    fresh, duplicates, more = validate_batch(session, catalog, events, customers=locked)
    problems.extend(more)
    if problems:
        session.rollback()
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    try:
        # Core statements, not the ORM: an API call posts one event, and the unit of work's
        # bookkeeping for this one row cost more than the INSERT itself
        batch_id = session.execute(sa.insert(ImportBatch).values(
            sources=json.dumps(list(sources)), posted=0, duplicates=duplicates, quarantined=0, late=0)
            .returning(ImportBatch.id)).scalar_one()
        run = Run(session, catalog, batch_id, cache=BOOKS)
        run.preload([row.id for row in locked] or {getattr(se.event, "customer_id", None) for se in fresh} - {None},
                    rows=locked)
        for se in sorted(fresh, key=apply_order):
            run.apply(se)
        summary = run.finish()
        summary.duplicates = duplicates
        session.execute(sa.update(ImportBatch).where(ImportBatch.id == batch_id).values(
            posted=summary.posted, quarantined=summary.quarantined, late=summary.late))
    except BaseException:
        session.rollback()
        raise
    summary.dry_run = dry_run
    if dry_run:
        session.rollback()
    else:
        session.commit()
        BOOKS.put(run.db, run.token, run.books)
    return summary
