"""PostgreSQL: the lines' trigger probes each entry by key and counts another transaction's alone.

Revision 0018 made every entry declare its line count and checked it twice: the deferred
``journal_entry_complete`` trigger counts an entry's lines at COMMIT, and the lines' statement
trigger counted, after every statement, the lines of each entry the statement added to, so that
a line added later to an entry committed earlier is refused. For the entries a transaction
writes itself, the second count only repeats the first one early: in a 1M-event import it was
136,620 index scans counting the lines just written (2.35 s of the database's time; the COMMIT
check, 1.9 s, counts them again).

Now the statement trigger counts only the lines of entries that are not the transaction's own,
and leaves the transaction's own entries to the COMMIT check, which refuses one with more lines
than it declares ('journal entry N has K lines, not the M it declares'). An entry is the
transaction's own when both hold:

- its row was inserted by this transaction (``xmin`` is the transaction's id; an entry inserted
  under a savepoint has its own id, and is counted at once as before), and
- its id is at least the first entry id this transaction inserted, which the entries' statement
  trigger keeps in the transaction-local setting ``ledger.first_own_entry``: a transaction id is
  32 bits and comes round again, but an entry committed in an earlier round has a smaller id.

A line added to an entry committed earlier is still refused by the statement that adds it, with
the same message.

Both of the trigger's reads of journal_entry (each entry's date, for the period lock, and its
declared count) now look each entry up by its key, one probe per entry the statement names. As
joins, the planner, holding the transition table at its default estimate of 200 rows and the
journal at its last ANALYZE, hashed the statement's entries and scanned the whole of
journal_entry, and a plan cached for the session kept doing so as the journal grew: a group
commit of 60 entries and 240 lines spent 4 ms in this trigger at 12,000 entries, 60% of the
statement, and more with every entry. The probes cost the same at any size of the journal. SQLite (no deferred triggers: the one writer checks every draft) and Citus (row
triggers of its own, ``ledger.store.citus``) are left as they are.

Revision ID: 0021
Revises: 0020
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0021'
down_revision: Union[str, None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# the entries' statement trigger function (revision 0009's period lock) with ``own`` after it:
# the transaction's first own entry id, kept until its end (set_config(..., true))
_ENTRIES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    SELECT n.entry_date INTO d FROM ledger_new_rows n
      JOIN accounting_period p ON p.period = to_char(n.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY n.entry_date LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;{own}
    RETURN NULL;
END $$"""

ENTRIES_STATEMENT = _ENTRIES_FUNCTION.format(own="""
    PERFORM set_config('ledger.first_own_entry',
                       least((SELECT min(id) FROM ledger_new_rows),
                             nullif(current_setting('ledger.first_own_entry', true), '')::bigint)::text, true);""")

_ENTRIES_0009 = _ENTRIES_FUNCTION.format(own="")

# the lines' statement trigger function of revision 0019, the count of lines skipped for ``own``
# entries (counted at COMMIT)
_LINES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
    e_id integer;
    declared integer;
    codes text[];
    missing text;{declare}
BEGIN
    codes := ARRAY(SELECT DISTINCT account_code FROM ledger_new_rows);
    PERFORM ledger_share_accounts(codes);
    SELECT c INTO missing FROM unnest(codes) c WHERE NOT EXISTS (SELECT FROM account a WHERE a.code = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal line names account %, which is not in the chart', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT e.entry_date INTO d FROM (SELECT DISTINCT entry_id FROM ledger_new_rows) n
      {entry_of_n}
      JOIN accounting_period p ON p.period = to_char(e.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY e.entry_date LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;{setup}
    -- one index probe per entry (no ORDER BY: with it the planner walked the whole key)
    SELECT k.entry_id, e.line_count INTO e_id, declared
      FROM (SELECT entry_id FROM ledger_new_rows GROUP BY entry_id) k
      {entry_of_k}
     WHERE e.id IS NULL OR {counted}(SELECT count(*) FROM journal_line l WHERE l.entry_id = k.entry_id) > e.line_count
     LIMIT 1;
    IF FOUND AND declared IS NULL THEN
        RAISE EXCEPTION 'journal line names entry %, which does not exist', e_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % already has its % lines: a line added later refused', e_id, declared
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$"""

# each entry read by its key, one probe per entry the statement names (OFFSET 0: a subquery the
# planner may not merge into a join); see the module docstring
LINES_STATEMENT = _LINES_FUNCTION.format(declare="""
    own_xid xid := pg_current_xact_id()::xid;
    first_own bigint;""", setup="""
    first_own := coalesce(nullif(current_setting('ledger.first_own_entry', true), '')::bigint, 9223372036854775807);""",
    entry_of_n="CROSS JOIN LATERAL (SELECT entry_date FROM journal_entry WHERE id = n.entry_id OFFSET 0) e",
    entry_of_k=("LEFT JOIN LATERAL (SELECT id, line_count, xmin AS inserted_by FROM journal_entry WHERE id = k.entry_id "
                "OFFSET 0) e ON true"),
    counted="NOT (e.inserted_by = own_xid AND e.id >= first_own) AND ")

_LINES_0019 = _LINES_FUNCTION.format(declare="", setup="", counted="", entry_of_n="JOIN journal_entry e ON e.id = n.entry_id",
                                     entry_of_k="LEFT JOIN journal_entry e ON e.id = k.entry_id")


def _distributed(bind) -> bool:
    """True on a Citus coordinator whose books are distributed: its guards are row triggers."""
    if not bind.exec_driver_sql("SELECT to_regclass('pg_dist_partition') IS NOT NULL").scalar_one():
        return False
    return bool(bind.exec_driver_sql("SELECT EXISTS (SELECT FROM pg_dist_partition "
                                     "WHERE logicalrelid = 'journal_line'::regclass)").scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    op.execute(ENTRIES_STATEMENT)
    op.execute(LINES_STATEMENT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    op.execute(_LINES_0019)
    op.execute(_ENTRIES_0009)
