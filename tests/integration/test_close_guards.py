"""Closes and reopens only through their paths (docs/design.md §6.4-6.5, §9.2, §9.5).

The writer role of `ledger db roles` runs imports and closes; what `ledger verify` trusts (the
close records and seals, table period_close and entry_seal, and the period locks, table
accounting_period) must be written only by the close and the reopen. On PostgreSQL the writer
has no INSERT or UPDATE on those three tables: a close goes through ``ledger_close_period()``
(SECURITY DEFINER, migration 0010), which computes the seal in the server, and a reopen through
``ledger_reopen_period()``, which the writer may not run. Every forgery a writer could try is
refused with a permission error, and the real close, run as the writer, still works.

On both databases `verify` is not blinded by rows written behind the engine's back: a period
locked without a close record, or a close record in force for a period that is not locked, is a
break; and the database refuses a second close record for a period whose last record is a
close (one close per generation), or a reopen record for a period that is not closed.
"""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from builders import ACME, ev, usage
from conftest import _SUFFIX, company_catalog
from sqlmodel import Session

from ledger.services.closing import close_period, reopen_period
from ledger.services.verifying import verify_books
from ledger.store.db import make_engine
from ledger.store.models import EntrySeal, PeriodClose
from ledger.store.periods import closed_periods
from ledger.store.roles import apply_roles

HISTORY = "\n".join([
    ACME,
    ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="acme", topup_id="t-1", credits=1000,
       amount="20.00"),
    usage("u-1", "2026-01-10T10:00:00Z", 300),
    usage("u-2", "2026-01-20T10:00:00Z", 200),
    usage("u-3", "2026-02-03T10:00:00Z", 100),
])

_n = itertools.count()


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)


@pytest.fixture
def writer(pg_url, tmp_path):
    """(owner's Books with HISTORY posted, the writer's engine) on a fresh PostgreSQL database
    with the roles of `ledger db roles --login`; the roles are dropped afterwards."""
    from conftest import Books

    n = next(_n)
    w, a = f"ledger_cw_{_SUFFIX}_{n}", f"ledger_ca_{_SUFFIX}_{n}"
    owner = make_engine(pg_url)
    books = Books(pg_url, owner, company_catalog(), tmp_path)
    books.post(HISTORY)
    apply_roles(owner, w, a, login=True)
    engine = make_engine(_as(pg_url, w))
    yield books, engine
    engine.dispose()
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for role in (w, a):
            c.execute(sa.text(f'DROP OWNED BY "{role}"'))
            c.execute(sa.text(f'DROP ROLE "{role}"'))
    owner.dispose()


FORGERIES = {
    "a fake reopen": ("INSERT INTO period_close (period, action, at, by, reason) "
                      "VALUES ('2026-01', 'reopen', now(), 'mallory', 'nothing to see')", "period_close"),
    "a fake close": ("INSERT INTO period_close (period, action, at, by, seal, previous_seal, entries) "
                     "VALUES ('2026-02', 'close', now(), 'mallory', repeat('0', 64), repeat('0', 64), 0)",
                     "period_close"),
    "a lock without a close": ("INSERT INTO accounting_period (period, status) VALUES ('2026-02', 'closed')",
                               "accounting_period"),
    "a changed lock": ("UPDATE accounting_period SET closed_by = 'mallory', status = 'closed'", "accounting_period"),
    "an extra link": ("INSERT INTO entry_seal (close_id, seq, entry_id, hash) "
                      "SELECT id, 99, 1, repeat('f', 64) FROM period_close", "entry_seal"),
}


def _verification(engine, catalog):
    with Session(engine) as s:
        return verify_books(s, catalog)


@pytest.mark.postgres
def test_the_writer_cannot_forge_what_verify_trusts_and_still_closes(writer):
    """As the writer: every forgery is refused by privileges; the writer's own close of January
    and February works, through ledger_close_period(); reopening is refused to it (the owner
    reopens); a direct call of ledger_close_period() out of order is refused, and in order it
    makes a real close whose seal verify confirms."""
    books, engine = writer
    catalog = books.catalog
    with Session(engine) as s:
        assert close_period(s, catalog, "2026-01", closed_by="writer").record.entries == 3
    for what, (sql, table) in FORGERIES.items():
        with engine.begin() as c, pytest.raises(sa.exc.ProgrammingError) as err:
            c.execute(sa.text(sql))
        assert f"permission denied for table {table}" in str(err.value), what
    with engine.begin() as c, pytest.raises(sa.exc.ProgrammingError, match="permission denied for function"):
        c.execute(sa.text("SELECT ledger_reopen_period('2026-01', now(), 'mallory', 'nothing to see')"))
    for engine_ in (books.engine, engine):
        result = _verification(engine_, catalog)
        assert result.ok and result.sealed == 1, (result.violations, result.breaks)
    with books.session() as s:
        assert closed_periods(s) == ["2026-01"]
        assert s.execute(sa.select(sa.func.count()).select_from(PeriodClose)).scalar_one() == 1

    with Session(engine) as s:
        assert close_period(s, catalog, "2026-02", closed_by="writer").record.entries == 1
    with Session(engine) as s, pytest.raises(sa.exc.ProgrammingError, match="permission denied for function"):
        reopen_period(s, "2026-02", reason="the writer may not")
    with books.session() as s:
        assert reopen_period(s, "2026-02", reason="a correction", by="owner").action == "reopen"
    with Session(engine) as s:
        assert close_period(s, catalog, "2026-02", closed_by="writer").already_closed is False

    with engine.begin() as c, pytest.raises(sa.exc.DBAPIError, match="cannot close 2026-04: 2026-03 is still open"):
        c.execute(sa.text("SELECT ledger_close_period('2026-04', now(), 'mallory', '[]')"))
    with engine.begin() as c:
        c.execute(sa.text("SELECT ledger_close_period('2026-03', now(), 'mallory', '[]')"))
    result = _verification(books.engine, catalog)
    assert result.ok and result.sealed == 3, (result.violations, result.breaks)
    with books.session() as s:
        assert closed_periods(s) == ["2026-01", "2026-02", "2026-03"]
        assert [r.action for r in s.execute(sa.select(PeriodClose).order_by(PeriodClose.id)).scalars()] == [
            "close", "close", "reopen", "close", "close"]


def test_verify_is_not_blinded_by_rows_written_behind_the_engine(books):
    """As the tables' owner (SQLite: anyone): a reopen record without the period unlocked, or a
    period locked without a close, is a seal break, so `verify` fails instead of reporting that
    the seals of 0 closed periods hold."""
    books.post(HISTORY)
    books.close("2026-01")
    with books.engine.begin() as c:
        c.execute(sa.text("INSERT INTO period_close (period, action, at, by, reason) "
                          "VALUES ('2026-01', 'reopen', '2026-02-01 00:00:00', 'mallory', 'nothing to see')"))
    result = _verification(books.engine, books.catalog)
    assert not result.ok
    assert [(b.period, b.entry_id) for b in result.breaks] == [("2026-01", None)]
    assert "locked" in result.breaks[0].detail and "no close record" in result.breaks[0].detail


def test_a_period_locked_without_a_close_is_a_break(books):
    books.post(HISTORY)
    books.close("2026-01")
    with books.engine.begin() as c:
        c.execute(sa.text("INSERT INTO accounting_period (period, status) VALUES ('2026-02', 'closed')"))
    result = _verification(books.engine, books.catalog)
    assert [(b.period, b.entry_id) for b in result.breaks] == [("2026-02", None)]
    assert "no close record" in result.breaks[0].detail


def test_one_close_per_generation_and_no_reopen_of_an_open_period(books):
    """The database refuses a second close record for a period whose last record is a close,
    and a reopen record for a period that is not closed; the audit trail keeps its order."""
    books.post(HISTORY)
    books.close("2026-01")
    for sql in ("INSERT INTO period_close (period, action, at, by) VALUES ('2026-01', 'close', "
                "'2026-02-01 00:00:00', 'again')",
                "INSERT INTO period_close (period, action, at, by, reason) VALUES ('2026-02', 'reopen', "
                "'2026-02-01 00:00:00', 'x', 'never closed')"):
        with books.engine.begin() as c, pytest.raises(sa.exc.DatabaseError, match="is (already|not) closed"):
            c.execute(sa.text(sql))
    with books.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(PeriodClose)).scalar_one() == 1
        assert s.execute(sa.select(sa.func.count()).select_from(EntrySeal)).scalar_one() == 3


@pytest.mark.postgres
def test_0010_takes_back_the_writes_a_writer_held_and_roles_clean_up_row_security(pg_url):
    """A role granted, before 0010, what `ledger db roles` gave the writer then (INSERT on the
    three tables, UPDATE of accounting_period's status, row-level security policies) holds no
    write on them after the upgrade; `ledger db roles` then drops the old policies, disables
    row-level security and lets the writer run ledger_close_period() but not the reopen."""
    from alembic import command

    from ledger.store.db import alembic_config

    n = next(_n)
    w, a = f"ledger_mw_{_SUFFIX}_{n}", f"ledger_ma_{_SUFFIX}_{n}"
    engine = make_engine(pg_url)

    def can(privilege: str, table: str) -> bool:
        with engine.connect() as c:
            return c.execute(sa.text("SELECT has_table_privilege(:r, :t, :p) OR (:p = 'UPDATE' AND "
                                     "has_any_column_privilege(:r, :t, 'UPDATE'))"),
                             {"r": w, "t": table, "p": privilege}).scalar_one()

    try:
        with engine.begin() as c:
            command.downgrade(alembic_config(c), "0009")
            c.execute(sa.text(f'CREATE ROLE "{w}"'))
            c.execute(sa.text(f'GRANT SELECT, INSERT ON period_close, entry_seal, accounting_period TO "{w}"'))
            c.execute(sa.text(f'GRANT UPDATE (status, closed_at, closed_by) ON accounting_period TO "{w}"'))
            c.execute(sa.text("ALTER TABLE accounting_period ENABLE ROW LEVEL SECURITY"))
            c.execute(sa.text("CREATE POLICY ledger_read ON accounting_period FOR SELECT USING (true)"))
            c.execute(sa.text(f'CREATE POLICY "ledger_write_{w}" ON accounting_period TO "{w}" USING (true) '
                              "WITH CHECK (status = 'closed')"))
        assert can("INSERT", "period_close") and can("UPDATE", "accounting_period")
        with engine.begin() as c:
            command.upgrade(alembic_config(c), "head")
        for table in ("period_close", "entry_seal", "accounting_period"):
            assert not can("INSERT", table) and not can("UPDATE", table), table
            assert can("SELECT", table)
        apply_roles(engine, w, a)
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT relrowsecurity FROM pg_class WHERE relname = 'accounting_period'")
                             ).scalar_one() is False
            assert c.execute(sa.text("SELECT count(*) FROM pg_policy")).scalar_one() == 0
            run = {f: c.execute(sa.text(f"SELECT has_function_privilege(:r, '{f}(text, timestamptz, text, text)', "
                                        "'EXECUTE')"), {"r": w}).scalar_one()
                   for f in ("ledger_close_period", "ledger_reopen_period")}
        assert run == {"ledger_close_period": True, "ledger_reopen_period": False}
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            for role in (w, a):
                if c.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                    c.execute(sa.text(f'DROP OWNED BY "{role}"'))
                    c.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


@pytest.mark.postgres
def test_the_functions_take_the_posting_gate_of_the_engine(pg_url):
    """ledger_close_period() and ledger_reopen_period() take the advisory lock
    `ledger.store.events.posting_gate` takes (docs/design.md §6.6), and run with a search_path
    that ends with pg_temp (no temporary table can stand in for the ledger's)."""
    from ledger.store.events import GATE_KEY

    engine = make_engine(pg_url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT proname, prosrc, proconfig, prosecdef FROM pg_proc "
                                 "WHERE proname IN ('ledger_close_period', 'ledger_reopen_period')")).all()
    engine.dispose()
    assert len(rows) == 2
    for name, src, config, definer in rows:
        assert f"pg_advisory_xact_lock({GATE_KEY})" in src and definer, name
        assert [x for x in config if x.startswith("search_path=")][0].endswith("pg_temp"), config


# --------------------------------------------------------------------------- the server's chain
def _entries_strategy():
    """Entries with arbitrary text, as tests/integration/test_seals.py draws them."""
    from datetime import UTC, date

    from hypothesis import strategies as st

    special = '"\\\b\f\n\r\t\x01\x02\x1f\x7f\u2028é😀,\''
    char = st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), st.sampled_from(special))

    def text(size: int, nullable: bool = True):
        t = st.text(char, max_size=size)
        return st.one_of(st.none(), t) if nullable else t

    big = st.integers(1, 2**63 - 1)
    line = st.fixed_dictionaries({
        "account_code": text(16, False), "commodity": text(8, False), "debit": big, "credit": big,
        "customer_id": text(64), "grant_id": text(128), "invoice_number": text(32), "event_id": text(128),
        "debit_side": st.booleans()}).map(  # one positive side (the table's CHECK constraint)
        lambda ln: {k: v for k, v in ln.items() if k != "debit_side"} | ({"credit": 0} if ln["debit_side"] else {"debit": 0}))
    entry = st.fixed_dictionaries({
        "entry_date": st.dates(date(2026, 1, 1), date(2026, 1, 31)),
        "occurred_at": st.datetimes(timezones=st.just(UTC)),
        "kind": text(30, False), "description": text(60, False), "customer_id": text(64), "event_id": text(128),
        "import_id": st.one_of(st.none(), st.integers(0, 2**31 - 1)),
        "lines": st.lists(line, max_size=3)})
    return st.lists(entry, max_size=5)


@pytest.fixture
def pg_conn(pg_url):
    engine = make_engine(pg_url)
    raw = engine.raw_connection()
    yield raw.driver_connection
    raw.close()
    engine.dispose()


@pytest.mark.postgres
def test_the_server_seals_as_python_does(pg_conn):
    """ledger_close_period() stores, for entries with any text (quotes, backslashes, controls,
    non-ASCII), integers up to 2**63 - 1, NULLs, instants with and without microseconds, entries
    without lines and lines stored out of id order, the links and seal of the documented chain
    (`entry_digest_input`, sha256), entry by entry. Each example runs in a transaction rolled
    back afterwards, with the journal's triggers and foreign keys off (superuser)."""
    import hashlib

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ledger.store.seals import GENESIS, chain_start, entry_digest_input

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(entries=_entries_strategy(), seed=st.randoms(use_true_random=False))
    def check(entries, seed):
        line_id = iter(range(1, 1000))
        rows, lines = [], []
        for entry_id, e in enumerate(entries, start=1):
            rows.append({k: v for k, v in e.items() if k != "lines"} | {"id": entry_id, "line_count": len(e["lines"]) or 1})  # CHECK > 0; triggers off
            lines += [ln | {"id": next(line_id), "entry_id": entry_id} for ln in e["lines"]]
        seed.shuffle(lines)
        try:
            with pg_conn.cursor() as cur:
                cur.execute("SET LOCAL citus.propagate_set_commands = 'local'")  # on Citus the next SET reaches the shards too
                cur.execute("SET LOCAL session_replication_role = replica")
                for table, items in (("journal_entry", rows), ("journal_line", lines)):
                    if items:
                        cols = list(items[0])
                        cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) "
                                        f"VALUES ({', '.join(['%s'] * len(cols))})", [[i[c] for c in cols] for i in items])
                cur.execute("SELECT ledger_close_period('2026-01', now(), 'test', '[]')")
                close_id = cur.fetchone()[0]
                cur.execute("SELECT seq, entry_id, hash FROM entry_seal WHERE close_id = %s ORDER BY seq", (close_id,))
                stored = [tuple(r) for r in cur.fetchall()]
                cur.execute("SELECT seal FROM period_close WHERE id = %s", (close_id,))
                seal = cur.fetchone()[0]
        finally:
            pg_conn.rollback()
        h, expected = chain_start(GENESIS, "2026-01"), []
        for r in sorted(rows, key=lambda r: r["id"]):
            body = entry_digest_input(r, [ln for ln in lines if ln["entry_id"] == r["id"]])
            h = hashlib.sha256(h.encode("ascii") + b"\n" + body).hexdigest()
            expected.append((len(expected) + 1, r["id"], h))
        assert stored == expected
        assert seal == h

    check()
