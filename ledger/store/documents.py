"""What a document page reads (docs/design.md §5.8, §8.1): an issued invoice or credit note, its lines,
its customer, the credit balance applied to it, the customer's credits at the issue date and,
for a guarantee credit note, the guarantee's months.

Every function takes a Session and returns plain values (records mirroring the tables, ints,
dicts); ``reports.documents`` formats them. Amounts: int minor units of the document's
currency; credits: int units; dates: local dates of the reporting timezone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.core.documents import BUYER_FIELDS
from ledger.core.records import (
    CustomerRecord,
    GrantRecord,
    GuaranteeMonthRecord,
    GuaranteeRecord,
    SubscriptionRecord,
)
from ledger.store import keys
from ledger.store.books import record_of
from ledger.store.models import (
    Customer,
    Grant,
    Guarantee,
    GuaranteeMonth,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Subscription,
)


@dataclass
class InvoiceRecord:
    """An issued invoice or credit note (table ``invoice``). kind: invoice | credit_note;
    category: purchase | subscription | overage | refund | void | guarantee; subtotal, tax,
    total: int minor units of ``currency``; tax_rate: decimal string; service_period
    'YYYY-MM' or None; reference: the invoice a credit note corrects, or None."""

    number: str
    kind: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    tax_rate: str
    subtotal: int
    tax: int
    total: int
    event_id: str
    category: str
    service_period: str | None
    reference: str | None
    entry_id: int | None = None  # the journal entry that issued it


@dataclass
class InvoiceLineRecord:
    """A line of a document: quantity int; unit_price decimal string in major units; amount
    int minor units."""

    position: int
    description: str
    quantity: int
    unit_price: str
    amount: int


@dataclass
class DocumentFacts:
    """Document ``invoice`` with its ``customer``, its ``lines`` in position order, and
    ``credit_applied``: the customer credit balance applied to it when issued (Dr 2200 lines of
    ``credit_applied`` entries carrying its number; 0 for a credit note). Money: int minor units.

    What the document kept at issue (migration 0014): ``customer`` carries the name, address,
    e-mail, locale, country and VAT id it had then; ``seller`` is the catalog's company then, as
    canonical JSON; ``logo`` the logo's (bytes, media type). A document issued before 0014 has
    ``seller`` None (and ``logo`` None, ``customer`` as it is now): render it from the catalog."""

    invoice: InvoiceRecord
    customer: CustomerRecord
    lines: list[InvoiceLineRecord]
    credit_applied: int
    seller: str | None = None
    logo: tuple[bytes, str] | None = None


def document_facts(session: Session, number: str) -> DocumentFacts | None:
    """The stored facts of document ``number``, or None if no such invoice or credit note."""
    inv = invoice(session, number)
    if inv is None:
        return None
    customer = customer_record(session, inv.customer_id)
    assert customer is not None
    seller, buyer, logo, logo_type = session.execute(
        sa.select(Invoice.seller, Invoice.buyer, Invoice.logo, Invoice.logo_type)
        .where(Invoice.customer_id == inv.customer_id, Invoice.number == number)).one()
    if buyer is not None:
        kept = json.loads(buyer)
        customer = replace(customer, **{f: kept[f] for f in BUYER_FIELDS if f != "address"},
                           address=json.dumps(kept["address"]))
    lines = invoice_lines(session, number)
    applied = credit_applied(session, number) if inv.kind == "invoice" else 0
    return DocumentFacts(inv, customer, lines, applied, seller,
                         (bytes(logo), logo_type) if logo is not None else None)


def invoice(session: Session, number: str) -> InvoiceRecord | None:
    """Invoice or credit note ``number``, or None."""
    row = session.get(Invoice, number)
    return record_of(row, InvoiceRecord) if row is not None else None


def invoices(session: Session, numbers: list[str]) -> dict[str, InvoiceRecord]:
    """The documents among ``numbers``, by number (unknown numbers are left out)."""
    if not numbers:
        return {}
    return {i.number: record_of(i, InvoiceRecord)
            for i in session.execute(sa.select(Invoice).where(Invoice.number.in_(list(numbers)))).scalars()}


def customer_record(session: Session, customer_id: str) -> CustomerRecord | None:
    """Customer ``customer_id``, or None."""
    row = session.get(Customer, customer_id)
    return record_of(row, CustomerRecord) if row is not None else None


def credit_applied(session: Session, number: str) -> int:
    """The customer credit balance applied to invoice ``number`` (Dr 2200 lines carrying it in
    ``credit_applied`` entries, debit - credit), int minor units."""
    return int(session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(JournalLine.debit - JournalLine.credit), 0))
        .join(JournalEntry, keys.entry_lines())
        .where(JournalLine.invoice_number == number, JournalLine.account_code == A.CUSTOMER_CREDIT,
               JournalEntry.kind == "credit_applied")).scalar_one())


def guarantee(session: Session, guarantee_id: str) -> GuaranteeRecord | None:
    """Guarantee ``guarantee_id`` (its guarantee.enrolled event id), or None."""
    row = session.get(Guarantee, guarantee_id)
    return record_of(row, GuaranteeRecord) if row is not None else None


def guarantee_months(session: Session, guarantee_id: str, through: str = "9999-12") -> list[GuaranteeMonthRecord]:
    """The evaluated months of guarantee ``guarantee_id`` up to ``through`` ('YYYY-MM',
    inclusive), oldest first."""
    return [record_of(m, GuaranteeMonthRecord) for m in session.execute(
        sa.select(GuaranteeMonth).where(GuaranteeMonth.guarantee_id == guarantee_id, GuaranteeMonth.period <= through)
        .order_by(GuaranteeMonth.period)).scalars()]


def credit_balances(session: Session, customer_id: str, on: date) -> dict[str, int]:
    """Credits left per grant of ``customer_id`` at the end of ``on``: the 9100 balance
    (credit - debit, int units) of every grant whose balance is positive."""
    q = (sa.select(JournalLine.grant_id, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.CREDITS_OUTSTANDING,
                JournalLine.grant_id.is_not(None), JournalEntry.entry_date <= on)
         .group_by(JournalLine.grant_id))
    return {gid: int(units) for gid, units in session.execute(q) if int(units) > 0}


def credit_balances_through(session: Session, customer_id: str, entry_id: int) -> dict[str, int]:
    """Credits left per grant of ``customer_id`` just after journal entry ``entry_id`` (the
    entry that issued a document, so the grant it sells is counted) in event time: the 9100
    balance (credit - debit, int units) of the entries that occurred before it, or at the same
    instant and were posted no later (id <= ``entry_id``); grants with a positive balance. A day's
    usage entry, stamped with its last use, counts only if that came before."""
    issued_at = session.execute(sa.select(JournalEntry.occurred_at).where(JournalEntry.id == entry_id)).scalar_one()
    q = (sa.select(JournalLine.grant_id, sa.func.sum(JournalLine.credit - JournalLine.debit))
         .join(JournalEntry, keys.entry_lines())
         .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.CREDITS_OUTSTANDING,
                JournalLine.grant_id.is_not(None),
                sa.or_(JournalEntry.occurred_at < issued_at,
                       sa.and_(JournalEntry.occurred_at == issued_at, JournalEntry.id <= entry_id)))
         .group_by(JournalLine.grant_id))
    return {gid: int(units) for gid, units in session.execute(q) if int(units) > 0}


def invoice_lines(session: Session, number: str) -> list[InvoiceLineRecord]:
    """The lines of document ``number`` in position order (empty for an unknown number)."""
    return [record_of(ln, InvoiceLineRecord) for ln in session.execute(
        sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number).order_by(InvoiceLine.position)).scalars()]


def invoiced_grants(session: Session, number: str) -> list[GrantRecord]:
    """The grants sold by invoice ``number`` (its purchase or a plan month's included credits),
    in id order."""
    return [record_of(g, GrantRecord) for g in session.execute(
        sa.select(Grant).where(Grant.invoice_number == number).order_by(Grant.id)).scalars()]


def subscription(session: Session, subscription_id: str) -> SubscriptionRecord | None:
    """Subscription ``subscription_id`` (its subscription.started event id), or None."""
    row = session.get(Subscription, subscription_id)
    return record_of(row, SubscriptionRecord) if row is not None else None


def grants(session: Session, grant_ids: list[str]) -> dict[str, GrantRecord]:
    """The grants among ``grant_ids``, by id (unknown ids are left out)."""
    if not grant_ids:
        return {}
    return {g.id: record_of(g, GrantRecord)
            for g in session.execute(sa.select(Grant).where(Grant.id.in_(list(grant_ids)))).scalars()}


def issued_numbers(session: Session, start: date, end: date) -> list[str]:
    """Numbers of the invoices and credit notes issued from ``start`` to ``end`` (inclusive), in
    number order."""
    return list(session.execute(
        sa.select(Invoice.number).where(Invoice.issue_date >= start, Invoice.issue_date <= end)
        .order_by(Invoice.number)).scalars())


def billed(session: Session, start: date, end: date) -> dict[tuple[str, str], int]:
    """Subtotals of the documents issued from ``start`` to ``end`` (inclusive) per (currency,
    kind), kind invoice | credit_note; int minor units before tax."""
    return {(cur, kind): int(subtotal) for cur, kind, subtotal in session.execute(
        sa.select(Invoice.currency, Invoice.kind, sa.func.sum(Invoice.subtotal))
        .where(Invoice.issue_date >= start, Invoice.issue_date <= end).group_by(Invoice.currency, Invoice.kind))}
