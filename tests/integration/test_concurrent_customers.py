"""Two imports creating the same customer at once: the loser is told, in the books' terms."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session

from builders import ev
from ledger.errors import InvalidInputError
from ledger.services import importing
from ledger.store.db import make_engine

ACME = {"customer_id": "acme", "name": "Acme AI", "currency": "USD"}


def _race(pg_url, plans_catalog, tmp_path, monkeypatch, first: str, second: str) -> list:
    """Import two files in two threads whose checks both run before either writes; returns each
    thread's summary or error."""
    barrier = threading.Barrier(2, timeout=20)
    waited: set[int] = set()
    check = importing.check_batch

    def check_then_wait(*args, **kw):
        out = check(*args, **kw)
        if threading.get_ident() not in waited:  # the first check of each thread: both pass it first
            waited.add(threading.get_ident())
            barrier.wait()
        return out

    monkeypatch.setattr(importing, "check_batch", check_then_wait)
    results: list = [None, None]

    def run(i: int, text: str) -> None:
        path = tmp_path / f"in{i}.jsonl"
        path.write_text(text, encoding="utf-8")
        engine = make_engine(pg_url)
        try:
            with Session(engine) as s:
                results[i] = importing.import_files(s, plans_catalog, [path])
        except Exception as exc:  # noqa: BLE001 (the test looks at what each thread got)
            results[i] = exc
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
def test_the_loser_of_two_imports_creating_one_customer_gets_a_problem_not_a_unique_violation(
        pg_url, plans_catalog, tmp_path, monkeypatch):
    """Different events create the same customer: one import posts; the other is refused with
    'customer already exists' naming its file, line and value (no IntegrityError)."""
    a = ev("c-a", "customer.created", "2026-01-01T00:00:00Z", **ACME) + "\n"
    b = ev("c-b", "customer.created", "2026-01-01T00:00:00Z", **ACME) + "\n"
    results = _race(pg_url, plans_catalog, tmp_path, monkeypatch, a, b)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], InvalidInputError), results
    (problem,) = errors[0].problems
    assert (problem.field, problem.value, problem.line) == ("customer_id", "acme", 1)
    assert "customer already exists" in problem.message


@pytest.mark.postgres
def test_the_same_customer_event_in_two_concurrent_imports_posts_once_and_both_succeed(
        pg_url, plans_catalog, tmp_path, monkeypatch):
    """The same customer.created in both files: the second import counts it as a duplicate and
    posts the rest of its file."""
    created = ev("c-1", "customer.created", "2026-01-01T00:00:00Z", **ACME) + "\n"
    top = ('{{"id": "{0}", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
           '"topup_id": "{0}", "credits": 100, "amount": "10.00"}}\n')
    results = _race(pg_url, plans_catalog, tmp_path, monkeypatch, created + top.format("t-1"), created + top.format("t-2"))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted((r.posted, r.duplicates) for r in results) == [(1, 1), (2, 0)]
