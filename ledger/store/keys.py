"""The join conditions between rows of one customer's books, in one place.

Every table of a customer's books names its customer (``customer_id``; ``customer`` itself by
``id``), and every join between two of them equates the customers beside the key that links the
rows: a journal line to its entry by (customer, entry id), an invoice line to its invoice by
(customer, number), a usage event to the entry that posted it by (customer, entry id), a line to
the grant it names by (customer, grant id). On Citus those tables are distributed by customer in
one co-location group, and only a join that equates the distribution columns runs shard by shard
without moving rows between nodes. Elsewhere the extra condition changes no answer: a journal
line names its entry's customer and an invoice line its invoice's (`ledger verify` checks both:
`ledger.store.invariants.check_customer_keys`). Joins to the chart (``account``, a reference
table) or to the coordinator's own tables need nothing.

Each function takes the two sides (the mapped classes by default; pass aliases to join others)
and returns the condition for ``.join()``, ``.outerjoin()`` or a correlated ``EXISTS``; the
``*_sql`` ones give the same conditions for the statements written as SQL text.

Reads as stored: the reads that must show the journal exactly as stored, the audit export
(``ledger.store.journal``) and the seals (``ledger.store.seals``), join an entry to its lines
with ``by_customer=is_citus(session)``: on Citus by (customer, entry id) as above, elsewhere by
the entry id alone, so that a line naming another customer than its entry, or none (books
written by hand, older books), is still exported and sealed with its entry while ``ledger
verify`` reports it. Citus holds no such line: the distribution column is never NULL there, and
the foreign key from a line to its entry names the customer.

One PostgreSQL's planner takes the customer equality as independent of the entry id (its
foreign key from journal_line names the entry id alone) and expects a journal join to give about
one row in 10,000 of what it gives; on the largest journal reads (the trial balance, verify's
balance checks) it then sorts where it would hash. A foreign key on (customer_id, entry_id), as
Citus has, gives it the true estimate back.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ledger.store.keys_sql import entry_lines_sql, line_grant_sql  # noqa: F401 - also given here
from ledger.store.models import Customer, Grant, Invoice, InvoiceLine, JournalEntry, JournalLine, SubscriptionPeriod, UsageEvent


def same_customer(a: Any, b: Any) -> sa.ColumnElement[bool]:
    """``a.customer_id = b.customer_id``: two rows of one customer's books (mapped classes or
    aliases with a ``customer_id`` column)."""
    return a.customer_id == b.customer_id


def entry_lines(entry: Any = JournalEntry, line: Any = JournalLine, *, by_customer: bool = True) -> sa.ColumnElement[bool]:
    """A journal entry and its lines: (customer, entry id); the entry id alone without
    ``by_customer`` (the reads as stored: see the module's docstring)."""
    return sa.and_(entry.id == line.entry_id, same_customer(entry, line)) if by_customer else entry.id == line.entry_id


def usage_entry(usage: Any = UsageEvent, entry: Any = JournalEntry) -> sa.ColumnElement[bool]:
    """A usage event and the consumption entry that carries it: (customer, entry id)."""
    return sa.and_(entry.id == usage.entry_id, same_customer(entry, usage))


def invoice_lines(invoice: Any = Invoice, line: Any = InvoiceLine) -> sa.ColumnElement[bool]:
    """A document and its lines (``invoice_line``): (customer, number)."""
    return sa.and_(invoice.number == line.invoice_number, same_customer(invoice, line))


def line_invoice(line: Any = JournalLine, invoice: Any = Invoice) -> sa.ColumnElement[bool]:
    """A journal line and the document whose number it carries: (customer, number)."""
    return sa.and_(invoice.number == line.invoice_number, same_customer(invoice, line))


def document_entry_lines(invoice: Any = Invoice, line: Any = JournalLine) -> sa.ColumnElement[bool]:
    """A document and the journal lines of the entry that posted it: (customer, entry id)."""
    return sa.and_(line.entry_id == invoice.entry_id, same_customer(invoice, line))


def line_grant(line: Any = JournalLine, grant: Any = Grant) -> sa.ColumnElement[bool]:
    """A journal line and the grant (lot) it names: (customer, grant id)."""
    return sa.and_(grant.id == line.grant_id, same_customer(grant, line))


def line_usage(line: Any = JournalLine, usage: Any = UsageEvent) -> sa.ColumnElement[bool]:
    """A journal line and the usage event it names (``event_id``): (customer, event id)."""
    return sa.and_(usage.id == line.event_id, same_customer(usage, line))


def period_invoice(period: Any = SubscriptionPeriod, invoice: Any = Invoice) -> sa.ColumnElement[bool]:
    """A billed subscription month and its invoice: (customer, number)."""
    return sa.and_(invoice.number == period.invoice_number, same_customer(invoice, period))


def customer_of(row: Any, customer: Any = Customer) -> sa.ColumnElement[bool]:
    """A row and its customer: ``customer.id = row.customer_id`` (the distribution column of
    ``customer`` is its id)."""
    return customer.id == row.customer_id
