"""Invoice lines name their customer; what joins rows of a customer's books joins by customer.

Every row of a customer's books carries the customer's id, so that a cluster that places each
customer's rows together (Citus, distributed by customer id: ``ledger db distribute``) can find
an invoice's lines beside the invoice. Invoice lines were the one table that named the customer
only through their invoice: the column is added and filled from the invoice. It stays nullable
in the schema (SQLite cannot add a NOT NULL column to a filled table); the writer always fills
it and ``ledger verify`` checks it.

The view ``usage_draw`` joins an entry's lines, and usage rows to their entry, by customer as
well as by entry id, and groups by both: the same rows on one database (a line names its entry's
customer, which ``ledger verify`` checks), and joins a cluster can run beside each customer's rows.

Revision ID: 0012
Revises: 0011
"""
from typing import Sequence, Union

from importlib import util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def _view_0011(dialect: str) -> str:
    """Revision 0011's CREATE VIEW usage_draw (for the downgrade)."""
    path = Path(__file__).resolve().parent / "0011_usage_positions.py"
    spec = util.spec_from_file_location("ledger_migration_0011", path)
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.view_sql(dialect)



def view_sql(dialect: str) -> str:
    """CREATE VIEW usage_draw for ``dialect``: revision 0011's view, joined and grouped by
    customer too (LEAST/GREATEST are MIN/MAX in SQLite)."""
    least, greatest = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    return f"""
CREATE VIEW usage_draw AS
SELECT u.id AS usage_event_id, s.grant_id, u.customer_id,
       CAST(sum({least}(u.draw_start + u.credits - u.overage_units, s.pos + s.units)
                - {greatest}(u.draw_start, s.pos)) AS BIGINT) AS units
  FROM usage_event u
  JOIN (SELECT l.customer_id, l.entry_id, l.grant_id, l.debit AS units,
               sum(l.debit) OVER (PARTITION BY l.customer_id, l.entry_id ORDER BY l.id) - l.debit AS pos
          FROM journal_line l
         WHERE l.account_code = '9100' AND l.debit > 0) s
    ON s.customer_id = u.customer_id AND s.entry_id = u.entry_id
   AND s.pos < u.draw_start + u.credits - u.overage_units
   AND u.draw_start < s.pos + s.units
 GROUP BY u.customer_id, u.id, s.grant_id
UNION ALL
SELECT usage_event_id, grant_id, customer_id, units FROM usage_draw_legacy"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("invoice_line", sa.Column("customer_id", sa.String(64), nullable=True))
    op.execute("UPDATE invoice_line SET customer_id = "
               "(SELECT i.customer_id FROM invoice i WHERE i.number = invoice_line.invoice_number)")
    op.execute("DROP VIEW usage_draw")
    op.execute(view_sql(dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW usage_draw")
    op.execute(_view_0011(dialect))
    with op.batch_alter_table("invoice_line") as batch:
        batch.drop_column("customer_id")
