"""Expiry of a grant: rollover of part of its unused credits, breakage of the rest
(docs/design.md §5; breakage at expiry is the remote method of ASC 606-10-55-48 and
IFRS 15 B46).

At the first expiry of grant g with u units unused, r = `rollover_units` of them (floor of the
plan's percent, capped) move into a new grant g' at their relieved amount::

    Dr 2100 Deferred revenue (g)   / Cr 2100 Deferred revenue (g')   relieved amount of r units
    Dr 9100 Credits outstanding (g) / Cr 9100 Credits outstanding (g') r

and the rest expires: Dr 2100 (g) / Cr 4050 Breakage revenue (the remaining deferred, a
true-up for proportional grants) and Dr 9100 (g) / Cr 9300 Credits expired.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook
from ledger.core.entries import EntryKind
from ledger.core.records import GrantRecord
from ledger.core.grants import GrantState, rollover_units
from ledger.core.money import CREDIT, format_units
from ledger.core.periods import first_day, local_date, next_period, period_of, start_of_day

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def expire(p: Posting, book: CustomerBook, g: GrantState) -> None:
    """Expire grant ``g`` at its ``expires_at``: rollover (first expiry only), then breakage."""
    assert g.expires_at is not None
    d = p.step_date(g.expires_at)
    unused = g.remaining
    rolled = 0
    if not g.expiry_done:
        target = rollover_target(p, book, g)
        rolled = rollover_units(g, unused) if target is not None else 0
        if rolled:
            assert target is not None
            _roll(p, book, g, rolled, unused, target, d)
    rest = unused - rolled
    if rest:
        g.relieve(rest, track=False)
    amount = g.release_rest()
    g.expiry_done = True
    if rest or amount:
        cid, cur = book.customer.id, g.currency
        draft = p.entry(d, g.expires_at, EntryKind.EXPIRY, f"Grant {g.id} expired with {format_units(rest)} credits unused", cid)
        draft.dr(A.DEFERRED_CREDITS, cur, amount, grant_id=g.id)
        draft.cr(A.BREAKAGE_REVENUE, cur, amount, grant_id=g.id)
        draft.dr(A.CREDITS_OUTSTANDING, CREDIT, rest, grant_id=g.id)
        draft.cr(A.CREDITS_EXPIRED, CREDIT, rest, grant_id=g.id)


def _roll(p: Posting, book: CustomerBook, g: GrantState, rolled: int, unused: int,
          target: tuple[str | None, datetime, datetime | None], d) -> None:
    """Move ``rolled`` units of ``g`` into a new rollover grant at ``target``."""
    assert g.expires_at is not None
    cid, cur = book.customer.id, g.currency
    contract_id, effective_at, expires_at = target
    amount = g.relieve(rolled)
    new_id = f"{g.root_id or g.id}~r{g.generation + 1}"
    p.add_grant(book, GrantRecord(
        id=new_id, customer_id=cid, source="rollover", units=rolled, amount=amount, currency=cur,
        effective_at=effective_at, expires_at=expires_at, breakage_method="at_expiry", expected_breakage_rate=None,
        rollover_percent=g.rollover_percent, rollover_max_periods=g.rollover_max_periods,
        rollover_max_credits=g.rollover_max_credits, rollover_expires=g.rollover_expires, renews=None,
        overage_price=None, contract_id=contract_id, generation=g.generation + 1, parent_grant_id=g.id,
        event_id=g.event_id or "", invoice_number=g.invoice_number))
    draft = p.entry(d, g.expires_at, EntryKind.ROLLOVER,
                    f"Rollover of {format_units(rolled)} of {format_units(unused)} unused credits "
                    f"from grant {g.id} into {new_id}", cid)
    draft.dr(A.DEFERRED_CREDITS, cur, amount, grant_id=g.id)
    draft.cr(A.DEFERRED_CREDITS, cur, amount, grant_id=new_id)
    draft.dr(A.CREDITS_OUTSTANDING, CREDIT, rolled, grant_id=g.id)
    draft.cr(A.CREDITS_OUTSTANDING, CREDIT, rolled, grant_id=new_id)


def rollover_target(p: Posting, book: CustomerBook, g: GrantState) -> tuple[str | None, datetime, datetime | None] | None:
    """Where g's rolled units go: (contract, effective_at, expires_at) or None (all expire).

    Subscription credits roll into the next month while the subscription runs; commitment
    credits only into a renewal (a commitment whose ``renews`` names g's commitment); with
    ``expires: false`` rolled credits never expire and need neither.
    """
    assert g.expires_at is not None
    if g.rollover_percent <= 0:
        return None
    if not g.rollover_expires:
        return g.contract_id, g.expires_at, None
    for sub in book.subs:
        if sub.row.id == g.contract_id:
            d = local_date(g.expires_at, p.tz)
            if not sub.active_on(d):
                return None
            expires = start_of_day(first_day(next_period(period_of(d))), p.tz)
            if sub.row.end_date is not None:
                expires = min(expires, start_of_day(sub.row.end_date + timedelta(days=1), p.tz))
            return sub.row.id, g.expires_at, expires
    for r in book.grants.values():
        if r.source == "commitment" and g.contract_id is not None and r.renews == g.contract_id:
            return r.id, max(g.expires_at, r.effective_at), r.expires_at
    return None
