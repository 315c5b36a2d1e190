"""Zero-fee plan months without an invoice; the cost of usage (accounts 5000 and 2500).

A plan with a zero monthly fee and no included credits (usage billed in arrears at an overage
price only) bills nothing in advance: its months are recorded in ``subscription_period`` so the
schedule moves on, but no invoice is issued, so ``invoice_number`` becomes nullable.

A usage event may carry its own cost to serve: ``usage_event.cost`` keeps it (NULL when the
event gave none and the catalog's costs apply), so a void takes back what was posted.

The chart gains 5000 Cost of revenue, 2500 Accrued cost of usage and the memo accounts 9500 and
9550 of usage held for review at a soft cap (seeded by ``ledger init``
from ``ledger.core.accounts.CHART``, like every account).

Revision ID: 0015
Revises: 0013
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.alter_column('invoice_number', existing_type=sa.String(32), nullable=True)
    op.add_column('usage_event', sa.Column('cost', sa.String(40), nullable=True))


def downgrade() -> None:
    # not a batch (a copy of the table): the view usage_draw reads usage_event; it never reads cost
    op.execute("ALTER TABLE usage_event DROP COLUMN cost")
    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.alter_column('invoice_number', existing_type=sa.String(32), nullable=False)
