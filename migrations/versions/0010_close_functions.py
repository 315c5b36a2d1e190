"""docs/design.md §6.4-6.6, §9.2 and §9.5: what `ledger verify` trusts is written only by the close and the reopen.

PostgreSQL (``migrations/sql/0010_close_functions.postgresql.sql``):

- ``ledger_close_period(period, at, by, checks)``, SECURITY DEFINER (owned by the tables' owner,
  who runs the migration): takes the posting gate and the journal lock, checks the period's
  order, computes the seal in the server (every link into entry_seal, the close record into
  period_close) and locks the period; ``ledger_reopen_period(period, at, by, reason)`` likewise
  for the reopen. Neither is executable by PUBLIC; `ledger db roles` lets the writer run the
  first only.
- a trigger on period_close: a close only after a reopen (or as a period's first record), a
  reopen only of a closed period (one close record per close).
- INSERT, UPDATE, DELETE and TRUNCATE on period_close, entry_seal and accounting_period are
  revoked from every role but the owner (a writer of `ledger db roles` held INSERT and a
  column-level UPDATE there), so the migration alone closes the hole; run `ledger db roles`
  afterwards to grant the writer EXECUTE on the close.

SQLite (no roles): the same trigger rule.

The downgrade drops the functions and triggers; it does not give the privileges back (run `ledger
db roles` of the older version after it).

Revision ID: 0010
Revises: 0009
"""
from pathlib import Path
from typing import Sequence, Union

from alembic import op

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SQL = Path(__file__).resolve().parent.parent / "sql" / "0010_close_functions.postgresql.sql"
GATE_KEY = 5495873993171928582
"""The posting gate's advisory lock key, as ``ledger.store.events.GATE_KEY`` (b"LEDGER\\x06\\x06")."""
TABLES = ("period_close", "entry_seal", "accounting_period")

# every role but the owner that may write the three tables (table or column privileges), PUBLIC as 0
_REVOKE = """
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.relname, a.grantee
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND att.attacl IS NOT NULL
          CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))
                                        || coalesce(att.attacl, '{}'::aclitem[])) a
         WHERE n.nspname = current_schema() AND c.relname IN ('period_close', 'entry_seal', 'accounting_period')
           AND a.grantee <> c.relowner AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I FROM %s', r.relname,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END);
    END LOOP;
END $$"""

_SQLITE = (
    "CREATE TRIGGER period_close_one_close BEFORE INSERT ON period_close "
    "WHEN NEW.action = 'close' AND (SELECT action FROM period_close WHERE period = NEW.period "
    "ORDER BY id DESC LIMIT 1) = 'close' "
    "BEGIN SELECT RAISE(ABORT, 'period is already closed: one close record per close (reopen it first)'); END",
    "CREATE TRIGGER period_close_reopen_closed BEFORE INSERT ON period_close "
    "WHEN NEW.action = 'reopen' AND coalesce((SELECT action FROM period_close WHERE period = NEW.period "
    "ORDER BY id DESC LIMIT 1), '') <> 'close' "
    "BEGIN SELECT RAISE(ABORT, 'period is not closed: nothing to reopen'); END",
)


def _execute(statement: str) -> None:
    """Run one statement through a raw cursor (PL/pgSQL bodies use '%' placeholders)."""
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        for statement in _SQLITE:
            op.execute(statement)
        return
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar_one()
    text = (SQL.read_text(encoding="utf-8").replace("@schema@", bind.dialect.identifier_preparer.quote(schema))
            .replace("@gate@", str(GATE_KEY)))
    for statement in text.split("\n-- split\n"):
        if any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines()):
            _execute(statement)
    _execute(_REVOKE)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS period_close_one_close")
        op.execute("DROP TRIGGER IF EXISTS period_close_reopen_closed")
        return
    for statement in ("DROP FUNCTION ledger_reopen_period(text, timestamptz, text, text)",
                      "DROP FUNCTION ledger_close_period(text, timestamptz, text, text)",
                      "DROP TRIGGER period_close_sequence ON period_close",
                      "DROP FUNCTION ledger_check_close_sequence()",
                      "DROP FUNCTION ledger_sealed_bytes(date, date)",
                      "DROP AGGREGATE ledger_chain(text, bytea)",
                      "DROP FUNCTION ledger_chain_link(text, text, bytea)"):
        _execute(statement)
