"""Database errors the CLI reports as one line and exit 1 instead of a traceback.

``refused_message`` turns a privilege error (SQLSTATE 42501) into the one line the CLI prints
before exiting 1, naming the table, the role and the privilege it lacks; the role is the one
`ledger.store.admin.install_role_hook` (called before a command's first database access) makes
SQLAlchemy remember on such an error. Importing this module imports no SQLAlchemy: a database
error can only be raised once a command has imported it.
"""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from typing import Any

_DENIED = re.compile(r"permission denied for (table|view|materialized view|sequence|schema|function) (\S+)")


def refused_message(exc: Any) -> str | None:
    """The message for a database error (a sqlalchemy.exc.DBAPIError) the CLI reports as exit 1
    instead of a traceback: a privilege error (SQLSTATE 42501: permission denied, or a guard
    trigger raising it); None for any other error. E.g. "permission denied for table import_batch: role ledger_auditor has no
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
        return f"the database refused the change: {primary}"
    if m.group(1) == "function" and "ledger_reopen_period" in primary:
        return (f"{primary}: {who} may close periods but not reopen them "
                "(reopening is for the owner of the ledger's tables)")
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


def database_error_message(exc: BaseException) -> str | None:
    """The one line for a database error (ArgumentError: a --database-url SQLAlchemy cannot
    open, e.g. an unknown dialect; IntegrityError: the database refused the change;
    a privilege error: see refused_message, also raised by psycopg itself on the reads of
    `ledger.store.pg`); None for anything else (re-raised by main)."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error) and getattr(exc, "ledger_role", None):
        # raised on the reads of ledger.store.pg.open_snapshot, which names the role on it
        return refused_message(SimpleNamespace(orig=exc, statement="SELECT", ledger_role=exc.ledger_role))
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None:  # SQLAlchemy never imported: not a database error
        return None
    if isinstance(exc, sa_exc.NoSuchModuleError) or (isinstance(exc, sa_exc.ArgumentError) and " URL" in str(exc)):
        return (f"--database-url is not a URL the ledger can open ({str(exc).strip().splitlines()[0]}); a URL looks like "
                "sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname")
    if isinstance(exc, sa_exc.IntegrityError):
        return f"the database refused the change: {str(exc.orig).strip()}"
    if isinstance(exc, sa_exc.DBAPIError):  # permission denied (least-privilege roles)
        return refused_message(exc)
    return None
