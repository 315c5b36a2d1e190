"""Forward-looking reports read from the journal: the deferred-revenue waterfall and usage alerts.

Both are ``ledger.reporting.Report`` values rendered by ``reports.tables`` like every other
report: money fields are int minor units of the row's ``currency``, credit fields are int units.
Every input is a sum of journal lines dated on or before the period's last day (reporting
timezone) plus the grants' static terms (``credit_grant``: units, effective_at, expires_at) and
the billed subscription months (``subscription_period.service_end``):

- a grant's deferred balance D: 2100 lines with its grant_id, credit - debit;
- its outstanding units U: 9100 lines with its grant_id, credit - debit;
- its consumed units: 9100 debits of ``consumption`` entries, less the 9100 credits of ``void``
  entries that return a voided usage event's units (lines whose event_id is a usage event);
- platform fees not yet recognised: 2150 lines per invoice_number.

The consumption rate of the last 30 days is the consumed units (as above) of entries dated in the
30 days ending on the period's last day, divided by 30 (credits per day). Overage units (9050) are
not drawn from grants and do not count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.grants import GrantState, drawdown_key
from ledger.store.models import (
    Grant,
    JournalEntry,
    JournalLine,
    SubscriptionPeriod,
    UsageEvent,
)
from ledger.core.money import CREDIT, cumulative_share, round_div
from ledger.core.periods import (
    boundary_date,
    first_day,
    last_day,
    next_period,
    parse_period,
    period_end,
    period_of,
    start_of_day,
)
from ledger.reporting import Column, Report, _customer_names

UTC = ZoneInfo("UTC")
RATE_DAYS = 30
HORIZON_MONTHS = 12
THRESHOLDS = (70, 90, 100)
METHODS = ("by_expiry", "at_rate")


# --------------------------------------------------------------------------- journal reads
@dataclass
class _Lot:
    """A grant's position at the period end, from the journal. deferred: int minor units (2100);
    outstanding, consumed: int units (9100); voided: its issue was voided."""

    grant: Grant | None  # None: 2100 lines without a grant (never expected; kept so totals tie)
    customer_id: str
    currency: str
    deferred: int = 0
    outstanding: int = 0
    consumed: int = 0
    voided: bool = False
    draws: list[int] = field(default_factory=list)  # rate method: units drawn per horizon month


def _usage_units(session: Session, through: date, since: date | None = None) -> dict[tuple[str, str], int]:
    """Units drawn from grants by usage, net of voided usage, per (customer_id, grant_id), in
    entries dated ``since``..``through`` (inclusive; life to date without ``since``)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    usage_ids = sa.select(UsageEvent.id)
    for kind, side, extra in (("consumption", JournalLine.debit, None),
                              ("void", -JournalLine.credit, JournalLine.event_id.in_(usage_ids))):
        q = (sa.select(JournalLine.customer_id, JournalLine.grant_id, sa.func.sum(side))
             .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
             .where(JournalLine.account_code == A.CREDITS_OUTSTANDING, JournalEntry.kind == kind,
                    JournalLine.grant_id.is_not(None), JournalEntry.entry_date <= through)
             .group_by(JournalLine.customer_id, JournalLine.grant_id))
        if since is not None:
            q = q.where(JournalEntry.entry_date >= since)
        if extra is not None:
            q = q.where(extra)
        for cid, gid, units in session.execute(q):
            out[(cid, gid)] += int(units)
    return dict(out)


def _lots(session: Session, through: date) -> dict[tuple[str, str | None], _Lot]:
    """Every grant with journal lines dated on or before ``through``: deferred, outstanding,
    consumed (life to date) and whether its issue was voided. Keyed by (customer_id, grant_id)."""
    q = (sa.select(JournalLine.customer_id, JournalLine.grant_id, JournalLine.account_code, JournalLine.commodity,
                   JournalEntry.kind, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_([A.DEFERRED_CREDITS, A.CREDITS_OUTSTANDING]),
                JournalEntry.entry_date <= through)
         .group_by(JournalLine.customer_id, JournalLine.grant_id, JournalLine.account_code, JournalLine.commodity,
                   JournalEntry.kind))
    raw = session.execute(q).all()
    ids = sorted({gid for _, gid, *_ in raw if gid is not None})
    grants: dict[str, Grant] = {}
    for i in range(0, len(ids), 500):
        grants.update((g.id, g) for g in session.execute(sa.select(Grant).where(Grant.id.in_(ids[i:i + 500]))).scalars())
    lots: dict[tuple[str, str | None], _Lot] = {}
    for cid, gid, account, commodity, kind, debit, credit in raw:
        g = grants.get(gid) if gid is not None else None
        key = (g.customer_id if g else cid, gid)
        lot = lots.get(key)
        if lot is None:
            lot = lots[key] = _Lot(g, key[0], g.currency if g else commodity)
        if account == A.DEFERRED_CREDITS:
            lot.deferred += int(credit) - int(debit)
        else:
            lot.outstanding += int(credit) - int(debit)
            if kind == "void" and int(debit):
                lot.voided = True
    for (cid, gid), units in _usage_units(session, through).items():
        if (cid, gid) in lots:
            lots[(cid, gid)].consumed += units
    return lots


def _window_start(period: str) -> date:
    return last_day(period) - timedelta(days=RATE_DAYS - 1)


def _rate_text(units: int) -> str:
    """units per RATE_DAYS days as credits/day, a decimal string with 2 decimals (half up)."""
    hundredths = round_div(units * 100, RATE_DAYS)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _last_valid_day(expires_at: datetime | None, tz: ZoneInfo) -> date | None:
    """The local date of the last instant a grant is valid (expires_at is exclusive)."""
    return boundary_date(expires_at, tz) if expires_at is not None else None


# --------------------------------------------------------------------------- waterfall
def _horizon(period: str) -> list[str]:
    months, m = [], period
    for _ in range(HORIZON_MONTHS):
        m = next_period(m)
        months.append(m)
    return months


def _bucket(month: str | None, period: str, months: list[str]) -> str:
    if month is None:
        return "no_expiry"
    if month <= period:
        return "due"
    if month > months[-1]:
        return "later"
    return month


def _simulate(lots: list[_Lot], rate_units: int, months: list[str], tz: ZoneInfo) -> None:
    """Draw the customer's projected usage day by day over the horizon, in the engine's
    consumption order (``ledger.core.grants.drawdown_key``: soonest expiry first, then lower cost
    basis, earlier start, higher generation, creation order); fills each lot's ``draws``.

    Day k (1-based, from the first day after the period) draws floor(rate_units x k / 30) -
    floor(rate_units x (k - 1) / 30) units (cumulative rounding, so 30 days draw exactly
    rate_units). A grant can be drawn on a local day d when it is effective before d ends and
    expires after d starts; units beyond what the grants hold would be overage and are ignored.
    """
    states: list[tuple[GrantState, _Lot]] = []
    ordered = sorted((lot for lot in lots if lot.grant is not None and lot.outstanding > 0),
                     key=lambda lot: (lot.grant.effective_at, lot.grant.id))  # type: ignore[union-attr]
    for seq, lot in enumerate(ordered):
        g = lot.grant
        assert g is not None
        states.append((GrantState(g.id, g.customer_id, g.source, g.units, g.amount, g.currency, g.effective_at,
                                  g.expires_at, g.units - lot.outstanding, seq, generation=g.generation), lot))
    for lot in lots:
        lot.draws = [0] * len(months)
    if rate_units <= 0 or not states:
        return
    day, end = first_day(months[0]), first_day(next_period(months[-1]))
    index = {m: i for i, m in enumerate(months)}
    k = 0
    while day < end:
        k += 1
        want = rate_units * k // RATE_DAYS - rate_units * (k - 1) // RATE_DAYS
        lo, hi = start_of_day(day, tz), start_of_day(day + timedelta(days=1), tz)
        usable = sorted(((s, lot) for s, lot in states if s.remaining > 0 and s.effective_at < hi
                         and (s.expires_at is None or s.expires_at > lo)), key=lambda p: drawdown_key(p[0]))
        for s, lot in usable:
            if want == 0:
                break
            take = min(want, s.remaining)
            s.relieved += take
            lot.draws[index[period_of(day)]] += take
            want -= take
        if all(s.remaining == 0 for s, _ in states):
            break
        day += timedelta(days=1)


def _schedule_by_expiry(lot: _Lot, period: str, months: list[str], tz: ZoneInfo) -> dict[str, int]:
    g = lot.grant
    month = None if g is None or g.expires_at is None else period_of(boundary_date(g.expires_at, tz))
    return {_bucket(month, period, months): lot.deferred}


def _schedule_at_rate(lot: _Lot, period: str, months: list[str], tz: ZoneInfo, rate_units: int) -> dict[str, int]:
    g = lot.grant
    out: dict[str, int] = defaultdict(int)
    expiry = None if g is None or g.expires_at is None else period_of(boundary_date(g.expires_at, tz))
    if lot.outstanding <= 0 or (expiry is not None and expiry <= period):
        out[_bucket(expiry, period, months)] += lot.deferred
        return dict(out)
    drawn, released = 0, 0
    for i, m in enumerate(months):
        drawn += lot.draws[i] if lot.draws else 0
        value = cumulative_share(lot.deferred, drawn, lot.outstanding)
        out[m] += value - released
        released = value
        if m == expiry:  # the rest expires as breakage in the month of the last valid day
            out[m] += lot.deferred - released
            released = lot.deferred
            break
    if lot.deferred != released:
        out["later" if expiry is not None or rate_units > 0 else "no_expiry"] += lot.deferred - released
    return dict(out)


def _subscription_fees(session: Session, through: date) -> list[tuple[str, str, date | None, int]]:
    """(customer_id, currency, service_end, amount) of every 2150 balance per invoice at ``through``."""
    q = (sa.select(JournalLine.customer_id, JournalLine.commodity, JournalLine.invoice_number,
                   sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code == A.DEFERRED_SUBSCRIPTIONS, JournalEntry.entry_date <= through)
         .group_by(JournalLine.customer_id, JournalLine.commodity, JournalLine.invoice_number))
    balances = [(cid, cur, number, int(v)) for cid, cur, number, v in session.execute(q) if int(v)]
    ends = dict(session.execute(sa.select(SubscriptionPeriod.invoice_number, SubscriptionPeriod.service_end)).all()) if balances else {}
    return [(cid, cur, ends.get(number), amount) for cid, cur, number, amount in balances]


def ledger_deferred(session: Session, period: str) -> dict[str, int]:
    """Deferred revenue on the ledger (2100 + 2150, credit - debit) at the period's last day, per
    currency: int minor units. The waterfall's totals equal it."""
    q = (sa.select(JournalLine.commodity, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_(A.DEFERRED_ACCOUNTS), JournalEntry.entry_date <= last_day(period))
         .group_by(JournalLine.commodity))
    return {cur: int(v) for cur, v in session.execute(q) if cur != CREDIT}


def waterfall(session: Session, period: str, *, tz: ZoneInfo = UTC) -> Report:
    """Deferred revenue (2100 + 2150) at the end of ``period``, scheduled into the months in
    which it will be recognised, per customer and currency, two ways (two rows per customer):

    ``by_expiry`` (at the latest): each grant's deferred balance D falls in the month of its
    expiry, i.e. the local month (``tz``, the reporting timezone) of its last valid day (a grant
    expiring at 2026-06-01T00:00 falls in 2026-05); a never-expiring grant in ``no_expiry``; a
    platform fee still in 2150 in the month its billed service ends.

    ``at_rate`` (at the current consumption rate): the customer's consumption of the last 30
    days of the period (units drawn from its grants, voided usage netted out) is projected day
    by day from the first day after the period, drawn from the grants in the engine's
    consumption order (soonest expiry first) as each grant is valid on that day. Units u drawn
    from a grant with U outstanding units recognise round(D x u / U) cumulatively (so the parts
    add up to D); at the grant's expiry the rest becomes breakage in the month of its last valid
    day. Deferred left at the end of the horizon goes to ``later``, except a never-expiring
    grant of a customer with no consumption in the last 30 days, which stays in ``no_expiry``.
    Platform fees (2150) are ratable, not consumed: scheduled as in ``by_expiry``.

    Columns, money in int minor units: ``due`` (recognition steps due by the period end that
    have not run yet because the period is not closed: grants already past their expiry,
    subscription months already ended; the close posts them in the period), the 12 months
    after the period (keys ``YYYY-MM``), ``later`` (after those 12 months), ``no_expiry`` and
    ``total`` (the customer's deferred balance). ``rate_per_day`` on ``at_rate`` rows: credits
    per day, a decimal string. Rollover at a future expiry is not modelled (what would roll is
    shown at the expiry too), nor are months not billed yet (nothing of them is deferred).

    totals: per currency and method, the same columns, and ``ledger``: 2100 + 2150 at the
    period end read from the journal by ``ledger_deferred``; ``total`` equals it for both
    methods. Raises ValueError for a malformed period.
    """
    parse_period(period)
    end = last_day(period)
    months = _horizon(period)
    keys = ["due", *months, "later", "no_expiry", "total"]
    lots = _lots(session, end)
    rate = defaultdict(int)
    for (cid, _gid), units in _usage_units(session, end, _window_start(period)).items():
        rate[cid] += units
    by_customer: dict[tuple[str, str], list[_Lot]] = defaultdict(list)
    for lot in lots.values():
        by_customer[(lot.customer_id, lot.currency)].append(lot)
    drawing: dict[str, list[_Lot]] = defaultdict(list)  # all of a customer's grants draw, whatever the currency
    for lot in lots.values():
        drawing[lot.customer_id].append(lot)
    for cid, group in drawing.items():
        _simulate(group, rate[cid], months, tz)
    fees: dict[tuple[str, str], list[tuple[date | None, int]]] = defaultdict(list)
    for cid, cur, service_end, amount in _subscription_fees(session, end):
        fees[(cid, cur)].append((service_end, amount))
    names = _customer_names(session)
    rows: list[dict] = []
    totals: dict[tuple[str, str], dict] = {}
    for cid, cur in sorted(set(by_customer) | set(fees)):
        money = [lot for lot in by_customer.get((cid, cur), []) if lot.deferred]
        sub = fees.get((cid, cur), [])
        if not money and not sub:
            continue
        for method in METHODS:
            row = dict.fromkeys(keys, 0)
            for lot in money:
                parts = (_schedule_by_expiry(lot, period, months, tz) if method == "by_expiry"
                         else _schedule_at_rate(lot, period, months, tz, rate[cid]))
                for k, v in parts.items():
                    row[k] += v
            for service_end, amount in sub:  # a balance not tied to a billed month (none expected): due
                row[_bucket(period_of(service_end) if service_end else period, period, months)] += amount
            row["total"] = sum(row[k] for k in keys[:-1])
            rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, "method": method,
                         "rate_per_day": _rate_text(rate[cid]) if method == "at_rate" else None, **row})
            t = totals.setdefault((cur, method), {"currency": cur, "method": method, **dict.fromkeys(keys, 0)})
            for k in keys:
                t[k] += row[k]
    on_ledger = ledger_deferred(session, period)
    for cur in on_ledger:
        for method in METHODS:
            totals.setdefault((cur, method), {"currency": cur, "method": method, **dict.fromkeys(keys, 0)})
    for (cur, _), t in totals.items():
        t["ledger"] = on_ledger.get(cur, 0)
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("method", "Schedule"), Column("rate_per_day", "Credits/day"), Column("due", f"Due {period}", "money")]
    cols += [Column(m, m, "money") for m in months]
    cols += [Column("later", "Later", "money"), Column("no_expiry", "No expiry", "money"), Column("total", "Total", "money")]
    return Report("waterfall", f"Deferred revenue waterfall at {end.isoformat()}: by expiry and at the last 30 days' rate",
                  period, cols, rows, [totals[k] for k in sorted(totals, key=lambda k: (k[0], METHODS.index(k[1])))],
                  total_columns=[Column("ledger", "Deferred revenue on the ledger (2100 + 2150)", "money")])


# --------------------------------------------------------------------------- usage alerts
def _threshold(consumed: int, granted: int) -> int | None:
    reached = [t for t in THRESHOLDS if granted > 0 and consumed * 100 >= granted * t]
    return reached[-1] if reached else None


def _percent_text(consumed: int, granted: int) -> str:
    """consumed / granted in percent with one decimal, truncated (99.96% shows 99.9, never 100.0)."""
    tenths = consumed * 1000 // granted if granted else 0
    return f"{tenths // 10}.{tenths % 10}"


def _exhaustion(end: date, outstanding: int, window_units: int) -> date | None:
    """The day the last outstanding unit is used at window_units per 30 days: end + ceil(U x 30 /
    window_units) days; None without consumption or without units left."""
    if outstanding <= 0 or window_units <= 0:
        return None
    return end + timedelta(days=-(-outstanding * RATE_DAYS // window_units))


def usage_alerts(session: Session, period: str, *, tz: ZoneInfo = UTC) -> Report:
    """Customers who have used 70%, 90% or 100% of a commitment, of a plan allowance (a
    subscription month's grant) or of all the credits they hold, at the end of ``period``.

    Grants considered: those in force on the period's last day (effective before the period
    ends, expiring after that day starts; tz: the reporting timezone) whose issue was not voided.
    One row per commitment or subscription grant that reached a threshold (``scope`` its source),
    and one ``all`` row per customer over every grant in force (top-ups, promotional and rolled
    credits included) when it reached one, left out when the customer's only grant in force
    already has its row.

    Fields: ``granted`` (the grants' units), ``consumed`` (units relieved by usage, life to date:
    9100 debits of consumption entries net of voided usage), ``percent`` (consumed / granted,
    one decimal, truncated, a string), ``threshold`` (the highest of 70, 90, 100 reached, by
    exact integer comparison), ``outstanding`` (9100 balance: units left), ``rate_per_day``
    (consumption of entries dated in the 30 days ending on the period's last day, / 30: the
    grant's own for a grant row, the customer's over all its grants for an ``all`` row; a
    decimal string), ``exhaustion`` (ISO date: the last day + ceil(outstanding / rate) days, the
    day the last unit would be used; None when the rate is 0 or nothing is left), ``expires``
    (last valid day, ISO date; for ``all`` the latest of the grants, None if one never expires)
    and ``before_expiry`` (True when the exhaustion date is on or before ``expires``, or the
    credits never expire). Credits are int units.

    totals: one per threshold, ``customers``: how many customers have that threshold as their
    highest. Raises ValueError for a malformed period.
    """
    parse_period(period)
    end = last_day(period)
    ends_at, last_starts = period_end(period, tz), start_of_day(end, tz)
    lots = _lots(session, end)
    window = _usage_units(session, end, _window_start(period))
    customer_window: dict[str, int] = defaultdict(int)
    for (cid, _), units in window.items():
        customer_window[cid] += units
    held: dict[str, list[_Lot]] = defaultdict(list)
    for lot in lots.values():
        g = lot.grant
        if g is None or lot.voided:
            continue
        if g.effective_at < ends_at and (g.expires_at is None or g.expires_at > last_starts):
            held[g.customer_id].append(lot)
    names = _customer_names(session)
    rows: list[dict] = []
    highest: dict[str, int] = {}

    def add(cid: str, scope: str, grant_id: str, granted: int, consumed: int, outstanding: int, units: int,
            expires: date | None) -> None:
        threshold = _threshold(consumed, granted)
        if threshold is None:
            return
        exhaustion = _exhaustion(end, outstanding, units)
        rows.append({"customer_id": cid, "customer": names.get(cid, cid), "scope": scope, "grant_id": grant_id,
                     "granted": granted, "consumed": consumed, "percent": _percent_text(consumed, granted),
                     "threshold": threshold, "outstanding": outstanding, "rate_per_day": _rate_text(units),
                     "exhaustion": exhaustion.isoformat() if exhaustion else None,
                     "expires": expires.isoformat() if expires else None,
                     "before_expiry": exhaustion is not None and (expires is None or exhaustion <= expires)})
        highest[cid] = max(highest.get(cid, 0), threshold)

    for cid in sorted(held):
        group = sorted(held[cid], key=lambda lot: (lot.grant.effective_at, lot.grant.id))  # type: ignore[union-attr]
        own = [lot for lot in group if lot.grant.source in ("commitment", "subscription")]  # type: ignore[union-attr]
        for lot in own:
            g = lot.grant
            assert g is not None
            add(cid, g.source, g.id, g.units, lot.consumed, lot.outstanding, window.get((cid, g.id), 0),
                _last_valid_day(g.expires_at, tz))
        if len(group) == 1 and own:
            continue
        expiries = [_last_valid_day(lot.grant.expires_at, tz) for lot in group]  # type: ignore[union-attr]
        add(cid, "all", "", sum(lot.grant.units for lot in group), sum(lot.consumed for lot in group),  # type: ignore[union-attr]
            sum(lot.outstanding for lot in group), customer_window.get(cid, 0),
            None if any(e is None for e in expiries) else max(expiries))  # type: ignore[type-var]
    totals = [{"threshold": t, "customers": sum(1 for v in highest.values() if v == t)} for t in THRESHOLDS]
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("scope", "Scope"),
            Column("grant_id", "Grant"), Column("granted", "Granted", "credits"), Column("consumed", "Consumed", "credits"),
            Column("percent", "%"), Column("threshold", "Alert %", "int"), Column("outstanding", "Left", "credits"),
            Column("rate_per_day", "Credits/day (30 d)"), Column("exhaustion", "Exhausted on"),
            Column("expires", "Expires (last day)"), Column("before_expiry", "Before expiry")]
    return Report("usage-alerts", f"Usage alerts at {end.isoformat()}: 70% / 90% / 100% of credits used", period,
                  cols, rows, totals, currency_key="threshold",
                  total_columns=[Column("customers", "Customers at alert %", "int")])
