"""View models for customer documents (invoices and credit notes).

The engine builds these from the journal; every field is already a formatted string, so the
template only lays them out. Nothing here does arithmetic or formatting.

Example::

    DocumentView(
        title="Invoice", number="INV-2026-000001",
        issue_date="October 1, 2026", due_date="October 31, 2026", currency="USD",
        seller=Party("Example AI, Inc.", ("1 Market St", "San Francisco, CA 94105", "USA")),
        buyer=Party("Acme Corp", ("500 Main St", "Austin, TX 78701"), "ap@acme.test"),
        lines=(DocumentLine("Prepaid commitment C-1001: 120,000 credits, ...",
                            "120,000", "$0.05", "$6,000.00"),),
        subtotal="$6,000.00", tax_label="Sales tax (8.25%)", tax="$495.00",
        total="$6,495.00", amount_due="$6,495.00",
        payment_terms="Net 30: due by October 31, 2026", lang="en",
    )
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Party:
    """A seller or buyer as printed on a document.

    name: display name; address: printed lines, top to bottom; email: contact address or None.
    """

    name: str
    address: tuple[str, ...] = ()
    email: str | None = None


@dataclass(frozen=True)
class DocumentLine:
    """One line of an invoice or credit note; all fields formatted for display."""

    description: str  # e.g. "Prepaid commitment C-1001: 120,000 credits, term ..."
    quantity: str  # formatted, e.g. "120,000"
    unit_price: str  # formatted money, e.g. "$0.05"
    amount: str  # formatted money, e.g. "$6,000.00"


@dataclass(frozen=True)
class Table:
    """A small table printed on a document (credits summary, guarantee calculation).

    headers: column titles; rows and totals: formatted cells, one per header; numeric: which
    columns are right-aligned numbers; note: a sentence printed under the table.
    """

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    totals: tuple[str, ...] | None = None
    note: str | None = None


@dataclass(frozen=True)
class PaymentView:
    """How to pay an invoice, as printed (from the catalog's ``[company.payment]``).

    lead: the sentence that asks for the payment (amount, date, reference); rows: label/value
    pairs (account holder, bank, IBAN, BIC, account and routing number, payment link, payment
    reference); note: the catalog's extra sentence, or None.
    """

    lead: str
    rows: tuple[tuple[str, str], ...]
    note: str | None = None


@dataclass(frozen=True)
class DocumentView:
    """Everything printed on one invoice or credit note, as formatted strings.

    currency: ISO 4217 code of every money string in the view. references: extra label/value
    pairs shown under the document number, e.g. (("Customer ID", "cus_0001"),). adjustments:
    label/amount rows between the total and the amount due (credit balance applied).
    """

    title: str  # "Invoice" or "Credit note"
    number: str  # "INV-2026-000001"
    issue_date: str  # formatted, e.g. "October 1, 2026"
    due_date: str | None
    currency: str  # ISO 4217, e.g. "USD"
    seller: Party
    buyer: Party
    lines: tuple[DocumentLine, ...]
    subtotal: str
    tax_label: str  # e.g. "Sales tax (8.25%)"
    tax: str
    total: str
    amount_due: str
    payment_terms: str  # e.g. "Net 30: due by October 31, 2026"
    notes: tuple[str, ...] = ()
    references: tuple[tuple[str, str], ...] = ()
    adjustments: tuple[tuple[str, str], ...] = ()  # between total and amount due, e.g. ("Credit balance applied", "-$299.00")
    amount_due_label: str = "Amount due"  # "Credited to your account" on a guarantee credit note
    tables: tuple[Table, ...] = ()  # e.g. the guarantee calculation and the credits summary
    logo: str | None = None  # the seller's logo: data: URI of the stored one, or file: URI (catalog), or None
    lang: str = "en"  # language of the labels (reports.i18n.LANGUAGES), the html lang attribute
    payment: PaymentView | None = None  # on invoices with an amount due, when the catalog says how to pay
    corrects: str | None = None  # on a credit note: "Corrects invoice INV-2026-000001 of Oct 1, 2026"
