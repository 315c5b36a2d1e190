"""Reports derived from the journal (docs/design.md §8.1): every number is a sum of journal lines.

Each report is a ``Report`` value: ``rows`` and ``totals`` are dicts whose money fields are int
minor units of the row's ``currency`` (or of ``commodity``) and whose credit fields are int
units. Rendering (table, CSV, JSON with decimal strings in major units) is done by
``reports.tables``; nothing here formats. The sums and rows come from the read models of
``ledger.store.reports`` (and ``ledger.store.documents``); nothing here builds SQL.

Movements are classified by the kind of the journal entry that made them (purchase, consumption,
expiry, ...), so the deferred-revenue rollforward ties: opening + billed - recognised - breakage
- refunded + rolled = closing, where closing is read from the ledger, not computed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ledger.core import accounts as A
from ledger.core.money import CREDIT
from ledger.core.periods import first_day, last_day, parse_period
from ledger.errors import NotFoundError
from ledger.store import documents as docs
from ledger.store import reports as store
from ledger.store.journal import customer_names
from ledger.store.reader import SessionStore

if TYPE_CHECKING:
    from ledger.store.db import Session


@dataclass(frozen=True)
class Column:
    """key: row field; kind: text | money (uses the row's currency/commodity) | credits | int | date |
    percent (a `Decimal` number of percent, or None)."""

    key: str
    title: str
    kind: str = "text"


@dataclass
class Report:
    name: str
    title: str
    period: str | None
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    totals: list[dict] = field(default_factory=list)
    currency_key: str = "currency"
    total_columns: list[Column] = field(default_factory=list)  # fields only the totals carry


def period_window(period: str) -> tuple[date, date]:
    """The first and last day of ``period`` ("YYYY-MM"); raises ValueError on another shape."""
    parse_period(period)
    return first_day(period), last_day(period)


# --------------------------------------------------------------------------- trial balance
def trial_balance(session: Session, period: str) -> Report:
    """Balances per account and commodity at the period end (life to date), debit or credit side."""
    _, end = period_window(period)
    rows, totals = [], defaultdict(lambda: [0, 0])
    for code, name, commodity, d, c in store.account_balances(session, end):
        net = d - c
        if net == 0:
            continue
        rows.append({"account": code, "name": name, "commodity": commodity,
                     "debit": net if net > 0 else 0, "credit": -net if net < 0 else 0})
        totals[commodity][0] += max(net, 0)
        totals[commodity][1] += max(-net, 0)
    return Report("trial-balance", f"Trial balance at {end.isoformat()}", period,
                  [Column("account", "Account"), Column("name", "Name"), Column("commodity", "Commodity"),
                   Column("debit", "Debit", "money"), Column("credit", "Credit", "money")],
                  rows,
                  [{"commodity": k, "debit": v[0], "credit": v[1]} for k, v in sorted(totals.items(), key=lambda kv: (kv[0] == CREDIT, kv[0]))],
                  currency_key="commodity")


# --------------------------------------------------------------------------- deferred revenue
_ROLLFORWARD = {"purchase": "billed", "subscription": "billed", "consumption": "recognised", "recognition": "recognised",
                "expiry": "breakage", "breakage_estimate": "breakage",
                "proportional_breakage": "breakage", "refund": "refunded", "rollover": "rolled"}
# the columns of the deferred revenue rollforward, in order (opening + movements = closing)
ROLLFORWARD_COLUMNS = ("opening", "billed", "recognised", "breakage", "refunded", "rolled", "other", "closing")


def deferred_revenue(session: Session, period: str) -> Report:
    """Rollforward of deferred revenue (2100 + 2150) per customer and currency over the period.

    billed: increases from sales; recognised, breakage, refunded: decreases (shown positive);
    rolled: net moves between grants (0 in total per customer); other: any other movement
    (e.g. voids), kept visible so the row always ties to closing.
    """
    start, end = period_window(period)
    acc: dict[tuple[str, str], dict[str, int]] = {}
    for cid, cur, kind, before, during in store.deferred_movements(session, start, end):
        row = acc.setdefault((cid, cur), dict.fromkeys(ROLLFORWARD_COLUMNS, 0))
        row["opening"] += before
        col = _ROLLFORWARD.get(kind, "other")
        sign = -1 if col in ("recognised", "breakage", "refunded") else 1
        row[col] += sign * during
    names = _customer_names(session)
    rows, totals = [], {}
    for (cid, cur), r in sorted(acc.items()):
        r["closing"] = r["opening"] + r["billed"] - r["recognised"] - r["breakage"] - r["refunded"] + r["rolled"] + r["other"]
        if not any(r.values()):
            continue
        rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, **r})
        t = totals.setdefault(cur, {"currency": cur, **dict.fromkeys(ROLLFORWARD_COLUMNS, 0)})
        for k in ROLLFORWARD_COLUMNS:
            t[k] += r[k]
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur")]
    cols += [Column(k, k.capitalize(), "money") for k in ROLLFORWARD_COLUMNS]
    return Report("deferred-revenue", f"Deferred revenue rollforward, {period}", period, cols, rows,
                  [totals[k] for k in sorted(totals)])


def _customer_names(session: Session) -> dict[str, str]:
    """Every customer's name, by customer id."""
    return customer_names(session)


# --------------------------------------------------------------------------- revenue
# the revenue streams of the revenue report, by kind, with their display names
STREAM_NAMES = {"usage": "Usage revenue", "overage": "Overage revenue", "subscription": "Subscription revenue",
                 "breakage": "Breakage revenue", "guarantee_credits": "Guarantee credits",
                 "refunds_and_concessions": "Refunds and concessions"}


def revenue(session: Session, period: str) -> Report:
    """Revenue by stream in the period, per currency; contra-revenue streams are negative; net per currency."""
    start, end = period_window(period)
    codes = [code for code, _ in A.REVENUE_STREAMS]
    sums = store.account_sums(session, codes, start, end)
    currencies = sorted({cur for _, cur in sums})
    rows, totals = [], []
    for cur in currencies:
        net = 0
        for code, stream in A.REVENUE_STREAMS:
            v = sums.get((code, cur), 0)
            net += v
            rows.append({"currency": cur, "stream": stream, "account": code, "name": STREAM_NAMES[stream], "amount": v})
        totals.append({"currency": cur, "stream": "net", "amount": net})
    return Report("revenue", f"Revenue by stream, {period}", period,
                  [Column("currency", "Cur"), Column("stream", "Stream"), Column("account", "Account"),
                   Column("name", "Name"), Column("amount", "Amount", "money")], rows, totals)


# --------------------------------------------------------------------------- credits
_CREDIT_KIND = {"purchase": "granted", "promotion": "granted", "subscription": "granted", "consumption": "consumed",
                "expiry": "expired", "refund": "refunded"}
_CREDIT_COLUMNS = ("opening", "granted", "consumed", "rolled_in", "rolled_out", "expired", "refunded", "other", "remaining")


def credits(session: Session, period: str, customer_id: str | None = None) -> Report:
    """Per grant over the period: opening units, granted, consumed, rolled in/out, expired,
    refunded, remaining, expires_at and the deferred amount left at the period end. An unknown
    ``customer_id`` raises NotFoundError (as the customer statement does)."""
    start, end = period_window(period)
    if customer_id is not None and docs.customer_record(session, customer_id) is None:
        raise NotFoundError("customer", customer_id)
    acc: dict[str, dict[str, int]] = {}
    for gid, account, kind, before, cr, dr in store.credit_movements(session, start, end, customer_id):
        row = acc.setdefault(gid, {**dict.fromkeys(_CREDIT_COLUMNS, 0), "deferred": 0})
        if account == A.DEFERRED_CREDITS:
            row["deferred"] += int(before) + int(cr) - int(dr)
            continue
        row["opening"] += int(before)
        if kind == "rollover":
            row["rolled_in"] += int(cr)
            row["rolled_out"] += int(dr)
        else:
            col = _CREDIT_KIND.get(kind, "other")
            if col == "granted":
                row[col] += int(cr)
            elif col == "other":  # e.g. voids: net change in units, kept visible so the row ties
                row[col] += int(cr) - int(dr)
            else:
                row[col] += int(dr)
    grants = docs.grants(session, list(acc))
    rows = []
    totals: dict[str, dict] = {}
    for gid in sorted(acc, key=lambda k: (grants[k].customer_id, grants[k].effective_at, k)):
        r, g = acc[gid], grants[gid]
        r["remaining"] = r["opening"] + r["granted"] + r["rolled_in"] - r["rolled_out"] - r["consumed"] - r["expired"] - r["refunded"] + r["other"]
        if r["opening"] == 0 and r["remaining"] == 0 and not any(r[k] for k in _CREDIT_COLUMNS[1:-1]):
            continue
        rows.append({"customer_id": g.customer_id, "grant_id": gid, "source": g.source, "currency": g.currency,
                     "expires_at": g.expires_at.isoformat() if g.expires_at else None, **r})
        t = totals.setdefault(g.currency, {"currency": g.currency, **dict.fromkeys(_CREDIT_COLUMNS, 0), "deferred": 0})
        for k in (*_CREDIT_COLUMNS, "deferred"):
            t[k] += r[k]
    cols = [Column("customer_id", "Customer"), Column("grant_id", "Grant"), Column("source", "Source")]
    cols += [Column(k, k.replace("_", " ").capitalize(), "credits") for k in _CREDIT_COLUMNS]
    cols += [Column("expires_at", "Expires at"), Column("currency", "Cur"), Column("deferred", "Deferred", "money")]
    return Report("credits", f"Credits by grant, {period}" + (f", customer {customer_id}" if customer_id else ""),
                  period, cols, rows, [totals[k] for k in sorted(totals)])


# --------------------------------------------------------------------------- quarantine
def quarantine(session: Session, period: str | None = None) -> Report:
    """Usage kept out of the books for a business reason, with the reason and the credits available."""
    rows = []
    for item in store.quarantined(session):
        if period and item.occurred_at.strftime("%Y-%m") != period:
            continue
        rows.append({"event_id": item.event_id, "customer_id": item.customer_id,
                     "occurred_at": item.occurred_at.isoformat(), "credits": item.credits,
                     "available": item.available, "reason": item.reason})
    total = {"events": len(rows), "credits": sum(r["credits"] for r in rows)}
    return Report("quarantine", "Quarantined usage" + (f", {period}" if period else ""), period,
                  [Column("event_id", "Event"), Column("customer_id", "Customer"), Column("occurred_at", "Occurred at"),
                   Column("credits", "Credits", "credits"), Column("available", "Available", "credits"),
                   Column("reason", "Reason")], rows, [total])


# --------------------------------------------------------------------------- receivables
AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "over_90")


def _aging_bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over_90"


def ar_aging(session: Session, period: str | None = None, *, as_of: date | None = None) -> Report:
    """Open receivables per invoice at ``as_of`` (default: the period's last day), by days past
    the due date: current (not yet due), 1-30, 31-60, 61-90, over 90; per customer and currency.

    The open amount of an invoice is its 1100 balance from entries dated on or before as_of
    (payments, credit notes and applied credit balances reduce it). Money: int minor units.
    """
    if as_of is None:
        if period is None:
            raise ValueError("ar_aging needs a period or an as_of date")
        _, as_of = period_window(period)
    open_amounts = store.open_receivables(session, as_of)
    invoices = docs.invoices(session, list(open_amounts))
    names = _customer_names(session)
    acc: dict[tuple[str, str], dict[str, int]] = {}
    for number, amount in open_amounts.items():
        inv = invoices[number]
        row = acc.setdefault((inv.customer_id, inv.currency), {**dict.fromkeys(AGING_BUCKETS, 0), "total": 0, "invoices": 0})
        row[_aging_bucket((as_of - inv.due_date).days)] += amount
        row["total"] += amount
        row["invoices"] += 1
    rows, totals = [], {}
    for (cid, cur), r in sorted(acc.items()):
        rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, **r})
        t = totals.setdefault(cur, {"currency": cur, **dict.fromkeys(AGING_BUCKETS, 0), "total": 0, "invoices": 0})
        for k in (*AGING_BUCKETS, "total", "invoices"):
            t[k] += r[k]
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("invoices", "Open invoices", "int")]
    cols += [Column(k, k.replace("_", " ").capitalize(), "money") for k in (*AGING_BUCKETS, "total")]
    return Report("ar-aging", f"Accounts receivable aging at {as_of.isoformat()}", period, cols, rows,
                  [totals[k] for k in sorted(totals)])


def customer_statement(session: Session, period: str | None = None, *, customer_id: str) -> Report:
    """Statement of account (raises NotFoundError for an unknown customer): every movement of the customer's receivable (1100) and credit
    balance (2200) in date order, with the running balance owed (positive: the customer owes;
    negative: we owe the customer). With a period, the movements of that period after an
    opening balance. Money: int minor units of the customer's currency."""
    customer = docs.customer_record(session, customer_id)
    if customer is None:
        raise NotFoundError("customer", customer_id)
    start, end = period_window(period) if period else (None, None)
    rows, balance, opening = [], 0, 0
    for d, entry_id, kind, text, number, debit, credit in store.statement_movements(session, customer_id, end):
        net = debit - credit
        if net == 0:
            continue
        balance += net
        if start is not None and d < start:
            opening = balance
            continue
        rows.append({"date": d.isoformat(), "entry": entry_id, "kind": kind, "document": number or "",
                     "description": text, "currency": customer.currency, "debit": max(net, 0),
                     "credit": max(-net, 0), "balance": balance})
    totals = [{"currency": customer.currency, "opening": opening,
               "debit": sum(r["debit"] for r in rows), "credit": sum(r["credit"] for r in rows), "balance": balance}]
    return Report("customer", f"Statement of account, {customer.name} ({customer_id})" + (f", {period}" if period else ""),
                  period, [Column("date", "Date"), Column("entry", "Entry", "int"), Column("kind", "Kind"),
                           Column("document", "Document"), Column("description", "Description"),
                           Column("debit", "Debit", "money"), Column("credit", "Credit", "money"),
                           Column("balance", "Balance", "money")], rows, totals)


# --------------------------------------------------------------------------- soft-cap reviews
def pending_reviews(session: Session, period: str | None = None) -> Report:
    """Usage held for review at a soft cap (docs/design.md §5.12) still pending at the end of
    ``period`` (now if None): event, customer, when, credits held and still pending (int units)."""
    end = period_window(period)[1] if period else None
    names = _customer_names(session)
    rows = [{"event_id": eid, "customer_id": cid, "customer": names.get(cid, cid), "occurred_at": at.isoformat(),
             "held": held, "pending": left}
            for eid, cid, at, held, left in store.held_usage(session, end) if left > 0]
    return Report("reviews", "Usage held for review at a soft cap" + (f", {period}" if period else ""), period,
                  [Column("event_id", "Event"), Column("customer_id", "Customer"), Column("customer", "Name"),
                   Column("occurred_at", "Occurred"), Column("held", "Held", "credits"),
                   Column("pending", "Pending", "credits")], rows,
                  [{"events": len(rows), "pending": sum(r["pending"] for r in rows)}], currency_key="events")


# --------------------------------------------------------------------------- guarantees
def guarantees(session: Session, period: str, *, tz: ZoneInfo = ZoneInfo("UTC")) -> Report:
    """The no-increase guarantees (docs/design.md §5.9) as at the end of ``period``: one row per enrolled
    customer and month of the window up to the period, with the legacy per-seat bill, the new
    bill (charges(m), by `ledger.core.guarantee.monthly_charges`), their difference, the running
    excess over the window, and the credit issued for that month (with its credit note) if it
    was issued by the period end.

    status: ``evaluated`` (the month's close has run; charges as evaluated then) or ``open``
    (charges so far, from the documents issued by now). totals per currency: customers enrolled,
    credits issued to date (sum of the rows), and ``cost``: the balance of 4900 Guarantee credits
    at the period end, read from the journal (the two agree unless a credit was issued for a
    month after ``period``). Money: int minor units. ``tz``: the reporting timezone.
    """
    from ledger.core import guarantee as G

    _, end = period_window(period)
    names = _customer_names(session)
    notes = store.guarantee_note_dates(session)
    rows, totals = [], {}
    for g in store.guarantees_started(session, period):
        if g.enrolled_at.astimezone(tz).date() > end:
            continue
        months = [m for m in G.window(g.start_month, g.months) if m <= period]
        stored = {r.period: r for r in docs.guarantee_months(session, g.id)}
        live = G.monthly_charges(*SessionStore(session, tz).charge_inputs(g.customer_id, tz), months)
        t = totals.setdefault(g.currency, {"currency": g.currency, "customers": 0, "legacy": 0, "charges": 0,
                                           "credit": 0, "cost": 0})
        t["customers"] += 1
        excess = 0
        for m in months:
            row = stored.get(m)
            charges = row.charges if row is not None else live[m].total
            issued = row is not None and row.credit_note is not None and notes.get(row.credit_note, end) <= end
            excess += charges - g.legacy_monthly_amount
            rows.append({"customer_id": g.customer_id, "customer": names.get(g.customer_id, g.customer_id),
                         "currency": g.currency, "basis": g.basis,
                         "window": f"{g.start_month} to {G.window(g.start_month, g.months)[-1]}", "month": m,
                         "legacy": g.legacy_monthly_amount, "charges": charges,
                         "difference": charges - g.legacy_monthly_amount, "running_excess": excess,
                         "credit": row.credit if issued else 0, "credit_note": row.credit_note if issued else "",
                         "status": "evaluated" if row is not None else "open"})
            t["legacy"] += g.legacy_monthly_amount
            t["charges"] += charges
            t["credit"] += rows[-1]["credit"]
    for cur, net in store.account_balance(session, A.GUARANTEE_CREDITS, end).items():
        totals.setdefault(cur, {"currency": cur, "customers": 0, "legacy": 0, "charges": 0, "credit": 0, "cost": 0})
        totals[cur]["cost"] = net
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("basis", "Basis"), Column("window", "Window"), Column("month", "Month"),
            Column("legacy", "Legacy bill", "money"), Column("charges", "New bill", "money"),
            Column("difference", "Difference", "money"), Column("running_excess", "Running excess", "money"),
            Column("credit", "Credit", "money"), Column("credit_note", "Credit note"), Column("status", "Status")]
    return Report("guarantees", f"No-increase guarantees at {end.isoformat()}", period, cols, rows,
                  [totals[k] for k in sorted(totals)],
                  total_columns=[Column("customers", "Customers enrolled", "int"),
                                 Column("cost", "Cost to date (4900 Guarantee credits)", "money")])


# --------------------------------------------------------------------------- audit trail
def audit_trail(session: Session, period: str | None = None) -> Report:
    """Every close and reopen (table period_close), oldest first; with ``period``, only that
    period's. Columns: when (UTC), period, action, by, reason, journal head (highest entry id
    at the close), entries sealed, seal (sha256 head of the period's hash chain) and checks."""
    import json

    rows = [{"at": r.at.isoformat(), "period": r.period, "action": r.action, "by": r.by, "reason": r.reason or "",
             "journal_head": r.journal_head, "entries": r.entries, "seal": r.seal or "",
             "checks": len(json.loads(r.checks)) if r.checks else None}
            for r in store.period_closes(session, period)]
    cols = [Column("at", "When (UTC)"), Column("period", "Period"), Column("action", "Action"), Column("by", "By"),
            Column("reason", "Reason"), Column("journal_head", "Journal head", "int"),
            Column("entries", "Entries sealed", "int"), Column("seal", "Seal (sha256)"),
            Column("checks", "Checks passed", "int")]
    return Report("audit-trail", "Audit trail of closes and reopens", period, cols, rows, [])


# --------------------------------------------------------------------------- trends (close report)
@dataclass
class Trend:
    """Monthly series of one currency over a window of months (oldest first), from the journal.

    streams: stream name -> net revenue per month (contra-revenue streams negative); deferred:
    the 2100 + 2150 balance at each month end. Money: int minor units of ``currency``."""

    currency: str
    months: list[str]
    streams: dict[str, list[int]]
    deferred: list[int]


def trends(session: Session, period: str, months: int = 12) -> list[Trend]:
    """Recognised revenue by stream and deferred revenue at month end for the ``months`` months
    ending with ``period``, per currency (one `Trend` each, sorted by currency); the window
    starts no earlier than the month of the first journal entry (none before the books start)."""
    from ledger.core.periods import period_of, previous_period

    start = store.first_entry_date(session)
    first = period_of(start) if start is not None else period
    window = [period]
    while len(window) < months and previous_period(window[0]) >= first:
        window.insert(0, previous_period(window[0]))
    end = last_day(period)
    codes = {code: stream for code, stream in A.REVENUE_STREAMS}
    revenue: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    deferred_moves: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, code, cur, net in store.monthly_sums(session, [*codes, *A.DEFERRED_ACCOUNTS], end):
        if code in codes:
            if month >= window[0]:
                revenue[cur][codes[code]][month] = revenue[cur][codes[code]].get(month, 0) + net
        else:
            deferred_moves[cur][month if month >= window[0] else ""] += net
    out = []
    for cur in sorted(set(revenue) | set(deferred_moves)):
        balance = deferred_moves[cur].get("", 0)
        series = []
        for m in window:
            balance += deferred_moves[cur].get(m, 0)
            series.append(balance)
        streams = {stream: [revenue[cur].get(stream, {}).get(m, 0) for m in window] for _, stream in A.REVENUE_STREAMS}
        out.append(Trend(cur, window, streams, series))
    return out


# --------------------------------------------------------------------------- late events
def late_events(session: Session, period: str) -> Report:
    """Events dated in a closed period and posted in ``period`` (docs/design.md §6.3): business events and
    usage, with their original occurred_at and the date they were posted at."""
    d0, d1 = period_window(period)
    rows = [{"event_id": i, "type": t, "customer_id": c, "occurred_at": at.isoformat(), "posted": p.isoformat()}
            for i, t, c, at, p in store.late_postings(session, d0, d1)]
    rows.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return Report("late-events", f"Late events posted in {period}", period,
                  [Column("event_id", "Event"), Column("type", "Type"), Column("customer_id", "Customer"),
                   Column("occurred_at", "Occurred at"), Column("posted", "Posted on")], rows,
                  [{"event_id": f"{len(rows)} event{'' if len(rows) == 1 else 's'}"}] if rows else [])
