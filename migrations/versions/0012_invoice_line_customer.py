"""Invoice lines name their customer.

Every row of a customer's books carries the customer's id, so that a cluster that places each
customer's rows together (Citus, distributed by customer id: ``ledger db distribute``) can find
an invoice's lines beside the invoice. Invoice lines were the one table that named the customer
only through their invoice: the column is added and filled from the invoice. It stays nullable
in the schema (SQLite cannot add a NOT NULL column to a filled table); the writer always fills
it and ``ledger verify`` checks it.

Revision ID: 0012
Revises: 0011
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("invoice_line", sa.Column("customer_id", sa.String(64), nullable=True))
    op.execute("UPDATE invoice_line SET customer_id = "
               "(SELECT i.customer_id FROM invoice i WHERE i.number = invoice_line.invoice_number)")


def downgrade() -> None:
    with op.batch_alter_table("invoice_line") as batch:
        batch.drop_column("customer_id")
