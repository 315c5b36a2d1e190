"""The invariants of DESIGN section 7 (1-3 here), checked by `ledger verify` and by the close.

1. Every entry balances per commodity; so does the trial balance.
2. For each grant: outstanding units >= 0; deferred balance = A - round(A x R / N) where R is the
   units relieved so far; a grant with no units left has zero deferred balance.
3. Deferred revenue on the ledger (2100 + 2150) equals the sum over open grants, per currency.

Each check returns Violations naming the entry or grant and the numbers that disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session

from ledger import accounts as A
from ledger.models import Grant, JournalEntry, JournalLine
from ledger.money import CREDIT, cumulative_share


@dataclass(frozen=True)
class Violation:
    """invariant: int (DESIGN 7 numbering); subject: what broke (entry id, grant id, account)."""

    invariant: int
    subject: str
    message: str

    def __str__(self) -> str:
        return f"invariant {self.invariant} ({self.subject}): {self.message}"


def _lines(through: date | None):
    q = sa.select(JournalLine).join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
    return q.where(JournalEntry.entry_date <= through) if through else q


def check_entries_balance(session: Session, through: date | None = None) -> list[Violation]:
    """Invariant 1: each entry and the trial balance balance per commodity."""
    out = []
    q = (sa.select(JournalLine.entry_id, JournalLine.commodity, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    q = q.group_by(JournalLine.entry_id, JournalLine.commodity).having(
        sa.func.sum(JournalLine.debit) != sa.func.sum(JournalLine.credit)).order_by(JournalLine.entry_id)
    for entry_id, commodity, d, c in session.execute(q):
        out.append(Violation(1, f"entry {entry_id}", f"{commodity} debits {d} != credits {c}"))
    q = (sa.select(JournalLine.commodity, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    for commodity, d, c in session.execute(q.group_by(JournalLine.commodity)):
        if d != c:
            out.append(Violation(1, f"trial balance {commodity}", f"debits {d} != credits {c}"))
    orphans = session.execute(sa.select(sa.func.count()).select_from(JournalEntry).where(
        ~sa.exists().where(JournalLine.entry_id == JournalEntry.id))).scalar_one()
    if orphans:
        out.append(Violation(1, "journal", f"{orphans} entries have no lines"))
    return out


@dataclass
class GrantBalance:
    """A grant's journal balances: issued, relieved (units), deferred (minor units)."""

    grant: Grant
    issued: int = 0
    relieved: int = 0
    deferred: int = 0

    @property
    def outstanding(self) -> int:
        return self.issued - self.relieved

    @property
    def expected_deferred(self) -> int:
        return self.grant.amount - cumulative_share(self.grant.amount, self.relieved, self.grant.units)


@dataclass
class GrantBalances:
    """Per-grant journal balances, and grant ids that journal lines name but no grant row has."""

    grants: dict[str, GrantBalance]
    unknown: list[str]


def grant_balances(session: Session, through: date | None = None) -> GrantBalances:
    """Every grant with lines through ``through``, with balances summed from the journal."""
    grants = {g.id: g for g in session.execute(sa.select(Grant)).scalars()}
    out: dict[str, GrantBalance] = {}
    unknown: set[str] = set()
    q = (sa.select(JournalLine.grant_id, JournalLine.account_code, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_([A.DEFERRED_CREDITS, A.CREDITS_OUTSTANDING]), JournalLine.grant_id.is_not(None)))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    for grant_id, account, d, c in session.execute(q.group_by(JournalLine.grant_id, JournalLine.account_code)):
        g = grants.get(grant_id)
        if g is None:
            unknown.add(grant_id)
            continue
        b = out.setdefault(grant_id, GrantBalance(g))
        if account == A.CREDITS_OUTSTANDING:
            b.issued, b.relieved = int(c), int(d)
        else:
            b.deferred = int(c) - int(d)
    return GrantBalances(out, sorted(unknown))


def check_grants(balances: GrantBalances) -> list[Violation]:
    """Invariant 2 for every grant."""
    out = [Violation(2, f"grant {gid}", "journal lines name a grant that does not exist") for gid in balances.unknown]
    for gid, b in sorted(balances.grants.items()):
        if b.issued != b.grant.units:
            out.append(Violation(2, f"grant {gid}", f"issued {b.issued} credits on 9100, grant holds {b.grant.units}"))
        if b.outstanding < 0:
            out.append(Violation(2, f"grant {gid}", f"outstanding units {b.outstanding} < 0"))
        if b.deferred != b.expected_deferred:
            out.append(Violation(2, f"grant {gid}", f"deferred balance {b.deferred} != A - round(A x R / N) = "
                                 f"{b.grant.amount} - round({b.grant.amount} x {b.relieved} / {b.grant.units}) = {b.expected_deferred}"))
        if b.outstanding == 0 and b.deferred != 0:
            out.append(Violation(2, f"grant {gid}", f"no units left but deferred balance {b.deferred}"))
    return out


def check_deferred_total(session: Session, balances: GrantBalances, through: date | None = None) -> list[Violation]:
    """Invariant 3: ledger deferred revenue (2100 + 2150) = the sum over grants, per currency."""
    ledger_total: dict[str, int] = defaultdict(int)
    q = (sa.select(JournalLine.commodity, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .where(JournalLine.account_code.in_(A.DEFERRED_ACCOUNTS)))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    for commodity, v in session.execute(q.group_by(JournalLine.commodity)):
        ledger_total[commodity] += int(v)
    untagged = session.execute(
        sa.select(sa.func.count()).select_from(JournalLine)
        .where(JournalLine.account_code == A.DEFERRED_CREDITS, JournalLine.grant_id.is_(None))).scalar_one()
    out = []
    if untagged:
        out.append(Violation(3, "account 2100", f"{untagged} lines carry no grant"))
    by_grants: dict[str, int] = defaultdict(int)
    for b in balances.grants.values():
        if b.grant.amount:
            by_grants[b.grant.currency] += b.expected_deferred
    for cur in sorted(set(ledger_total) | set(by_grants)):
        if cur == CREDIT:
            continue
        if ledger_total[cur] != by_grants[cur]:
            out.append(Violation(3, f"deferred revenue {cur}",
                                 f"ledger 2100+2150 = {ledger_total[cur]}, sum over open grants = {by_grants[cur]}"))
    return out


def check_all(session: Session, through: date | None = None) -> list[Violation]:
    """Invariants 1-3, through ``through`` (an entry date) or over the whole journal."""
    balances = grant_balances(session, through)
    return (check_entries_balance(session, through) + check_grants(balances)
            + check_deferred_total(session, balances, through))
