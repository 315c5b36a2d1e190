"""Hostile text in rendered reports and templates: printed literally, never interpreted.

- Table reports (Rich) print text from the books literally: Rich markup such as ``[/bold]``
  is not parsed (it used to raise rich.errors.MarkupError) and control characters (ESC, DEL,
  C1) are shown as visible escapes instead of reaching the terminal.
- CSV and JSON reports keep the text unchanged (they are files for machines).
- Every Jinja template, bundled or from the catalog's template folder, renders in Jinja's
  sandbox: an attribute walk to ``os`` raises SecurityError and runs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from builders import COMPANY_CATALOG
from jinja2.exceptions import SecurityError

from ledger.reporting import Column, Report
from reports.pdf import render_document_html
from reports.tables import render, to_csv, to_json, to_table
from reports.views import DocumentLine, DocumentView, Party

HOSTILE = ("[/bold]", "[red]x[/red]", "\x1b[2J\x1b[31mEvil", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
           "bell\x07del\x7fcsi\x9b2J", ":thumbs_up: [link=http://x]y[/link]")


def _report(names: tuple[str, ...] = HOSTILE, title: str = "Hostile [bold]names[/bold]") -> Report:
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("closing", "Closing", "money")]
    rows = [{"customer_id": f"c{i}", "customer": n, "currency": "USD", "closing": 1234} for i, n in enumerate(names)]
    totals = [{"currency": "USD", "closing": 1234 * len(rows)}]
    return Report("hostile", title, "2026-01", cols, rows, totals,
                  total_columns=[Column("closing", "Closing [i]total[/i]", "money")])


def test_rich_markup_in_table_cells_is_printed_literally():
    """`[/bold]` used to raise MarkupError; `[red]x[/red]` used to lose its brackets."""
    text = to_table(_report(("[/bold]", "[red]x[/red]", "[link=http://x]y[/link]")))
    for name in ("[/bold]", "[red]x[/red]", "[link=http://x]y[/link]"):
        assert name in text, text
    assert "Hostile [bold]names[/bold]" in text  # the title is printed literally too
    assert "Closing [i]total[/i], USD: " in text  # the totals line under the table


def test_rich_emoji_codes_in_cells_are_not_replaced():
    text = to_table(_report((":thumbs_up:",)))
    assert ":thumbs_up:" in text and "\N{THUMBS UP SIGN}" not in text


@pytest.mark.parametrize("name, shown", [
    ("\x1b[2J\x1b[31mEvil", "\\x1b[2J\\x1b[31mEvil"),
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "\\x1b]8;;http://x\\x1b\\link\\x1b]8;;\\x1b\\"),
    ("bell\x07del\x7fcsi\x9b2J", "bell\\x07del\\x7fcsi\\x9b2J"),
    ("nul\x00cr\rnl\ntab\tend", "nul\\x00cr\\x0dnl\\x0atab\\x09end"),
])
def test_control_characters_in_table_cells_are_shown_as_visible_escapes(name, shown):
    text = to_table(_report((name,), title=f"Title {name}"))
    assert shown in text, text
    assert f"Title {shown}" in text
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in text), repr(text)


def test_render_table_format_survives_every_hostile_name():
    text = render(_report(), "table")
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "[/bold]" in text and "[red]x[/red]" in text


def test_csv_and_json_keep_the_text_unchanged():
    """Files for machines: the exact names, escaped only by JSON's own rules."""
    rep = _report()
    doc = json.loads(to_json(rep))
    assert [r["customer"] for r in doc["rows"]] == list(HOSTILE)
    assert doc["title"] == "Hostile [bold]names[/bold]"
    csv_text = to_csv(rep)
    for name in HOSTILE:
        if "\n" not in name:
            assert name in csv_text


VIEW = DocumentView(
    title="Invoice", number="INV-2026-000001", issue_date="January 1, 2026", due_date=None, currency="USD",
    seller=Party("Example AI, Inc."), buyer=Party("Acme"),
    lines=(DocumentLine("Top-up", "1", "$1.00", "$1.00"),),
    subtotal="$1.00", tax_label="Tax", tax="$0.00", total="$1.00", amount_due="$1.00", payment_terms="Net 30")

PAYLOADS = (
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ namespace.__init__.__globals__.os.system('touch MARKER') }}",
    "{% set g = self.__init__.__globals__ %}{{ g.__builtins__.__import__('os').system('touch MARKER') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ view.__class__.__init__.__globals__['__builtins__']['__import__']('os').system('touch MARKER') }}",
    "{{ cycler.__init__.__globals__.os.__dict__.update(x=1) }}{{ ''.join.__self__ }}",
)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_custom_template_cannot_walk_to_os(tmp_path, payload):
    """A template in the catalog's template folder runs in the sandbox: SecurityError, no command."""
    marker = tmp_path / "pwned"
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "document.html").write_text(f"<html><body>{payload.replace('MARKER', str(marker))}</body></html>",
                                          encoding="utf-8")
    with pytest.raises(SecurityError):
        render_document_html(VIEW, folder)
    assert not marker.exists()


def test_custom_template_still_renders_filters_loops_and_escapes(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "document.html").write_text(
        "<h1>{{ view.number|lower }} {{ view.buyer.name }}</h1>{% for l in view.lines %}{{ loop.index }}"
        "{{ l.amount }}{% endfor %}", encoding="utf-8")
    html = render_document_html(dataclasses.replace(VIEW, buyer=Party("<b>x</b>")), folder)
    assert html == "<h1>inv-2026-000001 &lt;b&gt;x&lt;/b&gt;</h1>1$1.00"


def test_bundled_environments_are_sandboxed():
    from jinja2.sandbox import SandboxedEnvironment

    from reports import pdf

    assert isinstance(pdf._TEMPLATES, SandboxedEnvironment)
    assert isinstance(pdf._override_environment("/nonexistent"), SandboxedEnvironment)


EVENTS = (
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme",
     "name": "[/bold] [red]Acme[/red]", "currency": "USD", "tax_rate": "0", "address": ["1 Main St"]},
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T10:00:00Z", "customer_id": "acme",
     "topup_id": "top-1", "credits": 100, "amount": "100.00"},
)


def _ledger(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ledger", "--database-url", url, *args]
    env = {**os.environ, "COLUMNS": "200"}  # wide enough that no name folds: the test is about escaping
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=120, env=env)


def test_cli_table_report_prints_a_hostile_customer_name_literally(tmp_path, sqlite_url):
    """Rich markup enters through an event file and prints literally; a name with terminal escapes
    (refused at input today, but possibly in books written before that rule) is shown escaped."""
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    (tmp_path / "ledger.toml").write_bytes(COMPANY_CATALOG.read_bytes())
    r = _ledger(tmp_path, sqlite_url, "import", "events.jsonl")
    assert r.returncode == 0, r.stderr
    r = _ledger(tmp_path, sqlite_url, "report", "deferred-revenue", "--period", "2026-01", "--format", "table")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "[/bold] [red]Acme[/red]" in r.stdout, r.stdout
    legacy = "[/bold]\x1b[31m\x1b]8;;http://x\x1b\\"
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE customer SET name = ? WHERE id = 'acme'", (legacy,))
    r = _ledger(tmp_path, sqlite_url, "report", "deferred-revenue", "--period", "2026-01", "--format", "table")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "[/bold]\\x1b[31m\\x1b]8;;http://x\\x1b\\" in r.stdout, r.stdout
    assert "\x1b" not in r.stdout
    r = _ledger(tmp_path, sqlite_url, "report", "credits", "--period", "2026-01", "--format", "table")
    assert r.returncode == 0 and "acme" in r.stdout, r.stderr
    r = _ledger(tmp_path, sqlite_url, "report", "deferred-revenue", "--period", "2026-01", "--format", "json")
    assert json.loads(r.stdout)["rows"][0]["customer"] == legacy
