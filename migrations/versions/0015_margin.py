"""Zero-fee plan months: a billed month with nothing to bill has no invoice.

A plan with a zero monthly fee and no included credits (usage billed in arrears at an overage
price only) bills nothing in advance: its months are recorded in ``subscription_period`` so the
schedule moves on, but no invoice is issued, so ``invoice_number`` becomes nullable.

The chart gains 5000 Cost of revenue and 2500 Accrued cost of usage (seeded by ``ledger init``
from ``ledger.core.accounts.CHART``, like every account).

Revision ID: 0015
Revises: 0013
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.alter_column('invoice_number', existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.alter_column('invoice_number', existing_type=sa.String(32), nullable=False)
