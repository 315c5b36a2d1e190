"""Service functions behind the CLI and the Python API: one call per use case, each taking a
session and returning plain values."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog
from ledger.store.db import copy_rows, is_postgres
from ledger.engine import ImportSummary, import_events
from ledger.errors import InputProblem, InvalidInputError, NotFoundError
from ledger.events import SourcedEvent, iter_file
from ledger.store.models import Customer, Invoice, InvoiceLine
from ledger.core.money import major_str
from ledger.reporting import Column, Report
from ledger.store.events import existing_events

CHUNK = 40_000
"""Events per transaction when a bulk import is chunked (see `import_files`). A chunk in flight
costs about 5 KB of resident memory per event (measured on the benchmark's usage stream: a
worker holding 20,000 events peaked at 174 MB, 72 MB of which is the interpreter and its
libraries), so this bounds an import's memory, with one process or several (``jobs``)."""


def import_files(session: Session, catalog: Catalog, files: Sequence[str | Path], *, dry_run: bool = False,
                 chunk_size: int = CHUNK, progress: Callable[[int, int], None] | None = None,
                 jobs: int = 1) -> ImportSummary:
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

    ``jobs`` > 1 (PostgreSQL, chunked inputs without ``event.voided``): the second pass runs in
    that many processes (this one and ``jobs - 1`` spawned), each posting the events of its own
    customers (balanced by their event counts from the first pass) in file order, in chunks of
    ``chunk_size // jobs`` events (the memory held stays that of one process's chunk), so each
    customer's events are applied exactly as in one process, and customers run in parallel
    under their row locks (see `ledger.store.events.lock_customers`). A spawned worker dies with this
    process (Linux), so a killed import still loses only chunks in flight. Elsewhere ``jobs``
    falls back to 1.

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
    total, problems, loads = _scan(session, files)
    if problems:
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    if jobs > 1 and loads is not None:
        summary = _import_parallel(session, catalog, files, chunk_size, _assign(loads, jobs), progress, total)
    else:
        done = 0

        def chunk_done(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        try:
            summary = _post_share(session, catalog, files, chunk_size, None, 0, chunk_done)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problems, committed=done) from None
    _analyze(session)
    return summary


def _analyze(session: Session) -> None:
    if is_postgres(session):
        # Fresh planner statistics after a bulk load: without them the planner still sees the
        # tables as small and picks nested loops for reports and exports over them.
        session.execute(sa.text("ANALYZE journal_entry, journal_line, usage_event, usage_draw, credit_grant"))
        session.commit()


def _assign(loads: dict[str, int], jobs: int) -> dict[str, int]:
    """customer id -> worker (0..jobs-1): the customers with the most events first, each to the
    worker with the fewest events so far (a top customer may hold 15% of a month's events)."""
    work = [0] * jobs
    out: dict[str, int] = {}
    for cid, n in sorted(loads.items(), key=lambda kv: (-kv[1], kv[0])):
        k = work.index(min(work))
        out[cid] = k
        work[k] += n
    return out


def _import_parallel(session: Session, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
                     assignment: dict[str, int], progress: Callable[[int, int], None] | None,
                     total: int) -> ImportSummary:
    """The second pass of `import_files` in ``jobs = max(assignment) + 1`` processes: worker 0 is
    this process, with ``session``; workers 1.. are spawned (a fresh interpreter each, with its
    own connection). Each posts chunks of ``chunk_size // jobs`` events, so that about
    ``chunk_size`` events are in memory at once whatever ``jobs``. Raises InvalidInputError
    (with the events committed by all workers before it) if a worker's chunk is refused; the
    other workers are stopped and their chunks in flight roll back."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    jobs = max(assignment.values(), default=0) + 1
    per = max(1, chunk_size // jobs)
    url = session.get_bind().url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")
    workers, pipes = {}, {}
    for k in range(1, jobs):
        receive, send = ctx.Pipe(duplex=False)
        workers[k] = ctx.Process(target=_worker, daemon=True, name=f"ledger-import-{k}",
                                 args=(url, catalog, [str(f) for f in files], per, assignment, k, send, os.getpid()))
        workers[k].start()
        send.close()
        pipes[receive] = k
    summary = ImportSummary()
    done = 0
    finished: set[int] = set()

    def drain(timeout: float) -> None:
        """Take the spawned workers' messages; raises what a worker failed with."""
        nonlocal done
        for conn in wait(list(pipes), timeout):
            k = pipes[conn]
            try:
                kind, _, body = conn.recv()
            except EOFError:
                del pipes[conn]
                if k not in finished:
                    workers[k].join(1.0)
                    raise RuntimeError(f"import worker {k} exited with code {workers[k].exitcode}") from None
                continue
            if kind == "chunk":
                done += body
                if progress:
                    progress(done, total)
            elif kind == "summary":
                _add(summary, body)
                finished.add(k)
            elif kind == "refused":
                raise InvalidInputError(body.problems, committed=done)
            else:
                raise RuntimeError(f"import worker {k} failed:\n{body}")

    def own_chunk(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)
        drain(0.0)

    failed = True
    try:
        try:
            _add(summary, _post_share(session, catalog, files, per, assignment, 0, own_chunk))
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problems, committed=done) from None
        while pipes:
            drain(1.0)
        failed = False
    finally:
        for w in workers.values():
            if failed and w.is_alive():
                w.terminate()
            w.join()
    return summary


def _post_share(session: Session, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
                assignment: dict[str, int] | None, k: int, chunk_done: Callable[[int], None]) -> ImportSummary:
    """Post, in chunks of ``chunk_size`` (one transaction each), the events of the customers
    assigned to worker ``k`` (all events when ``assignment`` is None), in file order;
    ``chunk_done(n)`` after each committed chunk."""
    summary = ImportSummary()
    sources = [str(f) for f in files]
    chunk: list[SourcedEvent] = []
    # a CSV row of another worker's customer is skipped before it is validated (the first pass did)
    mine = None if assignment is None else {cid for cid, w in assignment.items() if w == k}

    def flush() -> None:
        _add(summary, import_events(session, catalog, chunk, sources=sources))
        n = len(chunk)
        chunk.clear()
        chunk_done(n)

    for f in files:
        for ev, _ in iter_file(f, customers=mine):
            if ev is not None and (mine is None or getattr(ev.event, "customer_id", None) in mine):
                chunk.append(ev)
                if len(chunk) >= chunk_size:
                    flush()
    if chunk:
        flush()
    return summary


def _worker(url: str, catalog: Catalog, files: list[str], chunk_size: int, assignment: dict[str, int], k: int,
            send, parent: int) -> None:
    """A spawned process of `_import_parallel` (worker ``k`` > 0): `_post_share`, sending
    ("chunk", k, n) per chunk, then ("summary", k, ImportSummary), or ("refused", k,
    InvalidInputError) / ("error", k, traceback) through the pipe ``send``."""
    import traceback

    _die_with_parent()
    from ledger.store.db import open_engine

    def chunk_done(n: int) -> None:
        send.send(("chunk", k, n))
        if os.getppid() != parent:  # the importer is gone (where the kernel did not stop us)
            raise SystemExit(1)

    engine = open_engine(url)
    try:
        with Session(engine) as session:
            send.send(("summary", k, _post_share(session, catalog, files, chunk_size, assignment, k, chunk_done)))
    except InvalidInputError as exc:
        send.send(("refused", k, exc))
    except Exception:  # noqa: BLE001 -- any failure goes to the parent, which stops the others and raises
        send.send(("error", k, traceback.format_exc()))
    finally:
        send.close()
        engine.dispose()


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG),
    so a worker of a killed import stops at once and its chunk in flight rolls back."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _count_lines(path: str | Path) -> int:
    """Non-blank lines of a file (less a CSV header): how many events it holds, at most."""
    try:
        with open(path, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
    except OSError:
        return 0
    return n - 1 if str(path).lower().endswith(".csv") and n else n


def _scan(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem], dict[str, int] | None]:
    """First pass over the input: (events, problems, events per customer): parse problems, the
    same id twice with different content, an id already posted with different content, an
    event of an unknown customer. On PostgreSQL the events are staged with COPY
    (`_scan_staged`), which also counts each customer's events (None if an event names no
    customer: an ``event.voided``); elsewhere an id -> 8-byte digest map is held in memory
    (and the counts are None)."""
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
    return total, problems, None


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


# events per customer, for sharing the second pass among processes (NULL: an event.voided)
_LOADS = "SELECT customer_id, count(*) FROM import_stage GROUP BY customer_id"


def _scan_staged(session: Session, files: Sequence[str | Path]) -> tuple[int, list[InputProblem], dict[str, int] | None]:
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
    loads: dict[str, int] | None = None
    if not problems:
        counts = dict(session.execute(sa.text(_LOADS)).all())
        loads = None if None in counts else counts
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
