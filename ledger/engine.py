"""Applying events to the books, in event time (DESIGN sections 4-6).

``import_events`` validates a whole batch first (nothing is posted if any event is invalid),
then applies the events in ``occurred_at`` order. Before an event dated t is applied for a
customer, every time-driven step of that customer due at or before t (grant expiries) is run,
so one file spanning several months gives the same books as importing month by month with a
close in between. ``Run`` is the unit of work shared by the import and the close: it keeps each
customer's grants (with the units already relieved, derived from the journal), builds entry
drafts in event order, and hands them to the one posting path (ledger.posting.post).

Usage is posted as one consumption entry per customer per day per import; every usage row keeps
the id of the entry that carries it and its draws per grant (table usage_draw), so an auditor can
go from revenue to the raw events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger import accounts as A
from ledger.catalog import Catalog
from ledger.errors import InputProblem, InvalidInputError
from ledger.events import (
    CommitmentPurchased,
    CreditsGranted,
    CustomerCreated,
    PaymentReceived,
    SourcedEvent,
    TopupPurchased,
    UsageRecorded,
    canonical_json,
)
from ledger.grants import GrantState, due_expiries, plan_drawdown
from ledger.invoicing import InvoiceDraft, new_invoice, unit_price_text
from ledger.models import (
    Customer,
    Event,
    Grant,
    ImportBatch,
    Invoice,
    JournalLine,
    Quarantine,
    UsageDraw,
    UsageEvent,
)
from ledger.money import CREDIT, apply_rate, format_units, major_str, parse_decimal, to_minor
from ledger.periods import boundary_date, first_open_day, local_date, start_of_day
from ledger.posting import EntryDraft, post

_CHUNK = 500


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


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


@dataclass
class CustomerBook:
    """One customer's working state during a run, derived from the journal at load time."""

    customer: Customer
    grants: dict[str, GrantState]
    steps_through: datetime | None
    open_invoices: dict[str, int]  # invoice number -> open receivable, oldest first
    new: bool = False
    steps_changed: bool = False


@dataclass
class _Bucket:
    """The consumption entry of one customer, day and import, filled as usage is drawn."""

    draft: EntryDraft
    per_grant: dict[str, list[int]] = field(default_factory=dict)  # grant id -> [units, amount]
    usage_ids: list[str] = field(default_factory=list)
    last_at: datetime | None = None


class Run:
    """A unit of work over the books: apply events and time-driven steps, then ``finish``."""

    def __init__(self, session: Session, catalog: Catalog, import_id: int | None = None):
        self.session = session
        self.catalog = catalog
        self.tz = catalog.tz
        self.import_id = import_id
        self.first_open: date | None = first_open_day(session)
        self.books: dict[str, CustomerBook] = {}
        self.drafts: list[EntryDraft] = []
        self.buckets: dict[tuple[str, date], _Bucket] = {}
        self.invoices: list[tuple[InvoiceDraft, EntryDraft]] = []
        self.grant_rows: list[Grant] = []
        self.event_rows: list[Event] = []
        self.usage_rows: list[dict] = []
        self.usage_bucket: dict[str, _Bucket] = {}
        self.draw_rows: list[dict] = []
        self.quarantine_rows: list[Quarantine] = []
        self.summary = ImportSummary(import_id=import_id)
        self._grant_seq = 0

    # ----------------------------------------------------------------- loading state
    def book(self, customer_id: str) -> CustomerBook:
        """The customer's book, loaded from the database on first use."""
        book = self.books.get(customer_id)
        if book is None:
            book = self._load(customer_id)
            self.books[customer_id] = book
        return book

    def _load(self, customer_id: str) -> CustomerBook:
        s = self.session
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise KeyError(customer_id)
        relieved = dict(
            s.execute(
                sa.select(JournalLine.grant_id, sa.func.sum(JournalLine.debit))
                .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.CREDITS_OUTSTANDING)
                .group_by(JournalLine.grant_id)
            ).all()
        )
        grants: dict[str, GrantState] = {}
        rows = s.execute(sa.select(Grant).where(Grant.customer_id == customer_id)
                         .order_by(Grant.effective_at, Grant.id)).scalars()
        for g in rows:
            grants[g.id] = self._state(g, int(relieved.get(g.id) or 0))
        ar = s.execute(
            sa.select(JournalLine.invoice_number, sa.func.sum(JournalLine.debit - JournalLine.credit))
            .join(Invoice, Invoice.number == JournalLine.invoice_number)
            .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.RECEIVABLE)
            .group_by(JournalLine.invoice_number, Invoice.issue_date)
            .order_by(Invoice.issue_date, JournalLine.invoice_number)
        ).all()
        open_invoices = {n: int(v) for n, v in ar if v}
        return CustomerBook(customer, grants, customer.steps_through, open_invoices)

    def _state(self, g: Grant, relieved: int = 0) -> GrantState:
        self._grant_seq += 1
        return GrantState(g.id, g.customer_id, g.source, g.units, g.amount, g.currency, g.effective_at,
                          g.expires_at, relieved, self._grant_seq)

    # ----------------------------------------------------------------- dating
    def accounting_date(self, t: datetime) -> tuple[date, bool]:
        """(entry date, late): the local date of t, or the first open day when t's period is closed."""
        d = local_date(t, self.tz)
        if self.first_open is not None and d < self.first_open:
            return self.first_open, True
        return d, False

    def _step_date(self, due: datetime) -> date:
        d = boundary_date(due, self.tz)
        return max(d, self.first_open) if self.first_open else d

    def _draft(self, d: date, t: datetime, kind: str, description: str, customer_id: str | None,
               event_id: str | None = None) -> EntryDraft:
        draft = EntryDraft(d, t, kind, description, customer_id, event_id, self.import_id)
        self.drafts.append(draft)
        return draft

    # ----------------------------------------------------------------- time-driven steps
    def run_steps(self, book: CustomerBook, until: datetime) -> None:
        """Run every step of the customer due at or before ``until``: expiries (breakage at expiry,
        ASC 606-10-55-48: the remaining deferred revenue of an expired grant is recognised)."""
        for g in due_expiries(list(book.grants.values()), until):
            assert g.expires_at is not None
            units = g.remaining
            amount = g.relieve(units)
            draft = self._draft(self._step_date(g.expires_at), g.expires_at, "expiry",
                                f"Grant {g.id} expired with {format_units(units)} credits unused",
                                book.customer.id)
            draft.dr(A.DEFERRED_CREDITS, g.currency, amount, grant_id=g.id)
            draft.cr(A.BREAKAGE_REVENUE, g.currency, amount, grant_id=g.id)
            draft.dr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=g.id)
            draft.cr(A.CREDITS_EXPIRED, CREDIT, units, grant_id=g.id)
            self._advance(book, g.expires_at)

    def _advance(self, book: CustomerBook, through: datetime) -> None:
        if book.steps_through is None or through > book.steps_through:
            book.steps_through = through
            book.steps_changed = True

    def _catch_up(self, book: CustomerBook) -> None:
        """After a grant is added late (its expiry already behind the customer's steps), run it."""
        if book.steps_through is not None:
            self.run_steps(book, book.steps_through)

    def close_through(self, book: CustomerBook, until: datetime) -> None:
        """Run the customer's steps due by ``until`` (a period end) and mark them run through it."""
        self.run_steps(book, until)
        self._advance(book, until)

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
                            created_at=ev.occurred_at, steps_through=None)
        self.books[ev.customer_id] = CustomerBook(customer, {}, None, {}, new=True)
        d, late = self.accounting_date(ev.occurred_at)
        self._record_event(se, ev.customer_id, d, late)

    def _prepare(self, customer_id: str, t: datetime) -> tuple[CustomerBook, date, bool]:
        book = self.book(customer_id)
        d, late = self.accounting_date(t)
        self.run_steps(book, t)
        return book, d, late

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
                                effective_at=effective_at, expires_at=expires_at, invoice_number=inv.number,
                                policy=policy)
        draft = self._draft(d, se.event.occurred_at, "purchase",  # type: ignore[attr-defined]
                            f"{line_text}; invoice {inv.number}", c.id, se.id)
        dims = {"invoice_number": inv.number, "event_id": se.id}
        draft.dr(A.RECEIVABLE, c.currency, amount + tax, **dims)
        draft.cr(A.DEFERRED_CREDITS, c.currency, amount, grant_id=grant_id, **dims)
        draft.cr(A.SALES_TAX, c.currency, tax, **dims)
        draft.dr(A.CREDITS_ISSUED, CREDIT, units, grant_id=grant_id, event_id=se.id)
        draft.cr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id, event_id=se.id)
        self.invoices.append((inv, draft))
        self.summary.invoices.append(inv.number)
        book.open_invoices[inv.number] = inv.total
        self._catch_up(book)

    def _on_commitment_purchased(self, se: SourcedEvent, ev: CommitmentPurchased) -> None:
        book, d, late = self._prepare(ev.customer_id, ev.occurred_at)
        cur = book.customer.currency
        amount = to_minor(ev.amount, cur)
        self._sale(se, book, d, grant_id=ev.commitment_id, source="commitment", units=ev.credits, amount=amount,
                   effective_at=start_of_day(ev.term_start, self.tz),
                   expires_at=start_of_day(ev.term_end + timedelta(days=1), self.tz),
                   line_text=(f"Prepaid commitment {ev.commitment_id}: {format_units(ev.credits)} credits, "
                              f"term {ev.term_start.isoformat()} to {ev.term_end.isoformat()}"),
                   policy=ev)
        self._record_event(se, ev.customer_id, d, late)

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
        self._catch_up(book)
        self._record_event(se, ev.customer_id, d, late)

    def _on_usage_recorded(self, se: SourcedEvent, ev: UsageRecorded) -> None:
        """Draw credits in consumption order; beyond the credits held, quarantine (hard cap)."""
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
        row = {"id": se.id, "customer_id": ev.customer_id, "occurred_at": t, "credits": credits,
               "action": ev.action, "quantity": ev.quantity, "content_hash": se.content_hash,
               "status": "posted", "late": late, "entry_id": None, "import_id": self.import_id, "source": se.source}
        self.usage_rows.append(row)
        if late:
            self.summary.late += 1
            self.summary.late_events.append(se.id)
        if not plan:
            row["status"] = "quarantined"
            reason = f"hard cap: {credits} credits requested, {available} available and no overage price"
            self.quarantine_rows.append(Quarantine(event_id=se.id, customer_id=ev.customer_id, occurred_at=t,
                                                   credits=credits, reason=reason, available=available,
                                                   import_id=self.import_id))
            self.summary.quarantined += 1
            self.summary.quarantine.append((se.id, reason))
            return
        bucket = self._bucket(book, d, t)
        for g, units in plan:
            amount = g.relieve(units)
            acc = bucket.per_grant.setdefault(g.id, [0, 0])
            acc[0] += units
            acc[1] += amount
            self.draw_rows.append({"usage_event_id": se.id, "grant_id": g.id, "customer_id": ev.customer_id,
                                   "units": units})
        bucket.usage_ids.append(se.id)
        self.usage_bucket[se.id] = bucket
        self.summary.posted += 1

    def _bucket(self, book: CustomerBook, d: date, t: datetime) -> _Bucket:
        key = (book.customer.id, d)
        bucket = self.buckets.get(key)
        if bucket is None:
            draft = self._draft(d, t, "consumption", "", book.customer.id)
            bucket = self.buckets[key] = _Bucket(draft)
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
                raise InvalidInputError([InputProblem(se.file, se.line, "invoice_number", ev.invoice_number,
                                                      f"is not an invoice of customer {c.id}")])
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
        draft.description = (f"Payment received from {c.id}" +
                             (f" for {', '.join(ln.invoice_number for ln in draft.lines if ln.invoice_number)}"
                              if any(ln.invoice_number for ln in draft.lines) else "") +
                             (f"; {left} minor units to customer credit balance" if left else ""))
        self._record_event(se, ev.customer_id, d, late)

    # ----------------------------------------------------------------- writing
    def finish(self) -> ImportSummary:
        """Fill the consumption entries, post every draft through the posting path, and write the
        customers, grants, events, usage rows, draws, invoices and quarantine of this run."""
        s = self.session
        for (customer_id, d), bucket in self.buckets.items():
            draft = bucket.draft
            units_total = 0
            for grant_id, (units, amount) in bucket.per_grant.items():
                g = self.books[customer_id].grants[grant_id]
                draft.dr(A.DEFERRED_CREDITS, g.currency, amount, grant_id=grant_id)
                draft.cr(A.USAGE_REVENUE, g.currency, amount, grant_id=grant_id)
                draft.dr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id)
                draft.cr(A.CREDITS_CONSUMED, CREDIT, units, grant_id=grant_id)
                units_total += units
            draft.occurred_at = bucket.last_at or draft.occurred_at
            draft.description = (f"Usage of {customer_id} on {d.isoformat()}: {len(bucket.usage_ids)} events, "
                                 f"{format_units(units_total)} credits")
        new_customers = [b.customer for b in self.books.values() if b.new]
        for b in self.books.values():
            b.customer.steps_through = b.steps_through
        s.add_all(new_customers)
        s.flush()
        if self.grant_rows:
            s.add_all(self.grant_rows)
            s.flush()
        ids = post(s, self.drafts)
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
        for chunk in _chunks(self.usage_rows, 5000):
            s.execute(sa.insert(UsageEvent), list(chunk))
        for chunk in _chunks(self.draw_rows, 5000):
            s.execute(sa.insert(UsageDraw), list(chunk))
        s.add_all(self.event_rows)
        s.add_all(self.quarantine_rows)
        s.flush()
        self.summary.entries = len(ids)
        return self.summary


# --------------------------------------------------------------------------- validation
def _existing(session: Session, model, ids: list[str]) -> dict[str, tuple[str, str]]:
    """id -> (content hash, source) for ids already stored in ``model``."""
    out: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(ids):
        for i, h, src in session.execute(sa.select(model.id, model.content_hash, model.source).where(model.id.in_(chunk))):
            out[i] = (h, src)
    return out


def validate_batch(session: Session, catalog: Catalog, events: list[SourcedEvent]) -> tuple[list[SourcedEvent], int, list[InputProblem]]:
    """Check a parsed batch against the books: returns (new events to apply, duplicates, problems).

    Identical re-imports (same id and content hash) are duplicates; the same id with different
    content is a conflict problem naming both sources. References (customers, packs, actions,
    grant ids) and amounts in the customer's currency are checked here, so that an invalid batch
    posts nothing.
    """
    problems: list[InputProblem] = []
    ids = [se.id for se in events]
    stored = _existing(session, Event, ids)
    stored.update(_existing(session, UsageEvent, ids))
    seen: dict[str, SourcedEvent] = {}
    fresh: list[SourcedEvent] = []
    duplicates = 0
    for se in events:
        prior = seen.get(se.id)
        if prior is not None:
            if prior.content_hash == se.content_hash:
                duplicates += 1
            else:
                problems.append(InputProblem(se.file, se.line, "id", se.id,
                                             f"conflicts with {prior.source}: same event id, different content"))
            continue
        seen[se.id] = se
        if se.id in stored:
            h, src = stored[se.id]
            if h == se.content_hash:
                duplicates += 1
            else:
                problems.append(InputProblem(se.file, se.line, "id", se.id,
                                             f"conflicts with the event already posted from {src}: same event id, "
                                             f"different content (sha256 {h[:12]}... vs {se.content_hash[:12]}...)"))
            continue
        fresh.append(se)

    customer_ids = sorted({getattr(se.event, "customer_id", None) for se in fresh} - {None})
    known: dict[str, tuple[str, datetime | None]] = {}
    for chunk in _chunks(customer_ids):
        for cid, cur in session.execute(sa.select(Customer.id, Customer.currency).where(Customer.id.in_(chunk))):
            known[cid] = (cur, None)
    grant_ids: set[str] = set()
    new_grant_ids = [getattr(se.event, k) for se in fresh for k in ("commitment_id", "topup_id", "grant_id")
                     if getattr(se.event, k, None) is not None and se.event.type != "usage.recorded"]  # type: ignore[attr-defined]
    for chunk in _chunks(new_grant_ids):
        grant_ids.update(session.execute(sa.select(Grant.id).where(Grant.id.in_(chunk))).scalars())
    batch_grants: dict[str, str] = {}

    def problem(se: SourcedEvent, fld: str, value: object, msg: str) -> None:
        problems.append(InputProblem(se.file, se.line, fld, value, msg))

    for se in sorted(fresh, key=lambda x: (x.event.type != "customer.created", x.event.occurred_at)):  # type: ignore[attr-defined]
        ev = se.event
        if isinstance(ev, CustomerCreated):
            if ev.customer_id in known:
                problem(se, "customer_id", ev.customer_id, "customer already exists")
            else:
                known[ev.customer_id] = (ev.currency, ev.occurred_at)
            continue
        cid = ev.customer_id  # type: ignore[attr-defined]
        if cid not in known:
            problem(se, "customer_id", cid, "unknown customer (no customer.created event for it)")
            continue
        cur, created_at = known[cid]
        if created_at is not None and ev.occurred_at < created_at:  # type: ignore[attr-defined]
            problem(se, "occurred_at", ev.occurred_at.isoformat(), f"is before customer {cid} was created ({created_at.isoformat()})")  # type: ignore[attr-defined]
        for fld in ("amount",):
            value = getattr(ev, fld, None)
            if value is not None:
                try:
                    minor = to_minor(value, cur)
                except ValueError as exc:
                    problem(se, fld, value, str(exc))
                    continue
                if minor <= 0 and not isinstance(ev, CreditsGranted):
                    problem(se, fld, value, "must be positive")
        for fld in ("commitment_id", "topup_id", "grant_id"):
            gid = getattr(ev, fld, None)
            if gid is None:
                continue
            if gid in grant_ids:
                problem(se, fld, gid, "a grant with this id already exists")
            elif gid in batch_grants:
                problem(se, fld, gid, f"is used twice in this batch (also at {batch_grants[gid]})")
            batch_grants[gid] = se.source
        if isinstance(ev, CommitmentPurchased):
            if ev.renews is not None:
                problem(se, "renews", ev.renews, "renewals with rollover are not supported by this version yet")
            if ev.overage_price is not None:
                problem(se, "overage_price", ev.overage_price, "overage is not supported by this version yet; omit it for a hard cap")
            if ev.breakage is not None and ev.breakage.method != "at_expiry":
                problem(se, "breakage.method", ev.breakage.method, "only 'at_expiry' breakage is supported by this version yet")
        if isinstance(ev, TopupPurchased) and ev.pack is not None:
            pack = catalog.topup(ev.pack)
            if pack is None:
                problem(se, "pack", ev.pack, f"unknown top-up pack (catalog: {', '.join(catalog.model.topups) or 'none'})")
            elif pack.currency != cur:
                problem(se, "pack", ev.pack, f"is priced in {pack.currency}; customer {cid} pays in {cur}")
        if isinstance(ev, UsageRecorded) and ev.action is not None and ev.action not in catalog.model.rate_card:
            problem(se, "action", ev.action, "unknown action (not in the catalog's rate_card)")
        for fld in ("expires_at",):
            exp = getattr(ev, fld, None)
            if exp is not None and exp <= ev.occurred_at:  # type: ignore[attr-defined]
                problem(se, fld, exp.isoformat(), "must be after occurred_at")
    problems.sort(key=lambda p: (p.file, p.line))
    return fresh, duplicates, problems


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
    fresh, duplicates, more = validate_batch(session, catalog, events)
    problems.extend(more)
    if problems:
        session.rollback()
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    try:
        batch = ImportBatch(sources=json.dumps(list(sources)), posted=0, duplicates=duplicates, quarantined=0, late=0)
        session.add(batch)
        session.flush()
        run = Run(session, catalog, batch.id)
        for se in sorted(fresh, key=apply_order):
            run.apply(se)
        summary = run.finish()
        summary.duplicates = duplicates
        batch.posted, batch.quarantined, batch.late = summary.posted, summary.quarantined, summary.late
        session.add(batch)
        session.flush()
    except BaseException:
        session.rollback()
        raise
    summary.dry_run = dry_run
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return summary
