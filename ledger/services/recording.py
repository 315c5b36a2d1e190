"""Recording events through the Python API (docs/design.md §8.4): each call's events validated as
the lines of an event file, then posted in one transaction with the idempotency of
``ledger import``.

On PostgreSQL one usage event per call takes the pipelined write path of
`ledger.store.pipeline.post_usage` (same books, fewer round trips) unless ``LEDGER_DIRECT=0``;
everything else, and what that path declines, takes `ledger.services.importing.import_events`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.posting import ImportSummary
from ledger.errors import InvalidInputError
from ledger.events import SourcedEvent, UsageRecorded, parse_event
from ledger.services.importing import import_events
from ledger.store.admin import session_on
from ledger.store.db import is_postgres, open_engine
from ledger.store.pipeline import post_usage

if TYPE_CHECKING:
    from ledger.store.admin import Engine


def open_books(database_url: str) -> tuple[Engine, bool]:
    """An engine (connection pool) on the initialised database at ``database_url`` and whether
    one usage event per call takes the pipelined path (PostgreSQL, unless the environment sets
    ``LEDGER_DIRECT=0``, for comparison). raises NotInitialisedError."""
    engine = open_engine(database_url)
    return engine, is_postgres(engine) and os.environ.get("LEDGER_DIRECT", "1") != "0"


def record_events(engine: Engine, catalog: Catalog, lines: Iterable[tuple[str, int]], *, source: str,
                  direct: bool) -> ImportSummary:
    """Validate each (JSON text of an event, line number) as line ``line`` of an event file named
    ``source`` and post them all atomically, in one transaction (committed), recording
    ``source`` as the import's source; ``direct``: one usage event may take the pipelined path.

    raises InvalidInputError (every problem; nothing posted) for an invalid event or one the
    books refuse; database errors as `import_events` raises them (nothing posted); CatalogError
    when the catalog has no company (nothing posted).
    """
    catalog.require_company("posting events")
    parsed: list[SourcedEvent] = []
    problems = []
    for text, line in lines:
        se, found = parse_event(text, source, line)
        problems.extend(found)
        if se is not None:
            parsed.append(se)
    if problems:
        raise InvalidInputError(problems)
    with session_on(engine) as session:
        if direct and len(parsed) == 1 and isinstance(parsed[0].event, UsageRecorded):
            summary = post_usage(session, catalog, parsed[0], [source])
            if summary is not None:
                return summary
        return import_events(session, catalog, parsed, sources=[source])
