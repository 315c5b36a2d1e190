"""Worked example of the auto top-up (docs/design.md §5.11), on SQLite and PostgreSQL.

Policy: below 500 credits buy pack_1000 (1,000 credits for 20.00), at most 2 a month.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.store.models import Grant, Invoice
from builders import ev

CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]

[topups.pack_1000]
credits = 1000
price = "20.00"
currency = "USD"

[auto_topup]
below = 500
pack = "pack_1000"
monthly_cap = 2

[customers.bigco]
auto_topup = { below = 500, pack = "pack_1000", recharge_to = 2500 }

[customers.manual]
auto_topup = { enabled = false }
"""


@pytest.fixture
def books(books_with):
    return books_with(CATALOG)


def customer(cid: str) -> str:
    return ev(f"c-{cid}", "customer.created", "2026-03-01T00:00:00Z", customer_id=cid, name=cid.title(),
              currency="USD", tax_rate="0.0825")


def use(eid: str, when: str, credits: int, cid: str = "acme") -> str:
    return ev(eid, "usage.recorded", when, customer_id=cid, credits=credits)


def _auto(books, cid: str = "acme") -> list[tuple]:
    with books.session() as s:
        grants = s.execute(sa.select(Grant.id, Grant.units, Grant.amount, Grant.invoice_number)
                           .where(Grant.customer_id == cid, Grant.id.like("auto:%")).order_by(Grant.effective_at)).all()
        totals = dict(s.execute(sa.select(Invoice.number, Invoice.total)).all())
    return [(gid, units, amount, totals[number]) for gid, units, amount, number in grants]


def test_crossing_twice_in_a_month_buys_two_packs_with_their_invoices(books):
    """acme buys 1,000 credits by hand. Using 600 leaves 400 < 500: a pack is bought at that
    instant (auto:u2, invoice 20.00 + 8.25% = 21.65). Using 300 more (1,100 left) does not
    cross; using 700 (400 left) crosses again: a second pack. A third crossing in March is over
    the cap of 2 and buys nothing; April's first crossing buys again. Importing the same file
    again buys nothing more."""
    text = "\n".join([
        customer("acme"),
        ev("t1", "topup.purchased", "2026-03-02T00:00:00Z", customer_id="acme", topup_id="top-1", pack="pack_1000"),
        use("u1", "2026-03-03T10:00:00Z", 100), use("u2", "2026-03-05T10:00:00Z", 500),   # 900 -> 400: crosses
        use("u3", "2026-03-10T10:00:00Z", 300),                                           # 1,400 -> 1,100
        use("u4", "2026-03-12T10:00:00Z", 700),                                           # 1,100 -> 400: crosses
        use("u5", "2026-03-20T10:00:00Z", 1000),                                          # 1,400 -> 400: capped
        use("u6", "2026-04-02T10:00:00Z", 100),                                           # 400 -> 300: no crossing
    ])
    summary = books.post(text)
    assert summary.posted == 8
    assert _auto(books) == [("auto:u2", 1000, 20_00, 21_65), ("auto:u4", 1000, 20_00, 21_65)]
    assert books.balance("9100", "CREDIT", customer="acme") == 300
    books.post(ev("t2", "topup.purchased", "2026-04-03T00:00:00Z", customer_id="acme", topup_id="top-2",
                  credits=300, amount="6.00") + "\n" + use("u7", "2026-04-04T10:00:00Z", 200))  # 600 -> 400: crosses
    assert [a[0] for a in _auto(books)] == ["auto:u2", "auto:u4", "auto:u7"]
    again = books.post(text)
    assert again.duplicates == 8 and again.posted == 0
    assert len(_auto(books)) == 3
    with books.session() as s:
        from ledger.reporting import customer_statement
        rows = customer_statement(s, "2026-03", customer_id="acme").rows
    auto = [r for r in rows if r["description"].startswith("Auto top-up")]
    assert [(r["date"], r["debit"]) for r in auto] == [("2026-03-05", 21_65), ("2026-03-12", 21_65)]
    assert "fell below 500 with usage u2" in auto[0]["description"]
    books.close("2026-03")
    books.close("2026-04")
    assert books.verify() == []


def test_recharge_to_and_a_customer_without_the_policy(books):
    """bigco's own policy recharges to 2,500: 1,000 - 700 = 300 left buys 3 packs (3,300 after),
    60.00 + 4.95 tax. manual has the policy turned off: nothing is bought."""
    books.post("\n".join([
        customer("bigco"), customer("manual"),
        ev("t1", "topup.purchased", "2026-03-02T00:00:00Z", customer_id="bigco", topup_id="top-b", pack="pack_1000"),
        ev("t2", "topup.purchased", "2026-03-02T00:00:00Z", customer_id="manual", topup_id="top-m", pack="pack_1000"),
        use("u1", "2026-03-05T10:00:00Z", 700, "bigco"), use("u2", "2026-03-05T10:00:00Z", 700, "manual"),
    ]))
    assert _auto(books, "bigco") == [("auto:u1", 3000, 60_00, 64_95)]
    assert _auto(books, "manual") == []
    assert books.verify() == []
