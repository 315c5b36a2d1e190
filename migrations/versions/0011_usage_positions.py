"""Usage rows carry their place in the drawdown stream; usage_draw becomes a view.

A consumption entry posts a customer's usage of one day; its Dr 9100 Credits outstanding lines,
in line order, are the day's draws from grants in drawdown order (consecutive draws of one
grant merged, a grant drawn again after another getting a line of its own). A usage event drew
units [draw_start, draw_start + credits - overage_units) of that stream, so one integer per row
gives its draws exactly, and the per-event rows of usage_draw (as many as the events, written at
8-10 times the cost of a COPY of the events) are no longer written. ``usage_draw`` stays, as a
view with the same columns and rows.

Conversion of existing books: each usage event's position is computed from its stored draws
(events ordered within their entry by the first and last line they drew from, then time and id)
and the view is compared with the stored table row for row. Where an entry's lines cannot give
its events' draws (books written before a grant drawn twice in a day got two lines), those
events keep NULL and their draws move to ``usage_draw_legacy``, which the view includes. The
upgrade then checks that the view returns exactly the old table and fails otherwise.

The downgrade materialises the view back into the table.

Revision ID: 0011
Revises: 0010
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def view_sql(dialect: str) -> str:
    """CREATE VIEW usage_draw for ``dialect`` (LEAST/GREATEST are MIN/MAX in SQLite)."""
    least, greatest = ("least", "greatest") if dialect == "postgresql" else ("min", "max")
    return f"""
CREATE VIEW usage_draw AS
SELECT u.id AS usage_event_id, s.grant_id, u.customer_id,
       CAST(sum({least}(u.draw_start + u.credits - u.overage_units, s.pos + s.units)
                - {greatest}(u.draw_start, s.pos)) AS BIGINT) AS units
  FROM usage_event u
  JOIN (SELECT l.entry_id, l.grant_id, l.debit AS units,
               sum(l.debit) OVER (PARTITION BY l.entry_id ORDER BY l.id) - l.debit AS pos
          FROM journal_line l
         WHERE l.account_code = '9100' AND l.debit > 0) s
    ON s.entry_id = u.entry_id
   AND s.pos < u.draw_start + u.credits - u.overage_units
   AND u.draw_start < s.pos + s.units
 GROUP BY u.id, s.grant_id, u.customer_id
UNION ALL
SELECT usage_event_id, grant_id, customer_id, units FROM usage_draw_legacy"""


# each event's position: the units drawn before it in its entry, events ordered by the first and
# last of the entry's Dr 9100 lines their draws touch (then time, then id among events of one line)
_POSITIONS = """
CREATE TEMPORARY TABLE ledger_usage_position AS
WITH seg AS (
    SELECT l.entry_id, l.grant_id, row_number() OVER (PARTITION BY l.entry_id ORDER BY l.id) AS idx
      FROM journal_line l
     WHERE l.account_code = '9100' AND l.debit > 0
       AND l.entry_id IN (SELECT entry_id FROM usage_event WHERE entry_id IS NOT NULL)),
ev AS (
    SELECT u.id, u.entry_id, u.occurred_at, u.credits - u.overage_units AS drawn,
           min(s.idx) AS lo, max(s.idx) AS hi
      FROM usage_event u
      JOIN usage_draw_old d ON d.usage_event_id = u.id
      JOIN seg s ON s.entry_id = u.entry_id AND s.grant_id = d.grant_id
     GROUP BY u.id, u.entry_id, u.occurred_at, u.credits, u.overage_units)
SELECT id, sum(drawn) OVER (PARTITION BY entry_id ORDER BY lo, hi, occurred_at, id) - drawn AS draw_start
  FROM ev"""

_COLUMNS = "usage_event_id, grant_id, customer_id, units"
_DIFFERENCE = f"""
SELECT * FROM (SELECT {_COLUMNS} FROM usage_draw_old EXCEPT SELECT {_COLUMNS} FROM usage_draw) a
UNION ALL
SELECT * FROM (SELECT {_COLUMNS} FROM usage_draw EXCEPT SELECT {_COLUMNS} FROM usage_draw_old) b"""


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    with op.batch_alter_table('usage_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draw_start', sa.BigInteger(), nullable=True, server_default='0'))
    op.create_table(
        'usage_draw_legacy',
        sa.Column('usage_event_id', sa.String(length=128), nullable=False),
        sa.Column('grant_id', sa.String(length=128), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('units', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['credit_grant.id'],
                                name=op.f('fk_usage_draw_legacy_grant_id_credit_grant')),
        sa.ForeignKeyConstraint(['usage_event_id'], ['usage_event.id'],
                                name=op.f('fk_usage_draw_legacy_usage_event_id_usage_event')),
        sa.PrimaryKeyConstraint('usage_event_id', 'grant_id', name=op.f('pk_usage_draw_legacy')),
    )
    op.rename_table('usage_draw', 'usage_draw_old')
    op.execute(_POSITIONS)
    op.execute("CREATE INDEX ledger_usage_position_id ON ledger_usage_position (id)")
    op.execute("UPDATE usage_event SET draw_start = p.draw_start FROM ledger_usage_position p "
               "WHERE p.id = usage_event.id")
    op.execute(view_sql(dialect))
    # entries whose lines cannot give their events' draws keep the stored draws as they are
    op.execute("CREATE TEMPORARY TABLE ledger_usage_unmatched AS SELECT DISTINCT u.entry_id FROM usage_event u "
               f"WHERE u.id IN (SELECT usage_event_id FROM ({_DIFFERENCE}) x)")
    op.execute("INSERT INTO usage_draw_legacy (usage_event_id, grant_id, customer_id, units) "
               "SELECT d.usage_event_id, d.grant_id, d.customer_id, d.units FROM usage_draw_old d "
               "JOIN usage_event u ON u.id = d.usage_event_id "
               "WHERE u.entry_id IN (SELECT entry_id FROM ledger_usage_unmatched)")
    op.execute("UPDATE usage_event SET draw_start = NULL WHERE entry_id IN (SELECT entry_id FROM ledger_usage_unmatched)")
    left = bind.execute(sa.text(f"SELECT count(*) FROM ({_DIFFERENCE}) x")).scalar_one()
    if left:
        raise RuntimeError(f"usage attribution would change for {left} draws; the books were not converted")
    op.execute("DROP TABLE ledger_usage_unmatched")
    op.execute("DROP TABLE ledger_usage_position")
    op.drop_table('usage_draw_old')


def downgrade() -> None:
    op.create_table(
        'usage_draw_new',
        sa.Column('usage_event_id', sa.String(length=128), nullable=False),
        sa.Column('grant_id', sa.String(length=128), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('units', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['grant_id'], ['credit_grant.id'], name=op.f('fk_usage_draw_grant_id_credit_grant')),
        sa.ForeignKeyConstraint(['usage_event_id'], ['usage_event.id'],
                                name=op.f('fk_usage_draw_usage_event_id_usage_event')),
        sa.PrimaryKeyConstraint('usage_event_id', 'grant_id', name=op.f('pk_usage_draw')),
    )
    op.execute("INSERT INTO usage_draw_new (usage_event_id, grant_id, customer_id, units) "
               "SELECT usage_event_id, grant_id, customer_id, units FROM usage_draw")
    op.execute("DROP VIEW usage_draw")
    op.rename_table('usage_draw_new', 'usage_draw')
    op.drop_table('usage_draw_legacy')
    # in place (SQLite >= 3.35 too): a batch copy of usage_event would be refused by the foreign
    # keys of the restored usage_draw
    op.execute("ALTER TABLE usage_event DROP COLUMN draw_start")
