"""What is left of each lot (grant), summed from the journal: the one derivation of lot balances.

A lot's balances are the sums of the journal lines that name it (``grant_id``) on two accounts
(docs/design.md §4): 9100 Credits outstanding (CREDIT units) and 2100 Deferred revenue -
credits (minor units of the grant's currency), each credit - debit. `lot_balances` reads them
for the engine's books (``ledger.store.books``: units relieved and revenue released), for
``ledger verify`` (``ledger.store.invariants``: through a date) and for the forecasts
(``ledger.forecast``: through a period end, with voided issues). The other reads here serve the
forecasts: the grants' terms, the units drawn by usage and the lines that name no known lot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.records import GrantRecord
from ledger.store import keys
from ledger.store.db import chunks, in_values
from ledger.store.models import Grant, JournalEntry, JournalLine

LOT_ACCOUNTS = (A.CREDITS_OUTSTANDING, A.DEFERRED_CREDITS)
"""The accounts whose lines name a lot: 9100 (units) and 2100 (money)."""


@dataclass
class LotBalance:
    """One lot's balances from the journal lines naming it.

    grant_id: the lot (a grant id; one that no grant row has is kept, for ``ledger verify``);
    outstanding: 9100 credit - debit, int CREDIT units (what is left of its N units);
    deferred: 2100 credit - debit, int minor units of its currency (what is left of its amount);
    voided_units: 9100 debits of ``void`` entries, int units (a void of its issue takes its
    units back; > 0 means the issue was voided), None when not read (``voids=False``).
    """

    grant_id: str
    outstanding: int = 0
    deferred: int = 0
    voided_units: int | None = None


def lot_balances(session: Session, *, customer_ids: Iterable[str] | None = None, through: date | None = None,
                 voids: bool = False) -> dict[str, LotBalance]:
    """The balances of every lot named by a 9100 or 2100 journal line: {grant id: LotBalance}.

    customer_ids: only lines carrying one of these customers (None: every customer);
    through: only lines of entries dated on or before it (inclusive; None: the whole journal);
    voids: also sum ``voided_units`` (needs the entries' kind). One GROUP BY query; without
    ``through`` and ``voids`` it reads journal_line alone (the hot path of `load_books`, a
    chunk of customers at a time). A lot with no line is absent (all its balances are 0).
    """
    line, entry = JournalLine, JournalEntry
    sums = [sa.func.sum(line.debit), sa.func.sum(line.credit)]
    if voids:
        sums.append(sa.func.sum(sa.case((entry.kind == "void", line.debit), else_=0)))
    where = [line.grant_id.is_not(None), line.account_code.in_(list(LOT_ACCOUNTS))]
    if customer_ids is not None:
        where.insert(0, in_values(session, line.customer_id, customer_ids))
    q = sa.select(line.grant_id, line.account_code, *sums)
    if through is not None or voids:
        q = q.join(entry, keys.entry_lines(entry, line))
    if through is not None:
        where.append(entry.entry_date <= through)
    out: dict[str, LotBalance] = {}
    for gid, account, debit, credit, *void in session.execute(
            q.where(*where).group_by(line.grant_id, line.account_code)):
        lot = out.get(gid)
        if lot is None:
            lot = out[gid] = LotBalance(gid, voided_units=0 if voids else None)
        if account == A.CREDITS_OUTSTANDING:
            lot.outstanding = int(credit) - int(debit)
            if voids:
                lot.voided_units = int(void[0])
        else:
            lot.deferred = int(credit) - int(debit)
    return out


def grant_records(session: Session, ids: Iterable[str]) -> dict[str, GrantRecord]:
    """The grants (lots) among ``ids`` that have a row: {grant id: GrantRecord}, read 500 ids at
    a time."""
    names = [f.name for f in fields(GrantRecord)]
    out: dict[str, GrantRecord] = {}
    for part in chunks(sorted(set(ids)), 500):
        out.update((g.id, GrantRecord(**{n: getattr(g, n) for n in names}))
                   for g in session.execute(sa.select(Grant).where(Grant.id.in_(list(part)))).scalars())
    return out


def unlotted_balances(session: Session, through: date) -> list[tuple[str, str | None, str, str, int]]:
    """9100 and 2100 lines dated on or before ``through`` that name no grant row (no grant id, or
    one no grant of the line's customer has; never expected from the engine), summed:
    (customer_id, grant_id or None, account, commodity, credit - debit as int), 2100 rows first."""
    line, entry = JournalLine, JournalEntry
    q = (sa.select(line.customer_id, line.grant_id, line.account_code, line.commodity,
                   sa.func.sum(line.credit) - sa.func.sum(line.debit))
         .join(entry, keys.entry_lines(entry, line))
         .outerjoin(Grant, keys.line_grant(line))
         .where(line.account_code.in_(list(LOT_ACCOUNTS)), entry.entry_date <= through, Grant.id.is_(None))
         .group_by(line.customer_id, line.grant_id, line.account_code, line.commodity)
         .order_by(line.account_code, line.customer_id, line.grant_id, line.commodity))
    return [(cid, gid, account, commodity, int(net)) for cid, gid, account, commodity, net in session.execute(q)]


def consumed_units(session: Session, through: date, since: date | None = None) -> dict[tuple[str, str], int]:
    """Units drawn from lots by usage, net of voided usage, per (customer_id, grant_id): 9100
    debits of ``consumption`` entries less the 9100 credits of ``void`` entries that return a
    usage event's units (lines whose event_id is a usage event), in entries dated
    ``since``..``through`` (inclusive; life to date without ``since``). int units."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    of_usage = sa.exists().where(keys.line_usage())
    for kind, side, extra in (("consumption", JournalLine.debit, None),
                              ("void", -JournalLine.credit, of_usage)):
        q = (sa.select(JournalLine.customer_id, JournalLine.grant_id, sa.func.sum(side))
             .join(JournalEntry, keys.entry_lines())
             .where(JournalLine.account_code == A.CREDITS_OUTSTANDING, JournalEntry.kind == kind,
                    JournalLine.grant_id.is_not(None), JournalEntry.entry_date <= through)
             .group_by(JournalLine.customer_id, JournalLine.grant_id))
        if since is not None:
            q = q.where(JournalEntry.entry_date >= since)
        if extra is not None:
            q = q.where(extra)
        for cid, gid, units in session.execute(q):
            out[(cid, gid)] += int(units)
    return dict(out)
