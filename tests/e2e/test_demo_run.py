"""`ledger demo` end to end (what `make demo` runs): the demo month is imported, closed and
sealed, and its close package is complete: every report, the journal, every document, the
close report and a manifest whose sha256 sums hold. About 15 s (the real Azure trace)."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner
from pypdf import PdfReader

from ledger.cli import cli
from ledger.demo import run_demo


def test_demo_month_closes_into_a_complete_package(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    stats = run_demo(tmp_path / "demo")
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
