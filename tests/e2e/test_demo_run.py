"""`ledger demo` end to end (what `make demo` runs): the demo month is imported, closed and
sealed, and its close package is complete: every report, the journal, every document, the
close report and a manifest whose sha256 sums hold; the invoice register ties to the trial
balance. About 15 s (the real Azure trace), run once for the module."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pypdf import PdfReader

from ledger.cli import cli
from ledger.core.money import to_major
from ledger.demo import run_demo
from ledger.store.db import make_engine


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(the demo's folder, the stats it printed), made once by `ledger demo`'s function."""
    tmp_path = tmp_path_factory.mktemp("demo-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SOURCE_DATE_EPOCH", raising=False)
        stats = run_demo(tmp_path / "demo")
    return tmp_path, stats


def test_demo_month_closes_into_a_complete_package(demo):
    tmp_path, stats = demo
    assert stats["invoices"] == 43 and stats["customers"] == 50
    package = tmp_path / "demo" / "close-2026-10"
    manifest = json.loads((package / "manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    for name in ("trial-balance", "deferred-revenue", "revenue", "credits", "ar-aging", "guarantees", "late-events",
                 "quarantine", "waterfall", "usage-alerts"):
        assert f"reports/{name}.csv" in files and f"reports/{name}.json" in files, name
    assert {"journal/journal.csv", "journal/journal.jsonl", "close-report.pdf"} <= files.keys()
    assert sum(p.startswith("invoices/") for p in files) == 43  # 42 invoices and the guarantee credit note
    for path, f in files.items():
        assert hashlib.sha256((package / path).read_bytes()).hexdigest() == f["sha256"], path
    assert manifest["close"]["entries"] == 1661 and len(manifest["close"]["seal"]) == 64
    quarantine = json.loads((package / "reports" / "quarantine.json").read_text())
    assert len(quarantine["rows"]) == 186  # the hard-cap customer's usage beyond its credits
    text = " ".join(PdfReader(package / "close-report.pdf").pages[0].extract_text().split())
    assert "Month-end close, 2026-10" in text and "267.50" in text and "2,762.21" in text  # EUR and USD net
    result = CliRunner().invoke(cli, ["--database-url", f"sqlite:///{tmp_path / 'demo' / 'demo.db'}", "verify"])
    assert result.exit_code == 0 and "seals of 1 closed period hold" in result.output, result.output


def _cli_json(db: str, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--database-url", db, *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# What settles receivables without a document, and what credit notes settle outside them (the
# tie-out of `ledger.services.documents.invoice_register`), per currency, int minor units.
_SETTLED_WITHOUT_DOCUMENT = """
SELECT l.commodity, e.kind, sum(l.credit - l.debit) FROM journal_line l
  JOIN journal_entry e ON e.customer_id = l.customer_id AND e.id = l.entry_id
 WHERE l.account_code = '1100' AND e.id NOT IN (SELECT entry_id FROM invoice WHERE entry_id IS NOT NULL)
 GROUP BY l.commodity, e.kind"""
_CREDIT_NOTES_OUTSIDE_RECEIVABLES = """
SELECT l.commodity, sum(l.credit - l.debit) FROM journal_line l
  JOIN invoice i ON i.customer_id = l.customer_id AND i.entry_id = l.entry_id AND i.kind = 'credit_note'
 WHERE l.account_code = '2300' OR (l.account_code = '2200' AND l.invoice_number = i.number)
 GROUP BY l.commodity"""


def test_the_invoice_register_nets_credit_notes_and_ties_to_the_trial_balance(demo):
    """`ledger invoices list`: net tax = 2400 Sales tax payable; net total = 1100 Accounts
    receivable + what settled receivables without a document (payments here) - credit notes
    settled outside receivables (the guarantee credit note, held as customer credit)."""
    tmp_path, _ = demo
    db = f"sqlite:///{tmp_path / 'demo' / 'demo.db'}"
    register = _cli_json(db, "invoices", "list")
    assert max(r["issue_date"] for r in register["rows"]) <= "2026-10-31"
    net = {t["currency"]: t for t in register["totals"] if t["kind"] == "net"}
    by_kind = {(t["currency"], t["kind"]): t for t in register["totals"]}
    for cur, t in net.items():  # the net row is the sum of the rows, credit notes negative
        rows = [r for r in register["rows"] if r["currency"] == cur]
        assert Decimal(t["total"]) == sum(Decimal(r["total"]) for r in rows)
        assert Decimal(t["total"]) == Decimal(by_kind[cur, "invoice"]["total"]) + Decimal(by_kind[cur, "credit_note"]["total"])
    assert Decimal(by_kind["EUR", "credit_note"]["total"]) == Decimal("-86.56")  # the guarantee credit note
    balances = {(r["account"], r["commodity"]): Decimal(r["debit"]) - Decimal(r["credit"])
                for r in _cli_json(db, "report", "trial-balance", "--period", "2026-10")["rows"]}
    engine = make_engine(db)
    with engine.connect() as c:
        settled: dict[str, int] = defaultdict(int)
        kinds = set()
        for cur, kind, amount in c.execute(sa.text(_SETTLED_WITHOUT_DOCUMENT)):
            settled[cur] += amount
            kinds.add(kind)
        outside = dict(c.execute(sa.text(_CREDIT_NOTES_OUTSIDE_RECEIVABLES)).all())
    engine.dispose()
    assert kinds == {"payment"}  # the demo month: no credit applied, void or reclass
    assert set(net) == {"EUR", "USD"}
    for cur, t in net.items():
        assert Decimal(t["tax"]) == -balances.get(("2400", cur), Decimal(0)), cur
        tie = balances.get(("1100", cur), Decimal(0)) + to_major(settled[cur], cur) - to_major(outside.get(cur, 0), cur)
        assert Decimal(t["total"]) == tie, (cur, t["total"], tie)
    assert Decimal(net["EUR"]["tax"]) == Decimal("720.18") and Decimal(net["EUR"]["total"]) == Decimal("4507.44")
