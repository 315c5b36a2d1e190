"""Performance: journal_line (customer_id, account_code) and journal_entry (customer_id, kind)
replace the indexes on customer_id alone. Loading a customer's book sums its lines of one
account at a time (credits outstanding and deferred revenue per grant, receivables per invoice,
customer credit) and reads its refund entries; with customer-only indexes a large customer's
every line was read and filtered (B3 in benchmarks/RESULTS.md: the refund query went from
1.0 ms to 0.4 ms a call on the 1M-event books).

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_journal_line_customer_account', 'journal_line', ['customer_id', 'account_code'], unique=False)
    op.drop_index('ix_journal_line_customer_id', table_name='journal_line')
    op.create_index('ix_journal_entry_customer_kind', 'journal_entry', ['customer_id', 'kind'], unique=False)
    op.drop_index('ix_journal_entry_customer_id', table_name='journal_entry')


def downgrade() -> None:
    op.create_index('ix_journal_entry_customer_id', 'journal_entry', ['customer_id'], unique=False)
    op.drop_index('ix_journal_entry_customer_kind', table_name='journal_entry')
    op.create_index('ix_journal_line_customer_id', 'journal_line', ['customer_id'], unique=False)
    op.drop_index('ix_journal_line_customer_account', table_name='journal_line')
