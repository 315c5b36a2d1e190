"""PostgreSQL: a journal line's (customer, entry) is a key of journal_entry.

Every join of a line to its entry names the customer as well as the entry id
(``ledger/store/keys.py``), so that a cluster distributed by customer runs it beside each
customer's rows. PostgreSQL's planner takes the two conditions as independent and estimated
such a join of the 1M-event books at 17 rows instead of 383,366, sorting where it hashed (the
trial balance took 653 ms instead of 274). A foreign key over both columns tells it that every
line matches one entry; it also makes the database refuse a line that names another customer
than its entry. The single-column key stays: a line without a customer (a manual entry could
have none) is still held to an existing entry.

SQLite plans these joins well without it and keeps its schema.

Revision ID: 0013
Revises: 0012
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE journal_entry ADD CONSTRAINT uq_journal_entry_customer_id_id UNIQUE (customer_id, id)")
    op.execute("ALTER TABLE journal_line ADD CONSTRAINT fk_journal_line_customer_id_journal_entry "
               "FOREIGN KEY (customer_id, entry_id) REFERENCES journal_entry (customer_id, id)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE journal_line DROP CONSTRAINT fk_journal_line_customer_id_journal_entry")
    op.execute("ALTER TABLE journal_entry DROP CONSTRAINT uq_journal_entry_customer_id_id")
