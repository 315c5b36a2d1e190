"""Rows of a customer's books name their customer, and the customer locks on Citus.

Every join between two tables of a customer's books also equates the customers
(`ledger.store.keys`), which is what lets Citus run it shard by shard. `ledger verify` checks the
premise (`check_customer_keys`): a journal line naming another customer than its entry, an entry
naming none, an invoice line naming another customer than its invoice are reported. The journal
is append-only, so the broken rows are posted by hand through the writer, as in
test_invariants.py; invoice lines may be updated. On Citus (`make test-citus`) the distribution
column is NOT NULL and the foreign keys name the customer, so there such rows cannot be written
at all, and those tests check the refusal instead.

`lock_customer_rows` takes the customer locks of docs/design.md §6.6: one statement on
PostgreSQL; on Citus, which refuses FOR UPDATE over many shards, one statement per customer in
the same order. Its Citus path is run here on PostgreSQL too (``is_citus`` made true), and holds
the same locks on the same rows.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from builders import ACME, ev, usage
from sqlmodel import Session

import ledger.store.events as events
from ledger.core.entries import EntryDraft
from ledger.store.closing import lock_for_close
from ledger.store.db import is_citus
from ledger.store.events import lock_customer_rows
from ledger.store.invariants import check_customer_keys
from ledger.store.models import Customer, InvoiceLine, JournalEntry
from ledger.store.staging import lock_staged_customers
from ledger.store.writer import insert_entries

BETA = ev("c-beta", "customer.created", "2026-01-01T00:00:00Z", customer_id="beta", name="Beta", currency="USD")
HISTORY = "\n".join([
    ACME, BETA,
    ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="acme", topup_id="t-1", credits=1000,
       amount="20.00"),
    ev("t-2", "topup.purchased", "2026-01-06T10:00:00Z", customer_id="beta", topup_id="t-2", credits=500,
       amount="10.00"),
    usage("u-1", "2026-01-10T10:00:00Z", 300),
    usage("u-2", "2026-01-11T10:00:00Z", 50, customer="beta"),
])
T = datetime(2026, 1, 20, tzinfo=timezone.utc)


def _post_by_hand(books, draft: EntryDraft) -> int:
    """Post ``draft`` through the writer (no engine rule in between); its entry id."""
    with Session(books.engine) as s:
        insert_entries(s, [draft])
        s.commit()
        return s.execute(sa.select(sa.func.max(JournalEntry.id))).scalar_one()


def _refused_on_citus(books, draft: EntryDraft, *, postgresql_too: bool = False) -> bool:
    """On Citus (and on any PostgreSQL with ``postgresql_too``: the key of a line's (customer,
    entry), migration 0013): the database refuses ``draft`` (True), and the test ends there."""
    import psycopg

    if not (is_citus(books.engine) or (postgresql_too and books.url.startswith("postgresql"))):
        return False
    with pytest.raises((sa.exc.DBAPIError, psycopg.Error)):
        _post_by_hand(books, draft)
    return True


def test_sound_books_name_their_customers_everywhere(books):
    books.post(HISTORY)
    with books.session() as s:
        assert check_customer_keys(s) == []
    assert books.verify() == []


def test_lines_naming_another_customer_than_their_entry_are_reported(books):
    """Both lines of one of acme's entries name beta: the lines are reported, and the entry
    is then one without lines of its own (the join by customer and entry id finds none)."""
    books.post(HISTORY)
    draft = (EntryDraft(date(2026, 1, 20), T, "manual", "misfiled", "acme")
             .dr("1000", "USD", 100, customer_id="beta").cr("2200", "USD", 100, customer_id="beta"))
    if _refused_on_citus(books, draft, postgresql_too=True):
        return
    entry = _post_by_hand(books, draft)
    assert [str(v) for v in books.verify()] == [
        "invariant 1 (journal): 1 entries have no lines",
        f"invariant 1 (journal): 2 lines do not name their entry's customer (the first in entry {entry})"]


def test_an_entry_naming_no_customer_is_reported(books):
    books.post(HISTORY)
    draft = EntryDraft(date(2026, 1, 20), T, "manual", "no customer").dr("1000", "USD", 100).cr("2200", "USD", 100)
    if _refused_on_citus(books, draft):
        return
    entry = _post_by_hand(books, draft)
    with books.session() as s:
        assert [str(v) for v in check_customer_keys(s)] == [
            f"invariant 1 (journal): 1 entries name no customer (the first: entry {entry})",
            f"invariant 1 (journal): 2 lines do not name their entry's customer (the first in entry {entry})"]


def test_an_invoice_line_naming_another_customer_is_reported(books):
    books.post(HISTORY)
    with Session(books.engine) as s:
        number = s.execute(sa.select(InvoiceLine.invoice_number).where(InvoiceLine.customer_id == "beta")).scalar_one()
        if is_citus(books.engine):  # the distribution column: moving a row to another customer is refused
            with pytest.raises(sa.exc.DBAPIError):
                s.execute(sa.update(InvoiceLine).where(InvoiceLine.invoice_number == number).values(customer_id="acme"))
                s.commit()
            return
        s.execute(sa.update(InvoiceLine).where(InvoiceLine.invoice_number == number).values(customer_id="acme"))
        s.commit()
    assert [str(v) for v in books.verify()] == [
        f"invariant 5 (invoice lines): 1 lines do not name their document's customer (the first in document {number})"]


# --------------------------------------------------------------------------- customer locks
def _spy(engine, monkeypatch) -> tuple[list[str], list[tuple[str, int]]]:
    """(statements with FOR UPDATE run through SQLAlchemy, (statement, times) of the
    statements pipelined by psycopg's executemany)."""
    import psycopg

    together: list[str] = []
    each: list[tuple[str, int]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def spy(conn, cursor, statement, parameters, context, executemany):
        if "FOR UPDATE" in statement:
            together.append(statement)

    executemany = psycopg.Cursor.executemany

    def counted(self, query, params_seq, **kw):
        params_seq = list(params_seq)
        each.append((query, len(params_seq)))
        return executemany(self, query, params_seq, **kw)

    monkeypatch.setattr(psycopg.Cursor, "executemany", counted)
    return together, each


def _holds_lock(url: str, customer: str) -> bool:
    """Whether another connection finds ``customer``'s row locked (FOR UPDATE NOWAIT)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
        try:
            c.execute("SELECT id FROM customer WHERE id = %s FOR UPDATE NOWAIT", [customer])
        except psycopg.errors.LockNotAvailable:
            return True
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("citus", [False, True])
def test_customer_locks_are_the_same_rows_in_the_same_order_either_way(pg_url, plans_catalog, tmp_path, monkeypatch,
                                                                       citus):
    """A posting's customers, a staged import's and a close's (every customer): the rows in id
    order, locked until the transaction ends; on Citus's path one FOR UPDATE per customer
    (`LOCK_ONE`, naming its id) and none over many; unknown ids are left out."""
    from conftest import Books

    from ledger.store.db import make_engine

    engine = make_engine(pg_url)
    books = Books(pg_url, engine, plans_catalog, tmp_path)
    ids = ["acme", "beta", "Zed", "a-b", "a_b", "B2"]
    books.post("\n".join(ev(f"c-{c}", "customer.created", "2026-01-01T00:00:00Z", customer_id=c, name=c,
                            currency="USD") for c in ids))
    if citus:
        monkeypatch.setattr(events, "is_citus", lambda _s: True)
    elif is_citus(engine):
        pytest.skip("on Citus one statement over many customers is refused (the next test)")
    wanted = ["beta", "Zed", "a_b", "nobody", "acme"]
    with Session(engine) as s:
        every = list(s.execute(sa.select(Customer.id).order_by(Customer.id)).scalars())
        some = [c for c in every if c in wanted]
    together, each = _spy(engine, monkeypatch)

    def statements(n: int) -> tuple[int, list[tuple[str, int]]]:
        found = (len(together), list(each))
        together.clear()
        each.clear()
        return found, ((0, [(events.LOCK_ONE, n)]) if citus else (1, []))

    with Session(engine) as s:
        rows = lock_customer_rows(s, Customer, Customer.id.in_(wanted))
        assert [r.id for r in rows] == some and all(isinstance(r, Customer) for r in rows)
        assert [c for c in every if _holds_lock(pg_url, c)] == some
        s.rollback()
    found, expected = statements(len(some))
    assert found == expected
    with Session(engine) as s:
        s.execute(sa.text("CREATE TEMPORARY TABLE usage_stage (customer_id text) ON COMMIT DROP"))
        s.execute(sa.text("INSERT INTO usage_stage VALUES ('Zed'), ('acme'), ('Zed'), ('ghost')"))
        assert [r.id for r in lock_staged_customers(s)] == [c for c in every if c in ("Zed", "acme")]
        s.rollback()
    found, expected = statements(2)
    assert found == expected
    with Session(engine) as s:
        assert lock_for_close(s) == every
        assert all(_holds_lock(pg_url, c) for c in every)
        s.rollback()
    found, expected = statements(len(every))
    assert found == expected
    assert not any(_holds_lock(pg_url, c) for c in every)
    engine.dispose()


@pytest.mark.postgres
def test_on_citus_one_statement_over_many_customers_is_refused(pg_url):
    """Why `lock_customer_rows` locks one customer a statement there (`make test-citus`)."""
    from ledger.store.db import make_engine

    engine = make_engine(pg_url)
    if not is_citus(engine):
        engine.dispose()
        pytest.skip("needs the books distributed by Citus: run `make test-citus`")
    with Session(engine) as s:
        s.add_all([Customer(id=c, name=c, currency="USD", tax_rate="0", address="[]", locale="en",
                            created_at=T) for c in ("acme", "beta", "gamma", "delta")])
        s.commit()
        with pytest.raises(sa.exc.DBAPIError, match="FOR UPDATE"):
            s.execute(sa.select(Customer.id).order_by(Customer.id).with_for_update()).all()
        s.rollback()
        assert lock_customer_rows(s, Customer.id) == sorted(["acme", "beta", "delta", "gamma"])
        s.rollback()
    engine.dispose()


def test_a_usage_event_naming_another_customers_entry_is_reported(books):
    """The usage rows have no foreign keys on PostgreSQL: an event pointed at an entry of
    another customer (or at none that exists) is what `check_customer_keys` reports."""
    books.post(HISTORY)
    with Session(books.engine) as s:
        beta_entry = s.execute(sa.select(sa.func.min(JournalEntry.id)).where(JournalEntry.customer_id == "beta")).scalar_one()
        s.execute(sa.text("UPDATE usage_event SET entry_id = :e WHERE id = 'u-1'"), {"e": beta_entry})
        s.commit()
    with books.session() as s:
        assert [str(v) for v in check_customer_keys(s)] == [
            "invariant 1 (usage): 1 usage events name no entry of their customer (the first: u-1)"]
