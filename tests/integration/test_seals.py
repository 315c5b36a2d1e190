"""Seals, the close record, reopen and the audit trail (docs/design.md §6.4-6.5 and §9.2-9.3).

The tamper tests change the database behind the engine's back, as a superuser with the journal
triggers bypassed (session_replication_role = replica) on PostgreSQL, and `ledger verify` must
name the first entry that breaks the seal: a changed amount, a deleted line, an inserted entry,
a changed date.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from builders import ACME, ev, usage

from ledger.cli import cli
from ledger.services.closing import reopen_period
from ledger.errors import PeriodOrderError
from ledger.store.models import EntrySeal, JournalEntry, JournalLine, PeriodClose
from ledger.store.seals import GENESIS, chain, chain_start, entry_digest_input, verify_seals

HISTORY = "\n".join([
    ACME,
    ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="acme", topup_id="t-1", credits=1000,
       amount="20.00"),
    usage("u-1", "2026-01-10T10:00:00Z", 300),
    usage("u-2", "2026-01-20T10:00:00Z", 200),
    ev("p-1", "payment.received", "2026-01-25T10:00:00Z", customer_id="acme", amount="20.00"),
    usage("u-3", "2026-02-03T10:00:00Z", 100),
])


@pytest.fixture
def books(make_books):
    b = make_books()
    b.post(HISTORY)
    return b


def _records(books) -> list[PeriodClose]:
    with books.session() as s:
        rows = list(s.execute(sa.select(PeriodClose).order_by(PeriodClose.id)).scalars())
        s.expunge_all()
        return rows


def _verify(books) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--database-url", books.url, "verify"])
    return result.exit_code, result.output


def test_close_seals_the_period_and_records_who_when_head_and_checks(books):
    """January holds 4 entries (purchase, two days of usage, payment); its seal chains them from
    64 zeros; February's chain starts from January's seal."""
    result = books.close("2026-01")
    rec = result.record
    assert (rec.period, rec.action, rec.entries, rec.previous_seal) == ("2026-01", "close", 4, GENESIS)
    assert len(rec.seal) == 64 and rec.journal_head == 5  # February's usage entry is already posted
    assert len(json.loads(rec.checks)) == 6
    with books.session() as s:
        links = s.execute(sa.select(EntrySeal.seq, EntrySeal.entry_id).where(EntrySeal.close_id == rec.id)
                          .order_by(EntrySeal.seq)).all()
    assert [tuple(x) for x in links] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    feb = books.close("2026-02").record
    assert feb.previous_seal == rec.seal and feb.entries == 1
    code, out = _verify(books)
    assert code == 0 and "seals of 2 closed periods hold" in out, out
    trail = json.loads(CliRunner().invoke(cli, ["--database-url", books.url, "report", "audit-trail",
                                                "--format", "json"]).output)
    assert [(r["period"], r["action"], r["entries"], r["checks"]) for r in trail["rows"]] == [
        ("2026-01", "close", 4, 6), ("2026-02", "close", 1, 6)]


def test_reopen_only_the_last_closed_period_with_a_reason_then_reseal(books):
    books.close("2026-01")
    books.close("2026-02")
    with books.session() as s, pytest.raises(PeriodOrderError, match="2026-02 is closed after it"):
        reopen_period(s, "2026-01", reason="wrong rate")
    with books.session() as s, pytest.raises(ValueError, match="needs a reason"):
        reopen_period(s, "2026-02", reason="  ")
    result = CliRunner().invoke(cli, ["--database-url", books.url, "reopen", "2026-02", "--reason",
                                      "late usage from the EU region"])
    assert result.exit_code == 0, result.output
    # usage dated in February now posts in February, which is open again
    books.post(usage("u-late", "2026-02-10T10:00:00Z", 50))
    with books.session() as s:
        feb_entries = s.execute(sa.select(sa.func.count()).select_from(JournalEntry)
                                .where(JournalEntry.entry_date.between(date(2026, 2, 1), date(2026, 2, 28)))).scalar_one()
    assert feb_entries == 2
    assert books.close("2026-02").record.entries == 2
    assert [(r.period, r.action, r.reason) for r in _records(books)] == [
        ("2026-01", "close", None), ("2026-02", "close", None),
        ("2026-02", "reopen", "late usage from the EU region"), ("2026-02", "close", None)]
    assert _verify(books)[0] == 0
    result = CliRunner().invoke(cli, ["--database-url", books.url, "reopen", "2026-03", "--reason", "x"])
    assert result.exit_code == 1 and "not closed" in str(result.exception)


def test_the_stored_chain_is_the_documented_hash_of_each_entry(books):
    """The seals module docstring's definition, computed here the plain way (entry by entry,
    each entry's lines read on their own), gives the links the close stored and `chain` gives:
    seals written by one version of the engine verify under the next."""
    books.close("2026-01")
    with books.session() as s:
        h = chain_start(GENESIS, "2026-01")
        expected = []
        entries = s.execute(sa.select(JournalEntry).where(JournalEntry.entry_date >= date(2026, 1, 1),
                                                          JournalEntry.entry_date <= date(2026, 1, 31))
                            .order_by(JournalEntry.id)).scalars().all()
        for e in entries:
            lines = s.execute(sa.select(JournalLine).where(JournalLine.entry_id == e.id)).scalars().all()
            body = entry_digest_input({k: getattr(e, k) for k in ("id", "entry_date", "occurred_at", "kind", "description",
                                                                   "customer_id", "event_id", "import_id")},
                                      [{k: getattr(ln, k) for k in ("id", "account_code", "commodity", "debit", "credit",
                                                                    "customer_id", "grant_id", "invoice_number",
                                                                    "event_id")} for ln in lines])
            h = hashlib.sha256(h.encode("ascii") + b"\n" + body).hexdigest()
            expected.append((len(expected) + 1, e.id, h))
        stored = [tuple(r) for r in s.execute(sa.select(EntrySeal.seq, EntrySeal.entry_id, EntrySeal.hash)
                                              .order_by(EntrySeal.seq))]
        computed = [(x.seq, x.entry_id, x.hash) for x in chain(s, "2026-01", GENESIS)]
        seal = s.execute(sa.select(PeriodClose.seal)).scalar_one()
    assert len(expected) >= 4 and stored == computed == expected and seal == expected[-1][2]


def test_the_audit_trail_is_append_only(books):
    books.close("2026-01")
    with books.engine.connect() as c, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        c.execute(sa.text("UPDATE period_close SET by = 'someone else'"))
    with books.engine.connect() as c, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        c.execute(sa.text("DELETE FROM entry_seal"))


# --------------------------------------------------------------------------- tampering (PostgreSQL)
TAMPERING = {
    # a changed amount: both sides of the top-up's receivable and deferred lines, so it still balances
    "changed amount": ["UPDATE journal_line SET debit = debit + 100 WHERE entry_id = 1 AND debit > 0 AND commodity = 'USD'",
                       "UPDATE journal_line SET credit = credit + 100 WHERE entry_id = 1 AND account_code = '2100'"],
    "deleted line": ["DELETE FROM journal_line WHERE id = (SELECT max(id) FROM journal_line WHERE entry_id = 3)"],
    "emptied entry": ["DELETE FROM journal_line WHERE entry_id = 3"],  # an entry left without lines
    "changed date": ["UPDATE journal_entry SET entry_date = '2026-02-15' WHERE id = 2"],
    "inserted entry": [
        ("INSERT INTO journal_entry (id, entry_date, occurred_at, kind, description, customer_id, line_count) "
         "VALUES (900, '2026-01-15', '2026-01-15T00:00:00Z', 'payment', 'cash that never came', 'acme', 2)"),
        ("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, customer_id) "
         "VALUES (900, '1000', 'USD', 500, 0, 'acme'), (900, '2200', 'USD', 0, 500, 'acme')")],
}
EXPECTED = {"changed amount": (1, "was altered after the close"),
            "deleted line": (3, "was altered after the close"),
            "emptied entry": (3, "was altered after the close"),
            "changed date": (2, "no longer in the period"),
            "inserted entry": (900, "not in its seal (inserted after the close)")}


@pytest.fixture
def pg_books(pg_url, plans_catalog, tmp_path):
    """Books on a fresh PostgreSQL database only (tampering needs a superuser and triggers off)."""
    from conftest import Books

    from ledger.store.db import make_engine

    engine = make_engine(pg_url)
    yield Books(pg_url, engine, plans_catalog, tmp_path)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_tampering_behind_the_engine_is_detected_and_named(pg_books, kind):
    books = pg_books
    books.post(HISTORY)
    books.close("2026-01")
    assert _verify(books)[0] == 0
    with books.engine.begin() as c:
        c.execute(sa.text("SET LOCAL citus.propagate_set_commands = 'local'"))  # on Citus the next SET reaches the shards too
        c.execute(sa.text("SET LOCAL session_replication_role = replica"))  # superuser: triggers off
        for statement in TAMPERING[kind]:
            c.execute(sa.text(statement))
    with books.session() as s:
        [found] = verify_seals(s)
    entry, words = EXPECTED[kind]
    assert (found.period, found.entry_id) == ("2026-01", entry) and words in found.detail, found
    code, out = _verify(books)
    assert code == 1 and f"entry {entry}" in out and words in out, out


# ------------------------------------------------------------- the server's check and the walk agree
# Tampering with the stored links themselves (entry_seal), next to the journal's: the server checks
# a period whose links name its entries in order (each link from the stored one before it), the
# walk any other period; both must name the same first break.
SEAL_TAMPERING = {
    "sealed hash changed": (["UPDATE entry_seal SET hash = repeat('0', 64) WHERE seq = 2"], True,
                            (2, "was altered after the close")),
    "last sealed hash changed": (["UPDATE entry_seal SET hash = repeat('f', 64) WHERE seq = 4"], True,
                                 (4, "was altered after the close")),
    "sealed link removed": (["DELETE FROM entry_seal WHERE seq = 2"], False,
                            (2, "not in its seal (inserted after the close)")),
    "sealed links swapped": (["UPDATE entry_seal SET entry_id = 5 - entry_id WHERE seq IN (2, 3)"], False,
                             (3, "was sealed at position 2")),
}
_ALL_TAMPERING = {kind: (statements, kind in ("changed amount", "deleted line", "emptied entry"), EXPECTED[kind])
                  for kind, statements in TAMPERING.items()} | SEAL_TAMPERING


def _tamper(books, statements) -> None:
    with books.engine.begin() as c:
        c.execute(sa.text("SET LOCAL citus.propagate_set_commands = 'local'"))  # on Citus the next SET reaches the shards too
        c.execute(sa.text("SET LOCAL session_replication_role = replica"))  # superuser: triggers off
        for statement in statements:
            c.execute(sa.text(statement))


@pytest.mark.postgres
@pytest.mark.parametrize("kind", sorted(_ALL_TAMPERING))
def test_the_servers_check_and_the_walk_name_the_same_first_break(pg_books, kind):
    from ledger.store.seals import _server_break, _walk_break, latest_closes

    statements, in_server, (entry, words) = _ALL_TAMPERING[kind]
    pg_books.post(HISTORY)
    pg_books.close("2026-01")
    with pg_books.session() as s:
        rec = latest_closes(s)["2026-01"]
        start = chain_start(GENESIS, "2026-01")
        assert _server_break(s, "2026-01", rec, start) == _walk_break(s, "2026-01", rec) == (None, rec.seal)
    _tamper(pg_books, statements)
    with pg_books.session() as s:
        walked = _walk_break(s, "2026-01", rec)
        checked = _server_break(s, "2026-01", rec, start)
        assert [str(b) for b in verify_seals(s)] == [str(walked[0])]
    assert (checked is not None) == in_server and checked in (None, walked), (checked, walked)
    assert (walked[0].entry_id == entry and words in walked[0].detail), walked


@pytest.mark.postgres
def test_a_later_period_is_checked_from_the_seal_before_it(pg_books):
    """February's chain starts from January's seal: untouched, both hold; February's entry
    altered, February breaks there and January still holds."""
    pg_books.post(HISTORY)
    pg_books.close("2026-01")
    pg_books.close("2026-02")
    with pg_books.session() as s:
        assert verify_seals(s) == []
        feb = s.execute(sa.select(sa.func.max(JournalEntry.id))).scalar_one()
    _tamper(pg_books, [f"UPDATE journal_entry SET description = description || '!' WHERE id = {feb}"])
    with pg_books.session() as s:
        [found] = verify_seals(s)
    assert (found.period, found.entry_id) == ("2026-02", feb) and "was altered after the close" in found.detail


# --------------------------------------------------------------------------- the server-made bytes
_SPECIAL = '"\\\b\f\n\r\t\x01\x02\x1f\x7f\u2028é😀,\''
_CHAR = st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), st.sampled_from(_SPECIAL))


def _text(size: int, nullable: bool = True):
    text = st.text(_CHAR, max_size=size)
    return st.one_of(st.none(), text) if nullable else text


_BIG = st.integers(0, 2**63 - 1)
_LINE = st.fixed_dictionaries({
    "account_code": _text(16, False), "commodity": _text(8, False), "debit": _BIG, "credit": _BIG,
    "customer_id": _text(64), "grant_id": _text(128), "invoice_number": _text(32), "event_id": _text(128)})
_ENTRY = st.fixed_dictionaries({
    "entry_date": st.dates(date(2026, 1, 1), date(2026, 2, 2)),  # a few outside the period
    "occurred_at": st.datetimes(timezones=st.just(UTC)),
    "kind": _text(30, False), "description": _text(60, False), "customer_id": _text(64), "event_id": _text(128),
    "import_id": st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    "lines": st.lists(_LINE, max_size=3)})


@pytest.fixture
def pg_raw(pg_url):
    """A psycopg connection to a fresh PostgreSQL database, with copies of the journal's two
    tables (their columns, types and indexes; none of their checks, foreign keys or triggers)."""
    from ledger.store.db import make_engine

    engine = make_engine(pg_url)
    raw = engine.raw_connection()
    with raw.driver_connection.cursor() as cur:
        cur.execute("CREATE TABLE e_t (LIKE journal_entry INCLUDING INDEXES); CREATE TABLE l_t (LIKE journal_line INCLUDING INDEXES)")
    raw.driver_connection.commit()
    yield raw.driver_connection
    raw.close()
    engine.dispose()


@pytest.mark.postgres
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, max_size=5), seed=st.randoms(use_true_random=False))
def test_the_server_writes_each_entrys_canonical_bytes_as_python_does(pg_raw, entries, seed):
    """On PostgreSQL `chain` hashes bytes the server writes (`chain_copy_sql`): for any text
    (quotes, backslashes, every control character, non-ASCII), integers up to 2**63 - 1, NULLs,
    instants with and without microseconds, entries without lines, lines stored out of id
    order and entries outside the period, they are `entry_digest_input`'s bytes, entry by
    entry, in id order."""
    from ledger.store.seals import chain_copy_sql, copy_bodies

    line_id = iter(range(1, 1000))
    rows, lines = [], []
    for entry_id, e in enumerate(entries, start=1):
        rows.append({k: v for k, v in e.items() if k != "lines"} | {"id": entry_id, "line_count": len(e["lines"])})
        lines += [ln | {"id": next(line_id), "entry_id": entry_id} for ln in e["lines"]]
    seed.shuffle(lines)
    pg_raw.rollback()  # whatever an earlier example left
    with pg_raw.cursor() as cur:
        cur.execute("TRUNCATE e_t, l_t")
        for table, items in (("e_t", rows), ("l_t", lines)):
            if items:
                cols = list(items[0])
                cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                                [[item[c] for c in cols] for item in items])
        got = list(copy_bodies(pg_raw, chain_copy_sql(date(2026, 1, 1), date(2026, 1, 31), "e_t", "l_t")))
    pg_raw.rollback()
    expected = [(r["id"], entry_digest_input(r, [ln for ln in lines if ln["entry_id"] == r["id"]]))
                for r in rows if r["entry_date"] <= date(2026, 1, 31)]
    assert got == expected
