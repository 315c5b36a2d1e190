"""Performance: a partial index of the usage that went to overage, per customer (what loading a
customer's book reads; without it a large customer's usage rows were all scanned).

Revision ID: 0005
Revises: 0004
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_usage_event_overage', 'usage_event', ['customer_id', 'entry_id'], unique=False,
                    postgresql_where=sa.text('overage_units > 0'), sqlite_where=sa.text('overage_units > 0'))


def downgrade() -> None:
    op.drop_index('ix_usage_event_overage', table_name='usage_event')
