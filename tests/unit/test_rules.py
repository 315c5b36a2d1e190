"""The accounting rules on plain values: worked examples and properties, no database."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.entries import EntryKind
from ledger.core.rules.usage import draws_at
from memory_store import balance, catalog, post  # noqa: F401 (catalog: a fixture)

ACME = '{"id": "c", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "name": "Acme AI", "currency": "USD"}'


def topup(credits: int, amount: str, when: str = "2026-01-02T10:00:00Z") -> str:
    return (f'{{"id": "t1", "type": "topup.purchased", "occurred_at": "{when}", "customer_id": "acme", '
            f'"topup_id": "top-1", "credits": {credits}, "amount": "{amount}"}}')


def usage(eid: str, when: str, credits: int) -> str:
    return (f'{{"id": "{eid}", "type": "usage.recorded", "occurred_at": "{when}", "customer_id": "acme", '
            f'"credits": {credits}}}')


def test_a_topup_defers_its_amount_and_issues_its_credits(catalog):
    """$20.00 for 1,000 credits: Dr 1100 20.00 / Cr 2100 20.00, Dr 9000 / Cr 9100 1,000, one invoice."""
    p = post(catalog, "\n".join([ACME, topup(1000, "20.00")]))
    drafts = p.entries().drafts
    assert [d.kind for d in drafts] == [EntryKind.PURCHASE]
    assert balance(drafts, "1100") == 20_00 and balance(drafts, "2100") == -20_00
    assert balance(drafts, "9000", "CREDIT") == 1000 and balance(drafts, "9100", "CREDIT") == -1000
    assert [inv.number for inv, _ in p.invoices] == ["INV-2026-000001"]


def test_100_dollars_for_3_credits_relieve_33_33_33_34_33_33(catalog):
    """The cumulative formula: one credit a month of a $100.00 / 3-credit grant recognises 33.33, 33.34, 33.33."""
    p = post(catalog, "\n".join([ACME, topup(3, "100.00"), usage("u1", "2026-01-15T00:00:00Z", 1),
                                 usage("u2", "2026-02-15T00:00:00Z", 1), usage("u3", "2026-03-15T00:00:00Z", 1)]))
    drafts = p.entries().drafts
    assert [-balance(drafts, "4000", period=m) for m in ("2026-01", "2026-02", "2026-03")] == [33_33, 33_34, 33_33]
    assert balance(drafts, "2100") == 0


def test_usage_of_one_day_is_one_consumption_entry_naming_its_events(catalog):
    """Two usage events of one customer and day: one consumption entry carrying both."""
    p = post(catalog, "\n".join([ACME, topup(100, "100.00"), usage("u1", "2026-01-10T08:00:00Z", 10),
                                 usage("u2", "2026-01-10T20:00:00Z", 20)]))
    journal = p.entries()
    (i,) = {journal.usage_entry["u1"], journal.usage_entry["u2"]}
    entry = journal.drafts[i]
    assert entry.kind == EntryKind.CONSUMPTION and entry.description == "Usage of acme on 2026-01-10: 2 events, 30 credits"
    assert -balance([entry], "4000") == 30_00
    rows = {u.id: u for u in p.usage_rows}
    segments = [(ln.grant_id, ln.debit) for ln in entry.lines if ln.account == "9100" and ln.debit]
    assert segments == [("top-1", 30)]
    assert (rows["u1"].draw_start, rows["u2"].draw_start) == (0, 10)
    assert draws_at(segments, 0, 10) == [("top-1", 10)] and draws_at(segments, 10, 20) == [("top-1", 20)]


def test_usage_beyond_the_credits_without_an_overage_price_is_quarantined(catalog):
    """The hard cap: 150 credits asked of 100 held, no overage price: quarantined, nothing posted."""
    p = post(catalog, "\n".join([ACME, topup(100, "100.00"), usage("u1", "2026-01-10T08:00:00Z", 150)]))
    assert [q.event_id for q in p.quarantine_rows] == ["u1"]
    assert "150 credits requested, 100 available" in p.quarantine_rows[0].reason
    assert [d.kind for d in p.entries().drafts] == [EntryKind.PURCHASE]


def test_a_subscription_month_splits_its_fee_by_standalone_selling_prices(catalog):
    """$299 for 5,000 credits (SSP 0.12 -> 600.00) and platform access (SSP 99.00): Fc = 299 x 600 / 699 = 256.65, Fp 42.35."""
    start = ('{"id": "s1", "type": "subscription.started", "occurred_at": "2026-01-01T00:00:00Z", '
             '"customer_id": "acme", "plan": "professional", "start_date": "2026-01-01"}')
    p = post(catalog, "\n".join([ACME, start]))
    (bill,) = [d for d in p.entries().drafts if d.kind == EntryKind.SUBSCRIPTION]
    fc, fp = -balance([bill], "2100"), -balance([bill], "2150")
    assert fc + fp == 299_00
    assert (fc, fp) == (256_65, 42_35)


@settings(max_examples=60, deadline=None)
@given(draws=st.lists(st.integers(1, 40), min_size=1, max_size=12), amount=st.integers(1, 10_000_00))
def test_relieving_a_whole_grant_in_any_steps_moves_exactly_its_amount(catalog, draws, amount):
    """Whatever the sizes of the draws, once a grant's units are all consumed its deferred balance is
    exactly zero and usage revenue equals its amount; every entry balances per commodity."""
    units = sum(draws)
    major = f"{amount // 100}.{amount % 100:02d}"
    lines = [ACME, topup(units, major)] + [usage(f"u{i}", f"2026-01-{i + 3:02d}T00:00:00Z", n) for i, n in enumerate(draws)]
    drafts = post(catalog, "\n".join(lines)).entries().drafts
    assert balance(drafts, "2100") == 0
    assert -balance(drafts, "4000") == amount
    assert all(d.imbalance() is None for d in drafts)


def test_a_refund_that_moves_no_money_leaves_no_refunded_base(catalog):
    """1 of 5 credits bought for $0.01 relieves round(1 x 1 / 5) = 0.00: the refund posts CREDIT
    lines only, and the book, like one derived from the journal, records no money refunded."""
    refund = ('{"id": "r1", "type": "refund.issued", "occurred_at": "2026-01-03T00:00:00Z", "customer_id": "acme", '
              '"grant_ref": "top-1", "credits": 1}')
    p = post(catalog, "\n".join([ACME, topup(5, "0.01"), refund]))
    (entry,) = [d for d in p.entries().drafts if d.kind == EntryKind.REFUND]
    assert {ln.commodity for ln in entry.lines} == {"CREDIT"}
    assert p.books["acme"].refunded_base == {}


def test_an_entry_without_lines_is_refused_as_an_internal_error():
    """`check_draft` refuses an entry that moves nothing with an InternalError naming it (the
    CLI prints it and exits 1, no traceback); `Posting.entries` drops one no document names."""
    from datetime import date, datetime, timezone

    import pytest

    from ledger.core.entries import EntryDraft, check_draft
    from ledger.errors import InternalError, LedgerError

    draft = EntryDraft(date(2026, 3, 1), datetime(2026, 3, 1, tzinfo=timezone.utc), EntryKind.SUBSCRIPTION,
                       "Free plan, 2026-03", "acme")
    draft.dr("1100", "USD", 0).cr("2150", "USD", 0)  # zero amounts add no line
    with pytest.raises(InternalError, match="'Free plan, 2026-03' .* has no lines") as err:
        check_draft(draft, set())
    assert isinstance(err.value, LedgerError)


def test_a_posting_leaves_out_an_entry_that_moved_nothing(catalog):
    """An entry a rule opened but left empty is not among the posting's entries."""
    from datetime import date, datetime, timezone

    p = post(catalog, "\n".join([ACME, topup(1000, "20.00")]))
    p.entry(date(2026, 1, 3), datetime(2026, 1, 3, tzinfo=timezone.utc), EntryKind.RECOGNITION, "nothing", "acme")
    assert [d.kind for d in p.entries().drafts] == [EntryKind.PURCHASE]
