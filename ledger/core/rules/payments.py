"""Payments received (docs/design.md §5): Dr 1000 Cash / Cr 1100 per invoice settled (the
named one, else the oldest open first), and any excess Cr 2200 Customer credit balance, which
the next invoice uses up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.entries import EntryKind
from ledger.core.posting import problem
from ledger.events import PaymentReceived, SourcedEvent
from ledger.core.money import to_minor

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def on_payment_received(p: Posting, se: SourcedEvent, ev: PaymentReceived) -> None:
    """Settle open invoices with a payment; raises InvalidInputError when the named invoice is
    not the customer's."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    c = book.customer
    amount = to_minor(ev.amount, c.currency)
    if ev.invoice_number is not None and ev.invoice_number not in book.open_invoices:
        if p.store.invoice_customer(ev.invoice_number) != c.id:
            raise problem(se, "invoice_number", ev.invoice_number, f"is not an invoice of customer {c.id}")
    order = [ev.invoice_number] if ev.invoice_number else list(book.open_invoices)
    draft = p.entry(d, ev.occurred_at, EntryKind.PAYMENT, f"Payment received from {c.id}", c.id, se.id)
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
    settled = [ln.invoice_number for ln in draft.lines if ln.invoice_number]
    draft.description = (f"Payment received from {c.id}" + (f" for {', '.join(settled)}" if settled else "")
                         + (f"; {left} minor units to customer credit balance" if left else ""))
    p.record_event(se, ev.customer_id, d, late)
