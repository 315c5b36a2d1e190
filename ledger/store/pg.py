"""The reads of a PostgreSQL CSV export on psycopg alone, without SQLAlchemy or the models:
`Snapshot`, what ``ledger export journal --format csv`` reads when --database-url names a
PostgreSQL database (`open_snapshot`), so that the command starts in a fraction of the time
SQLAlchemy, SQLModel and the models take to import.

A `Snapshot` gives the reads `ledger.export` makes of a Session (`ledger.store.journal`), with
the same arguments and answers, as methods: `chart`, `customer_names`, `journal_balances`,
`used_accounts`, `first_entry_date`, `entries_by_date` and `copy_csv_rows`, running the same SQL
text as the Session (`ledger.store.journal_sql`, `ledger.store.csv_rows`). Every one reads one
snapshot of the books (REPEATABLE READ, READ ONLY), which the connections copying the parts of
the CSV rows side by side import (`ledger.store.csv_rows.copy_parts`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, BinaryIO

from ledger.errors import NotInitialisedError
from ledger.store import journal_sql as S
from ledger.store.csv_rows import copy_csv_sql, copy_parts
from ledger.store.head import SCHEMA_HEAD


_URL = re.compile(r"^postgres(?:ql)?(?:\+psycopg)?://([^?#]*)$")
"""A --database-url `open_snapshot` opens: PostgreSQL through psycopg 3 (the driver
`ledger.store.db.normalise_url` picks), without query parameters (those SQLAlchemy would pass
to the driver its own way)."""

_CITUS = ("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') "
          "AND to_regclass('pg_dist_partition') IS NOT NULL")
_DISTRIBUTED = "SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'journal_entry'::regclass)"


def snapshot_url(url: str) -> bool:
    """Whether `open_snapshot` opens ``url`` (a PostgreSQL URL for psycopg, without query
    parameters); nothing is connected."""
    return _URL.match(url) is not None


def _hide(url: str) -> str:
    """``url`` with the password shown as *** as SQLAlchemy's URL shows it: whatever lies between
    the user's ":" and the next "@" ("/" included). Not urllib.parse (its netloc ends at the
    first "/", "?" or "#", leaving such a password shown) nor libpq's conninfo (key=value
    pairs, not the URL `ledger.store.db.open_engine` names)."""
    return re.sub(r"^([^:/]*://[^:@/]*):[^@]*@", r"\1:***@", url)


def _shown(url: str) -> str:
    """``url`` as `ledger.store.db.open_engine` names it in messages: the psycopg driver named,
    the password shown as ***."""
    return _hide("postgresql+psycopg://" + _URL.match(url).group(1))  # type: ignore[union-attr]


class Snapshot:
    """One REPEATABLE READ, READ ONLY transaction on a psycopg connection to the books at
    ``conninfo`` (a libpq URI), begun by the first read. ``by_customer``: whether the books are
    distributed by Citus (an entry joined to its lines by customer and entry id, as
    `ledger.store.keys` says). Made by `open_snapshot`."""

    def __init__(self, conn: Any, conninfo: str, by_customer: bool) -> None:
        self.conn, self.conninfo, self.by_customer = conn, conninfo, by_customer

    def _rows(self, sql: str, params: dict[str, date] | None = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def chart(self) -> list[tuple[str, str, str, str]]:
        """The chart of accounts: (code, name, type, normal balance) per account."""
        return self._rows(S.CHART)  # type: ignore[return-value]

    def customer_names(self) -> dict[str, str]:
        """Every customer's name, by customer id."""
        return dict(self._rows(S.CUSTOMER_NAMES))  # type: ignore[arg-type]

    def journal_balances(self, *, before: date | None = None, through: date | None = None,
                         zeros: bool = False) -> dict[tuple[str, str], int]:
        """As `ledger.store.journal.journal_balances`: {(account code, commodity): net int minor
        units, debit positive} over entries dated before ``before`` and/or through ``through``;
        zero balances left out unless ``zeros``."""
        rows = self._rows(*S.journal_balances_sql(before=before, through=through, by_customer=self.by_customer))
        return {(code, commodity): int(net) for code, commodity, net in rows if zeros or int(net) != 0}

    def used_accounts(self, start: date | None, end: date | None) -> tuple[list[tuple[str, str]], date | None]:
        """As `ledger.store.journal.used_accounts`: the (account code, commodity) pairs the lines
        of entries dated in [start, end] use, sorted, and `first_entry_date`."""
        pairs = self._rows(*S.used_accounts_sql(start, end, by_customer=self.by_customer))
        return sorted((a, c) for a, c in pairs), self.first_entry_date(start, end)

    def first_entry_date(self, start: date | None, end: date | None) -> date | None:
        """As `ledger.store.journal.first_entry_date`: the first entry date with lines in
        [start, end]; None when there is none."""
        rows = self._rows(*S.first_entry_date_sql(start, end, by_customer=self.by_customer))
        return rows[0][0] if rows else None

    def entries_by_date(self, start: date | None, end: date | None) -> list[tuple[date, int]]:
        """(entry_date, number of entries) of every date with entries in [start, end], dates
        ascending."""
        return [(day, int(n)) for day, n in self._rows(*S.entries_by_date_sql(start, end))]

    def copy_csv_rows(self, out: BinaryIO, start: date | None, end: date | None, commodities: Iterable[str],
                      *, cuts: Sequence[date] = ()) -> list[int]:
        """As `ledger.store.journal.copy_csv_rows`: the CSV rows of the entries dated in
        [start, end], in parts after each of ``cuts``, each other part on a connection of its
        own that imports this snapshot; returns the bytes written per part."""
        sqls = [copy_csv_sql(start, through, commodities, after=after, by_customer=self.by_customer)
                for after, through in zip([None, *cuts], [*cuts, end], strict=True)]
        if sqls[0] is None:
            return []
        return copy_parts(self.conn, self._part_connection, out, sqls)  # type: ignore[arg-type]  # (never None)

    @contextlib.contextmanager
    def _part_connection(self, snapshot: str) -> Iterator[Any]:
        """A new connection in a REPEATABLE READ, READ ONLY transaction reading ``snapshot``
        (`ledger.store.csv_rows.SnapshotConnect`)."""
        conn = _connect(self.conninfo)
        try:
            conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            yield conn
            conn.rollback()
        finally:
            conn.close()


def _connect(conninfo: str) -> Any:
    """A psycopg connection whose transactions are REPEATABLE READ, READ ONLY."""
    import psycopg

    conn = psycopg.connect(conninfo)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


@contextlib.contextmanager
def open_snapshot(url: str) -> Iterator[Snapshot]:
    """A `Snapshot` of the initialised books at ``url`` (`snapshot_url` must hold), closed on
    exit. Raises NotInitialisedError, as `ledger.store.db.open_engine` does, when the database
    cannot be reached or its schema is not at `SCHEMA_HEAD`; ValueError for another URL. A
    psycopg.Error raised meanwhile carries the connected role as ``ledger_role``."""
    import psycopg

    if not snapshot_url(url):
        raise ValueError(f"not a PostgreSQL URL for psycopg without query parameters: {_hide(url)}")
    conninfo = "postgresql://" + _URL.match(url).group(1)  # type: ignore[union-attr]
    try:
        conn = _connect(conninfo)
    except psycopg.OperationalError as exc:
        raise NotInitialisedError(_shown(url), str(exc).strip()) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
            revisions = cur.execute("SELECT version_num FROM alembic_version").fetchall() if cur.fetchone()[0] else []
            citus = cur.execute(_CITUS).fetchone()[0] and cur.execute(_DISTRIBUTED).fetchone()[0]
        current = sorted(r for r, in revisions)
        if len(current) > 1:
            raise NotInitialisedError(_shown(url), f"several schema revisions: {', '.join(current)}")
        if current != [SCHEMA_HEAD]:
            raise NotInitialisedError(_shown(url), f"schema revision {current[0] if current else 'none'}, head is {SCHEMA_HEAD}")
        yield Snapshot(conn, conninfo, bool(citus))
    except psycopg.Error as exc:  # the role, for the command line's message (ledger.cli._errors)
        with contextlib.suppress(psycopg.Error):  # (a broken connection may not tell)
            exc.ledger_role = conn.info.user  # type: ignore[attr-defined]
        raise
    finally:
        conn.close()
