"""Profiles of the scale benchmark: py-spy's samples and ledger_sqlstats' statements, summarised.

`summarise_pyspy` reads a py-spy ``raw`` file (collapsed stacks: ``process ...;name (path:line);...
count`` per line, recorded with ``--function --idle``, `PYSPY_RATE` samples per second and
process) and returns per function its cumulative share (samples whose stack holds it) and own
share (samples where it is on top), the share inside psycopg and waiting in its
``Connection.wait``, and per layer of the engine (`LAYERS`: ledger/cli/, ledger/services/,
ledger/core/, ledger/store/, reports/, the rest of ledger/) the share of samples whose innermost
engine frame is in it. Paths are shortened to the repository (``ledger/core/posting.py:229``)
and matched by prefix, so a module moving inside its layer keeps its attribution.

The ``*_lines`` functions render these as Markdown for the detail file of a run (not for
RESULTS.md); `print_profile` prints the top of a profile to the console.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYSPY_RATE = 100
"""py-spy samples per second and process."""
ENGINE = ("ledger/", "reports/")
"""Where the engine's code lives (path prefixes, relative to the repository)."""
ENTRY_FRAMES = ("click/", "runpy", "<frozen", "ledger_sqlstats.py", "<module>", "bench_scale.py",
                "(ledger/__main__.py", "(ledger/cli/")
"""Frames left out of the engine's function list: the interpreter, click, the command line
(the package ``ledger/cli/``) and the benchmark's wrappers (a "(" anchors a path prefix)."""
LAYERS = (
    ("command line", ("ledger/cli/", "ledger/__main__.py")),
    ("services (use cases)", ("ledger/services/",)),
    ("core (accounting rules)", ("ledger/core/",)),
    ("store (database)", ("ledger/store/",)),
    ("reports", ("reports/",)),
    ("other ledger modules", ("ledger/",)),
)
"""(label, path prefixes) of the engine's layers; a frame belongs to the first that matches."""
OUTSIDE = "outside the engine (interpreter, libraries)"

Phase = tuple[str, tuple[str, ...], tuple[str, ...]]
"""(label, function names, path prefixes): the samples of any of the functions defined under any
of the prefixes; the name "*" stands for every frame inside psycopg."""
_ANY_STORE = ("ledger/store/",)
_LOAD: Phase = ("- load the customers' books (core Posting.preload, store load_books)",
                ("Posting.preload", "load_books"), ("ledger/core/", "ledger/store/"))
_WRITE: Phase = ("- write entries and rows (store write_posting)", ("write_posting",), _ANY_STORE)
_COMMIT: Phase = ("- commit (Session.commit)", ("Session.commit",), ("sqlalchemy/orm/",))
_PSYCOPG: Phase = ("inside psycopg (statements, COPY, commits)", ("*",), ("psycopg/",))
PHASES_B1: tuple[Phase, ...] = (
    ("count the lines (services count_lines)", ("count_lines", "_count_lines"), ("ledger/service",)),
    ("first pass: parse and check every line (services scan)", ("scan", "_scan"), ("ledger/service",)),
    ("read and parse the lines, both passes (iter_file)", ("iter_file",), ("ledger/",)),
    ("post the chunks (import_events)", ("import_events",), ("ledger/service", "ledger/engine.py")),
    ("- lock the chunk's customers (store lock_customers)", ("lock_customers",), _ANY_STORE),
    ("- what the books know of the chunk (store batch_facts)", ("batch_facts",), _ANY_STORE),
    ("- check the chunk (core check_batch)", ("check_batch",), ("ledger/core/",)),
    _LOAD,
    ("- apply the events (core Posting.apply)", ("Posting.apply",), ("ledger/core/",)),
    _WRITE, _COMMIT, _PSYCOPG,
)
PHASES_B2: tuple[Phase, ...] = (
    ("the close (close_period)", ("close_period",), ("ledger/close.py", "ledger/service")),
    ("- period-end steps per customer (core close_through)", ("close_through",), ("ledger/core/",)),
    _LOAD, _WRITE,
    ("- invariants 1-5 (store check_all)", ("check_all",), _ANY_STORE),
    ("- seal and lock the period (store seal_and_lock)", ("seal_and_lock",), _ANY_STORE),
    ("- seals of earlier periods (store verify_seals)", ("verify_seals",), _ANY_STORE),
    ("- late events (late_events)", ("late_events",), ("ledger/close.py", "ledger/service", "ledger/store/")),
    _COMMIT, _PSYCOPG,
)


_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")


def _frame(frame: str) -> tuple[str, str]:
    """'name (/full/path/file.py:12)' -> (name, location): the path relative to site-packages,
    the repository or the standard library (``psycopg/connection.py``, ``ledger/store/books.py``,
    ``threading.py``). py-spy records full file names (``--full-filenames``): its own shortening
    keeps only the part of a path with ``__init__.py`` files, which loses the layer of a module
    in a namespace package (ledger/store/ has none)."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    for marker in ("site-packages/", str(ROOT) + "/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = _STDLIB.sub("", path)
    return name, f"{path}:{line}" if line else path


def location(frame: str) -> str:
    """The location of a summarised frame 'name (path:line)': 'path:line'."""
    return frame.rpartition(" (")[2].rstrip(")")


def layer_of(where: str) -> str | None:
    """The label of the engine layer (`LAYERS`) a location belongs to, None outside the engine."""
    return next((label for label, prefixes in LAYERS if where.startswith(prefixes)), None)


def summarise_pyspy(path: Path) -> dict[str, Any]:
    """Summary of a py-spy raw file (shares are fractions of all samples): "samples",
    "processes", "ledger" (the engine's top 15 functions by cumulative share, command-line
    wrappers left out), "own" (top 15 functions by own share), "db_wait" (in psycopg's
    Connection.wait), "psycopg" (inside psycopg), "layers" ({layer: (innermost share, of it
    inside psycopg, anywhere on the stack)}) and "all_cumulative" ({frame: share})."""
    cumulative: Counter[str] = Counter()
    own: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    in_db: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = psycopg_samples = 0
    processes: set[str] = set()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or "resource_tracker" in stack:
            continue  # (the resource tracker: multiprocessing's idle helper of an import with --jobs)
        n = int(count)
        parts = stack.split(";")
        processes.update(f.split(":", 1)[0] for f in parts if f.startswith("process "))
        frames = [f"{a} ({b})" for a, b in (_frame(f) for f in parts if not f.startswith("process "))]
        if not frames:  # a process sampled before its first Python frame
            continue
        total += n
        for f in set(frames):
            cumulative[f] += n
        own[frames[-1]] += n
        inside_psycopg = any("(psycopg/" in f for f in frames)
        psycopg_samples += n if inside_psycopg else 0
        layers = [layer_of(location(f)) for f in frames]
        for label in set(layers) - {None}:
            anywhere[label] += n
        inner = next((label for label in reversed(layers) if label), OUTSIDE)
        innermost[inner] += n
        in_db[inner] += n if inside_psycopg else 0
    if not total:
        return {"samples": 0, "processes": 0, "ledger": [], "own": [], "db_wait": 0.0, "psycopg": 0.0,
                "layers": {}, "all_cumulative": {}}
    ours = [(f, c / total) for f, c in cumulative.most_common()
            if re.search(r"\((ledger|reports)/", f) and not any(e in f for e in ENTRY_FRAMES)]
    return {
        "samples": total,
        "processes": max(1, len(processes)),
        "ledger": ours[:15],
        "own": [(f, c / total) for f, c in own.most_common(15)],
        "db_wait": sum(c for f, c in cumulative.items() if f.startswith("Connection.wait (psycopg/")) / total,
        "psycopg": psycopg_samples / total,
        "layers": {label: (innermost[label] / total, in_db[label] / total, anywhere[label] / total)
                   for label in sorted({*innermost, *anywhere}, key=lambda k: (-innermost[k], -anywhere[k]))},
        "all_cumulative": {f: c / total for f, c in cumulative.items()},
    }


def share(profile: dict | None, names: tuple[str, ...], prefixes: tuple[str, ...]) -> float | None:
    """Cumulative share of the functions ``names`` defined in a file under one of ``prefixes``
    (the largest of the names, as they may call each other); None without a profile."""
    if not profile:
        return None
    if names == ("*",):
        return profile["psycopg"]
    return max((sum(v for f, v in profile["all_cumulative"].items()
                    if f.startswith(name + " (") and location(f).startswith(prefixes)) for name in names),
               default=0.0)


def print_profile(console: Console, m: Any) -> None:
    """Print the top ten engine functions (cumulative) and functions (own time) of a measured
    step with a profile (``m.label``, ``m.profile``); nothing without one."""
    if m is None or not m.profile:
        return
    p = m.profile
    table = Table(title=f"{m.label}: {p['samples']:,} samples, {p['db_wait']:.0%} waiting on PostgreSQL")
    for column in ("ledger function", "cumulative", "any function", "own time"):
        table.add_column(column, justify="right" if column in ("cumulative", "own time") else "left")
    for c, o in _top_pairs(p):
        table.add_row(c[0], f"{c[1]:.1%}", o[0], f"{o[1]:.1%}")
    console.print(table)


def _top_pairs(p: dict, k: int = 10) -> list[tuple[tuple[str, float], tuple[str, float]]]:
    pad = ("", 0.0)
    return [(p["ledger"][i] if i < len(p["ledger"]) else pad, p["own"][i] if i < len(p["own"]) else pad)
            for i in range(min(k, max(len(p["ledger"]), len(p["own"]))))]


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def profile_lines(m: Any) -> list[str]:
    """Markdown: the py-spy summary of a measured step (``label``, ``wall``, ``profile``): the
    engine's functions by cumulative share beside every function by own time, then the layers."""
    if not m.profile or not m.profile["samples"]:
        return [f"{m.label}: no profile (py-spy not installed or no samples).", ""]
    p = m.profile
    several = p.get("processes", 1) > 1
    lines = [
        (f"{m.label} ({m.wall:.1f} s): {p['samples']:,} py-spy samples ({PYSPY_RATE}/s, waits included"
         + (f", of {p['processes']} processes: the importer and its workers" if several else "") + "); "
         f"{p['psycopg']:.1%} of them inside psycopg (statements, COPY, commits), {p['db_wait']:.1%} in its "
         "`Connection.wait` (waiting for PostgreSQL). The engine's functions by cumulative share (the "
         "command line left out), and every function by own time (the frame on top of the stack):"),
        "", "| ledger function | cumulative | any function | own time |", "|---|---:|---|---:|",
        *(f"| {_md(c[0])} | {c[1]:.1%} | {_md(o[0])} | {o[1]:.1%} |" for c, o in _top_pairs(p)),
        "", (f"{m.label} by layer: the layer of the innermost engine frame of each sample (the code running, "
             "or calling the library that runs), the part of it inside psycopg, and the share of samples "
             "with the layer anywhere on the stack:"),
        "", "| layer | innermost | of which in psycopg | anywhere on the stack |", "|---|---:|---:|---:|",
        *(f"| {label} | {a:.1%} | {b:.1%} | {'' if label == OUTSIDE else f'{c:.1%}'} |"
          for label, (a, b, c) in p.get("layers", {}).items()),
        "",
    ]
    return lines


def sql_lines(m: Any, k: int = 8) -> list[str]:
    """Markdown: the ``k`` most expensive SQL statements of a measured step timed by
    ledger_sqlstats (client-side seconds and share of the wall clock); [] without them."""
    if not m.sql:
        return []
    total = sum(s["seconds"] for s in m.sql["statements"])
    calls = sum(s["calls"] for s in m.sql["statements"])
    several = m.profile and m.profile.get("processes", 1) > 1
    lines = [
        (f"SQL ({m.label}): {calls:,} statements executed through SQLAlchemy took {total:.1f} s client side, "
         f"{total / m.wall:.0%} of the wall clock (COPY through the raw psycopg connection and commits are not "
         f"counted here; PostgreSQL backend CPU {m.pg_cpu:.1f} s"
         + ("; with --jobs only the importer's own process is timed, not its workers" if several else "")
         + "). The most expensive:"),
        "", "| statement | calls | seconds | share of wall |", "|---|---:|---:|---:|",
    ]
    for s in m.sql["statements"][:k]:
        sql = s["sql"] if len(s["sql"]) <= 140 else s["sql"][:137] + "..."
        lines.append(f"| `{_md(sql)}` | {s['calls']:,} | {s['seconds']:.1f} | {s['seconds'] / m.wall:.1%} |")
    return lines + [""]


def phase_lines(m: Any, phases: tuple[Phase, ...]) -> list[str]:
    """Markdown: the cumulative share of ``m``'s samples in each of ``phases`` and the
    process-seconds they stand for (samples / `PYSPY_RATE`); [] without a profile."""
    if not m or not m.profile or not m.profile["samples"]:
        return []
    cells = []
    for label, names, prefixes in phases:
        v = share(m.profile, names, prefixes) or 0.0
        if v:
            cells.append(f"| {label} | {v:.1%} | {v * m.profile['samples'] / PYSPY_RATE:.1f} |")
    return [f"{m.label} by phase (cumulative share of samples, and the seconds they stand for, summed over "
            f"its {m.profile.get('processes', 1)} process(es)):", "",
            "| phase | share | process-seconds |", "|---|---:|---:|", *cells, ""]
