"""A new breakage estimate for a proportional-breakage grant (ASC 606-10-55-48, IFRS 15 B46):
the cumulative catch-up of revenue to the new estimate, Dr 2100 (g) / Cr 4050 (negative:
reversed; docs/design.md §5)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.entries import EntryDraft, EntryKind
from ledger.core.posting import problem
from ledger.events import BreakageEstimateChanged, SourcedEvent

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def on_breakage_estimate_changed(p: Posting, se: SourcedEvent, ev: BreakageEstimateChanged) -> None:
    """Post the catch-up (no entry when it is zero); raises InvalidInputError for a grant that
    is unknown, at_expiry, voided or already expired."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    g = book.grants.get(ev.grant_ref)
    if g is None:
        raise problem(se, "grant_ref", ev.grant_ref, f"unknown grant of customer {ev.customer_id}")
    if not g.proportional:
        raise problem(se, "grant_ref", ev.grant_ref, "uses the at_expiry breakage method; only proportional grants have an estimate")
    if g.voided:
        raise problem(se, "grant_ref", ev.grant_ref, "was voided: its purchase was cancelled with a credit note")
    if g.expiry_done:
        raise problem(se, "grant_ref", ev.grant_ref, "has already expired; its breakage was trued up at expiry")
    catch_up = g.change_estimate(Fraction(Decimal(ev.expected_rate)))
    draft = EntryDraft(d, ev.occurred_at, EntryKind.BREAKAGE_ESTIMATE,
                       f"Breakage estimate of grant {g.id} changed to {ev.expected_rate}: cumulative catch-up",
                       ev.customer_id, se.id, p.import_id)
    draft.dr(A.DEFERRED_CREDITS, g.currency, catch_up, grant_id=g.id, event_id=se.id)
    draft.cr(A.BREAKAGE_REVENUE, g.currency, catch_up, grant_id=g.id, event_id=se.id)
    if draft.lines:
        p.journal.append(draft)
    p.record_event(se, ev.customer_id, d, late)
