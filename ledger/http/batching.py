"""Group commit: the requests of one server process queued and posted together, one transaction
per group.

Each request handler validates its events, then `GroupCommitter.submit` queues them and awaits
the outcome. A committer thread takes the first queued request, then whatever else
arrives within ``window`` seconds (2 ms by default) or until ``max_events`` events are held,
and posts that group with `ledger.services.serving.post_requests` (one transaction). The future
of each request is resolved only after that call has returned, that is after the transaction
holding its events has committed (or after its own refusal), so a client that got 200 holds a
committed result. While one group commits, the next one gathers: under load the groups grow by
themselves, and one COMMIT (one WAL flush on PostgreSQL) serves many requests.

Committer threads (``threads``; ``ledger serve --committers``, 1 by default) share one queue,
each group in its own transaction. With ``ledger serve --workers N`` (PostgreSQL) each worker
batches its own requests, and the workers' transactions serialise per customer on the customer row
locks, as concurrent imports do. SQLite has one writer at a time: one worker.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.services.serving import Outcome, Submission

WINDOW = 0.002
"""Seconds the committer waits for more requests after the first of a group (2 ms)."""
MAX_EVENTS = 1_000
"""Events in one group at most (a request of more is a group of its own)."""


@dataclass
class _Pending:
    submission: Submission
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class GroupCommitter:
    """Queues submissions from the event loop and posts them in groups on one thread.

    ``post(submissions) -> outcomes`` runs on the committer thread (one outcome per submission,
    in order; `ledger.services.serving.post_requests` bound to an engine and catalog). Counters:
    ``groups`` (transactions run) and ``requests`` (submissions answered)."""

    def __init__(self, post: Callable[[list[Submission]], list[Outcome]], *, window: float = WINDOW,
                 max_events: int = MAX_EVENTS, threads: int = 1) -> None:
        self._post = post
        self.window = window
        self.max_events = max_events
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"ledger-group-commit-{k}", daemon=True)
                         for k in range(threads)]
        self._count = threading.Lock()
        self.groups = 0
        self.requests = 0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Answer what is queued, then end the threads (at server shutdown)."""
        self._stopping.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)
        while True:  # anything queued after the threads ended: refused rather than left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            item.loop.call_soon_threadsafe(_resolve, item.future, Outcome("error", message="server shutting down"))

    async def submit(self, submission: Submission) -> Outcome:
        """Queue ``submission`` and wait for its outcome (after its transaction has ended)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Pending(submission, loop, future))
        return await future

    def _gather(self, first: _Pending) -> list[_Pending]:
        """The group that starts with ``first``: what arrives within the window, up to
        ``max_events`` events."""
        group = [first]
        held = len(first.submission.events)
        deadline = time.monotonic() + self.window
        while held < self.max_events:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if held + len(item.submission.events) > self.max_events:
                self._queue.put(item)  # into a later group (behind those queued meanwhile)
                break
            group.append(item)
            held += len(item.submission.events)
        return group

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            group = self._gather(first)
            try:
                outcomes = self._post([p.submission for p in group])
            except Exception as exc:  # noqa: BLE001 -- a failure of the service: answered to each as a server error
                outcomes = [Outcome("error", message=f"{type(exc).__name__}: {exc}".splitlines()[0])] * len(group)
            with self._count:
                self.groups += 1
                self.requests += len(group)
            # one wake-up of each event loop for the whole group, not one per request
            answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outcome]]] = {}
            for pending, outcome in zip(group, outcomes, strict=True):
                answers.setdefault(pending.loop, []).append((pending.future, outcome))
            for loop, pairs in answers.items():
                loop.call_soon_threadsafe(_resolve_all, pairs)


def _resolve(future: asyncio.Future, outcome: Outcome) -> None:
    if not future.done():  # the client may have gone (the handler was cancelled)
        future.set_result(outcome)


def _resolve_all(pairs: list[tuple[asyncio.Future, Outcome]]) -> None:
    for future, outcome in pairs:
        _resolve(future, outcome)
