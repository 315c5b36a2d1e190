"""The same month on one PostgreSQL and on the local Citus cluster: import, close, verify, seals.

Usage::

    .venv/bin/python benchmarks/bench_citus.py [--quick] [--events N] [--customers M]
        [--shard-count S] [--results FILE] [--pg-admin-url URL] [--note TEXT]

``make bench-citus`` brings the cluster up (``bash tests/citus/cluster.sh up``) and runs this
with ``--results benchmarks/RESULTS.md`` (``make bench-citus BENCH_CITUS=--quick``: the small
run, about a minute). The full run builds 1,000,000 usage events for 10,000 customers and
imports them twice: 10-20 minutes on a 2-core machine.

Two systems, measured in one run on fresh databases of their own:

- **one PostgreSQL**: ``bench_citus_<pid>_<part>_pg`` on the server of ``--pg-admin-url``
  (default ``$LEDGER_BENCH_PG_ADMIN_URL``, else postgresql://postgres@127.0.0.1:5432/postgres),
  ``ledger init``;
- **Citus 3 nodes**: ``bench_citus_<pid>_<part>_citus`` made on the coordinator and both
  workers of tests/citus/cluster.sh (CITUS_PORT, default 9700; the cluster must be up), then
  ``ledger init`` and ``ledger db distribute --shard-count S`` (default 32).

Two parts, each on its own pair of databases (dropped when the part is done):

1. **demo month**: the inputs of ``ledger demo`` (`ledger.demo_data.build_demo_scenario`
   for 2026-10, `write_demo_inputs`) and its catalog (`ledger.demo.demo_catalog_path`):
   ``ledger import events.jsonl usage.csv``, then ``ledger close 2026-10``.
2. **bench month**: `scale_data.build` (the data of bench_scale.py: 1,000,000 usage events of
   the real trace for 10,000 customers; ``--quick``: 20,000 for 200):
   ``ledger import events.jsonl`` (the business events), ``ledger import usage.csv`` (no
   flags: the set-based import), ``ledger close 2026-10``, ``ledger verify``.

Each step runs the ``ledger`` console script next to this interpreter (.venv/bin/ledger) in a
subprocess, as a user would, with ``PYTHONPATH`` = this checkout (so a clone measures its own
engine); the steps alternate between the systems (one PostgreSQL first, then Citus, step by
step), so that other work on the machine weighs on both alike. Measured per step: the wall
clock of the command (interpreter start included), its CPU, the CPU of the database's backends
(all three nodes for Citus: they run on this machine; `scale_measure.BackendCpu`), the
machine's busy CPU and the load average at the start. After each close the seal
(``SELECT seal FROM period_close WHERE action = 'close'``) is read from both databases: they
must be equal.

A step that fails (a non-zero exit, e.g. an error from the database) is reported as failed
with its error, and the later steps of that database are not run; the other system goes on.

Prints the table step | one PostgreSQL | Citus 3 nodes | ratio (Citus / one PostgreSQL),
writes the details (every step's CPU, output and errors, the servers, the seals) to
``benchmarks/work/profile-<stamp>-citus.md`` (ignored by git) and, with ``--results FILE``,
replaces the section "Citus" of that file (`results_md`). Target: the demo month's close on
Citus within 2x the close on one PostgreSQL, with the same seal. Every database made is dropped
at the end, also on failure, Ctrl-C or SIGTERM. Exit code 0 when every step ran and the seals
are equal (whether or not the 2x target is met), 1 otherwise, 130/143 on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "citus"))

import cluster as citus_cluster
import psycopg
import scale_data
from bench_scale import source_description
from results_md import (Row, file_stamp, md_escape, replace_section, shown, size_note, target_table,
                        write_details)
from rich.console import Console
from rich.table import Table
from scale_measure import CHILDREN, BackendCpu, cpu_model, kill_children, loadavg, machine_busy, ram_gib

SECTION = "Citus"
MONTH = "2026-10"
SYSTEMS = ("pg", "citus")
NAMES = {"pg": "one PostgreSQL", "citus": "Citus 3 nodes"}
TARGET_CLOSE_RATIO = 2.0
STEP_TIMEOUT = 3 * 3600
LEDGER = Path(sys.executable).with_name("ledger")

console = Console(width=max(Console().width, 120))


# --------------------------------------------------------------------------- records
@dataclass
class Step:
    """One `ledger` command on one database: wall clock, the command's CPU, the database's
    backends' CPU, the machine's busy CPU (seconds), load average at the start, exit code, output."""

    label: str
    wall: float
    cpu: float
    db_cpu: float
    machine_cpu: float
    load: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def error(self) -> str:
        """The command's last error line (``Error: ...`` when there is one), at most 300 characters."""
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.lower().startswith(("error", "psycopg", "sqlalchemy"))]
        text = (errors or lines or [f"exit {self.returncode}"])[-1]
        return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class Books:
    """One database of one system in one part: its steps by label, the step that failed (None
    if none), the seal read after the close and a few row counts."""

    system: str
    name: str
    url: str
    steps: dict[str, Step] = field(default_factory=dict)
    failed: str | None = None
    seal: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Part:
    """One part of the run (the demo month, the bench month): its steps in order (label, ledger
    arguments), a description of its data, and the books of both systems."""

    key: str
    title: str
    data: str
    steps: list[tuple[str, list[str]]]
    catalog: Path
    books: dict[str, Books] = field(default_factory=dict)

    def seals_equal(self) -> bool:
        seals = [self.books[s].seal for s in SYSTEMS if s in self.books]
        return len(seals) == len(SYSTEMS) and seals[0] is not None and len(set(seals)) == 1


# --------------------------------------------------------------------------- databases
class Databases:
    """The databases this run made, on either system, so that all of them can be dropped."""

    def __init__(self, pg_admin: str):
        self.pg_admin = pg_admin
        self.made: list[tuple[str, str]] = []
        self.problems: list[str] = []

    def url(self, system: str, name: str) -> str:
        if system == "citus":
            return citus_cluster.url(name)
        head, _, tail = self.pg_admin.rpartition("/")
        return f"{head}/{name}" + ("?" + tail.split("?", 1)[1] if "?" in tail else "")

    def create(self, system: str, name: str) -> str:
        """Create database ``name`` on ``system`` (Citus: on all three nodes, nodes registered)."""
        self.made.append((system, name))
        if system == "citus":
            return citus_cluster.create_database(name)
        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(system, name)

    def drop(self, system: str, name: str) -> None:
        """Drop ``name`` on ``system`` (WITH (FORCE)); a failure is printed and kept in `problems`."""
        try:
            if system == "citus":
                citus_cluster.drop_database(name)
            else:
                with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            console.print(f"[dim]dropped {name} ({NAMES[system]})[/dim]")
        except (psycopg.Error, OSError) as exc:
            self.problems.append(f"could not drop {name} on {NAMES[system]}: {exc}")
            console.print(f"[red]{self.problems[-1]}[/red]")
        if (system, name) in self.made:
            self.made.remove((system, name))

    def drop_all(self) -> None:
        for system, name in list(self.made):
            self.drop(system, name)


def server_info(url: str) -> dict[str, str]:
    """The server's version, Citus's version (if installed in that database) and the settings
    that bear on the timings."""
    with psycopg.connect(url) as conn:
        info = {k: conn.execute(f"SHOW {k}").fetchone()[0]
                for k in ("server_version", "shared_buffers", "work_mem", "synchronous_commit")}
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
        info["citus"] = row[0] if row else ""
    return info


def read_seal(url: str) -> str | None:
    """The seal of the close (``period_close`` row with action 'close'), None if there is none."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT seal FROM period_close WHERE action = 'close' ORDER BY id").fetchall()
    return rows[-1][0] if rows else None


def row_counts(url: str) -> dict[str, int]:
    tables = ("customer", "usage_event", "quarantine", "journal_entry", "journal_line", "invoice")
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


# --------------------------------------------------------------------------- steps
def run_ledger(books: Books, label: str, args: list[str], catalog: Path | None, work: Path) -> Step | None:
    """Run ``ledger --database-url URL [--catalog C] ARGS`` on ``books`` and record it as step
    ``label``; None (not run) when an earlier step of these books failed. A non-zero exit marks
    the books failed at this step."""
    if books.failed:
        return None
    cmd = [str(LEDGER), "--database-url", books.url, *(["--catalog", str(catalog)] if catalog else []), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    slug = f"{books.name}-{label}".replace(" ", "-")
    out_path, err_path = work / f"{slug}.out", work / f"{slug}.err"
    load, busy = loadavg(), machine_busy()
    with open(out_path, "wb") as out, open(err_path, "wb") as err, BackendCpu(books.name) as db:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=work)
        CHILDREN.add(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        CHILDREN.discard(proc)
    step = Step(label, wall, usage.ru_utime + usage.ru_stime, db.seconds, machine_busy() - busy, load,
                proc.returncode, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))
    books.steps[label] = step
    if step.ok:
        console.print(f"[dim]  {NAMES[books.system]:>15}: {label} {wall:.2f} s (database CPU {db.seconds:.1f} s)[/dim]")
    else:
        books.failed = label
        console.print(f"[red]  {NAMES[books.system]:>15}: {label} FAILED (exit {step.returncode}): {step.error}[/red]")
    return step


def prepare(dbs: Databases, part: Part, shard_count: int, work: Path) -> None:
    """Fresh databases for ``part`` on both systems: created, ``ledger init``, and on Citus
    ``ledger db distribute --shard-count``."""
    for system in SYSTEMS:
        name = f"bench_citus_{os.getpid()}_{part.key}_{system}"
        url = dbs.create(system, name)
        books = part.books[system] = Books(system, name, url)
        console.print(f"[dim]{part.title}, {NAMES[system]}: {url}[/dim]")
        run_ledger(books, "init", ["init"], None, work)
        if system == "citus":
            run_ledger(books, "distribute", ["db", "distribute", "--shard-count", str(shard_count)], None, work)


def run_part(dbs: Databases, part: Part, shard_count: int, work: Path) -> None:
    """Prepare both databases, run the part's steps alternating between the systems, read the
    seals and counts, then drop both databases."""
    prepare(dbs, part, shard_count, work)
    for label, args in part.steps:
        console.print(f"[dim]{part.title}: {label}[/dim]")
        for system in SYSTEMS:
            run_ledger(part.books[system], label, args, part.catalog, work)
    for books in part.books.values():
        try:
            books.seal = read_seal(books.url)
            books.counts = row_counts(books.url)
        except psycopg.Error as exc:
            console.print(f"[red]  {NAMES[books.system]}: reading the seal failed: {exc}[/red]")
    shown_seals = ", ".join(f"{NAMES[s]} {str(part.books[s].seal)[:16]}" for s in SYSTEMS)
    style = "green" if part.seals_equal() else "red"
    console.print(f"[{style}]{part.title}: seals {'equal' if part.seals_equal() else 'NOT equal'}: "
                  f"{shown_seals}[/{style}]")
    for books in part.books.values():
        dbs.drop(books.system, books.name)


def demo_part(work: Path) -> Part:
    from ledger.demo import demo_catalog_path
    from ledger.demo_data import build_demo_scenario, write_demo_inputs

    scenario = build_demo_scenario(MONTH)
    events, usage = write_demo_inputs(scenario, work / "demo")
    data = f"{len(scenario.customers):,} customers, {len(scenario.usage):,} usage events"
    return Part("demo", "demo month", data,
                [("import", ["import", str(events), str(usage)]), ("close", ["close", MONTH])], demo_catalog_path())


def month_part(work: Path, events: int, customers: int) -> Part:
    from ledger.demo import demo_catalog_path

    console.print(f"[dim]building {events:,} usage events across {customers:,} customers ({MONTH})[/dim]")
    t0 = time.perf_counter()
    data = scale_data.build(work / "month", events, customers, MONTH)
    console.print(f"[dim]  {time.perf_counter() - t0:.1f} s; {data.business_events:,} business events[/dim]")
    text = (f"{data.usage_events:,} usage events, {data.customers:,} customers, "
            f"{data.business_events:,} business events")
    return Part("month", "bench month", text,
                [("business events import", ["import", str(data.events_path)]),
                 ("usage import", ["import", str(data.usage_path)]),
                 ("close", ["close", MONTH]), ("verify", ["verify"])], demo_catalog_path())


# --------------------------------------------------------------------------- results
def cell(books: Books, label: str) -> str:
    step = books.steps.get(label)
    if step is None:
        return "not run"
    return f"{step.wall:.2f} s" if step.ok else "**failed**"


def ratio(part: Part, label: str, attr: str = "wall") -> float | None:
    steps = [part.books[s].steps.get(label) for s in SYSTEMS]
    if any(s is None or not s.ok for s in steps) or getattr(steps[0], attr) <= 0:
        return None
    return getattr(steps[1], attr) / getattr(steps[0], attr)


def step_rows(parts: list[Part]) -> list[tuple[str, str, str, str]]:
    """(step, one PostgreSQL, Citus, ratio) for every timed step of every part."""
    rows = []
    for part in parts:
        for n, (label, _) in enumerate(part.steps):
            name = f"{part.title} ({part.data}): {label}" if n == 0 else f"{part.title}: {label}"
            r = ratio(part, label)
            rows.append((name, cell(part.books["pg"], label), cell(part.books["citus"], label),
                         "" if r is None else f"{r:.2f}x"))
    return rows


def target_rows(parts: list[Part]) -> list[Row]:
    rows = []
    demo = next((p for p in parts if p.key == "demo"), None)
    if demo is not None:
        r = ratio(demo, "close")
        rows.append(Row("demo month close, Citus / one PostgreSQL", "not measured" if r is None else f"{r:.2f}x",
                        f"<= {TARGET_CLOSE_RATIO:g}x", None if r is None else r <= TARGET_CLOSE_RATIO))
    for part in parts:
        seals = [part.books[s].seal for s in SYSTEMS]
        if part.seals_equal():
            measured = f"equal ({seals[0][:12]}...)"
        elif None in seals:
            measured = "not compared: " + ", ".join(f"no seal on {NAMES[s]}" for s, v in zip(SYSTEMS, seals) if v is None)
        else:
            measured = f"differ ({seals[0][:12]}... against {seals[1][:12]}...)"
        rows.append(Row(f"{part.title} seal, Citus = one PostgreSQL", measured, "equal", part.seals_equal()))
    return rows


def failures(parts: list[Part]) -> list[str]:
    return [f"{part.title}, {NAMES[b.system]}, {b.failed}: {b.steps[b.failed].error}"
            for part in parts for b in part.books.values() if b.failed]


def summary_sentences(parts: list[Part]) -> str:
    """Two sentences: how the run was made, then the step Citus slowed most and its database CPU."""
    first = ("Steps alternate between the two systems on fresh databases (one PostgreSQL first); a time is the "
             "wall clock of the `ledger` command, interpreter start included.")
    worst = max(((ratio(p, label), p, label) for p in parts for label, _ in p.steps if ratio(p, label)),
                default=None, key=lambda t: t[0])
    if worst is None:
        return first + " No step ran on both systems."
    r, part, label = worst
    pg, ct = (part.books[s].steps[label] for s in SYSTEMS)
    return (first + f" Citus is slowest against one PostgreSQL in the {part.title}'s {label} ({r:.2f}x), "
            f"where its three nodes' backends used {ct.db_cpu:.1f} s of CPU against {pg.db_cpu:.1f} s.")


def section_lines(run: dict, parts: list[Part], details: str) -> list[str]:
    """The compact section of RESULTS.md, its heading first."""
    lines = [f"## {SECTION}", "",
             (f"`make bench-citus` (benchmarks/bench_citus.py{' --quick' if run['quick'] else ''}), {run['stamp']}; "
              f"{run['source_short']}. Machine: {run['machine']}. {run['systems']}; load {run['load']} at the start."),
             "", "| step | one PostgreSQL | Citus 3 nodes | ratio |", "|---|---:|---:|---:|",
             *(f"| {md_escape(a)} | {b} | {c} | {d} |" for a, b, c, d in step_rows(parts)), "",
             *target_table(target_rows(parts)), ""]
    lines += [f"Failed: {md_escape(text)}" for text in failures(parts)] + ([""] if failures(parts) else [])
    lines += [summary_sentences(parts), "", f"Per-step CPU, outputs, servers and seals: `{details}` (not committed)."]
    return lines


def detail_lines(run: dict, parts: list[Part]) -> list[str]:
    lines = [f"# Citus against one PostgreSQL, {run['stamp']}", "", run["source"], "",
             f"Machine: {run['machine']}. {run['systems']}.", "",
             "Servers: " + "; ".join(f"{NAMES[s]}: {json.dumps(run['servers'].get(s, {}))}" for s in SYSTEMS), "",
             "Columns: wall clock, the command's CPU, the CPU of the database's backends (Citus: all three nodes), "
             "the machine's busy CPU meanwhile (seconds), load average at the start.", ""]
    for part in parts:
        lines += [f"## {part.title}: {part.data}", "",
                  "| system | step | wall s | command CPU s | database CPU s | machine CPU s | load | exit |",
                  "|---|---|---:|---:|---:|---:|---|---:|"]
        for books in part.books.values():
            for s in books.steps.values():
                lines.append(f"| {NAMES[books.system]} | {s.label} | {s.wall:.2f} | {s.cpu:.1f} | {s.db_cpu:.1f} | "
                             f"{s.machine_cpu:.1f} | {s.load} | {s.returncode} |")
        lines.append("")
        for books in part.books.values():
            lines += [f"### {NAMES[books.system]} ({books.name})", "", f"- seal: {books.seal}",
                      f"- rows: {json.dumps(books.counts)}", f"- failed at: {books.failed or 'none'}"]
            for s in books.steps.values():
                if s.stdout.strip() and s.label != "init":
                    lines.append(f"- {s.label} output: `{' '.join(s.stdout.split())[:600]}`")
                if not s.ok:
                    lines += [f"- {s.label} error output:", "", "```", s.stderr.strip()[-4000:], "```"]
            lines.append("")
    return lines


def report(run: dict, parts: list[Part], results: Path | None) -> None:
    table = Table(title="Citus 3 nodes against one PostgreSQL")
    for column in ("step", NAMES["pg"], NAMES["citus"], "ratio"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for row in step_rows(parts):
        table.add_row(*(c.replace("**", "") for c in row))
    console.print(table)
    for r in target_rows(parts):
        mark = "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]")
        console.print(f"{r.name}: {r.measured} (target {r.target}) {mark}")
    for text in failures(parts):
        console.print(f"[red]failed: {text}[/red]")
    console.print(f"machine: {run['machine']}; {run['systems']}")
    now = datetime.now(UTC)
    details = write_details(file_stamp(now), "citus", detail_lines(run, parts))
    console.print(f"details of the run: {shown(details)}")
    if results:
        size = replace_section(results, SECTION, section_lines(run, parts, shown(details)))
        console.print(f"wrote section {SECTION!r} of {results}")
        console.print(size_note(results, size))


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small bench month: 20,000 events, 200 customers")
    parser.add_argument("--events", type=int, default=None, help="usage events of the bench month (default 1,000,000)")
    parser.add_argument("--customers", type=int, default=None, help="customers of the bench month (default 10,000)")
    parser.add_argument("--shard-count", type=int, default=32, help="ledger db distribute --shard-count (default 32)")
    parser.add_argument("--results", type=Path, help="Markdown file whose section 'Citus' to rewrite")
    parser.add_argument("--pg-admin-url", default=None, help="URL of a database of the plain PostgreSQL server "
                                                             "to CREATE/DROP from")
    parser.add_argument("--note", default=None, help="text added to the results (e.g. which source tree)")
    args = parser.parse_args(argv)
    args.events = args.events or (20_000 if args.quick else 1_000_000)
    args.customers = args.customers or (200 if args.quick else 10_000)
    args.pg_admin_url = (args.pg_admin_url or os.environ.get("LEDGER_BENCH_PG_ADMIN_URL")
                         or "postgresql://postgres@127.0.0.1:5432/postgres")
    return args


def _terminate(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def describe(run: dict, parts: list[Part], shard_count: int) -> None:
    """Fill ``run`` with the machine line and the two systems (from the servers' settings)."""
    pg, ct = run["servers"].get("pg", {}), run["servers"].get("citus", {})
    run["machine"] = (f"{os.cpu_count()} shared cores, {cpu_model()}, {ram_gib():.0f} GiB RAM, Python "
                      f"{platform.python_version()}; both systems on this one machine, so the cluster shows "
                      "Citus's overhead, not a speed-up")
    run["systems"] = (f"One PostgreSQL {pg.get('server_version', '?').split()[0]} (shared_buffers "
                      f"{pg.get('shared_buffers', '?')}); Citus {ct.get('citus', '?')} on PostgreSQL "
                      f"{ct.get('server_version', '?').split()[0]}: a coordinator and 2 workers (shared_buffers "
                      f"{ct.get('shared_buffers', '?')} each), {shard_count} shards, distributed by customer")


def main(argv: list[str] | None = None) -> int:
    """Run both parts on both systems (module docstring); 0 when every step ran and the seals are equal."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if not citus_cluster.running():
        console.print("[red]the Citus cluster is not running: bash tests/citus/cluster.sh up[/red]")
        return 1
    if not LEDGER.exists():
        console.print(f"[red]no ledger console script at {LEDGER}: pip install -e . in this venv[/red]")
        return 1
    source, source_short = source_description(args.note)
    run = {"quick": args.quick, "source": source, "source_short": source_short, "load": loadavg(), "servers": {}}
    console.print(f"[dim]{source}[/dim]")
    dbs = Databases(args.pg_admin_url)
    parts: list[Part] = []
    work = Path(tempfile.mkdtemp(prefix="bench-citus-"))
    try:
        run["servers"] = {s: server_info(dbs.url(s, "postgres")) for s in SYSTEMS}
        run["servers"]["citus"]["citus"] = citus_version()
        parts.append(demo_part(work))
        run_part(dbs, parts[0], args.shard_count, work)
        parts.append(month_part(work, args.events, args.customers))
        run_part(dbs, parts[1], args.shard_count, work)
    except KeyboardInterrupt:
        console.print("[red]interrupted: dropping the databases[/red]")
        return 130
    finally:  # also on an error, Ctrl-C or SIGTERM
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        kill_children()
        dbs.drop_all()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    run["stamp"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    describe(run, parts, args.shard_count)
    report(run, parts, args.results)
    ok = not failures(parts) and all(p.seals_equal() for p in parts) and not dbs.problems
    return 0 if ok else 1


def citus_version() -> str:
    """Citus's default version as installed on the coordinator (pg_available_extensions)."""
    with psycopg.connect(citus_cluster.url("postgres")) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'citus'").fetchone()
    return row[0] if row else "?"


if __name__ == "__main__":
    raise SystemExit(main())
