"""`ledger invoices render --period` killed with SIGKILL on PostgreSQL: its render workers die
with it (the kernel kills them: PR_SET_PDEATHSIG), and no session of it is left idle in
transaction (the documents are read and the transaction ended before any worker starts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import COMPANY_CATALOG
import sqlalchemy as sa

DOCS = 80  # one top-up invoice per customer: enough for the render to run several seconds


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _sessions(url: str) -> list[tuple[int, str]]:
    """(pid, state) of the other sessions on the database of ``url``."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT pid, coalesce(state, '') FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
    engine.dispose()
    return [(int(p), s) for p, s in rows]


@pytest.mark.postgres
def test_sigkill_of_a_period_render_leaves_no_worker_and_no_open_transaction(pg_url, tmp_path):
    lines = []
    for i in range(DOCS):
        lines.append(json.dumps({"id": f"c{i}", "type": "customer.created", "occurred_at": "2026-03-01T00:00:00Z",
                                 "customer_id": f"cus{i}", "name": f"Customer {i}", "currency": "USD"}))
        lines.append(json.dumps({"id": f"t{i}", "type": "topup.purchased", "occurred_at": "2026-03-02T00:00:00Z",
                                 "customer_id": f"cus{i}", "topup_id": f"top{i}", "credits": 1000,
                                 "amount": "20.00"}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    base = [sys.executable, "-m", "ledger", "--database-url", pg_url, "--catalog", str(COMPANY_CATALOG)]
    r = subprocess.run([*base, "import", str(events)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "pdf"
    proc = subprocess.Popen([*base, "invoices", "render", "--period", "2026-03", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    # kill once the workers run and have written a few documents (the render is under way)
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        if len(list(out.glob("*.pdf"))) >= 4 and workers:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the render finished before it could be killed: raise DOCS"
    workers |= _children(proc.pid)
    assert workers, "no render worker was seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (any(_alive(w) for w in workers)
                                           or any(s == "idle in transaction" for _, s in _sessions(pg_url))):
        time.sleep(0.1)
    assert [w for w in workers if _alive(w)] == [], "render workers outlived the killed command"
    assert [s for s in _sessions(pg_url) if s[1] == "idle in transaction"] == []
    assert len(list(out.glob("*.pdf"))) < DOCS
    for w in workers:  # (a failed run: do not leave them behind)
        if _alive(w):
            os.kill(w, signal.SIGKILL)
