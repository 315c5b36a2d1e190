"""The set-based usage import (`ledger.services.bulk_usage`, PostgreSQL) gives the same books as
the general rules: random histories (every business event type, hard caps, expiries, month
boundaries with subscriptions, overage, duplicates on a re-import, voids and late business
events after it) imported twice, once with the usage CSV staged and once through the general
path, give identical journals (ids included), usage rows, usage attribution, quarantine,
documents, customers' cursors and seals. On SQLite every import takes the general path.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ledger.catalog import load_catalog
from ledger.services.closing import close_period
from ledger.services.importing import import_files
from strategies import CATALOG, histories, jsonl

PG_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgres)]
CUT = "2026-01-20T00:00:00Z"
RATES = {"EXTRACT_TEXT": 5, "GENERATE_REPORT": 50}
TABLES = {
    "journal_entry": "SELECT * FROM journal_entry ORDER BY id",
    "journal_line": "SELECT entry_id, account_code, commodity, debit, credit, customer_id, grant_id, invoice_number, "
                    "event_id FROM journal_line ORDER BY id",
    "usage_event": "SELECT * FROM usage_event ORDER BY id",
    "usage_draw": "SELECT * FROM usage_draw ORDER BY 1, 2",
    "quarantine": "SELECT * FROM quarantine ORDER BY event_id",
    "invoice": "SELECT * FROM invoice ORDER BY number",
    "invoice_line": "SELECT * FROM invoice_line ORDER BY invoice_number, position",
    "customer": "SELECT id, steps_through FROM customer ORDER BY id",
    "credit_grant": "SELECT * FROM credit_grant ORDER BY id",
    "period_close": "SELECT period, action, journal_head, entries, seal FROM period_close ORDER BY id",
}


def _usage_csv(events: list[dict]) -> str:
    rows = []
    for e in events:
        credits = e.get("credits") or RATES[e["action"]] * e["quantity"]
        rows.append(f"{e['id']},{e['customer_id']},{e['occurred_at']},{credits}\n")
    return "event_id,customer_id,occurred_at,credits\n" + "".join(rows)


@st.composite
def split_histories(draw):
    """(business events before the cut, usage from the cut on, business events after it): usage
    of the same days added so customer-days hold several events."""
    history = draw(histories(max_events=40))
    usage = [e for e in history if e["type"] == "usage.recorded" and e["occurred_at"] >= CUT]
    more = []
    for i, e in enumerate(usage):
        for k in range(draw(st.integers(0, 3))):
            at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) + timedelta(
                minutes=draw(st.integers(1, 600)), microseconds=draw(st.sampled_from([0, 1, 500_000, 123_456])))
            # written with a fraction of a second (".000000" too) or without
            form = draw(st.sampled_from(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"]))
            more.append({"id": f"{e['id']}-{k}", "type": "usage.recorded", "customer_id": e["customer_id"],
                         "occurred_at": at.strftime(form) if at.microsecond == 0 or "%f" in form
                         else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "credits": draw(st.integers(1, 3000))})
    usage = sorted(usage + more, key=lambda e: e["occurred_at"])
    usage_ids = {e["id"] for e in usage}
    before = [e for e in history if e["type"] != "usage.recorded" and e["occurred_at"] < CUT
              and e["type"] != "event.voided"]
    known = {e["id"] for e in before} | usage_ids
    after = [e for e in history if e["type"] != "usage.recorded" and e["occurred_at"] >= CUT
             and (e["type"] != "event.voided" or e["target_event_id"] in known)]
    return before, usage, after


def _state(books) -> dict:
    with books.engine.connect() as c:
        return {name: [tuple(r) for r in c.execute(sa.text(sql))] for name, sql in TABLES.items()}


def _run(books, catalog, work, before, usage, after, staged: bool) -> list:
    outcomes = []
    for name, text, kw in (("before.jsonl", jsonl(before), {}), ("usage.csv", _usage_csv(usage), {"staged": staged}),
                           ("usage.csv", _usage_csv(usage), {"staged": staged}), ("after.jsonl", jsonl(after), {})):
        if name.endswith(".jsonl") and not text.strip():
            continue
        path = work / name  # the same path for both runs: usage rows record it
        path.write_text(text, encoding="utf-8")
        with books.session() as s:
            try:
                summary = import_files(s, catalog, [path], **kw)
                outcomes.append((summary.posted, summary.duplicates, summary.quarantined, summary.late,
                                 summary.entries, summary.invoices, summary.set_based))
            except Exception as exc:  # the same refusal on both paths
                outcomes.append((type(exc).__name__, str(exc)))
    for period in ("2026-01", "2026-02"):
        with books.session() as s:
            try:
                close_period(s, catalog, period)
            except Exception as exc:
                outcomes.append((type(exc).__name__, str(exc)))
    return outcomes


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=split_histories())
def test_staged_usage_import_gives_the_books_of_the_general_rules(make_books, tmp_path_factory, case):
    before, usage, after = case
    path = tmp_path_factory.mktemp("cat") / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(path, required=True)
    staged, general = make_books(), make_books()
    try:
        work = tmp_path_factory.mktemp("case")
        got = _run(staged, catalog, work, before, usage, after, staged=True)
        want = _run(general, catalog, work, before, usage, after, staged=False)
        got_state, want_state = _state(staged), _state(general)
    finally:
        staged.engine.dispose()
        general.engine.dispose()
    assert [o[:-1] if len(o) == 7 else o for o in got] == [o[:-1] if len(o) == 7 else o for o in want]
    assert not any(len(o) == 7 and o[-1] for o in want)
    for name in TABLES:
        assert got_state[name] == want_state[name], name
    if usage and len(got[1]) == 7:
        assert got[1][-1], "a plain usage file with known customers was not imported set-based"


def _created(c: str) -> dict:
    return {"id": f"c-{c}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": c,
            "name": c.title(), "currency": "USD", "tax_rate": "0"}


def _use(i: str, customer: str, at: str, credits: int) -> dict:
    return {"id": i, "type": "usage.recorded", "customer_id": customer, "occurred_at": at, "credits": credits}


CASES = {
    # a grant expires between two events of the day: its expiry runs between them
    "expiry inside the day": (
        [_created("acme"),
         {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
          "grant_id": "short", "credits": 100, "expires_at": "2026-01-25T12:00:00Z", "reason": "trial"},
         {"id": "g2", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
          "grant_id": "long", "credits": 500, "reason": "trial"}],
        [_use("u1", "acme", "2026-01-25T10:00:00Z", 30), _use("u2", "acme", "2026-01-25T14:00:00Z", 40)]),
    # a commitment's term starts between two events of the day
    "grant starting inside the day": (
        [_created("acme"),
         {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
          "grant_id": "long", "credits": 500, "reason": "trial"},
         {"id": "k1", "type": "commitment.purchased", "occurred_at": "2026-01-10T00:00:00Z", "customer_id": "acme",
          "commitment_id": "com1", "credits": 1000, "amount": "100.00", "term_start": "2026-01-25",
          "term_end": "2026-12-31", "overage_price": "0.125"}],
        [_use("u1", "acme", "2026-01-24T22:00:00Z", 30), _use("u2", "acme", "2026-01-25T14:00:00Z", 40),
         _use("u3", "acme", "2026-01-25T15:00:00Z", 40)]),
    # the hard cap inside a day: the big event is quarantined, the small one after it posts
    "hard cap inside the day": (
        [_created("acme"),
         {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
          "grant_id": "long", "credits": 50, "reason": "trial"}],
        [_use("u1", "acme", "2026-01-25T10:00:00Z", 30), _use("u2", "acme", "2026-01-25T11:00:00Z", 40),
         _use("u3", "acme", "2026-01-25T12:00:00Z", 20)]),
    # acme's auto top-up (below 800, strategies.CATALOG): the second event crosses and buys a pack
    "auto top-up inside the day": (
        [_created("acme"),
         {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
          "grant_id": "long", "credits": 1000, "reason": "trial"}],
        [_use("u1", "acme", "2026-01-25T10:00:00Z", 100), _use("u2", "acme", "2026-01-25T11:00:00Z", 150),
         _use("u3", "acme", "2026-01-25T12:00:00Z", 100)]),
    # globex's soft cap (6,000 a month): the second event is held for review, the third fits
    "soft cap inside the day": (
        [_created("globex"),
         {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "globex",
          "grant_id": "long", "credits": 10_000, "reason": "trial"}],
        [_use("u1", "globex", "2026-01-25T10:00:00Z", 5000), _use("u2", "globex", "2026-01-25T11:00:00Z", 2000),
         _use("u3", "globex", "2026-01-25T12:00:00Z", 500)]),
}


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_day_the_sums_cannot_post_is_posted_event_by_event(make_books, tmp_path, name):
    """Worked cases of the days `post_usage_day` hands back to the general rules."""
    before, usage = CASES[name]
    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(path, required=True)
    staged, general = make_books(), make_books()
    got = _run(staged, catalog, tmp_path, before, usage, [], staged=True)
    want = _run(general, catalog, tmp_path, before, usage, [], staged=False)
    assert got[1][-1] is True and [o[:-1] for o in got] == [o[:-1] for o in want]
    got_state, want_state = _state(staged), _state(general)
    for table in TABLES:
        assert got_state[table] == want_state[table], table


BAD_ROWS = {
    "id with a space": "u 1,acme,2026-01-25T10:00:00Z,5",
    "month 13": "u1,acme,2026-13-01T10:00:00Z,5",
    "hour 24": "u1,acme,2026-01-25T24:00:00Z,5",
    "30 February": "u1,acme,2026-02-30T10:00:00Z,5",
    "zero credits": "u1,acme,2026-01-25T10:00:00Z,0",
    "credits beyond 64 bits": "u1,acme,2026-01-25T10:00:00Z,9223372036854775808",
    "unknown customer": "u1,nobody,2026-01-25T10:00:00Z,5",
    "id repeated with other content": "u0,acme,2026-01-25T11:00:00Z,6",
    "an offset instead of Z": "u1,acme,2026-01-25T10:00:00+01:00,5",
    "too few cells": "u1,acme,2026-01-25T10:00:00Z",
    "before the year 2000": "u1,acme,1999-01-25T10:00:00Z,5",
}


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_input_the_staging_path_does_not_take_gets_the_general_paths_answer(make_books, tmp_path, name):
    """A file with one row the staging checks do not prove plain is imported (or refused) by the
    general path: the same summary or the same problems (file, line, field, value), and
    nothing posted by a refusal."""
    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(path, required=True)
    before = [_created("acme"), {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z",
                                 "customer_id": "acme", "grant_id": "long", "credits": 500, "reason": "trial"}]
    text = "event_id,customer_id,occurred_at,credits\nu0,acme,2026-01-25T09:00:00Z,5\n" + BAD_ROWS[name] + "\n"
    outcomes = []
    for staged in (True, False):
        books = make_books()
        try:
            (tmp_path / "before.jsonl").write_text(jsonl(before), encoding="utf-8")
            (tmp_path / "usage.csv").write_text(text, encoding="utf-8")
            with books.session() as s:
                import_files(s, catalog, [tmp_path / "before.jsonl"])
            with books.session() as s:
                try:
                    summary = import_files(s, catalog, [tmp_path / "usage.csv"], staged=staged)
                    outcome = ("posted", summary.posted, summary.quarantined, summary.set_based)
                except Exception as exc:
                    outcome = (type(exc).__name__, str(exc))
            outcomes.append((outcome, _state(books)))
        finally:
            books.engine.dispose()
    (got, got_state), (want, want_state) = outcomes
    assert got[:3] == want[:3] and got_state == want_state
    assert len(got) == 2 or got[3] is False  # not taken by the staging path


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_two_set_based_imports_of_one_file_at_once_post_it_once(make_books, tmp_path):
    """Two importers of the same usage CSV at the same moment: the second waits for the first's
    customer locks, finds its ids stored when it writes them, rolls back and takes the general
    path, which counts them as duplicates. Every event is posted once."""
    import threading

    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(path, required=True)
    books = make_books()
    before = [_created("acme"), _created("globex"),
              {"id": "g1", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
               "grant_id": "a", "credits": 10**9, "reason": "trial"},
              {"id": "g2", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "globex",
               "grant_id": "b", "credits": 10**9, "reason": "trial"}]
    (tmp_path / "before.jsonl").write_text(jsonl(before), encoding="utf-8")
    with books.session() as s:
        import_files(s, catalog, [tmp_path / "before.jsonl"])
    usage = [_use(f"u{i}", ("acme", "globex")[i % 2], f"2026-01-{21 + i // 2000:02d}T{i % 24:02d}:{i % 60:02d}:00Z", i % 9 + 1)
             for i in range(6000)]
    (tmp_path / "usage.csv").write_text(_usage_csv(usage), encoding="utf-8")
    results: list = []
    start = threading.Barrier(2)

    def run() -> None:
        with books.session() as s:
            start.wait()
            try:
                results.append(import_files(s, catalog, [tmp_path / "usage.csv"]))
            except Exception as exc:  # pragma: no cover - the failure is the evidence
                results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted((r.posted, r.duplicates) for r in results) == [(0, 6000), (6000, 0)], results
        with books.engine.connect() as c:
            rows = c.execute(sa.text("SELECT count(*), sum(credits) FROM usage_event")).one()
            consumed = c.execute(sa.text("SELECT sum(credit) FROM journal_line WHERE account_code = '9200'")).scalar_one()
            # globex's usage past its soft cap (strategies.CATALOG) is held for review, not consumed
            held = c.execute(sa.text("SELECT coalesce(sum(debit), 0) FROM journal_line WHERE account_code = '9500'")).scalar_one()
        assert rows == (6000, sum(i % 9 + 1 for i in range(6000))) and consumed + held == rows[1] and held > 0
    finally:
        books.engine.dispose()


def test_a_lost_race_is_told_from_other_errors_on_both_databases():
    """What the set-based path takes for "another import wrote these rows first" (then it counts
    them as duplicates): a unique violation raised by psycopg itself (a COPY), and on Citus the
    same reaching the coordinator as an internal error (XX000) with the worker's message; any
    other internal error is not one."""
    import psycopg.errors as pg

    from ledger.store.db import is_unique_violation

    assert is_unique_violation(pg.UniqueViolation("duplicate key value violates unique constraint \"usage_event_pkey\""))
    assert is_unique_violation(pg.InternalError_("duplicate key value violates unique constraint \"usage_event_pkey_102008\""))
    assert not is_unique_violation(pg.InternalError_("could not connect to worker node"))
    assert not is_unique_violation(ValueError("duplicate key value violates unique constraint"))


def _many_days() -> tuple[list[dict], list[dict]]:
    """Four customers over 16 days across a month's end, in New York time: whole days, days
    posted event by event (a promotion expiring at noon, the auto top-up, the soft cap, the hard
    cap), a subscription's month bill and overage invoice, a proportional-breakage commitment."""
    base = [_created(c) for c in ("acme", "globex", "initech", "hooli")]
    base += [
        {"id": "g-acme", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme",
         "grant_id": "acme-long", "credits": 3000, "reason": "trial"},
        {"id": "g-globex", "type": "credits.granted", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "globex",
         "grant_id": "globex-long", "credits": 50_000, "reason": "trial"},
        {"id": "s-initech", "type": "subscription.started", "occurred_at": "2026-01-02T00:00:00Z",
         "customer_id": "initech", "plan": "pro_usd", "start_date": "2026-01-02"},
        {"id": "k-hooli", "type": "commitment.purchased", "occurred_at": "2026-01-03T00:00:00Z", "customer_id": "hooli",
         "commitment_id": "hooli-com", "credits": 4000, "amount": "400.00", "term_start": "2026-01-03",
         "term_end": "2026-01-26", "breakage": {"method": "proportional", "expected_rate": "0.20"}},
        {"id": "p-hooli", "type": "credits.granted", "occurred_at": "2026-01-03T00:00:00Z", "customer_id": "hooli",
         "grant_id": "hooli-promo", "credits": 300, "reason": "promo", "expires_at": "2026-01-27T17:00:00Z"},
    ]
    usage, n = [], 0
    for day in range(16):
        for hour in (3, 9, 16, 23):  # 03:00Z is the evening before in New York
            at = (datetime(2026, 1, 20, hour) + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for c, credits in (("acme", 40 + day), ("globex", 110), ("initech", 90 + 7 * hour), ("hooli", 25)):
                n += 1
                usage.append(_use(f"u{n:04d}", c, at, credits))
    return base, usage


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_a_file_of_many_days_is_written_day_by_day_as_the_general_rules_post_it(make_books, tmp_path, monkeypatch):
    """Each finished day is written while the next posts (`Posting.settle` once a day): the
    books are those of the general rules, ids included."""
    from ledger.core.posting import Posting

    settled = []
    settle = Posting.settle
    monkeypatch.setattr(Posting, "settle", lambda self: settled.append(len(got := settle(self))) or got)
    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG.replace("[company]\n", '[company]\nreporting_timezone = "America/New_York"\n'), encoding="utf-8")
    catalog = load_catalog(path, required=True)
    before, usage = _many_days()
    staged, general = make_books(), make_books()
    got = _run(staged, catalog, tmp_path, before, usage, [], staged=True)
    want = _run(general, catalog, tmp_path, before, usage, [], staged=False)
    assert got[1][-1] is True and [o[:-1] for o in got] == [o[:-1] for o in want]
    assert len([n for n in settled if n]) >= 15
    got_state, want_state = _state(staged), _state(general)
    for table in TABLES:
        assert got_state[table] == want_state[table], table
    assert got_state["quarantine"] and got_state["invoice"]


def _before_many_days(make_books, tmp_path) -> tuple:
    """(books, catalog, usage): new books holding `_many_days`'s business events, and its usage
    written to ``tmp_path``/usage.csv, not imported."""
    path = tmp_path / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(path, required=True)
    before, usage = _many_days()
    books = make_books()
    (tmp_path / "before.jsonl").write_text(jsonl(before), encoding="utf-8")
    (tmp_path / "usage.csv").write_text(_usage_csv(usage), encoding="utf-8")
    with books.session() as s:
        import_files(s, catalog, [tmp_path / "before.jsonl"])
    return books, catalog, usage


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_an_error_while_a_day_is_written_rolls_the_whole_import_back(make_books, tmp_path, monkeypatch):
    """The writer thread's error comes back to the import, which rolls back all of it."""
    from ledger.services import bulk_usage

    books, catalog, usage = _before_many_days(make_books, tmp_path)
    was = _state(books)
    calls = []
    insert = bulk_usage.insert_entries

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # a day in the middle, in the writer thread
            raise RuntimeError("the server went away")
        return insert(*args, **kwargs)

    monkeypatch.setattr(bulk_usage, "insert_entries", failing)
    with books.session() as s, pytest.raises(RuntimeError, match="the server went away"):
        import_files(s, catalog, [tmp_path / "usage.csv"], staged=True)
    assert len(calls) >= 3
    assert _state(books) == was
    with books.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM import_batch WHERE sources LIKE '%usage.csv%'")).scalar_one() == 0


@pytest.mark.parametrize("db_url", PG_ONLY, indirect=True)
def test_a_staged_import_tells_its_progress_as_each_day_is_written(make_books, tmp_path):
    """``progress(done, total)`` counts the file's events: once per day as the writer thread
    finishes it (rising, never past the total), then the whole file once it has committed."""
    books, catalog, usage = _before_many_days(make_books, tmp_path)
    calls = []
    with books.session() as s:
        summary = import_files(s, catalog, [tmp_path / "usage.csv"], progress=lambda done, total: calls.append((done, total)))
    assert summary.set_based is True
    assert {total for _, total in calls} == {len(usage)}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == len(usage) and done[-2] < len(usage)
    assert len(calls) >= 15  # 16 days, each written while the next posts, then the commit
