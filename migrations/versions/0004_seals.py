"""docs/design.md §6.5 and §9.2: the close's audit trail (period_close) and the hash-chain seals of closed periods
(entry_seal), both append-only on PostgreSQL and SQLite.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 03:32:43.494813
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('period_close',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('journal_head', sa.Integer(), nullable=True),
    sa.Column('entries', sa.Integer(), nullable=True),
    sa.Column('seal', sa.String(length=64), nullable=True),
    sa.Column('previous_seal', sa.String(length=64), nullable=True),
    sa.Column('checks', sa.Text(), nullable=True),
    sa.CheckConstraint("action IN ('close', 'reopen')", name=op.f('ck_period_close_action')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_period_close'))
    )
    with op.batch_alter_table('period_close', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_period_close_period'), ['period'], unique=False)

    op.create_table('entry_seal',
    sa.Column('close_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['close_id'], ['period_close.id'], name=op.f('fk_entry_seal_close_id_period_close')),
    sa.PrimaryKeyConstraint('close_id', 'seq', name=op.f('pk_entry_seal'))
    )
    with op.batch_alter_table('entry_seal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_seal_entry_id'), ['entry_id'], unique=False)

    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change()")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: {verb} on {table} refused'); END")


APPEND_ONLY = ("period_close", "entry_seal")


def downgrade() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        names = ((f"{table}_append_only", f"{table}_no_truncate") if bind.dialect.name == "postgresql"
                 else (f"{table}_no_update", f"{table}_no_delete"))
        for name in names:
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if bind.dialect.name == "postgresql" else ""))
    with op.batch_alter_table('entry_seal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_seal_entry_id'))

    op.drop_table('entry_seal')
    with op.batch_alter_table('period_close', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_period_close_period'))

    op.drop_table('period_close')
