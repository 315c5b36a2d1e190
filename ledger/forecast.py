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

The sums are read through ``ledger.store.lots`` (the lot balances: the one derivation the engine's
books and ``ledger verify`` use too) and ``ledger.store.journal``; nothing here queries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ledger.core import accounts as A
from ledger.core.grants import GrantState, drawdown_key
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
from ledger.core.records import GrantRecord
from ledger.reporting import Column, Report
from ledger.store.journal import customer_names, deferred_fees, deferred_on_ledger
from ledger.store.lots import consumed_units, grant_records, lot_balances, unlotted_balances
from ledger.store.reports import customer_account_sums

if TYPE_CHECKING:
    from ledger.store.db import Session

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

    grant: GrantRecord | None  # None: 2100 lines without a grant (never expected; kept so totals tie)
    customer_id: str
    currency: str
    deferred: int = 0
    outstanding: int = 0
    consumed: int = 0
    voided: bool = False
    draws: list[int] = field(default_factory=list)  # rate method: units drawn per horizon month


def _lots(session: Session, through: date) -> dict[tuple[str, str | None], _Lot]:
    """Every grant with journal lines dated on or before ``through``: deferred, outstanding
    (`ledger.store.lots.lot_balances`), consumed (life to date, `consumed_units`) and whether its
    issue was voided. Keyed by (customer_id, grant_id); lines naming no grant row are kept per
    (customer_id, grant_id or None) with the currency of their 2100 lines, so totals tie."""
    balances = lot_balances(session, through=through, voids=True)
    grants = grant_records(session, balances)
    lots: dict[tuple[str, str | None], _Lot] = {}
    for gid, bal in balances.items():
        g = grants.get(gid)
        if g is not None:
            lots[(g.customer_id, gid)] = _Lot(g, g.customer_id, g.currency, bal.deferred, bal.outstanding,
                                              voided=bool(bal.voided_units))
    for cid, gid, account, commodity, net in unlotted_balances(session, through):
        lot = lots.get((cid, gid))
        if lot is None:
            lot = lots[(cid, gid)] = _Lot(None, cid, commodity)
        if account == A.DEFERRED_CREDITS:
            lot.deferred += net
        else:
            lot.outstanding += net
    for (cid, gid), units in consumed_units(session, through).items():
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


def ledger_deferred(session: Session, period: str) -> dict[str, int]:
    """Deferred revenue on the ledger (2100 + 2150, credit - debit) at the period's last day, per
    currency: int minor units (`ledger.store.journal.deferred_on_ledger`). The waterfall's
    totals equal it."""
    return {cur: v for cur, v in deferred_on_ledger(session, last_day(period)).items() if cur != CREDIT}


@dataclass(frozen=True)
class _Frame:
    """The waterfall's frame: the period, its 12 following months and the row's money keys."""

    period: str
    months: list[str]
    tz: ZoneInfo

    @property
    def keys(self) -> list[str]:
        return ["due", *self.months, "later", "no_expiry", "total"]


def _schedule_row(frame: _Frame, method: str, money: list[_Lot], fees: list[tuple[date | None, int]],
                  rate_units: int) -> dict[str, int]:
    """One customer's and currency's deferred revenue scheduled by ``method`` into the frame's
    keys: its grants' balances ``money`` and its platform fees still deferred ``fees``."""
    period, months, tz, keys = frame.period, frame.months, frame.tz, frame.keys
    row = dict.fromkeys(keys, 0)
    for lot in money:
        parts = (_schedule_by_expiry(lot, period, months, tz) if method == "by_expiry"
                 else _schedule_at_rate(lot, period, months, tz, rate_units))
        for k, v in parts.items():
            row[k] += v
    for service_end, amount in fees:  # a balance not tied to a billed month (none expected): due
        row[_bucket(period_of(service_end) if service_end else period, period, months)] += amount
    row["total"] = sum(row[k] for k in keys[:-1])
    return row


def _waterfall_rows(frame: _Frame, by_customer: dict[tuple[str, str], list[_Lot]],
                    fees: dict[tuple[str, str], list[tuple[date | None, int]]], rate: dict[str, int],
                    names: dict[str, str]) -> tuple[list[dict], dict[tuple[str, str], dict]]:
    """The waterfall's rows (two per customer and currency with anything deferred) and its
    totals per (currency, method)."""
    rows: list[dict] = []
    totals: dict[tuple[str, str], dict] = {}
    keys = frame.keys
    for cid, cur in sorted(set(by_customer) | set(fees)):
        money = [lot for lot in by_customer.get((cid, cur), []) if lot.deferred]
        sub = fees.get((cid, cur), [])
        if not money and not sub:
            continue
        for method in METHODS:
            row = _schedule_row(frame, method, money, sub, rate[cid])
            rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, "method": method,
                         "rate_per_day": _rate_text(rate[cid]) if method == "at_rate" else None, **row})
            t = totals.setdefault((cur, method), {"currency": cur, "method": method, **dict.fromkeys(keys, 0)})
            for k in keys:
                t[k] += row[k]
    return rows, totals


def _waterfall_columns(period: str, months: list[str]) -> list[Column]:
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("method", "Schedule"), Column("rate_per_day", "Credits/day"), Column("due", f"Due {period}", "money")]
    cols += [Column(m, m, "money") for m in months]
    cols += [Column("later", "Later", "money"), Column("no_expiry", "No expiry", "money"), Column("total", "Total", "money")]
    return cols


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
    frame = _Frame(period, _horizon(period), tz)
    lots = _lots(session, end)
    rate: dict[str, int] = defaultdict(int)
    for (cid, _gid), units in consumed_units(session, end, _window_start(period)).items():
        rate[cid] += units
    by_customer: dict[tuple[str, str], list[_Lot]] = defaultdict(list)
    drawing: dict[str, list[_Lot]] = defaultdict(list)  # all of a customer's grants draw, whatever the currency
    for lot in lots.values():
        by_customer[(lot.customer_id, lot.currency)].append(lot)
        drawing[lot.customer_id].append(lot)
    for cid, group in drawing.items():
        _simulate(group, rate[cid], frame.months, tz)
    fees: dict[tuple[str, str], list[tuple[date | None, int]]] = defaultdict(list)
    for cid, cur, service_end, amount in deferred_fees(session, end):
        fees[(cid, cur)].append((service_end, amount))
    rows, totals = _waterfall_rows(frame, by_customer, fees, rate, customer_names(session))
    on_ledger = ledger_deferred(session, period)
    for cur in on_ledger:
        for method in METHODS:
            totals.setdefault((cur, method), {"currency": cur, "method": method, **dict.fromkeys(frame.keys, 0)})
    for (cur, _), t in totals.items():
        t["ledger"] = on_ledger.get(cur, 0)
    return Report("waterfall", f"Deferred revenue waterfall at {end.isoformat()}: by expiry and at the last 30 days' rate",
                  period, _waterfall_columns(period, frame.months), rows,
                  [totals[k] for k in sorted(totals, key=lambda k: (k[0], METHODS.index(k[1])))],
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


def _held(lots: dict[tuple[str, str | None], _Lot], period: str, tz: ZoneInfo) -> dict[str, list[_Lot]]:
    """The grants in force on the period's last day (effective before the period ends, expiring
    after that day starts) whose issue was not voided, per customer, each customer's in
    (effective_at, id) order."""
    ends_at, last_starts = period_end(period, tz), start_of_day(last_day(period), tz)
    held: dict[str, list[_Lot]] = defaultdict(list)
    for lot in lots.values():
        g = lot.grant
        if g is None or lot.voided:
            continue
        if g.effective_at < ends_at and (g.expires_at is None or g.expires_at > last_starts):
            held[g.customer_id].append(lot)
    return {cid: sorted(group, key=lambda lot: (lot.grant.effective_at, lot.grant.id))  # type: ignore[union-attr]
            for cid, group in held.items()}


def _measures(cid: str, group: list[_Lot], window: dict[tuple[str, str], int], customer_units: int,
              tz: ZoneInfo) -> list[tuple[str, str, int, int, int, int, date | None]]:
    """What `usage_alerts` measures for one customer's grants in force: (scope, grant_id, granted,
    consumed, outstanding, units drawn in the window, last valid day) per commitment or
    subscription grant, then for ``all`` of them unless the only grant already has its own."""
    out = []
    own = [lot for lot in group if lot.grant.source in ("commitment", "subscription")]  # type: ignore[union-attr]
    for lot in own:
        g = lot.grant
        assert g is not None
        out.append((g.source, g.id, g.units, lot.consumed, lot.outstanding, window.get((cid, g.id), 0),
                    _last_valid_day(g.expires_at, tz)))
    if len(group) == 1 and own:
        return out
    expiries = [_last_valid_day(lot.grant.expires_at, tz) for lot in group]  # type: ignore[union-attr]
    out.append(("all", "", sum(lot.grant.units for lot in group), sum(lot.consumed for lot in group),  # type: ignore[union-attr]
                sum(lot.outstanding for lot in group), customer_units,
                None if any(e is None for e in expiries) else max(expiries)))  # type: ignore[type-var]
    return out


def _alert_row(end: date, cid: str, name: str, scope: str, grant_id: str, granted: int, consumed: int,
               outstanding: int, units: int, expires: date | None) -> dict | None:
    """The usage alert row of one measure (see `usage_alerts`), None below every threshold."""
    threshold = _threshold(consumed, granted)
    if threshold is None:
        return None
    exhaustion = _exhaustion(end, outstanding, units)
    return {"customer_id": cid, "customer": name, "scope": scope, "grant_id": grant_id,
            "granted": granted, "consumed": consumed, "percent": _percent_text(consumed, granted),
            "threshold": threshold, "outstanding": outstanding, "rate_per_day": _rate_text(units),
            "exhaustion": exhaustion.isoformat() if exhaustion else None,
            "expires": expires.isoformat() if expires else None,
            "before_expiry": exhaustion is not None and (expires is None or exhaustion <= expires)}


_ALERT_COLUMNS = [
    Column("customer_id", "Customer"), Column("customer", "Name"), Column("scope", "Scope"),
    Column("grant_id", "Grant"), Column("granted", "Granted", "credits"), Column("consumed", "Consumed", "credits"),
    Column("percent", "%"), Column("threshold", "Alert %", "int"), Column("outstanding", "Left", "credits"),
    Column("rate_per_day", "Credits/day (30 d)"), Column("exhaustion", "Exhausted on"),
    Column("expires", "Expires (last day)"), Column("before_expiry", "Before expiry")]


def usage_alerts(session: Session, period: str, *, tz: ZoneInfo = UTC, soft_caps: dict[str, int] | None = None) -> Report:
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

    ``soft_caps`` (customer id -> credits a month, docs/design.md §5.12) adds a ``soft_cap`` row
    per customer whose credits consumed in the period reached 70, 90 or 100% of its cap
    (``granted`` the cap, ``outstanding`` what is left under it).

    totals: one per threshold, ``customers``: how many customers have that threshold as their
    highest. Raises ValueError for a malformed period.
    """
    parse_period(period)
    end = last_day(period)
    lots = _lots(session, end)
    window = consumed_units(session, end, _window_start(period))
    customer_window: dict[str, int] = defaultdict(int)
    for (cid, _), units in window.items():
        customer_window[cid] += units
    held = _held(lots, period, tz)
    names = customer_names(session)
    rows: list[dict] = []
    highest: dict[str, int] = {}
    for cid in sorted(held):
        for measure in _measures(cid, held[cid], window, customer_window.get(cid, 0), tz):
            row = _alert_row(end, cid, names.get(cid, cid), *measure)
            if row is not None:
                rows.append(row)
                highest[cid] = max(highest.get(cid, 0), row["threshold"])
    month = customer_account_sums(session, [A.CREDITS_CONSUMED], first_day(period), end) if soft_caps else {}
    for cid, cap in sorted((soft_caps or {}).items()):
        used = month.get((cid, A.CREDITS_CONSUMED, CREDIT), 0)  # credits consumed in the period
        row = _alert_row(end, cid, names.get(cid, cid), "soft_cap", "", cap, used, max(cap - used, 0), 0, None)
        if row is not None:
            rows.append(row)
            highest[cid] = max(highest.get(cid, 0), row["threshold"])
    rows.sort(key=lambda r: r["customer_id"])  # stable: a customer's grant rows, then its soft cap
    totals = [{"threshold": t, "customers": sum(1 for v in highest.values() if v == t)} for t in THRESHOLDS]
    return Report("usage-alerts", f"Usage alerts at {end.isoformat()}: 70% / 90% / 100% of credits used", period,
                  list(_ALERT_COLUMNS), rows, totals, currency_key="threshold",
                  total_columns=[Column("customers", "Customers at alert %", "int")])
