"""Service functions behind the CLI and the Python API: one call per use case, each taking a
session and returning plain values."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.db import copy_rows, is_postgres
from ledger.engine import ImportSummary, _existing, import_events
from ledger.errors import InputProblem, InvalidInputError, NotFoundError
from ledger.events import SourcedEvent, iter_file
from ledger.models import Customer, Invoice, InvoiceLine
from ledger.money import major_str
from ledger.reporting import Column, Report

CHUNK = 50_000
"""Events per transaction when a bulk import is chunked (see `import_files`)."""


def import_files(session: Session, catalog: Catalog, files: Sequence[str | Path], *, dry_run: bool = False,
                 chunk_size: int = CHUNK, progress: Callable[[int, int], None] | None = None) -> ImportSummary:
    """Import every file (JSONL events, CSV usage).

    Up to ``chunk_size`` events: one atomic batch. Larger inputs (bulk usage streams) are read
    twice, in bounded memory: a first pass parses every line and checks what can be checked
    without posting (format, duplicate or conflicting ids within the input and against the
    books, unknown customers), so bad input is reported in full and nothing is posted; the
    second pass posts chunks of ``chunk_size`` events in file order, one transaction each
    (events are applied in time order within a chunk, so a stream should be in time order, with
    the purchases that fund usage before it).
    A crash (even SIGKILL) loses at most the chunk in flight, which rolls back; importing the
    same files again skips what was committed (duplicates) and posts the rest: exactly once.
    ``progress(done, total)`` is called after each chunk. ``dry_run`` always uses one batch.

    raises InvalidInputError listing every problem (file, line, field, value); nothing posted by
    the failing chunk (with chunks, the message says how many were committed before it).
    """
    sources = [str(f) for f in files]
    total = sum(_count_lines(f) for f in files)
    if dry_run or total <= chunk_size:
        events, parse_problems = [], []
        for f in files:
            for ev, probs in iter_file(f):
                parse_problems.extend(probs)
                if ev is not None:
                    events.append(ev)
        summary = import_events(session, catalog, events, sources=sources, parse_problems=parse_problems,
                                dry_run=dry_run)
        if progress:
            progress(total, total)
        return summary
    total, problems = _scan(session, files)
    if problems:
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    summary = ImportSummary()
    done = 0
    chunk: list[SourcedEvent] = []

    def flush() -> None:
        nonlocal done
        try:
            part = import_events(session, catalog, chunk, sources=sources)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problems, committed=done) from None
        done += len(chunk)
        _add(summary, part)
        chunk.clear()
        if progress:
            progress(done, total)

    for f in files:
        for ev, _ in iter_file(f):
            if ev is not None:
                chunk.append(ev)
                if len(chunk) >= chunk_size:
                    flush()
    if chunk:
        flush()
    if is_postgres(session):
        # Fresh planner statistics after a bulk load: without them the planner still sees the
        # tables as small and picks nested loops for reports and exports over them.
        session.execute(sa.text("ANALYZE journal_entry, journal_line, usage_event, usage_draw, credit_grant"))
        session.commit()
    return summary


def _count_lines(path: str | Path) -> int:
    """Non-blank lines of a file (less a CSV header): how many events it holds, at most."""
    try:
        with open(path, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
    except OSError:
        return 0
    return n - 1 if str(path).lower().endswith(".csv") and n else n


def _scan(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem]]:
    """First pass over the input: (events, problems): parse problems, the same id twice with
    different content, an id already posted with different content, an event of an unknown
    customer. On PostgreSQL the events are staged with COPY (`_scan_staged`), elsewhere an
    id -> 8-byte digest map is held in memory."""
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
    known = set()
    ids = sorted(set(customers) - created)
    for i in range(0, len(ids), 500):
        known.update(session.execute(sa.select(Customer.id).where(Customer.id.in_(ids[i:i + 500]))).scalars())
    for cid in ids:
        if cid not in known:
            file, _, line = customers[cid].rpartition(":")
            problems.append(InputProblem(file, int(line), "customer_id", cid,
                                         "unknown customer (no customer.created event for it)"))
    if total > 0 and not problems:
        problems += _conflicts_with_books(session, seen)
    return total, problems


_STAGE = """CREATE TEMPORARY TABLE import_stage (
    id text NOT NULL, digest char(16) NOT NULL, file integer NOT NULL, line integer NOT NULL,
    customer_id text, created boolean NOT NULL) ON COMMIT DROP"""

# each id's first occurrence (what later lines and the books are compared with), sorted once
_FIRST = """CREATE TEMPORARY TABLE import_first ON COMMIT DROP AS
    SELECT DISTINCT ON (id) id, digest, file, line FROM import_stage ORDER BY id, file, line"""

_STAGED_CHECKS = {
    # an id given twice with different content: every later line that differs from the first
    "input": """
        SELECT s.file, s.line, s.id, f.file, f.line FROM import_stage s JOIN import_first f USING (id)
        WHERE s.digest <> f.digest""",
    # a customer that is neither in the books nor created by the input: its first line
    "customers": """
        SELECT DISTINCT ON (s.customer_id) s.file, s.line, s.customer_id FROM import_stage s
        WHERE s.customer_id IS NOT NULL AND NOT s.created
          AND NOT EXISTS (SELECT 1 FROM import_stage c WHERE c.created AND c.customer_id = s.customer_id)
          AND NOT EXISTS (SELECT 1 FROM customer k WHERE k.id = s.customer_id)
        ORDER BY s.customer_id, s.file, s.line""",
}
# an id already posted (as a business or a usage event) with different content
_BOOK_CONFLICTS = """
    SELECT f.file, f.line, f.id, b.source FROM import_first f
    JOIN (SELECT id, content_hash, source FROM event
          UNION ALL SELECT id, content_hash, source FROM usage_event) b ON b.id = f.id
    WHERE substr(b.content_hash, 1, 16) <> f.digest"""


def _scan_staged(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem]]:
    """`_scan` on PostgreSQL, in bounded memory: each event's id, 16-hex-digit digest, line and
    customer are staged with COPY into a temporary table (dropped with the transaction, which
    is rolled back), and the checks are joins there and against ``event`` / ``usage_event``."""
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

    session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    session.execute(sa.text(_STAGE))
    copy_rows(session, "import_stage", ("id", "digest", "file", "line", "customer_id", "created"), staged())
    session.execute(sa.text(_FIRST))
    for file, line, eid, ffile, fline in session.execute(sa.text(_STAGED_CHECKS["input"])):
        problems.append(InputProblem(names[file], line, "id", eid,
                                     f"conflicts with {names[ffile]}:{fline}: same event id, different content"))
    for file, line, cid in session.execute(sa.text(_STAGED_CHECKS["customers"])):
        problems.append(InputProblem(names[file], line, "customer_id", cid,
                                     "unknown customer (no customer.created event for it)"))
    if total > 0 and not problems:
        for file, line, eid, src in session.execute(sa.text(_BOOK_CONFLICTS)):
            problems.append(InputProblem(names[file], line, "id", eid,
                                         f"conflicts with the event already posted from {src}: same event id, "
                                         "different content"))
    session.rollback()
    return total, problems


def _conflicts_with_books(session: Session, seen: dict[str, tuple[bytes, str]]) -> list[InputProblem]:
    """Ids of the input already posted with different content (an identical one is a duplicate)."""
    out = []
    for eid, (h, src) in _existing(session, list(seen)).items():
        digest, source = seen[eid]
        if bytes.fromhex(h[:16]) != digest:
            file, _, line = source.rpartition(":")
            out.append(InputProblem(file, int(line), "id", eid,
                                    f"conflicts with the event already posted from {src}: same event id, "
                                    "different content"))
    session.rollback()
    return out


def _add(total: ImportSummary, part: ImportSummary) -> None:
    for k in ("posted", "duplicates", "quarantined", "late", "entries"):
        setattr(total, k, getattr(total, k) + getattr(part, k))
    total.invoices += part.invoices
    total.quarantine += part.quarantine
    total.late_events += part.late_events
    total.import_id = part.import_id


def invoice_register(session: Session) -> Report:
    """Every invoice: number, customer, dates, subtotal, tax, total (minor units of its currency)."""
    rows = []
    q = (sa.select(Invoice, Customer.name).join(Customer, Customer.id == Invoice.customer_id)
         .order_by(Invoice.series, Invoice.year, Invoice.sequence))
    totals: dict[str, dict] = {}
    for inv, name in session.execute(q):
        rows.append({"number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id, "customer": name,
                     "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(),
                     "currency": inv.currency, "subtotal": inv.subtotal, "tax": inv.tax, "total": inv.total})
        t = totals.setdefault(inv.currency, {"currency": inv.currency, "subtotal": 0, "tax": 0, "total": 0})
        for k in ("subtotal", "tax", "total"):
            t[k] += getattr(inv, k)
    cols = [Column("number", "Number"), Column("kind", "Kind"), Column("customer_id", "Customer"),
            Column("customer", "Name"), Column("issue_date", "Issued"), Column("due_date", "Due"),
            Column("currency", "Cur"), Column("subtotal", "Subtotal", "money"), Column("tax", "Tax", "money"),
            Column("total", "Total", "money")]
    return Report("invoices", "Invoices", None, cols, rows, [totals[k] for k in sorted(totals)])


def invoice_document(session: Session, number: str) -> dict:
    """One invoice with its lines; amounts as decimal strings in major units. raises NotFoundError."""
    inv = session.get(Invoice, number)
    if inv is None:
        raise NotFoundError("invoice", number)
    cur = inv.currency
    lines = session.execute(sa.select(InvoiceLine).where(InvoiceLine.invoice_number == number)
                            .order_by(InvoiceLine.position)).scalars()
    return {"number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id, "currency": cur,
            "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(), "tax_rate": inv.tax_rate,
            "lines": [{"description": ln.description, "quantity": ln.quantity, "unit_price": ln.unit_price,
                       "amount": major_str(ln.amount, cur)} for ln in lines],
            "subtotal": major_str(inv.subtotal, cur), "tax": major_str(inv.tax, cur), "total": major_str(inv.total, cur),
            "event_id": inv.event_id, "entry_id": inv.entry_id}
