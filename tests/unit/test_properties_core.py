"""Properties of the accounting core over random histories of every event type, on plain values."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings

from ledger.catalog import load_catalog
from ledger.core import accounts as A
from ledger.core.checks import BatchFacts, check_batch
from ledger.core.entries import check_draft
from ledger.core.periods import period_end
from ledger.core.posting import Posting, apply_order
from ledger.core.schedule import close_through
from ledger.errors import InvalidInputError
from ledger.events import parse_event
from memory_store import MemoryStore
from strategies import CATALOG, histories


@pytest.fixture(scope="module")
def random_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("props") / "ledger.toml"
    path.write_text(CATALOG, encoding="utf-8")
    return load_catalog(path, required=True)


def _posted(catalog, events: list[dict]) -> Posting:
    """The events the checks and the rules accept, applied to one posting and closed through
    March (a refused event is dropped and the posting rebuilt without it, as an import would)."""
    parsed = [parse_event(json.dumps(e), "h.jsonl", i + 1)[0] for i, e in enumerate(events)]
    fresh, _, problems = check_batch(catalog, [se for se in parsed if se is not None], BatchFacts())
    bad = {(p.file, p.line) for p in problems}
    todo = [se for se in fresh if (se.file, se.line) not in bad]
    while True:
        p = Posting(catalog, MemoryStore(), closed=[])
        try:
            for se in sorted(todo, key=apply_order):
                refused = se
                p.apply(se)
            for book in p.books.values():
                close_through(p, book, period_end("2026-03", catalog.tz))
            return p
        except InvalidInputError:
            todo.remove(refused)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_every_entry_balances_and_the_books_agree_with_the_journal(random_catalog, history):
    """Every entry passes the writer's checks; the CREDIT identity holds (issued + overage =
    outstanding + consumed + expired + refunded); each grant's 9100 balance is its remaining
    units and its 2100 balance its deferred amount."""
    p = _posted(random_catalog, history)
    drafts = p.entries().drafts
    for d in drafts:
        check_draft(d, set())
    credit = defaultdict(int)
    per_grant: dict[tuple[str, str], int] = defaultdict(int)
    for d in drafts:
        for ln in d.lines:
            if ln.commodity == "CREDIT":
                credit[ln.account] += ln.debit - ln.credit
            if ln.grant_id and ln.account in (A.CREDITS_OUTSTANDING, A.DEFERRED_CREDITS):
                per_grant[ln.grant_id, ln.account] += ln.credit - ln.debit
    issued = credit[A.CREDITS_ISSUED] + credit[A.CREDITS_OVERAGE]
    held = -(credit[A.CREDITS_OUTSTANDING] + credit[A.CREDITS_CONSUMED] + credit[A.CREDITS_EXPIRED]
             + credit[A.CREDITS_REFUNDED])
    assert issued == held
    for book in p.books.values():
        for g in book.grants.values():
            assert per_grant[g.id, A.CREDITS_OUTSTANDING] == g.remaining, g.id
            assert per_grant[g.id, A.DEFERRED_CREDITS] == g.deferred, g.id
