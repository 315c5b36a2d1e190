"""docs/design.md §8.4: ``ledger_expect(ok, what)``, PostgreSQL only. It raises SQLSTATE LX001 unless ``ok``
is true (NULL counts as false), and returns nothing otherwise.

`ledger.store.pipeline` uses it to post one usage event in one round trip. The call checks, under the
customer's row lock, what the process assumed when it applied the event to its kept book: the
book's token, the event id not stored yet, the same closed periods. A false check aborts the
pipelined statements after it, so nothing is written, and the process takes its two-round-trip
path. The function writes nothing and reads nothing; like every new function it is executable
by PUBLIC (`ledger db roles` does not need to grant it). SQLite has no stored functions and no
use for it.

Revision ID: 0008
Revises: 0007
"""
from typing import Sequence, Union

from alembic import op

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE FUNCTION ledger_expect(ok boolean, what text) RETURNS void LANGUAGE plpgsql "
                   "SET search_path = pg_catalog, pg_temp AS $$ BEGIN "
                   "IF ok IS NOT TRUE THEN "
                   "RAISE EXCEPTION 'ledger: % changed', what USING ERRCODE = 'LX001'; "
                   "END IF; END $$")
        op.execute("COMMENT ON FUNCTION ledger_expect(boolean, text) IS 'Raises SQLSTATE LX001 unless ok is "
                   "true: the check of ledger.store.pipeline''s one-round-trip posting'")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION ledger_expect(boolean, text)")
