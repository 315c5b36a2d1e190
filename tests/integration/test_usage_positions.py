"""Usage attribution without per-event draw rows: each usage row's place in its consumption
entry's drawdown stream, the entry's Dr 9100 lines in line order, and the view ``usage_draw``
(migration 0011) that gives every event's draws from them; the migration converts books written
with the old table, and the downgrade restores it, without changing any event's attribution.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command

from ledger.store.db import alembic_config

SETUP = [
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "name": "One", "currency": "USD"},
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "grant_id": "promo-long", "credits": 100, "expires_at": "2027-03-01T00:00:00Z", "reason": "trial"},
]
# promo-short becomes usable at noon and expires first, so it is drawn before promo-long: the
# day's stream is promo-long 30, promo-short 20, promo-long 15
DAY = [
    {"id": "u1", "type": "usage.recorded", "occurred_at": "2026-03-02T10:00:00Z", "customer_id": "cus_1", "credits": 30},
    {"id": "g2", "type": "credits.granted", "occurred_at": "2026-03-02T12:00:00Z", "customer_id": "cus_1",
     "grant_id": "promo-short", "credits": 20, "expires_at": "2026-04-01T00:00:00Z", "reason": "goodwill"},
    {"id": "u2", "type": "usage.recorded", "occurred_at": "2026-03-02T14:00:00Z", "customer_id": "cus_1", "credits": 25},
    {"id": "u3", "type": "usage.recorded", "occurred_at": "2026-03-02T16:00:00Z", "customer_id": "cus_1", "credits": 10},
]
EXPECTED = [("u1", "promo-long", 30), ("u2", "promo-long", 5), ("u2", "promo-short", 20), ("u3", "promo-long", 10)]


def _jsonl(events: list[dict]) -> str:
    return "\n".join(json.dumps(e) for e in events)


def _draws(conn) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(sa.text("SELECT usage_event_id, grant_id, units FROM usage_draw")))


def test_a_grant_drawn_again_after_another_gets_its_own_line_and_every_event_its_draws(books):
    """The view gives each event's draws exactly when the day's stream returns to a grant."""
    books.post(_jsonl(SETUP + DAY))
    with books.engine.connect() as c:
        assert _draws(c) == EXPECTED
        segments = c.execute(sa.text(
            "SELECT l.grant_id, l.debit FROM journal_line l JOIN journal_entry e ON e.id = l.entry_id "
            "WHERE e.kind = 'consumption' AND l.account_code = '9100' AND l.debit > 0 ORDER BY l.id")).all()
        starts = dict(c.execute(sa.text("SELECT id, draw_start FROM usage_event")).all())
    assert [tuple(s) for s in segments] == [("promo-long", 30), ("promo-short", 20), ("promo-long", 15)]
    assert starts == {"u1": 0, "u2": 30, "u3": 55}


def test_a_void_of_usage_returns_the_units_to_the_grants_it_drew_from(books):
    """A stored usage event voided later gives its draws back grant by grant (the store reads
    them from the entry's lines)."""
    books.post(_jsonl(SETUP + DAY))
    books.post(_jsonl([{"id": "v2", "type": "event.voided", "occurred_at": "2026-03-03T09:00:00Z",
                        "target_event_id": "u2", "reason": "test"}]))
    assert books.balance("9100", "CREDIT", grant="promo-short") == 20
    assert books.balance("9100", "CREDIT", grant="promo-long") == 100 - 40


def test_downgrade_restores_the_table_and_the_upgrade_converts_it_back(books):
    """Down to 0010 the view becomes the table with the same rows; up again the rows convert
    back to positions, including an old entry whose lines cannot give its events' draws (two
    events each drawing from both grants of one line pair), which keeps its stored draws."""
    books.post(_jsonl(SETUP + DAY))
    with books.engine.begin() as c:
        command.downgrade(alembic_config(c), "0010")
    with books.engine.begin() as c:
        assert "usage_draw" in sa.inspect(c).get_table_names()
        assert _draws(c) == EXPECTED
        # an old-style entry: lines summed per grant, events interleaving both grants
        entry = c.execute(sa.text(
            "INSERT INTO journal_entry (entry_date, occurred_at, kind, description, customer_id) "
            "VALUES ('2026-03-05', '2026-03-05 10:00:00+00:00', 'consumption', 'old', 'cus_1') RETURNING id")).scalar_one()
        for account, debit, credit, grant in (("9100", 7, 0, "promo-long"), ("9200", 0, 7, "promo-long"),
                                              ("9100", 3, 0, "promo-short"), ("9200", 0, 3, "promo-short")):
            c.execute(sa.text("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit, "
                              "customer_id, grant_id) VALUES (:e, :a, 'CREDIT', :d, :c, 'cus_1', :g)"),
                      {"e": entry, "a": account, "d": debit, "c": credit, "g": grant})
        for uid, at, draws in (("o1", "2026-03-05 10:00:00+00:00", (("promo-long", 3), ("promo-short", 2))),
                               ("o2", "2026-03-05 11:00:00+00:00", (("promo-short", 1), ("promo-long", 4)))):
            c.execute(sa.text(
                "INSERT INTO usage_event (id, customer_id, occurred_at, credits, content_hash, status, late, entry_id, "
                "source, overage_units) VALUES (:id, 'cus_1', :at, 5, :h, 'posted', false, :e, 'old.csv:1', 0)"),
                {"id": uid, "at": at, "h": "0" * 64, "e": entry})
            for gid, units in draws:
                c.execute(sa.text("INSERT INTO usage_draw VALUES (:u, :g, 'cus_1', :n)"), {"u": uid, "g": gid, "n": units})
        before = _draws(c)
    with books.engine.begin() as c:
        command.upgrade(alembic_config(c), "head")
    with books.engine.connect() as c:
        assert "usage_draw" not in sa.inspect(c).get_table_names()
        assert _draws(c) == before
        legacy = sorted(tuple(r) for r in c.execute(sa.text("SELECT usage_event_id, grant_id, units FROM usage_draw_legacy")))
        starts = dict(c.execute(sa.text("SELECT id, draw_start FROM usage_event")).all())
    assert legacy == [("o1", "promo-long", 3), ("o1", "promo-short", 2), ("o2", "promo-long", 4), ("o2", "promo-short", 1)]
    assert starts == {"u1": 0, "u2": 30, "u3": 55, "o1": None, "o2": None}


def _books_0016(c) -> dict[str, tuple]:
    """Each usage row at revision 0016: its attribution (usage_draw), stored hash and source."""
    draws: dict[str, list] = {}
    for eid, gid, units in c.execute(sa.text("SELECT usage_event_id, grant_id, units FROM usage_draw")):
        draws.setdefault(eid, []).append((gid, int(units)))
    rows = c.execute(sa.text("SELECT id, content_hash, source, entry_id, draw_start FROM usage_event")).all()
    return {i: (sorted(draws.get(i, [])), h, src, e, d) for i, h, src, e, d in rows}


def _books_now(books) -> dict[str, tuple]:
    """The same at head: the hash and source given back from the slim row (`usage_rows`)."""
    from ledger.store import usage_rows

    with books.session() as s:
        draws: dict[str, list] = {}
        for eid, gid, units in s.execute(sa.text("SELECT usage_event_id, grant_id, units FROM usage_draw")):
            draws.setdefault(eid, []).append((gid, int(units)))
        facts = usage_rows.stored_usage_facts(s, sa.true())
        rows = s.execute(sa.text("SELECT id, entry_id, draw_start FROM usage_event")).all()
    return {i: (sorted(draws.get(i, [])), *facts[i], e, d) for i, e, d in rows}


def test_0017_keeps_every_usage_events_attribution_hash_and_source(books):
    """Books at 0016 (two files in one import, a CSV, a row of no batch, an instant given with an
    offset, hashed with it as 0016 did) keep through the upgrade to 0017 every event's draws,
    entry and place, its source as given back from batch, file number and line (or usage_source),
    and its hash (a UTC instant's as stored; an offset's now that of its instant in UTC); the
    downgrade restores the source column."""
    import hashlib

    from ledger.events import UsageRecorded, canonical_json, content_hash
    from ledger.services.importing import import_files

    first, second = books.write(_jsonl(SETUP), ".jsonl"), books.write(_jsonl(DAY), ".jsonl")
    with books.session() as s:
        import_files(s, books.catalog, [first, second])
    books.post("event_id,customer_id,occurred_at,credits\nk1,cus_1,2026-03-04T10:00:00Z,2\n"
               "k2,cus_1,2026-03-04T13:00:00+02:00,3\n", ".csv")
    with books.engine.begin() as c:
        command.downgrade(alembic_config(c), "0016")
    offset = UsageRecorded.model_validate_json(json.dumps({"id": "k2", "type": "usage.recorded", "customer_id": "cus_1",
                                                           "occurred_at": "2026-03-04T13:00:00+02:00", "credits": 3}))
    with books.engine.begin() as c:  # as 0016 wrote them: the offset in the hash, a row of no batch
        c.execute(sa.text("UPDATE usage_event SET content_hash = :h WHERE id = 'k2'"),
                  {"h": hashlib.sha256(canonical_json(offset).encode()).hexdigest()})
        c.execute(sa.text("UPDATE usage_event SET import_id = NULL, source = 'old.csv:7' WHERE id = 'u3'"))
        before = _books_0016(c)
    assert before["u1"][2] == f"{second}:1" and before["u2"][2] == f"{second}:3" and before["k2"][2].endswith(".csv:3")
    assert before["u1"][0] == [("promo-long", 30)] and before["u2"][0] == [("promo-long", 5), ("promo-short", 20)]
    with books.engine.begin() as c:
        command.upgrade(alembic_config(c), "head")
    after = _books_now(books)
    assert sorted(after) == sorted(before) == ["k1", "k2", "u1", "u2", "u3"]
    for i, (draws, h, src, entry, start) in before.items():
        assert after[i] == (draws, content_hash(offset) if i == "k2" else h, src, entry, start), i
    assert content_hash(offset) != before["k2"][1]
    with books.engine.begin() as c:
        kept = c.execute(sa.text("SELECT id, source FROM usage_source")).all()
        command.downgrade(alembic_config(c), "0016")
        again = _books_0016(c)
    assert [tuple(r) for r in kept] == [("u3", "old.csv:7")]
    assert {i: v[2] for i, v in again.items()} == {i: v[2] for i, v in before.items()}
    assert {i: v[0] for i, v in again.items()} == {i: v[0] for i, v in before.items()}
