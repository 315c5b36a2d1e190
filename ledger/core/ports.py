"""What the accounting core asks of the store, as one interface (`LedgerStore`).

The core never opens a session: a posting gets its customers' books, document numbers and
the few stored facts a rule needs (a voided event's entries, an invoice's customer) through
this protocol. ``ledger.store.SessionStore`` implements it over a database session;
``tests/unit`` implement it in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol
from zoneinfo import ZoneInfo

from ledger.core.book import CustomerBook
from ledger.core.documents import DocumentLine
from ledger.core.entries import Line
from ledger.core.guarantee import ChargeDocument, Sale


@dataclass
class StoredUsage:
    """A posted or quarantined usage event, as a void needs it: the accounting date of the
    entry that carries it and its draws [(grant id, units)]."""

    id: str
    customer_id: str
    status: str
    overage_units: int
    overage_price: str | None
    entry_date: date | None = None
    draws: list[tuple[str, int]] = field(default_factory=list)
    credits: int = 0
    action: str | None = None
    quantity: int | None = None
    cost: str | None = None  # its own cost to serve, when the event gave one


@dataclass
class StoredEntry:
    """A journal entry as written: its kind, customer and lines."""

    kind: str
    customer_id: str | None
    lines: list[Line]


@dataclass
class StoredDocument:
    """An issued document's lines and tax, as a credit note cancelling it copies them."""

    lines: list[DocumentLine]
    tax: int
    tax_rate: str


class LedgerStore(Protocol):
    """The reads a posting makes, and the document numbers it takes."""

    def load_books(self, customer_ids: Sequence[str]) -> dict[str, CustomerBook]:
        """The books of the known customers among ``customer_ids`` (unknown ids are left out),
        their grants in load order (effective_at, id)."""
        ...

    def take_number(self, series: str, year: int) -> tuple[str, int]:
        """Reserve the next number of ``series`` in ``year``: ("INV-2026-000001", 1)."""
        ...

    def invoice_customer(self, number: str) -> str | None:
        """The customer of issued document ``number``, None when there is none."""
        ...

    def stored_usage(self, event_id: str) -> StoredUsage | None:
        """The stored usage event ``event_id`` with its draws, None when there is none."""
        ...

    def event_entries(self, event_id: str) -> list[StoredEntry]:
        """The journal entries written for business event ``event_id``, in entry id order."""
        ...

    def document(self, number: str) -> StoredDocument:
        """The lines and tax of issued document ``number``."""
        ...

    def consumed_in(self, customer_id: str, start: date, end: date) -> int:
        """Credits the customer consumed (9200, net of voids) in entries dated ``start`` to ``end``."""
        ...

    def held_units(self, event_id: str) -> int:
        """Units of usage event ``event_id`` still held for review (its 9500 balance)."""
        ...

    def charge_inputs(self, customer_id: str, tz: ZoneInfo) -> tuple[list[ChargeDocument], list[Sale]]:
        """The customer's issued documents and purchase grants, for the guarantee's charges."""
        ...
