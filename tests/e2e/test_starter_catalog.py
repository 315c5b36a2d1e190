"""No silent placeholder seller: issuing documents needs a catalog with a company, and `ledger
init --catalog FILE` writes a commented starter catalog to fill in (docs/design.md §8.3).

Import and close refuse, exit 1, one line naming the file and the missing [company], no
traceback, before anything is posted, when there is no ledger.toml, when the catalog has no
[company] table, or when the starter's company is not filled in yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from ledger.catalog import load_catalog
from ledger.store.db import make_engine

EVENTS = "\n".join([
    '{"id": "c-1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", '
    '"name": "Acme AI", "currency": "USD"}',
    '{"id": "t-1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
    '"topup_id": "t-1", "pack": "pack_1000"}',
]) + "\n"


def ledger(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ledger", "--database-url", f"sqlite:///{cwd / 'l.db'}", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _counts(cwd: Path) -> tuple[int, int]:
    """(journal entries, invoices) in the books of ``cwd``."""
    engine = make_engine(f"sqlite:///{cwd / 'l.db'}")
    with engine.connect() as c:
        counts = (c.execute(sa.text("SELECT count(*) FROM journal_entry")).scalar_one(),
                  c.execute(sa.text("SELECT count(*) FROM invoice")).scalar_one())
    engine.dispose()
    return counts


def _refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_init_writes_a_starter_catalog_and_never_overwrites_it(tmp_path):
    """The starter has a company to fill in, a rate card, a plan and a pack; a second init
    refuses to overwrite the file, exit 1, and leaves it as it was."""
    r = ledger(tmp_path, "init", "--catalog", "ledger.toml")
    assert r.returncode == 0, r.stderr
    assert "starter catalog written: ledger.toml" in r.stdout
    text = (tmp_path / "ledger.toml").read_text(encoding="utf-8")
    assert "[company]" in text and "# [company.payment]" in text and "# tax_id" in text
    (tmp_path / "ledger.toml").write_text(text + "# my edits\n", encoding="utf-8")
    r = ledger(tmp_path, "init", "--catalog", "ledger.toml")
    _refused(r, "ledger.toml: already exists; not overwritten")
    assert (tmp_path / "ledger.toml").read_text(encoding="utf-8") == text + "# my edits\n"
    filled = (text.replace('name = ""  ', 'name = "Kite Labs, Inc."', 1)
              .replace("address = []", 'address = ["2 Pier St", "Oakland, CA 94607"]', 1))
    (tmp_path / "ledger.toml").write_text(filled, encoding="utf-8")
    catalog = load_catalog(tmp_path / "ledger.toml", required=True)
    assert catalog.company.name == "Kite Labs, Inc." and catalog.company.payment_terms_days == 30
    assert catalog.plan("starter") is not None and catalog.topup("pack_1000") is not None
    assert catalog.model.rate_card == {"EXTRACT_TEXT": 5}
    (tmp_path / "events.jsonl").write_text(EVENTS, encoding="utf-8")
    r = ledger(tmp_path, "import", "events.jsonl", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert _counts(tmp_path)[1] == 1


def test_import_and_close_refuse_without_a_company_before_posting(tmp_path):
    """No ledger.toml, a catalog without [company], the starter not filled in: exit 1 naming
    what is missing; nothing posted, no invoice numbered."""
    assert ledger(tmp_path, "init").returncode == 0
    (tmp_path / "events.jsonl").write_text(EVENTS.replace('"pack": "pack_1000"', '"credits": 1000, "amount": "20.00"'),
                                           encoding="utf-8")
    r = ledger(tmp_path, "import", "events.jsonl")
    _refused(r, "ledger.toml: not found", "[company]", "name and address", "ledger init --catalog ledger.toml")
    r = ledger(tmp_path, "close", "2026-01")
    _refused(r, "ledger.toml: not found", "closing a period", "[company]")
    (tmp_path / "rates.toml").write_text("[rate_card]\nEXTRACT_TEXT = 5\n", encoding="utf-8")
    r = ledger(tmp_path, "--catalog", "rates.toml", "import", "events.jsonl")
    _refused(r, "rates.toml: key 'company' is missing", "[company]")
    assert ledger(tmp_path, "init", "--catalog", "starter.toml").returncode == 0
    r = ledger(tmp_path, "--catalog", "starter.toml", "import", "events.jsonl")
    _refused(r, "starter.toml: key 'company.name'", "(value: '')")
    r = ledger(tmp_path, "--catalog", "absent.toml", "import", "events.jsonl")
    _refused(r, "absent.toml: catalog file not found")
    assert _counts(tmp_path) == (0, 0)
    r = ledger(tmp_path, "report", "trial-balance", "--period", "2026-01", "--format", "json")
    assert r.returncode == 0, r.stderr  # reading the books needs no company
