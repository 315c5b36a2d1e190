"""ledger.store.pipeline, the pipelined PostgreSQL path of one usage event per API call, gives the books
the general path (engine.import_events) gives: the same calls made both ways (LEDGER_DIRECT=0
turns the direct path off) leave the same journal, usage rows, draws, quarantine, import
batches and customer cursors, and return the same summaries and refusals."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from strategies import histories

from ledger.store import pipeline as direct
from ledger.store import writer
from ledger.core.posting import Posting
from ledger.store import books as E
from ledger.api import Ledger
from ledger.errors import InvalidInputError

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PG_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]


def _at(days: float) -> datetime:
    return T0 + timedelta(days=days)


class Calls:
    """Records each call's outcome: the summary's fields, or the refusal's text."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.outcomes: list[tuple] = []

    def __getattr__(self, name: str):
        method = getattr(self.ledger, name)

        def call(*args, **kw):
            try:
                s = method(*args, **kw)
            except InvalidInputError as exc:
                self.outcomes.append((name, "refused", str(exc)))
                return
            self.outcomes.append((name, s.posted, s.duplicates, s.quarantined, s.late, s.entries,
                                  [(i, r) for i, r in s.quarantine], s.late_events, s.invoices))
        return call


def script(books, ledger: Ledger) -> list[tuple]:
    """Usage through every branch of the direct path, between the business events and a close
    that take the general path."""
    c = Calls(ledger)
    c.create_customer("c-acme", customer_id="acme", name="Acme AI", currency="USD",
                      tax_rate=Decimal("0.0825"), occurred_at=T0)
    c.create_customer("c-capped", customer_id="capped", name="Capped Co", currency="USD", occurred_at=T0)
    c.purchase_commitment("p1", customer_id="acme", commitment_id="com-1", amount="1000.00", credits=1000,
                          term_start="2026-01-01", term_end="2026-12-31", occurred_at=T0,
                          breakage={"method": "proportional", "expected_rate": "0.1"})
    c.purchase_commitment("p2", customer_id="acme", commitment_id="com-2", amount="300.00", credits=700,
                          term_start="2026-01-01", term_end="2026-12-31", occurred_at=T0, overage_price="0.50")
    c.grant_credits("g1", customer_id="capped", grant_id="promo-1", credits=100, occurred_at=T0,
                    expires_at=_at(20))
    for i in range(12):  # the first reads the book from the journal, the rest reuse it
        c.record_usage(f"u-{i}", customer_id="acme", credits=40 + i, occurred_at=_at(i + 0.5))
    c.record_usage("u-act", customer_id="acme", action="SUMMARIZE_SHORT", quantity=3, occurred_at=_at(12.5))
    c.record_usage("u-1", customer_id="acme", credits=41, occurred_at=_at(1.5))  # identical: a duplicate
    c.record_usage("u-1", customer_id="acme", credits=99, occurred_at=_at(1.5))  # other content: refused
    c.record_usage("u-bad", customer_id="acme", action="NO_SUCH_ACTION", quantity=1, occurred_at=_at(13))
    c.record_usage("u-who", customer_id="nobody", credits=5, occurred_at=_at(13))
    c.create_customer("c-later", customer_id="later", name="Later Ltd", currency="USD", occurred_at=_at(10))
    c.record_usage("u-early", customer_id="later", credits=5, occurred_at=_at(5))  # before it was created
    for i in range(4):  # 100 credits: the fourth call is quarantined (hard cap)
        c.record_usage(f"cap-{i}", customer_id="capped", credits=30, occurred_at=_at(14 + i))
    c.record_usage("cap-late", customer_id="capped", credits=5, occurred_at=_at(25))  # after promo-1 expired
    c.grant_credits("g2", customer_id="capped", grant_id="promo-2", credits=50, occurred_at=_at(26),
                    expires_at=_at(40))
    c.record_usage("capped-b1", customer_id="capped", credits=20, occurred_at=_at(30))
    c.record_usage("capped-b2", customer_id="capped", credits=5, occurred_at=_at(45))  # moves the cursor past promo-2
    c.void_event("v-1", target_event_id="u-3", reason="duplicate metering", occurred_at=_at(26))
    c.record_usage("u-feb", customer_id="acme", credits=900, occurred_at=_at(32))
    books.close("2026-01")
    c.record_usage("u-jan-late", customer_id="acme", credits=7, occurred_at=_at(28))  # into February
    for i in range(5):  # past the 1,700 credits held: overage at 0.50 a credit
        c.record_usage(f"u-over-{i}", customer_id="acme", credits=150, occurred_at=_at(40 + i))
    # the first March usage runs February's steps: the overage invoice (write_posting writes it)
    c.record_usage("u-mar", customer_id="acme", credits=10, occurred_at=_at(60))
    c.record_usage("u-mar-2", customer_id="acme", credits=10, occurred_at=_at(61))
    return c.outcomes


def tables(books) -> dict[str, list]:
    """Everything the calls write, without surrogate ids (a declined direct call has drawn an
    import batch id from the sequence)."""
    q = {
        "usage_event": "SELECT id, customer_id, occurred_at, credits, action, quantity, status, late, "
                       "overage_units, overage_price, file_index, line, entry_id IS NULL FROM usage_event ORDER BY id",
        "usage_source": "SELECT customer_id, id, source FROM usage_source ORDER BY 1, 2",
        "usage_draw": "SELECT * FROM usage_draw ORDER BY 1, 2",
        "quarantine": "SELECT event_id, customer_id, occurred_at, credits, reason, available FROM quarantine ORDER BY 1",
        "import_batch": "SELECT sources, posted, duplicates, quarantined, late FROM import_batch ORDER BY id",
        "customer": "SELECT id, steps_through, book_version <> 0 FROM customer ORDER BY id",
        "entries": "SELECT entry_date, occurred_at, kind, description, customer_id, event_id FROM journal_entry "
                   "ORDER BY id",
        "invoice": "SELECT number, customer_id, issue_date, kind, total FROM invoice ORDER BY number",
        "usage_entries": "SELECT u.id, e.entry_date, e.description FROM usage_event u "
                         "JOIN journal_entry e ON e.customer_id = u.customer_id AND e.id = u.entry_id ORDER BY u.id",
    }
    with books.engine.connect() as c:
        out = {name: [tuple(r) for r in c.execute(sa.text(sql))] for name, sql in q.items()}
    out["journal"] = books.journal()
    return out


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_direct_path_gives_the_books_of_the_general_path(make_books, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="psycopg")
    used = {"posted": 0, "declined": 0, "finish": 0}
    post_usage, writes_only_usage = direct.post_usage, Posting.writes_only_usage

    def counting_post(*args, **kw):
        summary = post_usage(*args, **kw)
        used["declined" if summary is None else "posted"] += 1
        return summary

    def counting_check(run):
        only = writes_only_usage(run)
        used["finish"] += not only
        return only

    monkeypatch.setattr("ledger.services.recording.post_usage", counting_post)
    monkeypatch.setattr(Posting, "writes_only_usage", counting_check)
    attempts = Counter()
    monkeypatch.setattr(direct, "ATTEMPTS", attempts)
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("LEDGER_DIRECT", flag)
        monkeypatch.setattr(E, "BOOKS", E.BookCache())
        books = make_books()
        with Ledger(books.url, books.catalog) as ledger:
            outcomes = script(books, ledger)
        results.append((outcomes, tables(books)))
        if flag == "1":
            direct_use = dict(used)
    (out_direct, tab_direct), (out_general, tab_general) = results
    assert out_direct == out_general
    for name in tab_general:
        assert tab_direct[name] == tab_general[name], name
    # the direct path took every usage call but the three the general path refuses (unknown
    # action, unknown customer, before creation); the conflicting re-post it refused itself
    assert (direct_use["posted"], direct_use["declined"]) == (30, 3)
    assert used["posted"] == 30  # LEDGER_DIRECT=0: not called at all
    assert direct_use["finish"] >= 1  # the March usage's overage invoice went through the writer
    # 26 calls found their customer's book kept (by either path) and posted in one round trip. Two were handed to
    # the two-round-trip path by the database's check: the identical re-post of u-1 (its id was
    # stored) and the first call after the close (the closed periods had changed). One was handed
    # on because its run took an invoice number (the March call).
    assert attempts == Counter(posted=26, changed=2, read=1)
    # a refusal is an outcome, not an error: psycopg had nothing to log ("error ignored ...")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []
    # what the script is meant to cover did happen
    kinds = {e[2] for e in tab_general["entries"]}
    assert {"consumption", "proportional_breakage", "expiry"} <= kinds, kinds
    usage = [o for o in out_general if o[0] == "record_usage" and o[1] != "refused"]
    assert [o[3] for o in usage].count(1) == 3  # quarantined: the fourth capped call and those after expiries
    assert [o[2] for o in usage].count(1) == 1  # the identical re-post: a duplicate
    assert [o[4] for o in usage].count(1) == 1  # the January usage after the close: late
    assert len([o for o in out_general if o[1] == "refused"]) == 4 and tab_general["invoice"]


def _acme_with_a_kept_book(ledger: Ledger) -> None:
    """Customer acme with a 1,000-credit top-up and one usage call (100 credits), so that the
    process keeps acme's book."""
    ledger.create_customer("c-1", customer_id="acme", name="Acme AI", currency="USD", occurred_at=T0)
    ledger.purchase_topup("t-1", customer_id="acme", topup_id="top-1", credits=1000, amount="20.00", occurred_at=T0)
    ledger.record_usage("u-1", customer_id="acme", credits=100, occurred_at=_at(1))


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_a_refused_write_leaves_nothing_and_no_kept_book(make_books, monkeypatch):
    """The database refuses the pipelined writes (here a bad column name in the lines' INSERT):
    sqlalchemy's DBAPIError, nothing of the call is written, the kept book is dropped, and the
    next call is right (LEDGER_CHECK_BOOK_CACHE compares any reuse with the journal)."""
    cache = E.BookCache()
    monkeypatch.setattr(E, "BOOKS", cache)
    attempts = Counter()
    monkeypatch.setattr(direct, "ATTEMPTS", attempts)
    books = make_books()
    with Ledger(books.url, books.catalog) as ledger:
        _acme_with_a_kept_book(ledger)
        before = tables(books)
        good = writer._insert_lines
        monkeypatch.setattr(writer, "_insert_lines", lambda n: good(n).replace("grant_id", "no_such_column"))
        with pytest.raises(sa.exc.ProgrammingError, match="no_such_column"):
            ledger.record_usage("u-2", customer_id="acme", credits=100, occurred_at=_at(2))
        assert tables(books) == before
        # the one-round-trip attempt (autocommit on for its explicit BEGIN) gave its connection
        # back to the pool as it found it: every connection the pool holds is out of autocommit
        assert attempts == Counter(error=1)
        with ledger.engine.connect() as a, ledger.engine.connect() as b:
            assert a.connection.driver_connection.autocommit is b.connection.driver_connection.autocommit is False
            assert ledger.engine.pool.checkedin() == 0  # (the two were all it had)
        monkeypatch.setattr(writer, "_insert_lines", good)
        hits = cache.hits
        summary = ledger.record_usage("u-2", customer_id="acme", credits=100, occurred_at=_at(2))
        assert summary.posted == 1 and cache.hits == hits  # read from the journal, not the dropped book
    assert books.balance("9100", "CREDIT", customer="acme") == 800


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_a_stale_kept_book_is_refused_quietly_and_the_call_posts(make_books, monkeypatch, caplog):
    """Another writer moved the customer on (its book_version changed), so the database refuses
    the one-round-trip write (LX001). Here the refusal is read back while the rows are still
    being sent (slowed down), the case where leaving psycopg's pipeline used to log "error
    ignored terminating <Pipeline>" for every refusal. The call then posts through the
    two-round-trip path, and nothing is logged."""
    caplog.set_level(logging.WARNING, logger="psycopg")
    monkeypatch.setattr(E, "BOOKS", E.BookCache())
    attempts = Counter()
    monkeypatch.setattr(direct, "ATTEMPTS", attempts)
    books = make_books()
    with Ledger(books.url, books.catalog) as ledger:
        _acme_with_a_kept_book(ledger)
        with ledger.engine.begin() as c:  # the other writer
            c.execute(sa.text("UPDATE customer SET book_version = book_version + 1 WHERE id = 'acme'"))
        send_rows = direct.send_posting

        def slow_send_rows(*args, **kw):
            time.sleep(0.3)  # the database has answered the check by now
            return send_rows(*args, **kw)

        monkeypatch.setattr(direct, "send_posting", slow_send_rows)
        attempts.clear()
        summary = ledger.record_usage("u-2", customer_id="acme", credits=100, occurred_at=_at(2))
    assert summary.posted == 1 and attempts == Counter(changed=1)
    assert books.balance("9100", "CREDIT", customer="acme") == 800
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []


def _post_each(url: str, catalog, events: list[dict]) -> list:
    refused = []
    with Ledger(url, catalog) as ledger:
        for body in events:
            try:
                ledger.post([body])
            except InvalidInputError as exc:
                refused.append((body["id"], str(exc)))
    return refused


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(events=histories(max_events=30))
def test_random_histories_post_the_same_books_both_ways(events, make_books, tmp_path_factory, monkeypatch):
    """Random histories of every event type, one API call per event, on PostgreSQL: with the
    direct path and without, the same journal, usage rows, draws, quarantine and refusals."""
    from strategies import CATALOG

    from ledger.catalog import load_catalog

    path = tmp_path_factory.mktemp("direct") / "ledger.toml"
    path.write_text(CATALOG)
    catalog = load_catalog(path, required=True)
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("LEDGER_DIRECT", flag)
        monkeypatch.setattr(E, "BOOKS", E.BookCache())
        books = make_books()
        refused = _post_each(books.url, catalog, events)
        results.append((refused, tables(books)))
    assert results[0] == results[1]


def _api_worker(url: str, catalog_path: str, worker: int, calls: int, barrier, results) -> None:
    """One API client process with its own kept books: usage of 7 credits, alternating between
    two customers, from the moment all workers are ready; reports (posted, quarantined, calls the
    direct path took, what its one-round-trip path did)."""
    from ledger.services import recording

    taken = [0]
    post_usage = recording.post_usage

    def counting(*args, **kw):
        summary = post_usage(*args, **kw)
        taken[0] += summary is not None
        return summary

    recording.post_usage = counting
    posted = quarantined = 0
    with Ledger(url, catalog_path) as books:
        barrier.wait(120)
        for i in range(calls):
            s = books.record_usage(f"p{worker}-{i}", customer_id=("acme", "beta")[i % 2], credits=7,
                                   occurred_at=_at(1 + (worker * calls + i) / 10_000))
            posted += s.posted
            quarantined += s.quarantined
    results.put((posted, quarantined, taken[0], dict(direct.ATTEMPTS)))


def test_four_api_processes_never_draw_more_than_granted(pg_url, tmp_path):
    """Four processes, each with its own kept books, call record_usage for the same two customers
    (1,000 credits each, no overage: a hard cap) 100 times each, 7 credits a call: each customer
    posts exactly 142 calls (994 credits), every other call is quarantined, and the books pass
    the invariants. The processes invalidate each other's kept books all the time."""
    import multiprocessing as mp

    from conftest import PLANS_CATALOG, Books

    from ledger.store.db import init_database, make_engine

    init_database(make_engine(pg_url))
    catalog_path = tmp_path / "ledger.toml"
    catalog_path.write_text(PLANS_CATALOG)
    with Ledger(pg_url, str(catalog_path)) as ledger:
        for c in ("acme", "beta"):
            ledger.create_customer(f"c-{c}", customer_id=c, name=c.title(), currency="USD", occurred_at=T0)
            ledger.purchase_topup(f"t-{c}", customer_id=c, topup_id=f"top-{c}", credits=1000, amount="20.00",
                                  occurred_at=T0)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_api_worker, args=(pg_url, str(catalog_path), w, 100, barrier, results))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:  # the results are a few bytes: joining before reading the queue cannot block
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    out = [results.get(timeout=10) for _ in procs]
    assert sum(o[0] for o in out) == 284 and sum(o[1] for o in out) == 116  # posted + quarantined = 400 sent
    assert sum(o[2] for o in out) == 400  # every call took the direct path
    # books kept by one process went stale as the others wrote: the database's check under the
    # lock refused them (no kept book is used without it), and the two-round-trip path derived
    attempts = sum((Counter(o[3]) for o in out), Counter())
    assert attempts["changed"] >= 1 and set(attempts) <= {"posted", "changed"}, attempts
    books = Books(pg_url, make_engine(pg_url), None, tmp_path)  # type: ignore[arg-type]
    for c in ("acme", "beta"):
        assert books.balance("9100", "CREDIT", customer=c) == 6
    assert books.verify() == []
    books.engine.dispose()
