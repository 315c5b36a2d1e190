"""Unit tier: the accounting core on plain values, no database."""

from __future__ import annotations

import pytest

from ledger.catalog import Catalog, load_catalog

CATALOG = """
[company]
name = "Example AI, Inc."
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
