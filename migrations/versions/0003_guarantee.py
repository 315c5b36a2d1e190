"""docs/design.md §5.9: the no-increase guarantee (enrolments and the months evaluated at each close), and
the customer's country and VAT id for e-invoices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 02:57:40.924141
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('vat_id', sa.String(length=20), nullable=True))
    op.create_table('guarantee',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('legacy_monthly_amount', sa.BigInteger(), nullable=False),
    sa.Column('start_month', sa.String(length=7), nullable=False),
    sa.Column('months', sa.Integer(), nullable=False),
    sa.Column('basis', sa.String(length=20), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_guarantee_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guarantee'))
    )
    with op.batch_alter_table('guarantee', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guarantee_customer_id'), ['customer_id'], unique=False)

    op.create_table('guarantee_month',
    sa.Column('guarantee_id', sa.String(length=128), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('subscription', sa.BigInteger(), nullable=False),
    sa.Column('overage', sa.BigInteger(), nullable=False),
    sa.Column('topups', sa.BigInteger(), nullable=False),
    sa.Column('commitments', sa.BigInteger(), nullable=False),
    sa.Column('charges', sa.BigInteger(), nullable=False),
    sa.Column('legacy', sa.BigInteger(), nullable=False),
    sa.Column('credit', sa.BigInteger(), nullable=False),
    sa.Column('credit_note', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['guarantee_id'], ['guarantee.id'], name=op.f('fk_guarantee_month_guarantee_id_guarantee')),
    sa.PrimaryKeyConstraint('guarantee_id', 'period', name=op.f('pk_guarantee_month'))
    )
    with op.batch_alter_table('guarantee_month', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guarantee_month_customer_id'), ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('guarantee_month', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guarantee_month_customer_id'))

    op.drop_table('guarantee_month')
    with op.batch_alter_table('guarantee', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guarantee_customer_id'))

    op.drop_table('guarantee')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_column('vat_id')
        batch_op.drop_column('country')
