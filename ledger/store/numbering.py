"""Gap-free document numbers (``INV-2026-000001``), taken inside the posting's transaction.

A number is taken by locking the (series, year) row of ``document_sequence`` for the rest of
the transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), so numbers
are gap-free per series and year: a transaction that rolls back gives its numbers back. On a
cluster this row is one of the few company-wide rows every issuing transaction takes.

The row is read and locked once per transaction and series-year; the numbers after it are
counted in memory (the session's ``info``) and the last one is written back just before the
transaction commits (a ``before_commit`` hook on the session), in one statement. A savepoint
rolled back gives back the numbers taken inside it, as the row's update would have. An import
issuing 10,000 invoices thus makes three statements for numbering instead of 30,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from ledger.store.models import DocumentSequence

_INFO = "ledger.numbering"

Key = tuple[str, int]  # (series, year)


@dataclass
class _Taken:
    """The numbers taken in one (root) transaction: per series-year, the last one taken and the
    one stored in the row; snapshots of ``last`` at the start of each open savepoint."""

    transaction: object
    last: dict[Key, int] = field(default_factory=dict)
    stored: dict[Key, int] = field(default_factory=dict)
    savepoints: dict[int, dict[Key, int]] = field(default_factory=dict)


def take_number(session: Session, series: str, year: int) -> tuple[str, int]:
    """Reserve the next number of ``series`` in ``year``: ("INV-2026-000001", 1). The first
    number of a series-year in a transaction locks its row until the transaction ends (the row
    is created at 0 if missing); the row holds the last number taken once the transaction
    commits."""
    taken = _taken(session)
    key = (series, year)
    last = taken.last.get(key)
    if last is None:
        last = taken.stored[key] = _lock_row(session, series, year)
    number = last + 1
    taken.last[key] = number
    return f"{series}-{year:04d}-{number:06d}", number


def _lock_row(session: Session, series: str, year: int) -> int:
    """Create the row of (series, year) if missing, lock it, and return its last number."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DocumentSequence)
    session.execute(ins.values(series=series, year=year, last_number=0).on_conflict_do_nothing())
    key = (DocumentSequence.series == series) & (DocumentSequence.year == year)
    return session.execute(sa.select(DocumentSequence.last_number).where(key).with_for_update()).scalar_one()


def _taken(session: Session) -> _Taken:
    """The numbers taken in the session's current transaction (a fresh record for a new one),
    with the session's hooks installed on first use."""
    root = session.get_transaction()
    if root is None:  # begin now (as the row's statements would), so the record is this transaction's
        session.connection()
        root = session.get_transaction()
    taken = session.info.get(_INFO)
    if taken is None or taken.transaction is not root:
        taken = session.info[_INFO] = _Taken(root)
        open_savepoint = session.get_nested_transaction()
        while open_savepoint is not None and open_savepoint.nested:  # begun before this record
            taken.savepoints[id(open_savepoint)] = {}
            open_savepoint = open_savepoint.parent
    if not sa.event.contains(session, "before_commit", _write_back):
        sa.event.listen(session, "before_commit", _write_back)
        sa.event.listen(session, "after_transaction_create", _savepoint_begun)
        sa.event.listen(session, "after_soft_rollback", _savepoint_rolled_back)
    return taken


def _current(session: Session) -> _Taken | None:
    """The record of the session's current root transaction, if it took numbers."""
    taken = session.info.get(_INFO)
    if taken is None or taken.transaction is not session.get_transaction():
        return None
    return taken


def _write_back(session: Session) -> None:
    """before_commit: store the last number of every series-year taken in the transaction (a
    savepoint's release leaves it for the root commit)."""
    taken = _current(session)
    if taken is None or session.in_nested_transaction():
        return
    moved = [{"s": s, "y": y, "n": n} for (s, y), n in taken.last.items() if n != taken.stored.get((s, y))]
    if moved:
        t = DocumentSequence.__table__
        session.execute(sa.update(t).where((t.c.series == sa.bindparam("s")) & (t.c.year == sa.bindparam("y")))
                        .values(last_number=sa.bindparam("n")), moved)
        for row in moved:
            taken.stored[(row["s"], row["y"])] = row["n"]


def _savepoint_begun(session: Session, transaction) -> None:
    """after_transaction_create: remember the numbers taken when a savepoint begins."""
    taken = _current(session)
    if taken is not None and transaction.nested:
        taken.savepoints[id(transaction)] = dict(taken.last)


def _savepoint_rolled_back(session: Session, previous) -> None:
    """after_soft_rollback: a savepoint rolled back gives back the numbers taken inside it."""
    taken = _current(session)
    if taken is not None and previous.nested and id(previous) in taken.savepoints:
        taken.last = taken.savepoints.pop(id(previous))
