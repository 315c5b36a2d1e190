"""The reads an export makes before its rows (`ledger.store.journal`: the chart, customers'
names, balances, the accounts used, the first entry date, the entries per date), written once as
SQL text in `ledger.store.journal_sql` and shared with the psycopg snapshot, on SQLite and
PostgreSQL: what they answer equals what the models and the entries themselves say
(`journal_entries`, read through SQLAlchemy Core), Python values of the same types on both.
The books are test_export's.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import sqlalchemy as sa
from test_export import books  # noqa: F401 (a fixture)

from ledger.store import journal as J
from ledger.store.models import Account, Customer

DAYS = [None, date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 6), date(2026, 1, 31), date(2026, 2, 1),
        date(2026, 2, 28)]


def _net(entries, keep) -> dict[tuple[str, str], int]:
    """{(account, commodity): debits - credits} over the lines of the entries whose date ``keep``
    accepts; pairs netting to zero kept."""
    net: dict[tuple[str, str], int] = {}
    for head, lines in entries:
        if keep(head[1]):
            for _, account, commodity, debit, credit, *_ in lines:
                net[(account, commodity)] = net.get((account, commodity), 0) + debit - credit
    return net


def _within(start: date | None, end: date | None):
    return lambda day: (start is None or day >= start) and (end is None or day <= end)


def test_the_chart_and_names_are_the_models(books):
    with books.session() as s:
        chart = J.chart(s)
        accounts = s.execute(sa.select(Account)).scalars()
        assert sorted(chart) == sorted((a.code, a.name, a.type, a.normal_balance) for a in accounts)
        assert chart and all(type(row) is tuple and all(type(v) is str for v in row) for row in chart)
        names = J.customer_names(s)
        assert names == {c.id: c.name for c in s.execute(sa.select(Customer)).scalars()} and len(names) > 1


def test_balances_are_the_entries_sums(books):
    with books.session() as s:
        entries = list(J.journal_entries(s))
        for day in DAYS:
            before = _net(entries, lambda d, day=day: day is None or d < day)
            through = _net(entries, lambda d, day=day: day is None or d <= day)
            for zeros in (False, True):
                for got, want in ((J.journal_balances(s, before=day, zeros=zeros), before),
                                  (J.journal_balances(s, through=day, zeros=zeros), through)):
                    assert got == {k: v for k, v in want.items() if zeros or v != 0}
                    assert all(type(v) is int for v in got.values())
        both = J.journal_balances(s, before=date(2026, 2, 28), through=date(2026, 2, 1), zeros=True)
        assert both == _net(entries, lambda d: d <= date(2026, 2, 1))
        assert J.journal_balances(s, zeros=True) != J.journal_balances(s)  # some pair nets to zero


def test_used_accounts_first_dates_and_counts_are_the_entries(books):
    with books.session() as s:
        entries = list(J.journal_entries(s))
        assert len({head[1] for head, _ in entries}) > 3
        for start in DAYS:
            for end in DAYS:
                within = _within(start, end)
                kept = [(head, lines) for head, lines in entries if within(head[1])]
                first = J.first_entry_date(s, start, end)
                assert first == min((head[1] for head, lines in kept if lines), default=None)
                assert first is None or type(first) is date
                assert J.used_accounts(s, start, end) == (sorted(_net(kept, within)), first)
                by_date = J.entries_by_date(s, start, end)
                assert by_date == sorted(Counter(head[1] for head, _ in kept).items())
                assert all(type(day) is date and type(n) is int for day, n in by_date)
