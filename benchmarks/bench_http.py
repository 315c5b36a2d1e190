"""B6: the HTTP API under load, on PostgreSQL (127.0.0.1:5432, own database bench_http_<pid>,
dropped at the end), with two references measured in the same run.

1. reference: a raw single-row ``INSERT`` + ``COMMIT`` loop (psycopg, one connection, a table
   shaped as a usage row): what one durable commit per event costs on this machine;
2. reference: `ledger.api.Ledger.record_usage`, one usage event per call and transaction, one
   thread (the pipelined path of ``ledger.store.pipeline``);
3. ``ledger serve`` (uvicorn, ``--workers`` 1 and 2) driven by ``wrk`` with a Lua script: 64
   connections, one usage event per request, every id unique (connection, counter, run nonce),
   spread over 1,000 customers that each hold 10^12 credits (no cap is reached).

For each: requests (events) per second, p50/p99 latency, the CPU seconds of the server
processes (uvicorn's and its workers'), of the PostgreSQL backends serving the bench database
and of the load generator, and the server's peak RSS (VmHWM, largest process). The rows posted
are counted afterwards: every request answered 200 is one usage row.

``wrk`` is installed by ``make bench-http`` with apt-get when it can be (as hledger for the
tests); without it this script falls back to a Python load generator (threads with keep-alive
connections), says so, and its figures are then bounded by that generator.

Run: ``.venv/bin/python benchmarks/bench_http.py --results benchmarks/RESULTS.md [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_md import Row, file_stamp, replace_section, size_note, target_table, write_details  # noqa: E402

ADMIN = os.environ.get("LEDGER_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECTION = "B6 HTTP"
TOKEN = "bench-token-" + uuid.uuid4().hex
CUSTOMERS = 1_000
LUA = r"""
local n = 0
local next_tid = 0
local nonce = "%(nonce)s"
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
request = function()
  n = n + 1
  local body = string.format('{"id":"%%s-%%d-%%d","type":"usage.recorded","occurred_at":"2026-01-03T10:00:00Z",' ..
    '"customer_id":"c%%d","credits":1}', nonce, tid, n, (n * 7 + tid) %% %(customers)d)
  return wrk.format("POST", "/v1/events", {["Content-Type"]="application/json",
    ["Authorization"]="Bearer %(token)s"}, body)
end
"""


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) so far of the live processes ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def peak_rss_mb(pids: list[int]) -> float:
    """The largest VmHWM (peak resident set) among ``pids``, MB."""
    best = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best / 1024


def children(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    parent_of: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parent_of[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [pid], [pid]
    while todo:
        cur = todo.pop()
        kids = [c for c, par in parent_of.items() if par == cur]
        out += kids
        todo += kids
    return out


def backends(admin_url: str, dbname: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def raw_insert_commit(url: str, seconds: float) -> dict:
    """Reference 1: one row per INSERT and COMMIT, one connection, for ``seconds``."""
    import psycopg

    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE bench_raw (id text PRIMARY KEY, customer_id text NOT NULL, credits bigint NOT NULL, "
                  "occurred_at timestamptz NOT NULL, content_hash text NOT NULL)")
        c.commit()
        lat, n, start = [], 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            c.execute("INSERT INTO bench_raw VALUES (%s, %s, 1, now(), %s)", (f"r-{n}", f"c{n % CUSTOMERS}", "x" * 64))
            c.commit()
            lat.append(time.perf_counter() - t)
            n += 1
        wall = time.perf_counter() - start
    return {"rate": n / wall, "p50": percentile(lat, 0.5) * 1000, "p99": percentile(lat, 0.99) * 1000, "n": n}


def api_one_per_call(url: str, seconds: float) -> dict:
    """Reference 2: Ledger.record_usage, one event per call and transaction, one thread."""
    from ledger.api import Ledger

    nonce = uuid.uuid4().hex[:8]
    with Ledger(url, catalog_path()) as books:
        lat, n, start = [], 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            books.record_usage(f"api-{nonce}-{n}", customer_id=f"c{n % CUSTOMERS}", credits=1,
                               occurred_at="2026-01-03T10:00:00Z")
            lat.append(time.perf_counter() - t)
            n += 1
        wall = time.perf_counter() - start
    return {"rate": n / wall, "p50": percentile(lat, 0.5) * 1000, "p99": percentile(lat, 0.99) * 1000, "n": n}


def catalog_path():
    """The bundled demo catalog (Example AI, Inc.): posting needs a company."""
    from ledger.demo import demo_catalog_path

    return demo_catalog_path()


def setup_books(url: str) -> None:
    """1,000 customers, each with a top-up of 10^12 credits (no cap is reached)."""
    from ledger.api import Ledger

    events = []
    for i in range(CUSTOMERS):
        events += [{"id": f"c-{i}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                    "customer_id": f"c{i}", "name": f"Customer {i}", "currency": "USD"},
                   {"id": f"t-{i}", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z",
                    "customer_id": f"c{i}", "topup_id": f"top-{i}", "credits": 10**12, "amount": "100000.00"}]
    with Ledger(url, catalog_path()) as books:
        books.post(events)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, workers: int, committers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "LEDGER_API_TOKENS": TOKEN}
    env.pop("LEDGER_CHECK_BOOK_CACHE", None)
    proc = subprocess.Popen([sys.executable, "-m", "ledger", "--database-url", url, "--catalog", str(catalog_path()),
                             "serve", "--port", str(port),
                             "--workers", str(workers), "--committers", str(committers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"ledger serve did not start: {proc.stderr.read().decode()[-2000:]}")


def run_wrk(base: str, connections: int, seconds: int, nonce: str) -> dict:
    """wrk with the Lua script; its rusage from wait4 (the load generator's CPU)."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(LUA % {"nonce": nonce, "customers": CUSTOMERS, "token": TOKEN})
    proc = subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    script.unlink()

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not m:
            return float("nan")
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rate": float(rate[1]) if rate else 0.0, "p50": ms("50"), "p99": ms("99"),
            "requests": int(done[1]) if done else 0, "non2xx": int(bad[1]) if bad else 0,
            "socket_errors": errors[1] if errors else "", "loadgen_cpu": usage.ru_utime + usage.ru_stime,
            "generator": "wrk 2 threads", "raw": out}


def run_python_load(base: str, connections: int, seconds: int, nonce: str) -> dict:
    """The fallback load generator (no wrk): ``connections`` threads, each with a keep-alive
    http.client connection; CPU of this process's threads counted as the generator's."""
    import http.client

    lat: list[float] = []
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    host, port = base.removeprefix("http://").split(":")

    def one(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port))
        n, mine = 0, []
        while time.perf_counter() < stop:
            n += 1
            body = json.dumps({"id": f"{nonce}-{k}-{n}", "type": "usage.recorded", "credits": 1,
                               "occurred_at": "2026-01-03T10:00:00Z", "customer_id": f"c{(n * 7 + k) % CUSTOMERS}"})
            t = time.perf_counter()
            conn.request("POST", "/v1/events", body, {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {TOKEN}"})
            r = conn.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            with lock:
                counts["ok" if r.status == 200 else "bad"] += 1
        with lock:
            lat.extend(mine)

    cpu0 = time.process_time()
    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    total = counts["ok"] + counts["bad"]
    return {"rate": total / wall, "p50": percentile(lat, 0.5) * 1000, "p99": percentile(lat, 0.99) * 1000,
            "requests": total, "non2xx": counts["bad"], "socket_errors": "", "loadgen_cpu": time.process_time() - cpu0,
            "generator": f"Python fallback ({connections} threads; wrk not installed)", "raw": ""}


def measure_server(url: str, dbname: str, workers: int, committers: int, connections: int, seconds: int) -> dict:
    proc, base = start_server(url, workers, committers)
    try:
        time.sleep(1.0)
        pids = children(proc.pid)
        warm = run_wrk if shutil.which("wrk") else run_python_load
        first = warm(base, connections, 2, "warm-" + uuid.uuid4().hex[:6])  # connections, kept books, plans cached
        db_pids = backends(ADMIN, dbname)
        server0, db0 = cpu_of(pids), cpu_of(db_pids)
        result = warm(base, connections, seconds, uuid.uuid4().hex[:8])
        result["server_cpu"] = cpu_of(pids) - server0
        result["db_cpu"] = cpu_of(db_pids) - db0
        result["rss_mb"] = peak_rss_mb(pids)
        result["workers"], result["committers"] = workers, committers
        result["warm_ok"] = first["requests"] - first["non2xx"]
        import httpx

        counters = httpx.get(base + "/healthz", timeout=10).json()["group_commit"]  # one worker's, warm-up included
        result["per_group"] = counters["requests"] / max(1, counters["groups"])
        result["seconds"] = seconds
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def count_usage(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM usage_event").fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="Markdown file whose B6 section to rewrite")
    parser.add_argument("--seconds", type=int, default=20, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--servers", default="1x1,1x2,1x3,2x1",
                        help="server shapes to measure, WORKERSxCOMMITTERS, comma-separated")
    parser.add_argument("--quick", action="store_true", help="5-second runs, one worker count")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.servers = 5, args.servers.split(",")[0]
    import psycopg

    from ledger.store.db import init_database, make_engine

    dbname = f"bench_http_{os.getpid()}"
    url = ADMIN.rsplit("/", 1)[0] + "/" + dbname
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{dbname}"')
    try:
        engine = make_engine(url)
        init_database(engine)
        engine.dispose()
        setup_books(url)
        before = count_usage(url)
        raw = raw_insert_commit(url, min(args.seconds, 10))
        api = api_one_per_call(url, min(args.seconds, 10))
        runs = [measure_server(url, dbname, *map(int, shape.split("x")), args.connections, args.seconds)
                for shape in args.servers.split(",")]
        posted = count_usage(url) - before - api["n"]
        load = os.getloadavg()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    answered = sum(r["requests"] - r["non2xx"] + r["warm_ok"] for r in runs)
    report(args, raw, api, runs, posted, answered, load)
    return 0


def report(args, raw: dict, api: dict, runs: list[dict], posted: int, answered: int, load: tuple) -> None:
    stamp = datetime.now(UTC)
    best = max(runs, key=lambda r: r["rate"])
    rows = [Row("reference: raw INSERT+COMMIT loop", f"{raw['rate']:,.0f}/s, p99 {raw['p99']:.1f} ms"),
            Row("reference: Ledger.record_usage loop", f"{api['rate']:,.0f}/s, p99 {api['p99']:.1f} ms")]
    rows += [Row(f"serve {r['workers']}x{r['committers']}",
                 f"{r['rate']:,.0f} req/s = {r['rate'] / raw['rate']:.1f}x raw; p50 {r['p50']:.0f}, p99 {r['p99']:.0f} ms",
                 ">= raw (aim 2x)", r["rate"] >= raw["rate"]) for r in runs]
    rows += [Row(f"p99, fastest ({best['workers']}x{best['committers']})", f"{best['p99']:.0f} ms", "< 50 ms",
                 best["p99"] < 50),
             Row("server peak RSS", f"{max(r['rss_mb'] for r in runs):.0f} MB", "< 400 MB",
                 max(r["rss_mb"] for r in runs) < 400)]
    cpu = "; ".join(f"{r['workers']}x{r['committers']} {r['server_cpu'] / r['seconds']:.2f}/"
                    f"{r['db_cpu'] / r['seconds']:.2f}/{r['loadgen_cpu'] / r['seconds']:.2f}" for r in runs)
    lines = [f"## {SECTION}", "",
             f"`make bench-http` (benchmarks/bench_http.py), {stamp:%Y-%m-%d %H:%M} UTC: {best['generator']}, "
             f"{args.connections} connections, {args.seconds} s a run, one usage event a request (unique ids, "
             f"1,000 customers); serve WxC: workers x committer threads; PostgreSQL on the same 2 shared cores "
             f"(load {load[0]:.1f}).", "",
             *target_table(rows), "",
             f"Cores busy (server/database/wrk): {cpu}. Requests a transaction: "
             + ", ".join(f"{r['workers']}x{r['committers']} {r['per_group']:.0f}" for r in runs)
             + f". {posted:,} rows = {answered:,} answered 200 + {posted - answered:,} in flight when wrk stopped."]
    for line in lines:
        print(line)
    details = [f"# B6 HTTP, {stamp:%Y-%m-%d %H:%M} UTC", "", "```", json.dumps(
        {"raw": raw, "api": api, "runs": [{k: v for k, v in r.items() if k != "raw"} for r in runs],
         "posted": posted, "answered": answered, "load": load}, indent=1),
        "```", *("```\n" + r["raw"] + "\n```" for r in runs if r["raw"])]
    path = write_details(file_stamp(stamp), "http", details)
    print(f"details: {path}")
    if args.results:
        size = replace_section(args.results, SECTION, lines)
        print(size_note(args.results, size))


if __name__ == "__main__":
    raise SystemExit(main())
