"""Refunds: money back for credits of a grant, with a credit note (docs/design.md §5).

Unused units leave the grant at their relieved amount, with no revenue effect:
Dr 2100 (g) and Dr 9100 (g) / Cr 9400 Credits refunded. Units beyond the unused ones (a
concession, ``"concession": true``) go at cost basis to Dr 4910 Refunds and concessions
(contra-revenue, ASC 606-10-32-25). The tax share, cumulative per grant, is Dr 2400. The
customer is credited Cr 1100 while the original invoice is open (the credit note reduces it),
the rest Cr 2300 Refunds payable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook
from ledger.core.documents import new_document, unit_price_text
from ledger.core.entries import EntryKind
from ledger.core.posting import problem
from ledger.events import RefundIssued, SourcedEvent
from ledger.core.grants import GrantState
from ledger.core.money import CREDIT, apply_rate, format_units, major_str, parse_decimal, round_div

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def _refundable(se: SourcedEvent, ev: RefundIssued, book: CustomerBook) -> GrantState:
    """The grant the refund names; raises InvalidInputError when it cannot be refunded."""
    g = book.grants.get(ev.grant_ref)
    if g is None:
        raise problem(se, "grant_ref", ev.grant_ref, f"unknown grant of customer {book.customer.id}")
    if g.amount == 0:
        raise problem(se, "grant_ref", ev.grant_ref, "is a promotional (zero cost) grant: there is no money to refund")
    if g.proportional:
        raise problem(se, "grant_ref", ev.grant_ref, "refunds of proportional-breakage grants are not supported by this version")
    return g


def _amounts(se: SourcedEvent, ev: RefundIssued, book: CustomerBook, g: GrantState) -> tuple[int, int, int, int, int]:
    """(units, beyond, amount, concession, tax) of the refund, applied to ``g`` and the book's
    refunded base; raises InvalidInputError when it refunds nothing or too much."""
    c = book.customer
    unused = g.remaining
    credits = ev.credits if ev.credits is not None else unused
    if g.voided:
        raise problem(se, "grant_ref", ev.grant_ref, "was voided: its purchase was cancelled with a credit note")
    if credits == 0:
        raise problem(se, "grant_ref", ev.grant_ref, f"grant {g.id} has no unused credits to refund")
    units = min(credits, unused)
    beyond = credits - units
    if beyond and not ev.concession:
        raise problem(se, "credits", credits, f"grant {g.id} has only {unused} unused credits; refunding more "
                                              "needs \"concession\": true (posted to 4910 Refunds and concessions)")
    amount = g.relieve(units) if units else 0
    concession = round_div(g.amount * beyond, g.units) if beyond else 0
    prior = book.refunded_base.get(g.id, 0)
    if prior + amount + concession > g.amount:
        raise problem(se, "credits", credits, f"would bring the money refunded for grant {g.id} to "
                      f"{major_str(prior + amount + concession, c.currency)}, more than its "
                      f"{major_str(g.amount, c.currency)}")
    rate = parse_decimal(c.tax_rate)
    tax = apply_rate(prior + amount + concession, rate) - apply_rate(prior, rate)
    if prior + amount + concession:  # (a book derived from the journal has no entry for a grant
        book.refunded_base[g.id] = prior + amount + concession  # whose refunds moved no money)
    if amount + concession + tax == 0 and units == 0:
        raise problem(se, "credits", credits, "refunds nothing")
    return units, beyond, amount, concession, tax


def on_refund_issued(p: Posting, se: SourcedEvent, ev: RefundIssued) -> None:
    """Refund credits of a grant with a credit note (see the module docstring)."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    c = book.customer
    g = _refundable(se, ev, book)
    units, beyond, amount, concession, tax = _amounts(se, ev, book, g)
    total = amount + concession + tax
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
    cn = new_document(p.store, customer_id=c.id, currency=c.currency, issue_date=d, terms_days=0,
                      tax_rate=c.tax_rate, tax=tax, event_id=se.id, lines=lines, kind="credit_note",
                      category="refund", reference=original)
    draft = p.entry(d, ev.occurred_at, EntryKind.REFUND, f"Refund to {c.id}, grant {g.id}; credit note {cn.number}"
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
    p.issue(book, cn, draft)
    p.record_event(se, ev.customer_id, d, late)
