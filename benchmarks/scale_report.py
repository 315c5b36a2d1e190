"""Results of the scale benchmark (B1-B3, B5): its targets, the compact section of RESULTS.md and
the detail file of the run.

`table_rows` turns a finished `Run` into `results_md.Row` values: the reference measurements of
the same run (bare COPY, the server-side floor of B1's rows), then every target with met / not
met. `section_lines` is what RESULTS.md gets: the run's time and source, the machine line, the
table and two sentences of interpretation, and the name of the detail file; `detail_lines` is
everything else (per-step CPU, PostgreSQL CPU and memory, B3's latencies, the data and the
books, the profiles), written under ``benchmarks/work/`` (not committed).

How each figure is computed: rates are events (or lines) / wall clock of the command, seconds
(interpreter start included); the business events rate is the number of business events in
``events.jsonl`` / the wall clock of its ``ledger import``; "x COPY" is a wall clock / the COPY's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import scale_data
from results_md import Row, shown, target_table
from scale_measure import Measured
from scale_profile import PHASES_B1, PHASES_B2, phase_lines, profile_lines, sql_lines

SECTION = "Scale (B1-B3, B5)"
TARGET_BUSINESS_RATE = 5_000
TARGET_B1_RATE = 100_000
TARGET_B1_RATIO = 2.5
TARGET_RSS_MB = 400
TARGET_B2_SECONDS = 10
TARGET_B2_SECONDS_FIRST = 30
"""The close's target when this script was written, still checked beside the current one."""
TARGET_B3_RATE = 1_000
TARGET_B5_RATE = 200_000
TARGET_VERIFY_SECONDS = 5
B3_POOL = 500
PROFILED_B3 = "1 worker, profiled (no target: py-spy and SQL timing slow it down)"


@dataclass
class Run:
    """Everything one run measured (seconds, counts); filled step by step by bench_scale.main."""

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
    csv_mb: float = 0.0
    source: str = ""
    source_short: str = ""
    machine: str = ""
    stamp: str = ""


def _rate_row(name: str, count: int, what: str, m: Measured, target: int, note: str = "") -> Row:
    rate = count / m.wall
    return Row(name, f"{rate:,.0f} {what}/s ({count:,} in {m.wall:.1f} s{note})", f">= {target:,}/s",
               bool(rate >= target))


def table_rows(run: Run) -> list[Row]:
    """The section's table: references first, then each target, met or not (None: no target)."""
    d = run.data
    assert d and run.b1 and run.b2 and run.export and run.verify and run.business
    profiled = ", profiled" if run.profiled else ""
    ratio = run.b1.wall / run.copy_seconds
    others = max((run.business, run.b2, run.export, run.verify), key=lambda m: m.rss_mb)
    rows = [
        Row("reference: bare COPY of the usage CSV (a table with a primary key)",
            f"{run.copy_seconds:.2f} s ({d.usage_events / run.copy_seconds:,.0f} rows/s)"),
        Row("reference: B1's usage rows alone, server-side (INSERT ... SELECT, same keys)",
            f"{run.floor_seconds:.1f} s ({run.floor_seconds / run.copy_seconds:.1f}x COPY)"),
        _rate_row("business events import (customers, purchases, payments)", d.business_events, "events",
                  run.business, TARGET_BUSINESS_RATE),
        _rate_row("B1 ledger import of the usage CSV (set-based)" if run.args.b1_jobs == 1 else
                  f"B1 ledger import --jobs {run.args.b1_jobs} of the usage CSV (chunked)", d.usage_events, "events", run.b1,
                  TARGET_B1_RATE, profiled),
        Row("B1 time / COPY time", f"{ratio:.1f}x", f"<= {TARGET_B1_RATIO}x", bool(ratio <= TARGET_B1_RATIO)),
        Row("B1 peak RSS (importer and its workers together)", f"{run.b1.rss_mb:.0f} MB", f"< {TARGET_RSS_MB} MB",
            bool(run.b1.rss_mb < TARGET_RSS_MB)),
        Row(f"peak RSS of the other commands (highest: {others.label})", f"{others.rss_mb:.0f} MB",
            f"< {TARGET_RSS_MB} MB", bool(others.rss_mb < TARGET_RSS_MB)),
    ]
    for seconds in (TARGET_B2_SECONDS, TARGET_B2_SECONDS_FIRST):
        rows.append(Row(f"B2 ledger close {d.month}" + (" (the earlier target)" if seconds != TARGET_B2_SECONDS else ""),
                        f"{run.b2.wall:.1f} s{' (profiled)' if run.profiled else ''}",
                        f"< {seconds} s", bool(run.b2.wall < seconds)))
    for r in run.b3:
        if r["label"] != PROFILED_B3:
            rows.append(Row(f"B3 API record_usage, {r['label']}",
                            f"{r['rate']:,.0f} events/s (p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms)",
                            f">= {TARGET_B3_RATE:,}/s", bool(r["rate"] >= TARGET_B3_RATE)))
    rows += [
        _rate_row("B5 ledger export journal --format csv", run.export_postings, "lines", run.export, TARGET_B5_RATE),
        Row("B5 ledger verify", f"{run.verify.wall:.1f} s", f"< {TARGET_VERIFY_SECONDS} s",
            bool(run.verify.wall < TARGET_VERIFY_SECONDS)),
    ]
    return rows


def interpretation(run: Run, rows: list[Row]) -> str:
    """Two sentences: what bounds B1 (client or database, against the COPY and the floor), and how
    many targets are met with how much other work the machine had."""
    b1 = run.b1
    assert b1
    bound = ("it is bound by the client (the accounting rules in Python)"
             if b1.cpu > b1.pg_cpu else "it is bound by the database")
    targets = [r for r in rows if r.met is not None]
    return (f"B1 took {b1.wall / run.copy_seconds:.1f}x the bare COPY (writing only its usage rows, "
            f"server-side, takes {run.floor_seconds / run.copy_seconds:.1f}x); its processes used {b1.cpu:.1f} s "
            f"of CPU against PostgreSQL's {b1.pg_cpu:.1f} s in {b1.wall:.1f} s, so {bound}. "
            f"{sum(1 for r in targets if r.met)} of {len(targets)} targets met; other work on the machine used "
            f"{b1.other_cpu:.1f} CPU s during B1 (load {b1.load.split()[0]} at its start), so compare runs by "
            "the ratios to the COPY rather than by absolute rates.")


def section_lines(run: Run, rows: list[Row], details: str) -> list[str]:
    """The Markdown section of RESULTS.md, its heading first; ``details`` names the detail file."""
    d, s = run.data, run.server
    assert d
    return [
        f"## {SECTION}", "",
        (f"`make bench` (benchmarks/bench_scale.py{' --quick' if run.args.quick else ''}), {run.stamp}; "
         f"{run.source_short}. Machine: {run.machine}; shared_buffers {s.get('shared_buffers')}, "
         f"synchronous_commit {s.get('synchronous_commit')}. Data: {d.usage_events:,} usage events "
         f"({run.csv_mb:.0f} MiB of CSV) for {d.customers:,} customers in {d.month}, and {d.business_events:,} "
         "business events."),
        "", *target_table(rows), "",
        interpretation(run, rows), "",
        (f"Per-step CPU and memory, B3's latencies, the books{', the profiles' if run.profiled else ''}: "
         f"`{details}` (not committed)."),
    ]


def b3_measured(run: Run) -> Measured | None:
    """The profiled B3 run (1 worker) as a Measured, for the profile tables; None if none."""
    r = next((r for r in run.b3 if r.get("profile")), None)
    if r is None:
        return None
    return Measured("B3 API, 1 worker (a separate profiled run)", r["wall"], 0.0, 0.0, 0.0, 0, "", "", r["pg_cpu"],
                    r["load"], sql={"statements": r["sql"]} if r["sql"] else None, profile=r["profile"])


def _data_lines(run: Run) -> list[str]:
    d, c, q = run.data, run.counts, run.b1_summary
    assert d
    shape = d.shape()
    return [
        (f"Data (benchmarks/scale_data.py): {d.usage_events:,} usage events (the Azure LLM trace replayed "
         f"{d.replays}x with whole-hour shifts) across {d.customers:,} customers in {d.month}, {d.credits:,} "
         f"credits; the top customer has {shape['top_customer_share']:.1%} of the events "
         f"({shape['top_customer_events']:,}), the top 1% of customers {shape['top1pct_share']:.1%}, "
         f"{shape['customers_without_usage']} have none. {d.business_events:,} business events: profiles "
         + ", ".join(f"{k} {v:,}" for k, v in shape["profiles"].items())
         + f". Usage CSV {run.csv_mb:.0f} MiB. Import chunk size {run.chunk:,} (the default)."),
        "",
        (f"After B1 the books hold {c.get('journal_entry', 0):,} journal entries with {c.get('journal_line', 0):,} "
         f"lines, {c.get('usage_event', 0):,} usage rows, {c.get('usage_draw', 0):,} draws, "
         f"{c.get('quarantine', 0):,} quarantined events ({q.get('quarantined')} reported by the import: the "
         f"hard-capped customers), {c.get('invoice', 0):,} invoices; database {c.get('database_mb', 0):,} MB. "
         f"B5 exported {run.export_postings:,} journal lines ({run.export_bytes / 2**20:.0f} MiB of CSV)."),
        "",
    ]


def _step_lines(run: Run) -> list[str]:
    lines = [
        ("Per process (wall clock includes starting Python; CPU = user + system of the process; PostgreSQL = CPU "
         "of the database's backends, sampled from /proc; other = the rest of the machine's busy CPU meanwhile "
         "(/proc/stat): this script, py-spy, and work that is not the benchmark's; RSS peak at = when the "
         "sampled resident set (every 0.1 s) was highest, seconds from the start):"),
        "",
        "| step | wall s | process CPU s | PostgreSQL CPU s | other CPU s | peak RSS MB | RSS peak at s | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in (run.business, run.b1, run.b2, run.export, run.verify):
        if m is not None:
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
          f"{r['machine_cpu']:.1f} | {r['load']} |" for r in run.b3),
        "",
    ]
    return lines


def _profile_section(run: Run) -> list[str]:
    if not run.profiled:
        return ["Not profiled in this run (py-spy not installed or --no-profile).", ""]
    lines = [
        ("B1 and B2 are the profiled runs: `ledger` ran under benchmarks/ledger_sqlstats.py (each SQL statement "
         "timed) with py-spy attached (`--nonblocking`, 100 samples/s, idle included): at 200,000 events that "
         "cost about 3% on B1 and 10% on B2 against unprofiled runs (one run each). B3 was profiled in an extra "
         "1-worker run, from its barrier on; the B3 rows with targets are unprofiled."),
        "",
    ]
    for m in (run.b1, run.b2, b3_measured(run)):
        if m is not None:
            lines += profile_lines(m) + sql_lines(m)
    return lines + phase_lines(run.b1, PHASES_B1) + phase_lines(run.b2, PHASES_B2)


def detail_lines(run: Run, rows: list[Row], results: Any) -> list[str]:
    """The detail file of the run (Markdown): the section's table again, the machine and source
    in full, the data and books, per-step and B3 tables, and the profiles when there are."""
    s = run.server
    return [
        f"# Scale benchmark (B1-B3, B5), {run.stamp}", "",
        (f"The details of the run summarised in the section \"{SECTION}\" of "
         f"{shown(results) if results else 'the results (not written: no --results)'}."),
        "",
        (f"Machine: {run.machine}; PostgreSQL shared_buffers {s.get('shared_buffers')}, work_mem "
         f"{s.get('work_mem')}, synchronous_commit {s.get('synchronous_commit')}, max_wal_size "
         f"{s.get('max_wal_size')}. Measured: {run.source}."),
        "", *target_table(rows), "",
        *_data_lines(run), *_step_lines(run), "## Where the time goes (profile of this run)", "",
        *_profile_section(run),
    ]
