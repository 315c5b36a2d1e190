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


def _render_one(job: tuple[DocumentView, str]) -> str:
    from reports.pdf import render_document_pdf

    view, out = job
    return str(render_document_pdf(view, out))


def render_views(jobs: list[tuple[DocumentView, Path]], *, workers: int | None = None, on_done=None) -> list[Path]:
    """Render many documents in parallel processes (WeasyPrint is CPU-bound and single-threaded).

    jobs: [(view, output path)]; on_done: called once per finished document. Returns the paths
    in job order. workers defaults to the number of CPUs; 1 renders in this process.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or os.cpu_count() or 1
    payload = [(view, str(path)) for view, path in jobs]
    if workers == 1 or len(payload) < 2:
        done = []
        for job in payload:
            done.append(Path(_render_one(job)))
            if on_done:
                on_done()
        return done
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = []
        for path in pool.map(_render_one, payload, chunksize=4):
            done.append(Path(path))
            if on_done:
                on_done()
        return done
