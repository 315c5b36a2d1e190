"""Usage rows as stored (migration 0017): the event's fields, where it came from as import batch,
file number and line, and no content hash.

A usage event's content is its fields (id, customer, instant, credits or action and quantity,
cost), so the hash an id is compared by is computed from the stored row (`content_hash` of the
event the row gives back, its instant in UTC as every usage hash is: `ledger.event_schemas`), and
its source, ``FILE:LINE``, is the batch's file number ``file_index`` (its place in
``import_batch.sources``) and ``line``. A row whose batch does not give its source back (no
batch, a file not among its sources, a row converted from older books) keeps it in
``usage_source``.

Every statement here names rows by id and, where it joins, by customer too, so it runs
co-located where the books are distributed by customer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from ledger.events import UsageRecorded, content_hash
from ledger.store.models import ImportBatch, UsageEvent, UsageSource

FIELDS = ("id", "customer_id", "occurred_at", "credits", "action", "quantity", "cost")
"""The columns of a usage row that give back its event (`event_of`), in this order."""


def event_of(event_id: str, customer_id: str, occurred_at: datetime, credits: int, action: str | None,
             quantity: int | None, cost: str | None) -> UsageRecorded:
    """The ``usage.recorded`` event a stored row gives back (its values in the order of
    `FIELDS`): ``credits`` stored for an ``action`` are the priced units, not the event's."""
    return UsageRecorded.model_construct(id=event_id, type="usage.recorded",
                                         occurred_at=occurred_at.astimezone(timezone.utc), customer_id=customer_id,
                                         credits=None if action is not None else int(credits), action=action,
                                         quantity=None if quantity is None else int(quantity), cost=cost)


def stored_hash(values: Sequence[Any]) -> str:
    """The content hash (sha256 hex) of the event of a stored row (values in `FIELDS` order)."""
    return content_hash(event_of(*values))


def place(files: Sequence[str], source: str) -> tuple[int, int]:
    """(file_index, line) of ``source`` (``FILE:LINE``) in an import batch over ``files``.
    raises ValueError when FILE is not one of them."""
    file, _, line = source.rpartition(":")
    return files.index(file), int(line)


def source_of(files: Sequence[str], file_index: int, line: int) -> str:
    """``FILE:LINE``: where a usage row came from (the inverse of `place`)."""
    return f"{files[file_index]}:{line}"


def batch_files(session: Session, import_ids: Iterable[int | None]) -> dict[int, list[str]]:
    """import batch id -> its sources (the file names, in order) for ``import_ids``."""
    wanted = sorted({i for i in import_ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(sa.select(ImportBatch.id, ImportBatch.sources).where(ImportBatch.id.in_(wanted)))
    return {i: json.loads(sources) for i, sources in rows}


def stored_facts(session: Session, rows: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    """(content hash, source) of each of ``rows``: the `FIELDS` values, then import_id,
    file_index, line and the kept source (`UsageSource`; None unless the row has one)."""
    files = batch_files(session, (r[7] for r in rows))
    out = []
    for r in rows:
        kept = r[10]  # the batch does not give it back
        out.append((stored_hash(r[:7]), kept if kept is not None else source_of(files[r[7]], r[8], r[9])))
    return out


def stored_columns(usage: Any = UsageEvent, legacy: Any = UsageSource) -> list[Any]:
    """The columns `stored_facts` reads, for a query that outer-joins ``legacy`` (`UsageSource`)
    on `kept_join`."""
    return [*(getattr(usage, f) for f in FIELDS), usage.import_id, usage.file_index, usage.line, legacy.source]


def kept_join(usage: Any = UsageEvent, legacy: Any = UsageSource) -> sa.ColumnElement[bool]:
    """A usage row and its kept source (`UsageSource`): (customer, id)."""
    return sa.and_(legacy.id == usage.id, legacy.customer_id == usage.customer_id)


def stored_usage_facts(session: Session, where: sa.ColumnElement[bool]) -> dict[str, tuple[str, str]]:
    """id -> (content hash, source) of the usage rows ``where`` selects."""
    q = (sa.select(*stored_columns()).select_from(UsageEvent)
         .outerjoin(UsageSource, kept_join()).where(where))
    rows = [tuple(r) for r in session.execute(q)]
    return {r[0]: facts for r, facts in zip(rows, stored_facts(session, rows))}
