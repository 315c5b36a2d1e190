"""The close report's trend charts: matplotlib figures of a `ledger.reporting.Trend`, as SVG.

Two charts per currency over the months of the trend (none before the books start): recognised
revenue by stream (stacked bars, contra-revenue below zero) and deferred revenue (2100 + 2150)
at each month end. Months read "Oct 2026" (Babel, CLDR), amounts on the axes are grouped
("12,500") in major units, and the text is set in the documents' font, the bundled Ledger Sans
(``reports/static/fonts``), registered with matplotlib once per process. Inline SVG with the
text kept as text in that font (WeasyPrint sets it with the bundled face, so the PDF stays
vector and light), a fixed hash salt and no date, so the same books draw the same bytes.
"""

from __future__ import annotations

import functools
import io
import re
from datetime import date

from babel.dates import format_date
from babel.numbers import format_decimal
from markupsafe import Markup

from ledger.core.money import exponent
from ledger.reporting import STREAM_NAMES, Trend
from reports.pdf import STATIC_DIR

STREAM_COLOURS = {"usage": "#2d4a8a", "overage": "#5b7bc0", "subscription": "#13a57b", "breakage": "#e0a040",
                  "guarantee_credits": "#c0504d", "refunds_and_concessions": "#8e6bb0"}
INK, GRID, ACCENT = "#1f2430", "#e3e6eb", "#2d4a8a"
FONT_FAMILY = "Ledger Sans"
SIZE_MM = (84, 56)  # width, height of one chart on the page
DPI = 100


@functools.cache
def _register_fonts() -> None:
    """Add the bundled Ledger Sans faces to matplotlib's font manager (once per process)."""
    from matplotlib import font_manager

    for face in ("Regular", "Bold"):
        font_manager.fontManager.addfont(str(STATIC_DIR / "fonts" / f"LedgerSans-{face}.ttf"))


def month_label(period: str, locale: str = "en_US") -> str:
    """ "2026-10" -> "Oct 2026" (the locale's abbreviated month and year, by Babel)."""
    year, month = map(int, period.split("-"))
    return format_date(date(year, month, 1), "MMM y", locale=locale)


def axis_labels(months: list[str], locale: str = "en_US") -> list[str]:
    """The x-axis labels of ``months``: "Oct 2026" each for up to 4 months; beyond, the month
    alone ("Nov") and the year under the first month and under each January ("Jan\n2027"), so
    a year of labels fits under a third of the page."""
    if len(months) <= 4:
        return [month_label(m, locale) for m in months]
    labels = []
    for i, m in enumerate(months):
        year, month = map(int, m.split("-"))
        name = format_date(date(year, month, 1), "MMM", locale=locale)
        labels.append(f"{name}\n{year}" if i == 0 or month == 1 else name)
    return labels


def _grouped(value: float, _pos=None) -> str:
    """An axis tick in major units with thousands separators: 12500.0 -> "12,500"."""
    return format_decimal(value, format="#,##0.##", locale="en_US")


def _figure():
    _register_fonts()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = Figure(figsize=(SIZE_MM[0] / 25.4, SIZE_MM[1] / 25.4), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(INK)
        ax.spines[side].set_linewidth(0.6)
    ax.yaxis.set_major_formatter(FuncFormatter(_grouped))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.tick_params(labelsize=7, colors=INK, width=0.6, length=3)
    ax.grid(axis="y", color=GRID, linewidth=0.5)
    ax.set_axisbelow(True)
    return fig, ax


def _slots(ax, months: int) -> None:
    """Keep bars of a short window narrow and centred: at least 4 month slots on the x axis."""
    pad = max(0, 4 - months) / 2
    ax.set_xlim(-0.5 - pad, months - 0.5 + pad)


def _svg(fig, prefix: str) -> Markup:
    """The figure as an inline <svg> element (text as text, no date); every id and reference
    to one gets ``prefix`` (matplotlib numbers ids from 1 in each figure, and one page holds
    several)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r'(id="|href="#|url\(#)', lambda m: m.group(1) + prefix + "-", text[text.index("<svg"):])
    return Markup(text)


def _style():
    import matplotlib

    return matplotlib.rc_context({"svg.hashsalt": "credit-ledger", "svg.fonttype": "none", "font.family": FONT_FAMILY, "font.size": 7.5, "axes.titlesize": 8.5,
                                  "axes.titleweight": "bold", "axes.titlecolor": INK, "legend.fontsize": 6.5})


def revenue_chart(t: Trend) -> Markup:
    """Stacked bars of each revenue stream per month (contra-revenue streams below zero), as a
    inline SVG; the streams without a movement in the window are left out of the legend."""
    with _style():
        fig, ax = _figure()
        labels = axis_labels(t.months)
        scale = 10 ** exponent(t.currency)
        up = [0.0] * len(t.months)
        down = [0.0] * len(t.months)
        for stream, values in t.streams.items():
            series = [v / scale for v in values]
            if not any(series):
                continue
            base = [down[i] if v < 0 else up[i] for i, v in enumerate(series)]
            ax.bar(labels, series, bottom=base, color=STREAM_COLOURS.get(stream, "#888888"),
                   label=STREAM_NAMES.get(stream, stream), width=0.6)
            for i, v in enumerate(series):
                if v < 0:
                    down[i] += v
                else:
                    up[i] += v
        ax.axhline(0, color=INK, linewidth=0.6)
        _slots(ax, len(labels))
        ax.set_title(f"Recognised revenue by stream, {t.currency}", loc="left")
        below = -0.2 if any("\n" in label for label in labels) else -0.1  # under one or two lines of labels
        ax.legend(frameon=False, ncols=3, loc="upper center", bbox_to_anchor=(0.5, below), handlelength=1,
                  columnspacing=1)
        return _svg(fig, f"revenue-{t.currency}")


def deferred_chart(t: Trend) -> Markup:
    """Deferred revenue (2100 + 2150) at each month end, as inline SVG, each bar labelled with
    its value (only the last one beyond 6 months)."""
    from matplotlib.ticker import MaxNLocator

    with _style():
        fig, ax = _figure()
        labels = axis_labels(t.months)
        values = [v / 10 ** exponent(t.currency) for v in t.deferred]
        ax.bar(labels, values, color=ACCENT, width=0.6, alpha=0.85)
        _slots(ax, len(labels))
        for i, (x, v) in enumerate(zip(labels, values)):
            if len(values) > 6 and i != len(values) - 1:
                continue  # a long window: only the last month's value, so that none overlaps
            ax.annotate(_grouped(round(v)), (x, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=6.5, color=INK)
        ax.set_ylim(bottom=min(0.0, *values), top=max(1.0, *values) * 1.15)
        if not any(values):
            ax.yaxis.set_major_locator(MaxNLocator(nbins=1, integer=True))
            ax.text(0.5, 0.55, f"no deferred revenue in {t.currency} at these month ends", transform=ax.transAxes,
                    ha="center", va="center", color="#8a909a")
        ax.set_title(f"Deferred revenue at month end, {t.currency}", loc="left")
        return _svg(fig, f"deferred-{t.currency}")


MARGIN_BANDS = ((None, 0, "< 0%"), (0, 20, "0-20%"), (20, 40, "20-40%"), (40, 60, "40-60%"), (60, 80, "60-80%"),
                (80, None, ">= 80%"))
"""The bands of the margin chart: (from, below, label) in margin percent; None is open."""


def margin_bands(percents: list) -> list[int]:
    """How many of ``percents`` (Decimal margin percents) fall in each of `MARGIN_BANDS`."""
    counts = [0] * len(MARGIN_BANDS)
    for pct in percents:
        for i, (low, high, _) in enumerate(MARGIN_BANDS):
            if (low is None or pct >= low) and (high is None or pct < high):
                counts[i] += 1
                break
    return counts


def margin_chart(currency: str, percents: list, threshold) -> Markup:
    """Customers by gross margin band (`MARGIN_BANDS`), as inline SVG: the bands under
    ``threshold`` percent in the warning colour, each bar labelled with its count."""
    from matplotlib.ticker import MaxNLocator

    with _style():
        fig, ax = _figure()
        counts = margin_bands(percents)
        labels = [label for _, _, label in MARGIN_BANDS]
        colours = ["#c0504d" if high is not None and high <= threshold else ACCENT for _, high, _ in MARGIN_BANDS]
        ax.bar(labels, counts, color=colours, width=0.6, alpha=0.85)
        for x, n in zip(labels, counts):
            if n:
                ax.annotate(f"{n:,}", (x, n), xytext=(0, 2), textcoords="offset points", ha="center",
                            va="bottom", fontsize=6.5, color=INK)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.set_ylim(top=max(1, *counts) * 1.2)
        ax.tick_params(axis="x", labelsize=6.5)
        ax.set_title(f"Customers by gross margin, {currency}", loc="left")
        return _svg(fig, f"margin-{currency}")
