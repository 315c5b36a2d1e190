"""What each line of an invoice or credit note says, in words the customer understands.

The engine stores a line's description in English with its internal ids (``Prepaid commitment
com-cus_001-2026-10: 295,000 credits, term 2026-10-01 to 2027-09-30``): that text stays the
record of what was issued (journal, exports, golden corpus). The page and the Factur-X XML
instead describe each line from the stored facts it was issued from (the document's category,
the grant it sold, the subscription and month it bills, the invoice it cancels), in the
customer's language, with the product name and the term or service period and no internal id:

    purchase, commitment   Prepaid credits: 295,000 credits for Oct 1, 2026 – Sep 30, 2027
    purchase, top-up       Credit top-up: 1,000 credits, valid through Oct 5, 2027
    subscription           Professional plan, Oct 1 – 31, 2026: 5,000 credits included
    overage                Usage beyond your credits, Oct 1 – 31, 2026
    refund                 Refund of unused credits / Goodwill credit for credits already used
    void                   Cancelled: <the cancelled invoice's line, described as above>
    guarantee              No-increase guarantee, Oct 1 – 31, 2026: new bill above your previous bill

A refund's concession line (credits already used, refunded as a concession) is the one whose
stored text starts with "Concession" (`ledger.core.rules.refunds`). A line the rules above do
not cover keeps its stored description. Dates: `reports.i18n.format_span`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ledger.core.money import format_units
from ledger.core.periods import boundary_date, first_day, last_day
from ledger.store import documents as store
from ledger.store.documents import InvoiceLineRecord, InvoiceRecord
from reports.i18n import format_day, format_span

if TYPE_CHECKING:
    from ledger.core.records import GrantRecord
    from ledger.store.db import Session


@dataclass(frozen=True)
class Wording:
    """How to say things for one document: ``locale`` (Babel, e.g. 'de_DE'), ``gettext`` of its
    language, and the reporting timezone ``tz`` (grant instants -> local dates)."""

    locale: str
    gettext: Callable[[str], str]
    tz: ZoneInfo

    def span(self, start: date, end: date) -> str:
        return format_span(start, end, self.locale)

    def units(self, units: int) -> str:
        return format_units(units, self.locale)


def describe_lines(session: Session, inv: InvoiceRecord, lines: list[InvoiceLineRecord], w: Wording) -> list[str]:
    """One customer-facing description per line of ``inv`` (same order as ``lines``)."""
    _ = w.gettext
    category = inv.category
    if category in ("purchase", "subscription"):
        grants = store.invoiced_grants(session, inv.number)
        text = (_purchase(grants[0], w) if category == "purchase" and grants
                else _subscription(session, inv, grants, w) if category == "subscription" else None)
        return [text or ln.description for ln in lines]
    if category == "overage" and inv.service_period:
        period = w.span(first_day(inv.service_period), last_day(inv.service_period))
        return [_("Usage beyond your credits, {period}").format(period=period) for _ln in lines]
    if category == "guarantee" and inv.service_period:
        return [_guarantee(session, inv, w)] * len(lines)
    if category == "refund":
        return [_("Goodwill credit for credits already used") if ln.description.startswith("Concession")
                else _("Refund of unused credits") for ln in lines]
    if category == "void" and inv.reference:
        original = store.invoice(session, inv.reference)
        if original is not None:
            described = describe_lines(session, original, store.invoice_lines(session, original.number), w)
            if len(described) == len(lines):
                return [_("Cancelled: {description}").format(description=d) for d in described]
    return [ln.description for ln in lines]


def _purchase(g: GrantRecord, w: Wording) -> str | None:
    _ = w.gettext
    start = g.effective_at.astimezone(w.tz).date()
    until = boundary_date(g.expires_at, w.tz) if g.expires_at is not None else None
    credits = w.units(g.units)
    if g.source == "commitment":
        if until is None:
            return _("Prepaid credits: {credits} credits from {start}").format(credits=credits, start=format_day(start, w.locale))
        return _("Prepaid credits: {credits} credits for {term}").format(credits=credits, term=w.span(start, until))
    if g.source == "topup":
        if until is None:
            return _("Credit top-up: {credits} credits, no expiry").format(credits=credits)
        return _("Credit top-up: {credits} credits, valid through {date}").format(
            credits=credits, date=format_day(until, w.locale))
    return None


def _subscription(session: Session, inv: InvoiceRecord, grants: list[GrantRecord], w: Wording) -> str | None:
    _ = w.gettext
    sub = store.subscription(session, inv.event_id)
    if sub is None or not inv.service_period:
        return None
    start = max(sub.start_date, first_day(inv.service_period))
    end = min(last_day(inv.service_period), sub.end_date) if sub.end_date else last_day(inv.service_period)
    text = _("{plan} plan, {period}").format(plan=sub.plan_name, period=w.span(start, end))
    included = sum(g.units for g in grants)
    if included:
        text = _("{plan_and_period}: {credits} credits included").format(plan_and_period=text,
                                                                           credits=w.units(included))
    return text


def _guarantee(session: Session, inv: InvoiceRecord, w: Wording) -> str:
    _ = w.gettext
    g = store.guarantee(session, inv.event_id)
    first = g.start_month if g is not None and g.basis != "monthly" else inv.service_period
    assert inv.service_period is not None and first is not None
    period = w.span(first_day(first), last_day(inv.service_period))
    return _("No-increase guarantee, {period}: your new bill above your previous per-seat bill").format(period=period)
