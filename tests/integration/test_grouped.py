"""ledger.store.grouped, the group commit's path for many usage events over kept books, gives the
books of the general path: the same groups posted through `ledger.services.serving.post_requests`
with the direct paths (PostgreSQL) and without them leave the same journal, usage rows, draws,
quarantine, import batches and customer cursors, and give every request the same answer."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from test_direct import tables

from sqlmodel import Session

from ledger.event_schemas import parse_event
from ledger.services import serving
from ledger.services.serving import Submission
from ledger.store import books as E
from ledger.store.books import check_kept_book
from ledger.store import pipeline

pytestmark = pytest.mark.postgres
PG_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _usage(eid: str, customer: str, days: float, credits: int = 10, **more) -> dict:
    body = {"id": eid, "type": "usage.recorded", "occurred_at": _at(days), "customer_id": customer}
    return body | ({"credits": credits} if "action" not in more else more)


def _groups() -> list[list[dict]]:
    """Groups of requests (one event each), as the group committer hands them over."""
    setup = [
        {"id": "c-a", "type": "customer.created", "occurred_at": _at(0), "customer_id": "a", "name": "A",
         "currency": "USD"},
        {"id": "c-b", "type": "customer.created", "occurred_at": _at(0), "customer_id": "b", "name": "B",
         "currency": "USD"},
        {"id": "c-cap", "type": "customer.created", "occurred_at": _at(0), "customer_id": "cap", "name": "Cap",
         "currency": "USD"},
        {"id": "t-a", "type": "topup.purchased", "occurred_at": _at(0), "customer_id": "a", "topup_id": "top-a",
         "credits": 5000, "amount": "50.00"},
        {"id": "t-b", "type": "topup.purchased", "occurred_at": _at(0), "customer_id": "b", "topup_id": "top-b",
         "credits": 5000, "amount": "80.00"},
        {"id": "g-cap", "type": "credits.granted", "occurred_at": _at(0), "customer_id": "cap",
         "grant_id": "promo-cap", "credits": 100, "expires_at": _at(20)},
    ]
    groups = [setup,
              [_usage(f"u1-{i}", "ab"[i % 2], 1 + i / 10, 10 + i) for i in range(6)],  # books kept by the setup
              [_usage(f"u2-{i}", c, 2, 7) for i, c in enumerate("aabbab")]            # one customer twice in a group
              + [_usage("u2-act", "a", 2.5, action="SUMMARIZE_SHORT", quantity=3)],
              [_usage(f"cap-{i}", "cap", 3 + i, 30) for i in range(4)] + [_usage("u3-a", "a", 3)],  # the 4th: capped
              [_usage("u1-0", "a", 1, 10), _usage("u4-a", "a", 4)],                  # an identical re-post
              [_usage("u5-a", "a", 5), _usage("u5-x", "nobody", 5)],                  # an unknown customer
              [_usage("u6-a", "a", 6), _usage("u1-1", "b", 1.1, 99)],                 # an id with other content
              [_usage(f"u7-{i}", "ab"[i % 2], 7 + i) for i in range(4)],
              [_usage("cap-late", "cap", 25, 5), _usage("u8-b", "b", 26)],            # after promo-cap expired
              "close 2026-01",
              [_usage("u9-a", "a", 27), _usage("u9-b", "b", 33)],                     # late into February
              [_usage(f"u10-{i}", "ab"[i % 2], 34 + i) for i in range(4)]]
    return groups


def _sourced(books, out: dict) -> dict:
    """``out`` (test_direct's tables) with each usage row's file number read as its source: a
    group split in two batches numbers its files in each batch, the same file and line."""
    with books.engine.connect() as c:
        batches = {i: json.loads(s) for i, s in c.execute(sa.text("SELECT id, sources FROM import_batch"))}
        where = {r[0]: f"{batches[r[1]][r[2]]}:{r[3]}" if r[1] is not None else None
                 for r in c.execute(sa.text("SELECT id, import_id, file_index, line FROM usage_event"))}
    out["usage_event"] = [row[:10] + (where[row[0]],) + row[12:] for row in out["usage_event"]]
    return out


def _run(books, direct: bool) -> tuple[list, dict]:
    """Post every group through `serving.post_requests`; the answers and the tables."""
    answers = []
    for n, group in enumerate(_groups()):
        if isinstance(group, str):
            books.close(group.split()[1])
            continue
        subs = []
        for k, body in enumerate(group):
            se, problems = parse_event(json.dumps(body), f"http:{n}-{k}", 1)
            assert not problems
            subs.append(Submission(f"http:{n}-{k}", [se]))
        for out in serving.post_requests(books.engine, books.catalog, subs, direct=direct):
            answers.append((out.status, out.results, out.invoices, [str(p) for p in out.problems], out.conflict))
    return answers, _sourced(books, tables(books))


def _batched(batches: list[tuple]) -> tuple:
    """The requests of every import batch and the sums of their counts."""
    return (sorted(src for b in batches for src in json.loads(b[0])),
            [sum(b[k] for b in batches) for k in range(1, 5)])


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_groups_post_the_books_of_the_general_path(make_books, monkeypatch):
    attempts = Counter()
    monkeypatch.setattr(pipeline, "ATTEMPTS", attempts)
    monkeypatch.setattr("ledger.store.grouped.ATTEMPTS", attempts)
    results = []
    for direct in (True, False):
        monkeypatch.setattr(E, "BOOKS", E.BookCache())
        books = make_books()
        pipeline.remember_closed(str(books.engine.url), None)
        results.append(_run(books, direct))
        if direct:
            used = Counter(attempts)
    (answers_direct, tables_direct), (answers_general, tables_general) = results
    assert answers_direct == answers_general
    for name in tables_general:
        if name != "import_batch":  # entries: the same, in another order when a group was split
            assert sorted(tables_direct[name]) == sorted(tables_general[name]), name
    # a group whose customers' books are not all kept is posted as two batches (those customers'
    # requests first, then the others'): the same requests and counts, in more batches
    assert _batched(tables_direct["import_batch"]) == _batched(tables_general["import_batch"])
    assert len(tables_direct["import_batch"]) > len(tables_general["import_batch"])
    # the grouped path posted the usage groups whose customers' books were kept; the database's
    # check sent the re-posts and the first group after the close to the general path; the
    # unknown customer's request was posted apart (no kept book: see the batches), and refused there
    assert used["group_posted"] >= 5, used
    assert used["group_changed"] == 3, used
    assert attempts == used  # without the direct paths nothing more was attempted
    statuses = Counter(r["status"] for a in answers_general for r in a[1])
    assert statuses["quarantined"] >= 2 and statuses["duplicate"] == 1, statuses
    assert Counter(a[0] for a in answers_general)["refused"] == 2
    assert any(r.get("late") for a in answers_general for r in a[1])


def _group(prefix: str, days: float) -> list:
    """Four usage events of customers a and b, validated as one request each."""
    out = []
    for k in range(4):
        se, problems = parse_event(json.dumps(_usage(f"{prefix}-{k}", "ab"[k % 2], days + k / 10, 5 + k)),
                                   f"http:{prefix}-{k}", 1)
        assert not problems
        out.append(se)
    return out


def _applied(books, events) -> tuple:
    """A group applied over the kept books and ready to send, as a committer thread has it
    between `_apply` and `_send` (its own session and connection)."""
    from ledger.store import grouped

    session = Session(books.engine)
    pooled = books.engine.raw_connection()
    raw = pooled.driver_connection
    raw.autocommit = True
    with grouped.APPLYING:
        group = grouped._apply(raw, session, books.catalog, events, [se.source.rsplit(":", 1)[0] for se in events],
                               str(books.engine.url))
    assert group is not None
    return session, pooled, raw, group


def _sent(books, applied) -> bool:
    from ledger.store import grouped

    session, pooled, raw, group = applied
    try:
        return grouped._send(raw, session, books.catalog, group, str(books.engine.url)) is not None
    finally:
        session.close()
        pooled.close()


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
@pytest.mark.parametrize("order", ["first-then-second", "second-then-first", "first-fails"])
def test_a_group_applied_on_books_not_yet_committed(make_books, monkeypatch, order):
    """Two groups of the same customers in flight: the second is applied on the books the first
    kept before it committed. It is posted by this path only if the first committed before its
    check; otherwise its check finds the customers' rows without the first's token and it posts
    nothing (the caller then takes the general path). Either way the kept books end as the
    journal's."""
    monkeypatch.setattr(E, "BOOKS", E.BookCache())
    monkeypatch.setenv("LEDGER_CHECK_BOOK_CACHE", "1")
    books = make_books()
    db = str(books.engine.url)
    pipeline.remember_closed(db, None)
    setup = [body for body in _groups()[0]]
    subs = []
    for k, body in enumerate(setup):
        se, _ = parse_event(json.dumps(body), f"http:setup-{k}", 1)
        subs.append(Submission(f"http:setup-{k}", [se]))
    assert {o.status for o in serving.post_requests(books.engine, books.catalog, subs, direct=True)} == {"ok"}
    first = _group("first", 1)
    if order == "first-fails":  # an id already stored: the first's check refuses it in the database
        first[0] = parse_event(json.dumps(_usage("c-a", "a", 1)), "http:first-0", 1)[0]
    one = _applied(books, first)
    two = _applied(books, _group("second", 2))
    assert two[3].expect["tokens"] == [one[3].token] * 2  # built on the first's books
    if order == "second-then-first":
        assert not _sent(books, two)
        assert _sent(books, one)
    else:
        assert _sent(books, one) == (order == "first-then-second")
        assert _sent(books, two) == (order == "first-then-second")
    with books.engine.connect() as c:
        posted = {r[0][:-2] for r in c.execute(sa.text("SELECT id FROM usage_event"))}
    assert posted == {"first-then-second": {"first", "second"}, "second-then-first": {"first"},
                      "first-fails": set()}[order]
    # a failed group's books are forgotten; what stays kept is the journal's
    kept = {cid: E.BOOKS.token_of(db, cid) for cid in "ab"}
    assert kept == {cid: two[3].token if order == "first-then-second" else None for cid in "ab"}
    if order == "first-then-second":
        for cid in "ab":
            with Session(books.engine) as s:
                check_kept_book(s, E.BOOKS.peek(db, cid, kept[cid]), books.catalog.tz)
