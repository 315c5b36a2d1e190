"""Worked examples of the credit lifecycle (docs/design.md §5), each on SQLite and PostgreSQL.

Subscriptions, overage, rollover, proportional breakage, refunds and voids, with the numbers
written out as a textbook would: every amount below is derived by hand in the docstring or the
comment beside it, and the test reads the journal back.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.errors import InvalidInputError
from ledger.store.models import Grant, Invoice, InvoiceLine, SubscriptionPeriod
from builders import ACME, TAXED, ev, usage  # noqa: F401 (shared with other tests)

@pytest.fixture
def books(make_books):
    return make_books()


def _invoices(books, **where) -> list[Invoice]:
    with books.session() as s:
        q = sa.select(Invoice).order_by(Invoice.number)
        for k, v in where.items():
            q = q.where(getattr(Invoice, k) == v)
        return list(s.execute(q).scalars())


def _grant(books, gid: str) -> Grant:
    with books.session() as s:
        g = s.get(Grant, gid)
        s.expunge_all()
        return g


# --------------------------------------------------------------------------- subscriptions
PRO_MARCH = ACME + "\n" + ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z",
                             customer_id="acme", plan="professional", start_date="2026-03-01")


def test_professional_month_split_usage_rollover_and_breakage(books):
    """Professional, March 2026: the fee 299.00 splits by SSPs 5,000 x 0.12 = 600.00 and 99.00
    into 256.65 for the included credits and 42.35 for platform access. 3,200 credits are used:
    usage revenue round(25665 x 3200 / 5000) = 164.26. At the month end 42.35 of subscription
    revenue is recognised; 25% of the 1,800 unused credits, 450, roll into April carrying
    round(25665 x 3650 / 5000) - 16426 = 23.09; the other 1,350 expire as 69.30 of breakage
    (25665 - 18735). April's invoice is issued at the close, dated 2026-04-01."""
    books.post(PRO_MARCH + "\n" + usage("u1", "2026-03-10T12:00:00Z", 1200) + "\n"
               + usage("u2", "2026-03-25T12:00:00Z", 2000))
    books.close("2026-03")
    with books.session() as s:
        march = s.get(SubscriptionPeriod, ("sub-1", "2026-03"))
        assert (march.fee, march.credits_fee, march.platform_fee, march.credits) == (299_00, 256_65, 42_35, 5000)
    assert books.balance("4000", period="2026-03") == 164_26
    assert books.balance("4020", period="2026-03") == 42_35
    assert books.balance("4050", period="2026-03") == 69_30
    assert books.balance("9300", "CREDIT", period="2026-03") == 1350
    rolled = _grant(books, "sub-1:2026-03~r1")
    assert (rolled.source, rolled.units, rolled.amount, rolled.generation) == ("rollover", 450, 23_09, 1)
    assert rolled.expires_at.isoformat() == "2026-05-01T00:00:00+00:00"
    assert books.balance("2100", grant="sub-1:2026-03~r1") == 23_09
    assert books.balance("2100", grant="sub-1:2026-03") == 0
    # deferred at the end of March: only the rolled credits; April's fee is billed on April 1
    assert books.balance("2100", through="2026-03") + books.balance("2150", through="2026-03") == 23_09
    invs = _invoices(books, category="subscription")
    assert [(i.service_period, i.issue_date.isoformat(), i.total) for i in invs] == [
        ("2026-03", "2026-03-01", 299_00), ("2026-04", "2026-04-01", 299_00)]
    assert books.balance("2150") == 42_35  # April's platform fee, recognised at April's close
    from ledger.reporting import deferred_revenue

    with books.session() as s:
        [row] = deferred_revenue(s, "2026-03").rows
    # billed 299.00 in March; recognised 164.26 usage + 42.35 platform; 69.30 breakage; rolled nets to 0
    assert (row["billed"], row["recognised"], row["breakage"], row["rolled"], row["other"], row["closing"]) == (
        299_00, 206_61, 69_30, 0, 0, 23_09)
    assert books.verify() == []


def test_rolled_credits_are_drawn_first_and_do_not_roll_again(books):
    """max_periods = 1: April's 450 rolled credits (generation 1) expire first and are used first;
    what is left of them at the end of April expires instead of rolling again."""
    books.post(PRO_MARCH + "\n" + usage("u1", "2026-03-10T12:00:00Z", 3200))
    books.close("2026-03")
    books.post(usage("u2", "2026-04-10T12:00:00Z", 100))
    books.close("2026-04")
    assert books.balance("9100", "CREDIT", grant="sub-1:2026-03~r1") == 0
    assert books.balance("9300", "CREDIT", grant="sub-1:2026-03~r1") == 350  # 450 - 100, not rolled
    # April's own grant was untouched: 25% of 5,000 = 1,250 roll into May
    assert _grant(books, "sub-1:2026-04~r1").units == 1250
    assert books.verify() == []


def test_first_month_prorated_by_days(books):
    """Started 2026-03-10: 22 of 31 days. Fee round(29900 x 22 / 31) = 212.19, credits
    floor(5000 x 22 / 31) = 3,548; 212.19 splits 600 : 99 into 182.14 and 30.05."""
    books.post(ACME + "\n" + ev("sub-1", "subscription.started", "2026-03-05T09:00:00Z",
                                customer_id="acme", plan="professional", start_date="2026-03-10"))
    books.close("2026-03")
    with books.session() as s:
        p = s.get(SubscriptionPeriod, ("sub-1", "2026-03"))
        assert (p.service_start.isoformat(), p.fee, p.credits, p.credits_fee, p.platform_fee) == (
            "2026-03-10", 212_19, 3548, 182_14, 30_05)
    assert books.balance("4020", period="2026-03") == 30_05
    assert books.balance("1100") == 212_19 + 299_00  # March prorated, April in full
    assert books.verify() == []


def test_cancellation_prorates_the_last_month_and_stops_billing(books):
    """Cancelled on 2026-03-20 with end_date 2026-04-15: April is billed for 15 of 30 days
    (149.50, 2,500 credits, expiring 2026-04-16; 149.50 splits into 128.33 and 21.17) and nothing
    from May on. A second cancellation
    is an event for a cancelled subscription and is refused."""
    books.post(PRO_MARCH + "\n" + ev("x1", "subscription.cancelled", "2026-03-20T00:00:00Z",
                                     customer_id="acme", end_date="2026-04-15"))
    books.close("2026-03")
    books.close("2026-04")
    invs = _invoices(books, category="subscription")
    assert [(i.service_period, i.subtotal) for i in invs] == [("2026-03", 299_00), ("2026-04", 149_50)]
    g = _grant(books, "sub-1:2026-04")
    assert (g.units, g.expires_at.isoformat()) == (2500, "2026-04-16T00:00:00+00:00")
    assert books.balance("4020", period="2026-04") == 21_17  # 14950 - round(14950 x 600 / 699)
    with pytest.raises(InvalidInputError) as e:
        books.post(ev("x2", "subscription.cancelled", "2026-05-02T00:00:00Z", customer_id="acme", end_date="2026-05-31"))
    assert "already cancelled" in str(e.value) and "x2" not in str(e.value).split("already")[1]
    assert books.verify() == []


def test_next_month_usage_before_the_close_gives_the_same_books(make_books):
    """Event time: April's usage imported before March is closed (April's invoice and grant are
    created by that import) gives exactly the journal of importing it after the close."""
    march = PRO_MARCH + "\n" + usage("u1", "2026-03-10T12:00:00Z", 3200) + "\n" + usage("u2", "2026-03-31T23:00:00Z", 900)
    april = usage("u3", "2026-04-02T08:00:00Z", 4000) + "\n" + usage("u4", "2026-04-20T08:00:00Z", 2000)
    first, second = make_books(), make_books()
    first.post(march)
    first.close("2026-03")
    first.post(april)
    first.close("2026-04")
    second.post(march)
    second.post(april)
    second.close("2026-03")
    second.close("2026-04")
    assert first.journal() == second.journal()
    assert first.verify() == [] and second.verify() == []
    # March leaves 900 unused, 225 roll; April's 6,000 against 225 + 5,000: 775 of overage at 0.12
    assert first.balance("4010", period="2026-04") == 93_00


# --------------------------------------------------------------------------- overage
def test_starter_overage_invoiced_at_the_close(books):
    """Starter (99.00 for 1,000 credits, overage 0.15): 1,250 credits used in March, 250 beyond
    the plan: Dr 1150 / Cr 4010 37.50 and 250 CREDIT on 9050 as used; the March close invoices
    37.50 in arrears (Dr 1100 / Cr 1150) on 2026-03-31."""
    books.post(ACME + "\n" + ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z", customer_id="acme",
                                plan="starter", start_date="2026-03-01")
               + "\n" + usage("u1", "2026-03-10T00:00:00Z", 900) + "\n" + usage("u2", "2026-03-20T00:00:00Z", 350))
    assert books.balance("1150") == 37_50
    books.close("2026-03")
    assert books.balance("4010", period="2026-03") == 37_50
    assert books.balance("9050", "CREDIT") == 250
    assert books.balance("1150") == 0
    [inv] = _invoices(books, category="overage")
    assert (inv.service_period, inv.issue_date.isoformat(), inv.subtotal) == ("2026-03", "2026-03-31", 37_50)
    with books.session() as s:
        [line] = s.execute(sa.select(InvoiceLine).where(InvoiceLine.invoice_number == inv.number)).scalars()
        assert (line.quantity, line.unit_price, line.amount) == (250, "0.15", 37_50)
    assert books.verify() == []


def test_overage_is_rounded_cumulatively_per_customer_and_month(books):
    """A commitment with overage at 0.125 a credit: three single-credit overages post 0.13, 0.12
    and 0.13 (round(0.125), round(0.25) - 0.13, round(0.375) - 0.25), 0.38 in all, never 0.39."""
    books.post(ACME + "\n" + ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                                commitment_id="com-1", amount="10.00", credits=10, term_start="2026-01-01",
                                term_end="2026-12-31", overage_price="0.125")
               + "\n" + usage("u0", "2026-01-02T00:00:00Z", 10)
               + "\n" + "\n".join(usage(f"u{i}", f"2026-01-0{i + 2}T00:00:00Z", 1) for i in (1, 2, 3)))
    assert books.balance("4010") == 38
    books.close("2026-01")
    [inv] = _invoices(books, category="overage")
    assert inv.subtotal == 38
    assert books.verify() == []


def test_without_an_overage_price_the_hard_cap_stays(books):
    books.post(ACME + "\n" + ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                                commitment_id="com-1", amount="10.00", credits=10, term_start="2026-01-01",
                                term_end="2026-12-31") + "\n" + usage("u1", "2026-01-02T00:00:00Z", 11))
    assert books.balance("4010") == 0 and books.balance("9200", "CREDIT") == 0


# --------------------------------------------------------------------------- commitments and rollover
ANNUAL = ACME + "\n" + ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                          commitment_id="com-2026", amount="50000.00", credits=1_000_000, term_start="2026-01-01",
                          term_end="2026-12-31", rollover={"percent": 20})


def test_annual_commitment_rolls_20_percent_into_its_renewal(books):
    """50,000.00 for 1,000,000 credits; 700,000 used in 2026 (35,000.00 of usage revenue).
    At the term end 20% of the 300,000 unused, 60,000 credits, roll into the renewal carrying
    round(5,000,000 x 760,000 / 1,000,000) - 3,500,000 = 3,000.00; the other 240,000 expire as
    12,000.00 of breakage on 2026-12-31. The rolled grant expires with the renewal's term."""
    books.post(ANNUAL + "\n" + usage("u1", "2026-03-01T00:00:00Z", 400_000) + "\n"
               + usage("u2", "2026-11-01T00:00:00Z", 300_000) + "\n"
               + ev("p2", "commitment.purchased", "2026-12-15T00:00:00Z", customer_id="acme",
                    commitment_id="com-2027", amount="50000.00", credits=1_000_000, term_start="2027-01-01",
                    term_end="2027-12-31", renews="com-2026", rollover={"percent": 20})
               + "\n" + usage("u3", "2027-01-05T00:00:00Z", 10_000))
    assert books.balance("4000", through="2026-12") == 35_000_00
    assert books.balance("4050", period="2026-12") == 12_000_00
    assert books.balance("9300", "CREDIT") == 240_000
    rolled = _grant(books, "com-2026~r1")
    assert (rolled.units, rolled.amount, rolled.contract_id) == (60_000, 3_000_00, "com-2027")
    assert rolled.expires_at.isoformat() == "2028-01-01T00:00:00+00:00"
    # January 2027: the rolled credits (cost basis 0.05, same expiry) are drawn before the renewal's
    assert books.balance("9100", "CREDIT", grant="com-2026~r1") == 50_000
    assert books.balance("9100", "CREDIT", grant="com-2027") == 1_000_000
    assert books.verify() == []


def test_commitment_without_renewal_expires_entirely(books):
    books.post(ANNUAL + "\n" + usage("u1", "2026-03-01T00:00:00Z", 700_000) + "\n"
               + usage("u2", "2027-01-05T00:00:00Z", 1, customer="acme"))
    assert books.balance("4050") == 15_000_00 and books.balance("9300", "CREDIT") == 300_000
    with books.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Grant).where(Grant.source == "rollover")).scalar_one() == 0


def test_rolled_credits_that_never_expire(books):
    """An enterprise policy of 50% rollover without expiry: 100 of 200 unused roll into a grant
    that never expires, without any renewal; max_credits caps it."""
    books.post(ACME + "\n" + ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                                commitment_id="ent-1", amount="1000.00", credits=1000, term_start="2026-01-01",
                                term_end="2026-01-31", rollover={"percent": 50, "expires": False})
               + "\n" + ev("p2", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                           commitment_id="ent-2", amount="1000.00", credits=1000, term_start="2026-01-01",
                           term_end="2026-01-31", rollover={"percent": 50, "expires": False, "max_credits": 30})
               + "\n" + usage("u1", "2026-01-20T00:00:00Z", 1600))
    books.close("2026-01")
    # drawn oldest first at equal expiry and cost: ent-1 fully (1,000), ent-2 600; 400 unused
    g = _grant(books, "ent-2~r1")
    assert (g.units, g.amount, g.expires_at) == (30, 30_00, None)
    assert books.balance("9300", "CREDIT") == 370
    assert books.verify() == []


# --------------------------------------------------------------------------- proportional breakage
def test_proportional_breakage_worked_check(books):
    """docs/design.md §5.5: A = 9,000.00, N = 10,000, b = 3% (E = 9,700). After 4,500 consumed the total
    recognised is round(900000 x 4500 / 9700) = 4,175.26: usage 4,050.00 + breakage 125.26.
    The estimate becomes 1% (E = 9,900) and 4,000 more are consumed: total 7,727.27, so that
    step (catch-up -84.35 and 3,636.36) recognises 3,552.01. At expiry the 1,500 unused credits
    true up the remaining 1,272.73 to breakage."""
    books.post(ACME + "\n" + ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="acme",
                                commitment_id="com-p", amount="9000.00", credits=10_000, term_start="2026-01-01",
                                term_end="2026-03-31", breakage={"method": "proportional", "expected_rate": "0.03"})
               + "\n" + usage("u1", "2026-01-15T00:00:00Z", 4500))
    books.close("2026-01")
    assert books.balance("4000", period="2026-01") == 4_050_00
    assert books.balance("4050", period="2026-01") == 125_26
    from ledger.reporting import deferred_revenue

    with books.session() as s:
        [row] = deferred_revenue(s, "2026-01").rows
    assert (row["billed"], row["recognised"], row["breakage"], row["other"], row["closing"]) == (
        9_000_00, 4_050_00, 125_26, 0, 9_000_00 - 4_175_26)
    books.post(ev("b1", "breakage.estimate_changed", "2026-02-01T00:00:00Z", customer_id="acme", grant_ref="com-p",
                  expected_rate="0.01") + "\n" + usage("u2", "2026-02-15T00:00:00Z", 4000))
    books.close("2026-02")
    feb = books.balance("4000", period="2026-02") + books.balance("4050", period="2026-02")
    assert feb == 3_552_01
    assert books.balance("2100", through="2026-02") == 9_000_00 - 7_727_27
    books.close("2026-03")
    assert books.balance("4050", period="2026-03") == 1_272_73
    assert books.balance("2100") == 0
    assert books.verify() == []


# --------------------------------------------------------------------------- refunds
TOPUP = TAXED + "\n" + ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1",
                          credits=1000, amount="20.00") + "\n" + usage("u1", "2026-01-03T00:00:00Z", 250)


def test_partial_refund_of_an_unpaid_taxed_topup_is_a_credit_note(books):
    """20.00 + 8.25% tax = 21.65 for 1,000 credits, 250 used. Refunding 500 unused credits
    relieves round(2000 x 750 / 1000) - 500 = 10.00 with its tax share round(10.00 x 0.0825)
    = 0.83; the invoice is unpaid, so a credit note of 10.83 reduces the receivable to 10.82.
    No revenue moves."""
    books.post(TOPUP + "\n" + ev("r1", "refund.issued", "2026-01-10T00:00:00Z", customer_id="acme",
                                  grant_ref="top-1", credits=500))
    assert books.balance("1100") == 21_65 - 10_83
    assert books.balance("2400") == 1_65 - 83
    assert books.balance("2100") == 5_00
    assert books.balance("4000") == 5_00 and books.balance("4910") == 0
    assert books.balance("9400", "CREDIT") == 500
    [cn] = _invoices(books, kind="credit_note")
    assert (cn.number, cn.reference, cn.subtotal, cn.tax, cn.total) == ("CN-2026-000001", "INV-2026-000001", 10_00, 83, 10_83)
    # the rest (250 unused) by default: 5.00, tax round(15.00 x 0.0825) - 0.83 = 0.41 (cumulative)
    books.post(ev("r2", "refund.issued", "2026-01-11T00:00:00Z", customer_id="acme", grant_ref="top-1"))
    assert books.balance("2400") == 1_65 - 124
    assert books.balance("9100", "CREDIT") == 0 and books.balance("2100") == 0
    assert books.verify() == []


def test_refund_of_a_paid_invoice_goes_to_refunds_payable(books):
    books.post(TOPUP + "\n" + ev("pay", "payment.received", "2026-01-05T00:00:00Z", customer_id="acme", amount="21.65")
               + "\n" + ev("r1", "refund.issued", "2026-01-10T00:00:00Z", customer_id="acme", grant_ref="top-1", credits=500))
    assert books.balance("2300") == 10_83 and books.balance("1100") == 0
    assert books.verify() == []


def test_refund_beyond_unused_credits_needs_a_concession(books):
    """750 unused: refunding 800 is refused; with concession the 50 used credits go to 4910 at
    cost basis (1.00) and the tax share covers both parts."""
    books.post(TOPUP)
    with pytest.raises(InvalidInputError) as e:
        books.post(ev("r1", "refund.issued", "2026-01-10T00:00:00Z", customer_id="acme", grant_ref="top-1", credits=800))
    msg = str(e.value)
    assert "credits" in msg and "800" in msg and "concession" in msg
    assert books.balance("9400", "CREDIT") == 0
    books.post(ev("r1", "refund.issued", "2026-01-10T00:00:00Z", customer_id="acme", grant_ref="top-1", credits=800,
                  concession=True))
    assert books.balance("4910") == 1_00
    assert books.balance("2400") == 1_65 - 1_32  # round(16.00 x 0.0825) = 1.32
    assert books.balance("1100") == 21_65 - 17_32
    assert books.verify() == []


# --------------------------------------------------------------------------- voids
def test_voided_usage_is_mirrored_once_in_the_first_open_period(books):
    """30 credits used in January and voided in February after January's close: February
    carries Dr 4000 30.00 / Cr 2100 30.00 and 30 credits back on the grant; a second void of
    the same event is refused."""
    books.post(ACME + "\n" + ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1",
                                credits=100, amount="100.00") + "\n" + usage("u1", "2026-01-10T00:00:00Z", 30))
    books.close("2026-01")
    books.post(ev("v1", "event.voided", "2026-01-20T00:00:00Z", target_event_id="u1", reason="duplicate metering"))
    assert books.balance("4000", period="2026-01") == 30_00
    assert books.balance("4000", period="2026-02") == -30_00
    assert books.balance("9100", "CREDIT") == 100 and books.balance("2100") == 100_00
    with pytest.raises(InvalidInputError, match="already voided"):
        books.post(ev("v2", "event.voided", "2026-02-20T00:00:00Z", target_event_id="u1", reason="again"))
    assert books.verify() == []


def test_void_of_a_purchase_mirrors_it_with_a_credit_note(books):
    books.post(TAXED + "\n" + ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1",
                                 credits=1000, amount="20.00")
               + "\n" + ev("v1", "event.voided", "2026-01-03T00:00:00Z", target_event_id="t1", reason="entered twice"))
    for account in ("1100", "2100", "2400"):
        assert books.balance(account) == 0
    assert books.balance("9000", "CREDIT") == 0
    [cn] = _invoices(books, kind="credit_note")
    assert (cn.category, cn.reference, cn.total) == ("void", "INV-2026-000001", 21_65)
    assert books.verify() == []


def test_void_of_a_purchase_whose_credits_were_used_is_refused(books):
    books.post(TOPUP)
    with pytest.raises(InvalidInputError, match="already used"):
        books.post(ev("v1", "event.voided", "2026-01-04T00:00:00Z", target_event_id="t1", reason="x"))


def test_void_of_a_paid_purchase_moves_the_payment_to_the_customer_credit_balance(books):
    """A paid 21.65 invoice cancelled by a void: the mirror leaves -21.65 on the invoice, which
    is reclassified to 2200 Customer credit balance (owed to the customer), not left as negative AR."""
    books.post(TAXED + "\n" + ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1",
                                 credits=1000, amount="20.00")
               + "\n" + ev("pay", "payment.received", "2026-01-03T00:00:00Z", customer_id="acme", amount="21.65")
               + "\n" + ev("v1", "event.voided", "2026-01-04T00:00:00Z", target_event_id="t1", reason="never delivered"))
    assert books.balance("1100") == 0
    assert books.balance("2200") == 21_65
    assert books.verify() == []


def test_a_voided_payment_reopens_its_invoices_oldest_first(books):
    """An unnamed payment of 30.00 settles the 10.00 invoice and 20.00 of the 40.00 one; its
    void opens both again, the older first, so the next unnamed 10.00 pays the older invoice
    again (not the one still open since before the void)."""
    from ledger.store.models import JournalLine

    books.post(ACME + "\n" + ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1",
                                credits=100, amount="10.00")
               + "\n" + ev("t2", "topup.purchased", "2026-01-03T00:00:00Z", customer_id="acme", topup_id="top-2",
                            credits=400, amount="40.00")
               + "\n" + ev("p1", "payment.received", "2026-01-04T00:00:00Z", customer_id="acme", amount="30.00")
               + "\n" + ev("v1", "event.voided", "2026-01-05T00:00:00Z", target_event_id="p1", reason="bounced")
               + "\n" + ev("p2", "payment.received", "2026-01-06T00:00:00Z", customer_id="acme", amount="10.00"))
    with books.session() as s:
        first, second = s.execute(sa.select(Invoice.number).order_by(Invoice.number)).scalars().all()
    assert books.balance("1100", customer="acme") == 40_00
    with books.session() as s:
        paid = s.execute(sa.select(JournalLine.invoice_number).where(
            JournalLine.event_id == "p2", JournalLine.account_code == "1100")).scalars().all()
    assert paid == [first], (paid, first, second)
    assert books.verify() == []


def test_rolled_subscription_credits_end_with_the_subscription(books):
    """Cancelled with end_date 2026-04-15: March's 25% rolls into April but expires with the
    service on 2026-04-16, not at the end of April."""
    books.post(PRO_MARCH + "\n" + usage("u1", "2026-03-10T12:00:00Z", 3200) + "\n"
               + ev("x1", "subscription.cancelled", "2026-03-20T00:00:00Z", customer_id="acme", end_date="2026-04-15"))
    books.close("2026-03")
    assert _grant(books, "sub-1:2026-03~r1").expires_at.isoformat() == "2026-04-16T00:00:00+00:00"
