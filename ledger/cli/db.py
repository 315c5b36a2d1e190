"""`ledger db ...`: database administration commands.

``ledger db roles`` sets up the least-privilege PostgreSQL roles of ``ledger.store.roles``: a writer
that may import and close (INSERT and SELECT on the journal, nothing else there) and an auditor
that may only read. Run it as the owner of the ledger's tables (with CREATEROLE) or a superuser,
after ``ledger init`` and again after every migration; it is idempotent.

A privilege error of any command becomes one line and exit 1: see ``ledger.cli._errors``.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ledger.cli._common import DEFAULT_AUDITOR, DEFAULT_WRITER, install_db_error_hook


def _password(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise click.BadParameter(f"environment variable {var} is unset or empty", param_hint=option)
    return value


def _role(ctx, param, value: str) -> str:
    from ledger.services.roles import RolesError, check_role_name

    try:
        return check_role_name(value)
    except RolesError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("db")
def db() -> None:
    """Database administration (PostgreSQL roles, Citus distribution)."""


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
    and set their privileges to the policy of ledger.store.roles, revoking anything else.

    Run it as the tables' owner (with CREATEROLE) or a superuser, after `ledger init` and after
    every migration (a table without a policy is an error). New roles are NOLOGIN unless --login
    or a password is given; existing roles keep their login attributes unless one is given.
    """
    from ledger.services.roles import create_roles

    install_db_error_hook()
    writer_password = _password(writer_env, "--writer-password-env")
    auditor_password = _password(auditor_env, "--auditor-password-env")
    done = create_roles(obj.url, writer, auditor, login=login, writer_password=writer_password,
                        auditor_password=auditor_password, dry_run=dry_run)
    plan, have, state = done.plan, done.have, done.state
    if dry_run:
        for statement in plan.statements:
            click.echo(statement + ";")
        return
    if (fmt or ("table" if sys.stdout.isatty() else "json")) == "json":
        click.echo(json.dumps({"database": done.where, "schema": plan.schema, "owner": plan.owner,
                               "roles": {writer: {"role": "writer", "state": state[writer]},
                                         auditor: {"role": "auditor", "state": state[auditor]}},
                               "tables": [{"table": t, "writer": have[writer][t], "auditor": have[auditor][t],
                                           "writer_rows": p.rows or None} for t, p in plan.tables.items()],
                               "sequences": {s: {"writer": "USAGE"} for s in plan.sequences}}, indent=2))
        return
    click.echo(f"roles ready on {done.where} (schema {plan.schema}, owner {plan.owner}): "
               f"writer {writer} ({state[writer]}), auditor {auditor} ({state[auditor]})")
    cells = {t: have[writer][t] + (f"; rows: {p.rows}" if p.rows else "") for t, p in plan.tables.items()}
    width = max(len(t) for t in plan.tables)
    wwidth = max(len(v) for v in cells.values())
    click.echo(f"  {'table':<{width}}  {'writer':<{wwidth}}  auditor")
    for t in plan.tables:
        click.echo(f"  {t:<{width}}  {cells[t]:<{wwidth}}  {have[auditor][t]}")
    click.echo(f"  sequences (writer USAGE): {', '.join(plan.sequences) or 'none'}")


@db.command("distribute")
@click.option("--shard-count", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Shards per distributed table (a few times the number of worker cores).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.pass_obj
def distribute(obj, shard_count: int, fmt: str) -> None:
    """Distribute the books over a Citus cluster by customer, in one transaction.

    Run it as a superuser on the coordinator's database at schema head (`ledger init`), with the
    citus extension created and the workers added (citus_add_node). Every table of a customer's
    books becomes a distributed table by customer id in one co-location group, the chart and the
    period locks reference tables; import batches, close records, seal links and document numbers
    stay on the coordinator. Idempotent: a distributed database is reported as it is. Exit 1 with
    nothing changed when it cannot be done (no Citus, rows without a customer).
    """
    from ledger.services.distributing import DistributeError, DistributeFailed, distribute_books

    install_db_error_hook()
    try:
        where, done = distribute_books(obj.url, shard_count=shard_count)
    except (DistributeError, DistributeFailed) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps({"database": where, "already_distributed": done.already, "shard_count": done.shards or None,
                               "workers": [f"{h}:{p}" for h, p in done.workers], "tables": done.tables}, indent=2))
        return
    head = "already distributed" if done.already else f"distributed ({done.shards} shards a table)"
    click.echo(f"{where}: {head}; workers: {', '.join(f'{h}:{p}' for h, p in done.workers) or 'none (coordinator only)'}")
    width = max(len(t) for t in done.tables)
    for table, kind in done.tables.items():
        click.echo(f"  {table:<{width}}  {kind}")
