"""B1-B3 and B5 at scale on PostgreSQL: bulk import, month close, Python API, export and verify.

Usage::

    .venv/bin/python benchmarks/bench_scale.py [--events N] [--customers M] [--quick]
        [--b3-events E] [--month YYYY-MM] [--results FILE] [--no-profile] [--keep-db]
        [--admin-url URL] [--note TEXT]

Defaults: 1,000,000 usage events across 10,000 customers in October 2026, 2,000 API calls per
worker: about 13 minutes on the 2-core machine of RESULTS.md (B1 under 3 minutes, B3 about 6).
``--quick``: 20,000 events across 200 customers, 300 API calls per worker, about 30 seconds.
``make bench`` runs it after bench_render.py (B4) with ``--results benchmarks/RESULTS.md``
(``make bench BENCH_SCALE=--quick`` for the small run).

What one run does, in this order, all against a PostgreSQL database of its own,
``bench_<pid>``, created on the server of ``--admin-url`` (default ``$LEDGER_BENCH_PG_ADMIN_URL``,
else ``$LEDGER_TEST_PG_ADMIN_URL``, else postgresql://postgres@127.0.0.1:5432/postgres) and
dropped at the end, also on failure or SIGTERM (``--keep-db`` keeps it and the work folder
with the data, outputs and profiles for inspection):

0. **Data** (not timed): `scale_data.build` writes ``events.jsonl`` (customers and the
   purchases funding them) and ``usage.csv`` (the real Azure LLM trace replayed with
   deterministic time shifts; rules in scale_data's docstring) into a temporary folder;
   ``ledger init`` migrates the database.
1. **COPY baseline**: ``CREATE TABLE bare(event_id text PRIMARY KEY, customer_id text,
   occurred_at timestamptz, credits bigint)`` and the usage CSV streamed into it with psycopg's
   ``COPY bare FROM STDIN (FORMAT csv, HEADER true)``, committed (wall clock, this process);
   the table is dropped afterwards.
2. The business events: ``ledger import events.jsonl`` (timed, no target).
3. **B1**: ``ledger import usage.csv`` with the default chunk size (`ledger.service.CHUNK`),
   a subprocess: wall clock from start to exit (interpreter start included), events/s =
   usage rows / wall, ratio to the COPY time, and the peak RSS of that process
   (``ru_maxrss`` from ``os.wait4`` on its pid; VmRSS is also sampled every 0.1 s to say when
   the peak came).
4. **B2**: ``ledger close <month>``, subprocess, seconds and peak RSS.
5. **B5**: ``ledger export journal --format csv`` of the whole journal, lines/s = journal
   lines exported / wall clock of the command; then ``ledger verify`` seconds.
6. **B3**: `ledger.api.Ledger.record_usage`, one usage event per call (one transaction each),
   in November (the month after the closed one) on the books above: 1 worker process, then
   2 worker processes on disjoint customer sets, then 2 workers on the same customers (the
   2-worker rate is both workers' events / the wall clock from the common start to the last
   finish). Each worker first makes 10 untimed calls (connection, imports), then waits on a
   barrier. Customers: annual-commitment customers with credits left, interleaved by rank into
   two pools of up to 500; each call's customer is drawn from the worker's pool by the same
   Zipf rule as the data (sha256 of the call's id), so heavy customers get most calls. The
   run stops before B3 if the calls would ask a customer for more credits than it has left.
   In these runs a worker's first call for a customer derives the book from the journal
   (about 15% of the timed calls). The "books kept" runs (1 worker; 2 workers on different
   customers) measure a worker that has been running: before the barrier each worker also
   posts one untimed call of 1 credit for every customer its timed calls use, so every timed
   call finds the book kept in memory (`books.BookCache`).

For every step the PostgreSQL CPU of the benchmark database's backends is sampled from /proc
(when the server runs on this machine), with the machine's busy CPU (/proc/stat) and the load
average: other work on the machine (a test suite, another benchmark) slows the numbers down,
and the results show how much there was.

Profile (default when py-spy is installed: ``.venv/bin/pip install py-spy``; ``--no-profile``
turns it off): B1 and B2 run under `ledger_sqlstats` (every SQL statement timed, client side)
with py-spy attached (``record --function --idle --nonblocking``, 100 samples/s, so waits on
the database count). The timed B1 and B2 are the profiled runs (about 3% and 10% slower than
unprofiled at 200,000 events); B3 is profiled in an extra 1-worker run after the timed ones.
Cumulative % = share of samples whose stack holds the function.

Prints a Rich table (benchmark, measured, target, met?) and, with ``--results FILE``, replaces
the section "Scale (B1-B3, B5)" of that Markdown file (or appends it). Exit code 0 whether or
not the targets are met; 1 if a step fails (143 on SIGTERM), after the clean-up.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from typing import Self

import psycopg
import scale_data
from rich.console import Console
from rich.table import Table

SECTION = "Scale (B1-B3, B5)"
CATALOG = ROOT / "ledger" / "data" / "demo-catalog.toml"
SQLSTATS = HERE / "ledger_sqlstats.py"
TARGET_B1_RATE = 100_000
TARGET_B1_RATIO = 2.5
TARGET_B1_RSS_MB = 400
TARGET_B2_SECONDS = 30
TARGET_B3_RATE = 1_000
TARGET_B5_RATE = 200_000
B3_POOL = 500
PROFILED_B3 = "1 worker, profiled (no target: py-spy and SQL timing slow it down)"
B3_WARMUP = 10
B3_KEPT = "books kept: "
ENTRY_FRAMES = ("click/", "runpy", "<frozen", "ledger_sqlstats.py", "ledger/__main__.py", "<module>", "ledger/cli.py",
                "ledger/cli_export.py", "bench_scale.py")

console = Console(width=max(Console().width, 120))
_children: set[subprocess.Popen] = set()


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores; /proc/stat: user, nice,
    system, irq, softirq, steal)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


# --------------------------------------------------------------------------- measuring subprocesses
class BackendCpu:
    """Samples the CPU seconds (utime + stime) of the PostgreSQL backends of one database,
    reading /proc every 0.2 s while a subprocess runs; the total counts each backend's last
    sample (a backend that exits loses at most its last 0.2 s)."""

    def __init__(self, dbname: str):
        self.marker = f" {dbname} "
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self.start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan(self) -> dict[int, float]:
        out = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
                if not cmd.startswith("postgres:") or self.marker not in cmd:
                    continue
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / self.ticks
            except (OSError, IndexError, ValueError):
                continue
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, cpu in self._scan().items():
                self.start.setdefault(pid, cpu)
                self.seen[pid] = cpu
            self._stop.wait(0.2)

    def __enter__(self) -> Self:
        self.start = self._scan()  # backends already alive: count only what they do from now
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.seen.items())


def _tree(pid: int) -> list[int]:
    """pid and its descendants (Linux /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class RssWatch:
    """Samples the resident set (VmRSS) of a process and its child processes together (an
    import with --jobs has workers) every 0.1 s: the peak, and when it was reached, in seconds
    from the start, so the peak can be placed in a phase of the run."""

    def __init__(self, pid: int, start: float):
        self.pid, self.start = pid, start
        self.peak_kb, self.peak_at = 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kb = sum(_rss_kb(p) for p in _tree(self.pid))
            if kb > self.peak_kb:
                self.peak_kb, self.peak_at = kb, time.perf_counter() - self.start
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    label: str
    wall: float
    user: float
    sys: float
    rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    pg_cpu: float
    load: str
    machine_cpu: float = 0.0
    rss_peak_at: float = 0.0
    sql: dict | None = None
    profile: dict | None = None

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def other_cpu(self) -> float:
        """CPU the rest of the machine used meanwhile (this script, py-spy, other work)."""
        return max(0.0, self.machine_cpu - self.cpu - self.pg_cpu)


def run_ledger(args: list[str], *, label: str, url: str, dbname: str, work: Path,
               pyspy: str | None = None, sqlstats: bool = False) -> Measured:
    """Run ``ledger --database-url URL --catalog CATALOG ARGS`` as a subprocess and measure it;
    raises RuntimeError on a non-zero exit."""
    base = [sys.executable, str(SQLSTATS)] if sqlstats else [sys.executable, "-m", "ledger"]
    cmd = [*base, "--database-url", url, "--catalog", str(CATALOG), *args]
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    out_path, err_path = work / f"{slug}.out", work / f"{slug}.err"
    stats_path, spy_path = work / f"{slug}.sql.json", work / f"{slug}.pyspy.txt"
    env = dict(os.environ, LEDGER_BENCH_SQLSTATS=str(stats_path), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    load = loadavg()
    busy = machine_busy()
    with (open(out_path, "wb") as out, open(err_path, "wb") as err, open(work / f"{slug}.pyspy.err", "wb") as spy_err,
          BackendCpu(dbname) as pg):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=work)
        _children.add(proc)
        rss = RssWatch(proc.pid, start)
        spy = None
        if pyspy:
            spy = subprocess.Popen([pyspy, "record", "--pid", str(proc.pid), "--subprocesses", "--format", "raw",
                                    "--function",
                                    "--idle", "--nonblocking", "--rate", str(PYSPY_RATE), "-o", str(spy_path)],
                                   stdout=subprocess.DEVNULL, stderr=spy_err)
            _children.add(spy)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        rss.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _children.discard(proc)
        if spy is not None:
            try:
                spy.wait(timeout=120)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            _children.discard(spy)
    # the sampled peak of the process tree; ru_maxrss (the largest single process) if higher
    m = Measured(label, wall, usage.ru_utime, usage.ru_stime, max(usage.ru_maxrss, rss.peak_kb) / 1024, proc.returncode,
                 out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), pg.seconds, load,
                 machine_busy() - busy, rss.peak_at)
    if m.returncode != 0:
        raise RuntimeError(f"{label}: ledger {' '.join(args)} exited {m.returncode}:\n{m.stderr[-3000:]}")
    if sqlstats and stats_path.exists():
        m.sql = json.loads(stats_path.read_text())
    if pyspy and spy_path.exists():
        m.profile = summarise_pyspy(spy_path)
    return m


# --------------------------------------------------------------------------- profiles
def _frame(frame: str) -> tuple[str, str]:
    """'name (path/file.py:12)' -> (name, short location)."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, f"{path}:{line}" if line else path


PYSPY_RATE = 100
"""py-spy samples per second and process."""


def summarise_pyspy(path: Path) -> dict:
    """Per function: cumulative share (stacks containing it) and own share (leaf frame) of the
    samples of a py-spy raw (collapsed stacks) file."""
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = psycopg_samples = 0
    processes: set[str] = set()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or "resource_tracker" in stack:
            continue  # (the resource tracker: multiprocessing's idle helper of an import with --jobs)
        n = int(count)
        total += n
        parts = stack.split(";")
        processes.update(f.split(":", 1)[0] for f in parts if f.startswith("process "))
        frames = [f"{a} ({b})" for a, b in (_frame(f) for f in parts if not f.startswith("process "))]
        if not frames:  # a process sampled before its first Python frame
            total -= n
            continue
        for f in set(frames):
            cumulative[f] += n
        own[frames[-1]] += n
        if any("(psycopg/" in f for f in frames):
            psycopg_samples += n
    if not total:
        return {"samples": 0, "ledger": [], "own": [], "db_wait": 0.0, "psycopg": 0.0, "all_cumulative": {}}
    ours = [(f, c / total) for f, c in cumulative.most_common()
            if re.search(r"\((ledger|reports)/", f) and not any(e in f for e in ENTRY_FRAMES)]
    return {
        "samples": total,
        "processes": max(1, len(processes)),
        "ledger": ours[:15],
        "own": [(f, c / total) for f, c in own.most_common(15)],
        "db_wait": sum(c for f, c in cumulative.items() if f.startswith("Connection.wait (psycopg/")) / total,
        "psycopg": psycopg_samples / total,
        "all_cumulative": {f: c / total for f, c in cumulative.items()},
    }


def share(profile: dict | None, name: str, file_part: str) -> float | None:
    """Cumulative share of the function ``name`` defined in a file containing ``file_part``."""
    if not profile:
        return None
    return sum(v for f, v in profile["all_cumulative"].items()
               if f.startswith(name + " (") and file_part in f)


# --------------------------------------------------------------------------- database
def admin_url(args: argparse.Namespace) -> str:
    return (args.admin_url or os.environ.get("LEDGER_BENCH_PG_ADMIN_URL")
            or os.environ.get("LEDGER_TEST_PG_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")


def db_url(admin: str, dbname: str) -> str:
    head, _, tail = admin.rpartition("/")
    query = ""
    if "?" in tail:
        query = "?" + tail.split("?", 1)[1]
    return f"{head}/{dbname}{query}"


def copy_baseline(url: str, usage_path: Path) -> float:
    """Seconds to COPY the usage CSV into a bare table with a primary key (and commit)."""
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bare")
        conn.execute("CREATE TABLE bare(event_id text PRIMARY KEY, customer_id text, occurred_at timestamptz, "
                     "credits bigint)")
        conn.commit()
        start = time.perf_counter()
        sql = "COPY bare (event_id, customer_id, occurred_at, credits) FROM STDIN WITH (FORMAT csv, HEADER true)"
        with conn.cursor() as cur, open(usage_path, "rb") as fh, cur.copy(sql) as copy:
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - start
        rows = conn.execute("SELECT count(*) FROM bare").fetchone()[0]
        conn.execute("DROP TABLE bare")
        conn.commit()
    return seconds if rows else float("nan")


def write_floor(url: str) -> float:
    """Seconds to write B1's usage rows and draws again, server-side (INSERT ... SELECT, no
    client, no parsing, no pricing), into empty copies of usage_event and usage_draw with the
    same primary keys, indexes and foreign keys: a floor for any import that posts those rows
    with their integrity checks, to set beside the COPY of the bare file."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE floor_usage (LIKE usage_event INCLUDING ALL)")
        conn.execute("ALTER TABLE floor_usage ADD FOREIGN KEY (entry_id) REFERENCES journal_entry (id), "
                     "ADD FOREIGN KEY (import_id) REFERENCES import_batch (id)")
        conn.execute("CREATE TABLE floor_draw (LIKE usage_draw INCLUDING ALL)")
        conn.execute("ALTER TABLE floor_draw ADD FOREIGN KEY (usage_event_id) REFERENCES floor_usage (id), "
                     "ADD FOREIGN KEY (grant_id) REFERENCES credit_grant (id)")
        conn.commit()
        start = time.perf_counter()
        conn.execute("INSERT INTO floor_usage SELECT * FROM usage_event")
        conn.execute("INSERT INTO floor_draw SELECT * FROM usage_draw")
        conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE floor_draw")
        conn.execute("DROP TABLE floor_usage")
        conn.commit()
    return seconds


def book_counts(url: str) -> dict[str, int]:
    tables = ("customer", "event", "usage_event", "usage_draw", "quarantine", "journal_entry", "journal_line",
              "invoice", "credit_grant")
    with psycopg.connect(url) as conn:
        out = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        out["database_mb"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] // 2**20
    return out


def server_info(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {k: conn.execute(f"SHOW {k}").fetchone()[0]
                for k in ("server_version", "shared_buffers", "work_mem", "synchronous_commit", "max_wal_size")}


# --------------------------------------------------------------------------- B3
def _zipf_pick(pool_size: int, key: str) -> int:
    bounds = _zipf_cache.get(pool_size)
    if bounds is None:
        bounds = _zipf_cache[pool_size] = scale_data.zipf_bounds(pool_size)
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    import bisect

    return min(bisect.bisect_right(bounds, u), pool_size - 1)


_zipf_cache: dict[int, list[float]] = {}


def b3_jobs(run: int, worker: int, pool: list[str], count: int, base: datetime,
            trace: list[scale_data.TraceRequest], kept: bool = False) -> tuple[int, list[tuple[str, str, str, int]]]:
    """(untimed calls, jobs): jobs are (event id, customer, occurred_at, credits), the untimed
    warm-up calls first, then the timed ones. With ``kept``, the warm-up also posts one call of
    1 credit per customer the timed calls use, so that each book is already kept in memory."""
    jobs = []
    for n in range(-B3_WARMUP, count):
        eid = f"api-{run}-w{worker}-{'warm' if n < 0 else 'n'}{abs(n):05d}"
        cid = pool[_zipf_pick(len(pool), eid)]
        req = trace[(n + B3_WARMUP + worker * 7919 + run * 104729) % len(trace)]
        at = base + timedelta(days=run, seconds=n + B3_WARMUP, milliseconds=worker)
        jobs.append((eid, cid, f"{at:%Y-%m-%dT%H:%M:%S.%f}Z", req.credits))
    if not kept:
        return B3_WARMUP, jobs
    customers = sorted({job[1] for job in jobs[B3_WARMUP:]})
    at = base + timedelta(days=run, milliseconds=worker)
    primes = [(f"api-{run}-w{worker}-keep{i:05d}", cid, f"{at:%Y-%m-%dT%H:%M:%S.%f}Z", 1)
              for i, cid in enumerate(customers)]
    return B3_WARMUP + len(primes), jobs[:B3_WARMUP] + primes + jobs[B3_WARMUP:]


def b3_worker(url: str, catalog: str, jobs: list, untimed: int, barrier, results, sqlstats: bool) -> None:
    """One API client process: ``untimed`` warm-up calls, barrier, then one record_usage per
    job, timed. With ``sqlstats`` every SQL statement of the timed calls is timed (ledger_sqlstats)."""
    from ledger.api import Ledger

    if sqlstats:
        import ledger_sqlstats
    books = Ledger(url, catalog)
    for eid, cid, at, credits in jobs[:untimed]:
        books.record_usage(eid, customer_id=cid, occurred_at=at, credits=credits)
    barrier.wait()
    if sqlstats:
        ledger_sqlstats._STATS.clear()
    started = time.monotonic()
    posted = quarantined = 0
    latencies = []
    for eid, cid, at, credits in jobs[untimed:]:
        t0 = time.monotonic()
        summary = books.record_usage(eid, customer_id=cid, occurred_at=at, credits=credits)
        latencies.append(time.monotonic() - t0)
        posted += summary.posted
        quarantined += summary.quarantined
    finished = time.monotonic()
    books.close()
    latencies.sort()
    stats = None
    if sqlstats:
        stats = sorted(({"sql": k, "calls": v[0], "seconds": v[1]}
                        for k, v in ledger_sqlstats._STATS.items()), key=lambda r: r["seconds"], reverse=True)
    results.put({"started": started, "finished": finished, "posted": posted, "quarantined": quarantined,
                 "calls": len(latencies), "p50_ms": latencies[len(latencies) // 2] * 1000,
                 "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                 "sql": stats})


def run_b3(url: str, label: str, run: int, pools: list[list[str]], plan: list[tuple[int, list]], dbname: str,
           work: Path, pyspy: str | None = None) -> dict:
    """One B3 run: a worker process per pool; with ``pyspy`` (one worker only) the worker is
    profiled from the barrier on and its SQL statements timed."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(pools) + 1)  # the workers and this process
    results = ctx.Queue()
    procs = [ctx.Process(target=b3_worker, args=(url, str(CATALOG), worker_jobs, untimed, barrier, results,
                                                 pyspy is not None))
             for untimed, worker_jobs in plan]
    load = loadavg()
    busy = machine_busy()
    spy = None
    spy_path = work / f"b3-{run}.pyspy.txt"
    with BackendCpu(dbname) as pg:
        for p in procs:
            p.start()
        barrier.wait(timeout=600)
        if pyspy:
            spy = subprocess.Popen([pyspy, "record", "--pid", str(procs[0].pid), "--format", "raw", "--function",
                                    "--idle", "--nonblocking", "--rate", str(PYSPY_RATE), "-o", str(spy_path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _children.add(spy)
        out = []
        deadline = time.monotonic() + 3600
        while len(out) < len(procs):
            try:
                out.append(results.get(timeout=5))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
                    for p in procs:
                        if p.is_alive():
                            p.terminate()
                    raise RuntimeError(f"B3 {label}: a worker failed (exit codes {[p.exitcode for p in procs]})")
        for p in procs:
            p.join()
        if spy is not None:
            spy.wait(timeout=120)
            _children.discard(spy)
    wall = max(r["finished"] for r in out) - min(r["started"] for r in out)
    calls = sum(r["calls"] for r in out)
    return {"label": label, "workers": len(pools), "calls": calls, "wall": wall, "rate": calls / wall,
            "posted": sum(r["posted"] for r in out), "quarantined": sum(r["quarantined"] for r in out),
            "p50_ms": max(r["p50_ms"] for r in out), "p99_ms": max(r["p99_ms"] for r in out),
            "pg_cpu": pg.seconds, "load": load, "machine_cpu": machine_busy() - busy,
            "distinct_customers": len({job[1] for untimed, worker_jobs in plan for job in worker_jobs[untimed:]}),
            "sql": out[0]["sql"], "profile": summarise_pyspy(spy_path) if spy_path.exists() else None}


def b3_left(data: scale_data.ScaleData) -> dict[str, int]:
    """Credits each annual-commitment customer has left after the month (the welcome credits,
    drawn first, expire with it)."""
    return {p.id: p.commitment - max(0, p.usage - scale_data.WELCOME_CREDITS)
            for p in data.profiles if p.kind == "annual"}


def b3_pools(data: scale_data.ScaleData, per_pool: int) -> list[list[str]]:
    """Two disjoint pools of annual-commitment customers, heaviest first, interleaved by rank."""
    eligible = list(b3_left(data))
    return [eligible[0::2][:per_pool], eligible[1::2][:per_pool]]


def check_b3_demand(data: scale_data.ScaleData, plans: list[list[tuple[int, list[tuple[str, str, str, int]]]]]) -> None:
    """Raise if the B3 calls of all runs would ask a customer for more credits than it has left
    (they would be quarantined instead of posted, which is not what B3 measures)."""
    demand: Counter[str] = Counter()
    for jobs_per_worker in plans:
        for _, jobs in jobs_per_worker:
            for _, cid, _, credits in jobs:
                demand[cid] += credits
    left = b3_left(data)
    short = [(cid, n, left[cid]) for cid, n in demand.items() if n > left[cid]]
    if short:
        raise RuntimeError(f"B3 would exhaust customers (id, asked, left): {short[:5]}")


# --------------------------------------------------------------------------- main
@dataclass
class Row:
    name: str
    measured: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Run:
    args: argparse.Namespace
    data: scale_data.ScaleData | None = None
    copy_seconds: float = 0.0
    floor_seconds: float = 0.0
    business: Measured | None = None
    b1: Measured | None = None
    b1_summary: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    b2: Measured | None = None
    export: Measured | None = None
    export_postings: int = 0
    export_bytes: int = 0
    verify: Measured | None = None
    b3: list[dict] = field(default_factory=list)
    server: dict = field(default_factory=dict)
    profiled: bool = False
    chunk: int = 0
    source: str = ""
    csv_mb: float = 0.0


def source_description(note: str | None) -> str:
    """Which engine is measured: where `ledger` is imported from, its git commit and whether
    ledger/, reports/ or migrations/ have uncommitted changes."""
    import ledger

    where = Path(ledger.__file__).resolve().parent.parent
    text = f"engine from {where}"
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "ledger", "reports",
                                "migrations"], capture_output=True, text=True, check=True).stdout.split("\n")
        changed = sorted({line[3:] for line in dirty if line.strip()})
        text += f", commit {head}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else " (clean)")
    except (OSError, subprocess.CalledProcessError):
        text += " (not a git checkout)"
    return text + (f"; {note}" if note else "")


def find_pyspy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="usage events (default 1,000,000)")
    parser.add_argument("--customers", type=int, default=None, help="customers (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 events, 200 customers, "
                                                             "300 API calls per worker")
    parser.add_argument("--b3-events", type=int, default=None, help="timed API calls per worker (default 2,000)")
    parser.add_argument("--b1-jobs", type=int, default=2, help="ledger import --jobs for B1 (default 2)")
    parser.add_argument("--month", default="2026-10", help="month of the usage (default 2026-10)")
    parser.add_argument("--results", type=Path, help="Markdown file whose scale section to rewrite")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy and no SQL timing")
    parser.add_argument("--keep-db", action="store_true", help="keep the database and the work folder (data, "
                                                               "outputs, profiles) for inspection")
    parser.add_argument("--admin-url", default=None, help="PostgreSQL URL of a database to CREATE/DROP from")
    parser.add_argument("--note", default=None, help="text added to the results (e.g. which source tree)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.events = args.events or (20_000 if quick else 1_000_000)
    args.customers = args.customers or (200 if quick else 10_000)
    args.b3_events = args.b3_events or (300 if quick else 2_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from ledger.service import CHUNK

    run = Run(args, chunk=CHUNK, source=source_description(args.note))
    console.print(f"[dim]{run.source}[/dim]")
    pyspy = None if args.no_profile else find_pyspy()
    run.profiled = pyspy is not None
    if not args.no_profile and pyspy is None:
        console.print("[yellow]py-spy not found (.venv/bin/pip install py-spy): no profile this run[/yellow]")
    admin = admin_url(args)
    dbname = f"bench_{os.getpid()}"
    url = db_url(admin, dbname)
    created = False
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        created = True
        console.print(f"[dim]database {url}, work folder {work}[/dim]")
        run.server = server_info(url)
        measure = {"url": url, "dbname": dbname, "work": work}
        run_ledger(["init"], label="init", **measure)

        console.print(f"[dim]building {args.events:,} usage events across {args.customers:,} customers "
                      f"({args.month}) from the trace[/dim]")
        t0 = time.perf_counter()
        run.data = data = scale_data.build(work / "data", args.events, args.customers, args.month)
        run.csv_mb = data.usage_path.stat().st_size / 2**20
        console.print(f"[dim]  {time.perf_counter() - t0:.1f} s; {data.usage_path.stat().st_size / 2**20:.0f} MiB "
                      f"of CSV, {data.business_events:,} business events[/dim]")

        console.print("[dim]COPY baseline[/dim]")
        run.copy_seconds = copy_baseline(url, data.usage_path)
        console.print(f"[dim]  {run.copy_seconds:.2f} s[/dim]")

        console.print("[dim]importing the business events[/dim]")
        run.business = run_ledger(["import", "--format", "csv", str(data.events_path)], label="business events",
                                  **measure)

        console.print(f"[dim]B1 ledger import of {data.usage_events:,} usage events"
                      f"{' (profiled)' if pyspy else ''}[/dim]")
        run.b1 = run_ledger(["import", "--format", "csv", "--jobs", str(args.b1_jobs), str(data.usage_path)],
                            label="B1 import",
                            pyspy=pyspy, sqlstats=run.profiled, **measure)
        run.b1_summary = next(csv.DictReader(io.StringIO(run.b1.stdout)))
        console.print(f"[dim]  {run.b1.wall:.1f} s, {data.usage_events / run.b1.wall:,.0f} events/s: "
                      f"{run.b1_summary}[/dim]")
        run.counts = book_counts(url)
        console.print("[dim]writing the usage rows and draws alone (the floor of any import that keeps them)[/dim]")
        run.floor_seconds = write_floor(url)
        console.print(f"[dim]  {run.floor_seconds:.1f} s[/dim]")

        console.print(f"[dim]B2 ledger close {args.month}[/dim]")
        run.b2 = run_ledger(["close", args.month], label="B2 close", pyspy=pyspy, sqlstats=run.profiled, **measure)
        console.print(f"[dim]  {run.b2.wall:.1f} s: {run.b2.stdout.strip()}[/dim]")

        console.print("[dim]B5 ledger export journal --format csv, ledger verify[/dim]")
        out = work / "journal.csv"
        run.export = run_ledger(["export", "journal", "--format", "csv", "--out", str(out)], label="B5 export",
                                **measure)
        manifest = json.loads((work / "journal.csv.manifest.json").read_text())
        run.export_postings, run.export_bytes = manifest["postings"], manifest["bytes"]
        console.print(f"[dim]  {run.export.wall:.1f} s, {run.export_postings:,} lines[/dim]")
        out.unlink()
        run.verify = run_ledger(["verify"], label="B5 verify", **measure)
        console.print(f"[dim]  verify {run.verify.wall:.1f} s[/dim]")

        pools = b3_pools(data, B3_POOL)
        if not pools[1]:
            raise RuntimeError("B3: not enough annual-commitment customers for two pools")
        first, _ = scale_data._parse_month(args.month)
        nxt = scale_data._add_months(first, 1)
        base = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
        trace = scale_data.load_trace()
        runs = [("1 worker", [pools[0]], False), ("2 workers, different customers", pools, False),
                ("2 workers, same customers", [pools[0], pools[0]], False),
                (B3_KEPT + "1 worker", [pools[0]], True), (B3_KEPT + "2 workers, different customers", pools, True)]
        if pyspy:
            runs.append((PROFILED_B3, [pools[0]], False))
        plans = [[b3_jobs(n, w, pool, args.b3_events, base, trace, kept) for w, pool in enumerate(p)]
                 for n, (_, p, kept) in enumerate(runs)]
        check_b3_demand(data, plans)
        for n, ((label, p, _), plan) in enumerate(zip(runs, plans, strict=True)):
            console.print(f"[dim]B3 Python API, {label}: {args.b3_events:,} calls per worker[/dim]")
            result = run_b3(url, label, n, p, plan, dbname, work, pyspy=pyspy if label == PROFILED_B3 else None)
            run.b3.append(result)
            console.print(f"[dim]  {result['rate']:,.0f} events/s[/dim]")
    finally:  # also on an error or SIGTERM (the traceback follows, exit 1)
        for proc in list(_children):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cleanup(admin, dbname, created, args.keep_db, work)

    rows = table_rows(run)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{os.cpu_count()} cores, {cpu_model()}, {ram_gib():.0f} GiB RAM, Python {platform.python_version()}, "
               f"PostgreSQL {run.server.get('server_version', '?').split()[0]} on the same machine")
    table = Table(title=f"Scale: {run.data.usage_events:,} usage events, {run.data.customers:,} customers, "
                        f"{args.month}")
    for column in ("benchmark", "measured", "target", "met?"):
        table.add_column(column, justify="left" if column in ("benchmark", "measured") else "right")
    for r in rows:
        table.add_row(r.name, r.measured, r.target,
                      "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]"))
    console.print(table)
    console.print(f"machine: {machine}; run {stamp}")
    met = [r.name for r in rows if r.met]
    missed = [r.name for r in rows if r.met is False]
    console.print(f"targets met: {', '.join(met) or 'none'}; not met: {', '.join(missed) or 'none'}")
    if run.profiled:
        for m in (run.b1, run.b2, b3_measured(run)):
            print_profile(m)
    if args.results:
        write_results(args.results, run, rows, machine, stamp)
        console.print(f"wrote section {SECTION!r} of {args.results}")
    return 0


def cleanup(admin: str, dbname: str, created: bool, keep: bool, work: Path) -> None:
    if keep:
        console.print(f"kept the work folder {work}" + (f" and the database {dbname}" if created else ""))
        return
    shutil.rmtree(work, ignore_errors=True)
    if not created:
        return
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    console.print(f"[dim]dropped database {dbname}[/dim]")


# --------------------------------------------------------------------------- reporting
def table_rows(run: Run) -> list[Row]:
    d = run.data
    assert d and run.b1 and run.b2 and run.export and run.verify and run.business
    b1_rate = d.usage_events / run.b1.wall
    ratio = run.b1.wall / run.copy_seconds
    rows = [
        Row("COPY of the usage CSV into a bare table with a primary key",
            f"{run.copy_seconds:.2f} s ({d.usage_events / run.copy_seconds:,.0f} rows/s)"),
        Row("business events import (customers, purchases, payments)",
            f"{run.business.wall:.1f} s for {d.business_events:,} events"),
        Row("floor: writing only B1's usage rows and draws (INSERT ... SELECT into copies with the same keys, "
            "indexes and foreign keys)", f"{run.floor_seconds:.1f} s ({run.floor_seconds / run.copy_seconds:.1f}x COPY)"),
        Row(f"B1 ledger import --jobs {run.args.b1_jobs} of the usage CSV", f"{b1_rate:,.0f} events/s ({run.b1.wall:.1f} s)",
            f">= {TARGET_B1_RATE:,}/s", bool(b1_rate >= TARGET_B1_RATE)),
        Row("B1 time / COPY time", f"{ratio:.1f}x", f"<= {TARGET_B1_RATIO}x", bool(ratio <= TARGET_B1_RATIO)),
        Row("B1 peak RSS of the import (importer and its workers together)", f"{run.b1.rss_mb:.0f} MB",
            f"< {TARGET_B1_RSS_MB} MB",
            bool(run.b1.rss_mb < TARGET_B1_RSS_MB)),
        Row(f"B2 ledger close {d.month}", f"{run.b2.wall:.1f} s", f"< {TARGET_B2_SECONDS} s",
            bool(run.b2.wall < TARGET_B2_SECONDS)),
        Row("B2 peak RSS of the close process", f"{run.b2.rss_mb:.0f} MB"),
    ]
    for r in run.b3:
        if r["label"] != PROFILED_B3:
            rows.append(Row(f"B3 API record_usage, {r['label']}", f"{r['rate']:,.0f} events/s",
                            f">= {TARGET_B3_RATE:,}/s", bool(r["rate"] >= TARGET_B3_RATE)))
    export_rate = run.export_postings / run.export.wall
    rows += [
        Row("B5 ledger export journal --format csv", f"{export_rate:,.0f} lines/s ({run.export.wall:.1f} s)",
            f">= {TARGET_B5_RATE:,}/s", bool(export_rate >= TARGET_B5_RATE)),
        Row("B5 ledger verify", f"{run.verify.wall:.1f} s"),
    ]
    return rows


def b3_measured(run: Run) -> Measured | None:
    """The profiled B3 run (1 worker) as a Measured, for the profile tables."""
    r = next((r for r in run.b3 if r.get("profile")), None)
    if r is None:
        return None
    return Measured("B3 API, 1 worker (a separate profiled run)", r["wall"], 0.0, 0.0, 0.0, 0, "", "", r["pg_cpu"], r["load"],
                    sql={"statements": r["sql"]} if r["sql"] else None, profile=r["profile"])


def print_profile(m: Measured | None) -> None:
    if m is None or not m.profile:
        return
    p = m.profile
    table = Table(title=f"{m.label}: {p['samples']:,} samples, {p['db_wait']:.0%} waiting on PostgreSQL")
    for column in ("ledger function", "cumulative", "any function", "own time"):
        table.add_column(column, justify="right" if column in ("cumulative", "own time") else "left")
    for i in range(10):
        c = p["ledger"][i] if i < len(p["ledger"]) else ("", 0)
        o = p["own"][i] if i < len(p["own"]) else ("", 0)
        table.add_row(c[0], f"{c[1]:.1%}", o[0], f"{o[1]:.1%}")
    console.print(table)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _sql_rows(m: Measured, k: int = 8) -> list[str]:
    if not m.sql:
        return []
    total = sum(s["seconds"] for s in m.sql["statements"])
    calls = sum(s["calls"] for s in m.sql["statements"])
    lines = [
        (f"SQL ({m.label}): {calls:,} statements executed through SQLAlchemy took {total:.1f} s client side, "
         f"{total / m.wall:.0%} of the wall clock (COPY through the raw psycopg connection and commits are not "
         f"counted here; PostgreSQL backend CPU {m.pg_cpu:.1f} s"
         + ("; with --jobs only the importer's own process is timed, not the workers it spawns"
            if m.profile and m.profile.get("processes", 1) > 1 else "")
         + "). The most expensive:"),
        "",
        "| statement | calls | seconds | share of wall |",
        "|---|---:|---:|---:|",
    ]
    for s in m.sql["statements"][:k]:
        sql = s["sql"] if len(s["sql"]) <= 140 else s["sql"][:137] + "..."
        lines.append(f"| `{_md_escape(sql)}` | {s['calls']:,} | {s['seconds']:.1f} | "
                     f"{s['seconds'] / m.wall:.1%} |")
    return lines


def _profile_rows(m: Measured) -> list[str]:
    if not m.profile or not m.profile["samples"]:
        return [f"{m.label}: no profile (py-spy not installed)."]
    p = m.profile
    lines = [
        (f"{m.label} ({m.wall:.1f} s): {p['samples']:,} py-spy samples (100/s, waits included"
         + (f", of {p['processes']} processes: the importer and its workers" if p.get("processes", 1) > 1 else "")
         + "); "
         f"{p['psycopg']:.1%} of them are inside psycopg (statements, COPY, commits), {p['db_wait']:.1%} in its "
         "`Connection.wait` (waiting for PostgreSQL's answer). The engine's functions by cumulative share "
         "(the command-line wrappers left out), and every function by own time (the frame on top of the "
         "stack):"),
        "",
        "| ledger function | cumulative | any function | own time |",
        "|---|---:|---|---:|",
    ]
    for i in range(10):
        c = p["ledger"][i] if i < len(p["ledger"]) else ("", 0)
        o = p["own"][i] if i < len(p["own"]) else ("", 0)
        lines.append(f"| {_md_escape(c[0])} | {c[1]:.1%} | {_md_escape(o[0])} | {o[1]:.1%} |")
    return lines


def write_results(path: Path, run: Run, rows: list[Row], machine: str, stamp: str) -> None:
    d = run.data
    assert d and run.b1 and run.b2 and run.export and run.verify and run.business
    shape = d.shape()
    c = run.counts
    s = run.server
    q = run.b1_summary
    lines = [
        f"## {SECTION}",
        "",
        (f"`make bench` (benchmarks/bench_scale.py{' --quick' if run.args.quick else ''}), {stamp}. "
        f"Machine: {machine}; PostgreSQL shared_buffers {s.get('shared_buffers')}, work_mem {s.get('work_mem')}, "
        f"synchronous_commit {s.get('synchronous_commit')}, max_wal_size {s.get('max_wal_size')}. "
        "A single run on a shared VM: other work on the machine (load average at the start of each step "
        f"below) slows it down. Measured: {run.source}."),
        "",
        f"Data (benchmarks/scale_data.py): {d.usage_events:,} usage events (the Azure LLM trace replayed "
        f"{d.replays}x with whole-hour shifts) across {d.customers:,} customers in {d.month}, "
        f"{d.credits:,} credits; the top customer has {shape['top_customer_share']:.1%} of the events "
        f"({shape['top_customer_events']:,}), the top 1% of customers {shape['top1pct_share']:.1%}, "
        f"{shape['customers_without_usage']} have none. {d.business_events:,} business events: profiles "
        + ", ".join(f"{k} {v:,}" for k, v in shape["profiles"].items())
        + f". Usage CSV {run.csv_mb:.0f} MiB. Import chunk size {run.chunk:,} "
        f"(the default).",
        "",
        (f"After B1 the books hold {c.get('journal_entry', 0):,} journal entries with {c.get('journal_line', 0):,} "
        f"lines, {c.get('usage_event', 0):,} usage rows, {c.get('usage_draw', 0):,} draws, "
        f"{c.get('quarantine', 0):,} quarantined events ({q.get('quarantined')} reported by the import: the "
        f"hard-capped customers), {c.get('invoice', 0):,} invoices; database {c.get('database_mb', 0):,} MB."),
        "",
        "| benchmark | measured | target | met? |",
        "|---|---|---:|:---:|",
        *(f"| {r.name} | {r.measured} | {r.target} | {'' if r.met is None else ('yes' if r.met else '**no**')} |"
          for r in rows),
        "",
        ("Per process (wall clock includes starting Python; CPU = user + system of the process; PostgreSQL = CPU "
         "of the database's backends, sampled from /proc; other = the rest of the machine's busy CPU meanwhile "
         "(/proc/stat): this script, py-spy, and work that is not the benchmark's, such as a test suite; RSS "
         "peak at = when the sampled resident set (every 0.1 s) was highest, seconds from the start):"),
        "",
        ("| step | wall s | process CPU s | PostgreSQL CPU s | other CPU s | peak RSS MB | RSS peak at s | "
         "load avg at start |"),
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in (run.business, run.b1, run.b2, run.export, run.verify):
        lines.append(f"| {m.label} | {m.wall:.1f} | {m.cpu:.1f} | {m.pg_cpu:.1f} | {m.other_cpu:.1f} | "
                     f"{m.rss_mb:.0f} | {m.rss_peak_at:.1f} | {m.load} |")
    lines += [
        "",
        ("B3 (`Ledger.record_usage`, one transaction per call, in the month after the closed one, on the books "
        "above; customers: annual-commitment customers with credits left, two disjoint pools of up to "
        f"{B3_POOL} interleaved by rank, each call's customer drawn from its pool by the Zipf rule):"),
        "",
        ("| run | calls | customers | events/s | p50 ms | p99 ms | posted | quarantined | PostgreSQL CPU s | "
         "machine CPU s | load |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(f"| {r['label']} | {r['calls']:,} | {r['distinct_customers']} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | "
          f"{r['p99_ms']:.1f} | {r['posted']:,} | {r['quarantined']} | {r['pg_cpu']:.1f} | "
          f"{r['machine_cpu']:.1f} | {r['load']} |"
          for r in run.b3),
        "",
        f"B5: {run.export_postings:,} journal lines exported ({run.export_bytes / 2**20:.0f} MiB of CSV).",
        "",
    ]
    met = [r.name for r in rows if r.met]
    missed = [r.name for r in rows if r.met is False]
    lines += [f"Targets met: {'; '.join(met) or 'none'}.", "", f"Targets **not** met: {'; '.join(missed) or 'none'}.",
              ""]
    lines += ["### Where the time goes (profile of this run)", ""]
    if run.profiled:
        lines += [
            ("B1 and B2 above are the profiled runs: `ledger` ran under benchmarks/ledger_sqlstats.py (each SQL "
             "statement timed) with py-spy attached (`--nonblocking`, 100 samples/s, idle included): at 200,000 "
             "events that cost about 3% on B1 and 10% on B2 against unprofiled runs (one run each). B3 was "
             "profiled in an extra 1-worker run (last row of the B3 table), from its barrier on; the B3 rows "
             "with targets are unprofiled."),
            "",
        ]
        for m in (run.b1, run.b2, b3_measured(run)):
            if m is not None:
                lines += _profile_rows(m) + [""] + _sql_rows(m) + [""]
        lines += phase_lines(run)
    else:
        lines += ["Not profiled in this run (py-spy not installed or --no-profile).", ""]
    text_section = "\n".join(lines).rstrip("\n") + "\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _m: text_section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + text_section
    path.write_text(text)


PHASES_B1 = (
    ("count the lines (service._count_lines)", "_count_lines", "ledger/service.py"),
    ("first pass: parse and check every line (service._scan)", "_scan", "ledger/service.py"),
    ("read and parse the lines, both passes (events.iter_file)", "iter_file", "ledger/events.py"),
    ("post the chunks (engine.import_events)", "import_events", "ledger/engine.py"),
    ("- lock the chunk's customers (lock_customers)", "lock_customers", "ledger/engine.py"),
    ("- validate the chunk (validate_batch)", "validate_batch", "ledger/engine.py"),
    ("- apply the events (Run.apply)", "Run.apply", "ledger/engine.py"),
    ("- load the customers' books (Run.preload, Run._load)", "Run.preload|Run._load_many|Run._load",
     "ledger/engine.py"),
    ("- write entries and rows (Run.finish)", "Run.finish", "ledger/engine.py"),
    ("- commit (Session.commit)", "Session.commit", "sqlalchemy/orm/session.py"),
    ("inside psycopg (statements, COPY, commits)", "*", "psycopg/"),
)
PHASES_B2 = (
    ("period-end steps per customer (Run.close_through)", "Run.close_through", "ledger/engine.py"),
    ("load the customers' books (Run.preload, Run._load)", "Run.preload|Run._load_many|Run._load",
     "ledger/engine.py"),
    ("write the period-end entries (Run.finish)", "Run.finish", "ledger/engine.py"),
    ("invariants 1-5 (invariants.check_all)", "check_all", "ledger/store/invariants.py"),
    ("seal the period (seals.seal_period)", "seal_period", "ledger/store/seals.py"),
    ("seals of earlier periods (seals.verify_seals)", "verify_seals", "ledger/store/seals.py"),
    ("late events (close.late_events)", "late_events", "ledger/close.py"),
    ("commit (Session.commit)", "Session.commit", "sqlalchemy/orm/session.py"),
    ("inside psycopg (statements, COPY, commits)", "*", "psycopg/"),
)


def phase_lines(run: Run) -> list[str]:
    out = []
    for m, phases in ((run.b1, PHASES_B1), (run.b2, PHASES_B2)):
        if not m or not m.profile:
            continue
        cells = []
        for label, name, file_part in phases:
            v = (m.profile["psycopg"] if name == "*"
                 else max(share(m.profile, n, file_part) or 0.0 for n in name.split("|")))
            if v:
                cells.append(f"| {label} | {v:.1%} | {v * m.profile['samples'] / PYSPY_RATE:.1f} |")
        out += [f"{m.label} by phase (cumulative share of samples, and the seconds they stand for, summed over "
                f"its {m.profile.get('processes', 1)} process(es)):", "",
                "| phase | share | process-seconds |", "|---|---:|---:|", *cells, ""]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
