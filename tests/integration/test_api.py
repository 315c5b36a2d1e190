"""The Python API (docs/design.md §8.4): the same validation and idempotency as event files, one
transaction per call; concurrent callers on PostgreSQL never draw a credit twice."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger.api import Ledger
from ledger.errors import InvalidInputError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def api(make_books):
    books = make_books()
    ledger = Ledger(books.url, books.catalog)
    ledger.create_customer("c-1", customer_id="acme", name="Acme AI", currency="USD", tax_rate=Decimal("0.0825"),
                           occurred_at=T0)
    ledger.purchase_topup("t-1", customer_id="acme", topup_id="top-1", credits=1000, amount=Decimal("20.00"),
                          occurred_at=T0.replace(day=2))
    yield ledger, books
    ledger.close()


def test_calls_post_like_files_and_are_idempotent(api):
    ledger, books = api
    first = ledger.record_usage("u-1", customer_id="acme", credits=300, occurred_at="2026-01-03T09:00:00Z")
    assert (first.posted, first.duplicates, first.quarantined) == (1, 0, 0)
    again = ledger.record_usage("u-1", customer_id="acme", credits=300, occurred_at="2026-01-03T09:00:00Z")
    assert (again.posted, again.duplicates) == (0, 1)
    assert books.balance("9100", "CREDIT", customer="acme") == 700  # 1,000 granted, 300 used, once
    assert books.balance("2100", customer="acme") == 14_00  # 20.00 x 700 / 1,000 left deferred
    with pytest.raises(InvalidInputError, match="same event id, different content"):
        ledger.record_usage("u-1", customer_id="acme", credits=301, occurred_at="2026-01-03T09:00:00Z")
    capped = ledger.record_usage("u-2", customer_id="acme", credits=900, occurred_at="2026-01-04T09:00:00Z")
    assert (capped.posted, capped.quarantined) == (0, 1)  # hard cap: 700 left, no overage price
    paid = ledger.receive_payment("p-1", customer_id="acme", amount="21.65", occurred_at=T0.replace(day=5))
    assert paid.posted == 1 and books.balance("1100", customer="acme") == 0
    assert books.verify() == []


def test_bad_calls_name_the_field_and_post_nothing(api):
    ledger, books = api
    before = books.count(__import__("ledger.store.models", fromlist=["JournalEntry"]).JournalEntry)
    with pytest.raises(InvalidInputError) as err:
        ledger.record_usage("u-x", customer_id="acme", credits=-5, occurred_at=T0)
    assert err.value.problems[0].field == "credits"
    with pytest.raises(InvalidInputError, match="naive timestamps are refused"):
        ledger.record_usage("u-y", customer_id="acme", credits=5, occurred_at="2026-01-03T09:00:00")
    with pytest.raises(InvalidInputError, match="unknown customer"):
        ledger.record_usage("u-z", customer_id="nobody", credits=5, occurred_at=T0)
    with pytest.raises(TypeError, match="never float"):
        ledger.receive_payment("p-f", customer_id="acme", amount=21.65, occurred_at=T0)
    assert books.count(__import__("ledger.store.models", fromlist=["JournalEntry"]).JournalEntry) == before


@pytest.mark.postgres
def test_concurrent_callers_never_draw_a_credit_twice(pg_url, plans_catalog):
    """Four threads, each with its own calls, record 50 usage events of 10 credits for one
    customer holding 1,000: exactly 100 are posted (1,000 credits), 100 quarantined."""
    from ledger.store.db import init_database, make_engine

    init_database(make_engine(pg_url))
    ledger = Ledger(pg_url, plans_catalog)
    ledger.create_customer("c-1", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
    ledger.purchase_topup("t-1", customer_id="acme", topup_id="top-1", credits=1000, amount="20.00",
                          occurred_at=T0.replace(day=2))
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(50):
                ledger.record_usage(f"u-{w}-{i}", customer_id="acme", credits=10,
                                    occurred_at=datetime(2026, 1, 3, 9, w * 10 + i // 10, i % 10, tzinfo=timezone.utc))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ledger.engine.connect() as c:
        posted = c.execute(sa.text("SELECT count(*) FROM usage_event WHERE entry_id IS NOT NULL")).scalar_one()
        quarantined = c.execute(sa.text("SELECT count(*) FROM quarantine")).scalar_one()
        left = c.execute(sa.text("SELECT sum(credit - debit) FROM journal_line WHERE account_code = '9100'")).scalar_one()
    ledger.close()
    assert (posted, quarantined, left) == (100, 100, 0)


def test_soft_cap_review_and_usage_cost_through_the_api(db_url, tmp_path):
    """record_usage with its own cost posts Dr 5000 / Cr 2500; usage past a soft cap is held,
    approve_usage releases part of it and reject_usage quarantines the rest."""
    from builders import COMPANY_CATALOG

    from ledger.catalog import load_catalog
    from ledger.store.models import JournalLine, Quarantine

    path = tmp_path / "ledger.toml"
    path.write_text(COMPANY_CATALOG.read_text(encoding="utf-8") + "\n[customers.acme]\nsoft_cap = 100\n", encoding="utf-8")
    with Ledger(db_url, load_catalog(path, required=True)) as api:
        api.create_customer("c1", customer_id="acme", name="Acme", currency="USD", occurred_at="2026-03-01T00:00:00Z")
        api.grant_credits("g1", customer_id="acme", grant_id="promo", credits=1000, occurred_at="2026-03-01T00:00:00Z")
        api.record_usage("u1", customer_id="acme", credits=90, cost=Decimal("1.005"), occurred_at="2026-03-02T00:00:00Z")
        api.record_usage("u2", customer_id="acme", credits=50, occurred_at="2026-03-03T00:00:00Z")  # held
        api.approve_usage("a1", customer_id="acme", target_event_id="u2", credits=20, occurred_at="2026-03-04T00:00:00Z")
        api.reject_usage("r1", customer_id="acme", target_event_id="u2", reason="too much",
                         occurred_at="2026-03-05T00:00:00Z")
        with api.engine.connect() as c:
            net = dict(c.execute(sa.select(JournalLine.account_code, sa.func.sum(JournalLine.debit - JournalLine.credit))
                                 .group_by(JournalLine.account_code)).all())
            quarantined = c.execute(sa.select(Quarantine.event_id, Quarantine.credits)).all()
    assert net["5000"] == 101 and net["2500"] == -101  # 1.005 rounds to 1.01
    assert net["9200"] == -110 and net.get("9500", 0) == 0
    assert quarantined == [("u2", 30)]
