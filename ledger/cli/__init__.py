"""The `ledger` command line (click). Thin: each command parses its arguments, calls one
service function, and prints. Exit codes: 0 ok, 1 invalid input or failed check (the message
names file, line, field and value), 2 usage error.

Layout: this module holds the root group and ``main``; ``_common`` the context object, shared
options and output helpers; one module per command or group of commands, named in ``COMMANDS``
and imported by click when first needed (``_lazy.LazyGroup``). No module of this package imports
another's commands or this module, and none imports SQLAlchemy, SQLModel, pydantic models, rich
or the reports at module level: ``ledger --help`` and ``ledger --version`` import only click.
"""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path

import click

from ledger.cli._common import DEFAULT_URL, Ctx
from ledger.cli._lazy import LazyGroup
from ledger.errors import NO_VALUE, CatalogError, LedgerError

__all__ = ["cli", "main"]

COMMANDS = {
    "init": "ledger.cli.books:init",
    "import": "ledger.cli.books:import_",
    "verify": "ledger.cli.books:verify",
    "close": "ledger.cli.close:close",
    "reopen": "ledger.cli.close:reopen",
    "report": "ledger.cli.report:report",
    "catalog": "ledger.cli.catalog:catalog",
    "invoices": "ledger.cli.invoices:invoices",
    "demo": "ledger.cli.demo:demo",
    "db": "ledger.cli.db:db",
    "export": "ledger.cli.export:export",
    "serve": "ledger.cli.serve:serve",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--database-url", envvar="LEDGER_DATABASE_URL", default=DEFAULT_URL, show_default=True,
              help="SQLAlchemy URL: sqlite:///file.db or postgresql://user@host/db (env LEDGER_DATABASE_URL).")
@click.option("--catalog", "catalog_path", envvar="LEDGER_CATALOG", default="ledger.toml", show_default=True,
              help="Catalog file: company, rate card, plans, top-up packs (env LEDGER_CATALOG).")
@click.version_option(package_name="credit-ledger")
@click.pass_context
def cli(ctx: click.Context, database_url: str, catalog_path: str) -> None:
    """Double-entry ledger and revenue recognition for prepaid AI credits."""
    if not _URL.match(database_url):
        raise click.BadParameter(
            f"{_hide_password(database_url)!r} is not a database URL; a URL looks like "
            "sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname", param_hint="--database-url")
    source = ctx.get_parameter_source("catalog_path")
    if source is not click.core.ParameterSource.DEFAULT and not Path(catalog_path).is_file():
        raise CatalogError(catalog_path, "", NO_VALUE, "catalog file not found")  # given, so not optional
    ctx.obj = Ctx(database_url, catalog_path)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
"""What SQLAlchemy's make_url needs at least: a scheme (dialect[+driver]) and "://"; checked
without importing SQLAlchemy, so a malformed --database-url is a usage error, not a traceback."""


def _hide_password(url: str) -> str:
    """``url`` with whatever sits between the user's ":" and the "@" replaced by ***."""
    return re.sub(r"(^|//|[^:/@]+):[^@/]*@", lambda m: f"{m.group(1)}:***@", url)


def main() -> None:
    """Entry point: LedgerError -> message on stderr, exit 1 (never a traceback for bad input)."""
    try:
        _run()
    finally:
        # The command is done and the process exits: what it leaves in memory (an import's kept
        # books: millions of objects) needs no more cyclic collection. Frozen, it is skipped by
        # the collections of the interpreter's shutdown (most of a 33,000-event import's exit time).
        gc.freeze()


def _run() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LedgerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a database error: one line, exit 1 (IntegrityError, permission denied)
        from ledger.cli._errors import database_error_message

        if (message := database_error_message(exc)) is None:
            raise
        click.echo(f"error: {message}", err=True)
        sys.exit(1)
    sys.exit(0)
