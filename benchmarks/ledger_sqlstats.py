"""Run the `ledger` command line with every SQL statement timed (used by bench_scale.py).

Usage::

    LEDGER_BENCH_SQLSTATS=stats.json python benchmarks/ledger_sqlstats.py [ledger arguments...]

Exactly ``ledger [arguments...]``, plus SQLAlchemy ``before/after_cursor_execute`` listeners on
every engine: each statement's time (client side: round trip and server execution, not the
commit) is added to its normalised text (literals and IN-lists of bound parameters collapsed).
At exit the totals are written as JSON to the file named by ``LEDGER_BENCH_SQLSTATS``:
``{"statements": [{"sql", "calls", "seconds"}...], "wall": seconds since start}``, the most
expensive first (an executemany or an insertmanyvalues batch is one call).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time

START = time.perf_counter()

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_STATS: dict[str, list] = {}
_KEYS: dict[str, str] = {}
_PARAMS = re.compile(r"%\([^)]*\)s(?:::[A-Z ]+)?(?:\s*,\s*%\([^)]*\)s(?:::[A-Z ]+)?)+")
_SPACE = re.compile(r"\s+")


def normalise(statement: str) -> str:
    key = _KEYS.get(statement)
    if key is None:
        text = _SPACE.sub(" ", statement).strip()
        text = _PARAMS.sub("...", text)
        text = re.sub(r"\(\.\.\., \d+\)", "(...)", text)  # insertmanyvalues rows: (params, sentinel)
        key = _KEYS[statement] = re.sub(r"\(\.\.\.\)(?:, \(\.\.\.\))+", "(...), ...", text)
    return key


@sa.event.listens_for(Engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault("bench_started", []).append(time.perf_counter())


@sa.event.listens_for(Engine, "after_cursor_execute")
def _after(conn, cursor, statement, parameters, context, executemany):
    seconds = time.perf_counter() - conn.info["bench_started"].pop()
    entry = _STATS.setdefault(normalise(statement), [0, 0.0])
    entry[0] += 1
    entry[1] += seconds


def _dump() -> None:
    path = os.environ.get("LEDGER_BENCH_SQLSTATS")
    if not path:
        return
    rows = [{"sql": sql, "calls": calls, "seconds": seconds} for sql, (calls, seconds) in _STATS.items()]
    rows.sort(key=lambda r: r["seconds"], reverse=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"statements": rows, "wall": time.perf_counter() - START}, fh, indent=1)


atexit.register(_dump)

if __name__ == "__main__":
    from ledger.cli import main

    sys.argv = ["ledger", *sys.argv[1:]]
    main()
