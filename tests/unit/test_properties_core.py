"""Properties of the accounting core over random histories of every event type, on plain values."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from ledger.catalog import load_catalog
from ledger.core import accounts as A
from ledger.core.checks import BatchFacts, check_batch
from ledger.core.entries import EntryKind, check_draft
from ledger.core.periods import local_date, period_end, start_of_day
from ledger.core.posting import WRITTEN, Posting, apply_order
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
    return _posted_with(catalog, events)[0]


def _posted_with(catalog, events: list[dict]) -> tuple[Posting, list]:
    """`_posted` and the events it applied, in the order it applied them."""
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
            return p, sorted(todo, key=apply_order)
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


def _settled_by_day(catalog, events: list[dict], *, forget: bool = False) -> Posting:
    """`_posted`'s events applied to one posting in the same order, `Posting.settle` called at
    every local midnight they pass (in time order and nothing late, as in the set-based import,
    no later event draws on the buckets of the days before). With ``forget``, each settle first
    forgets what the settles before the last one gave, as the import does once its writer
    thread, a day behind, has written them."""
    _, todo = _posted_with(catalog, events)
    q, end_of_day = Posting(catalog, MemoryStore(), closed=[]), None
    written = settled = 0
    for se in todo:
        t = se.event.occurred_at
        if end_of_day is None or t >= end_of_day:
            if forget:
                q.forget(written)
            written = settled
            settled += len(q.settle())
            end_of_day = start_of_day(local_date(t, catalog.tz) + timedelta(days=1), catalog.tz)
        q.apply(se)
    for book in q.books.values():
        close_through(q, book, period_end("2026-03", catalog.tz))
    return q


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_a_journal_settled_day_by_day_is_the_journal_built_at_once(random_catalog, history):
    """`Posting.settle` at each day's end gives the journal `entries` builds at once: the same
    entries in the same order, and the same indices of usage events, buckets and documents."""
    whole = _posted(random_catalog, history).entries()
    settled = _settled_by_day(random_catalog, history).entries()
    assert settled.drafts == whole.drafts
    assert (settled.usage_entry, settled.bucket_entry, settled.invoice_entry) == (
        whole.usage_entry, whole.bucket_entry, whole.invoice_entry)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_forgetting_written_entries_keeps_every_place(random_catalog, history):
    """`Posting.forget` turns the consumption entries written already into `WRITTEN` and
    nothing else: every other entry, and every index of usage events, buckets and documents, is
    as in the journal built at once."""
    whole = _posted(random_catalog, history).entries()
    q = _settled_by_day(random_catalog, history, forget=True)
    forgotten = q._forgotten
    settled = q.entries()
    assert len(settled.drafts) == len(whole.drafts)
    for i, (got, want) in enumerate(zip(settled.drafts, whole.drafts)):
        if i < forgotten and want.kind == EntryKind.CONSUMPTION and i not in whole.invoice_entry:
            assert got is WRITTEN, i
        else:
            assert got == want, i
    assert (settled.usage_entry, settled.bucket_entry, settled.invoice_entry) == (
        whole.usage_entry, whole.bucket_entry, whole.invoice_entry)
