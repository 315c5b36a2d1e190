"""`ledger import` of a chunked input (``--chunk-size``, ``--jobs 2``) that parses but is refused:

- every problem the posting's checks would find (an unknown action, usage before its customer
  was created, an unknown pack or plan) is found by the first pass, before any chunk commits:
  nothing is posted and each problem names file, line, field and value;
- a refusal that only posting can find (a business rule of a later chunk) says exactly what was
  committed (chunks, events, from which line through which) and how to resume; re-running the
  same import once fixed posts every event exactly once.

SQLite with a small --chunk-size, PostgreSQL with --jobs 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.store.db import make_engine

CUSTOMERS, ROWS, CHUNK = 10, 6_000, 500


def _ledger(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ledger", "--database-url", url, "--catalog", str(tmp / "ledger.toml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=600)


def _usage_rows(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows, distinct = c.execute(sa.text("SELECT count(*), count(DISTINCT id) FROM usage_event")).one()
    engine.dispose()
    return int(rows), int(distinct)


@pytest.fixture
def setup(db_url, tmp_path):
    """Ten customers with 1,000,000 promotional credits each; the usage CSV of ROWS rows in time order."""
    (tmp_path / "ledger.toml").write_text(__import__("conftest").PLANS_CATALOG, encoding="utf-8")
    lines = []
    for i in range(CUSTOMERS):
        lines.append(json.dumps({"id": f"c{i}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                                 "customer_id": f"cus{i}", "name": f"Customer {i}", "currency": "USD"}))
        lines.append(json.dumps({"id": f"g{i}", "type": "credits.granted", "occurred_at": "2026-01-01T00:00:00Z",
                                 "customer_id": f"cus{i}", "grant_id": f"promo{i}", "credits": 1_000_000,
                                 "expires_at": "2027-01-01T00:00:00Z", "reason": "pilot"}))
    (tmp_path / "setup.jsonl").write_text("\n".join(lines) + "\n")
    r = _ledger(tmp_path, db_url, "import", "setup.jsonl")
    assert r.returncode == 0, r.stderr
    rows = ["event_id,customer_id,occurred_at,action,quantity"]
    for i in range(ROWS):
        stamp = f"2026-01-{2 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"
        rows.append(f"u{i},cus{i % CUSTOMERS},{stamp},EXTRACT_TEXT,{i % 3 + 1}")
    return tmp_path, db_url, rows


def _args(db_url: str) -> list[str]:
    return ["--chunk-size", str(CHUNK)] + (["--jobs", "2"] if db_url.startswith("postgresql") else [])


def test_every_problem_is_found_before_any_chunk_commits(setup):
    tmp, url, rows = setup
    rows[4000] = rows[4000].replace("EXTRACT_TEXT", "NOPE")  # line 4001: not in the rate card
    rows[5500] = rows[5500].replace("2026-01-05T", "2025-12-05T")  # line 5501: before cus0 was created
    (tmp / "usage.csv").write_text("\n".join(rows) + "\n")
    extra = [json.dumps({"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-06T00:00:00Z",
                         "customer_id": "cus1", "topup_id": "top1", "pack": "pack_nope"}),
             json.dumps({"id": "s1", "type": "subscription.started", "occurred_at": "2026-01-06T00:00:00Z",
                         "customer_id": "cus2", "plan": "platinum", "start_date": "2026-01-06"})]
    (tmp / "extra.jsonl").write_text("\n".join(extra) + "\n")
    r = _ledger(tmp, url, "import", "usage.csv", "extra.jsonl", *_args(url))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "4 problems in the input; nothing was posted" in r.stderr, r.stderr
    for where, fld, value in (("usage.csv:4001", "action", "'NOPE'"), ("usage.csv:5501", "occurred_at", "2025-12-05"),
                              ("extra.jsonl:1", "pack", "'pack_nope'"), ("extra.jsonl:2", "plan", "'platinum'")):
        assert re.search(rf"{re.escape(where)}: field '{fld}': .*\(value: .*{re.escape(value)}", r.stderr), (where, r.stderr)
    assert _usage_rows(url) == (0, 0)


def test_a_refusal_while_posting_says_what_was_committed_and_how_to_resume(setup):
    tmp, url, rows = setup
    (tmp / "usage.csv").write_text("\n".join(rows) + "\n")
    # a refund of a promotional (zero-cost) grant is refused when applied: no first pass can know
    refund = json.dumps({"id": "r1", "type": "refund.issued", "occurred_at": "2026-01-06T00:00:00Z",
                         "customer_id": "cus3", "grant_ref": "promo3", "credits": 10})
    (tmp / "later.jsonl").write_text(refund + "\n")
    r = _ledger(tmp, url, "import", "usage.csv", "later.jsonl", *_args(url))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "later.jsonl:1: field 'grant_ref'" in r.stderr, r.stderr
    committed, distinct = _usage_rows(url)
    assert committed == distinct and 0 < committed <= ROWS
    m = re.search(r"committed before the refusal: (\d+) events in (\d+) chunks", r.stderr)
    assert m, r.stderr
    assert int(m.group(1)) == committed  # exactly what the books hold
    if url.startswith("sqlite"):  # one process: chunks 1-12, the whole usage file
        assert committed == ROWS and int(m.group(2)) == ROWS // CHUNK
        assert "chunks 1-12 (usage.csv:2 through usage.csv:6001)" in r.stderr, r.stderr
        assert "not posted: chunk 13 (later.jsonl:1 through later.jsonl:1) and everything after it" in r.stderr
    else:  # two workers, each naming its chunks and the lines they reached
        assert len(re.findall(r"worker \d: chunks 1-\d+ \(\d+ events of \d+ customers, from usage\.csv:\d+ through "
                              r"usage\.csv:\d+\)", r.stderr)) == 2, r.stderr
    assert "run the same import again" in r.stderr and "duplicates" in r.stderr

    fixed = json.dumps({"id": "r1", "type": "topup.purchased", "occurred_at": "2026-01-06T00:00:00Z",
                        "customer_id": "cus3", "topup_id": "top-r1", "credits": 1000, "amount": "20.00"})
    (tmp / "later.jsonl").write_text(fixed + "\n")
    r = _ledger(tmp, url, "import", "usage.csv", "later.jsonl", *_args(url), "--format", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["posted"], summary["duplicates"]) == (ROWS + 1 - committed, committed)
    assert _usage_rows(url) == (ROWS, ROWS)
    assert _ledger(tmp, url, "verify").returncode == 0
