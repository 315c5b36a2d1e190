"""Gap-free document numbers (``INV-2026-000001``), taken inside the posting's transaction.

A number is taken by locking the (series, year) row of ``document_sequence`` for the rest of
the transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), so numbers
are gap-free per series and year: a transaction that rolls back gives its number back. On a
cluster this row is one of the few company-wide rows every issuing transaction takes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from ledger.store.models import DocumentSequence


def take_number(session: Session, series: str, year: int) -> tuple[str, int]:
    """Reserve the next number of ``series`` in ``year``: ("INV-2026-000001", 1)."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DocumentSequence)
    session.execute(ins.values(series=series, year=year, last_number=0).on_conflict_do_nothing())
    key = (DocumentSequence.series == series) & (DocumentSequence.year == year)
    last = session.execute(sa.select(DocumentSequence.last_number).where(key).with_for_update()).scalar_one()
    number = last + 1
    session.execute(sa.update(DocumentSequence).where(key).values(last_number=number))
    return f"{series}-{year:04d}-{number:06d}", number
