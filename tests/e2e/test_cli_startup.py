"""The CLI starts without its heavy dependencies: `ledger --help`, `ledger --version` and every
`ledger SUBCOMMAND --help` import click and the CLI package, not SQLAlchemy, SQLModel, pydantic,
rich, matplotlib, WeasyPrint, pyarrow or the engine's modules (each command imports what it needs
when it runs). Checked on the `-X importtime` trace of a real subprocess; no timing assertions.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest

import ledger.cli
from ledger.cli import cli

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "pydantic_core", "matplotlib", "weasyprint", "pyarrow", "rich",
         "psycopg", "alembic", "jinja2", "reports")

# Every command of the CLI (a command that disappears, or a lazy table entry naming a wrong
# module or attribute, fails test_every_command_is_there).
COMMANDS = [
    (), ("catalog",), ("catalog", "show"), ("close",), ("db",), ("db", "distribute"), ("db", "roles"), ("demo",), ("export",),
    ("export", "journal"), ("import",), ("init",), ("invoices",), ("invoices", "list"), ("invoices", "render"),
    ("invoices", "show"), ("reopen",), ("report",), ("report", "ar-aging"), ("report", "audit-trail"), ("report", "margin"), ("report", "reviews"),
    ("report", "credits"), ("report", "customer"), ("report", "deferred-revenue"), ("report", "guarantees"),
    ("report", "quarantine"), ("report", "revenue"), ("report", "trial-balance"), ("report", "usage-alerts"),
    ("report", "waterfall"), ("serve",), ("verify",),
]


SCRIPT = Path(sys.executable).with_name("ledger")  # the console script of [project.scripts]


def _imported(*args: str, script: bool = False) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m ledger ARGS` (or the installed `ledger` script: both call
    ledger.cli.main) and return the modules it imported, from the trace on stderr."""
    entry = [str(SCRIPT)] if script else ["-m", "ledger"]
    r = subprocess.run([sys.executable, "-X", "importtime", *entry, *args],
                       capture_output=True, text=True, timeout=120, check=False)
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    modules.discard("package")  # the trace's header line
    return r, modules


def _assert_light(modules: set[str]) -> None:
    """No heavy package, and no ledger module but the package itself, ledger.errors and the CLI."""
    heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})
    engine = sorted(m for m in modules if m.split(".")[0] == "ledger"
                    and m not in ("ledger", "ledger.errors", "ledger.cli") and not m.startswith("ledger.cli."))
    assert not heavy and not engine, f"imported at start-up: {heavy + engine}"


def _paths(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    paths = [prefix]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            paths += _paths(command, prefix + (name,))
        else:
            paths.append(prefix + (name,))
    return paths


ENTRIES = [pytest.param(False, id="python -m ledger"),
           pytest.param(True, id="ledger", marks=pytest.mark.skipif(not SCRIPT.exists(), reason="no console script"))]


@pytest.mark.parametrize("script", ENTRIES)
def test_help_imports_nothing_heavy(script):
    r, modules = _imported("--help", script=script)
    assert r.returncode == 0, r.stderr
    prog = "ledger" if script else "python -m ledger"
    assert f"Usage: {prog} [OPTIONS] COMMAND [ARGS]..." in r.stdout and "verify" in r.stdout
    assert "ledger.cli" in modules  # the trace is read correctly
    _assert_light(modules)


@pytest.mark.parametrize("script", ENTRIES)
def test_version_imports_nothing_heavy_and_no_command(script):
    r, modules = _imported("--version", script=script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("ledger" if script else "python -m ledger") + f", version {version('credit-ledger')}\n"
    _assert_light(modules)
    assert sorted(m for m in modules if m.startswith("ledger.cli.")) == ["ledger.cli._common", "ledger.cli._lazy"]


def test_every_command_is_there():
    assert sorted(_paths()) == sorted(COMMANDS)


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=" ".join)
def test_subcommand_help_exits_0_without_heavy_imports(path):
    r, modules = _imported(*path, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: python -m ledger {' '.join(path)} "), r.stdout
    _assert_light(modules)


def test_no_module_of_the_cli_package_imports_the_database_at_module_level():
    names = sorted(f"ledger.cli.{m.name}" for m in pkgutil.iter_modules(ledger.cli.__path__) if m.name != "__main__")
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(' '.join(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    modules = set(r.stdout.split())
    assert set(names) <= modules
    _assert_light(modules)


def test_copied_constants_equal_their_originals():
    """ledger.cli._common copies a few constants so that help needs no SQLAlchemy."""
    from ledger import export
    from ledger.store import db, roles
    from ledger.cli import _common

    assert _common.DEFAULT_URL == db.DEFAULT_URL
    assert _common.DEFAULT_WRITER == roles.DEFAULT_WRITER
    assert _common.DEFAULT_AUDITOR == roles.DEFAULT_AUDITOR
    assert tuple(_common.EXPORT_FORMATS) == tuple(export.FORMATS)
