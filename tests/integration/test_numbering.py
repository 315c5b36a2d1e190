"""Gap-free document numbers counted in memory within a transaction (`ledger.store.numbering`):
the row is read and locked once per series-year, the last number written back at COMMIT; a
rollback, or a savepoint rolled back, gives its numbers back; concurrent transactions wait
for one another on the row."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ledger.store.db import make_engine
from ledger.store.models import DocumentSequence
from ledger.store.numbering import take_number


def _stored(engine) -> dict[tuple[str, int], int]:
    with Session(engine) as s:
        return {(r.series, r.year): r.last_number for r in s.execute(sa.select(DocumentSequence)).scalars()}


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_numbers_follow_one_another_and_the_last_is_stored_at_commit(engine):
    with Session(engine) as s:
        taken = [take_number(s, "INV", 2026) for _ in range(3)] + [take_number(s, "CN", 2026),
                                                                     take_number(s, "INV", 2027)]
        s.commit()
    assert taken == [("INV-2026-000001", 1), ("INV-2026-000002", 2), ("INV-2026-000003", 3),
                     ("CN-2026-000001", 1), ("INV-2027-000001", 1)]
    assert _stored(engine) == {("INV", 2026): 3, ("CN", 2026): 1, ("INV", 2027): 1}
    with Session(engine) as s:  # the next transaction goes on from the stored number
        assert take_number(s, "INV", 2026) == ("INV-2026-000004", 4)
        s.commit()
    assert _stored(engine)[("INV", 2026)] == 4


def test_a_rolled_back_transaction_gives_its_numbers_back(engine):
    with Session(engine) as s:
        take_number(s, "INV", 2026)
        s.commit()
        take_number(s, "INV", 2026)
        take_number(s, "INV", 2026)
        s.rollback()
        assert take_number(s, "INV", 2026) == ("INV-2026-000002", 2)  # same session, new transaction
        s.commit()
    assert _stored(engine)[("INV", 2026)] == 2


def test_a_session_closed_without_commit_stores_nothing(engine):
    with Session(engine) as s:
        take_number(s, "INV", 2026)
    assert _stored(engine) == {}


@pytest.mark.postgres
def test_a_savepoint_rolled_back_gives_back_the_numbers_taken_inside_it(pg_url):
    engine = make_engine(pg_url)
    try:
        with Session(engine) as s:
            assert take_number(s, "INV", 2026)[1] == 1
            sp = s.begin_nested()
            assert [take_number(s, "INV", 2026)[1] for _ in range(2)] == [2, 3]
            assert take_number(s, "CN", 2026)[1] == 1  # a series first locked inside the savepoint
            sp.rollback()
            assert take_number(s, "INV", 2026)[1] == 2
            assert take_number(s, "CN", 2026)[1] == 1
            with s.begin_nested():  # a released savepoint keeps its numbers
                assert take_number(s, "INV", 2026)[1] == 3
            s.commit()
        assert _stored(engine) == {("INV", 2026): 3, ("CN", 2026): 1}
        with Session(engine) as s:  # the transaction's first number taken inside a savepoint
            s.execute(sa.select(1))
            sp = s.begin_nested()
            assert take_number(s, "INV", 2026)[1] == 4
            sp.rollback()
            assert take_number(s, "INV", 2026)[1] == 4
            s.commit()
        assert _stored(engine)[("INV", 2026)] == 4
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_concurrent_transaction_waits_for_the_row_and_goes_on_after_its_numbers(pg_url):
    engine = make_engine(pg_url)
    try:
        with Session(engine) as s:  # the row exists, so both transactions lock the same one
            take_number(s, "INV", 2026)
            s.commit()
        first = Session(engine)
        assert take_number(first, "INV", 2026)[1] == 2
        got: list[int] = []

        def second() -> None:
            with Session(engine) as s:
                got.append(take_number(s, "INV", 2026)[1])
                s.commit()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert got == []  # waiting for the first transaction's lock on the row
        assert take_number(first, "INV", 2026)[1] == 3
        first.commit()
        first.close()
        t.join(10)
        assert got == [4]
        assert _stored(engine)[("INV", 2026)] == 4
    finally:
        engine.dispose()
