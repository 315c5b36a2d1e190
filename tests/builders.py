"""Event builders shared by tests of every tier: inline JSONL events with real numbers.

Kept here (on sys.path through tests/conftest.py) so that tests in tests/examples,
tests/integration and tests/e2e can share them without importing one another.
"""

from __future__ import annotations

import json
from pathlib import Path

COMPANY_CATALOG = Path(__file__).parent / "company.toml"
"""A catalog with only a company (the seller of every document), for tests that need no plans."""

ACME = ('{"id": "c-acme", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
        '"customer_id": "acme", "name": "Acme AI", "currency": "USD"}')
TAXED = ('{"id": "c-acme", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
         '"customer_id": "acme", "name": "Acme AI", "currency": "USD", "tax_rate": "0.0825"}')


def usage(eid: str, when: str, credits: int, customer: str = "acme") -> str:
    return (f'{{"id": "{eid}", "type": "usage.recorded", "occurred_at": "{when}", '
            f'"customer_id": "{customer}", "credits": {credits}}}')


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def enrol(basis: str = "monthly", months: int = 6, start: str = "2026-03", eid: str = "g-1") -> str:
    return ev(eid, "guarantee.enrolled", "2026-03-01T00:00:00Z", customer_id="acme",
              legacy_monthly_amount="750.00", start_month=start, months=months, basis=basis)


PRO = ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z", customer_id="acme", plan="professional",
         start_date="2026-03-01")


def import_in_process(url: str, path: str) -> None:
    """Import the file at ``path`` into the books at ``url`` (run in a child process)."""
    from sqlmodel import Session

    from ledger.catalog import load_catalog
    from ledger.store.db import make_engine
    from ledger.services.importing import import_files

    engine = make_engine(url)
    try:
        with Session(engine) as s:
            import_files(s, load_catalog(COMPANY_CATALOG, required=True), [path])
    finally:
        engine.dispose()
