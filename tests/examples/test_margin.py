"""Worked examples of plans billed only in arrears and of the cost of usage (docs/design.md §5),
each on SQLite and PostgreSQL.

A plan may charge nothing in advance: "$0.99 per resolution" is a zero monthly fee, no included
credits and an overage price of 0.99 per credit, one credit per resolution. Such a month bills
nothing at its start (no entry, no invoice) and its usage is invoiced in arrears.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.catalog import load_catalog
from ledger.store.db import make_engine
from ledger.store.models import Invoice, InvoiceLine, JournalEntry, SubscriptionPeriod
from builders import ev

CATALOG = """
[company]
name = "Example AI, Inc."
reporting_timezone = "UTC"
payment_terms_days = 30

[rate_card]
RESOLUTION = 1

[plans.per_resolution]
name = "Per resolution"
currency = "USD"
monthly_fee = "0.00"
included_credits = 0
overage_price = "0.99"
credit_ssp = "0.99"
platform_ssp = "0.00"

[topups.pack_1000]
credits = 1000
price = "20.00"
currency = "USD"
"""


@pytest.fixture
def books(db_url, tmp_path):
    from conftest import Books

    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    engine = make_engine(db_url)
    yield Books(db_url, engine, load_catalog(path, required=True), tmp_path)
    engine.dispose()


def customer(cid: str) -> str:
    return ev(f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=cid.title(),
              currency="USD")


def _invoices(books) -> list[tuple[str, str, str | None, int]]:
    with books.session() as s:
        return [(i.customer_id, i.category, i.service_period, i.total)
                for i in s.execute(sa.select(Invoice).order_by(Invoice.number)).scalars()]


def test_zero_fee_plan_bills_99_dollars_for_100_resolutions_in_arrears(books):
    """A $0.99-per-resolution plan (fee 0.00, no included credits): March bills nothing in
    advance (no entry, no invoice), 100 resolutions are 100 credits of overage at 0.99 =
    99.00 posted Dr 1150 / Cr 4010 as used, and invoiced in arrears on 2026-03-31; an unrelated
    customer's top-up in the same file posts too."""
    summary = books.post("\n".join([
        customer("helpdesk"), customer("other"),
        ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z", customer_id="helpdesk", plan="per_resolution",
           start_date="2026-03-01"),
        ev("t-1", "topup.purchased", "2026-03-02T00:00:00Z", customer_id="other", topup_id="top-1", pack="pack_1000"),
        ev("u-1", "usage.recorded", "2026-03-10T09:00:00Z", customer_id="helpdesk", action="RESOLUTION", quantity=60),
        ev("u-2", "usage.recorded", "2026-03-20T09:00:00Z", customer_id="helpdesk", action="RESOLUTION", quantity=40),
    ]))
    assert summary.posted == 6 and summary.quarantined == 0
    books.close("2026-03")
    assert books.balance("4010", period="2026-03") == 99_00
    assert books.balance("4020") == 0 and books.balance("2150") == 0
    assert books.balance("1150") == 0  # invoiced at the month end
    assert books.balance("1100", customer="helpdesk") == 99_00
    assert _invoices(books) == [("other", "purchase", None, 20_00), ("helpdesk", "overage", "2026-03", 99_00)]
    with books.session() as s:
        kinds = [k for (k,) in s.execute(sa.select(JournalEntry.kind).where(JournalEntry.customer_id == "helpdesk")
                                         .order_by(JournalEntry.id))]
        month = s.execute(sa.select(SubscriptionPeriod).where(SubscriptionPeriod.period == "2026-03")).scalar_one()
        line = s.execute(sa.select(InvoiceLine).where(InvoiceLine.customer_id == "helpdesk")).scalar_one()
    assert kinds == ["consumption", "consumption", "overage_invoice"]  # no subscription entry
    assert (month.period, month.fee, month.invoice_number) == ("2026-03", 0, None)
    assert (line.quantity, line.unit_price, line.amount) == (100, "0.99", 99_00)
    assert books.verify() == []


def test_zero_fee_plan_dry_run_and_later_months(books):
    """A dry run of the same file succeeds, and months without usage post nothing at all: April
    and May close with no entry for the customer and no invoice."""
    text = "\n".join([customer("helpdesk"), ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z",
                                               customer_id="helpdesk", plan="per_resolution", start_date="2026-03-01")])
    assert books.post(text, dry_run=True).posted == 2
    books.post(text)
    for period in ("2026-03", "2026-04", "2026-05"):
        books.close(period)
    with books.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == 0
        assert [m for (m,) in s.execute(sa.select(SubscriptionPeriod.period).order_by(SubscriptionPeriod.period))] \
            == ["2026-03", "2026-04", "2026-05", "2026-06"]
    assert _invoices(books) == []
    assert books.verify() == []
