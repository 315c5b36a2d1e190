"""The `ledger` command line: exit codes, formats, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import COMPANY_CATALOG

EVENTS = """\
{"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "name": "Acme AI", "currency": "USD", "tax_rate": "0.0825", "address": ["1 Main St", "Springfield"]}
{"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T10:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "100.00"}
"""
USAGE = "event_id,customer_id,occurred_at,credits\r\nu1,acme,2026-01-10T12:00:00Z,30\r\nu2,acme,2026-01-11T12:00:00Z,500\r\n"


def ledger(tmp: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (as a user would)."""
    cmd = [sys.executable, "-m", "ledger", "--database-url", url or f"sqlite:///{tmp / 'l.db'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=120)


@pytest.fixture
def cli_db(tmp_path, db_url):
    (tmp_path / "events.jsonl").write_text(EVENTS)
    (tmp_path / "usage.csv").write_text(USAGE)
    (tmp_path / "ledger.toml").write_bytes(COMPANY_CATALOG.read_bytes())
    return tmp_path, db_url


def test_month_end_from_the_command_line(cli_db):
    """import -> close -> reports -> verify, with JSON report shapes and exit code 0."""
    tmp, url = cli_db
    r = ledger(tmp, "import", "events.jsonl", "usage.csv", "--format", "table", url=url)
    assert r.returncode == 0, r.stderr
    assert "posted 3, duplicates 0, quarantined 1" in r.stdout
    assert "quarantined u2: hard cap: 500 credits requested, 70 available" in r.stdout
    r = ledger(tmp, "close", "2026-01", "--out", "pkg", url=url)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in (tmp / "pkg" / "reports").iterdir()} >= {
        "trial-balance.json", "deferred-revenue.csv", "revenue.json", "credits.json", "quarantine.csv"}
    assert {p.name for p in (tmp / "pkg").iterdir()} >= {"manifest.json", "close-report.pdf", "invoices", "journal"}
    tb = json.loads(ledger(tmp, "report", "trial-balance", "--period", "2026-01", "--format", "json", url=url).stdout)
    assert tb["period"] == "2026-01" and {"rows", "totals"} <= tb.keys()
    usd = next(t for t in tb["totals"] if t["commodity"] == "USD")
    assert usd["debit"] == usd["credit"] == "108.25"
    rev = json.loads(ledger(tmp, "report", "revenue", "--period", "2026-01", url=url).stdout)
    assert rev["totals"] == [{"currency": "USD", "stream": "net", "amount": "30.00"}]
    dr = json.loads(ledger(tmp, "report", "deferred-revenue", "--period", "2026-01", url=url).stdout)
    assert dr["rows"][0]["billed"] == "100.00" and dr["rows"][0]["closing"] == "70.00"
    cr = json.loads(ledger(tmp, "report", "credits", "--period", "2026-01", "--customer", "acme", url=url).stdout)
    assert cr["rows"][0]["consumed"] == 30 and cr["rows"][0]["remaining"] == 70
    assert ledger(tmp, "verify", url=url).returncode == 0
    again = ledger(tmp, "close", "2026-01", url=url)
    assert again.returncode == 0 and "already closed" in again.stdout


def test_bad_input_exits_1_names_file_line_field_value_and_posts_nothing(cli_db):
    """A bad file exits 1 with file:line, field and value, no traceback, and nothing posted."""
    tmp, url = cli_db
    (tmp / "bad.jsonl").write_text(EVENTS + '{"id": "u9", "type": "usage.recorded", "occurred_at": "2026-01-05T00:00:00", "customer_id": "acme", "credits": 5}\n'
                                   '{"id": "t2", "type": "topup.purchased", "occurred_at": "2026-01-05T00:00:00Z", "customer_id": "acme", "topup_id": "top-2", "credits": 5, "amount": "1.001"}\n')
    r = ledger(tmp, "import", "bad.jsonl", url=url)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "bad.jsonl:3: field 'occurred_at': needs an RFC 3339 offset" in r.stderr
    assert "bad.jsonl:4: field 'amount': has 3 decimals; USD allows 2 (value: '1.001')" in r.stderr
    tb = json.loads(ledger(tmp, "report", "trial-balance", "--period", "2026-01", url=url).stdout)
    assert tb["rows"] == []


def test_usage_errors_exit_2_and_help_works(tmp_path, sqlite_url):
    """A malformed period is a usage error (exit 2); --help works for every group."""
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-13", url=sqlite_url)
    assert r.returncode == 2 and "2026-13" in r.stderr
    for args in (["--help"], ["report", "--help"], ["invoices", "--help"], ["import", "--help"]):
        r = ledger(tmp_path, *args, url=sqlite_url)
        assert r.returncode == 0 and "Usage:" in r.stdout


def test_uninitialised_database_is_a_clear_error(tmp_path):
    """Reports on a database that was never initialised say to run `ledger init` (exit 1)."""
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-01")
    assert r.returncode == 1 and "run `ledger init`" in r.stderr and "Traceback" not in r.stderr
    assert ledger(tmp_path, "init").returncode == 0
    assert ledger(tmp_path, "report", "revenue", "--period", "2026-01").returncode == 0


def test_dry_run_writes_nothing(cli_db):
    """--dry-run validates and prices, then rolls back."""
    tmp, url = cli_db
    r = ledger(tmp, "import", "--dry-run", "events.jsonl", "--format", "json", url=url)
    assert r.returncode == 0 and json.loads(r.stdout)["dry_run"] is True
    r = ledger(tmp, "import", "events.jsonl", "--format", "json", url=url)
    assert json.loads(r.stdout)["posted"] == 2


def test_invoice_render_produces_a_pdf_with_the_totals(cli_db):
    """`invoices render` writes a PDF whose text carries the number, tax and total."""
    from pypdf import PdfReader

    tmp, url = cli_db
    ledger(tmp, "import", "events.jsonl", url=url)
    r = ledger(tmp, "invoices", "render", "INV-2026-000001", "--out", "inv.pdf", url=url)
    assert r.returncode == 0, r.stderr
    text = "".join(p.extract_text() for p in PdfReader(tmp / "inv.pdf").pages)
    assert "INV-2026-000001" in text and "$108.25" in text and "$8.25" in text and "Acme AI" in text
    shown = json.loads(ledger(tmp, "invoices", "show", "INV-2026-000001", url=url).stdout)
    assert shown["total"] == "108.25"
    missing = ledger(tmp, "invoices", "show", "INV-2026-999999", url=url)
    assert missing.returncode == 1 and "no invoice 'INV-2026-999999'" in missing.stderr


def test_invoices_render_a_whole_period_into_a_folder(cli_db):
    """`invoices render --period P --out DIR` renders every document issued in P; a refund's
    credit note is among them and reads as a credit note."""
    from pypdf import PdfReader

    tmp, url = cli_db
    ledger(tmp, "import", "events.jsonl", url=url)
    (tmp / "refund.jsonl").write_text(json.dumps({
        "id": "r1", "type": "refund.issued", "occurred_at": "2026-01-20T00:00:00Z", "customer_id": "acme",
        "grant_ref": "top-1", "credits": 10}) + "\n")
    r = ledger(tmp, "import", "refund.jsonl", url=url)
    assert r.returncode == 0, r.stderr
    r = ledger(tmp, "invoices", "render", "--period", "2026-01", "--out", "docs", url=url)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp / "docs").iterdir()) == ["CN-2026-000001.pdf", "INV-2026-000001.pdf"]
    text = "".join(p.extract_text() for p in PdfReader(tmp / "docs" / "CN-2026-000001.pdf").pages)
    # 10 of 100 unused credits of a 100.00 top-up: 10.00 + 8.25% tax
    assert "Credit note" in text and "CN-2026-000001" in text and "$10.83" in text
    assert ledger(tmp, "invoices", "render", "--out", "x.pdf", url=url).returncode == 2
