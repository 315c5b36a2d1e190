"""Soft caps: usage beyond a customer's monthly cap held for review, then approved (consumed)
or rejected (quarantined) (docs/design.md §5.12).

A customer's soft cap (``[customers.<id>] soft_cap``, credits per accounting month) does not
refuse usage as a hard cap does: a usage event that would take the month's consumed credits
past the cap is held whole, in CREDIT lines only, and recognises nothing::

    held:      Dr 9500 Usage held for review / Cr 9550 Usage under review   q   (event: the usage)
    released:  Dr 9550 / Cr 9500 the units approved or rejected

``usage.approved`` releases ``credits`` of it (default: all still held) and consumes them at its
own instant by the usage rules (grants, overage, cost per credit), as a usage event whose id is
the approval's; the cap does not hold them again. ``usage.rejected`` releases what is still held
and quarantines the usage with the reason. The pending reviews are the usage events with a 9500
balance (``ledger report reviews``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.core.book import CustomerBook
from ledger.core.entries import EntryKind
from ledger.core.money import CREDIT, format_units
from ledger.core.periods import first_day, last_day, period_of
from ledger.core.posting import problem
from ledger.core.records import QuarantineRecord, UsageRecord
from ledger.events import SourcedEvent, UsageApproved, UsageRecorded, UsageRejected

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def month_used(p: Posting, book: CustomerBook, month: str) -> int:
    """Credits the customer consumed in accounting month ``month``, this posting's included."""
    used = book.month_used.get(month)
    if used is None:
        used = book.month_used[month] = p.store.consumed_in(book.customer.id, first_day(month), last_day(month))
    return used


def over_soft_cap(p: Posting, book: CustomerBook, d: date, credits: int) -> bool:
    """True when consuming ``credits`` on accounting day ``d`` would pass the customer's soft cap."""
    cap = p.catalog.soft_cap(book.customer.id)
    return cap is not None and month_used(p, book, period_of(d)) + credits > cap


def count_used(p: Posting, book: CustomerBook, d: date, credits: int) -> None:
    """Add ``credits`` (negative: taken back by a void) to the month's consumption, for a soft cap."""
    month = period_of(d)
    if p.catalog.soft_cap(book.customer.id) is not None or month in book.month_used:
        book.month_used[month] = month_used(p, book, month) + credits


def hold(p: Posting, se: SourcedEvent, ev: UsageRecorded, book: CustomerBook, d: date, t: datetime,
         credits: int, late: bool) -> None:
    """Hold usage ``se`` of ``credits`` for review: its usage row (status ``held``) and the
    entry Dr 9500 / Cr 9550."""
    c = book.customer
    row = UsageRecord(id=se.id, customer_id=c.id, occurred_at=ev.occurred_at, credits=credits, action=ev.action,
                      quantity=ev.quantity, content_hash=se.content_hash, status="held", late=late,
                      import_id=p.import_id, source=se.source, cost=ev.cost)
    p.usage_rows.append(row)
    p.usage_index[se.id] = row
    p.held[se.id] = credits
    cap = p.catalog.soft_cap(c.id)
    draft = p.entry(d, t, EntryKind.USAGE_HELD,
                    f"Usage {se.id} of {c.id} held for review: {format_units(credits)} credits beyond the soft cap "
                    f"of {format_units(cap or 0)} for {period_of(d)}", c.id, se.id)
    draft.dr(A.USAGE_HELD, CREDIT, credits, event_id=se.id)
    draft.cr(A.USAGE_UNDER_REVIEW, CREDIT, credits, event_id=se.id)
    p.summary.posted += 1
    if late:
        p.summary.late += 1
        p.summary.late_events.append(se.id)


def _held(p: Posting, se: SourcedEvent, target: str, customer_id: str) -> int:
    """Units of usage ``target`` still held; raises InvalidInputError when none are."""
    left = p.held.get(target)
    if left is None:
        stored = p.store.stored_usage(target)
        if stored is None or stored.status != "held":
            raise problem(se, "target_event_id", target, "is not a usage event held for review")
        if stored.customer_id != customer_id:
            raise problem(se, "target_event_id", target, f"is usage of customer {stored.customer_id}, not {customer_id}")
        left = p.held[target] = p.store.held_units(target)
    elif p.usage_index[target].customer_id != customer_id:
        raise problem(se, "target_event_id", target, f"is usage of customer {p.usage_index[target].customer_id}")
    if left == 0:
        raise problem(se, "target_event_id", target, "was already approved or rejected in full")
    return left


def _release(p: Posting, se: SourcedEvent, book: CustomerBook, d: date, target: str, units: int, why: str) -> None:
    c = book.customer
    draft = p.entry(d, se.event.occurred_at, EntryKind.USAGE_RELEASED,  # type: ignore[attr-defined]
                    f"Usage {target} of {c.id}: {format_units(units)} held credits {why}", c.id, se.id)
    draft.dr(A.USAGE_UNDER_REVIEW, CREDIT, units, event_id=target)
    draft.cr(A.USAGE_HELD, CREDIT, units, event_id=target)
    p.held[target] -= units


def on_usage_approved(p: Posting, se: SourcedEvent, ev: UsageApproved) -> None:
    """Release held usage and consume it now (see the module docstring)."""
    from ledger.core.rules.usage import on_usage_recorded

    book, d, _ = p.prepare(ev.customer_id, ev.occurred_at)
    left = _held(p, se, ev.target_event_id, ev.customer_id)
    units = ev.credits if ev.credits is not None else left
    if units > left:
        raise problem(se, "credits", units, f"usage {ev.target_event_id} has only {left} credits held")
    _release(p, se, book, d, ev.target_event_id, units, f"approved by {se.id}")
    usage = UsageRecorded.model_construct(id=se.id, type="usage.recorded", occurred_at=ev.occurred_at,
                                          customer_id=ev.customer_id, credits=units, action=None, quantity=None,
                                          cost=None)
    on_usage_recorded(p, se, usage, released=True)


def on_usage_rejected(p: Posting, se: SourcedEvent, ev: UsageRejected) -> None:
    """Release what is still held of a usage and quarantine it with the reason."""
    book, d, late = p.prepare(ev.customer_id, ev.occurred_at)
    target = ev.target_event_id
    left = _held(p, se, target, ev.customer_id)
    _release(p, se, book, d, target, left, f"rejected by {se.id}: {ev.reason}")
    reason = f"rejected at review ({se.id}): {ev.reason}"
    p.quarantine_rows.append(QuarantineRecord(event_id=target, customer_id=ev.customer_id, occurred_at=ev.occurred_at,
                                              credits=left, reason=reason, available=0, import_id=p.import_id))
    p.summary.quarantined += 1
    p.summary.quarantine.append((target, reason))
    p.record_event(se, ev.customer_id, d, late)
