"""Lifecycle (docs/design.md §5): subscriptions and their billed months, grant policies (rollover expiry,
renewals, overage price), invoice categories and service periods, overage on usage rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 00:55:26.750748
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    
    op.create_table('subscription',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('plan', sa.String(length=64), nullable=False),
    sa.Column('plan_name', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('monthly_fee', sa.BigInteger(), nullable=False),
    sa.Column('included_credits', sa.BigInteger(), nullable=False),
    sa.Column('credit_ssp', sa.String(length=40), nullable=False),
    sa.Column('platform_ssp', sa.String(length=40), nullable=False),
    sa.Column('overage_price', sa.String(length=40), nullable=True),
    sa.Column('rollover_percent', sa.Integer(), nullable=False),
    sa.Column('rollover_max_periods', sa.Integer(), nullable=True),
    sa.Column('rollover_max_credits', sa.BigInteger(), nullable=True),
    sa.Column('rollover_expires', sa.Boolean(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('cancel_event_id', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_subscription_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription'))
    )
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_customer_id'), ['customer_id'], unique=False)

    op.create_table('subscription_period',
    sa.Column('subscription_id', sa.String(length=128), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('service_start', sa.Date(), nullable=False),
    sa.Column('service_end', sa.Date(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('credits_fee', sa.BigInteger(), nullable=False),
    sa.Column('platform_fee', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('invoice_number', sa.String(length=32), nullable=False),
    sa.Column('grant_id', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscription.id'], name=op.f('fk_subscription_period_subscription_id_subscription')),
    sa.PrimaryKeyConstraint('subscription_id', 'period', name=op.f('pk_subscription_period'))
    )
    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_period_customer_id'), ['customer_id'], unique=False)

    with op.batch_alter_table('credit_grant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollover_expires', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('renews', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('overage_price', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('contract_id', sa.String(length=128), nullable=True))

    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=20), server_default='purchase', nullable=False))
        batch_op.add_column(sa.Column('service_period', sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column('reference', sa.String(length=32), nullable=True))

    with op.batch_alter_table('usage_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overage_units', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('overage_price', sa.String(length=40), nullable=True))

    


def downgrade() -> None:
    
    with op.batch_alter_table('usage_event', schema=None) as batch_op:
        batch_op.drop_column('overage_price')
        batch_op.drop_column('overage_units')

    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_column('reference')
        batch_op.drop_column('service_period')
        batch_op.drop_column('category')

    with op.batch_alter_table('credit_grant', schema=None) as batch_op:
        batch_op.drop_column('contract_id')
        batch_op.drop_column('overage_price')
        batch_op.drop_column('renews')
        batch_op.drop_column('rollover_expires')

    with op.batch_alter_table('subscription_period', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_period_customer_id'))

    op.drop_table('subscription_period')
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_customer_id'))

    op.drop_table('subscription')
    
