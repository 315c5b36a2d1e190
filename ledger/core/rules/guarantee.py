"""The no-increase guarantee for customers migrated from per-seat pricing (docs/design.md §5).

For each month m of the window, charges(m) are the pre-tax amounts invoiced for service in m
(`ledger.core.guarantee.monthly_charges`). Basis ``monthly``: at the close of m a credit of
max(0, charges(m) - legacy). Basis ``cumulative``: one credit at the close of the window's last
month of max(0, sum of charges - months x legacy). The credit G is a price concession, variable
consideration (ASC 606-10-32-5..9), issued with a credit note::

    Dr 4900 Guarantee credits G / Dr 2400 tax / Cr 2200 Customer credit balance G+tax

and the credit balance is applied to the customer's next invoice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core import guarantee as G
from ledger.core.book import CustomerBook, GuaranteeState
from ledger.core.documents import new_document
from ledger.core.entries import EntryKind
from ledger.core.posting import problem
from ledger.core.records import GuaranteeMonthRecord, GuaranteeRecord
from ledger.core.schedule import catch_up
from ledger.events import GuaranteeEnrolled, SourcedEvent
from ledger.core.money import apply_rate, major_str, parse_decimal, to_minor
from ledger.core.periods import period_end

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def on_guarantee_enrolled(p: Posting, se: SourcedEvent, ev: GuaranteeEnrolled) -> None:
    """Enrol a customer in the guarantee; credits follow at month closes. raises
    InvalidInputError when the window overlaps another of the customer's."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    c = book.customer
    months = G.window(ev.start_month, ev.months)
    for other in book.guarantees:
        if set(other.months) & set(months):
            raise problem(se, "start_month", ev.start_month,
                          f"customer {c.id} is already enrolled ({other.row.id}, {other.months[0]} to "
                          f"{other.months[-1]}); guarantee windows may not overlap")
    row = GuaranteeRecord(id=se.id, customer_id=c.id, currency=c.currency,
                          legacy_monthly_amount=to_minor(ev.legacy_monthly_amount, c.currency),
                          start_month=ev.start_month, months=ev.months, basis=ev.basis, enrolled_at=ev.occurred_at)
    book.guarantees.append(GuaranteeState(row, new=True))
    p.record_event(se, c.id, d, late)
    catch_up(p, book, ev.occurred_at)


def _charges(p: Posting, book: CustomerBook, months: list[str]) -> dict[str, G.MonthCharges]:
    """charges(m) for ``months`` from the stored documents and sales and this posting's."""
    c = book.customer
    docs, sales = p.store.charge_inputs(c.id, p.tz)
    docs += [G.ChargeDocument(inv.number, inv.kind, inv.category, inv.service_period, inv.subtotal, inv.reference)
             for inv, _ in p.invoices if inv.customer_id == c.id]
    stored = {s.invoice_number for s in sales}
    sales += [G.sale_of(x.invoice_number, x.source, x.effective_at, x.expires_at, p.tz)
              for x in book.grants.values()
              if x.source in ("topup", "commitment") and x.invoice_number and x.invoice_number not in stored]
    return G.monthly_charges(docs, sales, months)


def close_month(p: Posting, book: CustomerBook, gs: GuaranteeState, m: str) -> None:
    """Evaluate the guarantee at the close of month m and issue its credit (see the module docstring)."""
    c, g = book.customer, gs.row
    months = [m] if g.basis == "monthly" else gs.months
    charges = _charges(p, book, months)
    excess = sum(charges[x].total for x in months) - g.legacy_monthly_amount * len(months)
    credit = max(0, excess)
    cn_number = None
    due = period_end(m, p.tz)
    d = p.step_date(due)
    if credit:
        cur, legacy = c.currency, g.legacy_monthly_amount
        if g.basis == "monthly":
            text = (f"No-increase guarantee {m}: new bill {major_str(charges[m].total, cur)} less legacy "
                    f"per-seat bill {major_str(legacy, cur)}")
        else:
            text = (f"No-increase guarantee {months[0]} to {months[-1]} (cumulative): new bills "
                    f"{major_str(excess + legacy * len(months), cur)} less {len(months)} x legacy per-seat bill "
                    f"{major_str(legacy, cur)}")
        tax = apply_rate(credit, parse_decimal(c.tax_rate))
        cn = new_document(p.store, customer_id=c.id, currency=cur, issue_date=d, terms_days=0,
                          tax_rate=c.tax_rate, tax=tax, event_id=g.id, lines=[(text, 1, major_str(credit, cur), credit)],
                          kind="credit_note", category="guarantee", service_period=m)
        cn_number = cn.number
        draft = p.entry(d, due, EntryKind.GUARANTEE_CREDIT, f"{text}; credit note {cn.number}", c.id, g.id)
        draft.dr(A.GUARANTEE_CREDITS, cur, credit, invoice_number=cn.number, event_id=g.id)
        draft.dr(A.SALES_TAX, cur, tax, invoice_number=cn.number, event_id=g.id)
        draft.cr(A.CUSTOMER_CREDIT, cur, credit + tax, invoice_number=cn.number, event_id=g.id)
        book.credit_balance += credit + tax
        p.issue(book, cn, draft)
    for x in months:
        ch = charges[x]
        row = GuaranteeMonthRecord(guarantee_id=g.id, period=x, customer_id=c.id, subscription=ch.subscription,
                                   overage=ch.overage, topups=ch.topups, commitments=ch.commitments, charges=ch.total,
                                   legacy=g.legacy_monthly_amount, credit=credit if x == m else 0,
                                   credit_note=cn_number if x == m else None)
        gs.done[x] = row
        p.guarantee_month_rows.append(row)
