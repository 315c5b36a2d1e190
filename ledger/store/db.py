"""Database engines, migrations and sessions, for PostgreSQL (production) and SQLite (embedded).

The same Alembic history serves both. ``init_database`` upgrades to head and seeds the chart
of accounts; ``open_engine`` refuses a database that is not at head (NotInitialisedError), so
no command ever writes into a half-migrated schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger.core.accounts import CHART
from ledger.errors import NotInitialisedError
from ledger.store.head import SCHEMA_HEAD

if TYPE_CHECKING:  # Alembic is imported where it is used: most commands only check the revision
    from alembic.config import Config

DEFAULT_URL = "sqlite:///ledger.db"


def normalise_url(url: str) -> str:
    """Map postgres:// and postgresql:// URLs to the psycopg 3 driver; leave others as given."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite gets foreign keys on and a busy timeout)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        return engine
    return sa.create_engine(url)


def migrations_dir() -> Path:
    """Folder of the Alembic scripts (the top-level ``migrations`` package)."""
    return Path(str(resources.files("migrations")))


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config that works from any working directory (installed or checked out)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The head revision, read from the migration scripts (Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision (table alembic_version), None when it has none; raises
    sqlalchemy.exc.OperationalError when the database cannot be read."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # a branched history, which this project does not have
        raise NotInitialisedError(str(engine.url), f"several schema revisions: {', '.join(sorted(rows))}")
    return rows[0] if rows else None


def init_database(engine: Engine) -> None:
    """Create or migrate the schema to head and seed the default chart of accounts (idempotent)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    seed_accounts(engine)


def seed_accounts(engine: Engine) -> None:
    """Insert the accounts of docs/design.md §3 that are missing; existing rows are kept."""
    from ledger.store.models import Account

    with Session(engine) as session:
        have = set(session.exec(sa.select(Account.code)).scalars())  # type: ignore[call-overload]
        for spec in CHART:
            if spec.code not in have:
                session.add(Account(code=spec.code, name=spec.name, type=spec.type,
                                    normal_balance=spec.normal))
        session.commit()


def open_engine(url: str) -> Engine:
    """An engine for an initialised database at head; raises NotInitialisedError otherwise."""
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)  # messages never carry the password
    try:
        current = current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise NotInitialisedError(shown, str(exc.orig).strip()) from None
    if current != SCHEMA_HEAD:
        raise NotInitialisedError(shown, f"schema revision {current or 'none'}, head is {SCHEMA_HEAD}")
    return engine


def is_unique_violation(exc: BaseException) -> bool:
    """True for a unique-key violation from either database: a concurrent writer committed the
    same key first (SQLSTATE 23505 on PostgreSQL, "UNIQUE constraint failed" on SQLite). On
    Citus a violation on a worker during a multi-shard write reaches the coordinator as an
    internal error (SQLSTATE XX000) carrying the worker's message. A COPY (the writer's path
    for many rows) raises psycopg's own error, not wrapped by SQLAlchemy."""
    if isinstance(exc, sa.exc.InternalError):
        return str(exc.orig).startswith("duplicate key value violates unique constraint")
    state = getattr(exc, "sqlstate", None)  # raised by psycopg itself (a COPY of many rows)
    if state == "23505" or (state == "XX000" and str(exc).startswith("duplicate key value violates unique constraint")):
        return True
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(orig)


def is_postgres(bind: Engine | sa.Connection | Session) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


_CITUS_TABLES = ("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') "
                 "AND to_regclass('pg_dist_partition') IS NOT NULL")
_DISTRIBUTED = "SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'journal_entry'::regclass)"
_citus_engines: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def is_citus(bind: Engine | sa.Connection | Session) -> bool:
    """Whether the books are distributed by Citus (``ledger db distribute`` has run): the
    journal is a distributed table. Read once per engine on a connection of its own (so it may
    be asked before a transaction's first statement); `forget_citus` after distributing."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    engine = engine.engine if isinstance(engine, sa.Connection) else engine
    if engine.dialect.name != "postgresql":
        return False
    known = _citus_engines.get(engine)
    if known is None:
        with engine.connect() as c:
            known = bool(c.execute(sa.text(_CITUS_TABLES)).scalar()) and bool(c.execute(sa.text(_DISTRIBUTED)).scalar())
        _citus_engines[engine] = known
    return known


def forget_citus(engine: Engine) -> None:
    """Drop what `is_citus` knows of ``engine`` (after its tables were distributed)."""
    _citus_engines.pop(engine, None)


def one_snapshot(session: Session) -> None:
    """Make every statement of ``session``'s next transaction read one snapshot of the books:
    on PostgreSQL the transaction begins REPEATABLE READ, READ ONLY (what an export or a
    verification reads then ties, whatever is posted meanwhile); nothing elsewhere (SQLite).
    Call before the transaction's first statement; raises ValueError if it has begun."""
    if not is_postgres(session):
        return
    if session.in_transaction():
        raise ValueError("one_snapshot: the session's transaction has already begun")
    session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})


def run_sql_script(conn: sa.Connection, path: Path) -> None:
    """Run a SQL file whose statements are separated by lines reading exactly ``-- split``."""
    for statement in path.read_text(encoding="utf-8").split("\n-- split\n"):
        if statement.strip() and not all(
            line.strip().startswith("--") or not line.strip() for line in statement.splitlines()
        ):
            # A raw DB-API cursor, inside the connection's transaction: without parameters the
            # driver passes the text through untouched (PL/pgSQL uses '%' placeholders).
            cursor = conn.connection.cursor()
            try:
                cursor.execute(statement)
            finally:
                cursor.close()


COPY_ROWS = 64
"""From this many rows, `bulk_insert` uses COPY on PostgreSQL."""


def bulk_insert(session: Session, table: sa.Table, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) into ``table`` in the
    session's transaction: with ``COPY ... FROM STDIN`` on PostgreSQL (psycopg 3) from
    `COPY_ROWS` rows, a multi-row INSERT otherwise (one round trip, where COPY takes two: what
    one API call writes). Triggers and constraints apply as for INSERT."""
    if not rows:
        return
    if len(rows) < COPY_ROWS or not is_postgres(session):
        session.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    times = [i for i, c in enumerate(columns) if _is_time(table.c[c].type)]
    for row in rows:  # what UTCDateTime refuses on the INSERT path (checked before anything is sent)
        for i in times:
            value = row[columns[i]]
            if isinstance(value, datetime) and value.tzinfo is None:
                raise ValueError(f"{table.name}: naive datetime {value!r}: an offset is required")

    def values(row: dict) -> list:
        out = [row[c] for c in columns]
        for i in times:
            out[i] = copy_text(out[i])
        return out

    copy_rows(session, table.name, columns, map(values, rows))


def _is_time(column_type: sa.types.TypeEngine) -> bool:
    """Whether a column holds dates or datetimes (a TypeDecorator by its implementation)."""
    return isinstance(getattr(column_type, "impl", column_type), (sa.DateTime, sa.Date))


def copy_text(value: object) -> object:
    """A date or an aware datetime as the text COPY reads back as the same value (ISO 8601; a
    datetime with its offset, so the same instant whatever the session's time zone), as psycopg's
    own dumpers would send it but at a fraction of their cost; any other value unchanged."""
    return value.isoformat() if isinstance(value, date) else value


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """PostgreSQL only: stream ``rows`` (values in the order of ``columns``) into ``table``
    with ``COPY ... FROM STDIN`` in the session's transaction; ``rows`` may be a generator, so
    a large input is never held in memory."""
    raw = session.connection().connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


CHUNK = 500
"""Ids per statement where a list of ids becomes SQL parameters (IN lists on SQLite)."""


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    """``items`` in consecutive slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def in_values(session: Session, column, values) -> sa.ColumnElement[bool]:
    """``column IN values`` as a condition: on PostgreSQL one array parameter (``column =
    ANY(:values)``), so the statement text and its cached plan do not depend on how many values
    there are; elsewhere a plain IN list (keep lists under SQLite's 32,766 parameters)."""
    values = list(values)
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(column.type), unique=True))
    return column.in_(values)
