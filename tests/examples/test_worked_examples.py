"""Worked examples of the core posting rules (docs/design.md §4-5), each on SQLite and PostgreSQL.

Every test posts events written inline as JSONL, closes periods like finance would, and checks
the books with the numbers written out.
"""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInputError, PeriodOrderError
from ledger.store.models import JournalEntry, Quarantine, UsageEvent

ACME = '{"id": "c-acme", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "name": "Acme AI", "currency": "USD"}'


def usage(eid: str, when: str, credits: int, customer: str = "acme") -> str:
    return (f'{{"id": "{eid}", "type": "usage.recorded", "occurred_at": "{when}", '
            f'"customer_id": "{customer}", "credits": {credits}}}')


def test_100_dollars_for_100_credits_30_used_in_january(books):
    """$100.00 for 100 credits, 30 consumed in January: usage revenue 30.00, deferred 70.00 at close."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T10:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "100.00"}
    """ + usage("u1", "2026-01-10T12:00:00Z", 10) + "\n" + usage("u2", "2026-01-20T12:00:00Z", 20))
    books.close("2026-01")
    assert books.balance("4000", period="2026-01") == 30_00
    assert books.balance("2100", through="2026-01") == 70_00
    assert books.balance("1100") == 100_00
    assert books.balance("9100", "CREDIT") == 70
    assert books.verify() == []


def test_100_dollars_for_3_credits_one_per_month(books):
    """$100.00 for 3 credits consumed one per month recognises 33.33, 33.34, 33.33; deferred ends at 0."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T10:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 3, "amount": "100.00"}
    """ + usage("u1", "2026-01-15T00:00:00Z", 1))
    books.close("2026-01")
    books.post(usage("u2", "2026-02-15T00:00:00Z", 1))
    books.close("2026-02")
    books.post(usage("u3", "2026-03-15T00:00:00Z", 1))
    books.close("2026-03")
    assert [books.balance("4000", period=p) for p in ("2026-01", "2026-02", "2026-03")] == [33_33, 33_34, 33_33]
    assert books.balance("2100") == 0


COMMITMENT = ACME + """
{"id": "p1", "type": "commitment.purchased", "occurred_at": "2026-01-01T09:00:00Z", "customer_id": "acme", "commitment_id": "com-1", "amount": "1200.00", "credits": 1200, "term_start": "2026-01-01", "term_end": "2026-03-31"}
"""
JAN = usage("u-jan", "2026-01-20T08:00:00Z", 300)
FEB = usage("u-feb", "2026-02-20T08:00:00Z", 300)
MAR = usage("u-mar", "2026-03-20T08:00:00Z", 200)


def _check_commitment_breakage(books):
    assert books.balance("4000", period="2026-01") == 300_00
    assert books.balance("4000", period="2026-02") == 300_00
    assert books.balance("4000", period="2026-03") == 200_00
    assert books.balance("4050", period="2026-03") == 400_00
    assert books.balance("4050", through="2026-02") == 0
    assert books.balance("2100") == 0
    assert books.balance("9300", "CREDIT") == 400
    assert books.verify() == []


def test_commitment_breakage_in_march_with_march_usage_imported_after_february_close(books):
    """1,200.00 for 1,200 credits, 800 used by term end 2026-03-31: 400.00 breakage in March, then zero deferred."""
    books.post(COMMITMENT + JAN)
    books.close("2026-01")
    books.post(FEB)
    books.close("2026-02")
    books.post(MAR)
    books.close("2026-03")
    _check_commitment_breakage(books)


def test_commitment_breakage_with_march_usage_imported_before_february_close(books, tmp_path):
    """Importing March's usage before February is closed gives the same books."""
    books.post(COMMITMENT + JAN)
    books.close("2026-01")
    books.post(FEB + "\n" + MAR)
    books.close("2026-02")
    books.close("2026-03")
    _check_commitment_breakage(books)


def test_one_file_spanning_months_equals_month_by_month(books, sqlite_template, tmp_path):
    """One file over three months gives exactly the journal of month-by-month imports with closes."""
    import shutil

    from conftest import Books
    from conftest import company_catalog
    from ledger.store.db import make_engine

    books.post(COMMITMENT + "\n".join([JAN, FEB, MAR]))
    for p in ("2026-01", "2026-02", "2026-03"):
        books.close(p)
    other_path = tmp_path / "other.db"
    shutil.copyfile(sqlite_template, other_path)
    other = Books(f"sqlite:///{other_path}", make_engine(f"sqlite:///{other_path}"), company_catalog(), tmp_path / "o")
    (tmp_path / "o").mkdir()
    other.post(COMMITMENT + JAN)
    other.close("2026-01")
    other.post(FEB)
    other.close("2026-02")
    other.post(MAR)
    other.close("2026-03")
    assert books.journal() == other.journal()
    _check_commitment_breakage(books)


def test_expiry_at_month_boundary_belongs_to_the_month_that_ends(books):
    """A grant expiring at 2026-02-01T00:00 expires on 2026-01-31, in January."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T10:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 10, "amount": "10.00", "expires_at": "2026-02-01T00:00:00Z"}
    """ + usage("u1", "2026-01-10T00:00:00Z", 4))
    books.close("2026-01")
    assert books.balance("4050", period="2026-01") == 6_00
    assert books.balance("9300", "CREDIT", period="2026-01") == 6
    with books.session() as s:
        import sqlalchemy as sa
        d = s.execute(sa.select(JournalEntry.entry_date).where(JournalEntry.kind == "expiry")).scalar_one()
    assert d.isoformat() == "2026-01-31"


def test_drawdown_across_an_expiring_promotional_grant_and_a_paid_one(books):
    """Promotional credits expiring sooner are drawn first, then the paid grant; promo expiry has no currency lines."""
    books.post(ACME + """
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "grant_id": "promo-1", "credits": 50, "expires_at": "2026-01-20T00:00:00Z", "reason": "welcome"}
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "10.00"}
    """ + "\n".join([usage("u1", "2026-01-05T00:00:00Z", 30), usage("u2", "2026-01-10T00:00:00Z", 40),
                     usage("u3", "2026-01-25T00:00:00Z", 5)]))
    books.close("2026-01")
    # u1: 30 from promo; u2: 20 from promo + 20 paid; promo then empty; u3: 5 paid
    assert books.balance("9200", "CREDIT", grant="promo-1") == 50
    assert books.balance("9200", "CREDIT", grant="top-1") == 25
    assert books.balance("4000") == 2_50          # 25 credits at $0.10
    assert books.balance("4050") == 0             # promotional credits carry no revenue
    assert books.balance("9300", "CREDIT") == 0   # the promo grant was used up before it expired
    assert books.verify() == []


def test_unused_promotional_credits_expire_in_credits_only(books):
    """A promotional grant expiring with units left posts CREDIT lines only (zero cost basis)."""
    books.post(ACME + """
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "grant_id": "promo-1", "credits": 50, "expires_at": "2026-01-20T00:00:00Z", "reason": "welcome"}
    """ + usage("u1", "2026-01-05T00:00:00Z", 30))
    books.close("2026-01")
    assert books.balance("9300", "CREDIT") == 20
    assert books.balance("4050") == 0 and books.balance("2100") == 0


def test_hard_capped_usage_is_quarantined_whole(books):
    """Usage beyond the credits held (no overage price) goes to quarantine whole; nothing is drawn."""
    summary = books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 10, "amount": "10.00"}
    """ + usage("u1", "2026-01-05T00:00:00Z", 8) + "\n" + usage("u2", "2026-01-06T00:00:00Z", 5))
    assert summary.quarantined == 1
    assert summary.quarantine[0][0] == "u2"
    assert "5 credits requested, 2 available" in summary.quarantine[0][1]
    assert books.balance("9100", "CREDIT") == 2
    assert books.balance("4000") == 8_00
    assert books.count(Quarantine) == 1
    with books.session() as s:
        row = s.get(UsageEvent, "u2")
        assert row.status == "quarantined" and row.entry_id is None


def test_reimport_of_the_same_file_posts_nothing(books):
    """Re-importing identical events is a no-op reported as duplicates."""
    text = ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 10, "amount": "10.00"}
    """ + usage("u1", "2026-01-05T00:00:00Z", 8)
    first = books.post(text)
    entries = books.count(JournalEntry)
    again = books.post(text)
    assert (first.posted, first.duplicates) == (3, 0)
    assert (again.posted, again.duplicates, again.entries) == (0, 3, 0)
    assert books.count(JournalEntry) == entries


def test_conflicting_duplicate_fails_naming_both(books):
    """Same event id with different content is a conflict error naming both sources; nothing is posted."""
    books.post(ACME + """
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "grant_id": "promo-1", "credits": 50}
    """ + usage("u1", "2026-01-05T00:00:00Z", 8))
    entries = books.count(JournalEntry)
    with pytest.raises(InvalidInputError) as err:
        books.post(usage("u2", "2026-01-06T00:00:00Z", 1) + "\n" + usage("u1", "2026-01-05T00:00:00Z", 9))
    text = str(err.value)
    assert "input2.jsonl:2: field 'id': conflicts with the event already posted from" in text
    assert "input1.jsonl:3" in text and "(value: 'u1')" in text
    assert books.count(JournalEntry) == entries          # u2 was valid but nothing was posted
    with books.session() as s:
        assert s.get(UsageEvent, "u2") is None


def test_usage_is_posted_as_one_entry_per_customer_per_day(books):
    """Five usage events on two days make two consumption entries; each usage row points to its entry."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "10.00"}
    """ + "\n".join(usage(f"u{i}", f"2026-01-0{5 + i // 3}T0{i}:00:00Z", 1) for i in range(5)))
    import sqlalchemy as sa
    with books.session() as s:
        consumption = s.execute(sa.select(JournalEntry).where(JournalEntry.kind == "consumption")).scalars().all()
        assert len(consumption) == 2
        refs = dict(s.execute(sa.select(UsageEvent.id, UsageEvent.entry_id)).all())
    ids = {e.id for e in consumption}
    assert set(refs.values()) == ids
    assert refs["u0"] == refs["u2"] != refs["u3"]


def test_sales_tax_and_gap_free_invoice_numbers(books):
    """A taxed top-up posts AR = net + tax and tax to 2400; invoices are numbered INV-2026-000001, 000002."""
    books.post("""
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "tx", "name": "Taxed LLC", "currency": "USD", "tax_rate": "0.0825"}
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "tx", "topup_id": "top-1", "credits": 1000, "amount": "20.00"}
    {"id": "t2", "type": "topup.purchased", "occurred_at": "2026-01-03T00:00:00Z", "customer_id": "tx", "topup_id": "top-2", "credits": 1000, "amount": "20.00"}
    """)
    assert books.balance("1100") == 2 * 21_65
    assert books.balance("2400") == 2 * 1_65
    from ledger.services.documents import invoice_register
    with books.session() as s:
        numbers = [r["number"] for r in invoice_register(s).rows]
    assert numbers == ["INV-2026-000001", "INV-2026-000002"]


def test_payments_settle_oldest_invoices_first_and_excess_goes_to_customer_credit(books):
    """A payment without an invoice number settles the oldest open invoices; the excess goes to 2200."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "20.00"}
    {"id": "t2", "type": "topup.purchased", "occurred_at": "2026-01-03T00:00:00Z", "customer_id": "acme", "topup_id": "top-2", "credits": 100, "amount": "30.00"}
    {"id": "pay1", "type": "payment.received", "occurred_at": "2026-01-10T00:00:00Z", "customer_id": "acme", "amount": "25.00"}
    """)
    assert books.balance("1000") == 25_00
    assert books.balance("1100") == 25_00
    books.post("""
    {"id": "pay2", "type": "payment.received", "occurred_at": "2026-01-11T00:00:00Z", "customer_id": "acme", "amount": "40.00", "invoice_number": "INV-2026-000002"}
    """)
    assert books.balance("1100") == (20_00 + 30_00) - 25_00 - 25_00
    assert books.balance("2200") == 15_00


def test_late_usage_posts_in_the_first_open_period_and_is_listed(books):
    """Usage dated in a closed month posts on the first day of the first open period and is late."""
    books.post(ACME + """
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "100.00"}
    """)
    books.close("2026-01")
    summary = books.post(usage("late-1", "2026-01-30T00:00:00Z", 5))
    assert summary.late == 1 and summary.late_events == ["late-1"]
    assert books.balance("4000", period="2026-01") == 0
    assert books.balance("4000", period="2026-02") == 5_00
    result = books.close("2026-02")
    assert result.late_events == ["late-1"]
    with books.session() as s:
        row = s.get(UsageEvent, "late-1")
        assert row.late and row.occurred_at.isoformat() == "2026-01-30T00:00:00+00:00"


def test_periods_close_in_order_and_closing_twice_is_a_no_op(books):
    """Closing February before January is refused; closing January twice changes nothing."""
    books.post(COMMITMENT + JAN)
    with pytest.raises(PeriodOrderError, match="2026-01 is still open"):
        books.close("2026-02")
    books.close("2026-01")
    before = books.journal()
    assert books.close("2026-01").already_closed
    assert books.journal() == before


def test_jpy_customer_uses_zero_decimal_minor_units(books):
    """A JPY customer: ¥10,000 for 3 credits relieves ¥3,333, ¥3,334, ¥3,333; "1.5" yen is refused."""
    books.post("""
    {"id": "c-jp", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "jp", "name": "Nihon AI KK", "currency": "JPY", "tax_rate": "0.10"}
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "jp", "topup_id": "top-jp", "credits": 3, "amount": "10000"}
    """ + "\n".join(usage(f"u{i}", f"2026-01-1{i}T00:00:00Z", 1, "jp") for i in range(3)))
    assert books.balance("1100", "JPY") == 11_000          # 10,000 + 10% tax
    assert books.balance("4000", "JPY") == 10_000 and books.balance("2100", "JPY") == 0
    with books.session() as s:
        import sqlalchemy as sa
        from ledger.store.models import JournalLine
        parts = s.execute(sa.select(JournalLine.credit).where(JournalLine.account_code == "4000")
                          .order_by(JournalLine.id)).scalars().all()
    assert parts == [3333, 3334, 3333]
    with pytest.raises(InvalidInputError, match="has 1 decimals; JPY allows 0"):
        books.post('{"id": "t2", "type": "topup.purchased", "occurred_at": "2026-01-05T00:00:00Z", "customer_id": "jp", '
                   '"topup_id": "top-jp2", "credits": 3, "amount": "1.5"}')
