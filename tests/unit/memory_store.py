"""An in-memory `LedgerStore` for testing the accounting core without a database, and helpers
that post events to a `Posting` and read balances off its entries."""

from __future__ import annotations

import textwrap

import pytest
from collections import defaultdict
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from ledger.catalog import Catalog, load_catalog
from ledger.core.book import CustomerBook
from ledger.core.entries import EntryDraft
from ledger.core.ports import StoredDocument, StoredEntry, StoredUsage
from ledger.core.posting import Posting, apply_order
from ledger.events import SourcedEvent, parse_event


class MemoryStore:
    """No stored books (every customer is created in the posting) and numbers from counters."""

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, int], int] = defaultdict(int)

    def load_books(self, customer_ids: Sequence[str]) -> dict[str, CustomerBook]:
        return {}

    def take_number(self, series: str, year: int) -> tuple[str, int]:
        self.numbers[series, year] += 1
        n = self.numbers[series, year]
        return f"{series}-{year:04d}-{n:06d}", n

    def invoice_customer(self, number: str) -> str | None:
        return None

    def stored_usage(self, event_id: str) -> StoredUsage | None:
        return None

    def consumed_in(self, customer_id: str, start, end) -> int:
        return 0

    def held_units(self, event_id: str) -> int:
        return 0

    def event_entries(self, event_id: str) -> list[StoredEntry]:
        return []

    def document(self, number: str) -> StoredDocument:
        raise KeyError(number)

    def charge_inputs(self, customer_id: str, tz: ZoneInfo):
        return [], []


def events(text: str) -> list[SourcedEvent]:
    """Parse inline JSONL events (one per line); raises AssertionError on a problem."""
    out = []
    for n, line in enumerate(textwrap.dedent(text).strip().splitlines(), start=1):
        se, problems = parse_event(line, "inline.jsonl", n)
        assert se is not None, problems
        out.append(se)
    return out


def post(catalog: Catalog, text: str, *, closed: Sequence[str] = ()) -> Posting:
    """Apply inline events to a fresh posting, in event time, and build its entries."""
    p = Posting(catalog, MemoryStore(), closed=closed)
    for se in sorted(events(text), key=apply_order):
        p.apply(se)
    p.entries()
    return p


def balance(drafts: Sequence[EntryDraft], account: str, commodity: str = "USD", *, grant: str | None = None,
            period: str | None = None) -> int:
    """Net debit - credit of ``account`` over ``drafts`` (optionally one grant or one period)."""
    return sum(ln.debit - ln.credit for d in drafts for ln in d.lines
               if ln.account == account and ln.commodity == commodity and (grant is None or ln.grant_id == grant)
               and (period is None or d.entry_date.isoformat()[:7] == period))


CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]
reporting_timezone = "UTC"
payment_terms_days = 30

[rate_card]
EXTRACT_TEXT = 5

[plans.professional]
name = "Professional"
currency = "USD"
monthly_fee = "299.00"
included_credits = 5000
overage_price = "0.12"
credit_ssp = "0.12"
platform_ssp = "99.00"
rollover = { percent = 25, max_periods = 1 }
"""


@pytest.fixture(scope="session")
def catalog(tmp_path_factory) -> Catalog:
    """A company in UTC with net-30 terms and the Professional plan ($299, 5,000 credits)."""
    path = tmp_path_factory.mktemp("unit") / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    return load_catalog(path, required=True)
