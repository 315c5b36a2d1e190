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
2. The business events: ``ledger import events.jsonl``, a subprocess; events/s = business
   events in the file / wall clock of the command.
3. **B1**: ``ledger import usage.csv`` with the default chunk size (``CHUNK`` of the import
   service), a subprocess: wall clock from start to exit (interpreter start included),
   events/s = usage rows / wall, ratio to the COPY time, and the peak RSS of that process
   (``ru_maxrss`` from ``os.wait4`` on its pid; VmRSS is also sampled every 0.1 s to say when
   the peak came). Then, untimed by the targets, the floor: B1's usage rows written
   again server-side (`write_floor`).
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
and the results show how much there was (`scale_measure`).

Profile (default when py-spy is installed: ``.venv/bin/pip install py-spy``; ``--no-profile``
turns it off): B1 and B2 run under `ledger_sqlstats` (every SQL statement timed, client side)
with py-spy attached (``record --function --full-filenames --idle --nonblocking``, 100
samples/s, so waits on the database count). The timed B1 and B2 are the profiled runs (about
3% and 10% slower than unprofiled at 200,000 events); B3 is profiled in an extra 1-worker run
after the timed ones. Cumulative % = share of samples whose stack holds the function; time is
also attributed to the engine's layers (ledger/cli/, services/, core/, store/) by path prefix
(`scale_profile`).

Prints a Rich table (benchmark, measured, target, met?) and writes the details of the run
(per-step CPU and memory, B3's latencies, the data and books, the profiles) to
``benchmarks/work/profile-<stamp>-scale.md`` (ignored by git). With ``--results FILE`` it
replaces the section "Scale (B1-B3, B5)" of that Markdown file (or appends it) with the compact
form (`scale_report`: targets met or not, the machine, the COPY and floor of the same run, two
sentences, the detail file's name) and says whether the file is still under 10 KB. Exit code 0
whether or not the targets are met; 1 if a step fails (143 on SIGTERM), after the clean-up.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import psycopg
import scale_data
from results_md import file_stamp, replace_section, shown, size_note, write_details
from rich.console import Console
from rich.table import Table
from scale_measure import (CATALOG, CHILDREN, BackendCpu, cpu_model, kill_children, loadavg, machine_busy,
                           pyspy_command, ram_gib, run_ledger)
from scale_profile import print_profile, summarise_pyspy
from scale_report import B3_POOL, PROFILED_B3, SECTION, Run, b3_measured, detail_lines, section_lines, table_rows

B3_WARMUP = 10
B3_KEPT = "books kept: "

console = Console(width=max(Console().width, 120))


# --------------------------------------------------------------------------- database
def admin_url(args: argparse.Namespace) -> str:
    """The URL to CREATE/DROP the benchmark's database from: --admin-url, $LEDGER_BENCH_PG_ADMIN_URL,
    $LEDGER_TEST_PG_ADMIN_URL, else the local server's postgres database."""
    return (args.admin_url or os.environ.get("LEDGER_BENCH_PG_ADMIN_URL")
            or os.environ.get("LEDGER_TEST_PG_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")


def db_url(admin: str, dbname: str) -> str:
    """``admin`` with its database name replaced by ``dbname`` (query string kept)."""
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
    """Seconds to write B1's usage rows again, server-side (INSERT ... SELECT, no client, no
    parsing, no pricing), into an empty copy of usage_event with the same primary key, indexes
    and foreign keys: a floor for any import that keeps those rows with their integrity checks,
    to set beside the COPY of the bare file."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE floor_usage (LIKE usage_event INCLUDING ALL)")
        conn.execute("ALTER TABLE floor_usage ADD FOREIGN KEY (entry_id) REFERENCES journal_entry (id), "
                     "ADD FOREIGN KEY (import_id) REFERENCES import_batch (id)")
        conn.commit()
        start = time.perf_counter()
        conn.execute("INSERT INTO floor_usage SELECT * FROM usage_event")
        conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE floor_usage")
        conn.commit()
    return seconds


def book_counts(url: str) -> dict[str, int]:
    """Rows per table of the books ({table: count}) and "database_mb" (pg_database_size, MiB)."""
    tables = ("customer", "event", "usage_event", "usage_draw", "quarantine", "journal_entry", "journal_line",
              "invoice", "credit_grant")
    with psycopg.connect(url) as conn:
        out = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        out["database_mb"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] // 2**20
    return out


def server_info(url: str) -> dict[str, str]:
    """The server's version and the settings that bear on the timings ({name: SHOW value})."""
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
            spy = subprocess.Popen(pyspy_command(pyspy, procs[0].pid, spy_path, subprocesses=False),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            CHILDREN.add(spy)
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
            CHILDREN.discard(spy)
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
def source_description(note: str | None) -> tuple[str, str]:
    """Which engine is measured, in full and short: where `ledger` is imported from, its git
    commit and whether ledger/, reports/ or migrations/ have uncommitted changes (in full: which
    paths; short: how many), then ``note``."""
    import ledger

    where = Path(ledger.__file__).resolve().parent.parent
    text = short = f"engine from {where}"
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "ledger", "reports",
                                "migrations"], capture_output=True, text=True, check=True).stdout.split("\n")
        changed = sorted({line[3:] for line in dirty if line.strip()})
        text += f", commit {head}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else " (clean)")
        short += f", commit {head}" + (f" with uncommitted changes in {len(changed)} paths" if changed else " (clean)")
    except (OSError, subprocess.CalledProcessError):
        text += " (not a git checkout)"
        short += " (not a git checkout)"
    tail = f"; {note}" if note else ""
    return text + tail, short + tail


def find_pyspy() -> str | None:
    """py-spy next to this interpreter (.venv/bin), else on PATH; None if neither."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module's docstring), with the sizes of --quick or the defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="usage events (default 1,000,000)")
    parser.add_argument("--customers", type=int, default=None, help="customers (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 events, 200 customers, "
                                                             "300 API calls per worker")
    parser.add_argument("--b3-events", type=int, default=None, help="timed API calls per worker (default 2,000)")
    parser.add_argument("--b1-jobs", type=int, default=1,
                        help="ledger import --jobs for B1 (default 1: no flag, the set-based import; "
                             "2 or more: the chunked path in that many processes)")
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
    """Run the benchmark (module docstring); 0 whether or not the targets are met. A failing step
    raises (exit 1) after the clean-up; SIGTERM exits 143."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from ledger.services.importing import CHUNK

    run = Run(args, chunk=CHUNK)
    run.source, run.source_short = source_description(args.note)
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
        measure_commands(run, measure, pyspy)
        measure_api(run, url, dbname, work, pyspy)
    finally:  # also on an error or SIGTERM (the traceback follows, exit 1)
        kill_children()
        cleanup(admin, dbname, created, args.keep_db, work)
    report(run)
    return 0


def measure_commands(run: Run, measure: dict, pyspy: str | None) -> None:
    """Steps 0-5 of the module's docstring: the data, the COPY, the business events, B1 (then
    the books' counts and the floor), B2, B5's export and verify; fills ``run``. ``measure``:
    url, dbname and work folder for `run_ledger`."""
    args, url, work = run.args, measure["url"], measure["work"]
    console.print(f"[dim]building {args.events:,} usage events across {args.customers:,} customers "
                  f"({args.month}) from the trace[/dim]")
    t0 = time.perf_counter()
    run.data = data = scale_data.build(work / "data", args.events, args.customers, args.month)
    run.csv_mb = data.usage_path.stat().st_size / 2**20
    console.print(f"[dim]  {time.perf_counter() - t0:.1f} s; {run.csv_mb:.0f} MiB of CSV, "
                  f"{data.business_events:,} business events[/dim]")

    console.print("[dim]COPY baseline[/dim]")
    run.copy_seconds = copy_baseline(url, data.usage_path)
    console.print(f"[dim]  {run.copy_seconds:.2f} s[/dim]")

    console.print("[dim]importing the business events[/dim]")
    run.business = run_ledger(["import", "--format", "csv", str(data.events_path)], label="business events",
                              **measure)
    console.print(f"[dim]  {run.business.wall:.1f} s, {data.business_events / run.business.wall:,.0f} events/s[/dim]")

    console.print(f"[dim]B1 ledger import of {data.usage_events:,} usage events"
                  f"{' (profiled)' if pyspy else ''}[/dim]")
    jobs = ["--jobs", str(args.b1_jobs)] if args.b1_jobs > 1 else []
    run.b1 = run_ledger(["import", "--format", "csv", *jobs, str(data.usage_path)],
                        label="B1 import", pyspy=pyspy, sqlstats=run.profiled, **measure)
    run.b1_summary = next(csv.DictReader(io.StringIO(run.b1.stdout)))
    console.print(f"[dim]  {run.b1.wall:.1f} s, {data.usage_events / run.b1.wall:,.0f} events/s: "
                  f"{run.b1_summary}[/dim]")
    run.counts = book_counts(url)
    console.print("[dim]writing the usage rows alone (the floor of any import that keeps them)[/dim]")
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


def measure_api(run: Run, url: str, dbname: str, work: Path, pyspy: str | None) -> None:
    """Step 6 of the module's docstring: the B3 runs (and the profiled one with ``pyspy``),
    appended to ``run.b3``; raises RuntimeError if the pools or the customers' credits are short."""
    args, data = run.args, run.data
    assert data
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


def cleanup(admin: str, dbname: str, created: bool, keep: bool, work: Path) -> None:
    """Remove the work folder and drop the database (if this run created it), unless ``keep``."""
    if keep:
        console.print(f"kept the work folder {work}" + (f" and the database {dbname}" if created else ""))
        return
    shutil.rmtree(work, ignore_errors=True)
    if not created:
        return
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    console.print(f"[dim]dropped database {dbname}[/dim]")


def report(run: Run) -> None:
    """Print the table and the profiles, write the detail file under benchmarks/work/ and, with
    ``--results``, the compact section of that file (its size against the 10 KB limit printed)."""
    args, data = run.args, run.data
    assert data
    rows = table_rows(run)
    now = datetime.now(UTC)
    run.stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    run.machine = (f"{os.cpu_count()} cores, {cpu_model()}, {ram_gib():.0f} GiB RAM, Python "
                   f"{platform.python_version()}, PostgreSQL {run.server.get('server_version', '?').split()[0]} "
                   "on the same machine")
    table = Table(title=f"Scale: {data.usage_events:,} usage events, {data.customers:,} customers, {args.month}")
    for column in ("benchmark", "measured", "target", "met?"):
        table.add_column(column, justify="left" if column in ("benchmark", "measured") else "right")
    for r in rows:
        table.add_row(r.name, r.measured, r.target,
                      "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]"))
    console.print(table)
    console.print(f"machine: {run.machine}; run {run.stamp}")
    met = [r.name for r in rows if r.met]
    missed = [r.name for r in rows if r.met is False]
    console.print(f"targets met: {', '.join(met) or 'none'}; not met: {', '.join(missed) or 'none'}")
    if run.profiled:
        for m in (run.b1, run.b2, b3_measured(run)):
            print_profile(console, m)
    details = write_details(file_stamp(now), "scale", detail_lines(run, rows, args.results))
    console.print(f"details of the run: {shown(details)}")
    if args.results:
        size = replace_section(args.results, SECTION, section_lines(run, rows, shown(details)))
        console.print(f"wrote section {SECTION!r} of {args.results}")
        console.print(size_note(args.results, size))


if __name__ == "__main__":
    raise SystemExit(main())
