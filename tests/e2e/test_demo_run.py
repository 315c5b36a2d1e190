"""`ledger demo` end to end (what `make demo` runs): three months (2026-08 to 2026-10) are
imported, closed and sealed in order, each with a complete close package: every report, the
journal, every document, the close report and a manifest whose sha256 sums hold; the October
report shows September beside it. About a minute (the real Azure trace, three times)."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner
from pypdf import PdfReader

from ledger.cli import cli
from ledger.demo import run_demo

MONTHS = ("2026-08", "2026-09", "2026-10")


def test_demo_closes_three_months_into_complete_packages(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    stats = run_demo(tmp_path / "demo")
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
