"""Read models of the reports (docs/design.md §8.1): the sums of journal lines and the stored rows
``ledger.reporting`` and ``reports`` build every report from.

Every function takes a Session and returns plain values (tuples, dicts, records mirroring the
tables); nothing here classifies, totals or formats. Money: int minor units of the line's
commodity; credits: int units; dates: local dates of the reporting timezone (``entry_date``),
inclusive bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.money import CREDIT
from ledger.core.records import GuaranteeRecord, QuarantineRecord
from ledger.store import keys
from ledger.store.books import record_of
from ledger.store.models import (
    Account,
    Event,
    Guarantee,
    Invoice,
    JournalEntry,
    JournalLine,
    PeriodClose,
    Quarantine,
    UsageEvent,
)


@dataclass
class CloseRecord:
    """One close or reopen of a period (table ``period_close``), as the audit trail shows it.
    at: aware UTC datetime; checks: JSON list of the checks that passed, or None."""

    id: int
    period: str
    action: str
    at: datetime
    by: str
    reason: str | None
    journal_head: int | None
    entries: int | None
    seal: str | None
    previous_seal: str | None
    checks: str | None


def _in(d0: date, d1: date):
    return sa.and_(JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)


def account_balances(session: Session, end: date) -> list[tuple[str, str, str, int, int]]:
    """(account code, account name, commodity, debits, credits) summed over the journal lines
    dated on or before ``end``, per account and commodity; currencies first (by code), then
    credits, each by account code."""
    q = (sa.select(JournalLine.account_code, Account.name, JournalLine.commodity,
                   sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, keys.entry_lines())
         .join(Account, Account.code == JournalLine.account_code)
         .where(JournalEntry.entry_date <= end)
         .group_by(JournalLine.account_code, Account.name, JournalLine.commodity)
         .order_by(JournalLine.commodity == CREDIT, JournalLine.commodity, JournalLine.account_code))
    return [(code, name, commodity, int(d), int(c)) for code, name, commodity, d, c in session.execute(q)]


def deferred_movements(session: Session, start: date, end: date) -> list[tuple[str, str, str, int, int]]:
    """(customer id, currency, entry kind, before, during) of deferred revenue (2100 + 2150,
    credit - debit): ``before`` from entries dated before ``start``, ``during`` from those dated
    from ``start`` to ``end``."""
    amount = JournalLine.credit - JournalLine.debit
    q = (sa.select(JournalLine.customer_id, JournalLine.commodity, JournalEntry.kind,
                   sa.func.sum(sa.case((JournalEntry.entry_date < start, amount), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), amount), else_=0)))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_(A.DEFERRED_ACCOUNTS), JournalEntry.entry_date <= end)
         .group_by(JournalLine.customer_id, JournalLine.commodity, JournalEntry.kind))
    return [(cid, cur, kind, int(before), int(during)) for cid, cur, kind, before, during in session.execute(q)]


def account_sums(session: Session, codes: list[str], start: date, end: date) -> dict[tuple[str, str], int]:
    """credit - debit of the lines of accounts ``codes`` dated from ``start`` to ``end``, per
    (account code, commodity)."""
    q = (sa.select(JournalLine.account_code, JournalLine.commodity, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_(codes), _in(start, end))
         .group_by(JournalLine.account_code, JournalLine.commodity))
    return {(code, cur): int(v) for code, cur, v in session.execute(q)}


def customer_account_sums(session: Session, codes: list[str], start: date,
                          end: date) -> dict[tuple[str, str, str], int]:
    """credit - debit of the lines of accounts ``codes`` dated from ``start`` to ``end``, per
    (customer id, account code, commodity); int minor units."""
    q = (sa.select(JournalLine.customer_id, JournalLine.account_code, JournalLine.commodity,
                   sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_(codes), _in(start, end), JournalLine.customer_id.is_not(None))
         .group_by(JournalLine.customer_id, JournalLine.account_code, JournalLine.commodity))
    return {(cid, code, cur): int(v) for cid, code, cur, v in session.execute(q)}


def held_usage(session: Session, end: date | None = None) -> list[tuple[str, str, datetime, int, int]]:
    """(usage event id, customer id, occurred_at, units held, units still held) of every usage
    held for review at a soft cap, from its 9500 lines dated on or before ``end`` (all if None),
    in customer and event order."""
    q = (sa.select(JournalLine.event_id, UsageEvent.customer_id, UsageEvent.occurred_at,
                   sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.debit - JournalLine.credit))
         .join(JournalEntry, keys.entry_lines())
         .join(UsageEvent, keys.line_usage())
         .where(JournalLine.account_code == A.USAGE_HELD)
         .group_by(JournalLine.event_id, UsageEvent.customer_id, UsageEvent.occurred_at)
         .order_by(UsageEvent.customer_id, JournalLine.event_id))
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    return [(eid, cid, at, int(held), int(left)) for eid, cid, at, held, left in session.execute(q)]


def credit_movements(session: Session, start: date, end: date,
                     customer_id: str | None = None) -> list[tuple[str, str, str, int, int, int]]:
    """(grant id, account, entry kind, before, credits, debits) of the grant lines of 9100 and
    2150 dated on or before ``end`` (of one customer, if given): ``before`` = credit - debit
    before ``start``; credits and debits summed from ``start`` to ``end``. Int units on 9100,
    int minor units on 2150."""
    units = JournalLine.credit - JournalLine.debit
    q = (sa.select(JournalLine.grant_id, JournalLine.account_code, JournalEntry.kind,
                   sa.func.sum(sa.case((JournalEntry.entry_date < start, units), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), JournalLine.credit), else_=0)),
                   sa.func.sum(sa.case((_in(start, end), JournalLine.debit), else_=0)))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_([A.CREDITS_OUTSTANDING, A.DEFERRED_CREDITS]),
                JournalLine.grant_id.is_not(None), JournalEntry.entry_date <= end)
         .group_by(JournalLine.grant_id, JournalLine.account_code, JournalEntry.kind))
    if customer_id:
        q = q.where(JournalLine.customer_id == customer_id)
    return [(gid, account, kind, int(before), int(cr), int(dr))
            for gid, account, kind, before, cr, dr in session.execute(q)]


def quarantined(session: Session) -> list[QuarantineRecord]:
    """Every quarantined usage event, by occurred_at then event id."""
    return [record_of(q, QuarantineRecord) for q in session.execute(
        sa.select(Quarantine).order_by(Quarantine.occurred_at, Quarantine.event_id)).scalars()]


def open_receivables(session: Session, as_of: date) -> dict[str, int]:
    """The 1100 balance (debit - credit) of every invoice number at the end of ``as_of``,
    leaving out the invoices settled by then."""
    q = (sa.select(JournalLine.invoice_number, sa.func.sum(JournalLine.debit - JournalLine.credit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code == A.RECEIVABLE, JournalLine.invoice_number.is_not(None),
                JournalEntry.entry_date <= as_of)
         .group_by(JournalLine.invoice_number))
    return {n: int(v) for n, v in session.execute(q) if int(v) != 0}


def statement_movements(session: Session, customer_id: str,
                        end: date | None = None) -> list[tuple[date, int, str, str, str | None, int, int]]:
    """(entry date, entry id, entry kind, description, invoice number, debits, credits) of the
    customer's 1100 and 2200 lines per entry and invoice number, dated on or before ``end``
    (all if None), in date, entry id and number order (lines without a number last)."""
    q = (sa.select(JournalEntry.entry_date, JournalEntry.id, JournalEntry.kind, JournalEntry.description,
                   JournalLine.invoice_number, sa.func.sum(JournalLine.debit), sa.func.sum(JournalLine.credit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.customer_id == customer_id,
                JournalLine.account_code.in_([A.RECEIVABLE, A.CUSTOMER_CREDIT]))
         .group_by(JournalEntry.entry_date, JournalEntry.customer_id, JournalEntry.id, JournalEntry.kind,
                   JournalEntry.description, JournalLine.invoice_number)
         .order_by(JournalEntry.entry_date, JournalEntry.id, JournalLine.invoice_number.is_(None),
                   JournalLine.invoice_number))
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    return [(d, entry_id, kind, text, number, int(debit), int(credit))
            for d, entry_id, kind, text, number, debit, credit in session.execute(q)]


def guarantees_started(session: Session, period: str) -> list[GuaranteeRecord]:
    """The guarantees whose window starts in or before ``period``, by customer and start month."""
    return [record_of(g, GuaranteeRecord) for g in session.execute(
        sa.select(Guarantee).where(Guarantee.start_month <= period)
        .order_by(Guarantee.customer_id, Guarantee.start_month)).scalars()]


def guarantee_note_dates(session: Session) -> dict[str, date]:
    """The issue date of every guarantee credit note, by number."""
    return dict(session.execute(sa.select(Invoice.number, Invoice.issue_date).where(Invoice.category == "guarantee")).all())


def account_balance(session: Session, code: str, end: date) -> dict[str, int]:
    """The balance (debit - credit) of account ``code`` at the end of ``end``, per commodity."""
    return {cur: int(net) for cur, net in session.execute(
        sa.select(JournalLine.commodity, sa.func.sum(JournalLine.debit - JournalLine.credit))
        .join(JournalEntry, keys.entry_lines())
        .where(JournalLine.account_code == code, JournalEntry.entry_date <= end)
        .group_by(JournalLine.commodity))}


def period_closes(session: Session, period: str | None = None) -> list[CloseRecord]:
    """Every close and reopen (of ``period`` only, if given), oldest first."""
    q = sa.select(PeriodClose).order_by(PeriodClose.id)
    if period is not None:
        q = q.where(PeriodClose.period == period)
    return [record_of(r, CloseRecord) for r in session.execute(q).scalars()]


def monthly_sums(session: Session, codes: list[str], end: date) -> list[tuple[str, str, str, int]]:
    """('YYYY-MM', account code, commodity, credit - debit) of the lines of accounts ``codes``
    dated on or before ``end``, per month of the entry date."""
    month_of = sa.func.substr(sa.cast(JournalEntry.entry_date, sa.String), 1, 7)
    q = (sa.select(month_of, JournalLine.account_code, JournalLine.commodity,
                   sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.account_code.in_(codes), JournalEntry.entry_date <= end)
         .group_by(month_of, JournalLine.account_code, JournalLine.commodity))
    return [(month, code, cur, int(net)) for month, code, cur, net in session.execute(q)]


def first_entry_date(session: Session) -> date | None:
    """The date of the earliest journal entry (when the books start), or None for empty books."""
    return session.execute(sa.select(sa.func.min(JournalEntry.entry_date))).scalar_one()


def late_postings(session: Session, start: date, end: date) -> list[tuple[str, str, str | None, datetime, date]]:
    """(event id, type, customer id, occurred_at, posted on) of the late events posted from
    ``start`` to ``end`` (docs/design.md §6.3): business events (posted_date), then usage
    (type ``usage.recorded``, posted on the date of the entry that carries it)."""
    rows = [(i, t, c, at, p) for i, t, c, at, p in session.execute(
        sa.select(Event.id, Event.type, Event.customer_id, Event.occurred_at, Event.posted_date)
        .where(Event.late.is_(True), Event.posted_date >= start, Event.posted_date <= end))]
    rows += [(i, "usage.recorded", c, at, p) for i, c, at, p in session.execute(
        sa.select(UsageEvent.id, UsageEvent.customer_id, UsageEvent.occurred_at, JournalEntry.entry_date)
        .join(JournalEntry, keys.usage_entry())
        .where(UsageEvent.late.is_(True), JournalEntry.entry_date >= start, JournalEntry.entry_date <= end))]
    return rows
