"""Auto top-up: credits bought for a customer when usage leaves fewer than a threshold
(docs/design.md §5.11).

A policy (``ledger.catalog.AutoTopup``: the catalog's ``[auto_topup]`` for every customer in
its pack's currency, or a customer's own under ``[customers.<id>]``) names a threshold ``below``,
a ``pack`` and a ``monthly_cap``. When a usage event takes the customer's usable credits from
``below`` or more to fewer than ``below`` (a crossing), the pack is bought at the usage's
instant, invoiced like any top-up::

    Dr 1100 A+T / Cr 2100 (grant) A / Cr 2400 T;   Dr 9000 q / Cr 9100 (grant) q

Its grant id is ``auto:<usage event id>``, so importing the same usage again buys nothing more
(the usage is a duplicate), and the same history always buys the same packs. With
``recharge_to``, as many packs are bought as bring the credits to at least that many. At most
``monthly_cap`` auto top-ups a customer and accounting month; a usage that crosses once the cap
is reached buys nothing. Credits that stay below the threshold do not cross again until they
have risen to it (by a purchase, a grant, a void).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from ledger.catalog import AutoTopup
from ledger.core.book import CustomerBook
from ledger.core.money import format_units, to_minor
from ledger.core.periods import boundary_date, local_date, period_of, start_of_day
from ledger.core.rules.purchases import add_months, sale
from ledger.events import SourcedEvent

if TYPE_CHECKING:
    from datetime import date

    from ledger.core.posting import Posting

PREFIX = "auto:"
"""Grant ids of auto top-ups start with it (ids a business event gives should not)."""


def auto_grant_id(usage_id: str) -> str:
    """``auto:<usage id>``, within the 128 characters of a grant id (a longer usage id is
    replaced by its sha256)."""
    gid = PREFIX + usage_id
    return gid if len(gid) <= 128 else PREFIX + hashlib.sha256(usage_id.encode("utf-8")).hexdigest()


def policy_of(p: Posting, book: CustomerBook) -> AutoTopup | None:
    """The customer's auto top-up policy, or None."""
    return p.catalog.auto_topup(book.customer.id, book.customer.currency)


def crosses(policy: AutoTopup | None, available: int, drawn: int) -> bool:
    """True when drawing ``drawn`` of the ``available`` usable credits crosses the threshold."""
    return policy is not None and available >= policy.below > available - drawn


def bought_in(p: Posting, book: CustomerBook, month: str) -> int:
    """How many auto top-ups the customer bought in accounting month ``month``."""
    return sum(1 for g in book.grants.values()
               if g.id.startswith(PREFIX) and g.source == "topup" and period_of(local_date(g.effective_at, p.tz)) == month)


def auto_topup(p: Posting, se: SourcedEvent, book: CustomerBook, t: datetime, d: date, available: int,
               drawn: int) -> None:
    """After usage ``se`` drew ``drawn`` of ``available`` usable credits at ``t`` (accounting day
    ``d``): buy the policy's packs when that crossed its threshold and the month's cap allows."""
    policy = policy_of(p, book)
    if not crosses(policy, available, drawn):
        return
    assert policy is not None
    grant_id = auto_grant_id(se.id)
    if grant_id in book.grants or bought_in(p, book, period_of(d)) >= policy.monthly_cap:
        return
    pack = p.catalog.topup(policy.pack)
    assert pack is not None  # the catalog checks it
    left = available - drawn
    packs = 1 if policy.recharge_to is None else max(1, -(-(policy.recharge_to - left) // pack.credits))
    units, amount = packs * pack.credits, packs * to_minor(pack.price, book.customer.currency)
    expires_at = None
    if pack.expires_after_months:
        expires_at = start_of_day(add_months(local_date(t, p.tz), pack.expires_after_months), p.tz)
    text = (f"Auto top-up {packs} x {policy.pack} ({grant_id}): {format_units(units)} credits, "
            f"the credits fell below {format_units(policy.below)} with usage {se.id}")
    if expires_at is not None:
        text += f", expiring {boundary_date(expires_at, p.tz).isoformat()}"
    sale(p, se, book, d, grant_id=grant_id, source="topup", units=units, amount=amount, effective_at=t,
         expires_at=expires_at, line_text=text, event_id=grant_id)
