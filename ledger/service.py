"""Service functions behind the CLI and the Python API: one call per use case, each taking a
session and returning plain values."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.engine import ImportSummary, import_events
from ledger.errors import NotFoundError
from ledger.events import read_file
from ledger.models import Customer, Invoice, InvoiceLine
from ledger.money import major_str
from ledger.reporting import Column, Report


def import_files(session: Session, catalog: Catalog, files: Sequence[str | Path], *, dry_run: bool = False) -> ImportSummary:
    """Read every file (JSONL events, CSV usage) and import them as one atomic batch.

    raises InvalidInputError listing every problem (file, line, field, value); nothing posted.
    """
    events, problems = [], []
    for f in files:
        evs, probs = read_file(f)
        events.extend(evs)
        problems.extend(probs)
    return import_events(session, catalog, events, sources=[str(f) for f in files], parse_problems=problems,
                         dry_run=dry_run)


def invoice_register(session: Session) -> Report:
    """Every invoice: number, customer, dates, subtotal, tax, total (minor units of its currency)."""
    rows = []
    q = (sa.select(Invoice, Customer.name).join(Customer, Customer.id == Invoice.customer_id)
         .order_by(Invoice.series, Invoice.year, Invoice.sequence))
    totals: dict[str, dict] = {}
    for inv, name in session.execute(q):
        rows.append({"number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id, "customer": name,
                     "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(),
                     "currency": inv.currency, "subtotal": inv.subtotal, "tax": inv.tax, "total": inv.total})
        t = totals.setdefault(inv.currency, {"currency": inv.currency, "subtotal": 0, "tax": 0, "total": 0})
        for k in ("subtotal", "tax", "total"):
            t[k] += getattr(inv, k)
    cols = [Column("number", "Number"), Column("kind", "Kind"), Column("customer_id", "Customer"),
            Column("customer", "Name"), Column("issue_date", "Issued"), Column("due_date", "Due"),
            Column("currency", "Cur"), Column("subtotal", "Subtotal", "money"), Column("tax", "Tax", "money"),
            Column("total", "Total", "money")]
    return Report("invoices", "Invoices", None, cols, rows, [totals[k] for k in sorted(totals)])


def invoice_document(session: Session, number: str) -> dict:
    """One invoice with its lines; amounts as decimal strings in major units. raises NotFoundError."""
    inv = session.get(Invoice, number)
    if inv is None:
        raise NotFoundError("invoice", number)
    cur = inv.currency
    lines = session.execute(sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number)
                            .order_by(InvoiceLine.position)).scalars()
    return {"number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id, "currency": cur,
            "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(), "tax_rate": inv.tax_rate,
            "lines": [{"description": ln.description, "quantity": ln.quantity, "unit_price": ln.unit_price,
                       "amount": major_str(ln.amount, cur)} for ln in lines],
            "subtotal": major_str(inv.subtotal, cur), "tax": major_str(inv.tax, cur), "total": major_str(inv.total, cur),
            "event_id": inv.event_id, "entry_id": inv.entry_id}
