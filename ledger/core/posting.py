"""A posting: events applied to customers' books in event time, giving journal entries,
documents and records as values (docs/design.md §5-6).

`Posting` is the accounting core's unit of work. It holds the books of the customers it
touches (read once through a `LedgerStore`), the closed periods (so a late event is dated in
the first open one), and everything the rules produce: journal entries in posting order,
invoices and credit notes, grants, subscription months, guarantee months, event, usage, draw
and quarantine records. It never writes: the store's writer does, from `Posting.entries` and
the record lists, in one transaction the service layer opens and commits.

Pipeline::

    p = Posting(catalog, store, closed=closed_periods, import_id=batch)
    p.preload(customer_ids)
    for se in sorted(events, key=apply_order):
        p.apply(se)            # HANDLERS[type(event)](p, se, event), time-driven steps first
    journal = p.entries()      # consumption buckets become entries
    writer.write(session, p, journal)

A caller that writes while it applies (the set-based usage import) takes the entries of the
journal so far with `Posting.settle` once no later event can draw on their buckets; `entries`
then gives the same journal, those entries first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction

from ledger.core import accounts as A
from ledger.catalog import Catalog
from ledger.core.book import ConsumptionBucket, CustomerBook
from ledger.core.documents import InvoiceDraft, buyer_snapshot
from ledger.core.entries import EntryDraft, EntryKind
from ledger.core.ports import LedgerStore
from ledger.core.records import (
    EventRecord,
    GrantRecord,
    GuaranteeMonthRecord,
    QuarantineRecord,
    SubscriptionPeriodRecord,
    UsageRecord,
)
from ledger.errors import InputProblem, InvalidInputError
from ledger.events import SourcedEvent, canonical_json
from ledger.core.grants import GrantState
from ledger.core.periods import boundary_date, first_open_day, local_date


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
    set_based: bool = False  # posted by the set-based usage import (ledger.services.bulk_usage)
    # the sources ("file:line") of the events counted in ``duplicates``, when the general path
    # (`ledger.services.importing.import_events`) imported them: an HTTP request's per-event outcome
    duplicate_sources: list[str] = field(default_factory=list, compare=False)


@dataclass
class Journal:
    """The entries a posting writes, in order, and which entry carries what: ``usage_entry``
    maps a posted usage event id to the index of its consumption entry in ``drafts``;
    ``invoice_entry`` gives, for each of the posting's documents (in `Posting.invoices` order),
    the index of the entry that issued it."""

    drafts: list[EntryDraft]  # a consumption entry `Posting.forget` let go of is `WRITTEN`
    usage_entry: dict[str, int]
    invoice_entry: list[int]
    bucket_entry: dict[tuple[str, date], int] = field(default_factory=dict)  # (customer, day) -> index
    ids: list[int] = field(default_factory=list)  # the entries' ids, once the writer has written them


WRITTEN = EntryDraft(date.min, datetime.min.replace(tzinfo=timezone.utc), EntryKind.CONSUMPTION, "written already")
"""What `Posting.forget` leaves in the place of a consumption entry its caller has written. It
has no lines, so the writer refuses to write it (`ledger.core.entries.check_draft`)."""


def problem(se: SourcedEvent, fld: str, value: object, message: str) -> InvalidInputError:
    """The error for one event's problem: file, line, field, value and what is wrong."""
    return InvalidInputError([InputProblem(se.file, se.line, fld, value, message)])


_TYPE_ORDER = {"customer.created": 0, "usage.recorded": 2}


def apply_order(se: SourcedEvent) -> tuple:
    """Events apply in occurred_at order; at the same instant a customer is created first, then
    grants, purchases and payments, then usage; ties keep input order (the sort is stable)."""
    return (se.event.occurred_at, _TYPE_ORDER.get(se.event.type, 1))  # type: ignore[attr-defined]


def root_grant(grant_id: str) -> str:
    """The original grant of a rollover chain: "com-1~r2" -> "com-1"."""
    return grant_id.split("~r", 1)[0]


class Posting:
    """Apply events and time-driven steps to customers' books; collect what is to be written."""

    def __init__(self, catalog: Catalog, store: LedgerStore, *, closed: Sequence[str],
                 import_id: int | None = None) -> None:
        """closed: the closed periods ('YYYY-MM'), oldest first, as read in the transaction
        that will write this posting."""
        self.catalog = catalog
        self.tz = catalog.tz
        self.store = store
        self.import_id = import_id
        self.closed = list(closed)
        self.first_open: date | None = first_open_day(self.closed)
        self.books: dict[str, CustomerBook] = {}
        self.journal: list[EntryDraft | ConsumptionBucket] = []  # in posting order
        self.buckets: dict[tuple[str, date], ConsumptionBucket] = {}
        self.invoices: list[tuple[InvoiceDraft, EntryDraft]] = []
        self.grant_rows: list[GrantRecord] = []
        self.event_rows: list[EventRecord] = []
        self.usage_rows: list[UsageRecord] = []
        self.usage_index: dict[str, UsageRecord] = {}
        self.usage_bucket: dict[str, ConsumptionBucket] = {}
        self.draws_of: dict[str, list[tuple[str, int]]] = {}
        self.held: dict[str, int] = {}  # usage event id -> units still held for review (soft cap)
        self.quarantine_rows: list[QuarantineRecord] = []
        self.period_rows: list[SubscriptionPeriodRecord] = []
        self.guarantee_month_rows: list[GuaranteeMonthRecord] = []
        self.summary = ImportSummary(import_id=import_id)
        self._grant_seq = 0
        self._journal: Journal | None = None
        # what `settle` has built so far: entries in posting order, the breakage entries held
        # back, and the indices of usage events and buckets in the entries
        self._settled: list[EntryDraft] = []
        self._breakage: list[EntryDraft] = []
        self._usage_entry: dict[str, int] = {}
        self._bucket_entry: dict[tuple[str, date], int] = {}
        self._forgotten = 0  # the settled entries before this index are written (`forget`)
        self._seller: str | None = None  # the catalog's company as canonical JSON, once a document is issued

    # ----------------------------------------------------------------- books
    def book(self, customer_id: str) -> CustomerBook:
        """The customer's book, read through the store on first use; raises KeyError for an
        unknown customer."""
        book = self.books.get(customer_id)
        if book is None:
            self.preload([customer_id])
            book = self.books.get(customer_id)
            if book is None:
                raise KeyError(customer_id)
        return book

    def preload(self, customer_ids: Iterable[str]) -> None:
        """Read the books of every customer in ``customer_ids`` not read yet, in one call."""
        ids = sorted({c for c in customer_ids if c not in self.books})
        if ids:
            loaded = self.store.load_books(ids)
            for cid in ids:
                if cid in loaded:
                    self.adopt(loaded[cid])

    def adopt(self, book: CustomerBook) -> None:
        """Take a book into this posting, its grants in load order ((effective_at, id)) with this
        posting's sequence numbers (the drawdown order's last tie-breaker)."""
        book.grants = {g.id: g for g in sorted(book.grants.values(), key=lambda g: (g.effective_at, g.id))}
        for g in book.grants.values():
            self._grant_seq += 1
            g.seq = self._grant_seq
        self.books[book.customer.id] = book

    def add_grant(self, book: CustomerBook, row: GrantRecord) -> GrantState:
        """Record a new grant and put its state into ``book``."""
        self.grant_rows.append(row)
        self._grant_seq += 1
        state = grant_state(row, seq=self._grant_seq)
        book.grants[row.id] = state
        return state

    # ----------------------------------------------------------------- dating
    def accounting_date(self, t: datetime) -> tuple[date, bool]:
        """(entry date, late): the local date of t, or the first open day when t's period is closed."""
        d = local_date(t, self.tz)
        if self.first_open is not None and d < self.first_open:
            return self.first_open, True
        return d, False

    def step_date(self, due: datetime, *, period_end: bool = True) -> date:
        """A step at a period boundary belongs to the period that ends there (docs/design.md §6);
        a subscription bill is dated the day its month starts. Never before the first open day."""
        d = boundary_date(due, self.tz) if period_end else local_date(due, self.tz)
        return max(d, self.first_open) if self.first_open else d

    # ----------------------------------------------------------------- entries and documents
    def entry(self, d: date, t: datetime, kind: EntryKind, description: str, customer_id: str | None,
              event_id: str | None = None) -> EntryDraft:
        """A new journal entry of this posting, in posting order."""
        draft = EntryDraft(d, t, kind, description, customer_id, event_id, self.import_id)
        self.journal.append(draft)
        return draft

    def bucket(self, book: CustomerBook, d: date, t: datetime) -> ConsumptionBucket:
        """The consumption bucket of the customer and accounting day ``d``, made at first use
        (its place in posting order is where its entry goes)."""
        key = (book.customer.id, d)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = ConsumptionBucket(book.customer.id, d, t)
            self.journal.append(bucket)
        if bucket.last_at is None or t > bucket.last_at:
            bucket.last_at = t
        return bucket

    def issue(self, book: CustomerBook, inv: InvoiceDraft, draft: EntryDraft) -> None:
        """Issue ``inv`` with its entry ``draft``: it keeps the seller (the catalog's company),
        the logo and the customer as they are now, so that it never changes (docs/design.md
        §5.8); an invoice gets the customer's credit balance applied at once (`apply_credit`).
        raises CatalogError when the catalog has no company."""
        if self._seller is None:
            self._seller = self.catalog.seller_snapshot()
        inv.seller, inv.buyer = self._seller, buyer_snapshot(book.customer)
        inv.logo, inv.logo_type = self.catalog.logo, self.catalog.logo_type
        self.invoices.append((inv, draft))
        self.summary.invoices.append(inv.number)
        if inv.kind == "invoice":
            book.open_invoices[inv.number] = book.open_invoices.get(inv.number, 0) + inv.total
            self.apply_credit(book, inv.number, draft)

    def apply_credit(self, book: CustomerBook, number: str, issued: EntryDraft) -> None:
        """The customer credit balance applied to a new invoice: Dr 2200 / Cr 1100 (docs/design.md §5)."""
        amount = min(book.credit_balance, book.open_invoices.get(number, 0))
        if amount <= 0:
            return
        c = book.customer
        draft = self.entry(issued.entry_date, issued.occurred_at, EntryKind.CREDIT_APPLIED,
                           f"Customer credit balance of {c.id} applied to invoice {number}", c.id)
        draft.dr(A.CUSTOMER_CREDIT, c.currency, amount, invoice_number=number)
        draft.cr(A.RECEIVABLE, c.currency, amount, invoice_number=number)
        book.credit_balance -= amount
        book.open_invoices[number] -= amount
        if book.open_invoices[number] == 0:
            del book.open_invoices[number]

    def drafts(self) -> list[EntryDraft]:
        """The entries built so far (consumption buckets are not entries until `entries`, nor
        until `settle` made them entries)."""
        return ([d for d in self._settled if d.kind != EntryKind.CONSUMPTION]
                + [d for d in self.journal if isinstance(d, EntryDraft)])

    # ----------------------------------------------------------------- events
    def apply(self, se: SourcedEvent) -> None:
        """Apply one validated event: its handler from the table in ``ledger.core.rules``."""
        from ledger.core.rules import HANDLERS

        HANDLERS[type(se.event)](self, se, se.event)

    def record_event(self, se: SourcedEvent, customer_id: str | None, d: date, late: bool) -> None:
        """Record a posted business event (usage is recorded by its own rule); its payload is the
        canonical JSON the event was hashed by when it was read from a file (``se.payload``)."""
        payload = se.payload if se.payload is not None else canonical_json(se.event)
        self.event_rows.append(EventRecord(
            id=se.id, type=se.event.type, customer_id=customer_id, occurred_at=se.event.occurred_at,  # type: ignore[attr-defined]
            content_hash=se.content_hash, payload=payload, status="posted", late=late,
            posted_date=d, source=se.source, import_id=self.import_id))
        self.summary.posted += 1
        if late:
            self.summary.late += 1
            self.summary.late_events.append(se.id)

    def prepare(self, customer_id: str, t: datetime) -> tuple[CustomerBook, date, bool]:
        """The customer's book with every step due by ``t`` run, and the event's (date, late)."""
        from ledger.core.schedule import run_steps

        book = self.book(customer_id)
        d, late = self.accounting_date(t)
        run_steps(self, book, t)
        return book, d, late

    # ----------------------------------------------------------------- the result
    def entries(self) -> Journal:
        """Every entry of the posting, in posting order: each consumption bucket becomes its
        consumption entry in its place (and gives up its sums), and the proportional-breakage
        entries follow the rest. An entry without lines that no document names is left out
        (the writer refuses any other with an internal error). The entries `settle` gave
        already come first, in the same places and with the same indices. Built once; apply
        nothing after it."""
        if self._journal is None:
            self.settle()
            drafts = self._settled
            position = {id(d): i for i, d in enumerate(drafts)}
            self._journal = Journal(drafts + self._breakage, self._usage_entry,
                                    [position[id(draft)] for _, draft in self.invoices], self._bucket_entry)
            self._settled, self._breakage, self.usage_bucket = [], [], {}
        return self._journal

    def settle(self) -> list[EntryDraft]:
        """Turn the journal items posted so far into entries, as `entries` does, and return the
        new ones in posting order (their indices in `entries` follow those returned before):
        the proportional-breakage entries are held back until `entries`. For a caller that
        writes a posting's entries while it applies more: every bucket settled must be
        complete, so call it only once nothing later can draw on those buckets (events
        applied in time order, past the end of the buckets' accounting days).
        raises RuntimeError when a bucket already settled was drawn on again."""
        from ledger.core.rules.usage import consumption_entries

        start = len(self._settled)
        drafts, named = self._settled, {id(draft) for _, draft in self.invoices}
        # each bucket is let go once it is its entry: a month's buckets and entries are never
        # held at once
        items, self.journal = self.journal, []
        items.reverse()
        while items:
            item = items.pop()
            if isinstance(item, ConsumptionBucket):
                key = (item.customer_id, item.entry_date)
                if key in self._bucket_entry:
                    raise RuntimeError(f"the consumption bucket of {key} was settled before it was complete")
                del self.buckets[key]
                entry, extra = consumption_entries(self, item)
                self._usage_entry.update((uid, len(drafts)) for uid in item.usage_ids)
                self._bucket_entry[key] = len(drafts)
                drafts.append(entry)
                if extra is not None:
                    self._breakage.append(extra)
            elif item.lines or id(item) in named:
                drafts.append(item)  # an entry that moved nothing is dropped, unless a document names it
        return drafts[start:]

    def forget(self, count: int) -> None:
        """The first ``count`` entries `settle` gave are written, by the caller, in the posting's
        transaction: each consumption entry among them that no document names becomes `WRITTEN`
        in `entries`, in its place and at its index, so that a month of lines is not held until
        the posting ends. The other entries stay (`drafts` reads them)."""
        drafts, named = self._settled, {id(draft) for _, draft in self.invoices}
        for i in range(self._forgotten, min(count, len(drafts))):
            if drafts[i].kind == EntryKind.CONSUMPTION and id(drafts[i]) not in named:
                drafts[i] = WRITTEN
        self._forgotten = max(self._forgotten, min(count, len(drafts)))

    def entry_of(self, customer_id: str, day: date) -> int:
        """The index in the journal (`entries`) of the consumption entry of the customer and
        accounting day ``day``, once `settle` made it; raises KeyError before."""
        return self._bucket_entry[customer_id, day]

    def writes_only_usage(self) -> bool:
        """True when the posting creates nothing but journal entries, usage, draw and quarantine
        records and the loaded customers' ``steps_through``: no customer, grant, subscription,
        period, document, event or guarantee record."""
        return not (self.grant_rows or self.period_rows or self.invoices or self.event_rows
                    or self.guarantee_month_rows
                    or any(b.new or any(st.new or st.changed for st in b.subs) or any(gs.new for gs in b.guarantees)
                           for b in self.books.values()))


def grant_state(g: GrantRecord, *, seq: int = 0, relieved: int = 0, released: int | None = None) -> GrantState:
    """The working state of grant ``g`` with ``relieved`` units gone and ``released`` deferred
    revenue moved out (None: by the cumulative formula)."""
    return GrantState(g.id, g.customer_id, g.source, g.units, g.amount, g.currency, g.effective_at,
                      g.expires_at, relieved, seq, released=released, method=g.breakage_method,
                      rate=Fraction(Decimal(g.expected_breakage_rate)) if g.expected_breakage_rate else None,
                      rollover_percent=g.rollover_percent, rollover_max_periods=g.rollover_max_periods,
                      rollover_max_credits=g.rollover_max_credits, rollover_expires=g.rollover_expires,
                      generation=g.generation, root_id=root_grant(g.id), invoice_number=g.invoice_number,
                      overage_price=g.overage_price, renews=g.renews, contract_id=g.contract_id,
                      event_id=g.event_id)
