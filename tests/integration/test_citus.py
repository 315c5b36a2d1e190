"""The books on a Citus cluster (`make test-citus`): distributed by customer, they give what one
PostgreSQL gives.

The demo month (50 customers, 28,000 usage events of the real trace) is imported and closed
through the `ledger` command on two databases of the same coordinator: one distributed by
`ledger db distribute`, one left a plain PostgreSQL database. The seal, every report, the journal
export and `ledger verify` must agree byte for byte. Citus refuses joins between distributed tables
that are not on the distribution column unless repartition joins are on (they are off here), so
these commands passing also shows that every join they run is co-located by customer.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(os.environ.get("LEDGER_TEST_CITUS") != "1",
                       reason="needs the local Citus cluster: run `make test-citus`"),
]

LEDGER = str(Path(sys.executable).with_name("ledger"))
MONTH = "2026-10"
REPORTS = ("trial-balance", "deferred-revenue", "revenue", "credits", "waterfall", "ar-aging", "quarantine",
           "guarantees", "usage-alerts")


def _ledger(url: str, *args: str, catalog: Path | None = None) -> str:
    cmd = [LEDGER, "--database-url", url, *(["--catalog", str(catalog)] if catalog else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory) -> tuple[Path, list[Path]]:
    from ledger.demo import demo_catalog_path
    from ledger.demo_data import build_demo_scenario, write_demo_inputs

    folder = tmp_path_factory.mktemp("demo")
    return demo_catalog_path(), list(write_demo_inputs(build_demo_scenario(MONTH), folder))


@pytest.fixture(scope="module")
def two_books(demo_inputs, tmp_path_factory):
    """(distributed url, plain url): the demo month imported and closed on both."""
    from conftest import _cluster

    cluster = _cluster()
    catalog, inputs = demo_inputs
    suffix = os.getpid()
    names = (f"ledger_citus_dist_{suffix}", f"ledger_citus_plain_{suffix}")
    urls = []
    for name in names:
        cluster.drop_database(name)
        url = cluster.create_database(name)
        _ledger(url, "init")
        if name == names[0]:
            _ledger(url, "db", "distribute", "--shard-count", "8")
        _ledger(url, "import", *map(str, inputs), catalog=catalog)
        _ledger(url, "close", MONTH, catalog=catalog)
        urls.append(url)
    yield tuple(urls)
    for name in names:
        cluster.drop_database(name)


@contextlib.contextmanager
def _cluster_database(kind: str):
    """A fresh database on every node of the cluster (its URL), dropped afterwards."""
    from conftest import _cluster

    cluster = _cluster()
    name = f"ledger_citus_{kind}_{os.getpid()}"
    cluster.drop_database(name)
    try:
        yield cluster.create_database(name)
    finally:
        cluster.drop_database(name)


def _sql(url: str, query: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_the_books_are_distributed_by_customer_in_one_colocation_group(two_books):
    """Every table of a customer's books is hash-distributed by customer in one co-location group
    with shards on both workers; the chart and the period locks are reference tables; the
    company-wide tables stay on the coordinator; the plain database has nothing distributed."""
    from ledger.store.citus import DISTRIBUTED, LOCAL, REFERENCE

    dist, plain = two_books
    rows = {t: (m, col) for t, m, col in _sql(
        dist, "SELECT logicalrelid::regclass::text, partmethod::text, colocationid FROM pg_dist_partition")}
    assert {t for t, (m, _) in rows.items() if m == "h"} == set(DISTRIBUTED)
    assert len({rows[t][1] for t in DISTRIBUTED}) == 1
    assert {t for t in REFERENCE if rows.get(t, ("",))[0] == "n"} == set(REFERENCE)
    assert not set(LOCAL) & set(rows)
    ports = {p for (p,) in _sql(dist, "SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'journal_line'::regclass")}
    assert len(ports) == 2
    assert _sql(plain, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'journal_entry'") == [(0,)]
    again = json.loads(_ledger(dist, "db", "distribute", "--format", "json"))
    assert again["already_distributed"] is True


def test_the_close_seals_the_same_journal(two_books):
    """The close of the demo month on the cluster gives the seal of one PostgreSQL, entry for entry."""
    dist, plain = two_books
    query = "SELECT period, action, entries, journal_head, seal FROM period_close ORDER BY id"
    assert _sql(dist, query) == _sql(plain, query)
    assert _sql(dist, "SELECT seq, entry_id, hash FROM entry_seal ORDER BY seq") == \
        _sql(plain, "SELECT seq, entry_id, hash FROM entry_seal ORDER BY seq")
    assert _sql(dist, "SELECT entries FROM period_close")[0][0] > 1000


@pytest.mark.parametrize("report", REPORTS)
def test_reports_are_the_same_on_the_cluster(two_books, demo_inputs, report):
    """Each report of the month, as CSV, is byte for byte the one-PostgreSQL report."""
    dist, plain = two_books
    catalog = demo_inputs[0]
    args = ("report", report, "--period", MONTH, "--format", "csv")
    assert _ledger(dist, *args, catalog=catalog) == _ledger(plain, *args, catalog=catalog)


def test_export_and_verify_on_the_cluster(two_books, demo_inputs, tmp_path):
    """The journal export is the one-PostgreSQL export, byte for byte; verify passes on both."""
    dist, plain = two_books
    outs = []
    for url, name in ((dist, "dist"), (plain, "plain")):
        out = tmp_path / f"{name}.csv"
        _ledger(url, "export", "journal", "--format", "csv", "--out", str(out))
        outs.append(out.read_bytes())
        assert "ok" in _ledger(url, "verify", catalog=demo_inputs[0])
    assert outs[0] == outs[1] and len(outs[0]) > 100_000


def test_reopen_and_close_again_on_the_cluster(demo_inputs):
    """The demo month closed, reopened and closed again on a distributed database: the audit
    trail has close, reopen, close, and the second seal is the first (nothing was posted)."""
    catalog, inputs = demo_inputs
    with _cluster_database("reopen") as url:
        _ledger(url, "init")
        _ledger(url, "db", "distribute", "--shard-count", "4")
        _ledger(url, "import", *map(str, inputs), catalog=catalog)
        _ledger(url, "close", MONTH, catalog=catalog)
        _ledger(url, "reopen", MONTH, "--reason", "late invoice correction", catalog=catalog)
        _ledger(url, "close", MONTH, catalog=catalog)
        rows = _sql(url, "SELECT action, seal FROM period_close ORDER BY id")
        assert [a for a, _ in rows] == ["close", "reopen", "close"]
        assert rows[0][1] == rows[2][1]
        assert _sql(url, "SELECT status FROM accounting_period WHERE period = %s", MONTH) == [("closed",)]


def test_a_worker_added_later_takes_half_the_shards_and_the_books_hold(two_books, demo_inputs):
    """Books distributed on one worker; a second worker added and the shards rebalanced (logical
    replication moves whole co-location groups): the shards split over both workers, and the
    close gives the demo month's seal of one PostgreSQL, with verify ok."""
    import time

    catalog, inputs = demo_inputs
    from conftest import _cluster

    worker = _cluster().ports()[2]
    with _cluster_database("rebalance") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT citus_remove_node('127.0.0.1', %s)", (worker,))
        _ledger(url, "init")
        _ledger(url, "db", "distribute", "--shard-count", "4")
        _ledger(url, "import", *map(str, inputs), catalog=catalog)
        on = "SELECT count(*) FROM citus_shards WHERE nodeport = %s AND citus_table_type = 'distributed'"
        assert _sql(url, on, worker) == [(0,)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (worker,))
            conn.execute("SELECT citus_rebalance_start()")
            deadline = time.monotonic() + 300
            while conn.execute("SELECT state FROM citus_rebalance_status()").fetchone()[0] in ("scheduled", "running"):
                assert time.monotonic() < deadline, "rebalance still running after 300 s"
                time.sleep(1)
            assert conn.execute("SELECT state FROM citus_rebalance_status()").fetchone()[0] == "finished"
        shards = _sql(url, "SELECT count(*) FROM citus_shards WHERE citus_table_type = 'distributed'")[0][0]
        assert shards == 4 * _sql(url, "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'")[0][0]
        assert _sql(url, on, worker)[0][0] == shards // 2
        _ledger(url, "close", MONTH, catalog=catalog)
        assert _sql(url, "SELECT seal FROM period_close") == _sql(two_books[1], "SELECT seal FROM period_close")
        assert "ok" in _ledger(url, "verify", catalog=catalog)


def test_distribute_refuses_to_lose_a_trigger_of_someone_elses(demo_inputs):
    """A trigger the distribution would not re-create on the shards (here an audit trigger of the
    user's own on customer) is named and nothing is changed."""
    with _cluster_database("trigger") as url:
        _ledger(url, "init")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE FUNCTION crm_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
            conn.execute("CREATE TRIGGER crm_touch BEFORE UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION crm_touch()")
        done = subprocess.run([LEDGER, "--database-url", url, "db", "distribute"], capture_output=True, text=True)
        assert done.returncode == 1 and "crm_touch on customer" in done.stderr, done.stderr
        assert _sql(url, "SELECT count(*) FROM pg_dist_partition") == [(0,)]
        assert ("crm_touch",) in _sql(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")


def test_a_guard_on_a_shard_names_its_reason(two_books):
    """An unbalanced entry written by hand on the cluster is refused at COMMIT by the guard on its
    shard; Citus reports a failed commit and passes the guard's message on as a WARNING."""
    dist, _ = two_books
    notices: list[str] = []
    with psycopg.connect(dist) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        with pytest.raises(psycopg.Error, match="could not commit transaction"):
            with conn.transaction():
                conn.execute("INSERT INTO journal_entry (id, entry_date, occurred_at, kind, description, customer_id, "
                             "line_count) VALUES (99999999, '2026-11-02', now(), 'manual', 'raw', 'cus_raw', 1)")
                conn.execute("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
                             "VALUES (99999999, '1000', 'USD', 5, 0, 'cus_raw')")
    assert any("journal entry 99999999 does not balance in USD" in n for n in notices), notices
    assert _sql(dist, "SELECT count(*) FROM journal_entry WHERE id = 99999999") == [(0,)]


def test_distribute_is_one_transaction(demo_inputs):
    """A distribution Citus refuses half-way (a unique index without the customer, on a table
    distributed after others) changes nothing: no table distributed, the keys and guards as they
    were, exit 1 and the reason."""
    with _cluster_database("refused") as url:
        _ledger(url, "init")
        with psycopg.connect(url) as conn:
            conn.execute("CREATE UNIQUE INDEX usage_event_line_once ON usage_event (import_id, line)")
        before = _sql(url, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint ORDER BY 1")
        triggers = _sql(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1")
        done = subprocess.run([LEDGER, "--database-url", url, "db", "distribute"], capture_output=True, text=True)
        assert done.returncode == 1
        assert "rolled back, nothing changed" in done.stderr and "Traceback" not in done.stderr
        assert _sql(url, "SELECT count(*) FROM pg_dist_partition") == [(0,)]
        assert _sql(url, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint ORDER BY 1") == before
        assert _sql(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1") == triggers
