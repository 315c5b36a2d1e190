"""The head revision of migrations/versions: the schema the code reads and writes, which
`ledger.store.db.open_engine` and `ledger.store.pg.open_snapshot` require of a database.

Kept in a module of its own, importing nothing, so that a command learns it without importing
SQLAlchemy or Alembic and reading every migration script (tests/integration/test_migrations.py
checks it against the scripts).
"""

SCHEMA_HEAD = "0022"
