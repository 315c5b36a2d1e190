"""The first pass of a chunked import (see `ledger.services.importing.import_files`): every line of
the input parsed and checked for what can be checked without posting, in bounded memory, so that
bad input is reported in full and nothing is posted.

The checks: parse problems; the same id twice with different content; an id already posted with
different content; an event of an unknown customer. On PostgreSQL the events are staged with
COPY (`ledger.store.imports.stage_input`) and checked with joins, which also count each
customer's events; elsewhere an id -> 8-byte digest map is held in memory. Either way the
pass's transaction is rolled back: it writes nothing.

Given the catalog and the chunk size, the pass also rehearses the posting's own checks
(`ledger.core.checks.check_batch`: actions, amounts, plans, packs, grant ids, dates, voids) on
the chunks the import will post (`_Rehearsal`), so that no chunk is refused for what its input
says after earlier chunks committed; what only applying the events can refuse (a business rule,
such as a refund of a promotional grant) is left to the posting.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.core.checks import VOIDABLE, BatchFacts, KnownCustomer, check_batch
from ledger.errors import InputProblem
from ledger.events import CustomerCreated, EventVoided, SourcedEvent, UsageRecorded, iter_file, raw_lines
from ledger.store import imports
from ledger.store.admin import session_on
from ledger.store.db import is_postgres
from ledger.store.events import batch_facts, existing_events

if TYPE_CHECKING:
    from ledger.catalog import Catalog
    from ledger.store.db import Session

_UNKNOWN = "unknown customer (no customer.created event for it)"


def count_lines(path: str | Path) -> int:
    """Non-blank lines of a file (less a CSV header): how many events it holds, at most."""
    try:
        with open(path, "rb") as fh:  # bounded lines: an endless line stops the count
            n = sum(1 for raw in raw_lines(fh.read) if raw is None or raw.strip())
    except OSError:
        return 0
    return n - 1 if str(path).lower().endswith(".csv") and n else n


def scan(session: Session, files: Sequence[str | Path], catalog: Catalog | None = None, chunk_size: int = 0
         ) -> tuple[int, list[InputProblem], dict[str, int] | None]:
    """First pass over the input: (events, problems, events per customer). The counts are
    None when an event names no customer (an ``event.voided``) and on SQLite. With ``catalog``
    and ``chunk_size`` > 0, the posting's checks are rehearsed on chunks of that many events
    in file order (see `_Rehearsal`), and what they find is among the problems."""
    if is_postgres(session):
        return _scan_staged(session, files, catalog, chunk_size)
    rehearsal = _Rehearsal(session, catalog, chunk_size) if catalog is not None and chunk_size > 0 else None
    problems: list[InputProblem] = []
    seen: dict[str, tuple[bytes, str]] = {}
    customers: dict[str, str] = {}
    created: set[str] = set()
    total = 0
    for f in files:
        for ev, probs in iter_file(f):
            problems.extend(probs)
            if ev is None:
                continue
            total += 1
            if rehearsal is not None:
                rehearsal.add(ev)
            digest = bytes.fromhex(ev.content_hash[:16])
            prior = seen.get(ev.id)
            if prior is not None and prior[0] != digest:
                problems.append(InputProblem(ev.file, ev.line, "id", ev.id,
                                             f"conflicts with {prior[1]}: same event id, different content"))
            elif prior is None:
                seen[ev.id] = (digest, ev.source)
            body = ev.event
            if body.type == "customer.created":  # type: ignore[attr-defined]
                created.add(body.customer_id)  # type: ignore[attr-defined]
            elif (cid := getattr(body, "customer_id", None)) is not None and cid not in customers:
                customers[cid] = ev.source
    if rehearsal is not None:
        problems += rehearsal.finish(files)
    ids = sorted(set(customers) - created)
    known = imports.known_customers(session, ids)
    for cid in ids:
        if cid not in known:
            file, _, line = customers[cid].rpartition(":")
            problems.append(InputProblem(file, int(line), "customer_id", cid, _UNKNOWN))
    if total > 0 and not problems:
        problems += _conflicts_with_books(session, seen)
    return total, problems, None


def _scan_staged(session: Session, files: Sequence[str | Path], catalog: Catalog | None, chunk_size: int
                 ) -> tuple[int, list[InputProblem], dict[str, int] | None]:
    """`scan` on PostgreSQL, in bounded memory: each event's id, 16-hex-digit digest, line and
    customer are staged, checked there and against the stored events, then rolled back. The
    rehearsal reads on a session of its own (this one's connection is busy with COPY)."""
    problems: list[InputProblem] = []
    names = [str(f) for f in files]
    total = 0
    rehearsal = None
    if catalog is not None and chunk_size > 0:
        rehearsal = _Rehearsal(session_on(session.get_bind()), catalog, chunk_size)

    def staged() -> Iterator[tuple]:
        nonlocal total
        for i, f in enumerate(files):
            for ev, probs in iter_file(f):
                problems.extend(probs)
                if ev is None:
                    continue
                total += 1
                if rehearsal is not None:
                    rehearsal.add(ev)
                body = ev.event
                created = body.type == "customer.created"  # type: ignore[attr-defined]
                yield ev.id, ev.content_hash[:16], i, ev.line, getattr(body, "customer_id", None), created

    try:
        imports.stage_input(session, staged())
        if rehearsal is not None:
            problems += rehearsal.finish(files)
    finally:
        if rehearsal is not None:
            rehearsal.session.close()
    for file, line, eid, ffile, fline in imports.staged_input_conflicts(session):
        problems.append(InputProblem(names[file], line, "id", eid,
                                     f"conflicts with {names[ffile]}:{fline}: same event id, different content"))
    for file, line, cid in imports.staged_unknown_customers(session):
        problems.append(InputProblem(names[file], line, "customer_id", cid, _UNKNOWN))
    if total > 0 and not problems:
        for file, line, eid, src in imports.staged_book_conflicts(session):
            problems.append(InputProblem(names[file], line, "id", eid,
                                         f"conflicts with the event already posted from {src}: same event id, "
                                         "different content"))
    loads: dict[str, int] | None = None
    if not problems:
        counts = imports.staged_loads(session)
        loads = None if None in counts else counts  # type: ignore[assignment]
    session.rollback()
    return total, problems, loads


def _conflicts_with_books(session: Session, seen: dict[str, tuple[bytes, str]]) -> list[InputProblem]:
    """Ids of the input already posted with different content (an identical one is a duplicate)."""
    out = []
    for eid, (h, src) in existing_events(session, list(seen)).items():
        digest, source = seen[eid]
        if bytes.fromhex(h[:16]) != digest:
            file, _, line = source.rpartition(":")
            out.append(InputProblem(file, int(line), "id", eid,
                                    f"conflicts with the event already posted from {src}: same event id, "
                                    "different content"))
    session.rollback()
    return out


_UNKNOWN_EVENT = "unknown event (nothing with this id was imported)"


class _Rehearsal:
    """`check_batch` on the chunks the import will post: the input in file order, ``size``
    events a chunk, each checked against the books and what the earlier chunks will have
    committed by then (their customers, grant ids, voids and voidable events), as the posting
    checks it. Holds one chunk of events at a time (as the posting does), and from the earlier
    chunks only their customers and what their non-usage events define.

    Left to the scan: conflicting ids and customers unknown to the whole input (reported
    once); kept: a customer whose ``customer.created`` comes in a later chunk than its events
    (named once, at its first such event).
    A void whose target is a usage event of an earlier chunk is settled by `finish`, which then
    reads the input once more for those targets (only then)."""

    def __init__(self, session: Session, catalog: Catalog, size: int) -> None:
        self.session, self.catalog, self.size = session, catalog, size
        self.chunk: list[SourcedEvent] = []
        self.chunks = 0
        self.customers: dict[str, KnownCustomer] = {}  # created by earlier chunks
        self.created: dict[str, str] = {}  # customer id -> where the input creates it
        self.grant_ids: set[str] = set()
        self.voided: dict[str, str] = {}
        self.targets: dict[str, tuple[str, datetime]] = {}  # the voidable non-usage events of earlier chunks
        self.earlier: set[str] = set()  # ids of the non-usage events of earlier chunks
        self.problems: list[InputProblem] = []
        self.late: list[InputProblem] = []  # unknown customers, kept if the input creates them later
        self.pending: list[tuple[SourcedEvent, int]] = []  # (void, its chunk) of an unknown target

    def add(self, se: SourcedEvent) -> None:
        """The next event of the input (file order)."""
        if isinstance(se.event, CustomerCreated):
            self.created.setdefault(se.event.customer_id, se.source)
        self.chunk.append(se)
        if len(self.chunk) >= self.size:
            self._check()

    def _check(self) -> None:
        chunk = [se for se in self.chunk if isinstance(se.event, UsageRecorded) or se.id not in self.earlier]
        facts = self._facts(chunk)
        for cid, known in self.customers.items():
            facts.customers.setdefault(cid, known)
        facts.grant_ids |= self.grant_ids
        facts.voided = self.voided | facts.voided
        facts.targets = self.targets | facts.targets
        fresh, _, problems = check_batch(self.catalog, chunk, facts)
        voids = {se.source: se for se in chunk if isinstance(se.event, EventVoided)} if problems else {}
        for p in self._unless_stored(problems, chunk):
            if p.field == "id":
                continue  # a conflicting id: the scan reports it
            if p.field == "customer_id" and p.message == _UNKNOWN:
                self.late.append(p)
            elif p.message == _UNKNOWN_EVENT and (void := voids.get(f"{p.file}:{p.line}")) is not None:
                self.pending.append((void, self.chunks))
            else:
                self.problems.append(p)
        self._carry(fresh)
        self.chunk = []
        self.chunks += 1

    def _facts(self, chunk: list[SourcedEvent]) -> BatchFacts:
        """What the books say for the chunk's checks. Usage events, the bulk, are not looked up
        by id: one probe per customer (the customer's first usage event under the id "", which
        no stored event has) brings their customers' facts; a usage problem is kept only if its
        event is not stored (`_unless_stored`)."""
        probes: dict[str, SourcedEvent] = {}
        others = []
        for se in chunk:
            if not isinstance(se.event, UsageRecorded):
                others.append(se)
            elif se.event.customer_id not in probes:
                probes[se.event.customer_id] = SourcedEvent(se.event.model_copy(update={"id": ""}), se.file, se.line,
                                                            se.content_hash)
        facts = batch_facts(self.session, others + list(probes.values()))
        self.session.rollback()
        return facts

    def _unless_stored(self, problems: list[InputProblem], chunk: list[SourcedEvent]) -> list[InputProblem]:
        """``problems`` less those of usage events already stored (the posting skips those)."""
        if not problems:
            return problems
        usage = {se.source: se.id for se in chunk if isinstance(se.event, UsageRecorded)}
        ids = {usage[key] for p in problems if (key := f"{p.file}:{p.line}") in usage}
        if not ids:
            return problems
        stored = existing_events(self.session, sorted(ids))
        self.session.rollback()
        return [p for p in problems if usage.get(f"{p.file}:{p.line}") not in stored]

    def _carry(self, fresh: list[SourcedEvent]) -> None:
        """What the chunk's new events define for the chunks after it."""
        for se in fresh:
            ev = se.event
            if isinstance(ev, UsageRecorded):
                continue
            self.earlier.add(se.id)
            if isinstance(ev, CustomerCreated):
                self.customers.setdefault(ev.customer_id, KnownCustomer(ev.currency, ev.occurred_at, ev.tax_rate))
            elif isinstance(ev, EventVoided):
                self.voided.setdefault(ev.target_event_id, se.source)
            for fld in ("commitment_id", "topup_id", "grant_id"):
                if (gid := getattr(ev, fld, None)) is not None:
                    self.grant_ids.add(gid)
            if ev.type in VOIDABLE:  # type: ignore[attr-defined]
                self.targets[se.id] = (ev.type, ev.occurred_at)  # type: ignore[attr-defined]

    def finish(self, files: Sequence[str | Path]) -> list[InputProblem]:
        """Check the last chunk; returns every problem found (file and line order)."""
        if self.chunk:
            self._check()
        named: set[object] = set()
        for p in sorted(self.late, key=lambda p: (p.file, p.line)):
            if p.value in self.created and p.value not in named:
                named.add(p.value)
                self.problems.append(InputProblem(
                    p.file, p.line, p.field, p.value,
                    f"unknown customer when this event's chunk is posted: its customer.created "
                    f"({self.created[p.value]}) comes in a later chunk; put it before the customer's events"))
        self._settle_voids(files)
        return sorted(self.problems, key=lambda p: (p.file, p.line))

    def _settle_voids(self, files: Sequence[str | Path]) -> None:
        """Voids whose target no earlier chunk defined among its non-usage events: a usage event
        of an earlier chunk is a valid target (checked for its time); anything else is unknown."""
        if not self.pending:
            return
        wanted = {void.event.target_event_id for void, _ in self.pending}  # type: ignore[attr-defined]
        found: dict[str, tuple[int, str, datetime]] = {}
        n = 0
        for f in files:
            for ev, _ in iter_file(f):
                if ev is None:
                    continue
                if ev.id in wanted and ev.id not in found:
                    found[ev.id] = (n // self.size, ev.event.type, ev.event.occurred_at)  # type: ignore[attr-defined]
                n += 1
        for void, k in self.pending:
            target = void.event.target_event_id  # type: ignore[attr-defined]
            hit = found.get(target)
            if hit is None or hit[0] >= k:
                self.problems.append(InputProblem(void.file, void.line, "target_event_id", target, _UNKNOWN_EVENT))
                continue
            facts = BatchFacts(targets={target: (hit[1], hit[2])})
            self.problems += check_batch(self.catalog, [void], facts)[2]
