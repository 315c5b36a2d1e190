"""Invoices and credit notes as values, issued with gap-free numbers the store hands out.

The core asks for a number through `DocumentNumbers` (``INV-2026-000001``: series, year,
sequence); the store takes it inside the posting's transaction, so a rolled-back posting gives
its number back and the series stay gap-free per year (docs/design.md §8.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Protocol

from ledger.core.money import exponent

SERIES = {"invoice": "INV", "credit_note": "CN"}
"""Document kind -> number series."""


class DocumentNumbers(Protocol):
    """Where the core gets document numbers from (implemented by ``ledger.store``)."""

    def take_number(self, series: str, year: int) -> tuple[str, int]:
        """Reserve the next number of ``series`` in ``year``: ("INV-2026-000001", 1)."""
        ...


def unit_price_text(amount: int, quantity: int, currency: str) -> str | None:
    """amount / quantity in major units as a decimal string when it is exact to 6 decimals
    (e.g. 600000 USD cents / 120000 credits -> "0.05"); None when it is not."""
    exp = exponent(currency)
    price = Decimal(amount).scaleb(-exp) / Decimal(quantity)
    q = price.quantize(Decimal("0.000001"))
    if q * quantity != Decimal(amount).scaleb(-exp):
        return None
    q = q.normalize()
    if -q.as_tuple().exponent < exp:
        q = q.quantize(Decimal(1).scaleb(-exp))
    return format(q, "f")


DocumentLine = tuple[str, int, str, int]
"""(description, quantity, unit price as a decimal string, amount in int minor units)."""


@dataclass
class InvoiceDraft:
    """An invoice or credit note being issued with its journal entry. Amounts: int minor units."""

    number: str
    sequence: int
    kind: str  # invoice | credit_note
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    tax_rate: str
    subtotal: int
    tax: int
    event_id: str
    lines: list[DocumentLine] = field(default_factory=list)
    category: str = "purchase"  # purchase | subscription | overage | refund | void | guarantee
    service_period: str | None = None
    reference: str | None = None  # the invoice a credit note corrects
    # What the page shows that the journal does not hold, as it was at issue (`Posting.issue`):
    # seller: canonical JSON of the catalog's company; buyer: canonical JSON of `buyer_snapshot`;
    # logo: the logo's bytes and media type (None: no logo)
    seller: str | None = None
    buyer: str | None = None
    logo: bytes | None = None
    logo_type: str | None = None

    @property
    def total(self) -> int:
        return self.subtotal + self.tax


BUYER_FIELDS = ("name", "address", "email", "locale", "country", "vat_id")
"""The customer's fields an issued document keeps as they were at issue (`buyer_snapshot`)."""


def buyer_snapshot(customer: object) -> str:
    """Canonical JSON (sorted keys, no whitespace, UTF-8) of the customer's `BUYER_FIELDS`, the
    address as a list of lines: e.g. {"address":["500 Main St"],"country":"US","email":null,
    "locale":"en_US","name":"Acme AI","vat_id":null}. ``customer``: a CustomerRecord (address:
    JSON text of its lines)."""
    values = {f: getattr(customer, f) for f in BUYER_FIELDS}
    values["address"] = json.loads(values["address"])
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_document(numbers: DocumentNumbers, *, customer_id: str, currency: str, issue_date: date, terms_days: int,
                 tax_rate: str, tax: int, event_id: str, lines: list[DocumentLine], kind: str = "invoice",
                 category: str = "purchase", service_period: str | None = None,
                 reference: str | None = None) -> InvoiceDraft:
    """Take the next number of the series of ``kind`` (invoice -> INV, credit_note -> CN) and
    build the draft; the subtotal is the sum of the lines' amounts (int minor units)."""
    number, seq = numbers.take_number(SERIES[kind], issue_date.year)
    return InvoiceDraft(number, seq, kind, customer_id, currency, issue_date, issue_date + timedelta(days=terms_days),
                        tax_rate, sum(line[3] for line in lines), tax, event_id, lines, category, service_period,
                        reference)
