"""A close package that fails to be written (a PDF error, a full disk) after the close committed:
`ledger close P --out DIR` exits 1 with one clear line (no traceback), the period stays closed,
DIR holds no half-written package, and running the same command again writes the complete
package, identical to one written without the failure. A failed rewrite of an existing package
leaves that package as it was. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ACME, PRO, enrol, ev, usage

HISTORY = "\n".join([
    ACME, enrol(), PRO,
    ev("t-1", "topup.purchased", "2026-03-05T10:00:00Z", customer_id="acme", topup_id="t-1", pack="pack_1000"),
    usage("u-1", "2026-03-20T12:00:00Z", 15_000),
])

# Runs the CLI's entry point with one renderer replaced by one that fails.
FAILING = {
    "invoice": "import reports.pdf as m\n"
               "def boom(*a, **k):\n    raise RuntimeError('the PDF renderer failed')\n"
               "m.render_document_pdf = boom\n",
    "close-report": "import reports.close_report as m\n"
                    "def boom(*a, **k):\n    raise OSError(28, 'No space left on device')\n"
                    "m.close_report_pdf = boom\n",
}


@pytest.fixture
def books(make_books, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    b = make_books()
    b.post(HISTORY)
    (b.tmp / "ledger.toml").write_text(__import__("conftest").PLANS_CATALOG, encoding="utf-8")
    return b


def _ledger(books, *args: str, fail: str | None = None) -> subprocess.CompletedProcess:
    code = (FAILING[fail] if fail else "") + "from ledger.cli import main\nmain()\n"
    cmd = [sys.executable, "-c", code, "--database-url", books.url, "--catalog", str(books.tmp / "ledger.toml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=books.tmp, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _closed(books) -> bool:
    r = _ledger(books, "report", "trial-balance", "--period", "2026-03", "--format", "json")
    assert r.returncode == 0, r.stderr
    from ledger.store.periods import closed_periods

    with books.session() as s:
        return "2026-03" in closed_periods(s)


@pytest.mark.parametrize("fail", ["invoice", "close-report"])
def test_a_failed_package_is_written_again_by_the_same_command(books, tmp_path, fail):
    out = tmp_path / "pkg"
    r = _ledger(books, "close", "2026-03", "--out", str(out), fail=fail)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert "closed 2026-03" in r.stdout  # the close itself committed
    err = r.stderr.strip().splitlines()
    assert len(err) <= 3 and err[0].startswith("error: 2026-03 is closed, but its close package could not be written"), err
    assert ("the PDF renderer failed" if fail == "invoice" else "No space left on device") in r.stderr
    assert f"ledger close 2026-03 --out {out}" in r.stderr  # how to write it
    assert _closed(books)
    assert not (out / "manifest.json").exists()
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".pkg")] == []

    r = _ledger(books, "close", "2026-03", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "already closed" in r.stdout and "wrote the close package of 2026-03" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {p for p in _files(out) if p != "manifest.json"}

    again = tmp_path / "again"  # the same closed period, written without any failure
    assert _ledger(books, "close", "2026-03", "--out", str(again)).returncode == 0
    assert _files(out) == _files(again)


def test_a_failed_rewrite_leaves_the_previous_package_as_it_was(books, tmp_path):
    out = tmp_path / "pkg"
    assert _ledger(books, "close", "2026-03", "--out", str(out)).returncode == 0
    (out / "notes.txt").write_text("the controller's notes")  # not the package's: kept
    before = _files(out)
    r = _ledger(books, "close", "2026-03", "--out", str(out), fail="invoice")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert _files(out) == before
    (out / "invoices" / "INV-2026-000001.pdf").unlink()
    r = _ledger(books, "close", "2026-03", "--out", str(out))  # a rewrite repairs it
    assert r.returncode == 0, r.stderr
    assert _files(out) == before
