"""What an import reads and writes besides the posting itself (docs/design.md §6): its import
batch row, and the first pass of a chunked import over the stored books.

``ledger.services.importing`` runs the import and controls its transactions; everything here
runs in the caller's transaction and never commits or rolls back.

The first pass on PostgreSQL stages every event of the input with COPY into a temporary table
(``stage_input``), then checks with joins there and against the stored events: ids given twice
with different content (``staged_input_conflicts``), customers neither stored nor created by
the input (``staged_unknown_customers``), ids already posted with different content
(``staged_book_conflicts``), and counts each customer's events (``staged_loads``). The staged
tables are dropped with the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store import usage_rows
from ledger.store.db import chunks, copy_rows, is_postgres
from ledger.store.models import Customer, ImportBatch


def books_key(session: Session) -> str:
    """The database's key in the process's kept books (`ledger.store.books.BOOKS`): its URL."""
    return str(session.get_bind().url)


def connect_url(session: Session) -> str:
    """The URL of ``session``'s database with its password, for a worker process's own connection."""
    return session.get_bind().url.render_as_string(hide_password=False)


def open_batch(session: Session, sources: Sequence[str], duplicates: int) -> int:
    """Insert the import batch row of a run over ``sources`` (file names, or "api"), with its
    ``duplicates`` count and zero postings so far; returns its id."""
    # Core statements, not the ORM: an API call posts one event, and the unit of work's
    # bookkeeping for this one row cost more than the INSERT itself
    return session.execute(sa.insert(ImportBatch).values(
        sources=json.dumps(list(sources)), posted=0, duplicates=duplicates, quarantined=0, late=0)
        .returning(ImportBatch.id)).scalar_one()


def finish_batch(session: Session, batch_id: int, *, posted: int, quarantined: int, late: int) -> None:
    """Record on import batch ``batch_id`` how many events it posted, quarantined and posted late."""
    session.execute(sa.update(ImportBatch).where(ImportBatch.id == batch_id).values(
        posted=posted, quarantined=quarantined, late=late))


def known_customers(session: Session, ids: Sequence[str]) -> set[str]:
    """The stored customers among ``ids``."""
    known: set[str] = set()
    for chunk in chunks(ids, 500):
        known.update(session.execute(sa.select(Customer.id).where(Customer.id.in_(chunk))).scalars())
    return known


def analyze_after_bulk_load(session: Session) -> bool:
    """On PostgreSQL, refresh the planner statistics of the tables a bulk import fills (without
    them the planner still sees the tables as small and picks nested loops for reports and
    exports over them); True if it ran (the caller commits), False elsewhere."""
    if not is_postgres(session):
        return False
    session.execute(sa.text("ANALYZE journal_entry, journal_line, usage_event, credit_grant"))
    return True


_STAGE = """CREATE TEMPORARY TABLE import_stage (
    id text NOT NULL, digest char(16) NOT NULL, file integer NOT NULL, line integer NOT NULL,
    customer_id text, created boolean NOT NULL) ON COMMIT DROP"""

# each id's first occurrence (what later lines and the books are compared with), sorted once
_FIRST = """CREATE TEMPORARY TABLE import_first ON COMMIT DROP AS
    SELECT DISTINCT ON (id) id, digest, file, line FROM import_stage ORDER BY id, file, line"""

# an id given twice with different content: every later line that differs from the first
_INPUT_CONFLICTS = """
    SELECT s.file, s.line, s.id, f.file, f.line FROM import_stage s JOIN import_first f USING (id)
    WHERE s.digest <> f.digest"""

# a customer that is neither in the books nor created by the input: its first line (NOT IN, not a
# correlated NOT EXISTS: Citus runs the stored ids as a subquery of their own beside the local table)
_UNKNOWN_CUSTOMERS = """
    SELECT DISTINCT ON (s.customer_id) s.file, s.line, s.customer_id FROM import_stage s
    WHERE s.customer_id IS NOT NULL AND NOT s.created
      AND NOT EXISTS (SELECT 1 FROM import_stage c WHERE c.created AND c.customer_id = s.customer_id)
      AND s.customer_id NOT IN (SELECT k.id FROM customer k)
    ORDER BY s.customer_id, s.file, s.line"""

# an id already posted as a business event with different content
_BOOK_CONFLICTS = """
    SELECT f.file, f.line, f.id, b.source FROM import_first f JOIN event b ON b.id = f.id
    WHERE substr(b.content_hash, 1, 16) <> f.digest"""

# the usage rows of staged ids, with what gives back their hash and source (compared in Python:
# `ledger.store.usage_rows`)
_STORED_USAGE = f"""
    SELECT f.file, f.line, f.digest, {', '.join('u.' + c for c in usage_rows.FIELDS)},
           u.import_id, u.file_index, u.line, k.source
      FROM import_first f JOIN usage_event u ON u.id = f.id
      LEFT JOIN usage_source k ON k.customer_id = u.customer_id AND k.id = u.id"""

# events per customer, for sharing the second pass among processes (NULL: an event.voided)
_LOADS = "SELECT customer_id, count(*) FROM import_stage GROUP BY customer_id"

STAGE_COLUMNS = ("id", "digest", "file", "line", "customer_id", "created")
"""What `stage_input` takes per event: its id, the first 16 hex digits of its content hash,
the index of its file in the input, its line, its customer id (None if none), and whether it is
a ``customer.created`` event."""


def stage_input(session: Session, rows: Iterable[tuple]) -> None:
    """PostgreSQL only: stream ``rows`` (values in the order of `STAGE_COLUMNS`; a generator
    is read once, in bounded memory) into the temporary table ``import_stage`` with COPY, and
    index each id's first occurrence. Both tables are dropped when the transaction ends."""
    session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    session.execute(sa.text(_STAGE))
    copy_rows(session, "import_stage", STAGE_COLUMNS, rows)
    session.execute(sa.text(_FIRST))


def staged_input_conflicts(session: Session) -> list[tuple[int, int, str, int, int]]:
    """(file, line, id, first file, first line) of every staged line whose id was given before
    with different content."""
    return [tuple(r) for r in session.execute(sa.text(_INPUT_CONFLICTS))]


def staged_unknown_customers(session: Session) -> list[tuple[int, int, str]]:
    """(file, line, customer id) of the first staged line of each customer that is neither
    stored nor created by the input."""
    return [tuple(r) for r in session.execute(sa.text(_UNKNOWN_CUSTOMERS))]


def staged_book_conflicts(session: Session) -> list[tuple[int, int, str, str]]:
    """(file, line, id, stored source) of every staged id already posted with different content:
    the business events', then the usage events' (read in partitions: a re-run of a large file
    finds every id stored)."""
    out = [tuple(r) for r in session.execute(sa.text(_BOOK_CONFLICTS))]
    result = session.execute(sa.text(_STORED_USAGE), execution_options={"yield_per": 20_000})
    for part in result.partitions():
        rows = [tuple(r) for r in part]
        for r, (h, src) in zip(rows, usage_rows.stored_facts(session, [r[3:] for r in rows])):
            if h[:16] != r[2]:
                out.append((r[0], r[1], r[3], src))
    return out


def staged_loads(session: Session) -> dict[str | None, int]:
    """Staged events per customer id (key None: events that name no customer)."""
    return dict(session.execute(sa.text(_LOADS)).all())
