"""``ledger db distribute``: the books of a PostgreSQL database spread over a Citus cluster by
customer (`ledger.store.citus`), in one transaction."""

from __future__ import annotations

from ledger.store.admin import is_postgres_url, public_url
from ledger.store.citus import DistributeError, DistributeFailed, Distribution, distribute
from ledger.store.db import open_engine

__all__ = ["DistributeError", "DistributeFailed", "Distribution", "distribute_books"]


def distribute_books(url: str, *, shard_count: int = 32) -> tuple[str, Distribution]:
    """Distribute the books at ``url`` (a Citus coordinator at schema head) by customer; returns
    the URL with its password hidden and what was done. Idempotent.

    shard_count: int >= 1, shards per distributed table.
    raises DistributeError (SQLite, no Citus, rows without a customer: nothing changed),
    DistributeFailed (Citus refused a step: rolled back, nothing changed), NotInitialisedError.
    """
    if not is_postgres_url(url):
        raise DistributeError(f"distributing needs PostgreSQL with Citus: {url} is SQLite")
    if shard_count < 1:
        raise DistributeError(f"shard count must be at least 1, not {shard_count}")
    engine = open_engine(url)
    try:
        return public_url(engine), distribute(engine, shard_count=shard_count)
    finally:
        engine.dispose()
