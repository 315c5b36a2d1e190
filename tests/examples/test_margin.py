"""Worked examples of plans billed only in arrears and of the cost of usage (docs/design.md §5),
each on SQLite and PostgreSQL.

The cost of serving usage is posted with it, Dr 5000 Cost of revenue / Cr 2500 Accrued cost of
usage, from the event's own ``cost`` or the catalog's costs (per unit of an action, per credit).

A plan may charge nothing in advance: "$0.99 per resolution" is a zero monthly fee, no included
credits and an overage price of 0.99 per credit, one credit per resolution. Such a month bills
nothing at its start (no entry, no invoice) and its usage is invoiced in arrears.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger.store.models import Invoice, InvoiceLine, JournalEntry, SubscriptionPeriod
from builders import ev

CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]
reporting_timezone = "UTC"
payment_terms_days = 30

[rate_card]
RESOLUTION = 1
DOCUMENT = 1
EXTRACT_TEXT = 5

[costs]
credit = { USD = "0.001" }

[costs.actions]
DOCUMENT = { USD = "0.12" }
EXTRACT_TEXT = { USD = "0.035" }

[plans.per_resolution]
name = "Per resolution"
currency = "USD"
monthly_fee = "0.00"
included_credits = 0
overage_price = "0.99"
credit_ssp = "0.99"
platform_ssp = "0.00"

[plans.documents]
name = "Documents"
currency = "USD"
monthly_fee = "5000.00"
included_credits = 100000
credit_ssp = "0.04"
platform_ssp = "1000.00"

[topups.pack_1000]
credits = 1000
price = "20.00"
currency = "USD"
"""


@pytest.fixture
def books(books_with):
    return books_with(CATALOG)


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


def _docs(cid: str, n: int) -> list[str]:
    return [customer(cid), ev(f"sub-{cid}", "subscription.started", "2026-03-01T00:00:00Z", customer_id=cid,
                              plan="documents", start_date="2026-03-01"),
            ev(f"u-{cid}", "usage.recorded", "2026-03-15T12:00:00Z", customer_id=cid, action="DOCUMENT", quantity=n)]


def test_gross_margin_of_three_customers_on_the_same_5000_plan(books):
    """Three customers on the same 5,000.00 plan (100,000 credits, no rollover) process 2,000,
    21,000 and 85,000 documents that cost 0.12 each to serve: costs 240.00, 2,520.00 and
    10,200.00. After the close each recognised 5,000.00 (usage, breakage of the unused credits,
    platform access), so the margins are 4,760.00 (95.2%), 2,480.00 (49.6%) and -5,200.00
    (-104.0%); only the last is under the 40% threshold. Lowest margin first."""
    from ledger.margin import gross_margin

    books.post("\n".join(_docs("small", 2_000) + _docs("mid", 21_000) + _docs("large", 85_000)))
    books.close("2026-03")
    assert [books.balance("5000", customer=c) for c in ("small", "mid", "large")] == [240_00, 2_520_00, 10_200_00]
    assert books.balance("2500") == 12_960_00
    with books.session() as s:
        rep = gross_margin(s, "2026-03", threshold=40)
    got = [(r["customer_id"], r["revenue"], r["cost"], r["margin"], r["margin_percent"], r["below"]) for r in rep.rows]
    assert got == [("large", 5_000_00, 10_200_00, -5_200_00, Decimal("-104.0"), True),
                   ("mid", 5_000_00, 2_520_00, 2_480_00, Decimal("49.6"), False),
                   ("small", 5_000_00, 240_00, 4_760_00, Decimal("95.2"), False)]
    # SSPs 100,000 x 0.04 = 4,000.00 and 1,000.00: Fc 4,000.00 (0.04 a credit), Fp 1,000.00
    assert rep.totals == [{"currency": "USD", "usage": 108_000 * 4, "overage": 0,
                           "subscription": 3 * 1_000_00, "breakage": 3 * 4_000_00 - 108_000 * 4, "contra": 0,
                           "revenue": 15_000_00, "cost": 12_960_00, "margin": 2_040_00, "margin_percent": Decimal("13.6")}]
    assert books.verify() == []


def test_cost_from_the_event_the_action_and_the_credit_rounded_once_a_day(books):
    """One day of usage: 3 x EXTRACT_TEXT at 0.035 (0.105), 7 credits at 0.001 (0.007) and an
    event carrying its own cost 0.004 (its 1 credit's catalog cost not used): 0.116, posted as
    0.12 once for the day (not 0.11 + 0.01 + 0.00 event by event). Voiding the event with its
    own cost takes back round(0.004) = 0.00; voiding the extraction takes back 0.11."""
    books.post("\n".join([
        customer("acme"),
        ev("t-1", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="acme", topup_id="top-1", pack="pack_1000"),
        ev("u-1", "usage.recorded", "2026-03-10T09:00:00Z", customer_id="acme", action="EXTRACT_TEXT", quantity=3),
        ev("u-2", "usage.recorded", "2026-03-10T10:00:00Z", customer_id="acme", credits=7),
        ev("u-3", "usage.recorded", "2026-03-10T11:00:00Z", customer_id="acme", credits=1, cost="0.004"),
    ]))
    assert books.balance("5000") == 12 and books.balance("2500") == 12
    books.post(ev("v-1", "event.voided", "2026-03-11T00:00:00Z", target_event_id="u-1", reason="duplicate"))
    assert books.balance("5000") == 1 and books.balance("4000") == 8 * 2  # 8 credits at 0.02
    books.close("2026-03")
    assert books.verify() == []


def test_no_cost_configured_posts_no_cost_lines(books):
    """Usage whose currency has no cost in the catalog posts no 5000 / 2500 lines."""
    books.post("\n".join([
        ev("c-eu", "customer.created", "2026-01-01T00:00:00Z", customer_id="eu", name="EU", currency="EUR"),
        ev("g-1", "credits.granted", "2026-03-01T00:00:00Z", customer_id="eu", grant_id="promo-1", credits=100),
        ev("u-1", "usage.recorded", "2026-03-10T09:00:00Z", customer_id="eu", action="DOCUMENT", quantity=10),
    ]))
    with books.session() as s:
        from ledger.store.models import JournalLine
        codes = {c for (c,) in s.execute(sa.select(JournalLine.account_code))}
    assert codes == {"9000", "9100", "9200"}
