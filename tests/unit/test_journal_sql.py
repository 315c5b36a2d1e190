"""`ledger.store.journal_sql` without a database: every parameter a text names is given, and
none more; `colon_binds` writes them as SQLAlchemy's text() does; the module imports no
database library (the PostgreSQL CSV export imports it without SQLAlchemy)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import date

import pytest

from ledger.store import journal_sql as S

BOUNDS = [None, date(2026, 1, 31)]


def _reads():
    for a, b in itertools.product(BOUNDS, BOUNDS):
        for by_customer in (False, True):
            yield S.journal_balances_sql(before=a, through=b, by_customer=by_customer)
            yield S.used_accounts_sql(a, b, by_customer=by_customer)
            yield S.first_entry_date_sql(a, b, by_customer=by_customer)
        yield S.entries_by_date_sql(a, b)
    yield S.CHART, {}
    yield S.CUSTOMER_NAMES, {}


@pytest.mark.parametrize(("sql", "params"), list(_reads()))
def test_the_parameters_named_are_those_given(sql, params):
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)
    assert all(isinstance(v, date) for v in params.values())
    colons = S.colon_binds(sql)
    assert "%" not in colons and set(re.findall(r":(\w+)", colons)) == set(params)


def test_a_bound_adds_its_condition_and_a_join_only_when_needed():
    sql, params = S.journal_balances_sql(before=None, through=None, by_customer=True)
    assert "JOIN" not in sql and "WHERE" not in sql and params == {}
    sql, params = S.journal_balances_sql(before=date(2026, 2, 1), through=None, by_customer=True)
    assert "e.entry_date < %(before)s" in sql and "l.customer_id = e.customer_id" in sql
    assert params == {"before": date(2026, 2, 1)}
    sql, _ = S.used_accounts_sql(None, date(2026, 2, 1), by_customer=False)
    assert "e.entry_date <= %(end)s" in sql and "customer_id" not in sql
    assert S.first_entry_date_sql(None, None, by_customer=False)[0].count("WHERE") == 2  # the EXISTS only


def test_the_module_imports_no_database_library():
    code = ("import sys, ledger.store.journal_sql\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
