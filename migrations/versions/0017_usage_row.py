"""Usage stored for what it is: no content hash, the source as batch file and line, fewer keys.

A usage event's content is its fields, so ``usage_event.content_hash`` goes: an id given again is
compared with the stored fields (`ledger.store.usage_rows`; the hash of a usage event is taken
with its instant in UTC, as the row keeps it). ``usage_event.source`` (``FILE:LINE``) becomes
``file_index`` (the file's place in its import batch's ``sources``) and ``line``; a row whose
batch does not give its source back (no batch, a file not among the batch's sources) keeps it
in the new table ``usage_source``. The upgrade checks that every row's source is given back
exactly before the column is dropped, and fails otherwise.

On PostgreSQL the foreign keys of ``entry_id`` and ``import_id`` go (the writer inserts the entry
and the batch in the same transaction; a key checked row by row cost the bulk import more than
the row's own primary key), and the indexes by customer and by entry become one by (customer,
entry): every read of usage names the customer. SQLite keeps its foreign keys (dropping one
there copies the table, which the view usage_draw and usage_draw_legacy's key refuse).

The drawdown attribution (usage_draw) is not touched: draw_start, credits, overage_units and
entry_id stay as they were (tests/integration/test_usage_positions.py compares it across the
upgrade).

The downgrade puts the columns back: the source from the batch or ``usage_source``, the hash
from the fields (with the instant in UTC: an offset the event was written with is not kept).

Revision ID: 0017
Revises: 0016
"""
import json
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: Union[str, None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ROWS = 20_000


def _files(bind) -> dict[int, list[str]]:
    return {i: json.loads(s) for i, s in bind.execute(sa.text("SELECT id, sources FROM import_batch"))}


def _place(files: list[str], source: str) -> tuple[int, int] | None:
    """(file_index, line) giving ``source`` back exactly, or None."""
    file, _, line = source.rpartition(":")
    if file not in files or not line.isdigit() or str(int(line)) != line or int(line) > 2**31 - 1:
        return None
    index = files.index(file)
    return (index, int(line)) if index < 2**15 else None


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.create_table(
        'usage_source',
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', 'id', name=op.f('pk_usage_source')),
    )
    op.add_column('usage_event', sa.Column('file_index', sa.SmallInteger(), nullable=False, server_default='0'))
    op.add_column('usage_event', sa.Column('line', sa.Integer(), nullable=False, server_default='0'))
    op.execute("CREATE TEMPORARY TABLE ledger_usage_place (id varchar(128) PRIMARY KEY, file_index smallint, "
               "line integer)")
    files = _files(bind)
    placed, kept = [], []
    rows = bind.execute(sa.text("SELECT customer_id, id, import_id, source FROM usage_event"))
    for customer_id, event_id, import_id, source in rows:
        where = _place(files.get(import_id, []), source) if import_id is not None else None
        if where is None:
            kept.append({"c": customer_id, "i": event_id, "s": source})
        else:
            placed.append({"i": event_id, "f": where[0], "l": where[1]})
    for start in range(0, len(placed), _ROWS):
        bind.execute(sa.text("INSERT INTO ledger_usage_place (id, file_index, line) VALUES (:i, :f, :l)"),
                     placed[start:start + _ROWS])
    if kept:
        bind.execute(sa.text("INSERT INTO usage_source (customer_id, id, source) VALUES (:c, :i, :s)"), kept)
    op.execute("UPDATE usage_event SET file_index = p.file_index, line = p.line FROM ledger_usage_place p "
               "WHERE p.id = usage_event.id")
    op.execute("DROP TABLE ledger_usage_place")
    _check_sources(bind, files)
    op.execute("ALTER TABLE usage_event DROP COLUMN content_hash")
    op.execute("ALTER TABLE usage_event DROP COLUMN source")
    op.drop_index('ix_usage_event_customer_id', table_name='usage_event')
    op.drop_index('ix_usage_event_entry_id', table_name='usage_event')
    op.create_index('ix_usage_event_customer_entry', 'usage_event', ['customer_id', 'entry_id'], unique=False)
    if pg:  # IF EXISTS: a distributed database has no key to import_batch (ledger.store.citus)
        op.execute("ALTER TABLE usage_event DROP CONSTRAINT IF EXISTS fk_usage_event_entry_id_journal_entry")
        op.execute("ALTER TABLE usage_event DROP CONSTRAINT IF EXISTS fk_usage_event_import_id_import_batch")


def _check_sources(bind, files: dict[int, list[str]]) -> None:
    """Every usage row's source given back by its batch or by usage_source, or fail."""
    rows = bind.execute(sa.text("SELECT u.id, u.source, u.import_id, u.file_index, u.line, k.source "
                                "FROM usage_event u LEFT JOIN usage_source k "
                                "ON k.customer_id = u.customer_id AND k.id = u.id"))
    for event_id, source, import_id, file_index, line, kept in rows:
        given = kept if kept is not None else f"{files[import_id][file_index]}:{line}"
        if given != source:
            raise RuntimeError(f"usage event {event_id}: source {source!r} would read as {given!r}")


def _hash(event_id, customer_id, occurred_at, credits, action, quantity, cost) -> str:
    """The usage hash of a stored row (as `ledger.event_schemas._usage_canonical_json`, in UTC)."""
    from ledger.store.usage_rows import stored_hash
    return stored_hash((event_id, customer_id, occurred_at, credits, action, quantity, cost))


def downgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        op.create_foreign_key('fk_usage_event_entry_id_journal_entry', 'usage_event', 'journal_entry',
                              ['entry_id'], ['id'])
        op.create_foreign_key('fk_usage_event_import_id_import_batch', 'usage_event', 'import_batch',
                              ['import_id'], ['id'])
    op.drop_index('ix_usage_event_customer_entry', table_name='usage_event')
    op.create_index('ix_usage_event_entry_id', 'usage_event', ['entry_id'], unique=False)
    op.create_index('ix_usage_event_customer_id', 'usage_event', ['customer_id'], unique=False)
    # NOT NULL with a default first (SQLite adds no NOT NULL column without one), set below
    op.add_column('usage_event', sa.Column('content_hash', sa.String(length=64), nullable=False, server_default=''))
    op.add_column('usage_event', sa.Column('source', sa.Text(), nullable=False, server_default=''))
    files = _files(bind)
    op.execute("CREATE TEMPORARY TABLE ledger_usage_back (id varchar(128) PRIMARY KEY, content_hash varchar(64), "
               "source text)")
    back = []
    from sqlalchemy.orm import Session

    from ledger.store.models import UsageEvent
    # read through the model: its instants come back as aware datetimes on both dialects
    with Session(bind) as s:
        rows = s.execute(sa.select(UsageEvent.id, UsageEvent.customer_id, UsageEvent.occurred_at, UsageEvent.credits,
                                   UsageEvent.action, UsageEvent.quantity, UsageEvent.cost, UsageEvent.import_id,
                                   UsageEvent.file_index, UsageEvent.line)).all()
        kept = dict(s.execute(sa.text("SELECT id, source FROM usage_source")).all())
    for r in rows:
        source = kept.get(r[0]) or f"{files[r[7]][r[8]]}:{r[9]}"
        back.append({"i": r[0], "h": _hash(*r[:7]), "s": source})
    for start in range(0, len(back), _ROWS):
        bind.execute(sa.text("INSERT INTO ledger_usage_back (id, content_hash, source) VALUES (:i, :h, :s)"),
                     back[start:start + _ROWS])
    op.execute("UPDATE usage_event SET content_hash = b.content_hash, source = b.source FROM ledger_usage_back b "
               "WHERE b.id = usage_event.id")
    op.execute("DROP TABLE ledger_usage_back")
    if pg:  # SQLite keeps the default (changing it there copies the table)
        op.alter_column('usage_event', 'content_hash', server_default=None)
        op.alter_column('usage_event', 'source', server_default=None)
    op.execute("ALTER TABLE usage_event DROP COLUMN file_index")
    op.execute("ALTER TABLE usage_event DROP COLUMN line")
    op.drop_table('usage_source')
