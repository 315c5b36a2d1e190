"""Database errors the CLI reports as one line and exit 1 instead of a traceback.

``refused_message`` turns a privilege error (SQLSTATE 42501) into the one line the CLI prints
before exiting 1, naming the table, the role and the privilege it lacks; ``install_role_hook``
(called before a command's first database access) makes SQLAlchemy remember the connected role
on such an error. Importing this module imports no SQLAlchemy: a database error can only be
raised once a command has imported it.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa


def _note_role(context) -> None:  # pragma: no cover - exercised through the CLI subprocess
    """On a privilege error, remember the connected role on the exception (for the message)."""
    if getattr(context.original_exception, "sqlstate", None) != "42501" or context.sqlalchemy_exception is None:
        return
    with contextlib.suppress(AttributeError):  # no connection (e.g. a failed connect) or another driver
        context.sqlalchemy_exception.ledger_role = context.connection.connection.driver_connection.info.user


def install_role_hook() -> None:
    """Listen for "handle_error" on every Engine (once per process; idempotent)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    if not sa.event.contains(Engine, "handle_error", _note_role):
        sa.event.listen(Engine, "handle_error", _note_role)


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


def database_error_message(exc: BaseException) -> str | None:
    """The one line for a database error (IntegrityError: the database refused the change;
    a privilege error: see refused_message); None for anything else (re-raised by main)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None:  # SQLAlchemy never imported: not a database error
        return None
    if isinstance(exc, sa_exc.IntegrityError):
        return f"the database refused the change: {str(exc.orig).strip()}"
    if isinstance(exc, sa_exc.DBAPIError):  # permission denied (least-privilege roles)
        return refused_message(exc)
    return None
