"""The invariants of docs/design.md §7 (1-5 here; 6, locks and seals, is enforced by the database and the close), checked by `ledger verify` and by the close.

1. Every entry balances per commodity; so does the trial balance.
2. For each grant: 0 <= outstanding units <= N; deferred balance = A - round(A x R / N) where R
   is the units relieved so far (N - outstanding); for a proportional-breakage grant with units
   left, A - round(A x min(R, E) / E) with E = N x (1 - b) at the latest estimate b; a grant with
   no units left has zero deferred balance.
3. Deferred revenue on the ledger (2100 + 2150) equals the sum over open grants and the platform
   fees of subscription months not yet recognised, per currency.
4. For each customer and currency: billed (invoice subtotals) + unbilled overage (1150) =
   recognised (4000 + 4010 + 4020 + 4050 - 4900 - 4910) + deferred (2100 + 2150) + refunded
   and credited (credit-note subtotals).
5. Every invoice's receivable lines in its entry equal its total (a credit note's 1100 and 2300
   lines, and for a guarantee credit note its 2200 line); numbers are gap-free per series and year.

Besides (`check_customer_keys`, numbered 1 for the journal and 5 for the documents): every journal
entry names a customer, every journal line its entry's, every invoice line its invoice's and
every posted usage event an entry of its customer.

Each check returns Violations naming the entry or grant and the numbers that disagree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.grants import GrantState
from ledger.store.models import (Customer, Event, Grant, Guarantee, GuaranteeMonth, Invoice, InvoiceLine, JournalEntry, JournalLine,
                                 SubscriptionPeriod, UsageEvent)
from ledger.core.money import CREDIT, cumulative_share
from ledger.core.periods import start_of_day
from ledger.store import keys
from ledger.store.journal import deferred_on_ledger
from ledger.store.lots import lot_balances


@dataclass(frozen=True)
class Violation:
    """invariant: int (the numbering of docs/design.md §7); subject: what broke (entry id, grant id, account)."""

    invariant: int
    subject: str
    message: str

    def __str__(self) -> str:
        return f"invariant {self.invariant} ({self.subject}): {self.message}"


def check_entries_balance(session: Session, through: date | None = None) -> list[Violation]:
    """Invariant 1: each entry and the trial balance balance per commodity."""
    out = []
    q = (sa.select(JournalLine.entry_id, JournalLine.commodity, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, keys.entry_lines()))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    q = q.group_by(JournalLine.customer_id, JournalLine.entry_id, JournalLine.commodity).having(
        sa.func.sum(JournalLine.debit) != sa.func.sum(JournalLine.credit)).order_by(JournalLine.entry_id)
    for entry_id, commodity, d, c in session.execute(q):
        out.append(Violation(1, f"entry {entry_id}", f"{commodity} debits {d} != credits {c}"))
    # the trial balance is the sum of the entries: it can only be off when an entry is
    if out:
        out += _trial_balance(session, through)
    orphans = session.execute(sa.select(sa.func.count()).select_from(JournalEntry).where(
        ~sa.exists().where(keys.entry_lines()))).scalar_one()
    if orphans:
        out.append(Violation(1, "journal", f"{orphans} entries have no lines"))
    return out


def _trial_balance(session: Session, through: date | None) -> list[Violation]:
    """Invariant 1's trial balance: a violation per commodity whose debits and credits differ."""
    out = []
    q = (sa.select(JournalLine.commodity, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, keys.entry_lines()))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    for commodity, d, c in session.execute(q.group_by(JournalLine.commodity)):
        if d != c:
            out.append(Violation(1, f"trial balance {commodity}", f"debits {d} != credits {c}"))
    return out


class GrantTerms(NamedTuple):
    """The columns of a grant (table credit_grant) that invariant 2 reads, read as plain rows
    (tens of thousands of grants: no ORM objects). Money: int minor units of ``currency``."""

    id: str
    customer_id: str
    source: str
    units: int
    amount: int
    currency: str
    effective_at: datetime
    expires_at: datetime | None
    breakage_method: str
    expected_breakage_rate: str | None


@dataclass
class GrantBalance:
    """A grant's journal balances: outstanding units (9100) and deferred (2100, minor units);
    rate: the breakage estimate in force (proportional grants)."""

    grant: GrantTerms
    outstanding: int = 0
    deferred: int = 0
    rate: Fraction | None = None

    @property
    def relieved(self) -> int:
        return self.grant.units - self.outstanding

    @property
    def expected_deferred(self) -> int:
        g = self.grant
        if g.breakage_method == "proportional" and self.outstanding > 0 and self.rate is not None:
            state = GrantState(g.id, g.customer_id, g.source, g.units, g.amount, g.currency, g.effective_at,
                               g.expires_at, self.relieved, method="proportional", rate=self.rate)
            return g.amount - state.target(self.relieved)
        return g.amount - cumulative_share(g.amount, self.relieved, g.units)


@dataclass
class GrantBalances:
    """Per-grant journal balances, and grant ids that journal lines name but no grant row has."""

    grants: dict[str, GrantBalance]
    unknown: list[str]
    subscriptions: dict[str, int] = field(default_factory=dict)  # currency -> platform fees not yet recognised


def grant_balances(session: Session, through: date | None = None, tz: ZoneInfo = ZoneInfo("UTC")) -> GrantBalances:
    """Every grant with lines through ``through`` (inclusive; None: the whole journal), with its
    lot balances (`ledger.store.lots.lot_balances`) and the breakage estimate in force; grant ids
    the lines name that no grant row has go to ``unknown``."""
    terms = sa.select(*(getattr(Grant, k) for k in GrantTerms._fields))
    grants = {g.id: g for g in map(GrantTerms._make, session.execute(terms))}
    lots = lot_balances(session, through=through)
    out = {gid: GrantBalance(grants[gid], lot.outstanding, lot.deferred) for gid, lot in lots.items() if gid in grants}
    unknown = set(lots) - set(grants)
    for b in out.values():
        if b.grant.expected_breakage_rate:
            b.rate = Fraction(Decimal(b.grant.expected_breakage_rate))
    q = sa.select(Event.occurred_at, Event.id, Event.payload).where(Event.type == "breakage.estimate_changed")
    if through:
        q = q.where(Event.posted_date <= through)
    for _, _, payload in sorted(session.execute(q).all()):
        body = json.loads(payload)
        if body["grant_ref"] in out:
            out[body["grant_ref"]].rate = Fraction(Decimal(body["expected_rate"]))
    return GrantBalances(out, sorted(unknown), _subscription_deferred(session, through, tz))


def _subscription_deferred(session: Session, through: date | None, tz: ZoneInfo) -> dict[str, int]:
    """Platform fees billed and not yet recognised: at a date, months billed by then whose
    service runs past it; over the whole journal, months whose end the customer's steps have
    not reached."""
    q = (sa.select(SubscriptionPeriod.service_end, SubscriptionPeriod.platform_fee, Invoice.issue_date, Invoice.currency,
                   Customer.steps_through)
         .join(Invoice, keys.period_invoice())
         .join(Customer, keys.customer_of(SubscriptionPeriod)))
    out: dict[str, int] = defaultdict(int)
    for service_end, platform_fee, issued, cur, steps in session.execute(q):
        if through is not None:
            pending = issued <= through < service_end
        else:
            due = start_of_day(service_end + timedelta(days=1), tz)
            pending = steps is None or steps < due
        if pending:
            out[cur] += platform_fee
    return dict(out)


def check_grants(balances: GrantBalances) -> list[Violation]:
    """Invariant 2 for every grant."""
    out = [Violation(2, f"grant {gid}", "journal lines name a grant that does not exist") for gid in balances.unknown]
    for gid, b in sorted(balances.grants.items()):
        if not 0 <= b.outstanding <= b.grant.units:
            out.append(Violation(2, f"grant {gid}", f"outstanding units {b.outstanding} outside 0..{b.grant.units}"))
        if b.deferred != b.expected_deferred:
            formula = ("A - round(A x min(R, E) / E)" if b.grant.breakage_method == "proportional" and b.outstanding
                       else "A - round(A x R / N)")
            out.append(Violation(2, f"grant {gid}", f"deferred balance {b.deferred} != {formula} = {b.expected_deferred} "
                                 f"(A {b.grant.amount}, R {b.relieved}, N {b.grant.units})"))
        if b.outstanding == 0 and b.deferred != 0:
            out.append(Violation(2, f"grant {gid}", f"no units left but deferred balance {b.deferred}"))
    return out


def check_deferred_total(session: Session, balances: GrantBalances, through: date | None = None) -> list[Violation]:
    """Invariant 3: ledger deferred revenue (2100 + 2150) = the sum over grants, per currency."""
    ledger_total: dict[str, int] = defaultdict(int, deferred_on_ledger(session, through))
    untagged = session.execute(
        sa.select(sa.func.count()).select_from(JournalLine)
        .where(JournalLine.account_code == A.DEFERRED_CREDITS, JournalLine.grant_id.is_(None))).scalar_one()
    out = []
    if untagged:
        out.append(Violation(3, "account 2100", f"{untagged} lines carry no grant"))
    by_grants: dict[str, int] = defaultdict(int, balances.subscriptions)
    for b in balances.grants.values():
        if b.grant.amount:
            by_grants[b.grant.currency] += b.expected_deferred
    for cur in sorted(set(ledger_total) | set(by_grants)):
        if cur == CREDIT:
            continue
        if ledger_total[cur] != by_grants[cur]:
            out.append(Violation(3, f"deferred revenue {cur}",
                                 f"ledger 2100+2150 = {ledger_total[cur]}, sum over open grants and subscription "
                                 f"months = {by_grants[cur]}"))
    return out


_RECOGNISED = (A.USAGE_REVENUE, A.OVERAGE_REVENUE, A.SUBSCRIPTION_REVENUE, A.BREAKAGE_REVENUE,
               A.GUARANTEE_CREDITS, A.REFUNDS_CONCESSIONS)


def check_customer_billing(session: Session, through: date | None = None) -> list[Violation]:
    """Invariant 4 per customer and currency (all amounts int minor units): both sides summed in
    the server, in one grouping of the documents' subtotals and the journal lines together; only
    the customers whose sides differ come back."""
    invoiced = Invoice.kind == "invoice"
    docs = sa.select(Invoice.customer_id.label("cid"), Invoice.currency.label("cur"),
                     sa.case((invoiced, Invoice.subtotal), else_=0).label("billed"),
                     sa.case((invoiced, 0), else_=Invoice.subtotal).label("earned"))
    if through:
        docs = docs.where(Invoice.issue_date <= through)
    unbilled = JournalLine.account_code == A.UNBILLED  # a debit balance: overage recognised, not yet invoiced
    lines = (sa.select(JournalLine.customer_id, JournalLine.commodity,
                       sa.case((unbilled, JournalLine.debit - JournalLine.credit), else_=0),
                       sa.case((unbilled, 0), else_=JournalLine.credit - JournalLine.debit))
             .join(JournalEntry, keys.entry_lines())
             .where(JournalLine.account_code.in_([A.UNBILLED, *A.DEFERRED_ACCOUNTS, *_RECOGNISED])))
    if through:
        lines = lines.where(JournalEntry.entry_date <= through)
    both = sa.union_all(docs, lines).subquery()
    left, right = sa.func.sum(both.c.billed), sa.func.sum(both.c.earned)
    q = sa.select(both.c.cid, both.c.cur, left, right).group_by(both.c.cid, both.c.cur).having(left != right)
    return [Violation(4, f"customer {cid} {cur}", f"billed + unbilled {int(billed)} != recognised + deferred + "
                                                  f"credit notes {int(earned)}")
            for cid, cur, billed, earned in sorted(session.execute(q), key=lambda row: (str(row[0]), row[1]))]


def check_documents(session: Session) -> list[Violation]:
    """Invariant 5: receivable lines equal each document's total; gap-free numbers."""
    out = []
    posted: dict[str, int] = defaultdict(int)
    q = (sa.select(Invoice.number, Invoice.kind, JournalLine.account_code, JournalLine.invoice_number,
                   sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalLine, keys.document_entry_lines())
         .where(JournalLine.account_code.in_([A.RECEIVABLE, A.REFUNDS_PAYABLE, A.CUSTOMER_CREDIT]))
         .group_by(Invoice.customer_id, Invoice.number, Invoice.kind, JournalLine.account_code, JournalLine.invoice_number))
    for number, kind, account, line_invoice, d, c in session.execute(q):
        if kind == "invoice" and account == A.RECEIVABLE and line_invoice == number:
            posted[number] += int(d) - int(c)
        elif kind == "credit_note" and (account != A.CUSTOMER_CREDIT or line_invoice == number):
            posted[number] += int(c) - int(d)
    for number, total, entry_id in session.execute(sa.select(Invoice.number, Invoice.total, Invoice.entry_id)):
        if posted.get(number, 0) != total:
            out.append(Violation(5, f"document {number}", f"receivable lines of entry {entry_id} = {posted.get(number, 0)}, "
                                 f"document total = {total}"))
    for series, year, n, top in session.execute(sa.select(Invoice.series, Invoice.year, sa.func.count(), sa.func.max(Invoice.sequence))
                                                .group_by(Invoice.series, Invoice.year)):
        if n != top:
            out.append(Violation(5, f"series {series}-{year}", f"{n} documents but the last number is {top}: numbers are missing"))
    return out


def check_guarantees(session: Session, through: date | None = None) -> list[Violation]:
    """Guarantee credits (part of invariant 4): each evaluated month's credit follows its basis
    (monthly: max(0, charges - legacy); cumulative: only the window's last month, max(0, the sum
    of the differences)), and per customer and currency the 4900 balance equals the credits of
    the guarantee credit notes issued (through ``through``). Money: int minor units."""
    out = []
    issued = dict(session.execute(sa.select(Invoice.number, Invoice.issue_date).where(Invoice.category == "guarantee")).all())
    credited: dict[tuple[str, str], int] = defaultdict(int)
    by_guarantee: dict[str, list[GuaranteeMonth]] = defaultdict(list)
    for m in session.execute(sa.select(GuaranteeMonth).order_by(GuaranteeMonth.guarantee_id,
                                                                GuaranteeMonth.period)).scalars():
        by_guarantee[m.guarantee_id].append(m)
    for g in session.execute(sa.select(Guarantee)).scalars():
        months = by_guarantee.get(g.id, [])
        for i, m in enumerate(months):
            if g.basis == "monthly":
                expected = max(0, m.charges - m.legacy)
            else:
                last = i == len(months) - 1 and len(months) == g.months
                expected = max(0, sum(x.charges - x.legacy for x in months)) if last else 0
            if m.credit != expected or m.charges != m.subscription + m.overage + m.topups + m.commitments:
                out.append(Violation(4, f"guarantee {g.id} {m.period}",
                                     f"credit {m.credit} (charges {m.charges}, legacy {m.legacy}); the {g.basis} "
                                     f"basis gives {expected}"))
            if m.credit and (m.credit_note is None or m.credit_note not in issued):
                out.append(Violation(4, f"guarantee {g.id} {m.period}", f"credit {m.credit} has no credit note"))
            elif m.credit and (through is None or issued[m.credit_note] <= through):
                credited[(g.customer_id, g.currency)] += m.credit
    q = (sa.select(JournalLine.customer_id, JournalLine.commodity, sa.func.sum(JournalLine.debit - JournalLine.credit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code == A.GUARANTEE_CREDITS)
         .group_by(JournalLine.customer_id, JournalLine.commodity))
    if through:
        q = q.where(JournalEntry.entry_date <= through)
    ledger_side = {(cid, cur): int(v) for cid, cur, v in session.execute(q)}
    for key in sorted(set(ledger_side) | set(credited), key=lambda k: (str(k[0]), k[1])):
        if ledger_side.get(key, 0) != credited.get(key, 0):
            out.append(Violation(4, f"customer {key[0]} {key[1]}", f"4900 Guarantee credits = {ledger_side.get(key, 0)}, "
                                 f"guarantee months credited = {credited.get(key, 0)}"))
    return out


def check_customer_keys(session: Session) -> list[Violation]:
    """Every row of the journal and of the documents names its customer, as the joins of
    `ledger.store.keys` take it: no journal entry without a customer, every journal line names
    its entry's customer and every invoice line its invoice's (invariant 1 for the journal, 5 for
    the documents). Over the whole books whatever the date: such a row is not in a period, and
    where the books are distributed by customer (Citus) a line away from its entry's customer is
    not read with it. A posted usage event names a consumption entry of its customer (the usage
    rows have no foreign keys on PostgreSQL: this is where a dangling one shows).

    One statement of four counts (and the first row of each): entries with no customer, and the
    journal lines and invoice lines with no row of their customer under their key (anti-joins on
    (customer, entry id) and (customer, number): a row naming another customer, or none, finds
    none, and on Citus each runs shard by shard). About as costly as one scan of each table."""
    e, ln, inv, il, u = JournalEntry, JournalLine, Invoice, InvoiceLine, UsageEvent
    loose_lines = ~sa.exists().where(keys.entry_lines(e, ln)).correlate(ln)
    loose_items = ~sa.exists().where(keys.invoice_lines(inv, il)).correlate(il)
    loose_usage = sa.and_(u.entry_id.is_not(None), ~sa.exists().where(keys.usage_entry(u, e)).correlate(u))
    counts = [sa.select(sa.func.count(), sa.func.min(e.id)).where(e.customer_id.is_(None)).subquery(),
              sa.select(sa.func.count(), sa.func.min(ln.entry_id)).where(loose_lines).subquery(),
              sa.select(sa.func.count(), sa.func.min(il.invoice_number)).where(loose_items).subquery(),
              sa.select(sa.func.count(), sa.func.min(u.id)).where(loose_usage).subquery()]
    q = sa.select(*counts).select_from(counts[0].join(counts[1], sa.true()).join(counts[2], sa.true())
                                       .join(counts[3], sa.true()))
    entries, first_entry, lines, line_entry, items, item_doc, usage, first_usage = session.execute(q).one()
    out = []
    if entries:
        out.append(Violation(1, "journal", f"{entries} entries name no customer (the first: entry {first_entry})"))
    if lines:
        out.append(Violation(1, "journal", f"{lines} lines do not name their entry's customer (the first in entry "
                                           f"{line_entry})"))
    if items:
        out.append(Violation(5, "invoice lines", f"{items} lines do not name their document's customer (the first "
                                                 f"in document {item_doc})"))
    if usage:
        out.append(Violation(1, "usage", f"{usage} usage events name no entry of their customer (the first: "
                                         f"{first_usage})"))
    return out


def check_all(session: Session, through: date | None = None, tz: ZoneInfo = ZoneInfo("UTC")) -> list[Violation]:
    """Invariants 1-5, through ``through`` (an entry date) or over the whole journal; ``tz`` is
    the reporting timezone (when a subscription month ends)."""
    balances = grant_balances(session, through, tz)
    return (check_entries_balance(session, through) + check_customer_keys(session) + check_grants(balances)
            + check_deferred_total(session, balances, through) + check_customer_billing(session, through)
            + check_guarantees(session, through)
            + check_documents(session))
