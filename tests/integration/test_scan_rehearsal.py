"""The first pass of a chunked import rehearses the posting's checks on the chunks to come
(`ledger.services.scanning`): what a chunk would be refused for, given the books and the
earlier chunks, is reported before anything is posted; what the earlier chunks define (a
customer, a grant id, a voidable event) counts for the later ones, as when they are posted."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ledger.errors import InvalidInputError
from ledger.services.importing import import_files
from ledger.store.models import Event, UsageEvent


def _ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def _customer(i: int) -> str:
    return _ev(f"c{i}", "customer.created", "2026-03-01T00:00:00Z", customer_id=f"cus{i}", name=f"C{i}",
               currency="USD")


def _grant(i: int, gid: str, eid: str | None = None) -> str:
    return _ev(eid or f"g{i}", "credits.granted", "2026-03-01T01:00:00Z", customer_id=f"cus{i}", grant_id=gid,
               credits=1000, expires_at="2027-03-01T00:00:00Z", reason="trial")


def _use(n: int, i: int = 0, when: str = "2026-03-02T00:00:00Z") -> str:
    return _ev(f"u{n}", "usage.recorded", when, customer_id=f"cus{i}", credits=1)


def _import(books, lines: list[str], chunk_size: int = 3):
    path = books.write("\n".join(lines))
    with books.session() as s:
        return path, import_files(s, books.catalog, [path], chunk_size=chunk_size)


def _stored(books) -> int:
    return books.count(Event) + books.count(UsageEvent)


def test_a_customer_created_in_a_later_chunk_is_refused_before_anything_is_posted(make_books):
    books = make_books()
    lines = [_customer(0), _grant(0, "p0"), _use(0), _use(1), _use(2, 1), _use(3, 1), _customer(1), _use(4)]
    with pytest.raises(InvalidInputError) as info:
        _import(books, lines)
    got = [(p.line, p.field, p.value) for p in info.value.problems]
    assert got == [(5, "customer_id", "cus1")]  # named once, at its first event
    assert "comes in a later chunk" in info.value.problems[0].message and ":7)" in info.value.problems[0].message
    assert info.value.committed == 0 and _stored(books) == 0
    # in one chunk the posting applies customers first: accepted
    _, summary = _import(books, lines, chunk_size=len(lines))
    assert summary.posted + summary.quarantined == len(lines)  # (cus1 has no credits)


def test_what_earlier_chunks_define_counts_for_later_ones(make_books):
    books = make_books()
    lines = [_customer(0), _grant(0, "p0"), _use(0), _use(1), _use(2), _use(3),
             _ev("v1", "event.voided", "2026-03-03T00:00:00Z", target_event_id="u1", reason="twice"),
             _use(4)]
    _, summary = _import(books, lines)
    assert summary.posted == len(lines) and books.balance("9200", "CREDIT") == 4


def test_every_check_of_later_chunks_is_reported_in_the_first_pass(make_books):
    books = make_books()
    lines = [_customer(0), _grant(0, "p0"), _use(0), _use(1), _use(2),
             _grant(0, "p0", eid="g-again"),  # line 6: a grant id of an earlier chunk
             _ev("v1", "event.voided", "2026-03-03T00:00:00Z", target_event_id="u9", reason="x"),  # line 7: later
             _use(3, when="2026-02-01T00:00:00Z"),  # line 8: before cus0 was created
             _use(4), _use(9)]
    with pytest.raises(InvalidInputError) as info:
        _import(books, lines)
    assert [(p.line, p.field) for p in info.value.problems] == [
        (6, "grant_id"), (7, "target_event_id"), (8, "occurred_at")]
    assert "already exists" in info.value.problems[0].message
    assert info.value.problems[1].message == "unknown event (nothing with this id was imported)"
    assert _stored(books) == 0


def test_stored_events_are_not_checked_again(make_books):
    """A re-run after a partial import: events stored by the first run are duplicates, even
    where the catalog has changed since (their action is no longer in the rate card)."""
    books = make_books()
    lines = [_customer(0), _grant(0, "p0")] + [
        _ev(f"a{n}", "usage.recorded", "2026-03-02T00:00:00Z", customer_id="cus0", action="SUMMARIZE_SHORT",
            quantity=1) for n in range(4)]
    _, first = _import(books, lines, chunk_size=len(lines))
    assert first.posted == 6
    books.catalog.model.rate_card.pop("SUMMARIZE_SHORT")
    try:
        _, again = _import(books, lines)
    finally:
        books.catalog.model.rate_card["SUMMARIZE_SHORT"] = 10
    assert (again.posted, again.duplicates) == (0, 6)
    with books.session() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(UsageEvent)).scalar_one() == 4
