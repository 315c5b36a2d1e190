"""docs/design.md §9.1: PostgreSQL checks a journal line's entry and account once per statement.

The foreign keys ``fk_journal_line_entry_id_journal_entry`` (entry_id -> journal_entry) and
``fk_journal_line_account_code_account`` (account_code -> account) each ran one trigger call, one
executor start and one index probe per LINE: with the composite key of revision 0013, three per
line. In a 1M-event import (566,000 lines) the keys' checks were a quarter of the database's CPU
(perf: 25% of the samples under the COPY statements' after-row triggers). Now, on PostgreSQL:

- the lines' statement trigger function (``ledger_refuse_locked_period_lines``, revisions 0009
  and 0018) also refuses, by one set-based query each over the statement's new rows, a line
  whose entry does not exist ('journal line names entry N, which does not exist') and one whose
  account is not in the chart ('journal line names account C, which is not in the chart'), both
  with ERRCODE foreign_key_violation, as the keys did. The accounts the lines name are locked
  first, FOR KEY SHARE as the key locked them, by ``ledger_share_accounts`` (SECURITY DEFINER:
  a writer may only read the chart, and locking rows takes UPDATE).
- a row trigger on account (``account_in_use``) refuses to delete an account, or change its
  code, while a journal line names it, and a statement trigger refuses TRUNCATE of the chart
  while the journal has lines: what the account key refused. Its row lock waits for the lines
  that locked the account, and its query, under READ COMMITTED, then sees them; under
  REPEATABLE READ it would not, so it refuses to run there. Entries need no such guard: the
  journal is append-only (its triggers refuse DELETE, UPDATE and TRUNCATE of journal_entry).
- the composite key (customer_id, entry_id) -> journal_entry (customer_id, id) of revision 0013
  stays: the planner reads it (a line's entry is one row), and it refuses, first, a line naming
  an entry that is not its customer's. A line without a customer is held to its entry by the
  statement trigger.

SQLite keeps its foreign keys. Citus re-creates the guards as row triggers and keeps a key to
the chart (``ledger.store.citus``); a database already distributed is left as it is.

Revision ID: 0019
Revises: 0018
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0019'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# the lines' statement trigger function of revision 0018, with ``keys`` before its period lock;
# its line count check reads each entry the statement adds lines to, and may also find one missing
_LINES_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
    e_id integer;
    declared integer;{declare}
BEGIN{keys}
    SELECT e.entry_date INTO d FROM (SELECT DISTINCT entry_id FROM ledger_new_rows) n
      JOIN journal_entry e ON e.id = n.entry_id
      JOIN accounting_period p ON p.period = to_char(e.entry_date, 'YYYY-MM') AND p.status = 'closed'
     ORDER BY e.entry_date LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    -- one index probe per entry (no ORDER BY: with it the planner walked the whole key)
    SELECT k.entry_id, e.line_count INTO e_id, declared
      FROM (SELECT entry_id FROM ledger_new_rows GROUP BY entry_id) k
      {join} journal_entry e ON e.id = k.entry_id
     WHERE {missing}(SELECT count(*) FROM journal_line l WHERE l.entry_id = k.entry_id) > e.line_count
     LIMIT 1;{refuse_missing}
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % already has its % lines: a line added later refused', e_id, declared
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$"""

# what the two foreign keys checked, once per statement: the accounts, locked first as the key
# locked them (FOR KEY SHARE, by `SHARE_ACCOUNTS`): a DELETE of one, or a change
# of its code, waits for this transaction and its guard then sees these lines; one deleted before
# is missing here (under REPEATABLE READ the lock refuses it as a concurrent delete); then the
# entries, by the line count's query (an entry is never deleted: the journal is append-only)
LINES_STATEMENT = _LINES_FUNCTION.format(declare="""
    codes text[];
    missing text;""", keys="""
    codes := ARRAY(SELECT DISTINCT account_code FROM ledger_new_rows);
    PERFORM ledger_share_accounts(codes);
    SELECT c INTO missing FROM unnest(codes) c WHERE NOT EXISTS (SELECT FROM account a WHERE a.code = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal line names account %, which is not in the chart', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;""", join="LEFT JOIN", missing="e.id IS NULL OR ", refuse_missing="""
    IF FOUND AND declared IS NULL THEN
        RAISE EXCEPTION 'journal line names entry %, which does not exist', e_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;""")

# the accounts' lock, taken as the tables' owner: a writer may only read the chart (ledger.store.roles),
# and PostgreSQL lets only a role with UPDATE on a table lock its rows (the key's own check ran as the owner)
SHARE_ACCOUNTS = """
CREATE OR REPLACE FUNCTION ledger_share_accounts(codes text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @schema@, pg_temp AS $$
BEGIN
    PERFORM FROM account WHERE code = ANY(codes) FOR KEY SHARE;
END $$"""

# revision 0018's function, put back by the downgrade
_LINES_0018 = _LINES_FUNCTION.format(declare="", keys="", join="JOIN", missing="", refuse_missing="")

# what the account key refused on the referenced side: deleting an account lines name, changing
# its code, truncating the chart under a journal with lines
ACCOUNT_IN_USE = """
CREATE OR REPLACE FUNCTION ledger_refuse_account_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT FROM journal_line) THEN
            RAISE EXCEPTION 'the chart of accounts is in use by journal lines: TRUNCATE of account refused'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.code = OLD.code THEN
        RETURN NEW;
    END IF;
    -- a line's statement locks its accounts (FOR KEY SHARE) until it commits: the row lock this
    -- statement took waited for it, and this query, with a snapshot of its own under READ
    -- COMMITTED, sees its lines; a transaction's snapshot under REPEATABLE READ would not
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'account %: % of an account only under READ COMMITTED', OLD.code, TG_OP
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF EXISTS (SELECT FROM journal_line WHERE account_code = OLD.code) THEN
        RAISE EXCEPTION 'account % is named by journal lines: % refused', OLD.code, TG_OP
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$"""

_ACCOUNT_TRIGGERS = (
    "CREATE TRIGGER account_in_use BEFORE UPDATE OF code OR DELETE ON account "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_account_in_use()",
    "CREATE TRIGGER account_in_use_truncate BEFORE TRUNCATE ON account "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_account_in_use()",
)


def _distributed(bind) -> bool:
    """True on a Citus coordinator whose books are distributed (``ledger db distribute``): its
    lines are checked by row triggers and keys of its own (the chart's included), left as they are."""
    if not bind.exec_driver_sql("SELECT to_regclass('pg_dist_partition') IS NOT NULL").scalar_one():
        return False
    return bool(bind.exec_driver_sql("SELECT EXISTS (SELECT FROM pg_dist_partition "
                                     "WHERE logicalrelid = 'journal_line'::regclass)").scalar_one())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(SHARE_ACCOUNTS.replace("@schema@", op.get_bind().dialect.identifier_preparer.quote(schema)))
    op.execute(LINES_STATEMENT)
    op.execute(ACCOUNT_IN_USE)
    for statement in _ACCOUNT_TRIGGERS:
        op.execute(statement)
    op.execute("ALTER TABLE journal_line DROP CONSTRAINT fk_journal_line_entry_id_journal_entry, "
               "DROP CONSTRAINT fk_journal_line_account_code_account")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or _distributed(op.get_bind()):
        return
    op.execute("ALTER TABLE journal_line ADD CONSTRAINT fk_journal_line_entry_id_journal_entry "
               "FOREIGN KEY (entry_id) REFERENCES journal_entry (id), "
               "ADD CONSTRAINT fk_journal_line_account_code_account "
               "FOREIGN KEY (account_code) REFERENCES account (code)")
    op.execute("DROP TRIGGER account_in_use_truncate ON account")
    op.execute("DROP TRIGGER account_in_use ON account")
    op.execute("DROP FUNCTION ledger_refuse_account_in_use()")
    op.execute(_LINES_0018)
    op.execute("DROP FUNCTION ledger_share_accounts(text[])")
