"""Alembic environment: one history for PostgreSQL and SQLite, target ``SQLModel.metadata``."""

from __future__ import annotations

import os

from alembic import context
from sqlmodel import SQLModel

import ledger.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from ledger.store.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    return x.get("url") or os.environ.get("LEDGER_DATABASE_URL") or config.get_main_option("sqlalchemy.url")


def _for_dialect(dialect: str):
    """Alembic's include_object: a model constraint marked ``info={"postgresql_only": True}``
    exists on PostgreSQL only (its migration skips SQLite), one marked ``{"sqlite_only": True}``
    on SQLite only."""
    def include(obj, name, type_, reflected, compare_to) -> bool:
        info = getattr(obj, "info", {})
        if reflected:
            return True
        return not info.get("sqlite_only") if dialect == "postgresql" else not info.get("postgresql_only")
    return include


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_for_dialect(connection.dialect.name),
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
