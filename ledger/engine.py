"""Importing a batch of events: validate everything, apply the events in event time, write, and
commit (docs/design.md §6).

``import_events`` validates a whole batch first (nothing is posted if any event is invalid),
then applies the events in ``occurred_at`` order to a `ledger.core.posting.Posting` (the pure
accounting rules), and writes what it produced through the one writer
(``ledger.store.writer``) in the same transaction. Usage is posted as one consumption entry per
customer per day per import; every usage row keeps the id of the entry that carries it and its
draws per grant, so an auditor can go from revenue to the raw events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.core.checks import check_batch
from ledger.core.posting import ImportSummary, Posting, apply_order
from ledger.errors import InputProblem, InvalidInputError
from ledger.events import SourcedEvent
from ledger.store.models import ImportBatch
from ledger.store.periods import closed_periods
from ledger.store import books as kept
from ledger.store.events import batch_facts, lock_customers
from ledger.store.reader import SessionStore
from ledger.store.writer import write_posting

__all__ = ["ImportSummary", "import_events"]


def import_events(session: Session, catalog: Catalog, events: list[SourcedEvent], *, sources: Sequence[str] = (),
                  parse_problems: Sequence[InputProblem] = (), dry_run: bool = False) -> ImportSummary:
    """Validate and apply a batch of events atomically; commit unless ``dry_run``.

    raises InvalidInputError (every problem, nothing posted). Events are applied in occurred_at
    order (stable: file order breaks ties).
    """
    problems = list(parse_problems)
    locked = lock_customers(session, events)
    fresh, duplicates, more = check_batch(catalog, events, batch_facts(session, events, customers=locked))
    problems.extend(more)
    if problems:
        session.rollback()
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    db = str(session.get_bind().url)
    try:
        # Core statements, not the ORM: an API call posts one event, and the unit of work's
        # bookkeeping for this one row cost more than the INSERT itself
        batch_id = session.execute(sa.insert(ImportBatch).values(
            sources=json.dumps(list(sources)), posted=0, duplicates=duplicates, quarantined=0, late=0)
            .returning(ImportBatch.id)).scalar_one()
        store = SessionStore(session, catalog.tz, given=locked, cache=kept.BOOKS, db=db)
        posting = Posting(catalog, store, closed=closed_periods(session), import_id=batch_id)
        posting.preload([row.id for row in locked]
                        or {getattr(se.event, "customer_id", None) for se in fresh} - {None})
        for se in sorted(fresh, key=apply_order):
            posting.apply(se)
        token = write_posting(session, posting)
        summary = posting.summary
        summary.duplicates = duplicates
        session.execute(sa.update(ImportBatch).where(ImportBatch.id == batch_id).values(
            posted=summary.posted, quarantined=summary.quarantined, late=summary.late))
    except BaseException:
        session.rollback()
        raise
    summary.dry_run = dry_run
    if dry_run:
        session.rollback()
    else:
        session.commit()
        kept.BOOKS.put(db, token, posting.books)
    return summary
