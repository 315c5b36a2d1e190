"""docs/design.md §8.4: customer.book_version, the token that lets a process reuse a customer's book
between transactions (engine.BookCache). Every run that loads a book writes a new random
token; a process reuses the book it kept only while the token is still its own.

Roles that may move ``steps_through`` (the writer role of `ledger db`) get the same column
privilege on ``book_version``, so an upgraded database keeps accepting its writers' postings.

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('book_version', sa.BigInteger(), server_default='0', nullable=False))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        grantees = bind.execute(sa.text(
            "SELECT DISTINCT grantee FROM information_schema.column_privileges WHERE table_schema = current_schema() "
            "AND table_name = 'customer' AND column_name = 'steps_through' AND privilege_type = 'UPDATE' "
            "AND grantee <> current_user")).scalars().all()
        for role in grantees:
            op.execute(f'GRANT UPDATE (book_version) ON customer TO "{role}"')


def downgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_column('book_version')
