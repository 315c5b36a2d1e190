"""docs/design.md §9.1: an entry declares its line count; PostgreSQL checks it once per entry.

Migration 0001 checked balance at COMMIT with a deferred constraint trigger on journal_line: one
PL/pgSQL call and one query per LINE, each summing all the entry's lines again (566,466 calls
for the 136,620 entries of a 1M-event import). The line trigger was also what refused a line
added later to an entry committed earlier. Now:

- ``journal_entry.line_count`` (NOT NULL, > 0): how many lines the entry has, written with it;
  existing entries get their count of lines.
- one deferred constraint trigger on journal_entry, once per ENTRY at COMMIT
  (``journal_entry_complete``, replacing ``journal_entry_has_lines`` and
  ``journal_line_entry_balanced``): the entry has lines ('journal entry N has no lines'),
  balances per commodity ('journal entry N does not balance in C: ...', as before) and has
  exactly ``line_count`` of them.
- the statement trigger on journal_line (the period lock of 0009) also refuses a statement
  after which an entry it adds lines to has more than ``line_count`` lines ('journal entry N
  already has its K lines: a line added later refused'). An entry committed with its K lines
  (checked at its COMMIT) can never take another: no line reaches the journal without its
  entry's check, as with the line trigger before.

SQLite (no deferred triggers: the one writer checks every draft) gets the column, counted, and
keeps its triggers. Citus re-creates the guards as row triggers (``ledger.store.citus``).

Revision ID: 0018
Revises: 0017
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COUNT = ("UPDATE journal_entry SET line_count = (SELECT count(*) FROM journal_line l "
          "WHERE l.entry_id = journal_entry.id)")

ENTRY_COMPLETE = """
CREATE OR REPLACE FUNCTION ledger_check_entry_complete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint := 0;
BEGIN
    FOR r IN SELECT commodity, count(*) AS lines, sum(debit) AS debits, sum(credit) AS credits
               FROM journal_line WHERE entry_id = NEW.id GROUP BY commodity ORDER BY commodity LOOP
        IF r.debits <> r.credits THEN
            RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
                NEW.id, r.commodity, r.debits, r.credits USING ERRCODE = 'check_violation';
        END IF;
        n := n + r.lines;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'journal entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    IF n <> NEW.line_count THEN
        RAISE EXCEPTION 'journal entry % has % lines, not the % it declares', NEW.id, n, NEW.line_count
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$"""

# the lines' statement trigger function (migration 0009's period lock), with ``declare`` and
# ``check`` added before and after that lock
_LINES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;{declare}
BEGIN
    SELECT e.entry_date INTO d FROM (SELECT DISTINCT entry_id FROM ledger_new_rows) n
      JOIN journal_entry e ON e.id = n.entry_id
      JOIN accounting_period p ON p.period = to_char(e.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY e.entry_date LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;{check}
    RETURN NULL;
END $$"""

LINES_STATEMENT = _LINES_FUNCTION.format(declare="""
    e_id integer;
    declared integer;""", check="""
    -- one index probe per entry (no ORDER BY: with it the planner walked the whole key)
    SELECT e.id, e.line_count INTO e_id, declared
      FROM (SELECT entry_id FROM ledger_new_rows GROUP BY entry_id) k
      JOIN journal_entry e ON e.id = k.entry_id
     WHERE (SELECT count(*) FROM journal_line l WHERE l.entry_id = k.entry_id) > e.line_count
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % already has its % lines: a line added later refused', e_id, declared
            USING ERRCODE = 'check_violation';
    END IF;""")

# 0009's function, put back by the downgrade
_LINES_0009 = _LINES_FUNCTION.format(declare="", check="")

_SQLITE_NO_UPDATE = ("CREATE TRIGGER journal_entry_no_update BEFORE UPDATE ON journal_entry "
                     "BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE on journal_entry refused'); END")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TRIGGER journal_entry_no_update")
        op.execute("ALTER TABLE journal_entry ADD COLUMN line_count INTEGER NOT NULL DEFAULT 0")
        op.execute(_COUNT)
        op.execute(_SQLITE_NO_UPDATE)
        return
    op.execute("ALTER TABLE journal_entry ADD COLUMN line_count integer")
    op.execute("ALTER TABLE journal_entry DISABLE TRIGGER journal_entry_append_only")
    op.execute(_COUNT)
    op.execute("ALTER TABLE journal_entry ENABLE TRIGGER journal_entry_append_only")
    op.execute("ALTER TABLE journal_entry ALTER COLUMN line_count SET NOT NULL")
    op.execute("ALTER TABLE journal_entry ADD CONSTRAINT ck_journal_entry_line_count_positive CHECK (line_count > 0)")
    op.execute("DROP TRIGGER journal_line_entry_balanced ON journal_line")
    op.execute("DROP TRIGGER journal_entry_has_lines ON journal_entry")
    op.execute(ENTRY_COMPLETE)
    op.execute("CREATE CONSTRAINT TRIGGER journal_entry_complete AFTER INSERT ON journal_entry "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_complete()")
    op.execute(LINES_STATEMENT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("ALTER TABLE journal_entry DROP COLUMN line_count")
        return
    op.execute(_LINES_0009)
    op.execute("DROP TRIGGER journal_entry_complete ON journal_entry")
    op.execute("DROP FUNCTION ledger_check_entry_complete()")
    op.execute("CREATE CONSTRAINT TRIGGER journal_line_entry_balanced AFTER INSERT ON journal_line "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()")
    op.execute("CREATE CONSTRAINT TRIGGER journal_entry_has_lines AFTER INSERT ON journal_entry "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_lines()")
    op.execute("ALTER TABLE journal_entry DROP COLUMN line_count")
