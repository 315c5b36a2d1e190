"""`SessionStore`: the accounting core's `LedgerStore` over a database session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core import guarantee as G
from ledger.core.book import CustomerBook
from ledger.core.entries import Line
from ledger.core.ports import StoredDocument, StoredEntry, StoredUsage
from ledger.core.rules.usage import draws_at
from ledger.store.models import Customer, Grant, Invoice, InvoiceLine, JournalEntry, JournalLine, UsageDrawLegacy, UsageEvent
from ledger.store.books import BookCache, load_books
from ledger.store import keys
from ledger.store.numbering import take_number


class SessionStore:
    """Reads for a posting in the session's transaction (see ``ledger.core.ports``).

    given: customer rows already read (and locked) in this transaction; cache, db: the
    process's kept books and the database's key in it (its URL), or None to derive every book
    from the journal."""

    def __init__(self, session: Session, tz: ZoneInfo, *, given: Sequence[Customer] = (),
                 cache: BookCache | None = None, db: str = "") -> None:
        self.session = session
        self.tz = tz
        self.given: Mapping[str, Customer] = {r.id: r for r in given}
        self.cache = cache
        self.db = db

    def load_books(self, customer_ids: Sequence[str]) -> dict[str, CustomerBook]:
        return load_books(self.session, customer_ids, self.tz, given=self.given, cache=self.cache, db=self.db)

    def take_number(self, series: str, year: int) -> tuple[str, int]:
        return take_number(self.session, series, year)

    def invoice_customer(self, number: str) -> str | None:
        known = self.session.get(Invoice, number)
        return known.customer_id if known is not None else None

    def stored_usage(self, event_id: str) -> StoredUsage | None:
        s = self.session
        row = s.get(UsageEvent, event_id)
        if row is None:
            return None
        # every read names the usage's customer beside the key (`ledger.store.keys`): one
        # customer's rows, where the books are distributed by customer
        entry = s.execute(sa.select(JournalEntry).where(JournalEntry.id == row.entry_id,
                                                        JournalEntry.customer_id == row.customer_id)
                          ).scalar_one_or_none() if row.entry_id is not None else None
        if row.entry_id is None:
            draws = []
        elif row.draw_start is None:  # converted from older books: kept as they were
            draws = [(gid, int(u)) for gid, u in s.execute(
                sa.select(UsageDrawLegacy.grant_id, UsageDrawLegacy.units)
                .where(UsageDrawLegacy.usage_event_id == event_id, UsageDrawLegacy.customer_id == row.customer_id)
                .order_by(UsageDrawLegacy.grant_id))]
        else:
            segments = [(gid, int(u)) for gid, u in s.execute(
                sa.select(JournalLine.grant_id, JournalLine.debit)
                .where(JournalLine.entry_id == row.entry_id, JournalLine.customer_id == row.customer_id,
                       JournalLine.account_code == A.CREDITS_OUTSTANDING, JournalLine.debit > 0)
                .order_by(JournalLine.id))]
            draws = draws_at(segments, int(row.draw_start), int(row.credits) - int(row.overage_units or 0))
        return StoredUsage(row.id, row.customer_id, row.status, int(row.overage_units or 0), row.overage_price,
                           entry.entry_date if entry is not None else None, draws, int(row.credits), row.action,
                           row.quantity, row.cost)

    def event_entries(self, event_id: str) -> list[StoredEntry]:
        s = self.session
        out = []
        for e in s.execute(sa.select(JournalEntry).where(JournalEntry.event_id == event_id)
                           .order_by(JournalEntry.id)).scalars():
            lines = [Line(ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
                          ln.invoice_number, ln.event_id)
                     for ln in s.execute(sa.select(JournalLine).where(JournalLine.entry_id == e.id,
                                                                      JournalLine.customer_id == e.customer_id)
                                         .order_by(JournalLine.id)).scalars()]
            out.append(StoredEntry(e.kind, e.customer_id, lines))
        return out

    def consumed_in(self, customer_id: str, start, end) -> int:
        q = (sa.select(sa.func.coalesce(sa.func.sum(JournalLine.credit - JournalLine.debit), 0))
             .join(JournalEntry, keys.entry_lines())
             .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.CREDITS_CONSUMED,
                    JournalEntry.entry_date >= start, JournalEntry.entry_date <= end))
        return int(self.session.execute(q).scalar_one())

    def held_units(self, event_id: str) -> int:
        q = (sa.select(sa.func.coalesce(sa.func.sum(JournalLine.debit - JournalLine.credit), 0))
             .where(JournalLine.event_id == event_id, JournalLine.account_code == A.USAGE_HELD))
        return int(self.session.execute(q).scalar_one())

    def document(self, number: str) -> StoredDocument:
        s = self.session
        inv = s.get(Invoice, number)
        assert inv is not None
        lines = [(ln.description, ln.quantity, ln.unit_price, ln.amount) for ln in s.execute(
            sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number).order_by(InvoiceLine.position)).scalars()]
        return StoredDocument(lines, inv.tax, inv.tax_rate)

    def charge_inputs(self, customer_id: str, tz: ZoneInfo) -> tuple[list[G.ChargeDocument], list[G.Sale]]:
        s = self.session
        docs = [G.ChargeDocument(*row) for row in s.execute(
            sa.select(Invoice.number, Invoice.kind, Invoice.category, Invoice.service_period, Invoice.subtotal,
                      Invoice.reference).where(Invoice.customer_id == customer_id))]
        sales = [G.sale_of(g.invoice_number, g.source, g.effective_at, g.expires_at, tz) for g in s.execute(
            sa.select(Grant).where(Grant.customer_id == customer_id, Grant.source.in_(["topup", "commitment"]),
                                   Grant.invoice_number.is_not(None))).scalars()]
        return docs, sales
