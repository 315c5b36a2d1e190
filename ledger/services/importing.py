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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.checks import check_batch
from ledger.core.posting import ImportSummary, Posting, apply_order
from ledger.errors import InputProblem, InvalidInputError, LedgerError
from ledger.events import SourcedEvent, iter_file
from ledger.services.bulk_usage import can_stage, import_staged
from ledger.services.scanning import count_lines, scan
from ledger.store import books as kept
from ledger.store import imports
from ledger.store.db import is_unique_violation
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
    order (stable: file order breaks ties). When a concurrent import commits one of the batch's
    keys first (the same customer created by two imports at once), the batch is rolled back and
    checked again once against what that import committed: an identical event is then a
    duplicate, a different one a problem naming the field and value. raises CatalogError,
    before anything is posted, when the catalog has no company (documents need the seller).
    """
    catalog.require_company("posting events")
    try:
        return _import_once(session, catalog, events, sources, parse_problems, dry_run)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
    return _import_once(session, catalog, events, sources, parse_problems, dry_run)


def _import_once(session: Session, catalog: Catalog, events: list[SourcedEvent], sources: Sequence[str],
                 parse_problems: Sequence[InputProblem], dry_run: bool) -> ImportSummary:
    """One attempt of `import_events`: check, apply, write and commit (or roll back)."""
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
        if duplicates:
            applied = {id(se) for se in fresh}
            summary.duplicate_sources = [se.source for se in events if id(se) not in applied]
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
                 jobs: int = 1, staged: bool | None = None) -> ImportSummary:
    """Import every file (JSONL events, CSV usage).

    One plain usage CSV on PostgreSQL is imported set-based (`ledger.services.bulk_usage`: the
    server parses it, one sum per customer and day is posted, one transaction) when the checks
    of that path prove it reads the file as the general path would. ``staged``: None (default)
    takes that path unless ``chunk_size`` or ``jobs`` ask for the chunked one; False never, True
    whatever they say. The two paths give the same books (a property test).

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

    The first pass also rehearses the posting's checks on the chunks to come
    (`ledger.services.scanning.scan`), so a chunk is refused only for what applying its events
    finds (a business rule, such as a refund of a promotional grant). Then the earlier chunks
    stay committed, and the error carries a note (``__notes__``, PEP 678) saying exactly what
    was: chunks, events, first and last line (per worker with ``jobs``), and how to resume.

    raises InvalidInputError listing every problem (file, line, field, value); nothing posted by
    the failing chunk (with chunks, the message says how many were committed before it).
    An import may issue invoices and credit notes (purchases, plan months, overage), so it needs
    a catalog with a company, checked before any file is read: raises CatalogError without one.
    """
    catalog.require_company("importing events")
    sources = [str(f) for f in files]
    if (chunk_size == CHUNK and jobs == 1 if staged is None else staged) and can_stage(session, list(files), dry_run):
        summary = _import_set_based(session, catalog, files[0], progress)
        if summary is not None:
            return summary
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
    total, problems, loads = scan(session, files, catalog, chunk_size)
    if problems:
        raise InvalidInputError(sorted(problems, key=lambda p: (p.file, p.line)))
    if jobs > 1 and loads is not None:
        summary = _import_parallel(session, catalog, files, chunk_size, _assign(loads, jobs), progress, total)
    else:
        share = _Share(1)

        def chunk_done(n: int) -> None:
            if progress:
                progress(share.events, total)

        try:
            summary = _post_share(session, catalog, files, chunk_size, None, 0, chunk_done, share)
        except LedgerError as exc:
            raise _refusal(exc, share.events, [share]) from None
    if imports.analyze_after_bulk_load(session):
        session.commit()
    return summary


def _import_set_based(session: Session, catalog: Catalog, path: str | Path,
                      progress: Callable[[int, int], None] | None) -> ImportSummary | None:
    """`ledger.services.bulk_usage.import_staged`, then fresh planner statistics; None when the
    set-based path does not take the file (nothing posted)."""
    summary = import_staged(session, catalog, path, progress)
    if summary is None:
        return None
    if imports.analyze_after_bulk_load(session):
        session.commit()
    if progress:
        progress(summary.posted + summary.quarantined, summary.posted + summary.quarantined)
    return summary


@dataclass
class _Share:
    """What one process of a chunked import committed (``worker``: 1-based, as shown to the
    user; ``customers``: how many it posts for, None for all): ``chunks`` transactions holding
    ``events`` events, from line ``first`` through line ``last`` (file:line); ``refused``: the
    first and last line of the chunk that was refused, if one was."""

    worker: int
    customers: int | None = None
    chunks: int = 0
    events: int = 0
    first: str | None = None
    last: str | None = None
    refused: tuple[str, str] | None = None

    def committed(self, n: int, first: str, last: str) -> None:
        self.chunks += 1
        self.events += n
        self.first = self.first or first
        self.last = last

    def describe(self) -> str:
        if self.customers is None:
            done = (f"chunks 1-{self.chunks} ({self.first} through {self.last})" if self.chunks
                    else "no chunk")
            if self.refused is None:
                return done
            return (f"{done}; not posted: chunk {self.chunks + 1} ({self.refused[0]} through {self.refused[1]}) "
                    "and everything after it")
        who = f"worker {self.worker}: "
        if not self.chunks:
            done = who + f"no chunk committed (of {self.customers} customers)"
        else:
            done = who + (f"chunks 1-{self.chunks} ({self.events} events of {self.customers} customers, "
                          f"from {self.first} through {self.last})")
        if self.refused is not None:
            done += (f"; not posted: its chunk {self.chunks + 1} ({self.refused[0]} through {self.refused[1]}) "
                     "and its events after it")
        return done


def _refusal(exc: LedgerError, committed: int, shares: Sequence[_Share], more: Sequence[InputProblem] = ()
             ) -> LedgerError:
    """The error of a chunked import refused while posting: an InvalidInputError counting the
    ``committed`` events (with ``more`` problems, from other workers), with a note saying what
    each share committed and how to resume; another LedgerError gets the same note."""
    if isinstance(exc, InvalidInputError):
        exc = InvalidInputError(list(exc.problems) + list(more), committed=committed)
    if committed:
        chunks = sum(s.chunks for s in shares)
        lines = [f"committed before the refusal: {committed} events in {chunks} chunks, one transaction each"
                 + (f", by {len(shares)} processes, each posting its own customers' events in file order:"
                    if len(shares) > 1 else ": " + shares[0].describe())]
        if len(shares) > 1:
            lines += [f"  {s.describe()}" for s in shares]
        lines.append("to resume: fix the refused line(s), then run the same import again: the events committed "
                     "count as duplicates (each event is posted exactly once, by its id)")
        exc.add_note("\n".join(lines))
    return exc


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
    have reported: events committed (``done``), each worker's `_Share`, and the summary of the
    finished ones."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int, assignment: dict[str, int]) -> None:
        self.progress, self.total = progress, total
        jobs = max(assignment.values(), default=0) + 1
        self.shares = [_Share(k + 1, sum(1 for w in assignment.values() if w == k)) for k in range(jobs)]
        self.workers: dict = {}
        self.pipes: dict = {}
        self.summary = ImportSummary()
        self.done = 0
        self.finished: set[int] = set()
        self.more: list[InputProblem] = []  # problems of workers refused after the first refusal
        self.stop = None

    def spawn(self, url: str, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
              assignment: dict[str, int]) -> None:
        """Start workers 1..jobs-1 (a fresh interpreter each, with its own connection)."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        for k in range(1, len(self.shares)):
            receive, send = ctx.Pipe(duplex=False)
            self.workers[k] = ctx.Process(target=_worker, daemon=True, name=f"ledger-import-{k}",
                                          args=(url, catalog, [str(f) for f in files], chunk_size, assignment, k,
                                                send, os.getpid(), self.stop))
            self.workers[k].start()
            send.close()
            self.pipes[receive] = k

    def own_chunk(self, n: int) -> None:
        """After each chunk this process commits: count it, then take the workers' messages."""
        self._count(n)
        self.drain(0.0)

    def drain(self, timeout: float, *, halting: bool = False) -> None:
        """Take the spawned workers' messages; raises what a worker failed with (unless
        ``halting``: then a refusal only adds its problems, and a worker may end early)."""
        from multiprocessing.connection import wait

        for conn in wait(list(self.pipes), timeout):
            k = self.pipes[conn]
            try:
                kind, _, body = conn.recv()
            except EOFError:
                del self.pipes[conn]
                if k not in self.finished and not halting:
                    self.workers[k].join(1.0)
                    raise RuntimeError(f"import worker {k} exited with code {self.workers[k].exitcode}") from None
                continue
            if kind == "chunk":
                self.shares[k].committed(*body)
                self._count(body[0])
            elif kind == "summary":
                _add(self.summary, body)
                self.finished.add(k)
            elif kind == "refused":
                exc, self.shares[k].refused = body
                if not halting:
                    raise exc
                self.more += exc.problems
            elif not halting:
                raise RuntimeError(f"import worker {k} failed:\n{body}")

    def _count(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def halt(self, wait: float = 600.0) -> None:
        """After a refusal: have every worker stop once its chunk in flight is committed (or
        refused), and take their last messages, so that ``done`` and the shares are exact. A
        worker still running after ``wait`` seconds is terminated."""
        import time

        self.stop.set()
        deadline = time.monotonic() + wait
        while self.pipes and time.monotonic() < deadline:
            self.drain(1.0, halting=True)

    def stop_all(self, failed: bool) -> None:
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
    ``chunk_size`` events are in memory at once whatever ``jobs``. If a worker's chunk is refused,
    the others stop after their chunk in flight, and the InvalidInputError counts the events
    committed by all of them, with a note of each one's chunks (see `_refusal`)."""
    jobs = max(assignment.values(), default=0) + 1
    per = max(1, chunk_size // jobs)
    run = _Workers(progress, total, assignment)
    run.spawn(imports.connect_url(session), catalog, files, per, assignment)
    failed = True
    try:
        try:
            _add(run.summary, _post_share(session, catalog, files, per, assignment, 0, run.own_chunk, run.shares[0]))
            while run.pipes:
                run.drain(1.0)
        except LedgerError as exc:
            run.halt()
            raise _refusal(exc, run.done, run.shares, run.more) from None
        failed = False
    finally:
        run.stop_all(failed)
    return run.summary


def _post_share(session: Session, catalog: Catalog, files: Sequence[str | Path], chunk_size: int,
                assignment: dict[str, int] | None, k: int, chunk_done: Callable[[int], None],
                share: _Share) -> ImportSummary:
    """Post, in chunks of ``chunk_size`` (one transaction each), the events of the customers
    assigned to worker ``k`` (all events when ``assignment`` is None), in file order; each
    committed chunk is counted in ``share``, then ``chunk_done(n)`` is called; a refused one is
    noted in ``share.refused`` before its error propagates."""
    summary = ImportSummary()
    sources = [str(f) for f in files]
    chunk: list[SourcedEvent] = []
    # a CSV row of another worker's customer is skipped before it is validated (the first pass did)
    mine = None if assignment is None else {cid for cid, w in assignment.items() if w == k}

    def flush() -> None:
        try:
            _add(summary, import_events(session, catalog, chunk, sources=sources))
        except LedgerError:
            share.refused = (chunk[0].source, chunk[-1].source)
            raise
        n = len(chunk)
        share.committed(n, chunk[0].source, chunk[-1].source)
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
            send, parent: int, stop) -> None:
    """A spawned process of `_import_parallel` (worker ``k`` > 0): `_post_share`, sending
    ("chunk", k, (n, first line, last line)) per chunk, then ("summary", k, ImportSummary), or
    ("refused", k, (InvalidInputError, (first line, last line))) / ("error", k, traceback)
    through the pipe ``send``; stops after a chunk once the event ``stop`` is set."""
    import traceback

    _die_with_parent()
    from ledger.store.admin import session_on
    from ledger.store.db import open_engine

    share = _Share(k + 1)

    def chunk_done(n: int) -> None:
        send.send(("chunk", k, (n, share.first, share.last)))
        if os.getppid() != parent:  # the importer is gone (where the kernel did not stop us)
            raise SystemExit(1)
        if stop.is_set():  # another worker was refused: stop here, this chunk committed and counted
            raise SystemExit(0)

    engine = open_engine(url)
    try:
        with session_on(engine) as session:
            send.send(("summary", k, _post_share(session, catalog, files, chunk_size, assignment, k, chunk_done,
                                                 share)))
    except InvalidInputError as exc:
        send.send(("refused", k, (exc, share.refused)))
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
