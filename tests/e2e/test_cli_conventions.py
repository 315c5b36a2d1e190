"""Conventions of the `ledger` command line, each through the real console script: usage errors
exit 2, failures one line and exit 1 (never a traceback), CSV one table, words in the number."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import COMPANY_CATALOG
from test_cli import EVENTS, USAGE, ledger

ROOT = Path(__file__).resolve().parents[2]
PERIOD_REPORTS = ("trial-balance", "deferred-revenue", "revenue", "credits", "guarantees", "waterfall", "usage-alerts")


def _fails(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.fixture
def books(tmp_path, sqlite_url):
    """A SQLite ledger with one customer, a top-up, a posted usage and a quarantined one."""
    (tmp_path / "events.jsonl").write_text(EVENTS)
    (tmp_path / "usage.csv").write_text(USAGE)
    (tmp_path / "ledger.toml").write_bytes(COMPANY_CATALOG.read_bytes())
    r = ledger(tmp_path, "import", "events.jsonl", "usage.csv", url=sqlite_url)
    assert r.returncode == 0, r.stderr
    return tmp_path, sqlite_url


def test_1_a_missing_required_option_is_a_usage_error(tmp_path, sqlite_url):
    for name in PERIOD_REPORTS:
        _fails(ledger(tmp_path, "report", name, url=sqlite_url), 2, "Missing option '--period'")
    _fails(ledger(tmp_path, "report", "customer", url=sqlite_url), 2, "Missing option '--customer'")
    _fails(ledger(tmp_path, "reopen", "2026-01", url=sqlite_url), 2, "Missing option '--reason'")
    _fails(ledger(tmp_path, "export", "journal", "--format", "csv", url=sqlite_url), 2, "Missing option '--out'")


def test_2_out_in_a_missing_folder_names_the_folder(tmp_path, sqlite_url):
    missing = tmp_path / "no" / "such"
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-01", "--format", "csv", "--out", str(missing / "x.csv"),
               url=sqlite_url)
    _fails(r, 1, f"folder {missing} does not exist")
    assert len(r.stderr.strip().splitlines()) == 1


def test_3_a_malformed_database_url_says_what_a_url_looks_like(tmp_path):
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-01", url="notaurl")
    _fails(r, 2, "'notaurl' is not a database URL", "sqlite:///", "postgresql://")
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-01", url="postgresql//bob:s3cret@db/books")
    _fails(r, 2, "'postgresql//bob:***@db/books' is not a database URL")
    assert "s3cret" not in r.stderr
    for url, why in (("nosuchdb://x/y", "Can't load plugin"), ("sqlite://x/y", "Invalid SQLite URL")):  # looks like a URL
        r = ledger(tmp_path, "report", "revenue", "--period", "2026-01", url=url)
        _fails(r, 1, "--database-url is not a URL the ledger can open", why, "postgresql://")


def test_4_every_report_with_customer_refuses_an_unknown_customer(books):
    tmp, url = books
    for args in (["credits", "--period", "2026-01"], ["customer"]):
        _fails(ledger(tmp, "report", *args, "--customer", "nobody", url=url), 1, "no customer 'nobody'")
    r = ledger(tmp, "report", "credits", "--period", "2026-01", "--customer", "acme", url=url)
    assert r.returncode == 0 and json.loads(r.stdout)["rows"], r.stderr


def test_5_a_table_to_a_pipe_is_columns_or_120_wide(books):
    tmp, url = books
    args = ("report", "credits", "--period", "2026-01", "--format", "table")  # wider than 120 unfolded
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for columns, width in ((None, 120), ("90", 90)):
        cmd = [sys.executable, "-m", "ledger", "--database-url", url, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=120,
                           env=env | ({"COLUMNS": columns} if columns else {}))
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert max(len(line) for line in r.stdout.splitlines()) == width


def test_6_every_report_csv_is_one_table_with_totals_as_rows(books):
    tmp, url = books
    reports = {"trial-balance": "2026-01", "deferred-revenue": "2026-01", "revenue": "2026-01", "credits": "2026-01",
               "quarantine": None, "ar-aging": "2026-01", "guarantees": "2026-01", "audit-trail": None}
    for name, period in reports.items():
        r = ledger(tmp, "report", name, *(["--period", period] if period else []), "--format", "csv", url=url)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (name, r.stderr)
        rows = list(csv.reader(io.StringIO(r.stdout)))
        assert rows and all(len(row) == len(rows[0]) for row in rows), (name, rows)
        assert not any(h.startswith("total:") for h in rows[0]) and [] not in rows, (name, rows)
    tb = list(csv.DictReader(io.StringIO(ledger(tmp, "report", "trial-balance", "--period", "2026-01", "--format", "csv",
                                                url=url).stdout)))
    usd = [row for row in tb if row["account"] == "Total" and row["commodity"] == "USD"]
    assert [(row["debit"], row["credit"]) for row in usd] == [("108.25", "108.25")], tb


def test_7_booleans_and_plurals(books):
    tmp, url = books
    (tmp / "more.csv").write_text(USAGE.splitlines()[0] + "\r\nu3,acme,2026-01-12T12:00:00Z,50\r\n")
    assert ledger(tmp, "import", "more.csv", url=url).returncode == 0  # 80 of 100 credits used: an alert row
    args = ("report", "usage-alerts", "--period", "2026-01")
    rows = list(csv.DictReader(io.StringIO(ledger(tmp, *args, "--format", "csv", url=url).stdout)))
    assert [row["before_expiry"] for row in rows if row["customer_id"] == "acme"] in (["true"], ["false"]), rows
    assert {type(row["before_expiry"]) for row in json.loads(ledger(tmp, *args, url=url).stdout)["rows"]} <= {bool, type(None)}
    table = ledger(tmp, *args, "--format", "table", url=url).stdout
    assert "True" not in table and "False" not in table and ("yes" in table or " no " in table), table
    (tmp / "more.jsonl").write_text(EVENTS.splitlines()[1].replace('"t1"', '"t2"').replace("top-1", "top-2") + "\n")
    r = ledger(tmp, "import", "more.jsonl", "--format", "table", url=url)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "1 invoice\n" in r.stdout or "1 invoice " in r.stdout, r.stdout
    r = ledger(tmp, "verify", url=url)
    assert r.returncode == 0 and "seals of 0 closed periods hold" in r.stdout, r.stdout


def test_8_demo_prints_a_ledger_command_that_runs():
    """Outside PATH the explore line names the running executable (relative to the folder inside
    it), and that command runs from a shell; on PATH it is plain `ledger`."""
    exe = Path(sys.executable).parent / "ledger"
    if not exe.exists():
        pytest.skip(f"no console script beside {sys.executable} (package not installed in this environment)")
    root = exe.parents[2]
    code = f"import sys; sys.argv[0] = {str(exe)!r}; from ledger.demo import ledger_command; print(ledger_command())"
    for path, cwd, expected in (("/usr/bin:/bin", root, str(exe.relative_to(root))), ("/usr/bin:/bin", "/", str(exe)),
                                (f"{exe.parent}:/usr/bin:/bin", "/", "ledger")):
        env = os.environ | {"PATH": path}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60, env=env)
        assert r.returncode == 0 and r.stdout.strip() == expected, (path, r.stdout, r.stderr)
        shell = subprocess.run(f"{r.stdout.strip()} --version", shell=True, capture_output=True, text=True, cwd=cwd,
                               timeout=60, env=env)
        assert shell.returncode == 0 and "Traceback" not in shell.stderr, (expected, shell.stderr)


def test_9_an_explicit_catalog_that_is_missing_is_an_error(tmp_path, sqlite_url):
    missing = tmp_path / "missing.toml"
    r = subprocess.run([sys.executable, "-m", "ledger", "--database-url", sqlite_url, "--catalog", str(missing),
                        "report", "revenue", "--period", "2026-01"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    _fails(r, 1, f"{missing}: catalog file not found")
    r = ledger(tmp_path, "report", "revenue", "--period", "2026-01", url=sqlite_url)  # no ledger.toml: reading needs none
    assert r.returncode == 0 and not (tmp_path / "ledger.toml").exists(), r.stderr


def test_10_a_report_without_activity_says_so_instead_of_an_empty_table(books):
    """A period with nothing in it: one line on standard error, exit 0, no table; CSV and JSON
    still write their (empty) document for the programs that read them."""
    tmp, url = books
    r = ledger(tmp, "report", "revenue", "--period", "2030-01", "--format", "table", url=url)
    assert r.returncode == 0 and r.stdout == "", r.stdout
    assert r.stderr.strip() == "Revenue by stream, 2030-01: nothing to report (no activity in 2030-01)"
    r = ledger(tmp, "report", "revenue", "--period", "2030-01", "--format", "json", url=url)
    assert r.returncode == 0 and json.loads(r.stdout)["rows"] == [] and "nothing to report" in r.stderr
    r = ledger(tmp, "report", "revenue", "--period", "2026-01", "--format", "table", url=url)
    assert r.returncode == 0 and "Usage revenue" in r.stdout and r.stderr == ""


def test_11_colour_only_on_a_terminal_and_never_with_no_color(books):
    """A table is styled on a terminal (headers in colour), plain on a pipe, and without
    colour when NO_COLOR is set."""
    import pty

    tmp, url = books
    args = [sys.executable, "-m", "ledger", "--database-url", url, "report", "revenue", "--period", "2026-01",
            "--format", "table"]
    piped = subprocess.run(args, capture_output=True, text=True, cwd=tmp, timeout=120)
    assert piped.returncode == 0 and "Usage revenue" in piped.stdout and "\x1b[" not in piped.stdout

    def on_terminal(env: dict) -> str:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.PIPE, cwd=tmp,
                                env={k: v for k, v in env.items() if k != "NO_COLOR"} | env)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
        os.close(leader)
        return b"".join(chunks).decode()

    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")} | {"TERM": "xterm-256color"}
    coloured = on_terminal(base)
    assert "Usage revenue" in coloured and "\x1b[1;36m" in coloured  # bold cyan headers
    plain = on_terminal(base | {"NO_COLOR": "1"})
    assert "Usage revenue" in plain and "36m" not in plain


def test_12_demo_options_out_of_range_are_usage_errors(tmp_path, sqlite_url):
    """`ledger demo` refuses a malformed month or a month count outside 1-12 before building
    anything: exit 2, one usage message, nothing written."""
    for args, words in ((("--month", "2026-13"), "period must look like 2026-01"),
                        (("--months", "0"), "0 is not in the range 1<=x<=12"),
                        (("--months", "13"), "13 is not in the range 1<=x<=12")):
        _fails(ledger(tmp_path, "demo", "--out", str(tmp_path / "d"), *args, url=sqlite_url), 2, words)
    assert not (tmp_path / "d").exists()
