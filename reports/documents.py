"""View models of invoices (and later credit notes) built from issued invoice rows.

Money and dates are formatted here with Babel in the customer's locale; the template only lays
the strings out. Every amount comes from the stored invoice, whose total equals the receivable
lines posted with it (invariant 5).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from babel.dates import format_date
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.errors import NotFoundError
from ledger.models import Customer, Invoice, InvoiceLine
from ledger.money import format_money, format_price, format_units
from reports.views import DocumentLine, DocumentView, Party

TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}


def document_view(session: Session, catalog: Catalog, number: str) -> DocumentView:
    """The view model of invoice ``number``; raises NotFoundError."""
    inv = session.get(Invoice, number)
    if inv is None:
        raise NotFoundError("invoice", number)
    customer = session.get(Customer, inv.customer_id)
    assert customer is not None
    loc = customer.locale or "en_US"
    lines = session.execute(sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number)
                            .order_by(InvoiceLine.position)).scalars()
    cur = inv.currency
    company = catalog.company
    rate = Decimal(inv.tax_rate)
    due = format_date(inv.due_date, format="long", locale=loc)
    return DocumentView(
        title=TITLES.get(inv.kind, inv.kind),
        number=inv.number,
        issue_date=format_date(inv.issue_date, format="long", locale=loc),
        due_date=due,
        currency=cur,
        seller=Party(company.name, tuple(company.address), company.email),
        buyer=Party(customer.name, tuple(json.loads(customer.address)), customer.email),
        lines=tuple(DocumentLine(ln.description, format_units(ln.quantity, loc),
                                 format_price(Decimal(ln.unit_price), cur, loc), format_money(ln.amount, cur, loc))
                    for ln in lines),
        subtotal=format_money(inv.subtotal, cur, loc),
        tax_label=f"Tax ({(rate * 100).normalize():f}%)" if rate else "Tax",
        tax=format_money(inv.tax, cur, loc),
        total=format_money(inv.total, cur, loc),
        amount_due=format_money(inv.total, cur, loc),
        payment_terms=f"Net {company.payment_terms_days}: due by {due}",
        notes=("Prepaid credits are non-refundable except as stated in your agreement; "
               "unused credits expire on the date shown.",),
        references=(("Customer ID", customer.id),),
    )


def render_invoice(session: Session, catalog: Catalog, number: str, out: str | Path) -> Path:
    """Render invoice ``number`` to a PDF at ``out``."""
    from reports.pdf import render_document_pdf

    return render_document_pdf(document_view(session, catalog, number), out)
