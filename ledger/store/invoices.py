"""The issued invoices and credit notes as ``ledger invoices list|show|render`` read them, as plain
dicts keyed by column name (table ``invoice``: subtotal, tax, total int minor units of
``currency``; issue_date, due_date local dates; table ``invoice_line``: quantity int, unit_price
a decimal string in major units, amount int minor units). Reads only, in the caller's
transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store import keys
from ledger.store.models import Customer, Invoice, InvoiceLine


def _columns(row: Any) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}


_ISSUED_AS = ("seller", "buyer", "logo", "logo_type")
"""The columns of what a document kept at issue (migration 0014): the register reads none of them
(the logo alone may be kilobytes a row)."""


def register(session: Session) -> list[dict[str, Any]]:
    """Every document's columns but `_ISSUED_AS`, and its customer's name (key ``customer``), in
    series, year and sequence order."""
    columns = [c for c in Invoice.__table__.columns if c.name not in _ISSUED_AS]
    q = (sa.select(*columns, Customer.name.label("customer")).join(Customer, keys.customer_of(Invoice))
         .order_by(Invoice.series, Invoice.year, Invoice.sequence))
    return [dict(row) for row in session.execute(q).mappings()]


def with_lines(session: Session, number: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Document ``number``'s columns (``logo``: bytes or None) and its lines' columns in position
    order; None if no such document."""
    inv = session.get(Invoice, number)
    if inv is None:
        return None
    lines = session.execute(sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number)
                            .order_by(InvoiceLine.position)).scalars()
    return _columns(inv), [_columns(ln) for ln in lines]
