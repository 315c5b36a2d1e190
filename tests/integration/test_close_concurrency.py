"""The close against concurrent writers (docs/design.md §6.4, §6.6).

- Two closes of the same month started together: exactly one closes (one close record, every
  entry sealed once, the period-end steps posted once); the other reports "already closed",
  as a second close run after the first does.
- A writer touching every customer (an import, or API calls one usage event each: the
  pipelined path) and the close of the month before it, started together, four times in a row
  (PostgreSQL): neither dies with a deadlock (the lock order of §6.6), both finish, and the
  books verify afterwards.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import traceback

import pytest
import sqlalchemy as sa
from builders import ev, usage
from sqlmodel import Session

from ledger.services.verifying import verify_books
from ledger.store.models import EntrySeal, Invoice, PeriodClose
from ledger.store.periods import closed_periods

SUBSCRIBED = "\n".join([
    ev("c-acme", "customer.created", "2026-01-01T00:00:00Z", customer_id="acme", name="Acme AI", currency="USD"),
    ev("sub-1", "subscription.started", "2026-01-01T00:00:00Z", customer_id="acme", plan="starter",
       start_date="2026-01-01"),
    usage("u-1", "2026-01-10T12:00:00Z", 1300),
])


def _close_at(url: str, catalog, barrier, results: list, i: int) -> None:
    """Close January in this thread, with its own engine, once both threads are ready."""
    from ledger.services.closing import close_period
    from ledger.store.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as s:
            s.execute(sa.text("SELECT 1"))  # connected before the barrier
            s.rollback()
            barrier.wait(30)
            results[i] = close_period(s, catalog, "2026-01", closed_by=f"closer {i}")
    except BaseException as exc:  # reported by the test
        results[i] = "".join(traceback.format_exception(exc))
    finally:
        engine.dispose()


def test_two_closes_at_once_one_wins_the_other_is_already_closed(make_books):
    """January with a subscription (its close bills February) and overage: two closes at a
    barrier. One close record, one February bill, one overage invoice, every January entry
    sealed once, and the books verify."""
    books = make_books()
    books.post(SUBSCRIBED)
    results: list = [None, None]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=_close_at, args=(books.url, books.catalog, barrier, results, i))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [r for r in results if isinstance(r, str) or r is None], results
    assert sorted(r.already_closed for r in results) == [False, True]
    winner = next(r for r in results if not r.already_closed)
    with books.session() as s:
        assert closed_periods(s) == ["2026-01"]
        assert s.execute(sa.select(sa.func.count()).select_from(PeriodClose)).scalar_one() == 1
        assert s.execute(sa.select(sa.func.count()).select_from(EntrySeal)).scalar_one() == winner.record.entries
        kinds = sorted(s.execute(sa.select(Invoice.category)).scalars())
        assert kinds == ["overage", "subscription", "subscription"], kinds  # January's bill, February's, overage
    with books.session() as s:
        result = verify_books(s, books.catalog)
    assert result.ok and result.sealed == 1, (result.violations, result.breaks)


CUSTOMERS = 150
MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")


def _setup(tmp_path) -> str:
    lines = []
    for c in range(CUSTOMERS):
        cid = f"cus{c:04d}"
        lines.append(ev(f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=cid,
                        currency="USD"))
        lines.append(ev(f"k-{cid}", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id=cid,
                        commitment_id=f"com-{cid}", amount="1200.00", credits=100_000, term_start="2026-01-01",
                        term_end="2026-12-31"))
        lines.append(usage(f"u0-{cid}", "2026-01-15T12:00:00Z", 10, cid))
    path = tmp_path / "setup.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _usage_file(tmp_path, month: str) -> str:
    """Two usage events per customer in ``month``, in time order."""
    rows = [json.loads(usage(f"u-{month}-{k}-{c}", f"{month}-{10 + k:02d}T12:00:00Z", 5, f"cus{c:04d}"))
            for k in range(2) for c in range(CUSTOMERS)]
    path = tmp_path / f"usage-{month}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def _run(url: str, what: str, arg: str, barrier) -> None:
    """In a child process, once the other process is ready too: import the file ``arg``
    ("import"), post its events one API call each ("api"), or close the period ``arg``
    ("close"). A failure exits non-zero with its traceback on stderr."""
    from ledger.api import Ledger
    from conftest import company_catalog
    from ledger.services.closing import close_period
    from ledger.services.importing import import_files
    from ledger.store.db import make_engine

    catalog = company_catalog()
    if what == "api":
        events = [json.loads(line) for line in open(arg, encoding="utf-8")]
        with Ledger(url, catalog) as books:
            barrier.wait(60)
            for e in events:
                books.record_usage(e["id"], customer_id=e["customer_id"], occurred_at=e["occurred_at"],
                                   credits=e["credits"])
        return
    engine = make_engine(url)
    with Session(engine) as s:
        s.execute(sa.text("SELECT 1"))
        s.rollback()
        barrier.wait(60)
        if what == "import":
            import_files(s, catalog, [arg])
        else:
            close_period(s, catalog, arg)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["import", "api"])
def test_a_writer_during_the_close_never_deadlocks(pg_url, tmp_path, writer):
    """Four rounds: the next month's usage for every customer (imported, or one API call per
    event) and the close of a month, started at a barrier. Both exit 0 every time; every event
    is posted; invariants and seals hold."""
    from builders import import_in_process

    from conftest import company_catalog
    from ledger.store.db import make_engine

    import_in_process(pg_url, _setup(tmp_path))
    ctx = mp.get_context("spawn")
    for i, month in enumerate(MONTHS):
        nxt = MONTHS[i + 1] if i + 1 < len(MONTHS) else "2026-05"
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_run, args=(pg_url, writer, _usage_file(tmp_path, nxt), barrier)),
                 ctx.Process(target=_run, args=(pg_url, "close", month, barrier))]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        assert codes == [0, 0], f"round {i} ({month}): exit codes {codes} ({writer}, close)"
    engine = make_engine(pg_url)
    with Session(engine) as s:
        assert closed_periods(s) == list(MONTHS)
        used = s.execute(sa.text("SELECT count(*) FROM usage_event WHERE entry_id IS NOT NULL")).scalar_one()
        assert used == CUSTOMERS * (1 + 2 * len(MONTHS))
    with Session(engine) as s:
        result = verify_books(s, company_catalog())
    engine.dispose()
    assert result.ok and result.sealed == len(MONTHS), (result.violations, result.breaks)
