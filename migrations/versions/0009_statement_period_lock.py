"""docs/design.md §9.1: the period lock of the journal checked once per statement on PostgreSQL.

Migration 0001 refused a posting dated in a closed period with BEFORE INSERT row triggers on
journal_entry and journal_line: one PL/pgSQL call, and one or two queries, per row. That was
8% of a one-event API call (five rows) and several seconds of a bulk import's COPY (600,000
rows). They become AFTER INSERT statement triggers with transition tables: one query per
statement over the rows it inserted, raising the same error (SQLSTATE check_violation,
"period YYYY-MM is closed: posting dated D refused"); the statement, and with it the
transaction, is refused as before. A line is judged by its entry's date, as before, and a line
whose entry is not visible is not refused by this trigger (its foreign key refuses it). SQLite
keeps its row triggers (it has no statement triggers).

Revision ID: 0009
Revises: 0008
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# the end of both functions: d is the earliest date among the statement's rows in a closed period
_REFUSE = """
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$"""

_ENTRIES = """
CREATE FUNCTION ledger_refuse_locked_period_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    SELECT n.entry_date INTO d FROM ledger_new_rows n
      JOIN accounting_period p ON p.period = to_char(n.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY n.entry_date LIMIT 1;
""" + _REFUSE

_LINES = """
CREATE FUNCTION ledger_refuse_locked_period_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    SELECT e.entry_date INTO d FROM (SELECT DISTINCT entry_id FROM ledger_new_rows) n
      JOIN journal_entry e ON e.id = n.entry_id
      JOIN accounting_period p ON p.period = to_char(e.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY e.entry_date LIMIT 1;
""" + _REFUSE


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER journal_entry_open_period ON journal_entry")
    op.execute("DROP TRIGGER journal_line_open_period ON journal_line")
    op.execute(_ENTRIES)
    op.execute(_LINES)
    op.execute("CREATE TRIGGER journal_entry_open_period AFTER INSERT ON journal_entry "
               "REFERENCING NEW TABLE AS ledger_new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION ledger_refuse_locked_period_entries()")
    op.execute("CREATE TRIGGER journal_line_open_period AFTER INSERT ON journal_line "
               "REFERENCING NEW TABLE AS ledger_new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION ledger_refuse_locked_period_lines()")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER journal_entry_open_period ON journal_entry")
    op.execute("DROP TRIGGER journal_line_open_period ON journal_line")
    op.execute("DROP FUNCTION ledger_refuse_locked_period_entries()")
    op.execute("DROP FUNCTION ledger_refuse_locked_period_lines()")
    op.execute("CREATE TRIGGER journal_entry_open_period BEFORE INSERT ON journal_entry "
               "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period()")
    op.execute("CREATE TRIGGER journal_line_open_period BEFORE INSERT ON journal_line "
               "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period()")
