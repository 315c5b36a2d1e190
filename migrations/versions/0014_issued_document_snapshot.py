"""An issued invoice or credit note keeps what its page shows beyond the journal.

Four nullable columns on ``invoice``, written once with the document in the transaction that
posts its journal entry: ``seller`` (canonical JSON of the catalog's company), ``buyer``
(canonical JSON of the customer's name, address, e-mail, locale, country and VAT id), ``logo``
(the logo file's bytes) and ``logo_type`` (its media type). A document is rendered from these,
so a later change to the catalog or a lost logo file changes no issued page. Documents issued
before this revision keep NULL and render from the catalog as before.

The same statements on SQLite, PostgreSQL and Citus: ``invoice`` is distributed by customer_id
there, and Citus propagates ADD COLUMN to its shards.

Revision ID: 0014
Revises: 0013
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = (("seller", sa.Text()), ("buyer", sa.Text()), ("logo", sa.LargeBinary()), ("logo_type", sa.String(40)))


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("invoice", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
