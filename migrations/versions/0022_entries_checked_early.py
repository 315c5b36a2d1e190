"""PostgreSQL: once an entry's COMMIT check has run, the lines' trigger counts every entry again.

Revision 0021 let the lines' statement trigger leave the line count of the transaction's own
entries to their COMMIT check (``journal_entry_complete``, deferred). But a transaction can run
that check early: ``SET CONSTRAINTS ALL IMMEDIATE`` fires the deferred checks queued so far, and
a line added afterwards to such an entry was counted by nobody, so an entry could commit with
more lines than it declares, or unbalanced.

Now the COMMIT check takes a shared advisory transaction lock (key ``LEDGEREC`` in ASCII) each
time it runs, and the lines' trigger leaves an entry of its own to that check only while the
transaction does not hold the lock. The lock cannot be released before the transaction ends,
except by rolling back the savepoint it was taken in, and then the checks that ran there are
queued again and run at COMMIT. Setting a value by hand (as ``ledger.first_own_entry`` can be)
forges nothing here: holding the lock only makes the trigger count more.

Shared locks never wait for one another, and nothing takes this one exclusively. Citus (row
triggers of its own, ``ledger.store.citus``) and SQLite (no deferred triggers) are left as they
are.

Revision ID: 0022
Revises: 0021
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0022'
down_revision: Union[str, None] = '0021'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHECKED_KEY = 5495873993171944771
"""The advisory lock a COMMIT check takes: "LEDGEREC" in ASCII; in pg_locks its high and low 32
bits (classid 1279607879, objid 1163019587, objsubid 1)."""

_COMPLETE_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_check_entry_complete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint := 0;
BEGIN{mark}
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

ENTRY_COMPLETE = _COMPLETE_FUNCTION.format(mark=f"""
    -- this transaction has run a COMMIT check: the lines' trigger counts its own entries from now
    PERFORM pg_advisory_xact_lock_shared({CHECKED_KEY});""")

_COMPLETE_0018 = _COMPLETE_FUNCTION.format(mark="")

_LINES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
    e_id integer;
    declared integer;
    codes text[];
    missing text;
    own_xid xid := pg_current_xact_id()::xid;
    first_own bigint;
BEGIN
    codes := ARRAY(SELECT DISTINCT account_code FROM ledger_new_rows);
    PERFORM ledger_share_accounts(codes);
    SELECT c INTO missing FROM unnest(codes) c WHERE NOT EXISTS (SELECT FROM account a WHERE a.code = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal line names account %, which is not in the chart', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT e.entry_date INTO d FROM (SELECT DISTINCT entry_id FROM ledger_new_rows) n
      CROSS JOIN LATERAL (SELECT entry_date FROM journal_entry WHERE id = n.entry_id OFFSET 0) e
      JOIN accounting_period p ON p.period = to_char(e.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY e.entry_date LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    first_own := coalesce(nullif(current_setting('ledger.first_own_entry', true), '')::bigint, 9223372036854775807);{checked}
    -- one index probe per entry (no ORDER BY: with it the planner walked the whole key)
    SELECT k.entry_id, e.line_count INTO e_id, declared
      FROM (SELECT entry_id FROM ledger_new_rows GROUP BY entry_id) k
      LEFT JOIN LATERAL (SELECT id, line_count, xmin AS inserted_by FROM journal_entry WHERE id = k.entry_id OFFSET 0) e ON true
     WHERE e.id IS NULL OR NOT (e.inserted_by = own_xid AND e.id >= first_own) AND (SELECT count(*) FROM journal_line l WHERE l.entry_id = k.entry_id) > e.line_count
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

# the COMMIT check has run in this transaction (its lock is held): no entry is left to it
LINES_STATEMENT = _LINES_FUNCTION.format(checked=f"""
    IF EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                 AND classid = {CHECKED_KEY >> 32} AND objid = {CHECKED_KEY & 0xFFFFFFFF} AND objsubid = 1) THEN
        first_own := 9223372036854775807;
    END IF;""")

_LINES_0021 = _LINES_FUNCTION.format(checked="")


def _distributed(bind) -> bool:
    """True on a Citus coordinator whose books are distributed: its guards are row triggers."""
    if not bind.exec_driver_sql("SELECT to_regclass('pg_dist_partition') IS NOT NULL").scalar_one():
        return False
    return bool(bind.exec_driver_sql("SELECT EXISTS (SELECT FROM pg_dist_partition "
                                     "WHERE logicalrelid = 'journal_line'::regclass)").scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    op.execute(ENTRY_COMPLETE)
    op.execute(LINES_STATEMENT)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    op.execute(_LINES_0021)
    op.execute(_COMPLETE_0018)
