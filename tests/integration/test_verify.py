"""`verify_books` (ledger verify): the invariants on the session's connection and, on PostgreSQL,
the seals at the same time on a second connection reading the same snapshot; the findings are
those of the two checks run one after the other on one connection."""

from __future__ import annotations

import os

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from builders import ACME, ev, usage
from sqlmodel import Session

import ledger.services.verifying as verifying
from ledger.core.entries import EntryDraft
from ledger.services.verifying import verify_books
from ledger.store.db import one_snapshot
from ledger.store.invariants import check_all
from ledger.store.seals import SnapshotUnavailable, export_snapshot, verify_seals, verify_seals_in_snapshot
from ledger.store.writer import insert_entries

HISTORY = "\n".join([
    ACME,
    ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="acme", topup_id="t-1", credits=1000,
       amount="20.00"),
    usage("u-1", "2026-01-10T10:00:00Z", 300),
    usage("u-2", "2026-01-20T10:00:00Z", 200),
    usage("u-3", "2026-02-03T10:00:00Z", 100),
])


def _one_connection(books) -> tuple[list[str], list[str]]:
    """The invariants, then the seals, on one session: what verify must find."""
    with books.session() as s:
        one_snapshot(s)
        try:
            return [str(v) for v in check_all(s, tz=books.catalog.tz)], [str(b) for b in verify_seals(s)]
        finally:
            s.rollback()


def _verify(books):
    with books.session() as s:
        found = verify_books(s, books.catalog)
    return [str(v) for v in found.violations], [str(b) for b in found.breaks], found.sealed


def _break_the_books(books) -> None:
    """Revenue no invoice billed (invariant 4); on PostgreSQL also January's first entry altered
    behind the close (its seal)."""
    t = datetime(2026, 2, 4, tzinfo=timezone.utc)
    with Session(books.engine) as s:
        insert_entries(s, [EntryDraft(date(2026, 2, 4), t, "manual", "unbilled revenue", "acme")
                           .dr("1000", "USD", 1_00).cr("4010", "USD", 1_00)])
        s.commit()
    if books.url.startswith("postgresql"):
        with books.engine.begin() as c:
            c.execute(sa.text("SET LOCAL citus.propagate_set_commands = 'local'"))  # on Citus the next SET reaches the shards too
            c.execute(sa.text("SET LOCAL session_replication_role = replica"))  # superuser: triggers off
            c.execute(sa.text("UPDATE journal_entry SET description = description || '!' WHERE id = 1"))


def test_verify_finds_what_the_checks_find_one_after_the_other(books, monkeypatch):
    """Sound books, then broken ones: the same violations and breaks as the two checks on one
    connection; on PostgreSQL the seals were checked on a second connection."""
    seconds: list[str] = []

    def spy(engine, snapshot):
        seconds.append(snapshot)
        return verify_seals_in_snapshot(engine, snapshot)

    monkeypatch.setattr(verifying, "verify_seals_in_snapshot", spy)
    books.post(HISTORY)
    books.close("2026-01")
    assert _verify(books) == ([], [], 1)
    _break_the_books(books)
    violations, breaks = _one_connection(books)
    assert violations and (breaks or books.url.startswith("sqlite"))
    assert _verify(books) == (violations, breaks, 1)
    assert len(seconds) == (2 if books.url.startswith("postgresql") else 0)


@pytest.mark.postgres
def test_without_a_second_connection_the_seals_are_checked_on_the_first(pg_url, plans_catalog, tmp_path, monkeypatch):
    from conftest import Books

    from ledger.store.db import make_engine

    def unavailable(engine, snapshot):
        raise SnapshotUnavailable("no connection left")

    books = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    try:
        books.post(HISTORY)
        books.close("2026-01")
        _break_the_books(books)
        expected = _one_connection(books)
        monkeypatch.setattr(verifying, "verify_seals_in_snapshot", unavailable)
        assert _verify(books) == (*expected, 1)
        with Session(books.engine.connect()) as s:  # bound to one connection: no second one
            with pytest.raises(SnapshotUnavailable):
                verify_seals_in_snapshot(s.get_bind(), "00000003-00000002-1")
    finally:
        books.engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(os.environ.get("LEDGER_TEST_CITUS") == "1",
                    reason="Citus has no distributed snapshot: an exported snapshot holds on the coordinator only")
def test_the_second_connection_reads_the_snapshot_of_the_first(pg_url, plans_catalog, tmp_path):
    """An entry altered in the closed period after the snapshot was taken is not seen by the
    seals checked in that snapshot; it is by a verification that starts afterwards."""
    from conftest import Books

    from ledger.store.db import make_engine

    books = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    try:
        books.post(HISTORY)
        books.close("2026-01")
        with books.session() as first:
            one_snapshot(first)
            snapshot = export_snapshot(first)
            _break_the_books(books)
            assert verify_seals_in_snapshot(books.engine, snapshot) == []
            first.rollback()
        with books.session() as s:
            [found] = verify_seals(s)
        assert found.entry_id == 1 and "was altered after the close" in found.detail
    finally:
        books.engine.dispose()
