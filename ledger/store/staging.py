"""The set-based usage import's SQL (PostgreSQL): a usage CSV copied into a staging table, checked
by set operations, summed per customer and day with window functions, and its usage rows written
by one INSERT ... SELECT a day, naming their entries.

The staging path takes only input it can prove the general path would read the same way: the
``credits`` header, every cell in the plain form the event schema accepts (ids and customer ids
by their patterns, ``occurred_at`` as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, credits as 1-19 digits), no id
given twice or already stored, every customer stored and no usage late. Anything else is
answered by `stage_usage` returning a reason, and the caller imports the file through the
general rules, which report problems by file, line, field and value. Every statement filters or
groups by customer, so it runs co-located where the tables are distributed by customer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import psycopg
import sqlalchemy as sa
from sqlmodel import Session

from ledger.core.records import UsageDay
from ledger.store.db import is_citus
from ledger.store.events import lock_customer_rows
from ledger.store.models import Customer

HEADER = b"event_id,customer_id,occurred_at,credits"
# a data line in plain form (the event schema's patterns and lengths: ids up to 128 characters,
# customer ids up to 64, the instant in UTC with up to 6 fractional digits, credits 1-19 digits);
# the calendar (30 February) and the range of credits (1..2^63-1) are the server's casts and the
# staging table's CHECK: a cell refused there makes COPY fail and the file the general path's
_LINE = re.compile(
    rb"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127},[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,63},"
    rb"20[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    rb"(?:\.[0-9]{1,6})?Z,[0-9]{1,19}")

# the file as COPY reads it, typed (each line proved plain by `_copy_plain` as it is sent): ``n``
# is the file's line (the header is line 1)
_RAW = """CREATE TEMPORARY TABLE usage_raw (
    n bigint GENERATED ALWAYS AS IDENTITY (START WITH 2), event_id text NOT NULL, customer_id text NOT NULL,
    at timestamptz NOT NULL, credits bigint NOT NULL CHECK (credits > 0)) ON COMMIT DROP"""

# the staged rows in (day, customer, time, line) order, one sort for all that follows (a day's
# rows together: the import writes the usage rows of each day as it finishes posting it):
# ``day`` the accounting day, ``before`` the units of the customer-day before the event (time,
# then line). Credits are at least 1, so ``before`` is 0 for the day's first event alone.
# Customer ids sorted bytewise (COLLATE "C": equal ids are equal in every deterministic
# collation, and a bytewise sort runs on abbreviated keys where the database's collation may not)
_TYPED = """CREATE TEMPORARY TABLE usage_stage ON COMMIT DROP AS
    SELECT n AS line, event_id, customer_id, at, credits, day,
           sum(credits) OVER (PARTITION BY day, customer_id COLLATE "C" ORDER BY at, n) - credits AS before
      FROM (SELECT n, event_id, customer_id, at, credits, (at AT TIME ZONE :tz)::date AS day FROM usage_raw) r
     ORDER BY day, customer_id COLLATE "C", at, n"""

_TWICE = ("an id given twice", "SELECT EXISTS (SELECT event_id FROM usage_stage GROUP BY event_id HAVING count(*) > 1)")
# SELECT 1, not an empty select list: Citus reads the staged table into an intermediate result
# and refuses one without columns ("a column definition list is required")
_STORED_CITUS = ("an id already stored", "SELECT EXISTS (SELECT 1 FROM usage_stage s JOIN usage_event u ON u.id = s.event_id) "
                                         "OR EXISTS (SELECT 1 FROM usage_stage s JOIN event e ON e.id = s.event_id)")
# counted, not EXISTS: an id is almost never stored, and EXISTS lets the planner hope to stop at
# the first match, probing the stored ids' index once per staged row (1M probes of pk_event:
# 1.2 s) where hashing the smaller side and reading the other once costs a fifth of that
_STORED = ("an id already stored", "SELECT (SELECT count(*) FROM usage_stage s JOIN usage_event u ON u.id = s.event_id) "
                                   "+ (SELECT count(*) FROM usage_stage s JOIN event e ON e.id = s.event_id) > 0")

# run under the customers' locks: another importer may have moved a cursor before they were taken
_CUSTOMERS = """SELECT coalesce(bool_or(c.id IS NULL OR s.at < c.steps_through OR s.day < :first_open), false)
                  FROM usage_stage s LEFT JOIN customer c ON c.id = s.customer_id"""

# per customer and day: the bucket's first event (time, then line: ``before`` 0), last time,
# count and sum, and its events as text (`staged_events`): a day handed back to the general
# rules reads them from there, not from the connection, which the writer thread may be using.
# Grouped by (day, customer), the order of the staging index: read along it, not sorted again
# (1M events: 0.67 s instead of 1.20 s)
_DAYS = """SELECT customer_id, day, min(at) AS first_at, max(at) AS last_at, count(*) AS events,
                  sum(credits) AS credits, min(line) FILTER (WHERE before = 0) AS first_line,
                  string_agg(event_id || ' ' || (extract(epoch FROM at) * 1000000)::bigint || ' ' || credits
                             || ' ' || line, ',') AS stream
             FROM usage_stage GROUP BY day, customer_id"""

_BUCKETS = """CREATE TEMPORARY TABLE usage_bucket (
    day date NOT NULL, customer_id text NOT NULL, entry_id bigint NOT NULL, drawable bigint NOT NULL,
    price text, PRIMARY KEY (day, customer_id)) ON COMMIT DROP"""

# each event's place in its bucket: units of the day before it (time, then line), the part of
# it the grants cover (up to ``drawable``) and the rest as overage; its source is the batch's one
# file (``file_index`` 0) and its line (`ledger.store.usage_rows`). One day's rows: a range of
# the staging index, joined with that day's buckets (a customer-day posted event by event has
# none, and is written with the posting's other usage rows)
_INSERT = r"""INSERT INTO usage_event (id, customer_id, occurred_at, credits, action, quantity, status, late, entry_id,
                                      import_id, file_index, line, overage_units, overage_price, draw_start)
SELECT s.event_id, s.customer_id, s.at, s.credits, NULL, NULL, 'posted', false, b.entry_id, :import_id, 0, s.line,
       s.credits - (least(s.before + s.credits, b.drawable) - least(s.before, b.drawable)),
       CASE WHEN s.before + s.credits > b.drawable THEN b.price END,
       least(s.before, b.drawable)
  FROM usage_stage s
  JOIN usage_bucket b ON b.customer_id = s.customer_id AND b.day = s.day
 WHERE s.day = :day AND b.day = :day"""


def _raw(session: Session):
    return session.connection().connection.driver_connection


def plain_usage_csv(path: str | Path) -> bool:
    """True when ``path`` starts with the ``credits`` header and holds no CR, NUL or byte-order
    mark: the only files the staging path reads (line n of the file is row n - 1 of the COPY)."""
    with open(path, "rb") as f:
        head = f.readline().rstrip(b"\n")
        if head != HEADER:
            return False
        while block := f.read(1 << 22):
            if b"\r" in block or b"\x00" in block:
                return False
    return True


def stage_usage(session: Session, path: str | Path, tz: str) -> str | None:
    """COPY ``path`` into the transaction's staging tables, typed, each line checked in plain form
    as it is sent (`_copy_plain`), then sorted by customer and day and its ids checked by set
    operations; None when the staging path may post it, else the reason it may not, including a
    file the server cannot parse or cast (30 February, credits 0 or beyond 2^63 - 1: the caller
    rolls back and uses the general path). The caller holds the posting gate."""
    try:
        return _stage(session, path, tz)
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        return f"the server refused the file: {str(exc).splitlines()[0]}"


def _stage(session: Session, path: str | Path, tz: str) -> str | None:
    session.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    session.execute(sa.text(_RAW))
    with open(path, "rb") as f, _raw(session).cursor() as cur:
        if f.readline().rstrip(b"\n") != HEADER:
            return "not the credits header"
        with cur.copy("COPY usage_raw (event_id, customer_id, at, credits) FROM STDIN "
                      "(FORMAT csv, ENCODING 'UTF8')") as copy:
            if not _copy_plain(f, copy.write):
                return "a cell not in plain form"
    session.execute(sa.text(_TYPED), {"tz": tz})
    # before the checks: planned for the staged table's size and its distinct ids
    session.execute(sa.text("ANALYZE usage_stage"))
    for reason, sql in (_TWICE, _STORED_CITUS if is_citus(session) else _STORED):
        if session.execute(sa.text(sql)).scalar_one():
            return reason
    # a day's rows are read by day and customer (`insert_staged_usage`)
    session.execute(sa.text("CREATE INDEX ON usage_stage (day, customer_id)"))
    session.execute(sa.text(_BUCKETS))
    return None


def _copy_plain(f: BinaryIO, write: Callable[[bytes], object]) -> bool:
    """Pass the rest of ``f`` to ``write`` in blocks of whole lines (4 MiB read at a time) while
    every line is in plain form (`_LINE`); False at the first that is not (about half a second
    of the client's time per million lines, beside the server's COPY)."""
    match = _LINE.fullmatch
    rest = b""
    while block := f.read(1 << 22):
        block = rest + block
        cut = block.rfind(b"\n") + 1
        block, rest = block[:cut], block[cut:]
        if not all(map(match, block.split(b"\n")[:-1])):
            return False
        write(block)
    if rest and match(rest) is None:
        return False
    write(rest)
    return True


def staged_customers_unknown_or_late(session: Session, first_open: date | None) -> bool:
    """True when a staged event names a customer not stored, or is late: before its customer's
    steps cursor or its day before ``first_open`` (the first day of the first open period).
    Run under the customers' locks (`lock_staged_customers`)."""
    return bool(session.execute(sa.text(_CUSTOMERS), {"first_open": first_open or date.min}).scalar_one())


def lock_staged_customers(session: Session) -> list[Customer]:
    """Lock (SELECT ... FOR UPDATE) every staged customer, in id order, after the posting gate
    (the lock order of `ledger.store.events.lock_customers`, by its `lock_customer_rows`);
    returns the rows."""
    return lock_customer_rows(session, Customer, Customer.id.in_(sa.text("SELECT DISTINCT customer_id FROM usage_stage")))


def staged_days(session: Session) -> Iterator[tuple[UsageDay, str]]:
    """Each staged customer-day, in no particular order, with its events as text for
    `staged_events`; instants in `datetime.timezone.utc` (psycopg gives the session's
    ZoneInfo, and comparing instants of two tzinfo objects costs twenty times as much on the
    hot path)."""
    utc = timezone.utc
    with _raw(session).cursor() as cur:
        for cid, day, first_at, last_at, events, credits, first_line, stream in cur.execute(_DAYS):
            yield (UsageDay(cid, day, first_at.astimezone(utc), last_at.astimezone(utc), events, int(credits), first_line),
                   stream)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def staged_events(stream: str) -> list[tuple[str, datetime, int, int]]:
    """(id, occurred_at in UTC, credits, line) of the events of one staged customer-day, in time
    then line order; ``stream``: the day's events as `staged_days` gives them (each "id
    microseconds-since-1970 credits line", comma separated)."""
    events = []
    for item in stream.split(","):
        event_id, micros, credits, line = item.split(" ")
        events.append((event_id, _EPOCH + timedelta(microseconds=int(micros)), int(credits), int(line)))
    events.sort(key=lambda e: (e[1], e[3]))
    return events


def insert_staged_usage(session: Session, day: date, buckets: Sequence[tuple[str, int, int, str | None]],
                        *, import_id: int) -> int:
    """Write the usage rows of the staged events of accounting day ``day`` whose customer-day
    is in ``buckets`` ((customer id, entry id, units the grants cover, overage price or None)),
    by one INSERT ... SELECT; each row names import batch ``import_id``'s one file and its
    line. A customer-day not in ``buckets`` (posted event by event) gets no row here. Returns
    the rows written."""
    if not buckets:
        return 0
    with _raw(session).cursor() as cur, cur.copy("COPY usage_bucket (day, customer_id, entry_id, drawable, price) "
                                                 "FROM STDIN") as copy:
        for row in buckets:
            copy.write_row((day, *row))
    return session.execute(sa.text(_INSERT), {"import_id": import_id, "day": day}).rowcount
