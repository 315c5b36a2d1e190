"""Rendering of ledger.reporting.Report values as a table (Rich), CSV or JSON.

JSON shape (stable, docs/design.md §8.1): {"report", "title", "period", "rows", "totals"}; money fields
are decimal strings in major units of the row's currency (or commodity), credits are integers.
CSV has the same fields as JSON rows under one header, the totals as rows saying "Total"; its text cells are
neutralised against spreadsheet formulas as the journal export's are (`to_csv`).

Tables are for people at a terminal: every text in them (title, headers, cells, totals) is a
`rich.text.Text`, so Rich markup (``[bold]``), emoji codes (``:smile:``) and backslashes in
names from the books are printed literally, and control characters are shown as visible
escapes (`printable`). CSV and JSON are files for machines and carry the text unchanged, but
for the ``'`` a CSV text cell starts with where a spreadsheet would read a formula.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger.core.money import CREDIT, format_amount, format_units, major_str
from ledger.export.text import csv_cell, csv_line
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
        if col is not None and col.kind == "money" and isinstance(v, int):
            v = _money_json(v, commodity)
        elif isinstance(v, Decimal):  # a percent: a decimal string, as amounts are
            v = str(v)
        out[k] = v
    return out


def to_json(report: Report) -> str:
    """The report as JSON text (sorted nothing: keys in column order), ending in a newline."""
    doc = {"report": report.name, "title": report.title, "period": report.period,
           "rows": [_plain(report, r) for r in report.rows], "totals": [_plain(report, t) for t in report.totals]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: Report) -> str:
    """One header line, then the rows, then one "Total" row per total: every line has the
    header's columns, so a spreadsheet or ``pandas.read_csv`` reads the file as one table.

    A total row carries its currency/commodity and its sums in the columns of the same names and
    "Total" in the first text column it leaves empty (`_total_label`); fields only totals carry
    (e.g. the guarantees' ``customers`` and ``cost``) are extra columns at the end, empty on
    the ordinary rows. "\n" line ends; every record is written by ``ledger.export.text.csv_line``
    (a field with a comma, quote, CR or LF is quoted) and every text cell goes through
    ``csv_cell`` (`_csv_cell`), the journal export's own functions, so no cell starts a
    spreadsheet formula.
    """
    keys = [c.key for c in report.columns]
    for t in report.totals:
        keys += [k for k in t if k not in keys]
    lines = [csv_line(keys, "\n")]
    lines += [csv_line(_csv_cells(report, r, keys), "\n") for r in report.rows]
    for t in report.totals:
        label = _total_label(report, t)
        lines.append(csv_line(_csv_cells(report, {**t, label: "Total"} if label else t, keys), "\n"))
    return "".join(lines)


def _total_label(report: Report, total: dict) -> str | None:
    """The column of a total row that says "Total": the first text column that is not the
    currency/commodity and that the total leaves empty (None if there is none)."""
    return next((c.key for c in report.columns
                 if c.kind == "text" and c.key != report.currency_key and c.key not in total), None)


def _csv_cells(report: Report, row: dict, keys: list[str]) -> list[str]:
    """The CSV cells of ``row`` for ``keys``, from its JSON values (`_plain`)."""
    plain = _plain(report, row)
    return [_csv_cell(row.get(k), plain.get(k)) for k in keys]


def _csv_cell(value: Any, plain: Any) -> str:
    """One CSV cell: "" for None; text (a str in the report's row: names, descriptions, ids, all
    possibly from users) through ``csv_cell``, so a user's ``"-3.50"`` is written ``'-3.50``;
    anything else (an int, a money amount written as a decimal string by `_money_json`, a date)
    was made by the engine and is written as it is: a negative amount stays the number
    ``-3.50``; a boolean is ``true`` or ``false``."""
    if plain is None:
        return ""
    if isinstance(plain, bool):  # as JSON writes it, not Python's True/False
        return "true" if plain else "false"
    return csv_cell(plain) if isinstance(value, str) else str(plain)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 controls (U+0000-U+001F, newline and tab included), DEL (U+007F) and C1 (U+0080-U+009F)."""


def printable(text: str) -> str:
    r"""``text`` with every control character replaced by a visible escape, for a terminal.

    C0 (U+0000-U+001F, including newline, carriage return and tab), DEL (U+007F) and C1
    (U+0080-U+009F, e.g. the 8-bit CSI U+009B) become the four characters ``\xNN`` (two
    lowercase hex digits): ``"\x1b[2Jx"`` -> ``"\\x1b[2Jx"``, printed as ``\x1b[2Jx``. So no
    escape sequence (cursor moves, screen clears, colours, OSC 8 hyperlinks, title changes)
    reaches the terminal, and a name stays on its row. Every other character, a backslash
    included, is kept as it is (a name that literally contains ``\x1b`` prints the same).
    Pure; returns ``text`` unchanged when it holds no control character.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _text(value: object) -> Text:
    """A table text printed literally: no markup, no emoji codes, control characters escaped."""
    return Text(printable(str(value)))


def _cell(col: Column, row: dict, commodity: str | None) -> str:
    v = row.get(col.key)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if col.kind == "money" and isinstance(v, int):
        if commodity == CREDIT:
            return format_units(v)
        return format_amount(v, commodity) if commodity else str(v)
    if col.kind == "percent" and isinstance(v, Decimal):
        return f"{v}%"
    if col.kind in ("credits", "int") and isinstance(v, int):
        return format_units(v)
    return str(v)


def table_width() -> int:
    """Characters per line for a table: $COLUMNS if set, else the width of the terminal on
    standard output, else (a pipe or a file) 120."""
    return shutil.get_terminal_size((120, 24)).columns


def _table(report: Report) -> Table:
    """The Rich table of ``report``: headers in colour (shown only on a colour terminal), money
    and counts right-aligned, long cells folded, totals in bold below a rule."""
    table = Table(title=_text(report.title), box=box.SIMPLE_HEAVY, show_footer=False, title_justify="left",
                  title_style="bold", header_style="bold cyan")
    for c in report.columns:
        table.add_column(_text(c.title), justify="right" if c.kind in ("money", "credits", "int", "percent") else "left",
                         overflow="fold")
    for r in report.rows:
        table.add_row(*[_text(_cell(c, r, r.get(report.currency_key))) for c in report.columns])
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
            table.add_row(*map(_text, cells), style="bold")
    return table


def _print(report: Report, console: Console) -> None:
    console.print(_table(report))
    for t in report.totals:
        commodity = t.get(report.currency_key)
        for c in report.total_columns:
            if c.key in t:
                console.print(_text(f"{c.title}{f', {commodity}' if commodity else ''}: {_cell(c, t, commodity)}"))


def natural_width(report: Report) -> int:
    """The characters per line ``report``'s table needs with no cell folded."""
    return max(len(line.rstrip()) for line in to_table(report, width=1000).splitlines())


def to_table(report: Report, console: Console | None = None, width: int | None = None) -> str:
    """A boxed table for people; totals as a footer per currency/commodity.

    Every text is printed literally (`_text`: no Rich markup or emoji codes, control characters
    escaped by `printable`). width: characters per line (default `table_width`); long cells fold.
    Returns plain text (no ANSI styles), ending in a newline: for a file (``--out``).
    """
    out = Console(file=io.StringIO(), width=width or table_width(), record=True, force_terminal=False)
    _print(report, out)
    return out.export_text()


def print_table(report: Report, *, wide: bool = False, file=None) -> None:
    """Print ``report``'s table to standard output (or ``file``) through a Rich console, which
    decides: the width of the terminal (on a pipe, $COLUMNS or 120: `table_width`), and styles
    only on a terminal (none on a pipe or in a file; no colour when NO_COLOR is set). wide: at
    least the table's natural width (the waterfall's 21 columns would fold every amount)."""
    import sys

    stream = file or sys.stdout
    width = None if stream.isatty() else table_width()
    if wide:
        width = max(width or shutil.get_terminal_size().columns, natural_width(report))
    _print(report, Console(file=stream, width=width))


def render(report: Report, fmt: str) -> str:
    """fmt: table | csv | json."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    return to_table(report)
