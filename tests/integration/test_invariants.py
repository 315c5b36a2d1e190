"""`ledger verify` catches books that break invariants 2 and 3 (entries balanced, but wrong)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlmodel import Session

from ledger.core.entries import EntryDraft
from ledger.store.writer import insert_entries as post

TOPUP = """
{"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", "name": "Acme", "currency": "USD"}
{"id": "t1", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "topup_id": "top-1", "credits": 100, "amount": "100.00"}
"""


def _post(books, draft: EntryDraft) -> None:
    with Session(books.engine) as s:
        post(s, [draft])
        s.commit()


def test_revenue_recognised_without_relieving_credits_is_caught(books):
    """A balanced entry that moves deferred revenue to usage revenue without relieving units breaks invariant 2."""
    books.post(TOPUP)
    assert books.verify() == []
    t = datetime(2026, 1, 3, tzinfo=timezone.utc)
    _post(books, EntryDraft(date(2026, 1, 3), t, "manual", "recognise without consumption", "acme")
          .dr("2100", "USD", 500, grant_id="top-1").cr("4000", "USD", 500, grant_id="top-1"))
    found = [str(v) for v in books.verify()]
    assert any("invariant 2 (grant top-1): deferred balance 9500 != A - round(A x R / N)" in v for v in found), found
    assert any(v.startswith("invariant 3 (deferred revenue USD): ledger 2100+2150 = 9500") for v in found), found


def test_lines_naming_an_unknown_grant_are_caught(books):
    """CREDIT lines on 9100 for a grant that has no grant row are reported."""
    books.post(TOPUP)
    t = datetime(2026, 1, 3, tzinfo=timezone.utc)
    _post(books, EntryDraft(date(2026, 1, 3), t, "manual", "phantom grant", "acme")
          .dr("9000", "CREDIT", 7, grant_id="ghost").cr("9100", "CREDIT", 7, grant_id="ghost"))
    assert [str(v) for v in books.verify()] == ["invariant 2 (grant ghost): journal lines name a grant that does not exist"]


def test_cash_taken_as_revenue_without_an_invoice_is_caught(books):
    """Recognising revenue that no invoice billed breaks invariant 4 for that customer."""
    books.post(TOPUP)
    t = datetime(2026, 1, 3, tzinfo=timezone.utc)
    _post(books, EntryDraft(date(2026, 1, 3), t, "manual", "unbilled revenue", "acme")
          .dr("1000", "USD", 1_00).cr("4010", "USD", 1_00))
    assert [str(v) for v in books.verify()] == [
        "invariant 4 (customer acme USD): billed + unbilled 10000 != recognised + deferred + credit notes 10100"]


def test_an_invoice_whose_receivable_differs_from_its_total_is_caught(books):
    """A document row changed behind the journal's back (total 1.00 higher) breaks invariant 5."""
    import sqlalchemy as sa

    from ledger.store.models import Invoice

    books.post(TOPUP)
    with Session(books.engine) as s:
        s.execute(sa.update(Invoice).where(Invoice.number == "INV-2026-000001").values(total=100_01))
        s.commit()
    assert [str(v) for v in books.verify()] == [
        "invariant 5 (document INV-2026-000001): receivable lines of entry 1 = 10000, document total = 10001"]


def test_billing_counts_debits_and_credits_on_both_sides(books):
    """Invariant 4 nets each account: overage recognised and not yet invoiced (Dr 1150, Cr 4010)
    ties; revenue given back without a credit note (Dr 4000, Cr 1000) does not."""
    books.post(TOPUP)
    t = datetime(2026, 1, 3, tzinfo=timezone.utc)
    _post(books, EntryDraft(date(2026, 1, 3), t, "manual", "overage not yet invoiced", "acme")
          .dr("1150", "USD", 50).cr("4010", "USD", 50))
    assert books.verify() == []
    _post(books, EntryDraft(date(2026, 1, 4), t, "manual", "revenue given back", "acme")
          .dr("4000", "USD", 1_00).cr("1000", "USD", 1_00))
    assert [str(v) for v in books.verify()] == [
        "invariant 4 (customer acme USD): billed + unbilled 10050 != recognised + deferred + credit notes 9950"]


def test_an_unbalanced_entry_is_caught_with_the_trial_balance(books):
    """An entry whose debits and credits differ (written past the posting path, on SQLite,
    where only that path checks it) breaks invariant 1: the entry, and the trial balance
    with it, since the trial balance is the sum of the entries."""
    import sqlalchemy as sa

    from ledger.store.models import JournalEntry, JournalLine

    if books.url.startswith("postgresql"):
        return  # the database refuses the entry at commit (migration 0001's deferred balance trigger)
    books.post(TOPUP)
    with Session(books.engine) as s:
        entry = s.execute(sa.insert(JournalEntry).values(
            entry_date=date(2026, 1, 3), occurred_at=datetime(2026, 1, 3, tzinfo=timezone.utc), kind="manual",
            description="off by one", customer_id="acme", line_count=2).returning(JournalEntry.id)).scalar_one()
        s.execute(sa.insert(JournalLine), [
            {"entry_id": entry, "account_code": "1000", "commodity": "USD", "debit": 100, "credit": 0, "customer_id": "acme"},
            {"entry_id": entry, "account_code": "2200", "commodity": "USD", "debit": 0, "credit": 99, "customer_id": "acme"}])
        s.commit()
    found = [str(v) for v in books.verify()]
    assert f"invariant 1 (entry {entry}): USD debits 100 != credits 99" in found, found
    trial = [v.split(": ", 1)[1].split() for v in found if v.startswith("invariant 1 (trial balance USD)")]
    assert len(trial) == 1 and int(trial[0][1]) - int(trial[0][4]) == 1, found  # "debits D != credits C"
