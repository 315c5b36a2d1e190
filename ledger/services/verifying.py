"""Verifying the books (docs/design.md §7): invariants 1-6 over the whole journal, recomputing the
seal of every closed period, on one snapshot of the books."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.store.db import one_snapshot
from ledger.store.invariants import Violation, check_all
from ledger.store.seals import SealBreak, latest_closes, verify_seals

if TYPE_CHECKING:
    from ledger.store.db import Session


@dataclass
class Verification:
    """What `verify_books` found: the violations of invariants 1-5 (and 6 as the close records
    state it), the seal breaks (each names the first entry that breaks a period's chain), and
    how many closed periods' seals were recomputed. ``ok``: neither violations nor breaks."""

    violations: list[Violation]
    breaks: list[SealBreak]
    sealed: int

    @property
    def ok(self) -> bool:
        return not self.violations and not self.breaks


def verify_books(session: Session, catalog: Catalog) -> Verification:
    """Check invariants 1-6 over the whole journal in one read-only transaction on one snapshot
    (PostgreSQL: REPEATABLE READ, so what is posted meanwhile is not half-seen by the checks),
    ended before returning; ``catalog`` gives the reporting timezone."""
    one_snapshot(session)
    try:
        violations = check_all(session, tz=catalog.tz)
        breaks = verify_seals(session)
        sealed = len(latest_closes(session))
    finally:
        session.rollback()
    return Verification(violations, breaks, sealed)
