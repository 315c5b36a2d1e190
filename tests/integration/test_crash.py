"""Crash safety of bulk imports on PostgreSQL (docs/design.md §6.6): `ledger import` killed with
SIGKILL at random moments leaves the books as if the chunk in flight never started; importing
the same file again finishes it, and every event is posted exactly once.

20 customers each hold a 1,000,000-credit commitment (no cap is reached); the stream has 24,000
usage events in time order, imported in chunks of 1,000 events."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from builders import COMPANY_CATALOG
import sqlalchemy as sa

N, CUSTOMERS, CHUNK = 24_000, 20, 1_000


def _ledger(url: str, *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "ledger", "--database-url", url, "--catalog", str(COMPANY_CATALOG), *args]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _books(url: str) -> tuple[int, int, int]:
    """(usage rows, distinct usage ids, credits consumed (9200))."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as c:
        rows, distinct = c.execute(sa.text("SELECT count(*), count(DISTINCT id) FROM usage_event")).one()
        consumed = c.execute(sa.text("SELECT coalesce(sum(credit - debit), 0) FROM journal_line "
                                     "WHERE account_code = '9200'")).scalar_one()
    engine.dispose()
    return int(rows), int(distinct), int(consumed)


def _staging(url: str) -> bool:
    """True while another connection's statement names the set-based import's staging tables."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as c:
        busy = c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                 "AND datname = current_database() AND state IN ('active', 'idle in transaction') "
                                 "AND query ~ 'usage_(raw|stage|bucket)'")).scalar_one()
    engine.dispose()
    return busy > 0


def _credits_of_usage_rows(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as c:
        total = c.execute(sa.text("SELECT coalesce(sum(credits), 0) FROM usage_event")).scalar_one()
    engine.dispose()
    return int(total)


@pytest.mark.postgres
@pytest.mark.parametrize("jobs", [1, 2])
def test_sigkill_at_random_points_then_reimport_is_exactly_once(pg_url, tmp_path, jobs):
    """With --jobs 2 the killed importer's workers die with it (their chunks in flight roll
    back): nothing more is posted after the kill."""
    setup = tmp_path / "setup.jsonl"
    lines = []
    for i in range(CUSTOMERS):
        lines.append(json.dumps({"id": f"c{i}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                                 "customer_id": f"cus{i}", "name": f"Customer {i}", "currency": "USD"}))
        lines.append(json.dumps({"id": f"k{i}", "type": "commitment.purchased", "occurred_at": "2026-01-01T00:00:00Z",
                                 "customer_id": f"cus{i}", "commitment_id": f"com{i}", "amount": "5000.00",
                                 "credits": 1_000_000, "term_start": "2026-01-01", "term_end": "2026-12-31"}))
    setup.write_text("\n".join(lines) + "\n")
    r = _ledger(pg_url, "import", str(setup))
    assert r.returncode == 0, r.stderr
    usage = tmp_path / "usage.csv"
    rows = ["event_id,customer_id,occurred_at,credits"]
    expected = 0
    for i in range(N):
        credits = i % 7 + 1
        expected += credits
        t = 86_400 * 10 + i * 60  # from 2026-01-11, one a minute
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1767225600 + t))
        rows.append(f"u{i},cus{i % CUSTOMERS},{stamp},{credits}")
    usage.write_text("\n".join(rows) + "\n")

    rng = random.Random(6)
    kills, points = 0, []
    for _ in range(4):
        # kill at a random point: once a random number of further chunks is committed, plus a
        # random fraction of a chunk's time, so the kill lands inside a chunk's transaction
        start = _books(pg_url)[0]
        target = start + rng.randint(1, 3) * CHUNK
        proc = _ledger(pg_url, "import", str(usage), "--chunk-size", str(CHUNK), "--jobs", str(jobs), wait=False)
        while proc.poll() is None and _books(pg_url)[0] < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        posted, distinct, consumed = _books(pg_url)
        points.append(posted)
        # whole chunks only (with --jobs 2, each worker's chunks are CHUNK / 2), each event once
        assert posted % (CHUNK // jobs) == 0 and posted == distinct, posted
        if jobs == 1:
            assert consumed == sum(i % 7 + 1 for i in range(posted))  # the chunks in file order, nothing else
        else:  # each worker's chunks in its customers' file order; the journal carries exactly those rows
            assert consumed == _credits_of_usage_rows(pg_url)
            time.sleep(1.0)
            assert _books(pg_url)[0] == posted  # no worker outlived the importer
        assert _ledger(pg_url, "verify").returncode == 0
    assert kills >= 3 and all(0 < p < N for p in points), points  # killed part-way, several times
    r = _ledger(pg_url, "import", str(usage), "--chunk-size", str(CHUNK), "--jobs", str(jobs), "--format", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["posted"] + summary["duplicates"] == N
    assert _books(pg_url) == (N, N, expected)
    verify = _ledger(pg_url, "verify")
    assert verify.returncode == 0, verify.stderr


@pytest.mark.postgres
def test_sigkill_of_a_set_based_import_posts_nothing_and_the_rerun_posts_all(pg_url, tmp_path):
    """A plain usage CSV without --chunk-size is imported set-based, in one transaction: killed
    at random points it leaves no usage at all, and the next run posts every event once."""
    setup = tmp_path / "setup.jsonl"
    setup.write_text("".join(json.dumps(e) + "\n" for i in range(CUSTOMERS) for e in (
        {"id": f"c{i}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
         "customer_id": f"cus{i}", "name": f"Customer {i}", "currency": "USD"},
        {"id": f"k{i}", "type": "commitment.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": f"cus{i}",
         "commitment_id": f"com{i}", "amount": "5000.00", "credits": 1_000_000, "term_start": "2026-01-01",
         "term_end": "2026-12-31"})))
    assert _ledger(pg_url, "import", str(setup)).returncode == 0
    usage = tmp_path / "usage.csv"
    usage.write_text("event_id,customer_id,occurred_at,credits\n" + "".join(
        f"u{i},cus{i % CUSTOMERS},{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(1768089600 + i * 60))},{i % 7 + 1}\n"
        for i in range(N)))
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = _ledger(pg_url, "import", str(usage), wait=False)
        # kill once the import's transaction is at work on its staging tables (seen from another
        # connection), plus a random part of a second: inside the transaction, wherever it is
        while proc.poll() is None and not _staging(pg_url):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if _books(pg_url) != (0, 0, 0):  # the kill came after the commit: all of it, never part
            assert _books(pg_url) == (N, N, sum(i % 7 + 1 for i in range(N)))
            break
        kills += 1
    assert kills >= 1
    r = _ledger(pg_url, "import", str(usage), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["posted"] + json.loads(r.stdout)["duplicates"] == N
    assert _books(pg_url) == (N, N, sum(i % 7 + 1 for i in range(N)))
    assert _ledger(pg_url, "verify").returncode == 0
