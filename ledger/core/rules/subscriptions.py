"""Subscriptions: start, cancel, each month billed in advance, and its platform revenue
recognised ratably (docs/design.md §5).

A plan month's fee F is split by relative standalone selling prices (ASC 606-10-32-28..33,
IFRS 15.76-80) into Fc for the included credits (a grant, recognised as they are consumed)
and Fp for platform access (recognised over the month)::

    bill:      Dr 1100 F+T / Cr 2100 (grant) Fc / Cr 2150 Fp / Cr 2400 T;  Dr 9000 q / Cr 9100 (grant) q
    month end: Dr 2150 / Cr 4020 Fp

A partial first or last month is prorated by days (cumulative rounding); its included credits
are floored.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook, SubState
from ledger.core.documents import new_document
from ledger.core.entries import EntryKind
from ledger.core.posting import problem
from ledger.core.records import GrantRecord, SubscriptionPeriodRecord, SubscriptionRecord
from ledger.core.schedule import catch_up
from ledger.events import SourcedEvent, SubscriptionCancelled, SubscriptionStarted
from ledger.core.money import CREDIT, allocate, apply_rate, cumulative_share, format_units, major_str, parse_decimal, to_minor
from ledger.core.periods import first_day, last_day, start_of_day

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def on_subscription_started(p: Posting, se: SourcedEvent, ev: SubscriptionStarted) -> None:
    """Start a subscription on a catalog plan, copying the plan's terms; its months are billed
    by the schedule. raises InvalidInputError when another subscription runs then."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    plan = p.catalog.plan(ev.plan)
    assert plan is not None  # validated
    for other in book.subs:
        if other.row.end_date is None or other.row.end_date >= ev.start_date:
            raise problem(se, "start_date", ev.start_date.isoformat(),
                          f"customer {ev.customer_id} already has subscription {other.row.id} ({other.row.plan}) "
                          f"running then; cancel it first")
    cur = book.customer.currency
    row = SubscriptionRecord(
        id=se.id, customer_id=ev.customer_id, plan=ev.plan, plan_name=plan.name, currency=cur,
        monthly_fee=to_minor(plan.monthly_fee, cur), included_credits=plan.included_credits,
        credit_ssp=plan.credit_ssp, platform_ssp=plan.platform_ssp, overage_price=plan.overage_price,
        rollover_percent=plan.rollover.percent, rollover_max_periods=plan.rollover.max_periods,
        rollover_max_credits=plan.rollover.max_credits, rollover_expires=plan.rollover.expires,
        start_date=ev.start_date, end_date=None, cancel_event_id=None)
    book.subs.append(SubState(row, {}, new=True))
    p.record_event(se, ev.customer_id, d, late)
    catch_up(p, book, ev.occurred_at)


def on_subscription_cancelled(p: Posting, se: SourcedEvent, ev: SubscriptionCancelled) -> None:
    """End the running subscription on ``end_date`` (its last service day)."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    running = [s for s in book.subs if s.row.end_date is None]
    if not running:
        ended = [s for s in book.subs if s.row.end_date is not None]
        why = (f"subscription {ended[-1].row.id} was already cancelled (end_date {ended[-1].row.end_date})"
               if ended else "there is no subscription")
        raise problem(se, "customer_id", ev.customer_id, f"cannot cancel: {why}")
    sub = running[-1]
    if ev.end_date < sub.row.start_date:
        raise problem(se, "end_date", ev.end_date.isoformat(), f"is before the subscription's start_date {sub.row.start_date}")
    sub.row.end_date, sub.row.cancel_event_id = ev.end_date, se.id
    sub.changed = True
    p.record_event(se, ev.customer_id, d, late)


def recognise(p: Posting, book: CustomerBook, sub: SubState, number: str) -> None:
    """Month end of a subscription: Dr 2150 / Cr 4020 the month's platform fee Fp (ratable)."""
    due, fee = sub.pending.pop(number)
    c = book.customer
    draft = p.entry(p.step_date(due), due, EntryKind.RECOGNITION,
                    f"Subscription revenue of {sub.row.plan_name} ({sub.row.id}), invoice {number}", c.id)
    draft.dr(A.DEFERRED_SUBSCRIPTIONS, c.currency, fee, invoice_number=number)
    draft.cr(A.SUBSCRIPTION_REVENUE, c.currency, fee, invoice_number=number)


def split_fee(row: SubscriptionRecord, fee: int, credits: int) -> tuple[int, int]:
    """(Fc, Fp): a month's fee split by relative SSPs between included credits and platform
    access (ASC 606-10-32-31), cumulative rounding, Fc + Fp = fee exactly."""
    credit_ssp = Decimal(row.included_credits) * Decimal(row.credit_ssp)
    platform_ssp = Decimal(row.platform_ssp)
    if credits == 0 or credit_ssp == 0:
        return 0, fee
    if platform_ssp == 0:
        return fee, 0
    fc, fp = allocate(fee, [credit_ssp, platform_ssp])
    return fc, fp


def bill_month(p: Posting, book: CustomerBook, sub: SubState, m: str) -> None:
    """Bill month m in advance with its invoice and included credits (see the module docstring)."""
    row, c = sub.row, book.customer
    first, last = first_day(m), last_day(m)
    start = max(row.start_date, first)
    end = min(last, row.end_date) if row.end_date else last
    days, dim = (end - start).days + 1, last.day
    fee = row.monthly_fee if days == dim else cumulative_share(row.monthly_fee, days, dim)
    credits = row.included_credits if days == dim else row.included_credits * days // dim
    fc, fp = split_fee(row, fee, credits)
    tax = apply_rate(fee, parse_decimal(c.tax_rate))
    due = start_of_day(start, p.tz)
    d = p.step_date(due, period_end=False)
    span = f"{start.isoformat()} to {end.isoformat()}" + (f", {days} of {dim} days" if days != dim else "")
    text = f"{row.plan_name} plan, {m} ({span}): {format_units(credits)} included credits"
    # a month with nothing to bill (a zero-fee plan) issues no invoice; one with no credits
    # either posts nothing: its overage, if any, is invoiced in arrears (docs/design.md §5.3)
    inv = new_document(p.store, customer_id=c.id, currency=c.currency, issue_date=d,
                       terms_days=p.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                       event_id=row.id, lines=[(text, 1, major_str(fee, c.currency), fee)],
                       category="subscription", service_period=m) if fee else None
    number = inv.number if inv is not None else None
    grant_id = f"{row.id}:{m}" if credits else None
    if grant_id:
        p.add_grant(book, GrantRecord(
            id=grant_id, customer_id=c.id, source="subscription", units=credits, amount=fc, currency=c.currency,
            effective_at=due, expires_at=start_of_day(end + timedelta(days=1), p.tz), breakage_method="at_expiry",
            expected_breakage_rate=None, rollover_percent=row.rollover_percent,
            rollover_max_periods=row.rollover_max_periods, rollover_max_credits=row.rollover_max_credits,
            rollover_expires=row.rollover_expires, renews=None, overage_price=None, contract_id=row.id,
            generation=0, parent_grant_id=None, event_id=row.id, invoice_number=number))
    period_row = SubscriptionPeriodRecord(subscription_id=row.id, period=m, customer_id=c.id, service_start=start,
                                          service_end=end, fee=fee, credits_fee=fc, platform_fee=fp, credits=credits,
                                          invoice_number=number, grant_id=grant_id)
    sub.periods[m] = period_row
    p.period_rows.append(period_row)
    if inv is None and not credits:
        return
    if fp and number is not None:
        sub.pending[number] = (start_of_day(end + timedelta(days=1), p.tz), fp)
    draft = p.entry(d, due, EntryKind.SUBSCRIPTION, text + (f"; invoice {number}" if number else "; nothing billed"),
                    c.id, None)
    dims = {"invoice_number": number}
    draft.dr(A.RECEIVABLE, c.currency, fee + tax, **dims)
    draft.cr(A.DEFERRED_CREDITS, c.currency, fc, grant_id=grant_id, **dims)
    draft.cr(A.DEFERRED_SUBSCRIPTIONS, c.currency, fp, **dims)
    draft.cr(A.SALES_TAX, c.currency, tax, **dims)
    draft.dr(A.CREDITS_ISSUED, CREDIT, credits, grant_id=grant_id)
    draft.cr(A.CREDITS_OUTSTANDING, CREDIT, credits, grant_id=grant_id)
    if inv is not None:
        p.issue(book, inv, draft)
