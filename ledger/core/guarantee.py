"""The no-increase guarantee (docs/design.md §5.9): what a migrated customer is charged per month.

charges(m) = pre-tax amounts invoiced for service in month m:

- subscription fees for m (subscription invoices with service period m),
- overage for m (overage invoices with service period m, issued at m's close),
- top-ups bought in m (purchase invoices of top-up grants whose purchase date falls in m),
- commitments' monthly share: amount x days of m in the term / days in the term, by cumulative
  rounding (the shares of all months add up to the amount exactly).

Each invoice counts net of the credit notes that correct it (refunds and voids: credit notes
whose ``reference`` is that invoice), so a cancelled purchase charges nothing. Guarantee credit
notes themselves are not charges. All amounts are int minor units of the customer's currency;
months are 'YYYY-MM' in the reporting timezone.

The core evaluates a month at its close (``ledger.core.rules.guarantee``); the report
(``ledger.reporting.guarantees``) uses the same function on the stored documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from ledger.core.money import cumulative_share
from ledger.core.periods import first_day, last_day, local_date, next_period, period_of

CHARGE_SOURCES = ("subscription", "overage", "topups", "commitments")


@dataclass(frozen=True)
class ChargeDocument:
    """An issued invoice or credit note, as far as charges are concerned (amounts: minor units)."""

    number: str
    kind: str  # invoice | credit_note
    category: str  # purchase | subscription | overage | refund | void | guarantee
    service_period: str | None
    subtotal: int
    reference: str | None  # the invoice a credit note corrects


@dataclass(frozen=True)
class Sale:
    """The grant a purchase invoice sold: a top-up bought on ``start``, or a commitment whose term
    runs from ``start`` to ``end`` (inclusive local dates)."""

    invoice_number: str
    source: str  # topup | commitment
    start: date
    end: date


@dataclass
class MonthCharges:
    """charges(m) by source; ``total`` is their sum (int minor units)."""

    period: str
    subscription: int = 0
    overage: int = 0
    topups: int = 0
    commitments: int = 0

    @property
    def total(self) -> int:
        return self.subscription + self.overage + self.topups + self.commitments


def window(start_month: str, months: int) -> list[str]:
    """The months of a guarantee window: window("2026-11", 3) -> ["2026-11", "2026-12", "2027-01"]."""
    out = [start_month]
    while len(out) < months:
        out.append(next_period(out[-1]))
    return out


def monthly_charges(documents: Iterable[ChargeDocument], sales: Iterable[Sale], months: Iterable[str]) -> dict[str, MonthCharges]:
    """charges(m) for each of ``months`` (see the module docstring); {period: MonthCharges}."""
    wanted = {m: MonthCharges(m) for m in months}
    docs = list(documents)
    net: dict[str, int] = {}
    for doc in docs:
        if doc.kind == "invoice":
            net[doc.number] = net.get(doc.number, 0) + doc.subtotal
    for doc in docs:
        if doc.kind == "credit_note" and doc.category in ("refund", "void") and doc.reference in net:
            net[doc.reference] -= doc.subtotal
    sold = {s.invoice_number: s for s in sales}
    for doc in docs:
        if doc.kind != "invoice":
            continue
        amount = net[doc.number]
        if doc.category in ("subscription", "overage"):
            row = wanted.get(doc.service_period or "")
            if row is not None:
                setattr(row, doc.category, getattr(row, doc.category) + amount)
        elif doc.category == "purchase" and doc.number in sold:
            sale = sold[doc.number]
            if sale.source == "topup":
                row = wanted.get(period_of(sale.start))
                if row is not None:
                    row.topups += amount
            elif sale.source == "commitment":
                for m, row in wanted.items():
                    row.commitments += commitment_share(amount, sale.start, sale.end, m)
    return wanted


def commitment_share(amount: int, start: date, end: date, period: str) -> int:
    """A commitment's share of month ``period``: amount x days of the month in the term / days
    in the term, cumulative rounding (round half away from zero of the running total), so the
    shares of the term's months sum to ``amount``. amount: int minor units; start..end inclusive."""
    days = (end - start).days + 1
    if days <= 0:
        return 0

    def through(d: date) -> int:  # term days on or before d
        return min(max((d - start).days + 1, 0), days)

    return (cumulative_share(amount, through(last_day(period)), days)
            - cumulative_share(amount, through(first_day(period) - timedelta(days=1)), days))


def sale_of(invoice_number, source, effective_at, expires_at, tz: ZoneInfo) -> Sale:
    """A `Sale` from a grant's invoice, source and validity (aware datetimes; expires_at is the
    start of the day after the term's last day, or None for a top-up that never expires)."""
    start = local_date(effective_at, tz)
    end = local_date(expires_at, tz) - timedelta(days=1) if expires_at is not None else start
    return Sale(invoice_number, source, start, max(start, end))
