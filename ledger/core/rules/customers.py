"""New customers: a customer record and an empty book (no entry)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ledger.core.book import CustomerBook
from ledger.core.records import CustomerRecord
from ledger.events import CustomerCreated, SourcedEvent

if TYPE_CHECKING:
    from ledger.core.posting import Posting


def on_customer_created(p: Posting, se: SourcedEvent, ev: CustomerCreated) -> None:
    """Open the customer's book; its currency and tax rate price all its documents."""
    customer = CustomerRecord(id=ev.customer_id, name=ev.name, currency=ev.currency, tax_rate=ev.tax_rate,
                              address=json.dumps(ev.address, ensure_ascii=False), email=ev.email, locale=ev.locale,
                              country=ev.country, vat_id=ev.vat_id, created_at=ev.occurred_at, steps_through=None)
    p.books[ev.customer_id] = CustomerBook(customer, {}, None, {}, new=True)
    d, late = p.accounting_date(ev.occurred_at)
    p.record_event(se, ev.customer_id, d, late)
