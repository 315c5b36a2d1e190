"""The reads of the journal an export makes before its rows (the chart, customers' names,
balances, the accounts used, the first entry date, the entries per date) as SQL text, built
here once and run by both readers: a Session (`ledger.store.journal`, through SQLAlchemy's
``text()``) and a psycopg snapshot (`ledger.store.pg.Snapshot`, without SQLAlchemy).

Each builder returns ``(sql, params)``: ``sql`` writes its parameters in psycopg's form
``%(name)s``; `colon_binds` gives the ``:name`` form of SQLAlchemy's ``text()``. ``params``
maps each name to a date (inclusive bounds unless said otherwise; None = open, no parameter).
The text is accepted by PostgreSQL and SQLite alike. ``by_customer``: an entry
joined to its lines by customer and entry id (`ledger.store.keys_sql.entry_lines_sql`).
Imports no SQLAlchemy and no driver.
"""

from __future__ import annotations

import re
from datetime import date

from ledger.store.keys_sql import entry_lines_sql

Read = tuple[str, dict[str, date]]
"""An SQL text with ``%(name)s`` parameters, and their values."""

CHART = "SELECT code, name, type, normal_balance FROM account"
"""Rows (code, name, type, normal balance): the chart of accounts, in no order."""

CUSTOMER_NAMES = "SELECT id, name FROM customer"
"""Rows (customer id, name), in no order."""

_BIND = re.compile(r"%\((\w+)\)s")


def colon_binds(sql: str) -> str:
    """``sql`` with every ``%(name)s`` parameter written ``:name`` (SQLAlchemy's ``text()``)."""
    return _BIND.sub(r":\1", sql)


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _bounds(**bounds: tuple[str, date | None]) -> tuple[list[str], dict[str, date]]:
    """The conditions of ``bounds`` (name=(condition with its parameter ``%(name)s``, value))
    whose value is not None, and their parameters."""
    kept = {name: (condition, value) for name, (condition, value) in bounds.items() if value is not None}
    return [condition for condition, _ in kept.values()], {name: value for name, (_, value) in kept.items()}


def _range(column: str, start: date | None, end: date | None) -> tuple[list[str], dict[str, date]]:
    """The conditions ``column`` in [start, end] and their parameters ``start`` and ``end``."""
    return _bounds(start=(f"{column} >= %(start)s", start), end=(f"{column} <= %(end)s", end))


def journal_balances_sql(*, before: date | None, through: date | None, by_customer: bool) -> Read:
    """Rows (account code, commodity, sum of debits - sum of credits: int minor units) per pair
    the lines of entries dated before ``before`` (exclusive) and through ``through`` use."""
    where, params = _bounds(before=("e.entry_date < %(before)s", before), through=("e.entry_date <= %(through)s", through))
    # every line has its entry (foreign key): no join without a date
    join = f" JOIN journal_entry e ON {entry_lines_sql('e', 'l', by_customer=by_customer)}" if where else ""
    return (f"SELECT l.account_code, l.commodity, sum(l.debit) - sum(l.credit) FROM journal_line l{join}"
            f"{_where(where)} GROUP BY l.account_code, l.commodity"), params


def used_accounts_sql(start: date | None, end: date | None, *, by_customer: bool) -> Read:
    """Rows (account code, commodity), in no order: the pairs the lines of entries dated in
    [start, end] use; without a bound, read from the lines alone (no join)."""
    where, params = _range("e.entry_date", start, end)
    join = f" JOIN journal_entry e ON {entry_lines_sql('e', 'l', by_customer=by_customer)}" if where else ""
    return f"SELECT DISTINCT l.account_code, l.commodity FROM journal_line l{join}{_where(where)}", params


def first_entry_date_sql(start: date | None, end: date | None, *, by_customer: bool) -> Read:
    """At most one row (entry_date): the first date in [start, end] of an entry with lines,
    found by walking the entries in date order."""
    where, params = _range("e.entry_date", start, end)
    has_line = f"EXISTS (SELECT 1 FROM journal_line l WHERE {entry_lines_sql('e', 'l', by_customer=by_customer)})"
    return f"SELECT e.entry_date FROM journal_entry e{_where([has_line, *where])} ORDER BY e.entry_date LIMIT 1", params


def entries_by_date_sql(start: date | None, end: date | None) -> Read:
    """Rows (entry_date, number of entries), dates ascending: every date in [start, end] with
    entries."""
    where, params = _range("entry_date", start, end)
    return (f"SELECT entry_date, count(*) FROM journal_entry{_where(where)} "
            "GROUP BY entry_date ORDER BY entry_date"), params
