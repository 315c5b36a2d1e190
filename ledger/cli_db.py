"""`ledger db ...`: database administration commands (registered on the `ledger` group in cli.py).

``ledger db roles`` sets up the least-privilege PostgreSQL roles of ``ledger.roles``: a writer
that may import and close (INSERT and SELECT on the journal, nothing else there) and an auditor
that may only read. Run it as the owner of the ledger's tables (with CREATEROLE) or a superuser,
after ``ledger init`` and again after every migration; it is idempotent.

``refused_message`` turns a privilege error (SQLSTATE 42501) into the one line the CLI prints
before exiting 1, naming the table, the role and the privilege it lacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import make_engine, open_engine
from ledger.roles import (
    DEFAULT_AUDITOR,
    DEFAULT_WRITER,
    RolesError,
    apply_roles,
    check_role_name,
    effective_privileges,
)


@sa.event.listens_for(Engine, "handle_error")
def _note_role(context) -> None:  # pragma: no cover - exercised through the CLI subprocess
    """On a privilege error, remember the connected role on the exception (for the message)."""
    if getattr(context.original_exception, "sqlstate", None) != "42501" or context.sqlalchemy_exception is None:
        return
    with contextlib.suppress(AttributeError):  # no connection (e.g. a failed connect) or another driver
        context.sqlalchemy_exception.ledger_role = context.connection.connection.driver_connection.info.user


_DENIED = re.compile(r"permission denied for (table|view|materialized view|sequence|schema|function) (\S+)")


def refused_message(exc: sa.exc.DBAPIError) -> str | None:
    """The message for a database error the CLI reports as exit 1 instead of a traceback: a
    privilege error (SQLSTATE 42501: permission denied, or a guard trigger raising it); None for
    any other error. E.g. "permission denied for table import_batch: role ledger_auditor has no
    INSERT privilege on it (...)"."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) != "42501":
        return None
    diag = getattr(orig, "diag", None)
    primary = ((diag.message_primary if diag is not None else None) or str(orig)).strip().splitlines()[0]
    role = getattr(exc, "ledger_role", None)
    who = f"role {role}" if role else "the connected role"
    m = _DENIED.match(primary)
    if m is None:
        if "row-level security" in primary and "accounting_period" in primary:
            return (f"{primary}: {who} may close periods but not reopen them "
                    "(reopening is for the owner of the ledger's tables)")
        return f"the database refused the change: {primary}"
    kind = m.group(1)
    statement = " ".join((exc.statement or "").split())
    verb = statement.split(" ", 1)[0].upper() if statement else ""
    tail = ""
    if kind in ("sequence", "schema"):
        needs = "USAGE"
    elif kind == "function":
        needs = "EXECUTE"
    elif verb == "LOCK":
        needs, tail = "UPDATE, DELETE or TRUNCATE", f", one of which `{statement}` needs"
    elif verb == "SELECT" and re.search(r"\bFOR (NO KEY )?UPDATE\b", statement, re.IGNORECASE):
        needs, tail = "UPDATE", ", which SELECT ... FOR UPDATE needs"
    elif verb in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "SELECT"):
        needs = verb
    else:
        needs = "required"
    return (f"{primary}: {who} has no {needs} privilege on it{tail} "
            "(privileges are set by `ledger db roles`: the writer imports and closes, the auditor only reads)")


def _password(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise click.BadParameter(f"environment variable {var} is unset or empty", param_hint=option)
    return value


def _role(ctx, param, value: str) -> str:
    try:
        return check_role_name(value)
    except RolesError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("db")
def db() -> None:
    """Database administration (PostgreSQL roles)."""


@db.command("roles")
@click.option("--writer", default=DEFAULT_WRITER, show_default=True, callback=_role,
              help="Role that may import and close: INSERT and SELECT on the journal, nothing else there.")
@click.option("--auditor", default=DEFAULT_AUDITOR, show_default=True, callback=_role,
              help="Role that may only read (SELECT on every table).")
@click.option("--login", is_flag=True,
              help="Make both roles LOGIN without a password (trust, peer or certificate authentication).")
@click.option("--writer-password-env", "writer_env", metavar="VAR", default=None,
              help="Make the writer LOGIN with the password in environment variable VAR.")
@click.option("--auditor-password-env", "auditor_env", metavar="VAR", default=None,
              help="Make the auditor LOGIN with the password in environment variable VAR.")
@click.option("--dry-run", is_flag=True, help="Print the SQL it would run; change nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format (default: table on a terminal, json otherwise).")
@click.pass_obj
def roles(obj, writer: str, auditor: str, login: bool, writer_env: str | None, auditor_env: str | None,
          dry_run: bool, fmt: str | None) -> None:
    """Create (idempotently) the least-privilege roles on the PostgreSQL database of --database-url
    and set their privileges to the policy of ledger.roles, revoking anything else.

    Run it as the tables' owner (with CREATEROLE) or a superuser, after `ledger init` and after
    every migration (a table without a policy is an error). New roles are NOLOGIN unless --login
    or a password is given; existing roles keep their login attributes unless one is given.
    """
    writer_password = _password(writer_env, "--writer-password-env")
    auditor_password = _password(auditor_env, "--auditor-password-env")
    if make_engine(obj.url).dialect.name != "postgresql":
        raise RolesError(f"roles need PostgreSQL: {obj.url} is SQLite, which has no roles or privileges "
                         "(an embedded database trusts whoever can open its file)")
    engine = open_engine(obj.url)
    try:
        plan = apply_roles(engine, writer, auditor, login=login, writer_password=writer_password,
                           auditor_password=auditor_password, dry_run=dry_run)
        if dry_run:
            for statement in plan.statements:
                click.echo(statement + ";")
            return
        with engine.connect() as conn:
            have = {r: effective_privileges(conn, r, plan.schema) for r in (writer, auditor)}
            logins = dict(conn.execute(sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN (:w, :a)"),
                                       {"w": writer, "a": auditor}).all())
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    state = {r: ("created" if r in plan.created else "existed") + (", LOGIN" if logins.get(r) else ", NOLOGIN")
             for r in (writer, auditor)}
    if (fmt or ("table" if sys.stdout.isatty() else "json")) == "json":
        click.echo(json.dumps({"database": where, "schema": plan.schema, "owner": plan.owner,
                               "roles": {writer: {"role": "writer", "state": state[writer]},
                                         auditor: {"role": "auditor", "state": state[auditor]}},
                               "tables": [{"table": t, "writer": have[writer][t], "auditor": have[auditor][t],
                                           "writer_rows": p.rows or None} for t, p in plan.tables.items()],
                               "sequences": {s: {"writer": "USAGE"} for s in plan.sequences}}, indent=2))
        return
    click.echo(f"roles ready on {where} (schema {plan.schema}, owner {plan.owner}): "
               f"writer {writer} ({state[writer]}), auditor {auditor} ({state[auditor]})")
    cells = {t: have[writer][t] + (f"; rows: {p.rows}" if p.rows else "") for t, p in plan.tables.items()}
    width = max(len(t) for t in plan.tables)
    wwidth = max(len(v) for v in cells.values())
    click.echo(f"  {'table':<{width}}  {'writer':<{wwidth}}  auditor")
    for t in plan.tables:
        click.echo(f"  {t:<{width}}  {cells[t]:<{wwidth}}  {have[auditor][t]}")
    click.echo(f"  sequences (writer USAGE): {', '.join(plan.sequences) or 'none'}")
