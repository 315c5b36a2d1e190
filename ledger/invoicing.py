"""Invoices and their gap-free numbers (``INV-2026-000001``), issued inside the posting transaction.

A number is taken by locking the (series, year) row of ``document_sequence`` for the rest of
the transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), so numbers are
gap-free per series and year: a transaction that rolls back gives its number back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from ledger.models import DocumentSequence, Invoice, InvoiceLine
from ledger.money import exponent

SERIES = {"invoice": "INV", "credit_note": "CN"}


def take_number(session: Session, series: str, year: int) -> tuple[str, int]:
    """Reserve the next number of ``series`` in ``year``: ("INV-2026-000001", 1)."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DocumentSequence)
    session.execute(ins.values(series=series, year=year, last_number=0).on_conflict_do_nothing())
    key = (DocumentSequence.series == series) & (DocumentSequence.year == year)
    last = session.execute(sa.select(DocumentSequence.last_number).where(key).with_for_update()).scalar_one()
    number = last + 1
    session.execute(sa.update(DocumentSequence).where(key).values(last_number=number))
    return f"{series}-{year:04d}-{number:06d}", number


def unit_price_text(amount: int, quantity: int, currency: str) -> str | None:
    """amount / quantity in major units as a decimal string when it is exact to 6 decimals
    (e.g. 600000 USD cents / 120000 credits -> "0.05"); None when it is not."""
    exp = exponent(currency)
    price = Decimal(amount).scaleb(-exp) / Decimal(quantity)
    q = price.quantize(Decimal("0.000001"))
    if q * quantity != Decimal(amount).scaleb(-exp):
        return None
    q = q.normalize()
    if -q.as_tuple().exponent < exp:
        q = q.quantize(Decimal(1).scaleb(-exp))
    return format(q, "f")


@dataclass
class InvoiceDraft:
    """An invoice being issued with its journal entry. Amounts: int minor units."""

    number: str
    sequence: int
    kind: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    tax_rate: str
    subtotal: int
    tax: int
    event_id: str
    lines: list[tuple[str, int, str, int]] = field(default_factory=list)  # description, qty, unit price, amount
    category: str = "purchase"  # purchase | subscription | overage | refund | void
    service_period: str | None = None
    reference: str | None = None  # the invoice a credit note corrects

    @property
    def total(self) -> int:
        return self.subtotal + self.tax

    def rows(self, entry_id: int | None) -> tuple[Invoice, list[InvoiceLine]]:
        series, year, _ = self.number.split("-")
        inv = Invoice(number=self.number, series=series, year=int(year), sequence=self.sequence, kind=self.kind,
                      customer_id=self.customer_id, currency=self.currency, issue_date=self.issue_date,
                      due_date=self.due_date, tax_rate=self.tax_rate, subtotal=self.subtotal, tax=self.tax,
                      total=self.total, event_id=self.event_id, entry_id=entry_id, category=self.category,
                      service_period=self.service_period, reference=self.reference)
        lines = [InvoiceLine(invoice_number=self.number, position=i + 1, description=d, quantity=q, unit_price=p, amount=a)
                 for i, (d, q, p, a) in enumerate(self.lines)]
        return inv, lines


def new_invoice(session: Session, *, customer_id: str, currency: str, issue_date: date, terms_days: int,
                tax_rate: str, tax: int, event_id: str, lines: list[tuple[str, int, str, int]],
                kind: str = "invoice", category: str = "purchase", service_period: str | None = None,
                reference: str | None = None) -> InvoiceDraft:
    """Take the next number of the series of ``kind`` (invoice -> INV, credit_note -> CN) and build
    the draft; subtotal is the sum of the lines' amounts (int minor units)."""
    number, seq = take_number(session, SERIES[kind], issue_date.year)
    return InvoiceDraft(number, seq, kind, customer_id, currency, issue_date, issue_date + timedelta(days=terms_days),
                        tax_rate, sum(line[3] for line in lines), tax, event_id, lines, category, service_period,
                        reference)
