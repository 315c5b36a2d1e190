"""Sessions and database administration for the service layer and its callers: a session on a
URL or an engine, the privilege-error hook of the command line, the roles in effect after
``ledger db roles``, and the row counts the demo prints.

Nothing here commits: the services (``ledger.services``) begin and end every transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger.store.db import make_engine, open_engine
from ledger.store.models import Customer, Invoice, JournalEntry, Quarantine, UsageEvent
from ledger.store.roles import effective_privileges

__all__ = ["Engine", "Session", "book_counts", "install_role_hook", "is_postgres_url", "open_session",
           "public_url", "roles_in_effect", "session_at", "session_on"]


def open_session(url: str) -> Session:
    """A new session on the initialised database at ``url`` (raises NotInitialisedError, see
    `ledger.store.db.open_engine`). Its engine lives as long as the process."""
    return Session(open_engine(url))


def session_on(engine: Engine) -> Session:
    """A new session on ``engine``."""
    return Session(engine)


@contextlib.contextmanager
def session_at(url: str) -> Iterator[Session]:
    """A session on the initialised database at ``url`` whose engine is disposed on exit."""
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (nothing is connected)."""
    return make_engine(url).dialect.name == "postgresql"


def public_url(engine: Engine) -> str:
    """``engine``'s URL with its password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def _note_role(context) -> None:  # pragma: no cover - exercised through the CLI subprocess
    """On a privilege error, remember the connected role on the exception (for the message)."""
    if getattr(context.original_exception, "sqlstate", None) != "42501" or context.sqlalchemy_exception is None:
        return
    with contextlib.suppress(AttributeError):  # no connection (e.g. a failed connect) or another driver
        context.sqlalchemy_exception.ledger_role = context.connection.connection.driver_connection.info.user


def install_role_hook() -> None:
    """Make SQLAlchemy remember the connected role on a privilege error (SQLSTATE 42501), as
    attribute ``ledger_role`` of the exception, for the one-line message of the command line
    (``ledger.cli._errors.refused_message``): listens for "handle_error" on every Engine, once
    per process (idempotent)."""
    if not sa.event.contains(Engine, "handle_error", _note_role):
        sa.event.listen(Engine, "handle_error", _note_role)


def roles_in_effect(engine: Engine, writer: str, auditor: str,
                    schema: str) -> tuple[dict[str, dict[str, str]], dict[str, bool]]:
    """What the ``writer`` and ``auditor`` roles may do on each table of ``schema`` (role ->
    table -> privileges, see `ledger.store.roles.effective_privileges`) and whether each
    existing one may log in (role -> rolcanlogin; a missing role is left out)."""
    with engine.connect() as conn:
        have = {r: effective_privileges(conn, r, schema) for r in (writer, auditor)}
        logins = dict(conn.execute(sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN (:w, :a)"),
                                   {"w": writer, "a": auditor}).all())
    return have, logins


def book_counts(session: Session) -> dict[str, int]:
    """Rows in the books: customers, usage_events, journal_entries, quarantined (usage kept out
    of the books) and invoices (invoices and credit notes)."""
    def count(model) -> int:
        return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()

    return {"customers": count(Customer), "usage_events": count(UsageEvent), "journal_entries": count(JournalEntry),
            "quarantined": count(Quarantine), "invoices": count(Invoice)}
