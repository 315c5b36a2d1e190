"""Importing events (docs/design.md §6): a batch validated whole, applied in event time, written
and committed; files of any size, in chunks and in parallel processes.

``import_events`` validates a whole batch first (nothing is posted if any event is invalid),
then applies the events in ``occurred_at`` order to a `ledger.core.posting.Posting` (the pure
accounting rules), and writes what it produced through the one writer
(``ledger.store.writer``) in the same transaction. Usage is posted as one consumption entry per
customer per day per import; every usage row keeps the id of the entry that carries it and its
draws per grant, so an auditor can go from revenue to the raw events.

``import_files`` reads JSONL event files and CSV usage files: one batch up to ``CHUNK`` events;
larger inputs are checked in full first (`ledger.services.scanning`), then posted in chunks,
one transaction each, in one process or several.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.checks import check_batch
from ledger.core.posting import ImportSummary, Posting, apply_order
from ledger.errors import InputProblem, InvalidInputError
from ledger.events import SourcedEvent, iter_file
from ledger.services.scanning import count_lines, scan
from ledger.store import books as kept
from ledger.store import imports
from ledger.store.events import batch_facts, lock_customers
from ledger.store.periods import closed_periods
from ledger.store.reader import SessionStore
from ledger.store.writer import write_posting

if TYPE_CHECKING:
    from ledger.store.db import Session

__all__ = ["CHUNK", "ImportSummary", "children_die_with_this_process", "import_events", "import_files"]

CHUNK = 40_000
"""Events per transaction when a bulk import is chunked (see `import_files`). A chunk in flight
costs about 5 KB of resident memory per event (measured on the benchmark's usage stream: a
worker holding 20,000 events peaked at 174 MB, 72 MB of which is the interpreter and its
libraries), so this bounds an import's memory, with one process or several (``jobs``)."""


def import_events(session: Session, catalog: Catalog, events: list[SourcedEvent], *, sources: Sequence[str] = (),
                  parse_problems: Sequence[InputProblem] = (), dry_run: bool = False) -> ImportSummary:
    """Validate and apply a batch of events atomically; commit unless ``dry_run``.

    raises InvalidInputError (every problem, nothing posted). Events are applied in occurred_at
    order (stable: file order breaks ties).
    """
    problems = list(parse_problems)
    locked = lock_customers(session, events)
    fresh, duplicates, more = check_batch(catalog, events, batch_facts(session, events, customers=locked))
    problems.extend(more)
    if problems:
        session.rollback()
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    db = imports.books_key(session)
    try:
        batch_id = imports.open_batch(session, sources, duplicates)
        store = SessionStore(session, catalog.tz, given=locked, cache=kept.BOOKS, db=db)
        posting = Posting(catalog, store, closed=closed_periods(session), import_id=batch_id)
        posting.preload([row.id for row in locked]
                        or {getattr(se.event, "customer_id", None) for se in fresh} - {None})
        for se in sorted(fresh, key=apply_order):
            posting.apply(se)
        token = write_posting(session, posting)
        summary = posting.summary
        summary.duplicates = duplicates
        imports.finish_batch(session, batch_id, posted=summary.posted, quarantined=summary.quarantined,
                             late=summary.late)
    except BaseException:
        session.rollback()
        raise
    summary.dry_run = dry_run
    if dry_run:
        session.rollback()
    else:
        session.commit()
        kept.BOOKS.put(db, token, posting.books)
    return summary


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
    total = sum(count_lines(f) for f in files)
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
    total, problems, loads = scan(session, files)
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
    if imports.analyze_after_bulk_load(session):
        session.commit()
    return summary


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


class _Workers:
    """The spawned workers of `_import_parallel`, their pipes, and what they and this process
    have reported: events committed (``done``) and the summary of the finished ones."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress, self.total = progress, total
        self.workers: dict = {}
        self.pipes: dict = {}
        self.summary = ImportSummary()
        self.done = 0
        self.finished: set[int] = set()

    def spawn(self, url: str, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
              assignment: dict[str, int], jobs: int) -> None:
        """Start workers 1..jobs-1 (a fresh interpreter each, with its own connection)."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        for k in range(1, jobs):
            receive, send = ctx.Pipe(duplex=False)
            self.workers[k] = ctx.Process(target=_worker, daemon=True, name=f"ledger-import-{k}",
                                          args=(url, catalog, [str(f) for f in files], chunk_size, assignment, k,
                                                send, os.getpid()))
            self.workers[k].start()
            send.close()
            self.pipes[receive] = k

    def _committed(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def own_chunk(self, n: int) -> None:
        """After each chunk this process commits: count it, then take the workers' messages."""
        self._committed(n)
        self.drain(0.0)

    def drain(self, timeout: float) -> None:
        """Take the spawned workers' messages; raises what a worker failed with."""
        from multiprocessing.connection import wait

        for conn in wait(list(self.pipes), timeout):
            k = self.pipes[conn]
            try:
                kind, _, body = conn.recv()
            except EOFError:
                del self.pipes[conn]
                if k not in self.finished:
                    self.workers[k].join(1.0)
                    raise RuntimeError(f"import worker {k} exited with code {self.workers[k].exitcode}") from None
                continue
            if kind == "chunk":
                self._committed(body)
            elif kind == "summary":
                _add(self.summary, body)
                self.finished.add(k)
            elif kind == "refused":
                raise InvalidInputError(body.problems, committed=self.done)
            else:
                raise RuntimeError(f"import worker {k} failed:\n{body}")

    def stop(self, failed: bool) -> None:
        """Wait for every worker; after a failure, terminate those still running first."""
        for w in self.workers.values():
            if failed and w.is_alive():
                w.terminate()
            w.join()


def _import_parallel(session: Session, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
                     assignment: dict[str, int], progress: Callable[[int, int], None] | None,
                     total: int) -> ImportSummary:
    """The second pass of `import_files` in ``jobs = max(assignment) + 1`` processes: worker 0 is
    this process, with ``session``; workers 1.. are spawned (a fresh interpreter each, with its
    own connection). Each posts chunks of ``chunk_size // jobs`` events, so that about
    ``chunk_size`` events are in memory at once whatever ``jobs``. Raises InvalidInputError
    (with the events committed by all workers before it) if a worker's chunk is refused; the
    other workers are stopped and their chunks in flight roll back."""
    jobs = max(assignment.values(), default=0) + 1
    per = max(1, chunk_size // jobs)
    run = _Workers(progress, total)
    run.spawn(imports.connect_url(session), catalog, files, per, assignment, jobs)
    failed = True
    try:
        try:
            _add(run.summary, _post_share(session, catalog, files, per, assignment, 0, run.own_chunk))
        except InvalidInputError as exc:
            raise InvalidInputError(exc.problems, committed=run.done) from None
        while run.pipes:
            run.drain(1.0)
        failed = False
    finally:
        run.stop(failed)
    return run.summary


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
    from ledger.store.admin import session_on
    from ledger.store.db import open_engine

    def chunk_done(n: int) -> None:
        send.send(("chunk", k, n))
        if os.getppid() != parent:  # the importer is gone (where the kernel did not stop us)
            raise SystemExit(1)

    engine = open_engine(url)
    try:
        with session_on(engine) as session:
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
        _libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


@functools.cache
def _libc():
    """The C library (loaded once, so that a forked child need not load it), or raises OSError."""
    import ctypes

    return ctypes.CDLL("libc.so.6", use_errno=True)


_TIED: int | None = None  # the pid whose forked children die with it (in `children_die_with_this_process`)
_HOOKED = False


def _tie_forked_child() -> None:
    """In a child forked inside `children_die_with_this_process`: die with the parent, or at
    once if it is already gone."""
    global _TIED
    parent, _TIED = _TIED, None
    if parent is not None:
        _die_with_parent()
        if os.getppid() != parent:
            os._exit(1)


@contextlib.contextmanager
def children_die_with_this_process() -> Iterator[None]:
    """Every process forked by this one inside the ``with`` (e.g. a ProcessPoolExecutor's
    workers, fork start method) is SIGKILLed by the kernel when this process dies, even by
    SIGKILL (Linux; elsewhere nothing changes): a killed command leaves no worker behind, nor
    the database connections they inherited."""
    global _TIED, _HOOKED
    if not _HOOKED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_tie_forked_child)
        _HOOKED = True
    with contextlib.suppress(OSError):
        _libc()
    outer, _TIED = _TIED, os.getpid()
    try:
        yield
    finally:
        _TIED = outer


def _add(total: ImportSummary, part: ImportSummary) -> None:
    for k in ("posted", "duplicates", "quarantined", "late", "entries"):
        setattr(total, k, getattr(total, k) + getattr(part, k))
    total.invoices += part.invoices
    total.quarantine += part.quarantine
    total.late_events += part.late_events
    total.import_id = part.import_id
