"""Verifying the books (docs/design.md §7): invariants 1-6 over the whole journal, recomputing the
seal of every closed period, on one snapshot of the books."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.store.db import one_snapshot
from ledger.store.invariants import Violation, check_all
from ledger.store.seals import (SealBreak, SnapshotUnavailable, export_snapshot, latest_closes, verify_seals,
                                verify_seals_in_snapshot)

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
    ended before returning; ``catalog`` gives the reporting timezone.

    On PostgreSQL the seals are recomputed at the same time on a second connection reading the
    same snapshot (`verify_seals_in_snapshot`, in a thread: both mostly wait on the server), and
    on this one when no second connection can be had; the findings are the same either way."""
    one_snapshot(session)
    try:
        snapshot = export_snapshot(session)
        with ThreadPoolExecutor(max_workers=1) as pool:
            seals = pool.submit(verify_seals_in_snapshot, session.get_bind(), snapshot) if snapshot else None
            violations = check_all(session, tz=catalog.tz)
            try:
                breaks = seals.result() if seals is not None else verify_seals(session)
            except SnapshotUnavailable:
                breaks = verify_seals(session)
        sealed = len(latest_closes(session))
    finally:
        session.rollback()
    return Verification(violations, breaks, sealed)
