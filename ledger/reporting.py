"""Reports derived from the journal (docs/design.md §8.1): every number is a sum of journal lines.

Each report is a ``Report`` value: ``rows`` and ``totals`` are dicts whose money fields are int
minor units of the row's ``currency`` (or of ``commodity``) and whose credit fields are int
units. Rendering (table, CSV, JSON with decimal strings in major units) is done by
``reports.tables``; nothing here formats.

Movements are classified by the kind of the journal entry that made them (purchase, consumption,
expiry, ...), so the deferred-revenue rollforward ties: opening + billed - recognised - breakage
- refunded + rolled = closing, where closing is read from the ledger, not computed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store.reader import SessionStore
from ledger.core import accounts as A
from ledger.errors import NotFoundError
from ledger.store.models import Account, Customer, Grant, Invoice, JournalEntry, JournalLine, Quarantine
from ledger.core.money import CREDIT
from ledger.core.periods import first_day, last_day, parse_period


@dataclass(frozen=True)
class Column:
    """key: row field; kind: text | money (uses the row's currency/commodity) | credits | int | date."""

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


def _window(period: str) -> tuple[date, date]:
    parse_period(period)
    return first_day(period), last_day(period)


def _in(d0: date, d1: date):
    return sa.and_(JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)


# --------------------------------------------------------------------------- trial balance
def trial_balance(session: Session, period: str) -> Report:
    """Balances per account and commodity at the period end (life to date), debit or credit side."""
    _, end = _window(period)
    q = (sa.select(JournalLine.account_code, Account.name, JournalLine.commodity,
                   sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .join(Account, Account.code == JournalLine.account_code)
         .where(JournalEntry.entry_date <= end)
         .group_by(JournalLine.account_code, Account.name, JournalLine.commodity)
         .order_by(JournalLine.commodity == CREDIT, JournalLine.commodity, JournalLine.account_code))
    rows, totals = [], defaultdict(lambda: [0, 0])
    for code, name, commodity, d, c in session.execute(q):
        net = int(d) - int(c)
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
_ROLL_COLUMNS = ("opening", "billed", "recognised", "breakage", "refunded", "rolled", "other", "closing")


def deferred_revenue(session: Session, period: str) -> Report:
    """Rollforward of deferred revenue (2100 + 2150) per customer and currency over the period.

    billed: increases from sales; recognised, breakage, refunded: decreases (shown positive);
    rolled: net moves between grants (0 in total per customer); other: any other movement
    (e.g. voids), kept visible so the row always ties to closing.
    """
    start, end = _window(period)
    amount = JournalLine.credit - JournalLine.debit
    q = (sa.select(JournalLine.customer_id, JournalLine.commodity, JournalEntry.kind,
                   sa.func.sum(sa.case((JournalEntry.entry_date < start, amount), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), amount), else_=0)))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_(A.DEFERRED_ACCOUNTS), JournalEntry.entry_date <= end)
         .group_by(JournalLine.customer_id, JournalLine.commodity, JournalEntry.kind))
    acc: dict[tuple[str, str], dict[str, int]] = {}
    for cid, cur, kind, before, during in session.execute(q):
        row = acc.setdefault((cid, cur), dict.fromkeys(_ROLL_COLUMNS, 0))
        row["opening"] += int(before)
        col = _ROLLFORWARD.get(kind, "other")
        sign = -1 if col in ("recognised", "breakage", "refunded") else 1
        row[col] += sign * int(during)
    names = _customer_names(session)
    rows, totals = [], {}
    for (cid, cur), r in sorted(acc.items()):
        r["closing"] = r["opening"] + r["billed"] - r["recognised"] - r["breakage"] - r["refunded"] + r["rolled"] + r["other"]
        if not any(r.values()):
            continue
        rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, **r})
        t = totals.setdefault(cur, {"currency": cur, **dict.fromkeys(_ROLL_COLUMNS, 0)})
        for k in _ROLL_COLUMNS:
            t[k] += r[k]
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur")]
    cols += [Column(k, k.capitalize(), "money") for k in _ROLL_COLUMNS]
    return Report("deferred-revenue", f"Deferred revenue rollforward, {period}", period, cols, rows,
                  [totals[k] for k in sorted(totals)])


def _customer_names(session: Session) -> dict[str, str]:
    return dict(session.execute(sa.select(Customer.id, Customer.name)).all())


# --------------------------------------------------------------------------- revenue
_STREAM_NAMES = {"usage": "Usage revenue", "overage": "Overage revenue", "subscription": "Subscription revenue",
                 "breakage": "Breakage revenue", "guarantee_credits": "Guarantee credits",
                 "refunds_and_concessions": "Refunds and concessions"}


def revenue(session: Session, period: str) -> Report:
    """Revenue by stream in the period, per currency; contra-revenue streams are negative; net per currency."""
    start, end = _window(period)
    codes = [code for code, _ in A.REVENUE_STREAMS]
    q = (sa.select(JournalLine.account_code, JournalLine.commodity, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_(codes), _in(start, end))
         .group_by(JournalLine.account_code, JournalLine.commodity))
    sums = {(code, cur): int(v) for code, cur, v in session.execute(q)}
    currencies = sorted({cur for _, cur in sums})
    rows, totals = [], []
    for cur in currencies:
        net = 0
        for code, stream in A.REVENUE_STREAMS:
            v = sums.get((code, cur), 0)
            net += v
            rows.append({"currency": cur, "stream": stream, "account": code, "name": _STREAM_NAMES[stream], "amount": v})
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
    refunded, remaining, expires_at and the deferred amount left at the period end."""
    start, end = _window(period)
    units = JournalLine.credit - JournalLine.debit
    q = (sa.select(JournalLine.grant_id, JournalLine.account_code, JournalEntry.kind,
                   sa.func.sum(sa.case((JournalEntry.entry_date < start, units), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), JournalLine.credit), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), JournalLine.debit), else_=0)))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_([A.CREDITS_OUTSTANDING, A.DEFERRED_CREDITS]),
                JournalLine.grant_id.is_not(None), JournalEntry.entry_date <= end)
         .group_by(JournalLine.grant_id, JournalLine.account_code, JournalEntry.kind))
    if customer_id:
        q = q.where(JournalLine.customer_id == customer_id)
    acc: dict[str, dict[str, int]] = {}
    for gid, account, kind, before, cr, dr in session.execute(q):
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
    grants = {g.id: g for g in session.execute(sa.select(Grant).where(Grant.id.in_(list(acc)))).scalars()} if acc else {}
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
    q = sa.select(Quarantine).order_by(Quarantine.occurred_at, Quarantine.event_id)
    rows = []
    for item in session.execute(q).scalars():
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
        _, as_of = _window(period)
    q = (sa.select(JournalLine.invoice_number, sa.func.sum(JournalLine.debit - JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code == A.RECEIVABLE, JournalLine.invoice_number.is_not(None),
                JournalEntry.entry_date <= as_of)
         .group_by(JournalLine.invoice_number))
    open_amounts = {n: int(v) for n, v in session.execute(q) if int(v) != 0}
    invoices = {i.number: i for i in session.execute(sa.select(Invoice).where(Invoice.number.in_(list(open_amounts)))).scalars()} if open_amounts else {}
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
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError("customer", customer_id)
    start, end = _window(period) if period else (None, None)
    q = (sa.select(JournalEntry.entry_date, JournalEntry.id, JournalEntry.kind, JournalEntry.description,
                   JournalLine.invoice_number, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.customer_id == customer_id,
                JournalLine.account_code.in_([A.RECEIVABLE, A.CUSTOMER_CREDIT]))
         .group_by(JournalEntry.entry_date, JournalEntry.id, JournalEntry.kind, JournalEntry.description,
                   JournalLine.invoice_number)
         .order_by(JournalEntry.entry_date, JournalEntry.id, JournalLine.invoice_number.is_(None),
                   JournalLine.invoice_number))
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    rows, balance, opening = [], 0, 0
    for d, entry_id, kind, text, number, debit, credit in session.execute(q):
        net = int(debit) - int(credit)
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
    from ledger.store.models import Guarantee, GuaranteeMonth

    _, end = _window(period)
    names = _customer_names(session)
    notes = dict(session.execute(sa.select(Invoice.number, Invoice.issue_date).where(Invoice.category == "guarantee")).all())
    rows, totals = [], {}
    enrolled = session.execute(sa.select(Guarantee).where(Guarantee.start_month <= period)
                               .order_by(Guarantee.customer_id, Guarantee.start_month)).scalars().all()
    for g in enrolled:
        if g.enrolled_at.astimezone(tz).date() > end:
            continue
        months = [m for m in G.window(g.start_month, g.months) if m <= period]
        stored = {r.period: r for r in session.execute(
            sa.select(GuaranteeMonth).where(GuaranteeMonth.guarantee_id == g.id)).scalars()}
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
    for cur, net in session.execute(
            sa.select(JournalLine.commodity, sa.func.sum(JournalLine.debit - JournalLine.credit))
            .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
            .where(JournalLine.account_code == A.GUARANTEE_CREDITS, JournalEntry.entry_date <= end)
            .group_by(JournalLine.commodity)):
        totals.setdefault(cur, {"currency": cur, "customers": 0, "legacy": 0, "charges": 0, "credit": 0, "cost": 0})
        totals[cur]["cost"] = int(net)
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

    from ledger.store.models import PeriodClose

    q = sa.select(PeriodClose).order_by(PeriodClose.id)
    if period is not None:
        q = q.where(PeriodClose.period == period)
    rows = [{"at": r.at.isoformat(), "period": r.period, "action": r.action, "by": r.by, "reason": r.reason or "",
             "journal_head": r.journal_head, "entries": r.entries, "seal": r.seal or "",
             "checks": len(json.loads(r.checks)) if r.checks else None}
            for r in session.execute(q).scalars()]
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
    ending with ``period``, per currency (one `Trend` each, sorted by currency)."""
    from ledger.core.periods import previous_period

    window = [period]
    while len(window) < months:
        window.insert(0, previous_period(window[0]))
    end = last_day(period)
    codes = {code: stream for code, stream in A.REVENUE_STREAMS}
    month_of = sa.func.substr(sa.cast(JournalEntry.entry_date, sa.String), 1, 7)
    q = (sa.select(month_of, JournalLine.account_code, JournalLine.commodity,
                   sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_([*codes, *A.DEFERRED_ACCOUNTS]), JournalEntry.entry_date <= end)
         .group_by(month_of, JournalLine.account_code, JournalLine.commodity))
    revenue: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    deferred_moves: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, code, cur, net in session.execute(q):
        if code in codes:
            if month >= window[0]:
                revenue[cur][codes[code]][month] = revenue[cur][codes[code]].get(month, 0) + int(net)
        else:
            deferred_moves[cur][month if month >= window[0] else ""] += int(net)
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
    from ledger.store.models import Event, UsageEvent

    d0, d1 = _window(period)
    rows = [{"event_id": i, "type": t, "customer_id": c, "occurred_at": at.isoformat(), "posted": p.isoformat()}
            for i, t, c, at, p in session.execute(
                sa.select(Event.id, Event.type, Event.customer_id, Event.occurred_at, Event.posted_date)
                .where(Event.late.is_(True), Event.posted_date >= d0, Event.posted_date <= d1))]
    rows += [{"event_id": i, "type": "usage.recorded", "customer_id": c, "occurred_at": at.isoformat(),
              "posted": p.isoformat()}
             for i, c, at, p in session.execute(
                 sa.select(UsageEvent.id, UsageEvent.customer_id, UsageEvent.occurred_at, JournalEntry.entry_date)
                 .join(JournalEntry, JournalEntry.id == UsageEvent.entry_id)
                 .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1))]
    rows.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return Report("late-events", f"Late events posted in {period}", period,
                  [Column("event_id", "Event"), Column("type", "Type"), Column("customer_id", "Customer"),
                   Column("occurred_at", "Occurred at"), Column("posted", "Posted on")], rows,
                  [{"event_id": f"{len(rows)} events"}] if rows else [])
