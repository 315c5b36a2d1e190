"""The first pass of a chunked import (`ledger.services.importing.import_files` over ``chunk_size``
events), on SQLite (an id -> digest map in memory) and PostgreSQL (events staged with COPY
into a temporary table): every problem of the whole input is reported, with file, line, field
and value, before anything is posted; identical repeats are duplicates, not problems.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from ledger.errors import InvalidInputError
from ledger.store.models import JournalEntry, UsageEvent
from ledger.services.importing import import_files

SETUP = "\n".join(json.dumps(e) for e in [
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "name": "One", "currency": "USD"},
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-03-01T00:00:00Z", "customer_id": "cus_1",
     "grant_id": "promo-1", "credits": 1000, "expires_at": "2027-03-01T00:00:00Z", "reason": "trial"},
])


def usage_csv(rows: list[tuple[str, str, str, int]]) -> str:
    return "event_id,customer_id,occurred_at,credits\n" + "".join(f"{e},{c},{t},{n}\n" for e, c, t, n in rows)


def _rows(n: int, start: int = 0, customer: str = "cus_1") -> list[tuple[str, str, str, int]]:
    return [(f"u{i}", customer, f"2026-03-02T{i // 60 % 24:02d}:{i % 60:02d}:00Z", 1) for i in range(start, start + n)]


def _posted(books) -> tuple[int, int]:
    with books.session() as s:
        return (s.execute(sa.select(sa.func.count()).select_from(UsageEvent)).scalar_one(),
                s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one())


def test_first_pass_reports_every_problem_of_the_input_and_posts_nothing(make_books):
    books = make_books()
    books.post(SETUP)
    books.post(usage_csv(_rows(3)), suffix=".csv")  # u0-u2 in the books
    before = _posted(books)
    rows = _rows(12, start=2)  # u2 again, identical: a duplicate
    rows[3] = ("u0", "cus_1", "2026-03-02T00:00:00Z", 5)  # line 5: u0 posted with 1 credit
    rows[6] = ("u4", "cus_1", "2026-03-02T00:04:00Z", 2)  # line 8: u4 was line 4 with 1 credit
    rows[7] = ("u9", "cus_404", "2026-03-02T00:09:00Z", 1)  # line 9: nobody created cus_404
    rows[10] = ("u7", "cus_404", "2026-03-02T00:10:00Z", 1)  # line 12: u7 conflicts too; cus_404 named once
    path = books.write(usage_csv(rows), ".csv")
    with books.session() as s, pytest.raises(InvalidInputError) as info:
        import_files(s, books.catalog, [path], chunk_size=4)
    got = [(p.line, p.field, p.value, p.message) for p in info.value.problems]
    assert got == [
        (8, "id", "u4", f"conflicts with {path}:4: same event id, different content"),
        (9, "customer_id", "cus_404", "unknown customer (no customer.created event for it)"),
        (12, "id", "u7", f"conflicts with {path}:7: same event id, different content"),
    ]
    assert all(p.file == str(path) for p in info.value.problems)
    assert _posted(books) == before
    # the conflict with the books is looked for once the input itself is sound
    rows[6], rows[7], rows[10] = _rows(1, 8)[0], _rows(1, 9)[0], _rows(1, 12)[0]
    path = books.write(usage_csv(rows), ".csv")
    with books.session() as s, pytest.raises(InvalidInputError) as info:
        import_files(s, books.catalog, [path], chunk_size=4)
    posted_from = f"{books.tmp / 'input2.csv'}:2"
    assert [(p.line, p.field, p.value, p.message) for p in info.value.problems] == [
        (5, "id", "u0", f"conflicts with the event already posted from {posted_from}: same event id, different content")]
    assert _posted(books) == before
    # sound input: chunks of 4 post everything once; the identical u2 counts as a duplicate
    rows[3] = _rows(1, 5)[0]
    summary = books.post(usage_csv(rows + [rows[0]]), suffix=".csv", chunk_size=4)
    assert (summary.posted, summary.duplicates) == (11, 2)
    assert _posted(books)[0] == 14


def test_first_pass_accepts_customers_created_in_the_same_input(make_books):
    books = make_books()
    lines = [SETUP] + [json.dumps({"id": f"u{i}", "type": "usage.recorded", "occurred_at": "2026-03-03T00:00:00Z",
                                   "customer_id": "cus_1", "credits": 2}) for i in range(9)]
    summary = books.post("\n".join(lines), chunk_size=3)
    assert (summary.posted, summary.duplicates, summary.quarantined) == (11, 0, 0)
    assert books.balance("9200", "CREDIT") == 18  # consumed, on its credit side


# --------------------------------------------------------------------------- --jobs
def _parallel_input() -> tuple[str, str]:
    """Five customers (one hard-capped at 30 credits, one funded by a top-up with an overage-free
    cap of 200), created in the same JSONL, then 120 usage events across them in time order."""
    events = []
    for i in range(5):
        cid = f"cus_{i}"
        events.append({"id": f"c{i}", "type": "customer.created", "occurred_at": "2026-03-01T00:00:00Z",
                       "customer_id": cid, "name": f"Customer {i}", "currency": "USD"})
        events.append({"id": f"g{i}", "type": "credits.granted", "occurred_at": "2026-03-01T00:00:00Z",
                       "customer_id": cid, "grant_id": f"promo-{i}", "credits": 30 if i == 4 else 200 * (i + 1),
                       "expires_at": "2026-03-02T12:00:00Z" if i == 2 else "2027-03-01T00:00:00Z", "reason": "trial"})
    setup = "\n".join(json.dumps(e) for e in events)
    rows = [(f"u{n}", f"cus_{(n * n) % 5}", f"2026-03-02T{n // 60 % 24:02d}:{n % 60:02d}:00Z", n % 9 + 1)
            for n in range(120)]
    return setup, usage_csv(rows)


def _outcome(books) -> dict:
    """What the books say per customer and grant, whatever the chunking: usage rows with their
    status and draws, quarantine, and every account's balance per customer and grant."""
    with books.session() as s:
        usage = sorted(s.execute(sa.text("SELECT id, status, overage_units FROM usage_event")).all())
        draws = sorted(s.execute(sa.text("SELECT usage_event_id, grant_id, units FROM usage_draw")).all())
        quarantine = sorted(s.execute(sa.text("SELECT event_id, available FROM quarantine")).all())
        balances = sorted(s.execute(sa.text(
            "SELECT account_code, commodity, customer_id, grant_id, sum(debit) - sum(credit) FROM journal_line "
            "GROUP BY account_code, commodity, customer_id, grant_id")).all(), key=repr)
    return {"usage": usage, "draws": draws, "quarantine": quarantine, "balances": balances}


def test_jobs_post_what_one_process_posts(make_books, db_url, monkeypatch):
    """Two processes on PostgreSQL (one on SQLite, which has one writer) give the same books."""
    from ledger.services import importing as service

    parallel = []
    real = service._import_parallel
    monkeypatch.setattr(service, "_import_parallel", lambda *a, **k: parallel.append(1) or real(*a, **k))
    setup, usage = _parallel_input()
    one, two = make_books(), make_books()
    for books, jobs in ((one, 1), (two, 2)):
        books.post(setup)
        summary = books.post(usage, suffix=".csv", chunk_size=7, jobs=jobs)
        assert (summary.posted + summary.quarantined, summary.duplicates) == (120, 0)
        assert books.verify() == []
    assert _outcome(one) == _outcome(two)
    assert len(parallel) == (1 if db_url.startswith("postgresql") else 0)
    assert _outcome(two)["quarantine"]  # the capped customer did hit its cap
    again = two.post(usage, suffix=".csv", chunk_size=7, jobs=2)  # a re-run: all duplicates
    assert (again.posted, again.duplicates) == (0, 120)
    assert len(parallel) == (2 if db_url.startswith("postgresql") else 0)


def test_jobs_fall_back_to_one_process_for_voids(make_books):
    setup, _ = _parallel_input()
    books = make_books()
    books.post(setup)
    lines = [json.dumps({"id": f"u{n}", "type": "usage.recorded", "occurred_at": "2026-03-03T00:00:00Z",
                         "customer_id": "cus_0", "credits": 1}) for n in range(10)]
    lines.append(json.dumps({"id": "v1", "type": "event.voided", "occurred_at": "2026-03-04T00:00:00Z",
                             "target_event_id": "u3", "reason": "metered twice"}))
    summary = books.post("\n".join(lines), chunk_size=4, jobs=2)
    assert summary.posted == 11 and books.balance("9200", "CREDIT") == 9


def test_a_refused_chunk_in_a_worker_stops_the_import_and_names_the_event(make_books):
    setup, _ = _parallel_input()
    books = make_books()
    books.post(setup)
    lines = [json.dumps({"id": f"u{n}", "type": "usage.recorded", "occurred_at": "2026-03-03T00:00:00Z",
                         "customer_id": f"cus_{n % 2}", "credits": 1}) for n in range(8)]
    # a refund of a promotional (zero-cost) grant is refused when applied, not in the first pass
    lines.append(json.dumps({"id": "r1", "type": "refund.issued", "occurred_at": "2026-03-04T00:00:00Z",
                             "customer_id": "cus_1", "grant_ref": "promo-1", "credits": 100_000}))
    with pytest.raises(InvalidInputError) as info:
        books.post("\n".join(lines), chunk_size=2, jobs=2)
    assert (info.value.problems[0].line, info.value.problems[0].field) == (9, "grant_ref")
    assert info.value.committed is not None
