"""Voids: an event cancelled by the exact mirror of its entries, dated in the first open period,
once (docs/design.md §5). A voided purchase also gets a credit note for its whole invoice;
a voided usage event returns its units to the grants it came from and takes back its overage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook
from ledger.core.documents import InvoiceDraft, new_document
from ledger.core.entries import EntryKind, Line
from ledger.core.ports import StoredEntry, StoredUsage
from ledger.core.posting import problem
from ledger.core.schedule import catch_up
from ledger.events import EventVoided, SourcedEvent
from ledger.core.money import CREDIT, major_str, price_amount, round_fraction
from ledger.core.rules.review import count_used
from ledger.core.rules.usage import usage_cost
from ledger.core.periods import period_of

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def _usage_target(p: Posting, target: str) -> StoredUsage | None:
    """The usage event ``target`` as posted in this posting or stored, None when it is none."""
    row = p.usage_index.get(target)
    if row is None:
        return p.store.stored_usage(target)
    bucket = p.usage_bucket.get(target)
    return StoredUsage(row.id, row.customer_id, row.status, row.overage_units, row.overage_price,
                       bucket.entry_date if bucket is not None else None, p.draws_of.get(target, []),
                       row.credits, row.action, row.quantity, row.cost)


def _entries_of(p: Posting, se: SourcedEvent, target: str) -> list[StoredEntry]:
    """The entries of business event ``target``: this posting's, else the stored ones."""
    drafts = [dr for dr in p.drafts() if dr.event_id == target]
    if drafts:
        return [StoredEntry(dr.kind, dr.customer_id, list(dr.lines)) for dr in drafts]
    entries = p.store.event_entries(target)
    if not entries:
        raise problem(se, "target_event_id", target, "has no journal entries to void")
    return entries


def on_event_voided(p: Posting, se: SourcedEvent, ev: EventVoided) -> None:
    """Mirror the target's entries; raises InvalidInputError when there is nothing to void or
    the target's credits were already used."""
    target = ev.target_event_id
    usage = _usage_target(p, target)
    if usage is not None:
        void_usage(p, se, ev, usage)
        return
    originals = _entries_of(p, se, target)
    customer_id = originals[0].customer_id
    assert customer_id is not None
    book, d, late = p.prepare(customer_id, ev.occurred_at)
    for e in originals:
        for ln in e.lines:
            if ln.account == A.CREDITS_OUTSTANDING and ln.credit:
                g = book.grants[ln.grant_id]  # type: ignore[index]
                if g.relieved or g.expiry_done:
                    raise problem(se, "target_event_id", target,
                                  f"credits of grant {g.id} were already used, rolled, refunded or expired "
                                  f"({g.relieved} of {g.units}); void that usage or refund the unused credits instead")
    notes: list[str] = []
    for e in originals:
        _mirror(p, se, ev, book, e, d, notes)
    _reclass_paid(p, se, book, d)
    p.record_event(se, book.customer.id, d, late)


def _mirror(p: Posting, se: SourcedEvent, ev: EventVoided, book: CustomerBook, e: StoredEntry, d, notes: list[str]) -> None:
    """The mirror entry of ``e`` and its effect on the book; a purchase's invoice is cancelled."""
    c = book.customer
    draft = p.entry(d, ev.occurred_at, EntryKind.VOID, "", c.id, se.id)
    for ln in e.lines:
        draft.lines.append(Line(ln.account, ln.commodity, ln.credit, ln.debit, ln.customer_id, ln.grant_id,
                                ln.invoice_number, ln.event_id))
        if ln.account == A.CREDITS_OUTSTANDING and ln.credit:
            g = book.grants[ln.grant_id]  # type: ignore[index]
            g.relieved, g.released, g.expiry_done, g.voided = g.units, g.amount, True, True
        if ln.account == A.CUSTOMER_CREDIT:
            book.credit_balance += ln.debit - ln.credit  # mirror of a credit to 2200 takes it back
        if ln.account == A.RECEIVABLE and ln.invoice_number:
            delta = ln.credit - ln.debit  # mirror: a debit becomes a credit
            book.open_invoices[ln.invoice_number] = book.open_invoices.get(ln.invoice_number, 0) + delta
            if book.open_invoices[ln.invoice_number] == 0:
                del book.open_invoices[ln.invoice_number]
    if any(ln.account == A.RECEIVABLE and ln.invoice_number for ln in e.lines):
        # an invoice a voided payment had settled is open again in its place: oldest first, as the
        # journal gives them (invoice numbers are taken in issue order), not last
        book.open_invoices = dict(sorted(book.open_invoices.items()))
    if e.kind == "purchase":
        number = next(ln.invoice_number for ln in e.lines if ln.account == A.RECEIVABLE)
        cn = cancel_invoice(p, book, se, number, d)
        notes.append(cn.number)  # type: ignore[arg-type]
        p.issue(book, cn, draft)
    draft.description = (f"Void of event {ev.target_event_id} ({e.kind}): {ev.reason}"
                         + (f"; credit note {', '.join(notes)}" if notes else ""))


def _reclass_paid(p: Posting, se: SourcedEvent, book: CustomerBook, d) -> None:
    """A paid invoice cancelled: what was paid is now owed to the customer (Dr 1100 / Cr 2200)."""
    c = book.customer
    for number, amount in list(book.open_invoices.items()):
        if amount < 0:
            reclass = p.entry(d, se.event.occurred_at, EntryKind.RECLASS, f"Invoice {number} cancelled after payment: "  # type: ignore[attr-defined]
                              f"{major_str(-amount, c.currency)} to customer credit balance", c.id, se.id)
            reclass.dr(A.RECEIVABLE, c.currency, -amount, invoice_number=number, event_id=se.id)
            reclass.cr(A.CUSTOMER_CREDIT, c.currency, -amount, event_id=se.id)
            del book.open_invoices[number]
            book.credit_balance += -amount


def cancel_invoice(p: Posting, book: CustomerBook, se: SourcedEvent, number: str, d) -> InvoiceDraft:
    """A credit note for the whole of invoice ``number`` (a voided purchase)."""
    pending = next((inv for inv, _ in p.invoices if inv.number == number), None)
    if pending is not None:
        lines, tax, rate = list(pending.lines), pending.tax, pending.tax_rate
    else:
        doc = p.store.document(number)
        lines, tax, rate = doc.lines, doc.tax, doc.tax_rate
    c = book.customer
    return new_document(p.store, customer_id=c.id, currency=c.currency, issue_date=d, terms_days=0,
                        tax_rate=rate, tax=tax, event_id=se.id,
                        lines=[(f"Cancels: {t}", q, pr, a) for t, q, pr, a in lines], kind="credit_note",
                        category="void", reference=number)


def void_usage(p: Posting, se: SourcedEvent, ev: EventVoided, usage: StoredUsage) -> None:
    """Return a posted usage event's units to the grants they came from (the reverse of the
    cumulative formula at the current R, so each grant stays on it) and take back its overage:
    Dr 4000 (and 4050 for proportional grants) / Cr 2100 (g), Dr 9200 / Cr 9100 (g);
    Dr 4010 / Cr 1150, Dr 9200 / Cr 9050; its cost to serve, Dr 2500 / Cr 5000 (its own cost,
    else the catalog's at the void)."""
    target = usage.id
    if usage.status != "posted":
        raise problem(se, "target_event_id", target, f"was {usage.status}, not posted: there is nothing to void")
    book, d, late = p.prepare(usage.customer_id, ev.occurred_at)
    c = book.customer
    draft = p.entry(d, ev.occurred_at, EntryKind.VOID, f"Void of usage event {target}: {ev.reason}", c.id, se.id)
    for gid, units in usage.draws:
        usage_amount, breakage = book.grants[gid].unconsume(units)
        draft.dr(A.USAGE_REVENUE, c.currency, usage_amount, grant_id=gid, event_id=target)
        draft.dr(A.BREAKAGE_REVENUE, c.currency, breakage, grant_id=gid, event_id=target)
        draft.cr(A.DEFERRED_CREDITS, c.currency, usage_amount + breakage, grant_id=gid, event_id=target)
        draft.dr(A.CREDITS_CONSUMED, CREDIT, units, grant_id=gid, event_id=target)
        draft.cr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=gid, event_id=target)
    over, price = usage.overage_units, usage.overage_price
    if over:
        assert price is not None and usage.entry_date is not None
        key = (period_of(usage.entry_date), price)
        acc = book.overage[key]
        if acc.invoiced_units > acc.units - over:
            raise problem(se, "target_event_id", target,
                          f"its overage for {key[0]} is already invoiced; issue a refund or credit note instead")
        before = price_amount(acc.units, price, c.currency)
        acc.units -= over
        amount = before - price_amount(acc.units, price, c.currency)
        if not (acc.units or acc.invoiced_units or acc.invoiced_amount):
            del book.overage[key]  # nothing left for the month: as a book derived from the journal has it
        draft.dr(A.OVERAGE_REVENUE, c.currency, amount, event_id=target)
        draft.cr(A.UNBILLED, c.currency, amount, event_id=target)
        draft.dr(A.CREDITS_CONSUMED, CREDIT, over, event_id=target)
        draft.cr(A.CREDITS_OVERAGE, CREDIT, over, event_id=target)
    cost = round_fraction(usage_cost(p, c.currency, usage.cost, usage.action,
                                     usage.quantity if usage.action else usage.credits))  # type: ignore[arg-type]
    draft.dr(A.ACCRUED_COST, c.currency, cost, event_id=target)
    draft.cr(A.COST_OF_REVENUE, c.currency, cost, event_id=target)
    count_used(p, book, d, -usage.credits)
    p.record_event(se, c.id, d, late)
    catch_up(p, book, ev.occurred_at)
