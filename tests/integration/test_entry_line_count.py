"""Revision 0018: every journal entry declares its line count (journal_entry.line_count).

Books written before it upgrade with every entry and line as it was and each entry's count of
lines; on PostgreSQL the upgraded books then refuse a line added to one of their entries.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic import command

from ledger.store.db import alembic_config

EVENTS = [
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "name": "One", "currency": "USD"},
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "grant_id": "promo", "credits": 100, "expires_at": "2027-03-01T00:00:00Z", "reason": "trial"},
    {"id": "u1", "type": "usage.recorded", "occurred_at": "2026-03-02T10:00:00Z", "customer_id": "cus_1", "credits": 30},
    {"id": "u2", "type": "usage.recorded", "occurred_at": "2026-03-03T10:00:00Z", "customer_id": "cus_1", "credits": 5},
]
_ENTRIES = "SELECT id, entry_date, occurred_at, kind, description, customer_id, event_id, import_id FROM journal_entry ORDER BY id"
_LINES = "SELECT * FROM journal_line ORDER BY id"


def _journal(c) -> tuple[list, list]:
    return [tuple(r) for r in c.execute(sa.text(_ENTRIES))], [tuple(r) for r in c.execute(sa.text(_LINES))]


def test_0018_counts_every_entrys_lines_and_keeps_the_journal(books):
    """Down to 0017 (no line_count) and up again: the same entries and lines, each entry's
    line_count its number of lines; on PostgreSQL a line added to an upgraded entry is refused."""
    books.post("\n".join(json.dumps(e) for e in EVENTS))
    with books.engine.begin() as c:
        before = _journal(c)
        command.downgrade(alembic_config(c), "0017")
    with books.engine.begin() as c:
        assert "line_count" not in {col["name"] for col in sa.inspect(c).get_columns("journal_entry")}
        assert _journal(c) == before
        command.upgrade(alembic_config(c), "head")
    with books.engine.connect() as c:
        assert _journal(c) == before and len(before[0]) >= 3
        counts = c.execute(sa.text(
            "SELECT e.id, e.line_count, (SELECT count(*) FROM journal_line l WHERE l.entry_id = e.id) "
            "FROM journal_entry e ORDER BY e.id")).all()
    assert all(declared == found > 0 for _, declared, found in counts), counts
    if not books.url.startswith("postgresql"):
        return
    entry = counts[-1][0]
    with pytest.raises(sa.exc.DBAPIError, match=f"journal entry {entry} already has its"):
        with books.engine.begin() as c:
            c.execute(sa.text("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
                              "VALUES (:e, '1000', 'USD', 1, 0, 'cus_1'), (:e, '2200', 'USD', 0, 1, 'cus_1')"),
                      {"e": entry})
    books.post(json.dumps({"id": "u3", "type": "usage.recorded", "occurred_at": "2026-03-04T10:00:00Z",
                           "customer_id": "cus_1", "credits": 2}))  # the writer posts on the upgraded books
