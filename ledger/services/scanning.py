"""The first pass of a chunked import (see `ledger.services.importing.import_files`): every line of
the input parsed and checked for what can be checked without posting, in bounded memory, so that
bad input is reported in full and nothing is posted.

The checks: parse problems; the same id twice with different content; an id already posted with
different content; an event of an unknown customer. On PostgreSQL the events are staged with
COPY (`ledger.store.imports.stage_input`) and checked with joins, which also count each
customer's events; elsewhere an id -> 8-byte digest map is held in memory. Either way the
pass's transaction is rolled back: it writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.errors import InputProblem
from ledger.events import iter_file
from ledger.store import imports
from ledger.store.db import is_postgres
from ledger.store.events import existing_events

if TYPE_CHECKING:
    from ledger.store.db import Session

_UNKNOWN = "unknown customer (no customer.created event for it)"


def count_lines(path: str | Path) -> int:
    """Non-blank lines of a file (less a CSV header): how many events it holds, at most."""
    try:
        with open(path, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
    except OSError:
        return 0
    return n - 1 if str(path).lower().endswith(".csv") and n else n


def scan(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem], dict[str, int] | None]:
    """First pass over the input: (events, problems, events per customer). The counts are
    None when an event names no customer (an ``event.voided``) and on SQLite."""
    if is_postgres(session):
        return _scan_staged(session, files)
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
    ids = sorted(set(customers) - created)
    known = imports.known_customers(session, ids)
    for cid in ids:
        if cid not in known:
            file, _, line = customers[cid].rpartition(":")
            problems.append(InputProblem(file, int(line), "customer_id", cid, _UNKNOWN))
    if total > 0 and not problems:
        problems += _conflicts_with_books(session, seen)
    return total, problems, None


def _scan_staged(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem], dict[str, int] | None]:
    """`scan` on PostgreSQL, in bounded memory: each event's id, 16-hex-digit digest, line and
    customer are staged, checked there and against the stored events, then rolled back."""
    problems: list[InputProblem] = []
    names = [str(f) for f in files]
    total = 0

    def staged() -> Iterator[tuple]:
        nonlocal total
        for i, f in enumerate(files):
            for ev, probs in iter_file(f):
                problems.extend(probs)
                if ev is None:
                    continue
                total += 1
                body = ev.event
                created = body.type == "customer.created"  # type: ignore[attr-defined]
                yield ev.id, ev.content_hash[:16], i, ev.line, getattr(body, "customer_id", None), created

    imports.stage_input(session, staged())
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
