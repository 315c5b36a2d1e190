"""What every command module of the CLI shares: the context object, the common options, and
the output helpers. Cheap to import (click only): the database, the catalog's pydantic models and
the period parser are imported when a command uses them, not when the CLI starts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from ledger.catalog import Catalog
    from ledger.store.db import Session

# Copies of constants whose modules import SQLAlchemy at module level (ledger.store.db, ledger.store.roles,
# ledger.export); `ledger --help` and `ledger SUBCOMMAND --help` show them without importing
# those modules. tests/e2e/test_cli_startup.py checks that each copy equals its original.
DEFAULT_URL = "sqlite:///ledger.db"  # ledger.store.db.DEFAULT_URL
DEFAULT_WRITER = "ledger_writer"  # ledger.store.roles.DEFAULT_WRITER
DEFAULT_AUDITOR = "ledger_auditor"  # ledger.store.roles.DEFAULT_AUDITOR
EXPORT_FORMATS = ("csv", "jsonl", "beancount", "hledger")  # ledger.export.FORMATS

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
                      help="Output format (default: table on a terminal, json otherwise).")
OUT = click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
                   help="Write the output to this file instead of standard output.")
PERIOD = click.option("--period", required=True, help="Accounting period YYYY-MM (reporting timezone).")


class Ctx:
    def __init__(self, url: str, catalog_path: str):
        self.url = url
        self.catalog_path = catalog_path
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            from ledger.catalog import load_catalog

            self._catalog = load_catalog(self.catalog_path)
        return self._catalog

    def session(self) -> Session:
        """A new session on the database of --database-url, for one service call (which begins
        and ends its transactions); raises NotInitialisedError."""
        from ledger.store.admin import open_session

        install_db_error_hook()
        return open_session(self.url)


def install_db_error_hook() -> None:
    """Before a command's first database access: remember the connected role on privilege
    errors, for the one-line message of ``ledger.cli.main`` (see ledger.cli._errors)."""
    from ledger.store.admin import install_role_hook

    install_role_hook()


def _fmt(fmt: str | None) -> str:
    return fmt or ("table" if sys.stdout.isatty() else "json")


def _check_out(out: str | None) -> None:
    """raises ClickException (exit 1) when the folder of --out ``out`` does not exist."""
    if out and not Path(out).parent.is_dir():
        raise click.ClickException(f"cannot write {out}: folder {Path(out).parent} does not exist")


def _emit(text: str, out: str | None) -> None:
    if out:
        _check_out(out)
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


def emit_report(rep, fmt: str | None, out: str | None, *, wide: bool = False) -> None:
    """Write the `ledger.reporting.Report` ``rep`` as ``fmt`` (table | csv | json; default
    `_fmt`) to ``out`` or standard output. A table to standard output is printed by Rich
    (`reports.tables.print_table`: the terminal's width, styles only on a terminal). A report
    without rows says so in one line on standard error, and as a table prints nothing more
    (CSV and JSON still write their empty document, for the programs that read them); the exit
    code stays 0. wide: a table at least as wide as its columns need."""
    from reports.tables import natural_width, render, table_width, to_table

    fmt = _fmt(fmt)
    _check_out(out)
    if not rep.rows:
        click.echo(f"{rep.title}: nothing to report" + (f" (no activity in {rep.period})" if rep.period else ""),
                   err=True)
        if fmt == "table":
            return
    if fmt == "table" and out is None:
        from reports.tables import print_table

        print_table(rep, wide=wide)
    elif fmt == "table" and wide:
        _emit(to_table(rep, width=max(table_width(), natural_width(rep))), out)
    else:
        _emit(render(rep, fmt), out)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and the noun in the number it needs: 1 invoice, 2 invoices, 1,200 entries."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def _period(value: str) -> str:
    from ledger.core.periods import parse_period

    try:
        return parse_period(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
