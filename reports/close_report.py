"""close-report.pdf: the pages a controller reads and signs at the month close.

Page 1: the close record (who, when, journal head, entries sealed, seal), the key figures per
currency and the checks passed. Then the deferred-revenue rollforward and revenue by stream,
and two charts per currency over the last 12 months: recognised revenue by stream (stacked
bars, contra-revenue below zero) and deferred revenue at each month end. Every figure comes
from the `ledger.reporting` reports, i.e. from the journal; the charts are drawn by matplotlib
as SVG (text as paths, fixed hash salt, no date) so the PDF is byte-identical for the same
books and ``SOURCE_DATE_EPOCH``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup

from ledger import reporting
from ledger.catalog import Catalog
from ledger.core.money import format_amount
from ledger.core.periods import first_day, last_day
from ledger.store import documents as store
from ledger.store.reports import CloseRecord
from reports.pdf import html_pdf_bytes, render_template

if TYPE_CHECKING:
    from ledger.store.db import Session

STREAM_COLOURS = {"usage": "#2d4a8a", "overage": "#5b7bc0", "subscription": "#13a57b", "breakage": "#e0a040",
                  "guarantee_credits": "#c0504d", "refunds_and_concessions": "#8e6bb0"}


@dataclass(frozen=True)
class KeyFigures:
    """One currency's headline numbers for the period, formatted (grouped, no symbol)."""

    currency: str
    recognised: str
    invoiced: str
    credit_notes: str
    deferred_opening: str
    deferred_closing: str
    receivables: str
    guarantee_cost: str


def close_report_pdf(session: Session, catalog: Catalog, period: str, record: CloseRecord) -> bytes:
    """The close report of ``period`` as PDF/A-3b bytes, for its close ``record`` (a
    `ledger.store.reports.CloseRecord` or the period_close row it mirrors: the page shows its
    at, by, journal_head, entries, seal, previous_seal and checks)."""
    rollforward = reporting.deferred_revenue(session, period)
    revenue = reporting.revenue(session, period)
    aging = reporting.ar_aging(session, period)
    late = reporting.late_events(session, period)
    quarantined = reporting.quarantine(session, period)
    trends = reporting.trends(session, period)
    billed = store.billed(session, first_day(period), last_day(period))
    currencies = sorted({t.currency for t in trends} | {cur for cur, _ in billed})
    net = {t["currency"]: t["amount"] for t in revenue.totals}
    roll = {t["currency"]: t for t in rollforward.totals}
    ar = {t["currency"]: t["total"] for t in aging.totals}
    guarantee = {r["currency"]: -r["amount"] for r in revenue.rows if r["stream"] == "guarantee_credits"}

    def fmt(amount: int, cur: str) -> str:
        return format_amount(amount, cur)

    figures = [KeyFigures(cur, fmt(net.get(cur, 0), cur), fmt(billed.get((cur, "invoice"), 0), cur),
                          fmt(billed.get((cur, "credit_note"), 0), cur), fmt(roll.get(cur, {}).get("opening", 0), cur),
                          fmt(roll.get(cur, {}).get("closing", 0), cur), fmt(ar.get(cur, 0), cur),
                          fmt(guarantee.get(cur, 0), cur))
               for cur in currencies]
    roll_rows = [{"currency": t["currency"], **{k: fmt(t[k], t["currency"]) for k in reporting._ROLL_COLUMNS}}
                 for t in rollforward.totals]
    revenue_rows = [{"currency": r["currency"], "name": r["name"], "account": r["account"],
                     "amount": fmt(r["amount"], r["currency"])} for r in revenue.rows if r["amount"]]
    charts = [(t.currency, Markup(_revenue_chart(t)), Markup(_deferred_chart(t))) for t in trends]
    html = render_template(
        "close_report.html", company=catalog.company.name, period=period, record=record,
        checks=json.loads(record.checks or "[]"), figures=figures, rollforward=roll_rows,
        roll_columns=reporting._ROLL_COLUMNS, revenue=revenue_rows,
        net=[(cur, fmt(v, cur)) for cur, v in sorted(net.items())],
        late=len(late.rows), quarantined=len(quarantined.rows), charts=charts)
    return html_pdf_bytes(html)


def _figure():
    import matplotlib

    matplotlib.rcParams.update({"svg.hashsalt": "credit-ledger", "svg.fonttype": "path", "font.size": 8,
                                "axes.spines.top": False, "axes.spines.right": False})
    from matplotlib.figure import Figure

    return Figure(figsize=(9.5, 2.9), dpi=100, layout="constrained")


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _major(values: list[int], currency: str) -> list[float]:
    from ledger.core.money import exponent

    scale = 10 ** exponent(currency)
    return [v / scale for v in values]


def _revenue_chart(t: reporting.Trend) -> str:
    """Stacked bars: each revenue stream per month; contra-revenue streams below zero."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [m[2:] for m in t.months]
    up = [0.0] * len(t.months)
    down = [0.0] * len(t.months)
    for stream, values in t.streams.items():
        series = _major(values, t.currency)
        if not any(series):
            continue
        base = [down[i] if v < 0 else up[i] for i, v in enumerate(series)]
        ax.bar(labels, series, bottom=base, color=STREAM_COLOURS.get(stream, "#888888"),
               label=reporting._STREAM_NAMES.get(stream, stream), width=0.7)
        for i, v in enumerate(series):
            if v < 0:
                down[i] += v
            else:
                up[i] += v
    ax.axhline(0, color="#1f2430", linewidth=0.6)
    ax.set_ylabel(t.currency)
    ax.set_title(f"Recognised revenue by stream, {t.currency}", loc="left", fontsize=9)
    ax.legend(frameon=False, fontsize=7, ncols=3, loc="upper left")
    ax.grid(axis="y", color="#e3e6eb", linewidth=0.5)
    ax.set_axisbelow(True)
    return _svg(fig)


def _deferred_chart(t: reporting.Trend) -> str:
    """Deferred revenue (2100 + 2150) at each month end."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = [m[2:] for m in t.months]
    values = _major(t.deferred, t.currency)
    ax.plot(labels, values, color="#2d4a8a", marker="o", linewidth=1.5, markersize=3)
    ax.fill_between(labels, values, color="#2d4a8a", alpha=0.12)
    ax.set_ylabel(t.currency)
    ax.set_ylim(bottom=min(0.0, min(values)))
    ax.set_title(f"Deferred revenue at month end, {t.currency}", loc="left", fontsize=9)
    ax.grid(axis="y", color="#e3e6eb", linewidth=0.5)
    ax.set_axisbelow(True)
    return _svg(fig)
