"""Kept customer books (books.BookCache): a process reuses a book between transactions only
while ``customer.book_version`` still carries the token its own run wrote; the reused book is
the one a fresh derivation from the journal gives (LEDGER_CHECK_BOOK_CACHE=1, set for the whole
suite in conftest.py, compares them on every reuse), and the journal is the same with or
without the cache."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from strategies import histories

from ledger.store import pipeline as direct
from ledger.core.posting import Posting
from ledger.store import books as E
from ledger.api import Ledger
from ledger.errors import InvalidInputError
from ledger.store.models import Customer

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def history(ledger: Ledger, customer: str = "acme") -> None:
    """Usage across two commitments (one proportional breakage, one with an overage price),
    an estimate change, a void, a payment and more usage: state a kept book must carry."""
    ledger.create_customer(f"{customer}-c", customer_id=customer, name="Acme AI", currency="USD",
                           tax_rate=Decimal("0.0825"), occurred_at=T0)
    ledger.purchase_commitment(f"{customer}-p1", customer_id=customer, commitment_id=f"{customer}-com-1",
                               amount="1000.00", credits=1000, term_start="2026-01-01", term_end="2026-12-31",
                               occurred_at=T0, breakage={"method": "proportional", "expected_rate": "0.1"})
    ledger.purchase_commitment(f"{customer}-p2", customer_id=customer, commitment_id=f"{customer}-com-2",
                               amount="300.00", credits=700, term_start="2026-01-01", term_end="2026-12-31",
                               occurred_at=T0, overage_price="0.50")
    for i in range(20):
        ledger.record_usage(f"{customer}-u{i}", customer_id=customer, credits=37 + 3 * i,
                            occurred_at=T0 + timedelta(days=i, hours=1))
    ledger.change_breakage_estimate(f"{customer}-b1", customer_id=customer, grant_ref=f"{customer}-com-1",
                                    expected_rate="0.2", occurred_at=T0 + timedelta(days=21))
    ledger.void_event(f"{customer}-v1", target_event_id=f"{customer}-u3", reason="duplicate metering",
                      occurred_at=T0 + timedelta(days=22))
    ledger.receive_payment(f"{customer}-pay", customer_id=customer, amount="50.00",
                           occurred_at=T0 + timedelta(days=23))
    for i in range(20, 40):  # runs into overage: 1,700 credits held, 2,840 drawn
        ledger.record_usage(f"{customer}-u{i}", customer_id=customer, credits=37 + 3 * i,
                            occurred_at=T0 + timedelta(days=i, hours=1))


@pytest.fixture
def fresh_cache(monkeypatch):
    cache = E.BookCache()
    monkeypatch.setattr(E, "BOOKS", cache)
    return cache


def test_books_are_reused_between_calls_and_equal_the_journal(make_books, fresh_cache, monkeypatch):
    monkeypatch.setenv("LEDGER_CHECK_BOOK_CACHE", "1")
    attempts = Counter()
    monkeypatch.setattr(direct, "ATTEMPTS", attempts)
    cached = make_books()
    with Ledger(cached.url, cached.catalog) as ledger:
        history(ledger)
    # every call after the first reused it; on PostgreSQL but one: at the month end the run of the
    # one-round-trip path (ledger.store.pipeline) used the database (an overage invoice's number), so it
    # handed the call to the two-round-trip path, which derived the book again under the lock
    direct_path = cached.url.startswith("postgresql")
    assert fresh_cache.hits >= 40 and fresh_cache.misses == (1 if direct_path else 0)
    # of the 40 usage calls, the first (this process has not read the closed periods yet) and the
    # month end's go through two round trips, the other 38 through one (a book kept by the general
    # path serves the one-round-trip path too: both keep plain records)
    assert attempts == (Counter(read=1, posted=38) if direct_path else Counter())
    monkeypatch.setattr(E, "BOOKS", E.BookCache(size=0))  # keeps nothing: every call derives the book
    plain = make_books()
    with Ledger(plain.url, plain.catalog) as ledger:
        history(ledger)
    assert E.BOOKS.hits == 0
    assert cached.journal() == plain.journal()
    assert cached.balance("4010", customer="acme") > 0  # the history did run into overage
    assert cached.verify() == plain.verify() == []


def test_another_writer_invalidates_the_kept_book(make_books, fresh_cache, monkeypatch):
    attempts = Counter()
    monkeypatch.setattr(direct, "ATTEMPTS", attempts)
    books = make_books()
    with Ledger(books.url, books.catalog) as one, Ledger(books.url, books.catalog) as two:
        one.create_customer("c", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
        one.purchase_topup("t", customer_id="acme", topup_id="top-1", credits=1000, amount="20.00", occurred_at=T0)
        one.record_usage("u-1", customer_id="acme", credits=100, occurred_at=T0 + timedelta(hours=1))
        hits = fresh_cache.hits
        # another process (its own cache) posts for the same customer: a new token
        monkey = E.BOOKS
        E.BOOKS = E.BookCache()
        try:
            two.record_usage("u-2", customer_id="acme", credits=850, occurred_at=T0 + timedelta(hours=2))
        finally:
            E.BOOKS = monkey
        # the first process's kept book says 900 left; the journal says 50: it must not be used
        capped = one.record_usage("u-3", customer_id="acme", credits=100, occurred_at=T0 + timedelta(hours=3))
    if books.url.startswith("postgresql"):
        # the one-round-trip path applied u-3 to the kept book, and the database refused its
        # writes (the token had changed); the two-round-trip path then derived the book again
        assert attempts["changed"] == 1 and fresh_cache.misses >= 1
    else:
        assert fresh_cache.hits == hits and fresh_cache.misses >= 1
    assert (capped.posted, capped.quarantined) == (0, 1)
    assert books.balance("9100", "CREDIT", customer="acme") == 50


def test_a_failed_call_leaves_no_kept_book(make_books, fresh_cache):
    books = make_books()
    with Ledger(books.url, books.catalog) as ledger:
        ledger.create_customer("c", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
        ledger.purchase_topup("t", customer_id="acme", topup_id="top-1", credits=1000, amount="20.00", occurred_at=T0)
        ledger.record_usage("u-1", customer_id="acme", credits=100, occurred_at=T0 + timedelta(hours=1))
        assert len(fresh_cache._books) == 1
        with pytest.raises(InvalidInputError):  # refused after the book was taken: more than was bought
            ledger.issue_refund("r-1", customer_id="acme", grant_ref="top-1", credits=5000,
                                occurred_at=T0 + timedelta(hours=2))
        assert len(fresh_cache._books) == 0  # taken by the failed run, not put back
        ledger.record_usage("u-2", customer_id="acme", credits=100, occurred_at=T0 + timedelta(hours=3))
    assert books.balance("9100", "CREDIT", customer="acme") == 800


def test_the_check_catches_a_kept_book_that_differs(make_books, fresh_cache, monkeypatch):
    monkeypatch.setenv("LEDGER_CHECK_BOOK_CACHE", "1")
    books = make_books()
    with Ledger(books.url, books.catalog) as ledger:
        ledger.create_customer("c", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
        ledger.purchase_topup("t", customer_id="acme", topup_id="top-1", credits=1000, amount="20.00", occurred_at=T0)
        (_, (_, book)), = fresh_cache._books.items()
        book.grants["top-1"].relieved += 1  # what a bug in keeping books would look like
        with pytest.raises(AssertionError, match="kept book of acme differs from the journal.*top-1.relieved"):
            ledger.record_usage("u-1", customer_id="acme", credits=100, occurred_at=T0 + timedelta(hours=1))
    with books.session() as s:
        assert s.execute(sa.select(Customer.book_version)).scalar_one() != 0


def _post_one_by_one(url: str, catalog, events: list[dict], tmp) -> tuple[list, list[str]]:
    """Post each event in its own transaction, as API calls do (so every call after a
    customer's first may reuse the kept book); returns (journal, refused event ids)."""
    from conftest import Books
    from sqlmodel import Session
    from strategies import jsonl

    from ledger.store.db import make_engine
    from ledger.services.importing import import_events
    from ledger.events import read_jsonl

    engine = make_engine(url)
    refused = []
    try:
        for n, event in enumerate(sorted(events, key=lambda e: e["occurred_at"])):
            path = tmp / f"e{n}.jsonl"
            path.write_text(jsonl([event]))
            parsed, problems = read_jsonl(path)
            assert problems == []
            try:
                with Session(engine) as s:
                    import_events(s, catalog, parsed, sources=[str(path)])
            except InvalidInputError:
                refused.append(event["id"])
        return Books(url, engine, catalog, tmp).journal(), refused
    finally:
        engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(events=histories(max_events=30))
def test_random_histories_post_the_same_journal_with_kept_books(events, sqlite_template, tmp_path_factory,
                                                                monkeypatch):
    """Random histories of every event type, one event per transaction: with kept books (each
    reuse checked against the journal) and without, the same journal and the same refusals."""
    import shutil

    from strategies import CATALOG

    from ledger.catalog import load_catalog

    monkeypatch.setenv("LEDGER_CHECK_BOOK_CACHE", "1")
    tmp = tmp_path_factory.mktemp("kept")
    (tmp / "ledger.toml").write_text(CATALOG)
    catalog = load_catalog(tmp / "ledger.toml", required=True)
    results = []
    for name, cache in (("kept", E.BookCache()), ("derived", E.BookCache(size=0))):
        monkeypatch.setattr(E, "BOOKS", cache)
        shutil.copyfile(sqlite_template, tmp / f"{name}.db")
        (tmp / name).mkdir()
        results.append(_post_one_by_one(f"sqlite:///{tmp / name}.db", catalog, events, tmp / name))
        if name == "kept":
            kept_hits = cache.hits
    assert results[0] == results[1]
    # (in a sample of 25 histories, every one reused kept books: 1 to 26 times; a history whose
    # customers all subscribe keeps none, so this is reported, not asserted)
    event("kept books reused" if kept_hits else "no kept book reused")


def test_a_voided_overage_leaves_the_kept_book_as_the_journal_has_it(make_books, fresh_cache, monkeypatch):
    """Voiding the only overage usage of a month leaves that month with no overage: the kept
    book must not keep an empty entry for it, which a book derived from the journal does not have
    (LEDGER_CHECK_BOOK_CACHE compares them when the next call reuses the kept book)."""
    monkeypatch.setenv("LEDGER_CHECK_BOOK_CACHE", "1")
    books = make_books()
    with Ledger(books.url, books.catalog) as ledger:
        ledger.create_customer("c", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
        ledger.purchase_commitment("p", customer_id="acme", commitment_id="com-1", amount="100.00", credits=100,
                                   term_start="2026-01-01", term_end="2026-12-31", occurred_at=T0, overage_price="0.50")
        ledger.record_usage("u-1", customer_id="acme", credits=150, occurred_at=T0 + timedelta(days=1))
        assert books.balance("4010", customer="acme") != 0  # 50 credits of overage
        ledger.void_event("v-1", target_event_id="u-1", reason="test traffic", occurred_at=T0 + timedelta(days=2))
        ledger.record_usage("u-2", customer_id="acme", credits=10, occurred_at=T0 + timedelta(days=3))
    assert fresh_cache.hits >= 1
    assert books.balance("4010", customer="acme") == 0  # the voided overage's revenue is reversed
    assert books.verify() == []
