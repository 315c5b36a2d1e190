"""The join conditions of `ledger.store.keys` that are written as SQL text, for the statements
built without SQLAlchemy (`ledger.store.csv_rows`, `ledger.store.journal_sql`); `ledger.store.keys`
gives them too. Imports nothing."""

from __future__ import annotations


def entry_lines_sql(entry: str, line: str, *, by_customer: bool = True) -> str:
    """`ledger.store.keys.entry_lines` in SQL text, for the aliases ``entry`` and ``line``."""
    same = f" AND {line}.customer_id = {entry}.customer_id" if by_customer else ""
    return f"{line}.entry_id = {entry}.id{same}"


def line_grant_sql(line: str, grant: str) -> str:
    """`ledger.store.keys.line_grant` in SQL text, for the aliases ``line`` and ``grant``."""
    return f"{grant}.id = {line}.grant_id AND {grant}.customer_id = {line}.customer_id"
