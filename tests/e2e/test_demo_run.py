"""`ledger demo` end to end (what `make demo` runs): three months (2026-08 to 2026-10) are
imported, closed and sealed in order, each with a complete close package: every report, the
journal, every document, the close report and a manifest whose sha256 sums hold; the October
report shows September beside it; the invoice register ties to the trial balance. About a
minute (the real Azure trace, three times), run once for the module."""

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

MONTHS = ("2026-08", "2026-09", "2026-10")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(the folder holding the demo's folder, the stats it returned), made once by `ledger demo`'s function."""
    tmp_path = tmp_path_factory.mktemp("demo-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SOURCE_DATE_EPOCH", raising=False)
        stats = run_demo(tmp_path / "demo")
    return tmp_path, stats


def test_demo_closes_three_months_into_complete_packages(demo):
    tmp_path, stats = demo
    assert tuple(stats["months"]) == MONTHS and stats["customers"] == 50
    assert stats["usage_events"] == 3 * 28_185
    seals = []
    for month in MONTHS:
        package = tmp_path / "demo" / f"close-{month}"
        assert stats["months"][month]["package"] == package
        manifest = json.loads((package / "manifest.json").read_text())
        files = {f["path"]: f for f in manifest["files"]}
        for name in ("trial-balance", "deferred-revenue", "revenue", "credits", "ar-aging", "guarantees",
                     "late-events", "quarantine", "waterfall", "usage-alerts"):
            assert f"reports/{name}.csv" in files and f"reports/{name}.json" in files, (month, name)
        assert {"journal/journal.csv", "journal/journal.jsonl", "close-report.pdf"} <= files.keys()
        assert sum(p.startswith("invoices/") for p in files) == stats["months"][month]["invoices"] > 0
        for path, f in files.items():
            assert hashlib.sha256((package / path).read_bytes()).hexdigest() == f["sha256"], path
        seals.append(manifest["close"])
        revenue = json.loads((package / "reports" / "revenue.json").read_text())
        streams = {(r["currency"], r["stream"]) for r in revenue["rows"] if r["amount"] != "0.00" and r["amount"] != "0"}
        assert {("USD", "usage"), ("USD", "subscription"), ("USD", "overage"), ("JPY", "usage"), ("EUR", "guarantee_credits")} <= streams
    assert [s["previous_seal"] for s in seals[1:]] == [s["seal"] for s in seals[:-1]]  # one chain
    october = tmp_path / "demo" / "close-2026-10"
    quarantine = json.loads((october / "reports" / "quarantine.json").read_text())
    assert len(quarantine["rows"]) > 0  # the hard-cap customer's usage beyond its credits
    credits = json.loads((october / "reports" / "credits.json").read_text())
    assert any(r["rolled_in"] not in ("0", 0) for r in credits["rows"])  # Professional credits rolled into October
    assert any(r["refunded"] not in ("0", 0) for r in credits["rows"])  # the refund
    text = " ".join(PdfReader(october / "close-report.pdf").pages[0].extract_text().split())
    assert "Month-end close, Oct 2026 (2026-10)" in text and "Sep 2026" in text
    assert "EUR" in text and "JPY" in text and "USD" in text
    result = CliRunner().invoke(cli, ["--database-url", f"sqlite:///{tmp_path / 'demo' / 'demo.db'}", "verify"])
    assert result.exit_code == 0 and "seals of 3 closed periods hold" in result.output, result.output


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
    last = max(r["issue_date"] for r in register["rows"])[:7]  # the October close bills November's plan months
    net = {t["currency"]: t for t in register["totals"] if t["kind"] == "net"}
    by_kind = {(t["currency"], t["kind"]): t for t in register["totals"]}
    for cur, t in net.items():  # the net row is the sum of the rows, credit notes negative
        rows = [r for r in register["rows"] if r["currency"] == cur]
        assert Decimal(t["total"]) == sum(Decimal(r["total"]) for r in rows)
        assert Decimal(t["total"]) == Decimal(by_kind[cur, "invoice"]["total"]) + Decimal(by_kind[cur, "credit_note"]["total"])
    assert Decimal(by_kind["EUR", "credit_note"]["total"]) < 0  # the guarantee credit notes
    balances = {(r["account"], r["commodity"]): Decimal(r["debit"]) - Decimal(r["credit"])
                for r in _cli_json(db, "report", "trial-balance", "--period", last)["rows"]}
    engine = make_engine(db)
    with engine.connect() as c:
        settled: dict[str, int] = defaultdict(int)
        kinds = set()
        for cur, kind, amount in c.execute(sa.text(_SETTLED_WITHOUT_DOCUMENT)):
            settled[cur] += amount
            kinds.add(kind)
        outside = dict(c.execute(sa.text(_CREDIT_NOTES_OUTSIDE_RECEIVABLES)).all())
    engine.dispose()
    assert kinds == {"payment"}, kinds  # the demo: no credit applied, void or reclass
    assert set(net) == {"EUR", "JPY", "USD"}
    for cur, t in net.items():
        assert Decimal(t["tax"]) == -balances.get(("2400", cur), Decimal(0)), cur
        tie = balances.get(("1100", cur), Decimal(0)) + to_major(settled[cur], cur) - to_major(outside.get(cur, 0), cur)
        assert Decimal(t["total"]) == tie, (cur, t["total"], tie)
