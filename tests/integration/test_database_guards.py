"""The journal guards, proved with raw SQL that bypasses the application.

PostgreSQL: a deferred constraint trigger refuses an unbalanced entry (or one with no lines) at
COMMIT; triggers refuse UPDATE, DELETE and TRUNCATE on journal tables, and any line or entry
dated in a locked period (statement triggers over the rows each statement inserts). SQLite: append-only and the period lock by triggers.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from ledger.store.db import make_engine

pytestmark = []
# On Citus (`make test-citus`) the period lock is a row trigger on every shard: a statement is
# refused at its first row in a closed period rather than naming the earliest such date. And a
# deferred guard fires on the worker at COMMIT: Citus raises "could not commit transaction for
# shard N" and passes the guard's own message as a WARNING (tests/integration/test_citus.py reads it).
CITUS = os.environ.get("LEDGER_TEST_CITUS") == "1"


def _at_commit(reason: str) -> str:
    return "could not commit transaction for shard" if CITUS else reason


def _entry(conn, entry_date: str = "2026-01-15", lines: int = 2) -> int:
    """Insert an entry declaring ``lines`` lines; returns its id."""
    return conn.execute(sa.text(
        "INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, line_count) "
        "VALUES (:d, :t, 'manual', 'raw SQL test', 'cus_raw', :n) RETURNING id"),
        {"d": entry_date, "t": f"{entry_date} 12:00:00", "n": lines}).scalar_one()


def _line(conn, entry_id: int, account: str, debit: int, credit: int, commodity: str = "USD") -> None:
    conn.execute(sa.text(
        "INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
        "VALUES (:e, :a, :c, :d, :k, 'cus_raw')"),
        {"e": entry_id, "a": account, "c": commodity, "d": debit, "k": credit})


def _balanced_entry(engine) -> None:
    """Commit one balanced 5.00 USD entry by raw SQL."""
    with engine.begin() as c:
        e = _entry(c)
        _line(c, e, "1000", 500, 0)
        _line(c, e, "2200", 0, 500)


@pytest.fixture
def pg(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_pg_balanced_entry_commits(pg):
    """A balanced entry inserted by hand commits (the guard is not over-eager)."""
    with pg.begin() as c:
        e = _entry(c, lines=4)
        _line(c, e, "1000", 500, 0)
        _line(c, e, "2200", 0, 500)
        _line(c, e, "9000", 7, 0, "CREDIT")
        _line(c, e, "9100", 0, 7, "CREDIT")
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM journal_line")).scalar_one() == 4


@pytest.mark.postgres
@pytest.mark.parametrize("lines", [
    [("1000", 500, 0, "USD"), ("2200", 0, 499, "USD")],
    [("1000", 500, 0, "USD"), ("2200", 0, 500, "USD"), ("9000", 7, 0, "CREDIT")],
    [("1000", 500, 0, "USD"), ("2200", 0, 500, "EUR")],
], ids=["off-by-one-cent", "credit-side-missing", "two-currencies"])
def test_pg_refuses_an_unbalanced_entry_at_commit(pg, lines):
    """An entry that does not balance per commodity is refused at COMMIT by the deferred trigger."""
    with pytest.raises(sa.exc.DBAPIError, match=_at_commit("does not balance")):
        with pg.begin() as c:
            e = _entry(c, lines=len(lines))
            for account, d, k, commodity in lines:
                _line(c, e, account, d, k, commodity)
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM journal_entry")).scalar_one() == 0


@pytest.mark.postgres
def test_pg_refuses_an_entry_without_lines(pg):
    """An entry with no lines at all is refused at COMMIT."""
    with pytest.raises(sa.exc.DBAPIError, match=_at_commit("has no lines")):
        with pg.begin() as c:
            _entry(c)


@pytest.mark.postgres
@pytest.mark.parametrize("declared", [1, 3])
def test_pg_refuses_an_entry_without_the_lines_it_declares(pg, declared):
    """An entry whose lines balance but are not as many as its line_count is refused at COMMIT,
    with fewer lines or with more: the lines of an entry the transaction wrote itself are
    counted there (on Citus a row trigger refuses the line that makes one too many)."""
    more = "already has its 1 lines" if CITUS else "has 2 lines, not the 1 it declares"
    reason = _at_commit("has 2 lines, not the 3 it declares") if declared == 3 else more
    with pytest.raises(sa.exc.DBAPIError, match=reason):
        with pg.begin() as c:
            e = _entry(c, lines=declared)
            _line(c, e, "1000", 500, 0)
            _line(c, e, "2200", 0, 500)
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM journal_line")).scalar_one() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["one line", "a balanced pair", "copy", "after an entry of its own",
                                 "the own-entry setting forged"])
def test_pg_refuses_a_line_added_to_a_committed_entry(pg, how):
    """Once an entry has committed with its lines, no line can join it, even lines that keep it
    balanced: the statement inserting it is refused (the entry's own check ran at its COMMIT).
    Also in a transaction that writes an entry of its own first, or that sets the setting
    naming its first own entry by hand: the committed entry's row is not the transaction's."""
    _balanced_entry(pg)
    with pg.connect() as c:
        e = c.execute(sa.text("SELECT id FROM journal_entry")).scalar_one()
    with pytest.raises(Exception, match=f"journal entry {e} already has its 2 lines"):
        if how == "copy":
            raw = pg.raw_connection()
            try:
                with raw.driver_connection.cursor() as cur, cur.copy(
                        "COPY journal_line (entry_id, account_code, commodity, debit, credit, customer_id) FROM STDIN") as cp:
                    cp.write_row((e, "1000", "USD", 3, 0, "cus_raw"))
                    cp.write_row((e, "2200", "USD", 0, 3, "cus_raw"))
            finally:
                raw.close()
        else:
            with pg.begin() as c:
                if how == "after an entry of its own":
                    own = _entry(c)
                    _line(c, own, "1000", 7, 0)
                    _line(c, own, "2200", 0, 7)
                elif how == "the own-entry setting forged":
                    c.execute(sa.text("SELECT set_config('ledger.first_own_entry', '0', true)"))
                _line(c, e, "1000", 3, 0)
                if how == "a balanced pair":
                    _line(c, e, "2200", 0, 3)
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*), sum(debit) FROM journal_line")).one() == (2, 500)


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["checked early", "checked early, then deferred again", "checked in a savepoint rolled back"])
def test_pg_refuses_a_line_added_to_an_entry_checked_early(pg, how):
    """SET CONSTRAINTS ALL IMMEDIATE runs an entry's COMMIT check before the COMMIT: a line the
    transaction adds to that entry afterwards is counted by its own statement and refused, so
    no entry commits with more lines than it declares, or unbalanced. When the early check ran
    in a savepoint that is rolled back, it runs again at COMMIT and refuses the entry there."""
    # on Citus a row trigger counts every line as it is inserted
    at_commit = how == "checked in a savepoint rolled back" and not CITUS
    with pytest.raises(sa.exc.DBAPIError, match="does not balance in USD: debits 505 <> credits 500" if at_commit
                       else "already has its 2 lines"):
        with pg.begin() as c:
            e = _entry(c)
            _line(c, e, "1000", 500, 0)
            _line(c, e, "2200", 0, 500)
            if how == "checked in a savepoint rolled back":
                c.execute(sa.text("SAVEPOINT early"))
            c.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
            if how == "checked in a savepoint rolled back":
                c.execute(sa.text("ROLLBACK TO SAVEPOINT early"))
            elif how == "checked early, then deferred again":
                c.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
            _line(c, e, "1000", 5, 0)
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM journal_line")).scalar_one() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE journal_line SET debit = debit + 1",
    "UPDATE journal_entry SET entry_date = '2026-02-01'",
    "DELETE FROM journal_line",
    "DELETE FROM journal_entry",
    "TRUNCATE journal_line CASCADE",
    "TRUNCATE journal_entry CASCADE",
])
def test_pg_journal_is_append_only(pg, statement):
    """UPDATE, DELETE and TRUNCATE on journal tables are refused by triggers."""
    _balanced_entry(pg)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with pg.begin() as c:
            c.execute(sa.text(statement))
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT sum(debit) FROM journal_line")).scalar_one() == 500


@pytest.mark.postgres
def test_pg_refuses_postings_in_a_locked_period(pg):
    """An entry, or a line of an open-period entry's twin, dated in a closed period is refused."""
    with pg.begin() as c:
        c.execute(sa.text("INSERT INTO accounting_period (period, status) VALUES ('2026-01', 'closed')"))
    with pytest.raises(sa.exc.DBAPIError, match="period 2026-01 is closed"):
        with pg.begin() as c:
            e = _entry(c, "2026-01-31")
            _line(c, e, "1000", 1, 0)
            _line(c, e, "2200", 0, 1)
    with pg.begin() as c:  # the next period is open
        e = _entry(c, "2026-02-01")
        _line(c, e, "1000", 1, 0)
        _line(c, e, "2200", 0, 1)


@pytest.mark.postgres
def test_pg_line_trigger_checks_the_period_of_its_entry(pg):
    """A line added to an entry whose period was locked meanwhile is refused by the line trigger."""
    with pg.begin() as c:
        e = _entry(c, "2026-01-10")
        _line(c, e, "1000", 1, 0)
        _line(c, e, "2200", 0, 1)
        c.execute(sa.text("INSERT INTO accounting_period (period, status) VALUES ('2026-01', 'closed')"))
        with pytest.raises(sa.exc.DBAPIError, match="period 2026-01 is closed"):
            with c.begin_nested():
                _line(c, e, "1000", 1, 0)


@pytest.mark.postgres
def test_pg_period_lock_judges_every_row_of_a_statement(pg):
    """The period lock runs once per statement (migration 0009) and still judges each of its
    rows: entries of several dates in one INSERT, or lines of several entries in one INSERT, are
    refused as a whole when any one of them falls in a closed period (the error names the
    earliest such date), and COPY is held to the same rule; rows in open periods alone pass."""
    with pg.begin() as c:
        locked_entry = _entry(c, "2026-01-20")
        _line(c, locked_entry, "1000", 1, 0)
        _line(c, locked_entry, "2200", 0, 1)
        c.execute(sa.text("INSERT INTO accounting_period (period, status) VALUES ('2026-01', 'closed')"))
    entries = ("INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, line_count) VALUES "
               "('2026-02-01', '2026-02-01 12:00+00', 'manual', 'a', 'cus_raw', 2), "
               "('2026-01-31', '2026-01-31 12:00+00', 'manual', 'b', 'cus_raw', 2), "
               "('2026-01-05', '2026-01-05 12:00+00', 'manual', 'c', 'cus_raw', 2)")
    earliest = "" if CITUS else ": posting dated 2026-01-05 refused"
    with pytest.raises(sa.exc.DBAPIError, match="period 2026-01 is closed" + earliest):
        with pg.begin() as c:
            c.execute(sa.text(entries))
    # the first row of each statement goes to an entry of an open period that still takes lines
    # (made in the same transaction), so the refusal can only come from a later row
    with pytest.raises(sa.exc.DBAPIError, match="period 2026-01 is closed: posting dated 2026-01-20 refused"):
        with pg.begin() as c:
            room = _entry(c, "2026-02-05")
            c.execute(sa.text(
                "INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) VALUES "
                f"({room}, '1000', 'USD', 2, 0, 'cus_raw'), ({locked_entry}, '1000', 'USD', 2, 0, 'cus_raw'), "
                f"({room}, '2200', 'USD', 0, 2, 'cus_raw'), ({locked_entry}, '2200', 'USD', 0, 2, 'cus_raw')"))
    raw = pg.raw_connection()
    try:
        with pytest.raises(Exception, match="period 2026-01 is closed"):
            with raw.driver_connection.cursor() as cur:
                room = cur.execute(
                    "INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, line_count) "
                    "VALUES ('2026-02-06', '2026-02-06 12:00+00', 'manual', 'd', 'cus_raw', 2) RETURNING id").fetchone()[0]
                with cur.copy("COPY journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
                              "FROM STDIN") as copy:
                    copy.write_row((room, "1000", "USD", 3, 0, "cus_raw"))
                    copy.write_row((locked_entry, "1000", "USD", 3, 0, "cus_raw"))
        raw.driver_connection.rollback()
    finally:
        raw.close()
    with pg.begin() as c:  # a new entry of the open period takes its lines in one statement
        fresh = _entry(c, "2026-02-04")
        c.execute(sa.text("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
                          f"VALUES ({fresh}, '1000', 'USD', 4, 0, 'cus_raw'), ({fresh}, '2200', 'USD', 0, 4, 'cus_raw')"))
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM journal_entry")).scalar_one() == 2  # the refused rolled back
        assert c.execute(sa.text("SELECT count(*), sum(debit) FROM journal_line")).one() == (4, 5)


@pytest.fixture
def lite(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("statement", [
    "UPDATE journal_line SET debit = debit + 1",
    "UPDATE journal_entry SET kind = 'x'",
    "DELETE FROM journal_line",
    "DELETE FROM journal_entry",
])
def test_sqlite_journal_is_append_only(lite, statement):
    """On SQLite, triggers refuse UPDATE and DELETE on journal tables."""
    _balanced_entry(lite)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with lite.begin() as c:
            c.execute(sa.text(statement))


def test_sqlite_refuses_postings_in_a_locked_period(lite):
    """On SQLite, a trigger refuses entries dated in a closed period."""
    with lite.begin() as c:
        c.execute(sa.text("INSERT INTO accounting_period (period, status) VALUES ('2026-01', 'closed')"))
    with pytest.raises(sa.exc.DBAPIError, match="period is closed"):
        with lite.begin() as c:
            _entry(c, "2026-01-31")


def test_posting_path_refuses_unbalanced_and_locked(db_url):
    """The one write path checks balance per commodity and the period lock before writing."""
    from datetime import date, datetime, timezone

    from sqlmodel import Session

    from ledger.errors import PeriodLockedError, UnbalancedEntryError
    from ledger.store.models import AccountingPeriod, JournalEntry
    from ledger.core.entries import EntryDraft
    from ledger.store.writer import insert_entries as post

    engine = make_engine(db_url)
    t = datetime(2026, 1, 5, tzinfo=timezone.utc)
    with Session(engine) as s:
        bad = EntryDraft(date(2026, 1, 5), t, "manual", "unbalanced").dr("1000", "USD", 100).cr("2200", "USD", 99)
        with pytest.raises(UnbalancedEntryError, match="USD: debits 100 != credits 99"):
            post(s, [bad])
        s.add(AccountingPeriod(period="2026-01", status="closed"))
        s.flush()
        ok = EntryDraft(date(2026, 1, 5), t, "manual", "balanced").dr("1000", "USD", 100).cr("2200", "USD", 100)
        with pytest.raises(PeriodLockedError, match="period 2026-01 is closed"):
            post(s, [ok])
        s.rollback()
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == 0
    engine.dispose()


@pytest.mark.postgres
def test_pg_line_statements_read_their_entries_by_key(pg):
    """The lines' statement trigger looks each entry it checks up by its key: a statement adding
    the lines of 60 entries (a group commit's) reads those entries, not the whole journal (5,000
    entries here, which the planner's join scanned whole), so its check costs the same at any
    size of the books."""
    if CITUS:
        pytest.skip("on Citus the guards are row triggers of their own (ledger.store.citus)")
    with pg.begin() as c:
        c.execute(sa.text(
            "INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, line_count) "
            "SELECT '2026-01-15', '2026-01-15 12:00:00+00', 'manual', 'bulk', 'cus_raw', 2 FROM generate_series(1, 5000)"))
        c.execute(sa.text(
            "INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
            "SELECT id, a, 'USD', d, k, 'cus_raw' FROM journal_entry, (VALUES ('1000', 1, 0), ('2200', 0, 1)) v(a, d, k)"))
    with pg.begin() as c:
        c.execute(sa.text("ANALYZE journal_entry, journal_line"))
    scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'journal_entry'"
    with pg.begin() as c:
        group = [_entry(c) for _ in range(60)]
        before = c.execute(sa.text(scans)).scalar_one()
        c.execute(sa.text(
            "INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
            "SELECT e, a, 'USD', d, k, 'cus_raw' FROM unnest(CAST(:group AS integer[])) e, "
            "(VALUES ('1000', 5, 0), ('2200', 0, 5)) v(a, d, k)"), {"group": group})
        assert c.execute(sa.text(scans)).scalar_one() == before
