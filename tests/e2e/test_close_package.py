"""The close package (docs/design.md §9.6): reports, journal, documents, close-report.pdf and a
manifest with the sha256 of every file; closing the same month twice changes nothing, byte for
byte. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from builders import ACME, PRO, enrol, ev, usage

from ledger.cli import cli
from ledger.errors import PeriodOrderError
from reports.package import write_package

HISTORY = "\n".join([
    ACME, enrol(), PRO,
    ev("t-1", "topup.purchased", "2026-03-05T10:00:00Z", customer_id="acme", topup_id="t-1", pack="pack_1000"),
    usage("u-1", "2026-03-20T12:00:00Z", 15_000),
    ev("p-1", "payment.received", "2026-03-25T10:00:00Z", customer_id="acme", amount="100.00"),
])


@pytest.fixture
def books(make_books, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    b = make_books()
    b.post(HISTORY)
    (b.tmp / "ledger.toml").write_text(__import__("conftest").PLANS_CATALOG, encoding="utf-8")
    return b


def _close(books, out) -> str:
    result = CliRunner().invoke(cli, ["--database-url", books.url, "--catalog", str(books.tmp / "ledger.toml"),
                                      "close", "2026-03", "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_package_has_every_part_and_a_manifest_of_sha256(books, tmp_path):
    out = tmp_path / "pkg"
    assert "wrote the close package of 2026-03" in _close(books, out)
    manifest = json.loads((out / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    for name in ("trial-balance", "deferred-revenue", "revenue", "credits", "ar-aging", "guarantees", "late-events",
                 "quarantine"):
        assert {f"reports/{name}.csv", f"reports/{name}.json"} <= paths
    # March: the subscription invoice, the top-up, the overage invoice, the guarantee credit note
    assert {p for p in paths if p.startswith("invoices/")} == {
        "invoices/INV-2026-000001.pdf", "invoices/INV-2026-000002.pdf", "invoices/INV-2026-000003.pdf",
        "invoices/CN-2026-000001.pdf"}
    assert "close-report.pdf" in paths
    for f in manifest["files"]:
        data = (out / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    close = manifest["close"]
    assert close["entries"] > 0 and len(close["seal"]) == 64 and len(close["checks"]) == 6

    reader = PdfReader(out / "close-report.pdf")
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "Month-end close, Mar 2026 (2026-03)" in text and close["seal"] in text
    assert "invariant 6" in text and "DEFERRED REVENUE ROLLFORWARD" in text  # headings are upper-cased by CSS
    # March's new bill: 299.00 + the 20.00 pack + 9,000 overage credits x 0.12 = 1,399.00 -> 649.00 credited
    assert "Guarantee credits 4900 -649.00" in text
    assert len(reader.pages) == 3  # figures, aging and checks; trial balance and rollforward; revenue and charts
    chart_page = " ".join(reader.pages[-1].extract_text().split())
    assert "Recognised revenue by stream, USD" in chart_page and "Mar 2026" in chart_page
    assert reader.pages[-1].get_contents().get_data().count(b" re") >= 2  # the bars are drawn


def test_closing_twice_changes_nothing_byte_for_byte(books, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    _close(books, first)
    assert "already closed" in _close(books, second)
    assert _files(first) == _files(second)
    assert books.verify() == []


def test_a_package_needs_a_closed_period(books, tmp_path):
    with books.session() as s, pytest.raises(PeriodOrderError, match="not closed"):
        write_package(s, books.catalog, "2026-03", tmp_path / "x")
