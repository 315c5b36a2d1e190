"""The Python API for product backends (docs/design.md §8.4): every event of docs/design.md §8.2 as a call.

Each call validates its event exactly as a line of an event file is validated (same messages,
naming the field and value), then posts it in its own transaction through the same engine path
as ``ledger import``, with the same idempotency: calling again with the same ``event_id`` and
the same content is a duplicate (nothing posted, ``summary.duplicates == 1``); the same id with
different content raises InvalidInputError. Concurrent callers are safe on PostgreSQL: the call
locks the customer's row first (see `ledger.store.events.lock_customers`). On PostgreSQL one usage
event per call takes the pipelined write path of `ledger.store.pipeline` (same engine, same books, fewer
round trips); everything else, and what that path hands back, takes
`ledger.services.importing.import_events` (see `ledger.services.recording`).

Example::

    from datetime import datetime, timezone
    from ledger.api import Ledger

    books = Ledger("postgresql://ledger_writer@db/ledger", catalog="ledger.toml")
    books.create_customer("evt-1", customer_id="acme", name="Acme AI", currency="USD",
                          occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    books.purchase_topup("evt-2", customer_id="acme", topup_id="top-1", pack="pack_1000",
                         occurred_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    summary = books.record_usage("req-8812", customer_id="acme", credits=120,
                                 occurred_at=datetime(2026, 1, 2, 9, 30, tzinfo=timezone.utc))
    summary.posted, summary.quarantined   # (1, 0); summary.quarantine lists a hard-cap refusal

Amounts are decimal strings or `decimal.Decimal` in the customer's currency ("20.00"; never a
float); ``occurred_at`` is an aware `datetime` or an RFC 3339 string with an offset.
Every method returns the `ledger.core.posting.ImportSummary` of its transaction and raises
InvalidInputError (nothing posted) for an invalid event or one the books refuse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.catalog import Catalog, load_catalog
from ledger.core.posting import ImportSummary
from ledger.services.recording import open_books, record_events

SOURCE = "api"
"""The ``file`` part of the source recorded for API events (``api:<n>``)."""


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        raise TypeError("amounts are decimal strings or Decimal, never float (binary fractions are not money)")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Ledger:
    """The books at ``database_url`` with the catalog at ``catalog`` (a path, or a `Catalog`).

    database_url: a SQLAlchemy URL (``postgresql://...`` or ``sqlite:///file.db``) of a database
    initialised with ``ledger init``. One engine (connection pool) per instance; safe to share
    between threads, and one instance per process.
    """

    def __init__(self, database_url: str, catalog: str | os.PathLike | Catalog | None = None) -> None:
        # one usage event per call on PostgreSQL: the pipelined path of ledger.store.pipeline, which
        # gives the same books (LEDGER_DIRECT=0 turns it off, for comparison)
        self.engine, self._direct = open_books(database_url)
        self.catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog, required=catalog is not None)
        self.catalog.require_company("posting events through ledger.api.Ledger")
        self._n = 0

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generic
    def post(self, events: Iterable[Mapping[str, Any]]) -> ImportSummary:
        """Post several events (dicts shaped as the lines of an event file) atomically."""
        lines = []
        for body in events:
            self._n += 1
            # as JSON text, so that validation is exactly that of a line of an event file
            lines.append((json.dumps(_plain(dict(body)), ensure_ascii=False), self._n))
        return record_events(self.engine, self.catalog, lines, source=SOURCE, direct=self._direct)

    def _one(self, kind: str, event_id: str, occurred_at: datetime | str, **fields: Any) -> ImportSummary:
        body = {"id": event_id, "type": kind, "occurred_at": occurred_at}
        body.update({k: v for k, v in fields.items() if v is not None})
        return self.post([body])

    # ------------------------------------------------------------------ one method per event type
    def create_customer(self, event_id: str, *, customer_id: str, name: str, currency: str,
                        occurred_at: datetime | str, tax_rate: str | Decimal | None = None,
                        address: list[str] | None = None, email: str | None = None, locale: str | None = None,
                        country: str | None = None, vat_id: str | None = None) -> ImportSummary:
        """``customer.created``."""
        return self._one("customer.created", event_id, occurred_at, customer_id=customer_id, name=name,
                         currency=currency, tax_rate=tax_rate, address=address, email=email, locale=locale,
                         country=country, vat_id=vat_id)

    def record_usage(self, event_id: str, *, customer_id: str, occurred_at: datetime | str, credits: int | None = None,
                     action: str | None = None, quantity: int | None = None,
                     cost: str | Decimal | None = None) -> ImportSummary:
        """``usage.recorded``: ``credits``, or ``action`` + ``quantity`` priced by the rate card;
        ``cost``: its own cost to serve (major units of the customer's currency)."""
        return self._one("usage.recorded", event_id, occurred_at, customer_id=customer_id, credits=credits,
                         action=action, quantity=quantity, cost=cost)

    def approve_usage(self, event_id: str, *, customer_id: str, target_event_id: str, occurred_at: datetime | str,
                      credits: int | None = None) -> ImportSummary:
        """``usage.approved``: release usage held at a soft cap (``credits`` of it, default all)."""
        return self._one("usage.approved", event_id, occurred_at, customer_id=customer_id,
                         target_event_id=target_event_id, credits=credits)

    def reject_usage(self, event_id: str, *, customer_id: str, target_event_id: str, reason: str,
                     occurred_at: datetime | str) -> ImportSummary:
        """``usage.rejected``: quarantine what is still held of a usage held at a soft cap."""
        return self._one("usage.rejected", event_id, occurred_at, customer_id=customer_id,
                         target_event_id=target_event_id, reason=reason)

    def start_subscription(self, event_id: str, *, customer_id: str, plan: str, start_date: date | str,
                           occurred_at: datetime | str) -> ImportSummary:
        """``subscription.started``."""
        return self._one("subscription.started", event_id, occurred_at, customer_id=customer_id, plan=plan,
                         start_date=start_date)

    def cancel_subscription(self, event_id: str, *, customer_id: str, end_date: date | str,
                            occurred_at: datetime | str) -> ImportSummary:
        """``subscription.cancelled``."""
        return self._one("subscription.cancelled", event_id, occurred_at, customer_id=customer_id, end_date=end_date)

    def purchase_commitment(self, event_id: str, *, customer_id: str, commitment_id: str, amount: str | Decimal,
                            credits: int, term_start: date | str, term_end: date | str, occurred_at: datetime | str,
                            rollover: Mapping | None = None, renews: str | None = None,
                            overage_price: str | Decimal | None = None, breakage: Mapping | None = None) -> ImportSummary:
        """``commitment.purchased``."""
        return self._one("commitment.purchased", event_id, occurred_at, customer_id=customer_id,
                         commitment_id=commitment_id, amount=amount, credits=credits, term_start=term_start,
                         term_end=term_end, rollover=rollover, renews=renews, overage_price=overage_price,
                         breakage=breakage)

    def purchase_topup(self, event_id: str, *, customer_id: str, topup_id: str, occurred_at: datetime | str,
                       pack: str | None = None, credits: int | None = None, amount: str | Decimal | None = None,
                       expires_at: datetime | str | None = None) -> ImportSummary:
        """``topup.purchased``: a catalog ``pack``, or ``credits`` + ``amount``."""
        return self._one("topup.purchased", event_id, occurred_at, customer_id=customer_id, topup_id=topup_id,
                         pack=pack, credits=credits, amount=amount, expires_at=expires_at)

    def grant_credits(self, event_id: str, *, customer_id: str, grant_id: str, credits: int,
                      occurred_at: datetime | str, expires_at: datetime | str | None = None,
                      reason: str | None = None) -> ImportSummary:
        """``credits.granted`` (promotional, zero cost)."""
        return self._one("credits.granted", event_id, occurred_at, customer_id=customer_id, grant_id=grant_id,
                         credits=credits, expires_at=expires_at, reason=reason)

    def receive_payment(self, event_id: str, *, customer_id: str, amount: str | Decimal, occurred_at: datetime | str,
                        invoice_number: str | None = None) -> ImportSummary:
        """``payment.received``."""
        return self._one("payment.received", event_id, occurred_at, customer_id=customer_id, amount=amount,
                         invoice_number=invoice_number)

    def issue_refund(self, event_id: str, *, customer_id: str, grant_ref: str, occurred_at: datetime | str,
                     credits: int | None = None, concession: bool | None = None,
                     reason: str | None = None) -> ImportSummary:
        """``refund.issued``."""
        return self._one("refund.issued", event_id, occurred_at, customer_id=customer_id, grant_ref=grant_ref,
                         credits=credits, concession=concession, reason=reason)

    def change_breakage_estimate(self, event_id: str, *, customer_id: str, grant_ref: str,
                                 expected_rate: str | Decimal, occurred_at: datetime | str) -> ImportSummary:
        """``breakage.estimate_changed``."""
        return self._one("breakage.estimate_changed", event_id, occurred_at, customer_id=customer_id,
                         grant_ref=grant_ref, expected_rate=expected_rate)

    def enrol_guarantee(self, event_id: str, *, customer_id: str, legacy_monthly_amount: str | Decimal,
                        start_month: str, occurred_at: datetime | str, months: int | None = None,
                        basis: str | None = None) -> ImportSummary:
        """``guarantee.enrolled``."""
        return self._one("guarantee.enrolled", event_id, occurred_at, customer_id=customer_id,
                         legacy_monthly_amount=legacy_monthly_amount, start_month=start_month, months=months,
                         basis=basis)

    def void_event(self, event_id: str, *, target_event_id: str, reason: str,
                   occurred_at: datetime | str) -> ImportSummary:
        """``event.voided``."""
        return self._one("event.voided", event_id, occurred_at, target_event_id=target_event_id, reason=reason)
