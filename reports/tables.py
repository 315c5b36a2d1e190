"""Rendering of ledger.reporting.Report values as a table (Rich), CSV or JSON.

JSON shape (stable, docs/design.md §8.1): {"report", "title", "period", "rows", "totals"}; money fields
are decimal strings in major units of the row's currency (or commodity), credits are integers.
CSV has the same fields as JSON rows, with a blank line and then the totals.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from ledger.core.money import CREDIT, format_amount, format_units, major_str
from ledger.reporting import Column, Report

FORMATS = ("table", "csv", "json")


def _money_json(value: int, commodity: str | None) -> Any:
    if commodity is None:
        return value
    return value if commodity == CREDIT else major_str(value, commodity)


def _plain(report: Report, row: dict) -> dict:
    out = {}
    commodity = row.get(report.currency_key)
    for k, v in row.items():
        col = next((c for c in (*report.columns, *report.total_columns) if c.key == k), None)
        out[k] = _money_json(v, commodity) if col is not None and col.kind == "money" and isinstance(v, int) else v
    return out


def to_json(report: Report) -> str:
    """The report as JSON text (sorted nothing: keys in column order), ending in a newline."""
    doc = {"report": report.name, "title": report.title, "period": report.period,
           "rows": [_plain(report, r) for r in report.rows], "totals": [_plain(report, t) for t in report.totals]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: Report) -> str:
    """Rows as CSV with a header; then a blank line and the totals with their own header."""
    buf = io.StringIO()
    keys = [c.key for c in report.columns]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in report.rows:
        p = _plain(report, r)
        w.writerow([_csv_cell(p.get(k)) for k in keys])
    if report.totals:
        tkeys = list(report.totals[0].keys())
        w.writerow([])
        w.writerow(["total:" + k for k in tkeys])
        for t in report.totals:
            p = _plain(report, t)
            w.writerow([_csv_cell(p.get(k)) for k in tkeys])
    return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    text = str(v)
    # Spreadsheet formula injection: a text cell starting with = + - @ is neutralised.
    if text[:1] in ("=", "+", "@") or (text[:1] == "-" and not _is_number(text)):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _cell(col: Column, row: dict, commodity: str | None) -> str:
    v = row.get(col.key)
    if v is None:
        return ""
    if col.kind == "money" and isinstance(v, int):
        if commodity == CREDIT:
            return format_units(v)
        return format_amount(v, commodity) if commodity else str(v)
    if col.kind in ("credits", "int") and isinstance(v, int):
        return format_units(v)
    return str(v)


def to_table(report: Report, console: Console | None = None, width: int | None = None) -> str:
    """A boxed table for people; totals as a footer per currency/commodity."""
    table = Table(title=report.title, box=box.SIMPLE_HEAVY, show_footer=False, title_justify="left")
    for c in report.columns:
        table.add_column(c.title, justify="right" if c.kind in ("money", "credits", "int") else "left",
                         overflow="fold")
    for r in report.rows:
        table.add_row(*[_cell(c, r, r.get(report.currency_key)) for c in report.columns])
    if report.totals:
        table.add_section()
        for t in report.totals:
            commodity = t.get(report.currency_key)
            cells = []
            for i, c in enumerate(report.columns):
                if c.key in t and c.key != report.currency_key:
                    cells.append(_cell(c, t, commodity))
                elif c.key == report.currency_key:
                    cells.append(str(commodity or ""))
                else:
                    cells.append("Total" if i == 0 else "")
            table.add_row(*cells, style="bold")
    out = Console(file=io.StringIO(), width=width or 200, record=True, force_terminal=False)
    out.print(table)
    for t in report.totals:
        commodity = t.get(report.currency_key)
        for c in report.total_columns:
            if c.key in t:
                out.print(f"{c.title}{f', {commodity}' if commodity else ''}: {_cell(c, t, commodity)}")
    return out.export_text()


def render(report: Report, fmt: str) -> str:
    """fmt: table | csv | json."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    return to_table(report)
