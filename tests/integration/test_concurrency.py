"""Concurrent posting on PostgreSQL (docs/design.md §6.6): four importer processes post usage for
the same customers at once against hard-capped grants. Each import locks its customers (SELECT
... FOR UPDATE in customer id order) before it reads their grants, so no credit is drawn twice,
nothing is lost, and nobody deadlocks.

Three customers hold 1,000 credits each (a top-up, no overage price: a hard cap). Each of the four
processes sends, per customer, 100 events of 5 credits of its own and the same 20 shared events
(identical in every file): 4 x 100 + 20 = 420 distinct events, 2,100 credits asked for 1,000
held. Exactly 200 events (1,000 credits) are posted per customer, the other 220 quarantined, and
the shared events count once.
"""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
import sqlalchemy as sa

CUSTOMERS = ("cus0", "cus1", "cus2")


from builders import import_in_process as _import


def _usage(eid: str, customer: str, minute: int) -> str:
    return json.dumps({"id": eid, "type": "usage.recorded", "customer_id": customer, "credits": 5,
                       "occurred_at": f"2026-01-10T{minute // 60:02d}:{minute % 60:02d}:00Z"})


@pytest.mark.postgres
def test_four_importers_never_draw_more_than_granted(pg_url, tmp_path):
    from ledger.store.db import make_engine

    setup = tmp_path / "setup.jsonl"
    lines = []
    for c in CUSTOMERS:
        lines.append(json.dumps({"id": f"c-{c}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                                 "customer_id": c, "name": c, "currency": "USD"}))
        lines.append(json.dumps({"id": f"t-{c}", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z",
                                 "customer_id": c, "topup_id": f"top-{c}", "credits": 1000, "amount": "50.00"}))
    setup.write_text("\n".join(lines) + "\n")
    _import(pg_url, str(setup))

    paths = []
    for w in range(4):
        rows = [_usage(f"w{w}-{c}-{i}", c, w * 100 + i) for i in range(100) for c in CUSTOMERS]
        rows += [_usage(f"shared-{c}-{i}", c, 600 + i) for i in range(20) for c in CUSTOMERS]
        p = tmp_path / f"w{w}.jsonl"
        p.write_text("\n".join(rows) + "\n")
        paths.append(str(p))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_import, args=(pg_url, p)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    engine = make_engine(pg_url)
    with engine.connect() as c:
        for cust in CUSTOMERS:
            def one(sql: str) -> int:
                return int(c.execute(sa.text(sql), {"c": cust}).scalar_one())

            outstanding = one("SELECT coalesce(sum(credit - debit), 0) FROM journal_line WHERE account_code = '9100' "
                              "AND commodity = 'CREDIT' AND customer_id = :c")
            consumed = one("SELECT coalesce(sum(credit - debit), 0) FROM journal_line WHERE account_code = '9200' "
                           "AND commodity = 'CREDIT' AND customer_id = :c")
            posted = one("SELECT count(*) FROM usage_event WHERE customer_id = :c AND entry_id IS NOT NULL")
            received = one("SELECT count(*) FROM usage_event WHERE customer_id = :c")
            quarantined = one("SELECT count(*) FROM quarantine WHERE customer_id = :c")
            assert (outstanding, consumed) == (0, 1000), cust  # every credit drawn once, none twice
            assert (posted, quarantined, received) == (200, 220, 420), cust  # posted + quarantined = sent
    engine.dispose()
    from sqlmodel import Session

    from ledger.store.invariants import check_all

    engine = make_engine(pg_url)
    with Session(engine) as s:
        assert check_all(s) == []
    engine.dispose()
