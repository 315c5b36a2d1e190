"""Least-privilege PostgreSQL roles for the ledger (docs/design.md §9.5): a writer and an auditor.

``apply_roles`` creates (idempotently) two roles on the database an engine points at and makes
their privileges exactly what the policy below says, revoking anything else they held there:

- the **writer** (default ``ledger_writer``) may run imports and closes: INSERT and SELECT on the
  journal tables and nothing else on them (no UPDATE, DELETE or TRUNCATE), and on every other
  table exactly what the engine needs (``WRITER_POLICY``: a column-level UPDATE where the engine
  moves a cursor or a status), plus USAGE on the id sequences of the tables it inserts into and
  EXECUTE on ``ledger_lock_journal()`` (the close's lock, below) and ``ledger_close_period()``;
- the **auditor** (default ``ledger_auditor``) may only SELECT, on every table.

What `ledger verify` trusts (the close records, the seals and the period locks: tables
period_close, entry_seal and accounting_period) the writer may only read. A close writes them
through ``ledger_close_period()`` (migration 0010: SECURITY DEFINER, owned by the tables' owner,
computing the seal in the server), which the writer may run; a reopen through
``ledger_reopen_period()``, which it may not: reopening is for the tables' owner. So no row the
writer can write forges a close, a reopen, a lock or a seal. Row-level security
(``TablePolicy.rows``) is available for a table whose writer rows need a check; no table uses it
now, and a run removes the ``ledger_read`` and ``ledger_write_*`` policies (and disables
row-level security) where earlier versions created them.

Tables are enumerated from the live schema (every table, view, materialized view and foreign
table of the schema the ledger lives in). A table without an entry in ``WRITER_POLICY`` is an
error (RolesError), so a table added by a future migration is neither silently granted nor
silently forgotten: give it a policy, then run ``ledger db roles`` again.

The schema's default PUBLIC privileges (USAGE, and CREATE before PostgreSQL 15) are revoked and
USAGE is granted to the two roles by name; PUBLIC keeps no privilege on the ledger's tables and
sequences. Database-level privileges of PUBLIC (CONNECT, TEMPORARY) are left as the cluster has
them; the roles get CONNECT explicitly, so revoking it from PUBLIC later keeps them working.

Logging in: new roles are NOLOGIN (they exist to be granted to people or services, or to be
assumed with SET ROLE) unless ``login`` is true (LOGIN without a password: for trust, peer or
certificate authentication) or a password is given (LOGIN with that password, sent to the server
as a SCRAM verifier computed by libpq, so the clear text never reaches the server's logs). An
existing role keeps its login attributes unless ``login`` or a password is given. A superuser,
a role with BYPASSRLS, or a member of the tables' owner is refused: privileges would not bind it.

The close's lock: on PostgreSQL the close holds a SHARE ROW EXCLUSIVE lock on ``journal_entry``
(so no posting slips into the period while it is checked and locked), and PostgreSQL lets only a
role with UPDATE, DELETE or TRUNCATE on a table take that lock. So that the writer needs none of
them, ``apply_roles`` (re)creates ``ledger_lock_journal()``, a SECURITY DEFINER function owned by
the tables' owner that takes exactly that lock and nothing else, executable by the writer only;
``lock_journal(session)`` takes the lock through it when it exists, else with LOCK TABLE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger.store.db import is_postgres
from ledger.errors import LedgerError

DEFAULT_WRITER = "ledger_writer"
DEFAULT_AUDITOR = "ledger_auditor"
JOURNAL_TABLES = ("journal_entry", "journal_line")
LOCK_FUNCTION = "ledger_lock_journal"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RolesError(LedgerError):
    """The roles cannot be set up as asked: not PostgreSQL, a table without a policy, a role
    that privileges would not bind (superuser, BYPASSRLS, member of the owner), ... (exit 1)."""


@dataclass(frozen=True)
class TablePolicy:
    """What the writer may do on one table; the auditor may only SELECT, on every table.

    privileges: table-level privileges (a subset of SELECT, INSERT; never DELETE or TRUNCATE);
    update: the columns the writer may UPDATE (a column-level grant; empty: no UPDATE at all);
    why: the code that needs them.
    rows: a row-level security check (SQL boolean over the new row) that every row the writer
    inserts or updates must pass; "" for none. With one, row-level security is enabled on the
    table: every role may read every row (policy ``ledger_read``), the writer may write the rows
    that pass the check (policy ``ledger_write_<writer>``), and other non-owner roles none.
    """

    privileges: tuple[str, ...]
    update: tuple[str, ...] = ()
    why: str = ""
    rows: str = ""

    def describe(self) -> str:
        """E.g. "SELECT, INSERT, UPDATE (steps_through)"."""
        return ", ".join(self.privileges) + (f", UPDATE ({', '.join(self.update)})" if self.update else "")


def _append(why: str) -> TablePolicy:
    return TablePolicy(("SELECT", "INSERT"), why=why)


# The writer's privileges, table by table (docs/design.md §9.5). Found by reading engine.py,
# close.py, invoicing.py and posting.py, and proved by tests/integration/test_roles.py, which runs imports of
# every event type and closes as the writer. Tables absent from the live schema are skipped.
WRITER_POLICY: dict[str, TablePolicy] = {
    "alembic_version": TablePolicy(("SELECT",), why="open_engine reads the schema revision"),
    "account": TablePolicy(("SELECT",), why="the chart is seeded by `ledger init`, run by the owner"),
    "journal_entry": _append("posting.post; append-only (also refused by triggers)"),
    "journal_line": _append("posting.post; append-only (also refused by triggers)"),
    "import_batch": TablePolicy(("SELECT", "INSERT"), ("posted", "quarantined", "late"),
                                "engine.import_events writes the batch, then its counts"),
    "event": _append("business events as received"),
    "usage_event": _append("usage as received"),
    "usage_draw": TablePolicy(("SELECT",), why="a view: which grants each usage event drew from"),
    "usage_draw_legacy": TablePolicy(("SELECT",), why="draws of converted books; written by the migration only"),
    "usage_source": _append("the source of a usage row its import batch does not give back"),
    "quarantine": _append("usage kept out of the books"),
    "customer": TablePolicy(("SELECT", "INSERT"), ("steps_through", "book_version"),
                            "customer.created; the writer moves the steps_through cursor and the book version"),
    "credit_grant": _append("grants (lots) are written once"),
    "subscription": TablePolicy(("SELECT", "INSERT"), ("end_date", "cancel_event_id"),
                                "subscription.started; subscription.cancelled sets the end"),
    "subscription_period": _append("one billed month of a subscription"),
    "guarantee": _append("guarantee.enrolled"),
    "guarantee_month": _append("a guarantee month evaluated at its close"),
    "invoice": _append("invoices and credit notes are never changed once issued"),
    "invoice_line": _append("lines of an invoice"),
    "document_sequence": TablePolicy(("SELECT", "INSERT"), ("last_number",),
                                     "invoicing.take_number: INSERT .. ON CONFLICT DO NOTHING, "
                                     "SELECT .. FOR UPDATE, UPDATE last_number"),
    "webhook_delivery": TablePolicy(("SELECT", "INSERT"), ("status", "attempts", "next_attempt_at",
                                                           "delivered_at", "response_status", "last_error"),
                                    "ledger serve queues usage alerts, then records each delivery attempt"),
    # What verify trusts: written only by ledger_close_period() (EXECUTE for the writer) and the
    # owner's ledger_reopen_period() (migration 0010), never by the writer's own INSERT or UPDATE.
    "accounting_period": TablePolicy(("SELECT",), why="closed_periods; ledger_close_period() locks a period"),
    "period_close": TablePolicy(("SELECT",), why="the audit trail; ledger_close_period() records the close"),
    "entry_seal": TablePolicy(("SELECT",), why="the seals; ledger_close_period() stores the chain"),
}
CLOSE_FUNCTION = "ledger_close_period(text, timestamptz, text, text)"
"""The close's SECURITY DEFINER function (migration 0010), executable by the writer."""

_ALLOWED_TABLE_PRIVILEGES = {"SELECT", "INSERT"}
_ALL_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _check_policy(policy: dict[str, TablePolicy]) -> None:
    for table in JOURNAL_TABLES:
        p = policy.get(table)
        if p is None or set(p.privileges) != {"SELECT", "INSERT"} or p.update:
            raise RolesError(f"the writer's policy for journal table {table} must be exactly INSERT, SELECT "
                             f"(it is {p.describe() if p else 'missing'})")
    for table, p in policy.items():
        bad = set(p.privileges) - _ALLOWED_TABLE_PRIVILEGES
        if bad:
            raise RolesError(f"the writer's policy for {table} grants {', '.join(sorted(bad))}: only SELECT, "
                             "INSERT and column-level UPDATE are allowed")


@dataclass
class RolesPlan:
    """What ``plan_roles`` found and will run.

    schema: the ledger's schema; owner: the role owning journal_entry; tables: live table name ->
    the writer's TablePolicy; sequences: live sequence name -> the table it belongs to, for those
    the writer gets USAGE on; statements: the SQL, in order (passwords shown as '***');
    created: the roles that did not exist yet.
    """

    schema: str
    owner: str
    writer: str
    auditor: str
    tables: dict[str, TablePolicy] = field(default_factory=dict)
    sequences: dict[str, str] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    _secret: dict[int, str] = field(default_factory=dict, repr=False)

    def sql(self) -> list[str]:
        """The statements to execute (with the password verifiers filled in)."""
        return [self._secret.get(i, s) for i, s in enumerate(self.statements)]


def check_role_name(name: str) -> str:
    """``name`` if it is a plain lower-case identifier of at most 63 characters not starting with
    ``pg_``; raises RolesError otherwise."""
    if not ROLE_NAME.match(name) or name.startswith("pg_"):
        raise RolesError(f"role name {name!r} is not allowed: use lower-case letters, digits and _ "
                         "(at most 63, not starting with a digit or pg_)")
    return name


def live_relations(conn: sa.Connection, schema: str) -> tuple[dict[str, str], dict[str, str | None]]:
    """(tables, sequences) of ``schema``: table name -> relkind (r, p, v, m, f); sequence name ->
    the table owning it (serial or identity column), None when no table owns it."""
    tables = dict(conn.execute(sa.text(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        # an extension's own relations (Citus's views citus_tables, citus_schemas) are not the ledger's
        "AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.classid = 'pg_class'::regclass AND x.objid = c.oid "
        "AND x.deptype = 'e') ORDER BY c.relname"), {"s": schema}).all())
    sequences = dict(conn.execute(sa.text(
        "SELECT s.relname, t.relname FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace "
        "LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
        " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "LEFT JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE n.nspname = :s AND s.relkind = 'S' ORDER BY s.relname"), {"s": schema}).all())
    return tables, sequences


def plan_roles(conn: sa.Connection, writer: str = DEFAULT_WRITER, auditor: str = DEFAULT_AUDITOR, *,
               login: bool = False, writer_password: str | None = None, auditor_password: str | None = None,
               policy: dict[str, TablePolicy] | None = None) -> RolesPlan:
    """Read the live schema and roles and return the statements that make the privileges exactly
    the policy (nothing is changed).

    raises RolesError: not PostgreSQL; bad or equal role names; a live table or sequence without
    a policy; a policy naming a column the table does not have; an existing role that is a
    superuser, has BYPASSRLS or is a member of the tables' owner; a connected role that can
    neither act as the owner nor is a superuser.
    """
    if conn.dialect.name != "postgresql":
        raise RolesError("roles need PostgreSQL: SQLite has no roles or privileges")
    policy = WRITER_POLICY if policy is None else policy
    _check_policy(policy)
    check_role_name(writer)
    check_role_name(auditor)
    if writer == auditor:
        raise RolesError(f"the writer and the auditor must be different roles (both are {writer!r})")
    schema, owner, me = _schema_owner_and_me(conn)
    tables, sequences = _checked_relations(conn, schema, policy)
    plan = RolesPlan(schema, owner, writer, auditor, {t: policy[t] for t in tables})
    plan.sequences = {s: t for s, t in sequences.items() if "INSERT" in policy[t].privileges}  # type: ignore[index]
    plan.statements.append("SELECT pg_advisory_xact_lock(hashtext('ledger db roles'))")
    _plan_role_statements(conn, plan, login, {writer: writer_password, auditor: auditor_password})
    _plan_grants(conn, plan)
    _plan_lock_function(conn, plan, me)
    return plan


def _schema_owner_and_me(conn: sa.Connection) -> tuple[str, str, str]:
    """(the current schema, the owner of its journal_entry, the connected role); raises
    RolesError when there is no schema or no journal_entry, or when the connected role neither is
    a superuser nor may act as the owner."""
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    if schema is None:
        raise RolesError("no schema on the search_path: cannot find the ledger's tables")
    owner = conn.execute(sa.text(
        "SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relname = 'journal_entry'"), {"s": schema}).scalar_one_or_none()
    if owner is None:
        raise RolesError(f"no journal_entry table in schema {schema}: run `ledger init` first")
    me, super_ = conn.execute(sa.text(
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")).one()
    if not super_ and not conn.execute(sa.text("SELECT pg_has_role(current_user, :o, 'USAGE')"),
                                       {"o": owner}).scalar_one():
        raise RolesError(f"connected as {me}, which neither owns the ledger's tables ({owner}) nor is a superuser: "
                         "connect as the owner (who also needs CREATEROLE) or a superuser")
    return schema, owner, me


def _checked_relations(conn: sa.Connection, schema: str, policy: dict[str, TablePolicy]
                       ) -> tuple[dict[str, str], dict[str, str | None]]:
    """``live_relations`` of ``schema``, after checking that the policy covers them: every table
    has a policy naming only columns it has, the journal tables exist, and every sequence belongs
    to a live table (raises RolesError otherwise)."""
    tables, sequences = live_relations(conn, schema)
    missing = [t for t in tables if t not in policy]
    if missing:
        raise RolesError(f"no privilege policy for table(s) {', '.join(missing)} in schema {schema}: add them to "
                         "ledger.store.roles.WRITER_POLICY (the writer's privileges; the auditor reads every table)")
    for t in JOURNAL_TABLES:
        if t not in tables:
            raise RolesError(f"no {t} table in schema {schema}: run `ledger init` first")
    for t in tables:
        if policy[t].update:
            cols = set(conn.execute(sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"),
                {"s": schema, "t": t}).scalars())
            unknown = [c for c in policy[t].update if c not in cols]
            if unknown:
                raise RolesError(f"the writer's policy for {t} names column(s) {', '.join(unknown)} it does not have")
    orphans = [s for s, t in sequences.items() if t is None or t not in tables]
    if orphans:
        raise RolesError(f"no privilege policy for sequence(s) {', '.join(orphans)} in schema {schema}: "
                         "only sequences owned by a table's column are granted (USAGE when the writer may INSERT)")
    return tables, sequences


def _plan_role_statements(conn: sa.Connection, plan: RolesPlan, login: bool, passwords: dict[str, str | None]
                          ) -> None:
    """Add the CREATE/ALTER ROLE statements of the writer and the auditor (``passwords``: role ->
    password or None) to ``plan``; raises RolesError for an existing role that privileges would
    not bind (superuser, BYPASSRLS, member of the owner)."""
    q = conn.dialect.identifier_preparer.quote
    add = plan.statements.append
    existing = {r.rolname: r for r in conn.execute(sa.text(
        "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, pg_has_role(rolname, :o, 'MEMBER') AS owns "
        "FROM pg_roles WHERE rolname IN (:w, :a)"), {"o": plan.owner, "w": plan.writer, "a": plan.auditor})}
    driver = conn.connection.driver_connection
    for role in (plan.writer, plan.auditor):
        password = passwords[role]
        r = existing.get(role)
        if r is not None and (r.rolsuper or r.rolbypassrls):
            raise RolesError(f"role {role} is a superuser or has BYPASSRLS: privileges would not bind it")
        if r is not None and r.owns:
            raise RolesError(f"role {role} is (a member of) {plan.owner}, the owner of the ledger's tables: "
                             "privileges would not bind it")
        if password is not None:
            verifier = driver.pgconn.encrypt_password(password.encode(), role.encode(), None).decode()
            plan._secret[len(plan.statements)] = (
                f"{'ALTER' if r is not None else 'CREATE'} ROLE {q(role)} LOGIN PASSWORD '{verifier}'")
            add(f"{'ALTER' if r is not None else 'CREATE'} ROLE {q(role)} LOGIN PASSWORD '***'")
        elif r is None:
            add(f"CREATE ROLE {q(role)} {'LOGIN' if login else 'NOLOGIN'}")
        elif login:
            add(f"ALTER ROLE {q(role)} LOGIN")
        if r is None:
            plan.created.append(role)


def _plan_grants(conn: sa.Connection, plan: RolesPlan) -> None:
    """Add to ``plan`` the statements that revoke everything from PUBLIC and the two roles, then
    grant the database, schema, table, column and sequence privileges of the policy, and the
    row-level security policies of the tables that have a ``rows`` check."""
    q = conn.dialect.identifier_preparer.quote
    add = plan.statements.append
    schema, writer, auditor = plan.schema, plan.writer, plan.auditor
    both = f"{q(writer)}, {q(auditor)}"
    db = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    add(f"GRANT CONNECT ON DATABASE {q(db)} TO {both}")
    add(f"REVOKE ALL ON SCHEMA {q(schema)} FROM PUBLIC")
    add(f"REVOKE ALL ON SCHEMA {q(schema)} FROM {both}")
    add(f"GRANT USAGE ON SCHEMA {q(schema)} TO {both}")
    add(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q(schema)} FROM PUBLIC, {both}")
    add(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q(schema)} FROM PUBLIC, {both}")
    add(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {q(schema)} FROM {both}")
    for t, p in plan.tables.items():
        add(f"GRANT {', '.join(p.privileges)} ON {q(schema)}.{q(t)} TO {q(writer)}")
        if p.update:
            add(f"GRANT UPDATE ({', '.join(q(c) for c in p.update)}) ON {q(schema)}.{q(t)} TO {q(writer)}")
        add(f"GRANT SELECT ON {q(schema)}.{q(t)} TO {q(auditor)}")
    for s in plan.sequences:
        add(f"GRANT USAGE ON SEQUENCE {q(schema)}.{q(s)} TO {q(writer)}")
    _plan_rls_cleanup(conn, plan)
    for t, p in plan.tables.items():
        if p.rows:
            table = f"{q(schema)}.{q(t)}"
            add(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            add(f"DROP POLICY IF EXISTS ledger_read ON {table}")
            add(f"CREATE POLICY ledger_read ON {table} FOR SELECT USING (true)")
            add(f"DROP POLICY IF EXISTS {q('ledger_write_' + writer)} ON {table}")
            add(f"CREATE POLICY {q('ledger_write_' + writer)} ON {table} TO {q(writer)} USING (true) WITH CHECK ({p.rows})")


def _plan_rls_cleanup(conn: sa.Connection, plan: RolesPlan) -> None:
    """Add to ``plan`` the statements that drop the ``ledger_read`` and ``ledger_write_*``
    policies of tables whose policy has no ``rows`` check (an earlier version's), and disable
    row-level security on them when no other policy is left."""
    q = conn.dialect.identifier_preparer.quote
    rows = conn.execute(sa.text(
        "SELECT c.relname, p.polname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE n.nspname = :s AND c.relrowsecurity "
        "ORDER BY c.relname, p.polname"), {"s": plan.schema}).all()
    policies: dict[str, list[str]] = {}
    for table, name in rows:
        policies.setdefault(table, []).extend([name] if name else [])
    for table, names in policies.items():
        if table not in plan.tables or plan.tables[table].rows:
            continue
        ours = [n for n in names if n == "ledger_read" or n.startswith("ledger_write_")]
        for name in ours:
            plan.statements.append(f"DROP POLICY {q(name)} ON {q(plan.schema)}.{q(table)}")
        if len(ours) == len(names):
            plan.statements.append(f"ALTER TABLE {q(plan.schema)}.{q(table)} DISABLE ROW LEVEL SECURITY")


def _plan_lock_function(conn: sa.Connection, plan: RolesPlan, me: str) -> None:
    """Add to ``plan`` the statements that (re)create ``ledger_lock_journal()``, owned by the
    tables' owner and executable by the writer only (the close's lock, see the module docstring),
    and grant the writer EXECUTE on ``ledger_close_period()`` (migration 0010) when it exists."""
    q = conn.dialect.identifier_preparer.quote
    add = plan.statements.append
    fn = f"{q(plan.schema)}.{LOCK_FUNCTION}()"
    add(f"CREATE OR REPLACE FUNCTION {fn} RETURNS void LANGUAGE plpgsql SECURITY DEFINER "
        f"SET search_path = pg_catalog, pg_temp AS $$ BEGIN "
        f"LOCK TABLE {q(plan.schema)}.journal_entry IN SHARE ROW EXCLUSIVE MODE; END $$")
    if me != plan.owner:
        add(f"ALTER FUNCTION {fn} OWNER TO {q(plan.owner)}")
    add(f"COMMENT ON FUNCTION {fn} IS 'The close''s SHARE ROW EXCLUSIVE lock on journal_entry, for a writer "
        "role without UPDATE, DELETE or TRUNCATE on it (ledger db roles)'")
    add(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    add(f"GRANT EXECUTE ON FUNCTION {fn} TO {q(plan.writer)}")
    close = f"{q(plan.schema)}.{CLOSE_FUNCTION}"
    if conn.execute(sa.text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": close}).scalar_one():
        add(f"GRANT EXECUTE ON FUNCTION {close} TO {q(plan.writer)}")


def apply_roles(engine: Engine, writer: str = DEFAULT_WRITER, auditor: str = DEFAULT_AUDITOR, *,
                login: bool = False, writer_password: str | None = None, auditor_password: str | None = None,
                dry_run: bool = False) -> RolesPlan:
    """Plan (see ``plan_roles``) and run the statements in one transaction; returns the plan.

    Idempotent: running it again changes nothing, and it removes privileges the roles gained
    outside the policy on this database's ledger schema. ``dry_run``: plan only.
    raises RolesError (nothing changed) and lets database errors through (e.g. insufficient
    privilege to CREATE ROLE without CREATEROLE).
    """
    if engine.dialect.name != "postgresql":
        raise RolesError("roles need PostgreSQL: SQLite has no roles or privileges "
                         "(an embedded database trusts whoever can open its file)")
    with engine.begin() as conn:
        plan = plan_roles(conn, writer, auditor, login=login, writer_password=writer_password,
                          auditor_password=auditor_password)
        if dry_run:
            conn.rollback()
            return plan
        cursor = conn.connection.cursor()
        try:
            for statement in plan.sql():
                cursor.execute(statement)
        finally:
            cursor.close()
    return plan


def effective_privileges(conn: sa.Connection, role: str, schema: str | None = None) -> dict[str, str]:
    """What ``role`` may do on each table of ``schema`` (default: the current schema), as the
    server decides it (own grants, PUBLIC's and inherited ones): table -> "SELECT, INSERT,
    UPDATE (a, b)", "" for nothing. For tests and for `ledger db roles` output."""
    schema = schema or conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    tables, _ = live_relations(conn, schema)
    out = {}
    for t in tables:
        qualified = f'"{schema}"."{t}"'
        have = [p for p in _ALL_PRIVILEGES if conn.execute(
            sa.text("SELECT has_table_privilege(:r, :t, :p)"), {"r": role, "t": qualified, "p": p}).scalar_one()]
        text = ", ".join(have)
        if "UPDATE" not in have:
            cols = list(conn.execute(sa.text(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 "
                "AND NOT a.attisdropped AND has_column_privilege(:r, a.attrelid, a.attnum, 'UPDATE') "
                "ORDER BY a.attnum"), {"r": role, "t": qualified}).scalars())
            if cols:
                text += (", " if text else "") + f"UPDATE ({', '.join(cols)})"
        out[t] = text
    return out


def lock_journal(session: Session) -> None:
    """Take the close's SHARE ROW EXCLUSIVE lock on journal_entry for the rest of the transaction
    (PostgreSQL; nothing on SQLite, which serialises writers): through ``ledger_lock_journal()``
    when `ledger db roles` created it (so a writer without UPDATE, DELETE or TRUNCATE on the
    journal can close), else with LOCK TABLE (the owner)."""
    if not is_postgres(session):
        return
    if session.execute(sa.text(f"SELECT to_regprocedure('{LOCK_FUNCTION}()') IS NOT NULL")).scalar_one():
        session.execute(sa.text(f"SELECT {LOCK_FUNCTION}()"))
    else:
        session.execute(sa.text("LOCK TABLE journal_entry IN SHARE ROW EXCLUSIVE MODE"))
