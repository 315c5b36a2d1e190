"""Usage: credits drawn from grants in consumption order, overage beyond them, quarantine at
the hard cap, and overage invoiced in arrears (docs/design.md §4-5).

A usage event of q credits at time t draws from the grants usable at t in consumption order
(`ledger.core.grants.plan_drawdown`). Each grant's relief follows the cumulative formula, so the
revenue of every draw is exact. Usage is posted as one consumption entry per customer and
accounting day per posting::

    per grant g:  Dr 2100 (g) / Cr 4000 Usage revenue;   Dr 9100 (g) / Cr 9200 Credits consumed
    overage:      Dr 1150 / Cr 4010 round(units x price), cumulative per customer-month;
                  Dr 9050 / Cr 9200
    cost:         Dr 5000 Cost of revenue / Cr 2500 Accrued cost of usage, the day's exact cost
                  to serve rounded once (the event's own ``cost``, else the catalog's unit cost)

With no overage price in effect, usage beyond the credits held is quarantined with its reason
(the hard cap), never dropped. A proportional-breakage grant's breakage share goes into its own
entry, so reports show it as breakage (ASC 606-10-55-48). Overage of a month is invoiced at the
month's end: Dr 1100 O+T / Cr 1150 O / Cr 2400 T.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import ConsumptionBucket, CustomerBook, Overage
from ledger.core.documents import new_document
from ledger.core.entries import EntryDraft, EntryKind
from ledger.core.posting import problem
from ledger.core.records import QuarantineRecord, UsageDay, UsageRecord
from ledger.core.rules import review
from ledger.core.rules.autotopup import auto_topup, crosses, policy_of
from ledger.core.schedule import next_step, run_steps
from ledger.events import SourcedEvent, UsageRecorded
from ledger.core.grants import plan_drawdown
from ledger.core.money import (CREDIT, INT64_MAX, apply_rate, exponent, format_units, parse_decimal, price_amount,
                               round_fraction)
from ledger.core.periods import local_date, period_end, period_of, start_of_day

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def overage_price(p: Posting, book: CustomerBook, t: datetime) -> str | None:
    """The per-credit overage price in effect at t: the running subscription's plan, else a
    commitment in its term with an overage price; None means a hard cap."""
    d = local_date(t, p.tz)
    for sub in book.subs:
        if sub.active_on(d) and sub.row.overage_price:
            return sub.row.overage_price
    terms = [g for g in book.grants.values() if g.source == "commitment" and g.overage_price
             and g.effective_at <= t and (g.expires_at is None or t < g.expires_at)]
    if terms:
        return max(terms, key=lambda g: (g.effective_at, g.seq)).overage_price
    return None


def _effective_time(p: Posting, book: CustomerBook, t: datetime) -> tuple[datetime, bool]:
    """(the instant the usage is drawn at, late): a usage dated before the customer's steps
    cursor, or in a closed period, is drawn at the cursor or the first open day."""
    _, late = p.accounting_date(t)
    t_eff = t
    if book.steps_through is not None and t < book.steps_through:
        late, t_eff = True, book.steps_through
    if late and p.first_open is not None:
        t_eff = max(t_eff, start_of_day(p.first_open, p.tz))
    return t_eff, late


def on_usage_recorded(p: Posting, se: SourcedEvent, ev: UsageRecorded, *, released: bool = False) -> None:
    """Draw credits in consumption order; beyond the credits held, overage at the price in
    effect or, without one, quarantine (hard cap). Usage past the customer's soft cap is held
    for review instead (`ledger.core.rules.review`), unless ``released`` by an approval."""
    book = p.book(ev.customer_id)
    t = ev.occurred_at
    d, _ = p.accounting_date(t)
    t_eff, late = _effective_time(p, book, t)
    run_steps(p, book, t_eff)
    credits = ev.credits if ev.credits is not None else p.catalog.model.rate_card[ev.action] * ev.quantity  # type: ignore[index,operator]
    if not released and review.over_soft_cap(p, book, d, credits):
        review.hold(p, se, ev, book, d, t, credits, late)
        return
    plan, available = plan_drawdown(list(book.grants.values()), t_eff, credits)
    over, price = 0, None
    if not plan:
        price = overage_price(p, book, t_eff)
        if price is not None:
            plan = plan_drawdown(list(book.grants.values()), t_eff, available)[0] if available else []
            over = credits - available
    row = UsageRecord(id=se.id, customer_id=ev.customer_id, occurred_at=t, credits=credits, action=ev.action,
                      quantity=ev.quantity, content_hash=se.content_hash, status="posted", late=late,
                      import_id=p.import_id, source=se.source, overage_units=over,
                      overage_price=price if over else None, cost=ev.cost)
    p.usage_rows.append(row)
    p.usage_index[se.id] = row
    if late:
        p.summary.late += 1
        p.summary.late_events.append(se.id)
    if not plan and not over:
        _quarantine(p, se, ev, row, available)
        return
    bucket = p.bucket(book, d, t)
    row.draw_start = bucket.drawn
    _consume(bucket, plan)
    p.draws_of.setdefault(se.id, []).extend((g.id, units) for g, units in plan)
    if over:
        assert price is not None
        _add_overage(se, book, bucket, period_of(d), price, over, credits)
    cost = usage_cost(p, book.customer.currency, ev.cost, ev.action, ev.quantity if ev.action else credits)
    if cost:
        if round_fraction(bucket.cost + cost) > INT64_MAX // 2:
            raise problem(se, "cost", ev.cost, "the day's cost of usage exceeds the 64-bit range of amounts")
        bucket.cost += cost
    bucket.usage_ids.append(se.id)
    bucket.events += 1
    p.usage_bucket[se.id] = bucket
    p.summary.posted += 1
    auto_topup(p, se, book, t_eff, d, available, credits - over)
    review.count_used(p, book, d, credits)


def usage_cost(p: Posting, currency: str, own: str | None, action: str | None, units: int) -> Fraction:
    """The cost to serve a usage event, exact, in minor units of ``currency``: its ``own`` cost
    (decimal string, major units) when it gave one, else the catalog's unit cost of ``action``
    (None: of a credit) times ``units`` (its quantity, or its credits); 0 when none is set."""
    unit = own if own is not None else p.catalog.unit_cost(action, currency)
    if unit is None:
        return Fraction(0)
    cost = Fraction(parse_decimal(unit)) * 10 ** exponent(currency)
    return cost if own is not None else cost * units


def _consume(bucket: ConsumptionBucket, plan: list) -> None:
    """Draw ``plan`` [(grant state, units)] into ``bucket``: each grant relieved (revenue and
    breakage summed per grant) and the draws appended to the bucket's drawdown stream."""
    for g, units in plan:
        usage, breakage = g.consume(units)
        acc = bucket.per_grant.setdefault(g.id, [0, 0, 0])
        acc[0] += units
        acc[1] += usage
        acc[2] += breakage
        bucket.draw(g.id, units)


def post_usage_day(p: Posting, day: UsageDay) -> tuple[int, str | None] | None:
    """Post a customer-day of usage as a whole, when that gives exactly what posting its events
    one by one gives: returns (units the grants cover, overage price or None) and the events
    take their places in the bucket in time order; None, with nothing changed but the steps due
    by the first event, when the day must be posted event by event: a step falls due after its
    first event (an expiry, a month's bill), a grant starts or ends during it, it reaches the
    hard cap, or it crosses the customer's auto top-up threshold or soft cap. Each event's draws are then the cumulative split of the day's stream: grants
    relieve by the cumulative formula and overage is priced cumulatively, so the sums agree."""
    book = p.book(day.customer_id)
    t0, t1 = day.first_at, day.last_at
    step = next_step(p, book, t1)
    if step is not None and step[0] <= t0:  # steps due by the first event run first, as for it
        run_steps(p, book, t0)
        step = next_step(p, book, t1)
    if step is not None or (t1 > t0 and any(
            t0 < g.effective_at <= t1 or (g.expires_at is not None and t0 < g.expires_at <= t1)
            for g in book.grants.values())):
        return None
    plan, available = plan_drawdown(list(book.grants.values()), t0, day.credits)
    drawable, price = day.credits, None
    if not plan:
        price = overage_price(p, book, t0)
        if price is None:
            return None
        plan = plan_drawdown(list(book.grants.values()), t0, available)[0] if available else []
        drawable = available
    if crosses(policy_of(p, book), available, drawable):
        return None  # an auto top-up: bought by the event that crosses, in the general rules
    d, _ = p.accounting_date(t0)
    if review.over_soft_cap(p, book, d, day.credits):
        return None  # the event that passes the soft cap is held, in the general rules
    acc_o = book.overage.get((period_of(d), price)) if price is not None else None
    if price is not None and price_amount((acc_o.units if acc_o else 0) + day.credits - drawable, price,
                                          book.customer.currency) > INT64_MAX // 2:
        return None  # the general path refuses it, naming the event
    cost = usage_cost(p, book.customer.currency, None, None, day.credits)  # a credits CSV: the catalog's per credit
    held = p.buckets.get((book.customer.id, d))
    if round_fraction((held.cost if held else 0) + cost) > INT64_MAX // 2:
        return None
    bucket = p.bucket(book, d, t0)
    bucket.cost += cost
    p.bucket(book, d, t1)
    _consume(bucket, plan)
    if drawable < day.credits:
        assert price is not None
        over = day.credits - drawable
        cur = book.customer.currency
        acc_o = book.overage.setdefault((period_of(d), price), Overage())
        before = price_amount(acc_o.units, price, cur)
        acc_o.units += over
        bucket.overage_units += over
        bucket.overage_amount += price_amount(acc_o.units, price, cur) - before
    bucket.events += day.events
    p.summary.posted += day.events
    review.count_used(p, book, d, day.credits)
    return drawable, price


def draws_at(segments: list[tuple[str, int]], start: int, units: int) -> list[tuple[str, int]]:
    """The draws [(grant id, units)], by grant id, of the usage event that took ``units`` from
    its consumption entry's drawdown stream at position ``start``. ``segments``: the entry's
    Dr 9100 Credits outstanding lines in line order, as (grant id, units)."""
    out: dict[str, int] = {}
    pos, end = 0, start + units
    for grant_id, seg in segments:
        lo, hi = max(pos, start), min(pos + seg, end)
        if lo < hi:
            out[grant_id] = out.get(grant_id, 0) + hi - lo
        pos += seg
        if pos >= end:
            break
    return sorted(out.items())


def _quarantine(p: Posting, se: SourcedEvent, ev: UsageRecorded, row: UsageRecord, available: int) -> None:
    """The hard cap: keep the usage with its reason, post nothing."""
    row.status = "quarantined"
    reason = f"hard cap: {row.credits} credits requested, {available} available and no overage price"
    p.quarantine_rows.append(QuarantineRecord(event_id=se.id, customer_id=ev.customer_id, occurred_at=row.occurred_at,
                                              credits=row.credits, reason=reason, available=available,
                                              import_id=p.import_id))
    p.summary.quarantined += 1
    p.summary.quarantine.append((se.id, reason))


def _add_overage(se: SourcedEvent, book: CustomerBook, bucket: ConsumptionBucket, period: str, price: str,
                 over: int, credits: int) -> None:
    """``over`` units of overage at ``price`` in ``period``: the increment of the month's
    cumulative amount round(units x price) goes into the bucket."""
    cur = book.customer.currency
    acc = book.overage.setdefault((period, price), Overage())
    before = price_amount(acc.units, price, cur)
    acc.units += over
    if price_amount(acc.units, price, cur) > INT64_MAX // 2:
        raise problem(se, "credits", credits, "the overage amount exceeds the 64-bit range of amounts")
    bucket.overage_units += over
    bucket.overage_amount += price_amount(acc.units, price, cur) - before


def consumption_entries(p: Posting, bucket: ConsumptionBucket) -> tuple[EntryDraft, EntryDraft | None]:
    """The consumption entry of ``bucket`` (per grant Dr 2100 / Cr 4000 and Dr 9100 / Cr 9200;
    overage Dr 1150 / Cr 4010 and Dr 9050 / Cr 9200) and, when a proportional grant recognised
    breakage with the usage, its proportional-breakage entry (else None)."""
    cid, d = bucket.customer_id, bucket.entry_date
    cur = p.books[cid].customer.currency
    at = bucket.last_at or bucket.first_at
    draft = EntryDraft(d, at, EntryKind.CONSUMPTION, "", cid, None, p.import_id)
    breakage_draft = None
    units_total = 0
    revenue_done: set[str] = set()
    for grant_id, units in bucket.segments:
        # a grant's revenue lines go with its first segment; a grant drawn again after another
        # (a grant that became usable mid-day came first) gets a second pair of CREDIT lines
        if grant_id not in revenue_done:
            revenue_done.add(grant_id)
            _, usage, breakage = bucket.per_grant[grant_id]
            draft.dr(A.DEFERRED_CREDITS, cur, usage, grant_id=grant_id)
            draft.cr(A.USAGE_REVENUE, cur, usage, grant_id=grant_id)
            if breakage:
                if breakage_draft is None:
                    breakage_draft = EntryDraft(d, at, EntryKind.PROPORTIONAL_BREAKAGE,
                                                f"Proportional breakage on usage of {cid} on {d.isoformat()} "
                                                "(ASC 606-10-55-48)", cid, None, p.import_id)
                breakage_draft.dr(A.DEFERRED_CREDITS, cur, breakage, grant_id=grant_id)
                breakage_draft.cr(A.BREAKAGE_REVENUE, cur, breakage, grant_id=grant_id)
        draft.dr(A.CREDITS_OUTSTANDING, CREDIT, units, grant_id=grant_id)
        draft.cr(A.CREDITS_CONSUMED, CREDIT, units, grant_id=grant_id)
        units_total += units
    if bucket.overage_units:
        draft.dr(A.UNBILLED, cur, bucket.overage_amount)
        draft.cr(A.OVERAGE_REVENUE, cur, bucket.overage_amount)
        draft.dr(A.CREDITS_OVERAGE, CREDIT, bucket.overage_units)
        draft.cr(A.CREDITS_CONSUMED, CREDIT, bucket.overage_units)
        units_total += bucket.overage_units
    cost = round_fraction(bucket.cost)
    draft.dr(A.COST_OF_REVENUE, cur, cost)
    draft.cr(A.ACCRUED_COST, cur, cost)
    draft.description = (f"Usage of {cid} on {d.isoformat()}: {bucket.events} events, "
                         f"{format_units(units_total)} credits"
                         + (f" ({format_units(bucket.overage_units)} as overage)" if bucket.overage_units else ""))
    return draft, breakage_draft


def invoice_overage(p: Posting, book: CustomerBook, period: str) -> None:
    """Overage of ``period`` invoiced in arrears: Dr 1100 O+T / Cr 1150 O / Cr 2400 T."""
    c = book.customer
    lines = []
    for (pp, price), acc in sorted(book.overage.items()):
        if pp != period or acc.units <= acc.invoiced_units:
            continue
        amount = price_amount(acc.units, price, c.currency) - acc.invoiced_amount
        lines.append((f"Overage {period}: credits used beyond the credits held", acc.units - acc.invoiced_units,
                      price, amount))
        acc.invoiced_units, acc.invoiced_amount = acc.units, acc.invoiced_amount + amount
    subtotal = sum(ln[3] for ln in lines)
    if subtotal <= 0:
        return
    due = period_end(period, p.tz)
    d = p.step_date(due)
    tax = apply_rate(subtotal, parse_decimal(c.tax_rate))
    inv = new_document(p.store, customer_id=c.id, currency=c.currency, issue_date=d,
                       terms_days=p.catalog.company.payment_terms_days, tax_rate=c.tax_rate, tax=tax,
                       event_id=f"overage:{c.id}:{period}", lines=lines, category="overage", service_period=period)
    draft = p.entry(d, due, EntryKind.OVERAGE_INVOICE, f"Overage of {c.id} for {period}; invoice {inv.number}", c.id)
    draft.dr(A.RECEIVABLE, c.currency, subtotal + tax, invoice_number=inv.number)
    draft.cr(A.UNBILLED, c.currency, subtotal, invoice_number=inv.number)
    draft.cr(A.SALES_TAX, c.currency, tax, invoice_number=inv.number)
    p.issue(book, inv, draft)
