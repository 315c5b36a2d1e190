"""Creating the books: the database schema migrated to head and the chart of accounts seeded
(docs/design.md §3, §8.3)."""

from __future__ import annotations

from pathlib import Path

from ledger.errors import NO_VALUE, CatalogError
from ledger.store.db import init_database, make_engine

STARTER_CATALOG = Path(__file__).resolve().parent.parent / "data" / "starter-catalog.toml"
"""The commented catalog `write_starter_catalog` copies: a company to fill in (its name and
address are left empty, so the file is refused until they are given), tax ids and a payment
block commented out, a rate card, a plan and a top-up pack."""


def write_starter_catalog(path: str | Path) -> Path:
    """Write `STARTER_CATALOG` to ``path`` for the user to fill in; returns the path. raises
    CatalogError if ``path`` exists (it is never overwritten) or cannot be written."""
    target = Path(path)
    try:
        with target.open("x", encoding="utf-8") as out:
            out.write(STARTER_CATALOG.read_text(encoding="utf-8"))
    except FileExistsError:
        raise CatalogError(str(target), "", NO_VALUE, "already exists; not overwritten (remove it or name another file)") from None
    except OSError as exc:
        raise CatalogError(str(target), "", NO_VALUE, f"cannot be written: {exc.strerror or exc}") from None
    return target


def init_books(url: str) -> None:
    """Create or migrate the database at ``url`` (Alembic upgrade head, one transaction) and seed
    the accounts that are missing; idempotent. Database errors pass through (e.g. permission
    denied for a role that may not create tables)."""
    engine = make_engine(url)
    try:
        init_database(engine)
    finally:
        engine.dispose()
