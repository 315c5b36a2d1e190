"""close-report.pdf: the pages a controller reads and signs at the month close.

Page 1: the close record (who, when, journal head, entries sealed, the seal and the seal it
chains from), the key figures per currency with the previous month beside them and the change,
accounts receivable aging, the checks that passed and the sign-off. Then the trial balance
(one debit and credit column pair per commodity), the deferred-revenue rollforward, revenue by
stream, and per currency two charts over the months of the books (at most 12): recognised
revenue by stream and deferred revenue at each month end (`reports.close_charts`).

Every figure comes from the `ledger.reporting` reports, i.e. from the journal (invoiced and
credit-noted amounts from the issued documents, which the close's invariant ties to it); the
template only lays the view model out. The charts are SVG without a date stamp, so the PDF is
byte-identical for the same books and ``SOURCE_DATE_EPOCH``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger import reporting
from ledger.catalog import Catalog
from ledger.core.money import CREDIT, format_amount
from ledger.core.periods import first_day, last_day, period_of, previous_period
from ledger.store import documents as store
from ledger.store.reports import CloseRecord, first_entry_date
from reports.close_charts import deferred_chart, margin_chart, month_label, revenue_chart
from reports.pdf import html_pdf_bytes, render_template

if TYPE_CHECKING:
    from ledger.store.db import Session

# (key, label) of the key figures, in page order
FIGURES = (
    ("recognised", "Recognised revenue, net"),
    ("breakage", "of which breakage"),
    ("guarantee", "Guarantee credits granted"),
    ("invoiced", "Invoiced, before tax"),
    ("credit_notes", "Credit notes, before tax"),
    ("deferred", "Deferred revenue at month end"),
    ("receivables", "Receivables open at month end"),
    ("past_due", "of which past due"),
)
AGING_TITLES = {"current": "Current", "1-30": "1-30 days", "31-60": "31-60 days", "61-90": "61-90 days",
                "over_90": "Over 90 days"}


@dataclass(frozen=True)
class FigureRow:
    """One key figure: its label and, per currency in the report's order, (previous month, this
    month, change), formatted; previous and change are "" when the books start this month."""

    label: str
    minor: bool
    cells: list[tuple[str, str, str]]


def month_figures(session: Session, period: str) -> dict[str, dict[str, int]]:
    """The key figures of ``period`` per currency: key of FIGURES -> int minor units."""
    revenue = reporting.revenue(session, period)
    rollforward = reporting.deferred_revenue(session, period)
    aging = reporting.ar_aging(session, period)
    billed = store.billed(session, first_day(period), last_day(period))
    out: dict[str, dict[str, int]] = {}

    def put(cur: str, key: str, amount: int) -> None:
        out.setdefault(cur, dict.fromkeys(k for k, _ in FIGURES))
        out[cur][key] = (out[cur][key] or 0) + amount

    for t in revenue.totals:
        put(t["currency"], "recognised", t["amount"])
    for r in revenue.rows:
        if r["stream"] == "breakage":
            put(r["currency"], "breakage", r["amount"])
        elif r["stream"] == "guarantee_credits":
            put(r["currency"], "guarantee", -r["amount"])
    for (cur, kind), amount in billed.items():
        put(cur, "invoiced" if kind == "invoice" else "credit_notes", amount)
    for t in rollforward.totals:
        put(t["currency"], "deferred", t["closing"])
    for t in aging.totals:
        put(t["currency"], "receivables", t["total"])
        put(t["currency"], "past_due", t["total"] - t["current"])
    return {cur: {k: v or 0 for k, v in figures.items()} for cur, figures in out.items()}


def _change(now: int, before: int, cur: str) -> str:
    """"+1,234.50 (+12.5%)": the difference, signed, and its share of the previous month."""
    diff = now - before
    text = ("+" if diff > 0 else "") + format_amount(diff, cur)
    if before and diff:
        share = diff / abs(before)
        text += f" ({share:+.1%})" if abs(share) < 0.01 else f" ({share:+.0%})"
    return text


def key_figures(session: Session, period: str, books_start: str) -> tuple[list[str], list[FigureRow], str | None]:
    """(currencies, FigureRow per key figure, the previous period or None when the books start
    in ``period``)."""
    now = month_figures(session, period)
    prior_period = previous_period(period) if previous_period(period) >= books_start else None
    before = month_figures(session, prior_period) if prior_period else {}
    currencies = sorted(set(now) | set(before))
    zero = dict.fromkeys((k for k, _ in FIGURES), 0)
    rows = []
    for key, label in FIGURES:
        cells = []
        for cur in currencies:
            a, b = now.get(cur, zero)[key], before.get(cur, zero)[key]
            cells.append((format_amount(b, cur) if prior_period else "", format_amount(a, cur),
                          _change(a, b, cur) if prior_period else ""))
        rows.append(FigureRow(label, label.startswith("of which"), cells))
    return currencies, rows, prior_period


def trial_balance_view(session: Session, period: str) -> dict:
    """The trial balance as one row per account with a (debit, credit) pair per commodity
    (currencies first, credits last), and the totals row; blank where an account has none."""
    tb = reporting.trial_balance(session, period)
    commodities = [t["commodity"] for t in tb.totals]
    accounts: dict[str, dict] = {}
    for r in tb.rows:
        row = accounts.setdefault(r["account"], {"account": r["account"], "name": r["name"], "cells": {}})
        row["cells"][r["commodity"]] = (_amount(r["debit"], r["commodity"]), _amount(r["credit"], r["commodity"]))
    rows = [{"account": a["account"], "name": a["name"], "cells": [a["cells"].get(c, ("", "")) for c in commodities]}
            for a in sorted(accounts.values(), key=lambda a: a["account"])]
    totals = [(_amount(t["debit"], t["commodity"], True), _amount(t["credit"], t["commodity"], True)) for t in tb.totals]
    return {"commodities": commodities, "rows": rows, "totals": totals, "title": tb.title}


def _amount(value: int, commodity: str, keep_zero: bool = False) -> str:
    """Grouped amount of a currency, or grouped units of credits; "" for 0 unless keep_zero."""
    if value == 0 and not keep_zero:
        return ""
    return f"{value:,}" if commodity == CREDIT else format_amount(value, commodity)


def revenue_view(session: Session, period: str) -> dict:
    """Revenue by stream: one row per stream with an amount per currency, and the net row."""
    rev = reporting.revenue(session, period)
    currencies = [t["currency"] for t in rev.totals]
    streams: dict[str, dict] = {}
    for r in rev.rows:
        row = streams.setdefault(r["stream"], {"name": r["name"], "account": r["account"], "amounts": {}})
        row["amounts"][r["currency"]] = r["amount"]
    rows = [{"name": s["name"], "account": s["account"],
             "amounts": [format_amount(s["amounts"].get(c, 0), c) for c in currencies]}
            for s in streams.values() if any(s["amounts"].values())]
    return {"currencies": currencies, "rows": rows,
            "net": [format_amount(t["amount"], t["currency"]) for t in rev.totals]}


def aging_view(session: Session, period: str) -> dict:
    """Accounts receivable aging at the period end: per currency, the open invoices and the
    amounts by days past due (current, 1-30, 31-60, 61-90, over 90) and in total."""
    aging = reporting.ar_aging(session, period)
    rows = [{"currency": t["currency"], "invoices": t["invoices"],
             "buckets": [format_amount(t[b], t["currency"]) for b in reporting.AGING_BUCKETS],
             "total": format_amount(t["total"], t["currency"])} for t in aging.totals]
    return {"titles": [AGING_TITLES[b] for b in reporting.AGING_BUCKETS], "rows": rows, "title": aging.title}


MARGIN_FLAGGED_SHOWN = 10
"""At most this many flagged customers are listed on the page (all are in margin.csv)."""


def margin_view(session: Session, catalog: Catalog, period: str) -> dict | None:
    """Gross margin of ``period`` (`ledger.margin.gross_margin`, the catalog's threshold): per
    currency the totals and a chart of customers by margin band, and the customers under the
    threshold, lowest first (at most `MARGIN_FLAGGED_SHOWN`); None when no cost of usage was
    posted in the period (a margin without costs says nothing)."""
    from ledger.margin import gross_margin

    threshold = catalog.model.costs.margin_threshold_percent
    rep = gross_margin(session, period, threshold=threshold)
    if not any(t["cost"] for t in rep.totals):
        return None
    totals = [{"currency": t["currency"], "revenue": format_amount(t["revenue"], t["currency"]),
               "cost": format_amount(t["cost"], t["currency"]), "margin": format_amount(t["margin"], t["currency"]),
               "percent": _percent(t["margin_percent"], "")} for t in rep.totals]
    charts = [margin_chart(t["currency"], [r["margin_percent"] for r in rep.rows
                                           if r["currency"] == t["currency"] and r["margin_percent"] is not None], threshold)
              for t in rep.totals]
    flagged = [r for r in rep.rows if r["below"]]
    shown = [{"customer": f"{r['customer']} ({r['customer_id']})", "currency": r["currency"],
              "revenue": format_amount(r["revenue"], r["currency"]), "cost": format_amount(r["cost"], r["currency"]),
              "percent": _percent(r["margin_percent"], "no revenue")}
             for r in flagged[:MARGIN_FLAGGED_SHOWN]]
    return {"threshold": threshold, "totals": totals, "charts": charts, "flagged": shown,
            "flagged_count": len(flagged), "customers": len(rep.rows)}


def _percent(value, missing: str) -> str:
    """A margin percent as printed: "25.0%" (``missing`` for None)."""
    return missing if value is None else f"{value}%"


def close_report_pdf(session: Session, catalog: Catalog, period: str, record: CloseRecord) -> bytes:
    """The close report of ``period`` as PDF/A-3b bytes, for its close ``record`` (a
    `ledger.store.reports.CloseRecord` or the period_close row it mirrors: the page shows its
    at, by, journal_head, entries, seal, previous_seal and checks)."""
    start = first_entry_date(session)
    books_start = period_of(start) if start is not None else period
    currencies, figures, prior = key_figures(session, period, books_start)
    rollforward = reporting.deferred_revenue(session, period)
    roll_rows = [{"currency": t["currency"], "cells": [format_amount(t[k], t["currency"]) for k in reporting.ROLLFORWARD_COLUMNS]}
                 for t in rollforward.totals]
    trends = reporting.trends(session, period)
    charts = [(t.currency, revenue_chart(t), deferred_chart(t)) for t in trends if any(t.deferred) or
              any(any(v) for v in t.streams.values())]
    html = render_template(
        "close_report.html", company=catalog.company.name, period=period, month=month_label(period),
        prior_month=month_label(prior) if prior else None, record=record,
        checks=json.loads(record.checks or "[]"), currencies=currencies, figures=figures,
        aging=aging_view(session, period), trial_balance=trial_balance_view(session, period),
        rollforward=roll_rows, roll_columns=[c.capitalize() for c in reporting.ROLLFORWARD_COLUMNS],
        revenue=revenue_view(session, period), late=len(reporting.late_events(session, period).rows),
        quarantined=len(reporting.quarantine(session, period).rows), charts=charts,
        chart_window=_window(trends, period), margin=margin_view(session, catalog, period))
    return html_pdf_bytes(html)


def _window(trends: list[reporting.Trend], period: str) -> str:
    """The charts' months: "Aug 2026 to Oct 2026", or "Aug 2026" for one."""
    if not trends or trends[0].months[0] == period:
        return month_label(period)
    return f"{month_label(trends[0].months[0])} to {month_label(period)}"
