"""Revision 0019 (PostgreSQL): a journal line's entry and account are checked once per statement
by the lines' trigger, not by foreign keys; a trigger on the chart refuses to delete or re-code
an account that lines name (what the account key refused).

Raw SQL that bypasses the application, as tests/integration/test_database_guards.py.
"""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command

from ledger.store.db import alembic_config, make_engine

pytestmark = pytest.mark.postgres

_COLUMNS = "entry_id, account_code, commodity, debit, credit, customer_id"
_FOREIGN_KEYS = ("SELECT conname FROM pg_constraint WHERE conrelid = 'journal_line'::regclass AND contype = 'f' "
                 "ORDER BY conname")


@pytest.fixture
def pg(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def _entry(conn, customer: str | None = "cus_raw") -> int:
    return conn.execute(sa.text(
        "INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, line_count) "
        "VALUES ('2026-01-15', '2026-01-15 12:00:00+00', 'manual', 'raw SQL test', :c, 2) RETURNING id"),
        {"c": customer}).scalar_one()


def _write(engine, rows: list[tuple], how: str) -> None:
    """Write ``rows`` (the values of _COLUMNS; entry id None: an entry inserted first in the same
    transaction) to journal_line in one statement, INSERT or COPY, and commit; raises what
    psycopg raises."""
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cur:
            if any(row[0] is None for row in rows):
                new = cur.execute("INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id, "
                                  "line_count) VALUES ('2026-01-15', '2026-01-15 12:00:00+00', 'manual', 'raw', "
                                  "'cus_raw', %s) RETURNING id", (len(rows),)).fetchone()[0]
                rows = [(new if row[0] is None else row[0], *row[1:]) for row in rows]
            if how == "copy":
                with cur.copy(f"COPY journal_line ({_COLUMNS}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
            else:
                cur.execute(f"INSERT INTO journal_line ({_COLUMNS}) VALUES "
                            + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows)), [v for row in rows for v in row])
        raw.commit()
    finally:
        raw.close()


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT (SELECT count(*) FROM journal_entry), (SELECT count(*) FROM journal_line)")).one()


def _balanced(engine) -> int:
    """Commit a balanced entry (1000 / 2200) by raw SQL; returns its id."""
    with engine.begin() as c:
        e = _entry(c)
        c.execute(sa.text(f"INSERT INTO journal_line ({_COLUMNS}) VALUES (:e, '1000', 'USD', 5, 0, 'cus_raw'), "
                          "(:e, '2200', 'USD', 0, 5, 'cus_raw')"), {"e": e})
    return e


@pytest.mark.parametrize("how", ["insert", "copy"])
@pytest.mark.parametrize("customer", ["cus_raw", None])
def test_a_line_naming_a_missing_entry_is_refused(pg, how, customer):
    """A line naming an entry that does not exist is refused, and the statement writes nothing:
    with a customer by the composite key (customer, entry) of revision 0013, which runs first;
    without one (the key holds only lines that name one) by the statement trigger, naming it."""
    _balanced(pg)
    reason = ("violates foreign key constraint \"fk_journal_line_customer_id_journal_entry\"" if customer
              else "journal line names entry 999999, which does not exist")
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=reason):
        _write(pg, [(999999, "1000", "USD", 3, 0, customer), (999999, "2200", "USD", 0, 3, customer)], how)
    assert _counts(pg) == (1, 2)


@pytest.mark.parametrize("how", ["insert", "copy"])
def test_a_line_naming_an_account_not_in_the_chart_is_refused(pg, how):
    """A line naming an account the chart does not have is refused with its code; the entry
    written before it in the transaction is rolled back with it."""
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="journal line names account 9999, which is not in the chart"):
        _write(pg, [(None, "1000", "USD", 3, 0, "cus_raw"), (None, "9999", "USD", 0, 3, "cus_raw")], how)
    assert _counts(pg) == (0, 0)
    _write(pg, [(None, "1000", "USD", 3, 0, "cus_raw"), (None, "2200", "USD", 0, 3, "cus_raw")], how)
    assert _counts(pg) == (1, 2)


def test_an_account_lines_name_cannot_be_deleted_or_recoded(pg):
    """DELETE of an account that lines name, a change of its code and TRUNCATE of the chart are
    refused; its name may change, and an account no line names may go."""
    _balanced(pg)
    for statement in ("DELETE FROM account WHERE code = '2200'", "UPDATE account SET code = '2201' WHERE code = '2200'",
                      "TRUNCATE account CASCADE"):
        with pytest.raises(sa.exc.DBAPIError, match="account|chart") as refused:
            with pg.begin() as c:
                c.execute(sa.text(statement))
        assert refused.value.orig.sqlstate == "23503", statement
    with pg.begin() as c:
        c.execute(sa.text("UPDATE account SET name = 'Renamed' WHERE code = '2200'"))
        unused = c.execute(sa.text("SELECT code FROM account WHERE code NOT IN (SELECT account_code FROM journal_line) "
                                   "ORDER BY code LIMIT 1")).scalar_one()
        c.execute(sa.text("DELETE FROM account WHERE code = :a"), {"a": unused})
    with pg.connect() as c:
        assert c.execute(sa.text("SELECT name FROM account WHERE code = '2200'")).scalar_one() == "Renamed"


def test_deleting_an_account_waits_for_the_lines_that_name_it(pg):
    """Lines not yet committed lock their accounts: a DELETE of one waits for them (here: gives
    up at its lock timeout) and, once they commit, is refused."""
    with pg.connect() as a, pg.connect() as b:
        e = _entry(a)
        a.execute(sa.text(f"INSERT INTO journal_line ({_COLUMNS}) VALUES (:e, '1000', 'USD', 5, 0, 'cus_raw'), "
                          "(:e, '2200', 'USD', 0, 5, 'cus_raw')"), {"e": e})
        b.execute(sa.text("SET lock_timeout = '300ms'"))
        with pytest.raises(sa.exc.DBAPIError, match="lock timeout"):
            b.execute(sa.text("DELETE FROM account WHERE code = '2200'"))
        b.rollback()
        a.commit()
        with pytest.raises(sa.exc.DBAPIError, match="account 2200 is named by journal lines"):
            b.execute(sa.text("DELETE FROM account WHERE code = '2200'"))
        b.rollback()
    assert _counts(pg) == (1, 2)


def test_0019_down_and_up_keeps_the_journal_and_moves_the_checks(pg):
    """Down to 0018: the two foreign keys are back and the chart has no guard trigger; up again:
    the keys are gone, the composite key stays, and the statement trigger refuses in their place."""
    _balanced(pg)
    with pg.begin() as c:
        command.downgrade(alembic_config(c), "0018")
    with pg.connect() as c:
        assert c.execute(sa.text(_FOREIGN_KEYS)).scalars().all() == [
            "fk_journal_line_account_code_account", "fk_journal_line_customer_id_journal_entry",
            "fk_journal_line_entry_id_journal_entry"]
        assert not c.execute(sa.text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'account'::regclass "
                                     "AND NOT tgisinternal")).scalar_one()
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="violates foreign key constraint"):
        _write(pg, [(999999, "1000", "USD", 3, 0, None)], "insert")
    with pg.begin() as c:
        command.upgrade(alembic_config(c), "head")
    with pg.connect() as c:
        assert c.execute(sa.text(_FOREIGN_KEYS)).scalars().all() == ["fk_journal_line_customer_id_journal_entry"]
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="journal line names entry 999999"):
        _write(pg, [(999999, "1000", "USD", 3, 0, None)], "insert")
    with pytest.raises(sa.exc.DBAPIError, match="account 2200 is named by journal lines"):
        with pg.begin() as c:
            c.execute(sa.text("DELETE FROM account WHERE code = '2200'"))
    assert _counts(pg) == (1, 2)
