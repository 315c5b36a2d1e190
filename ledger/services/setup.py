"""Creating the books: the database schema migrated to head and the chart of accounts seeded
(docs/design.md §3, §8.3)."""

from __future__ import annotations

from ledger.store.db import init_database, make_engine


def init_books(url: str) -> None:
    """Create or migrate the database at ``url`` (Alembic upgrade head, one transaction) and seed
    the accounts that are missing; idempotent. Database errors pass through (e.g. permission
    denied for a role that may not create tables)."""
    engine = make_engine(url)
    try:
        init_database(engine)
    finally:
        engine.dispose()
