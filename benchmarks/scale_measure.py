"""Measuring the scale benchmark's steps: the machine, and each `ledger` command as a subprocess.

`run_ledger` runs ``ledger --database-url URL --catalog CATALOG ARGS`` (optionally under
``ledger_sqlstats.py``, every SQL statement timed, and py-spy) and returns a `Measured`: wall
clock (seconds, interpreter start included), user and system CPU of the process (``os.wait4``),
the peak resident set of the process and its children (MB; `RssWatch`, VmRSS every 0.1 s, or
``ru_maxrss`` if higher) and when it came, the CPU seconds of the database's PostgreSQL backends
(`BackendCpu`, /proc every 0.2 s, when the server runs on this machine), the machine's busy CPU
meanwhile (/proc/stat) and the load average at the start. Linux only (/proc).

Every subprocess started here is in `CHILDREN` until it ends, so that the caller can kill what
is left on an error or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from scale_profile import PYSPY_RATE, summarise_pyspy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CATALOG = ROOT / "ledger" / "data" / "demo-catalog.toml"
SQLSTATS = HERE / "ledger_sqlstats.py"
CHILDREN: set[subprocess.Popen] = set()
"""Subprocesses (ledger commands, py-spy) started and not yet waited for."""


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform.processor(), else "unknown"."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    """The machine's memory in GiB (/proc/meminfo MemTotal); 0.0 if unknown."""
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
    """The 1, 5 and 15 minute load averages (/proc/loadavg), e.g. "1.03 1.06 1.04"; "?" if unknown."""
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
    """One measured step: wall clock, user and system CPU of the process and PostgreSQL's backend
    CPU and the machine's busy CPU meanwhile (seconds), peak RSS (MB) and when it came (seconds
    from the start), load average at the start, the command's output, and with a profile its
    SQL statement totals (``ledger_sqlstats`` JSON) and py-spy summary (`summarise_pyspy`)."""

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
        """User + system CPU seconds of the process (and its waited-for children)."""
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
        CHILDREN.add(proc)
        rss = RssWatch(proc.pid, start)
        spy = None
        if pyspy:
            spy = subprocess.Popen(pyspy_command(pyspy, proc.pid, spy_path, subprocesses=True),
                                   stdout=subprocess.DEVNULL, stderr=spy_err)
            CHILDREN.add(spy)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        rss.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        CHILDREN.discard(proc)
        if spy is not None:
            try:
                spy.wait(timeout=120)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            CHILDREN.discard(spy)
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


def pyspy_command(pyspy: str, pid: int, out: Path, *, subprocesses: bool) -> list[str]:
    """py-spy recording process ``pid`` (and its children with ``subprocesses``) into ``out``:
    raw collapsed stacks, function level, full file names (shortened by `scale_profile`), idle
    frames included, non-blocking, `PYSPY_RATE`/s."""
    return [pyspy, "record", "--pid", str(pid), *(["--subprocesses"] if subprocesses else []), "--format", "raw",
            "--function", "--full-filenames", "--idle", "--nonblocking", "--rate", str(PYSPY_RATE), "-o", str(out)]


def kill_children() -> None:
    """Kill and reap every subprocess of `CHILDREN` still running."""
    for proc in list(CHILDREN):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        CHILDREN.discard(proc)
