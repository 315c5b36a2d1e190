"""The local Citus cluster of tests/citus/cluster.sh, seen from Python (for pytest fixtures).

The cluster itself is started and stopped by the script (``bash tests/citus/cluster.sh up`` or
``make citus-up``); this module only finds it and creates or drops databases on it, doing what
``cluster.sh createdb`` and ``cluster.sh dropdb`` do, over psycopg: Citus does not create a
database on the workers, so each database is made on all three nodes, with the citus extension,
and the coordinator's copy registers the coordinator and both workers.

Same environment as the script: CITUS_PORT is the coordinator's port (default 9700), the workers
take the next two. Nodes listen on 127.0.0.1 with trust auth for the superuser ``postgres``.
"""

from __future__ import annotations

import os
import re

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
USER = "postgres"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster.sh")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def ports() -> tuple[int, int, int]:
    """(coordinator, worker1, worker2) ports: CITUS_PORT and the next two."""
    base = int(os.environ.get("CITUS_PORT", "9700"))
    return base, base + 1, base + 2


def url(name: str, port: int | None = None) -> str:
    """URL of database ``name`` on the coordinator (or on the node at ``port``)."""
    return f"postgresql://{USER}@{HOST}:{ports()[0] if port is None else port}/{name}"


def _connect(port: int, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=HOST, port=port, user=USER, dbname=dbname, autocommit=True, connect_timeout=3)


def running() -> bool:
    """Whether all three nodes accept connections and have Citus loaded."""
    for port in ports():
        try:
            with _connect(port) as conn:
                libs = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        except psycopg.OperationalError:
            return False
        if "citus" not in [lib.strip() for lib in libs.split(",")]:
            return False
    return True


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"database name must match [a-z_][a-z0-9_]*, not {name!r}")


def create_database(name: str) -> str:
    """Create database ``name`` on the three nodes with the citus extension, register the nodes in
    the coordinator's copy, and return its coordinator URL. Safe to repeat."""
    _check_name(name)
    coordinator, *workers = ports()
    for port in (*workers, coordinator):  # workers first: citus_add_node connects to their copy
        with _connect(port) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with _connect(port, name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    with _connect(coordinator, name) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (HOST, coordinator))
        for port in workers:
            conn.execute("SELECT citus_add_node(%s, %s)", (HOST, port))
    return url(name)


def drop_database(name: str) -> None:
    """Drop database ``name`` on the three nodes (WITH (FORCE)); a missing one is no error."""
    _check_name(name)
    for port in ports():
        with _connect(port) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
