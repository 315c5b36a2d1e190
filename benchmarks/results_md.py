"""Writing benchmarks/RESULTS.md small: one ``## `` section per benchmark script, details elsewhere.

RESULTS.md holds only the latest `make bench` run and what it means, under `LIMIT_BYTES`
(earlier runs are in its git history). Each script replaces its own section with a compact
table of the measured values against the targets (`Row`, `target_table`), the machine line, the
reference measurements of the same run and a sentence or two of interpretation; everything
longer (profiles, per-step breakdowns, what-if modes) goes to a detail file under
``benchmarks/work/`` (`write_details`; ignored by git), which the section names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
LIMIT_BYTES = 10_000
"""The most RESULTS.md may weigh, in bytes (the project's 10 KB)."""


@dataclass
class Row:
    """One line of a section's table: a benchmark, what it measured (text with its unit), its
    target (text, empty for a reference measurement) and whether the target is met (None: no
    target, or not measured)."""

    name: str
    measured: str
    target: str = ""
    met: bool | None = None


def met_cell(met: bool | None) -> str:
    """'yes', '**no**' or '' (no target) for the table's last column."""
    return "" if met is None else ("yes" if met else "**no**")


def target_table(rows: list[Row]) -> list[str]:
    """The Markdown lines of the table benchmark | measured | target | met?."""
    return ["| benchmark | measured | target | met? |", "|---|---|---:|:---:|",
            *(f"| {md_escape(r.name)} | {md_escape(r.measured)} | {r.target} | {met_cell(r.met)} |" for r in rows)]


def md_escape(text: str) -> str:
    """``text`` with its pipes escaped for a Markdown table cell."""
    return text.replace("|", "\\|")


def file_stamp(now: datetime) -> str:
    """A UTC time for file names, to the second: 20261204T150107Z."""
    return now.strftime("%Y%m%dT%H%M%SZ")


def shown(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_details(stamp: str, kind: str, lines: list[str]) -> Path:
    """Write ``benchmarks/work/profile-<stamp>-<kind>.md`` (the folder is created; git ignores
    it) and return its path; raises OSError if it cannot be written."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"profile-{stamp}-{kind}.md"
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path


def replace_section(path: Path, section: str, lines: list[str]) -> int:
    """Replace the section ``## <section>`` of the Markdown file ``path`` (up to the next ``## ``
    heading or the end) with ``lines`` (its heading first), or append it; a missing file starts
    as "# Benchmark results". Returns the file's size in bytes afterwards."""
    body = "\n".join(lines).rstrip("\n") + "\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _m: body + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)
    return len(text.encode())


def size_note(path: Path, size: int) -> str:
    """The console line after a section is written: the file's size against `LIMIT_BYTES`."""
    if size <= LIMIT_BYTES:
        return f"{path}: {size:,} bytes (limit {LIMIT_BYTES:,})"
    return (f"[yellow]{path}: {size:,} bytes, over the limit of {LIMIT_BYTES:,}: shorten its hand-written "
            "parts before committing it[/yellow]")
