"""Credits bought or given: prepaid commitments, top-up packs and promotional grants
(docs/design.md §4-5). Each creates one grant (lot) whose cost basis is its amount over its
units; a purchase is invoiced at once::

    Dr 1100 A+T / Cr 2100 (grant) A / Cr 2400 T;   Dr 9000 q / Cr 9100 (grant) q

A promotional grant has a zero cost basis and CREDIT lines only (Dr 9000 / Cr 9100): using it
recognises no revenue.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook
from ledger.core.documents import new_document, unit_price_text
from ledger.core.entries import EntryKind
from ledger.core.posting import problem
from ledger.core.records import GrantRecord
from ledger.core.schedule import catch_up
from ledger.events import CommitmentPurchased, CreditsGranted, SourcedEvent, TopupPurchased
from ledger.core.grants import GrantState
from ledger.core.money import CREDIT, apply_rate, format_units, major_str, parse_decimal, to_minor
from ledger.core.periods import boundary_date, local_date, start_of_day

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months, on the same day or the month's last one."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def new_grant(p: Posting, book: CustomerBook, se: SourcedEvent, *, grant_id: str, source: str, units: int,
              amount: int, effective_at: datetime, expires_at: datetime | None,
              invoice_number: str | None, policy: CommitmentPurchased | None = None,
              event_id: str | None = None) -> GrantState:
    """Create grant ``grant_id`` of ``units`` credits for ``amount`` (int minor units) in
    ``book``; a commitment's rollover, breakage, renewal and overage terms come from ``policy``."""
    rollover = policy.rollover if policy is not None else None
    breakage = policy.breakage if policy is not None else None
    return p.add_grant(book, GrantRecord(
        id=grant_id, customer_id=book.customer.id, source=source, units=units, amount=amount,
        currency=book.customer.currency, effective_at=effective_at, expires_at=expires_at,
        breakage_method=breakage.method if breakage else "at_expiry",
        expected_breakage_rate=breakage.expected_rate if breakage else None,
        rollover_percent=rollover.percent if rollover else 0,
        rollover_max_periods=rollover.max_periods if rollover else None,
        rollover_max_credits=rollover.max_credits if rollover else None,
        rollover_expires=rollover.expires if rollover else True,
        renews=policy.renews if policy is not None else None,
        overage_price=policy.overage_price if policy is not None else None,
        contract_id=grant_id if source == "commitment" else None,
        generation=0, parent_grant_id=None, event_id=event_id or se.id, invoice_number=invoice_number))


def sale(p: Posting, se: SourcedEvent, book: CustomerBook, d: date, *, grant_id: str, source: str, units: int,
         amount: int, effective_at: datetime, expires_at: datetime | None, line_text: str,
         policy: CommitmentPurchased | None = None, event_id: str | None = None) -> None:
    """A purchase invoiced now: Dr 1100 A+T / Cr 2100(grant) A / Cr 2400 T; Dr 9000 q / Cr 9100(grant) q.
    ``event_id``: the id the entry, its lines and the invoice name (default: the event's; an
    auto top-up names its own, derived from the usage that triggered it)."""
    c = book.customer
    eid = event_id or se.id
    tax = apply_rate(amount, parse_decimal(c.tax_rate))
    price = unit_price_text(amount, units, c.currency)
    # quantity x unit price shown only when exact; otherwise one line at the whole amount
    line = (line_text, units, price, amount) if price is not None else (line_text, 1, major_str(amount, c.currency), amount)
    inv = new_document(p.store, customer_id=c.id, currency=c.currency, issue_date=d,
                       terms_days=p.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                       event_id=eid, lines=[line])
    new_grant(p, book, se, grant_id=grant_id, source=source, units=units, amount=amount,
              effective_at=effective_at, expires_at=expires_at, invoice_number=inv.number, policy=policy,
              event_id=eid)
    at = effective_at if event_id else se.event.occurred_at  # type: ignore[attr-defined]
    draft = p.entry(d, at, EntryKind.PURCHASE, f"{line_text}; invoice {inv.number}", c.id, eid)
    dims = {"invoice_number": inv.number, "event_id": eid}
    draft.dr(A.RECEIVABLE, c.currency, amount + tax, **dims)
    draft.cr(A.DEFERRED_CREDITS, c.currency, amount, grant_id=grant_id, **dims)
    draft.cr(A.SALES_TAX, c.currency, tax, **dims)
    draft.dr(A.CREDITS_ISSUED, CREDIT, units, grant_id=grant_id, event_id=eid)
    draft.cr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id, event_id=eid)
    p.issue(book, inv, draft)


def _check_renewal(se: SourcedEvent, ev: CommitmentPurchased, book: CustomerBook) -> None:
    """A renewal must name a live, unrenewed commitment of the same customer."""
    old = book.grants.get(ev.renews)  # type: ignore[arg-type]
    if old is None or old.source != "commitment":
        raise problem(se, "renews", ev.renews, f"is not a commitment of customer {ev.customer_id}")
    if old.voided:
        raise problem(se, "renews", ev.renews, f"commitment {ev.renews} was voided")
    if old.expiry_done:
        raise problem(se, "renews", ev.renews,
                      f"commitment {ev.renews} already expired ({old.expires_at.isoformat() if old.expires_at else ''}) "
                      "before this renewal; a renewal must be recorded before the term it renews ends")
    if any(g.renews == ev.renews for g in book.grants.values()):
        raise problem(se, "renews", ev.renews, "is already renewed by another commitment")


def on_commitment_purchased(p: Posting, se: SourcedEvent, ev: CommitmentPurchased) -> None:
    """A prepaid commitment: one grant valid over its term, invoiced now."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    if ev.renews is not None:
        _check_renewal(se, ev, book)
    amount = to_minor(ev.amount, book.customer.currency)
    sale(p, se, book, d, grant_id=ev.commitment_id, source="commitment", units=ev.credits, amount=amount,
         effective_at=start_of_day(ev.term_start, p.tz),
         expires_at=start_of_day(ev.term_end + timedelta(days=1), p.tz),
         line_text=(f"Prepaid commitment {ev.commitment_id}: {format_units(ev.credits)} credits, "
                    f"term {ev.term_start.isoformat()} to {ev.term_end.isoformat()}"),
         policy=ev)
    p.record_event(se, ev.customer_id, d, late)
    catch_up(p, book, ev.occurred_at)


def on_topup_purchased(p: Posting, se: SourcedEvent, ev: TopupPurchased) -> None:
    """A top-up: a catalog pack or explicit credits and amount; a pack may expire after months."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    cur = book.customer.currency
    expires_at = ev.expires_at
    if ev.pack is not None:
        pack = p.catalog.topup(ev.pack)
        assert pack is not None  # validated
        units, amount = pack.credits, to_minor(pack.price, cur)
        if expires_at is None and pack.expires_after_months:
            expires_at = start_of_day(add_months(local_date(ev.occurred_at, p.tz), pack.expires_after_months), p.tz)
        text = f"Top-up pack {ev.pack} ({ev.topup_id}): {format_units(units)} credits"
    else:
        assert ev.credits is not None and ev.amount is not None
        units, amount = ev.credits, to_minor(ev.amount, cur)
        text = f"Top-up {ev.topup_id}: {format_units(units)} credits"
    if expires_at is not None:
        text += f", expiring {boundary_date(expires_at, p.tz).isoformat()}"
    sale(p, se, book, d, grant_id=ev.topup_id, source="topup", units=units, amount=amount,
         effective_at=ev.occurred_at, expires_at=expires_at, line_text=text)
    p.record_event(se, ev.customer_id, d, late)
    catch_up(p, book, ev.occurred_at)


def on_credits_granted(p: Posting, se: SourcedEvent, ev: CreditsGranted) -> None:
    """Promotional credits: zero cost basis, CREDIT lines only."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    new_grant(p, book, se, grant_id=ev.grant_id, source="promotional", units=ev.credits, amount=0,
              effective_at=ev.occurred_at, expires_at=ev.expires_at, invoice_number=None)
    draft = p.entry(d, ev.occurred_at, EntryKind.PROMOTION,
                    f"Promotional grant {ev.grant_id}: {format_units(ev.credits)} credits ({ev.reason})",
                    book.customer.id, se.id)
    draft.dr(A.CREDITS_ISSUED, CREDIT, ev.credits, grant_id=ev.grant_id, event_id=se.id)
    draft.cr(A.CREDITS_OUTSTANDING, CREDIT, ev.credits, grant_id=ev.grant_id, event_id=se.id)
    p.record_event(se, ev.customer_id, d, late)
    catch_up(p, book, ev.occurred_at)
