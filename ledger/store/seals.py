"""Tamper evidence for closed periods (docs/design.md §9.2): a hash chain over each period's entries.

At the close, the entries dated in the period are taken in id order, and each link is

    h_0 = sha256(previous seal + "\\nperiod " + period), the previous seal being the previous
          closed period's (64 zeros for the first period), so even an empty period has its own seal
    h_i = sha256(h_(i-1) + "\\n" + canonical JSON of entry i with its lines in id order)

Every link is stored (table entry_seal) and the last one is the period's seal, kept in the
close record (table period_close) with the journal head. Nothing is locked while the month
runs: the chain is computed once, at the close. `verify_seals` recomputes every closed period
and names the first entry that breaks: an amount or date changed, a line deleted, an entry
inserted into or removed from a sealed period. It is invariant 6 of docs/design.md §7, together
with "no posting dated in a locked period" (an entry inserted behind the engine's back shows up
as one that is not in the seal), and with "the periods locked are those with a close record in
force" (a lock or a reopen record written behind the close shows up as such).

On PostgreSQL the close stores the chain through ``ledger_close_period()`` (migration 0010), which
computes the same links in the server from the same canonical bytes (the golden corpus and
tests/integration/test_close_guards.py check that `verify_seals` confirms them); `seal_period`
is the SQLite close's. There `verify_seals` also checks in the server: when a period's stored
links name its entries in order, each link is recomputed from the stored one before it, all at
once, and only the links that differ come back (`_server_break`); ``ledger verify`` runs it on
a second connection reading the same snapshot as the invariants (`verify_seals_in_snapshot`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store import keys
from ledger.store.db import bulk_insert, is_citus, is_postgres
from ledger.errors import LedgerError
from ledger.store.models import EntrySeal, JournalEntry, JournalLine, PeriodClose
from ledger.store.periods import closed_periods
from ledger.core.periods import first_day, last_day

GENESIS = "0" * 64
"""The link before the first closed period's first entry."""

_ENTRY_FIELDS = ("id", "entry_date", "occurred_at", "kind", "description", "customer_id", "event_id", "import_id")
_LINE_FIELDS = ("id", "account_code", "commodity", "debit", "credit", "customer_id", "grant_id", "invoice_number",
                "event_id")
_BATCH = 2000


class SealError(LedgerError):
    """The chain could not be computed (an unexpected row from the database)."""


@dataclass(frozen=True)
class Link:
    """One link of a period's chain: position (1-based), entry id, chain hash (sha256 hex)."""

    seq: int
    entry_id: int
    hash: str


def _value(v: object) -> object:
    return v.isoformat() if hasattr(v, "isoformat") else v


def entry_digest_input(entry: dict, lines: list[dict]) -> bytes:
    """The canonical bytes of one entry and its lines (sorted keys, no whitespace, UTF-8)."""
    body = {k: _value(entry[k]) for k in _ENTRY_FIELDS}
    body["lines"] = [{k: _value(ln[k]) for k in _LINE_FIELDS} for ln in sorted(lines, key=lambda x: x["id"])]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_start(previous: str, period: str) -> str:
    """h_0 of ``period``'s chain: sha256 hex of the previous seal and the period's name."""
    return hashlib.sha256(f"{previous}\nperiod {period}".encode("ascii")).hexdigest()


def chain(session: Session, period: str, previous: str) -> Iterator[Link]:
    """The chain over the entries dated in ``period`` (id order), starting from ``previous``.

    On PostgreSQL the server writes each entry's canonical bytes (`chain_copy_sql`, the bytes of
    `entry_digest_input`: tests/integration/test_seals.py checks them against it on arbitrary text) and
    Python only hashes them; elsewhere `_chain_rows` makes them here. Memory stays bounded by
    the links (about 150 bytes an entry), never the entries.
    """
    if is_postgres(session):
        yield from _chain_copy(session, period, previous)
    else:
        yield from _chain_rows(session, period, previous)


def _chain_rows(session: Session, period: str, previous: str) -> Iterator[Link]:
    """`chain` made in Python: one query, entries joined to their lines in (entry id, line id)
    order, read in batches of rows (``yield_per``), each entry's bytes made by
    `entry_digest_input`. The entry's lines as `entry_bytes_sql` takes them (this path never
    runs on Citus: every line naming the entry)."""
    d0, d1 = first_day(period), last_day(period)
    n = len(_ENTRY_FIELDS)
    query = (sa.select(*(getattr(JournalEntry, k) for k in _ENTRY_FIELDS), *(getattr(JournalLine, k) for k in _LINE_FIELDS))
             .select_from(JournalEntry).outerjoin(JournalLine, keys.entry_lines(by_customer=is_citus(session)))
             .where(JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)
             .order_by(JournalEntry.id, JournalLine.id).execution_options(yield_per=_BATCH * 4))
    h, seq = chain_start(previous, period), 0
    entry: tuple | None = None
    lines: list[dict] = []
    for row in session.execute(query):
        if entry is None or row[0] != entry[0]:
            if entry is not None:
                seq += 1
                h = _link(h, entry, lines)
                yield Link(seq, entry[0], h)
            entry, lines = row[:n], []
        if row[n] is not None:  # an entry without lines (the outer join's NULLs) has none
            lines.append(dict(zip(_LINE_FIELDS, row[n:], strict=True)))
    if entry is not None:
        yield Link(seq + 1, entry[0], _link(h, entry, lines))


def _sql_json(expr: str) -> str:
    """SQL for the JSON ``json.dumps(value, ensure_ascii=False)`` writes for the text or date
    ``expr``: to_json escapes exactly the characters Python's encoder escapes (quote, backslash,
    \\b \\f \\n \\r \\t, other controls below U+0020 as \\u00xx) and writes the rest as they are;
    a date as "YYYY-MM-DD" whatever the session's DateStyle (what ``isoformat()`` writes); NULL
    is null."""
    return f"coalesce(to_json({expr})::text, 'null')"


def _sql_json_int(expr: str) -> str:
    """`_sql_json` for the integer ``expr``: its decimal text, as to_json writes it, without
    to_json's per-call type lookup."""
    return f"coalesce(({expr})::text, 'null')"


_INT_FIELDS = frozenset({"id", "import_id", "debit", "credit"})


def _sql_json_object(fields: list[tuple[str, str]]) -> str:
    """SQL for a JSON object written as ``json.dumps(sort_keys=True, separators=(",", ":"))``
    writes it: ``fields`` is (key, SQL of its JSON value), keys already in sorted order."""
    assert [k for k, _ in fields] == sorted(k for k, _ in fields)
    parts = [f"'{',' if i else '{'}\"{k}\":' || {v}" for i, (k, v) in enumerate(fields)]
    return "(" + " || ".join(parts) + " || '}')"


def entry_bytes_sql(d0: date, d1: date, entries: str = "journal_entry", lines: str = "journal_line", *,
                    by_customer: bool = False) -> str:
    """A SELECT of ``id`` and ``body`` (text) per entry dated in [d0, d1], in no set order: body
    is the entry's canonical bytes (those of `entry_digest_input`, as UTF-8). ``entries``,
    ``lines``: the tables to read (other names only in tests).

    An entry's lines are those naming it (``entry_id``), whatever customer they name; with
    ``by_customer`` (the books distributed by customer: `ledger.store.db.is_citus`) those that
    also name its customer, the join that runs shard by shard there (`ledger.store.keys`: the
    reads as stored). The same lines in sound books; ``ledger verify`` reports a line naming
    another customer than its entry (`ledger.store.invariants.check_customer_keys`).

    The values are written as `entry_digest_input` writes them: text and dates by `_sql_json`,
    integers by `_sql_json_int`; the instant as Python's ``isoformat()`` of an aware UTC
    datetime (microseconds only when not zero, then +00:00), whatever the session's time zone.
    Each line is formatted in the scan's projection; the aggregate joins an entry's lines in id
    order."""
    def value(alias: str, k: str) -> str:
        return _sql_json_int(f"{alias}.{k}") if k in _INT_FIELDS else _sql_json(f"{alias}.{k}")

    utc = "(e.occurred_at AT TIME ZONE 'UTC')"
    instant = (f"('\"' || to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {utc}) = {utc} "
               f"THEN '' ELSE to_char({utc}, '.US') END || '+00:00\"')")
    line = _sql_json_object([(k, value("l0", k)) for k in sorted(_LINE_FIELDS)])
    values = {k: value("e", k) for k in _ENTRY_FIELDS}
    values["occurred_at"] = instant
    values["lines"] = "('[' || coalesce(string_agg(l.body, ',' ORDER BY l.id), '') || ']')"
    body = _sql_json_object(sorted(values.items()))
    return f"""
          SELECT e.id, {body} AS body
          FROM {entries} e
          LEFT JOIN (SELECT l0.entry_id, l0.customer_id, l0.id, {line} AS body FROM {lines} l0) l
            ON {keys.entry_lines_sql("e", "l", by_customer=by_customer)}
          WHERE e.entry_date >= DATE '{d0.isoformat()}' AND e.entry_date <= DATE '{d1.isoformat()}'
          GROUP BY e.customer_id, e.id"""


def chain_copy_sql(d0: date, d1: date, entries: str = "journal_entry", lines: str = "journal_line", *,
                   by_customer: bool = False) -> str:
    """The ``COPY (SELECT ...) TO STDOUT`` of `_chain_copy`: one row per entry dated in
    [d0, d1], in id order, ``id`` \\x02 ``canonical bytes`` (`entry_bytes_sql`, ``by_customer``
    as there).

    JSON escapes every control character, so no row holds \\x01, \\x02, CR or LF, and the CSV
    mode below (quote \\x01, delimiter \\x02) never quotes: each COPY message is the row as it
    is, LF-terminated."""
    return f"""
        COPY ({entry_bytes_sql(d0, d1, entries, lines, by_customer=by_customer)}
          ORDER BY e.id
        ) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"""


def _chain_copy(session: Session, period: str, previous: str) -> list[Link]:
    """`chain` on PostgreSQL: the entries' canonical bytes from `chain_copy_sql`, hashed here.
    Returns the links as a list (the COPY is read to its end before anything else runs on the
    connection)."""
    raw = session.connection().connection.driver_connection
    h = chain_start(previous, period)
    links: list[Link] = []
    sha = hashlib.sha256
    sql = chain_copy_sql(first_day(period), last_day(period), by_customer=is_citus(session))
    for entry_id, body in copy_bodies(raw, sql):
        h = sha(b"%s\n%s" % (h.encode("ascii"), body)).hexdigest()
        links.append(Link(len(links) + 1, entry_id, h))
    return links


def copy_bodies(raw, sql: str) -> Iterator[tuple[int, bytes]]:
    """Run ``sql`` (a `chain_copy_sql`) on the psycopg connection ``raw`` in its transaction:
    (entry id, canonical bytes) per entry, in id order, under `_chain_settings`. raises
    SealError for a row that is not ``id`` \\x02 ``bytes`` LF (never expected)."""
    with raw.cursor() as cur, _chain_settings(cur):
        with cur.copy(sql) as copy:
            for message in copy:
                row = bytes(message)
                cut = row.find(2)
                if cut < 1 or row[-1] != 10:
                    raise SealError(f"unexpected row from the chain query: {row[:80]!r}")
                yield int(row[:cut]), row[cut + 1:-1]


@contextmanager
def _chain_settings(cur, merge: bool = False) -> Iterator[None]:
    """Settings for the chain's queries on the psycopg cursor ``cur``, in its transaction, as
    they were afterwards: compiling the expressions costs more than it saves (jit off); a sort
    of the entries' bytes stays in memory (work_mem 128MB, about 130 MB at 200,000 entries).
    ``merge``: the stored links and the entries' bytes are joined by merging the two streams,
    both in entry id order: no nested loop (an entry_seal just written has no statistics yet,
    and a nested loop over every entry's bytes is quadratic), no hash of every entry's bytes,
    and no parallel workers (each would make every entry's bytes again)."""
    settings = {"jit": "off", "work_mem": "128MB"}
    if merge:
        settings |= {"enable_nestloop": "off", "enable_hashjoin": "off", "max_parallel_workers_per_gather": "0"}
    cur.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in settings))
    before = cur.fetchone()
    cur.execute("SELECT " + ", ".join(f"set_config('{n}', %s, true)" for n in settings), list(settings.values()))
    yield
    cur.execute("SELECT " + ", ".join(f"set_config('{n}', %s, true)" for n in settings), list(before))


def _link(h: str, entry: tuple, lines: list[dict]) -> str:
    """The next chain hash after ``h`` for ``entry`` (values in the order of _ENTRY_FIELDS)."""
    body = dict(zip(_ENTRY_FIELDS, entry, strict=True))
    return hashlib.sha256(h.encode("ascii") + b"\n" + entry_digest_input(body, lines)).hexdigest()


def latest_closes(session: Session) -> dict[str, PeriodClose]:
    """period -> its latest close record, for periods whose last action is a close (not reopened)."""
    out: dict[str, PeriodClose] = {}
    for rec in session.execute(sa.select(PeriodClose).order_by(PeriodClose.id)).scalars():
        if rec.action == "close":
            out[rec.period] = rec
        else:
            out.pop(rec.period, None)
    return dict(sorted(out.items()))


def seal_period(session: Session, record: PeriodClose) -> PeriodClose:
    """Compute ``record.period``'s chain from the previous closed period's seal, store every link
    and fill the record's seal, previous_seal, entries and journal_head. ``record`` must be an
    unsaved close record; it is added to ``session`` (flushed, not committed). The SQLite close
    (on PostgreSQL ``ledger_close_period()`` does the same in the server)."""
    earlier = [p for p in latest_closes(session) if p < record.period]
    previous = latest_closes(session)[earlier[-1]].seal if earlier else GENESIS
    record.previous_seal = previous
    record.journal_head = session.execute(sa.select(sa.func.max(JournalEntry.id))).scalar_one()
    links = list(chain(session, record.period, previous))
    record.entries = len(links)
    record.seal = links[-1].hash if links else chain_start(previous, record.period)
    session.add(record)
    session.flush()  # the record is written once, complete: the audit trail is append-only
    for i in range(0, len(links), 5000):
        bulk_insert(session, EntrySeal.__table__, [{"close_id": record.id, "seq": x.seq, "entry_id": x.entry_id,
                                                    "hash": x.hash} for x in links[i:i + 5000]])
    return record


@dataclass(frozen=True)
class SealBreak:
    """Where a closed period's seal no longer holds: period, entry id (or None) and why."""

    period: str
    entry_id: int | None
    detail: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "the chain"
        return f"period {self.period}, {where}: {self.detail}"


def verify_seals(session: Session, through: str | None = None, only: set[str] | None = None) -> list[SealBreak]:
    """Recompute the chain of every closed period (through ``through``, 'YYYY-MM', if given;
    only the periods in ``only`` when given) and compare it link by link with the stored one;
    return the first break of each period (empty when every seal holds). Also checks, for every
    closed period, that its chain starts from the previous closed period's seal and that its
    head equals the close record's seal, and that the periods locked (accounting_period) are
    exactly those with a close record in force (`_lock_breaks`). On PostgreSQL a period whose
    stored links name its entries in order is checked in the server (`_server_break`), any
    other by walking the chain (`_walk_break`): both name the same first break."""
    out: list[SealBreak] = _lock_breaks(session, through, only)
    previous_seal = GENESIS
    for period, rec in latest_closes(session).items():
        if through is not None and period > through:
            break
        if rec.previous_seal != previous_seal:
            out.append(SealBreak(period, None, f"starts from {rec.previous_seal}, but the previous closed period's "
                                               f"seal is {previous_seal}"))
        previous_seal = rec.seal or GENESIS
        if only is not None and period not in only:
            continue
        start = chain_start(rec.previous_seal or GENESIS, period)
        checked = _server_break(session, period, rec, start) if is_postgres(session) else None
        found, head = checked if checked is not None else _walk_break(session, period, rec)
        if found is None and head != rec.seal:
            found = SealBreak(period, None, f"the chain ends at {head[:16]}..., the close record says "
                                            f"{str(rec.seal)[:16]}...")
        if found is not None:
            out.append(found)
    return out


def _altered(period: str, entry_id: int, now: str, sealed: str) -> SealBreak:
    return SealBreak(period, entry_id, f"was altered after the close: its chain hash is now {now[:16]}..., "
                                       f"sealed {sealed[:16]}...")


def _walk_break(session: Session, period: str, rec: PeriodClose) -> tuple[SealBreak | None, str]:
    """``period``'s chain recomputed link by link (`chain`) beside the stored links (seq order):
    the first break, or None and the chain's head."""
    stored = session.execute(sa.select(EntrySeal.seq, EntrySeal.entry_id, EntrySeal.hash)
                             .where(EntrySeal.close_id == rec.id).order_by(EntrySeal.seq)).all()
    sealed_ids = {row.entry_id for row in stored}
    last = None
    for row, link in _zip_longest(stored, chain(session, period, rec.previous_seal or GENESIS)):
        if link is not None:
            last = link
        if row is not None and link is not None and row.entry_id == link.entry_id:
            if row.hash != link.hash:
                return _altered(period, row.entry_id, link.hash, row.hash), ""
        elif row is None or (link is not None and link.entry_id not in sealed_ids):
            return SealBreak(period, link.entry_id, f"is dated in the closed period {period} but is not in its seal "
                                                    "(inserted after the close)"), ""
        else:
            return SealBreak(period, row.entry_id, f"was sealed at position {row.seq} and is no longer in the period "
                                                   "(deleted, or its date changed)"), ""
    return None, last.hash if last else chain_start(rec.previous_seal or GENESIS, period)


def _server_break(session: Session, period: str, rec: PeriodClose, start: str) -> tuple[SealBreak | None, str] | None:
    """`_walk_break` in the server, for a period whose stored links are positions 1..n naming
    the entries dated in the period in id order (anything else: None, for the walk to name).

    Each link is then checked on its own: entry i's hash from the stored link before it (h_0 =
    ``start`` before the first), h_i = sha256(h_(i-1) + "\\n" + bytes of entry i), compared with
    the stored h_i. Up to the first link that fails, every stored hash is the recomputed one, so
    that link is the first the walk finds altered, with the same recomputed hash; when none
    fails, the recomputed chain is the stored one and its head is the last stored link. The
    links in seq order are then in entry id order too, the order both streams are merged in
    (the bytes as `entry_bytes_sql` groups them; OFFSET 0 keeps the comparison out of the join,
    so the merge needs no copy of the bytes to rescan)."""
    citus = is_citus(session)
    raw = session.connection().connection.driver_connection
    d0, d1 = first_day(period), last_day(period)
    with raw.cursor() as cur, _chain_settings(cur, merge=True):
        cur.execute("""
            SELECT count(*), min(seq), max(seq),
                   array_agg(entry_id ORDER BY seq) IS NOT DISTINCT FROM
                     (SELECT array_agg(id ORDER BY id) FROM journal_entry WHERE entry_date >= %(d0)s AND entry_date <= %(d1)s),
                   (SELECT hash FROM entry_seal WHERE close_id = %(close)s ORDER BY seq DESC LIMIT 1)
            FROM entry_seal WHERE close_id = %(close)s""", {"d0": d0, "d1": d1, "close": rec.id})
        n, low, high, same, head = cur.fetchone()
        if not same or (n and (low, high) != (1, n)):
            return None
        cur.execute(f"""
            SELECT seq, entry_id, sealed, now FROM (
              SELECT s.seq, s.entry_id, s.hash AS sealed,
                     encode(sha256(convert_to(s.prev || E'\\n' || b.body, 'UTF8')), 'hex') AS now
              FROM (SELECT seq, entry_id, hash, lag(hash, 1, %(start)s) OVER (ORDER BY entry_id) AS prev
                    FROM entry_seal WHERE close_id = %(close)s) s
              JOIN ({entry_bytes_sql(d0, d1, by_customer=citus)}) b ON b.id = s.entry_id
              OFFSET 0) links
            WHERE sealed <> now
            ORDER BY seq""", {"start": start, "close": rec.id})
        failed = cur.fetchall()
    if failed:
        _, entry_id, sealed, now = failed[0]
        return _altered(period, entry_id, now, sealed), ""
    return None, head if n else start


class SnapshotUnavailable(SealError):
    """No second connection could read the snapshot `export_snapshot` named (for example the
    server's connections are all in use): check the seals on the first one instead."""


def export_snapshot(session: Session) -> str | None:
    """The id of the snapshot ``session``'s transaction reads (PostgreSQL: pg_export_snapshot,
    valid while that transaction lasts), for `verify_seals_in_snapshot` on another connection;
    None elsewhere (SQLite). Call in a REPEATABLE READ transaction (`one_snapshot`), as its
    first statement for the snapshot to be the transaction's."""
    if not is_postgres(session):
        return None
    return session.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()


def verify_seals_in_snapshot(engine: sa.Engine, snapshot: str) -> list[SealBreak]:
    """`verify_seals` over every closed period, in a read-only REPEATABLE READ transaction of
    its own on a new connection of ``engine`` that reads the snapshot ``snapshot`` (from
    `export_snapshot`, whose transaction must still be open), rolled back before returning:
    the seals checked beside the invariants, on the same books. raises SnapshotUnavailable when
    ``engine`` is a single connection, or a connection cannot be opened or read the snapshot."""
    if not isinstance(engine, sa.Engine):  # a session bound to one connection has no second one
        raise SnapshotUnavailable("the session is bound to a single connection")
    if not all(c in "0123456789ABCDEF-" for c in snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    with Session(engine) as session:
        try:
            session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
            session.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        except sa.exc.DBAPIError as exc:  # no connection left, or a pooler's other server
            raise SnapshotUnavailable(f"cannot read snapshot {snapshot} on a second connection: {exc}") from exc
        try:
            return verify_seals(session)
        finally:
            session.rollback()


def _lock_breaks(session: Session, through: str | None, only: set[str] | None) -> list[SealBreak]:
    """A break for each period (through ``through``, in ``only``) that is locked without a close
    record in force, or has one and is not locked: the lock and the record are written together
    by the close and the reopen only, so a difference means one was written behind them (a
    reopen record or a lock inserted by hand would otherwise leave a period unchecked)."""
    records, locked = latest_closes(session), set(closed_periods(session))
    out = []
    for period in sorted(locked ^ set(records)):
        if (through is not None and period > through) or (only is not None and period not in only):
            continue
        if period in locked:
            detail = "is locked but has no close record in force: locked, or its close reopened, outside the close"
        else:
            detail = "has a close record in force but is not locked: unlocked outside the reopen"
        out.append(SealBreak(period, None, detail))
    return out


def _zip_longest(stored, links):
    links = iter(links)
    for row in stored:
        yield row, next(links, None)
    for link in links:
        yield None, link
