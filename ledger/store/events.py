"""Reads and locks around a batch of events: which ids are stored, the facts the batch's checks
need (``ledger.core.checks``), the posting gate, and the customer locks that serialise writers
of a customer.

Lock order on PostgreSQL (docs/design.md §6.6), the same for every transaction that writes:

1. the posting gate (`posting_gate`): an advisory transaction lock, shared by the postings that
   lock their customers here (imports, the API's general path), exclusive for a close or a
   reopen, so that those never overlap (the API's one-usage path, ``ledger.store.pipeline``,
   starts at 2: a close holds or waits for its customer's row before the journal lock);
2. customer rows (SELECT ... FOR UPDATE), in customer id order: a posting's own customers
   (`lock_customers`), every customer for a close (`ledger.store.closing.lock_for_close`), all
   through `lock_customer_rows` (on Citus one customer a statement);
3. the journal: a close's SHARE ROW EXCLUSIVE lock on journal_entry
   (`ledger.store.roles.lock_journal`), a posting's ROW EXCLUSIVE one as it inserts entries;
4. document numbers (`ledger.store.numbering`), then the close's records.

Nobody waits for a lock earlier in this order while holding a later one, so writers wait for
one another and never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core.checks import GRANT_ID_FIELDS, BatchFacts, KnownCustomer, declared
from ledger.events import EventVoided, SourcedEvent, UsageRecorded
from ledger.store.db import CHUNK, chunks, in_values, is_citus, is_postgres
from ledger.store.models import Customer, Event, Grant, UsageEvent
from ledger.store import usage_rows


def existing_events(session: Session, ids: list[str], models: Sequence = (Event, UsageEvent)) -> dict[str, tuple[str, str]]:
    """id -> (content hash, source) for ids already stored in any of ``models`` (the business
    events and the usage events by default), in one query per chunk of ids.

    On PostgreSQL the ids go as one array parameter per 10,000 (``id = ANY(:ids)``): one
    statement text whatever the count, whose cached plan is an index scan (an ``IN`` list of
    500 parameters, prepared while the table was empty, kept a sequential scan as it grew)."""
    from sqlalchemy.dialects.postgresql import ARRAY

    out: dict[str, tuple[str, str]] = {}
    pg = is_postgres(session)
    for chunk in chunks(ids, 10_000 if pg else CHUNK):
        param = sa.bindparam("ids", list(chunk), type_=ARRAY(sa.String)) if pg else None
        for m in models:  # a later model wins, as before
            where = m.id == sa.any_(param) if pg else m.id.in_(chunk)
            if m is UsageEvent:  # its hash and source come from its fields (`ledger.store.usage_rows`)
                out.update(usage_rows.stored_usage_facts(session, where))
            else:
                out.update((i, (h, src)) for i, h, src in session.execute(sa.select(m.id, m.content_hash, m.source)
                                                                           .where(where)))
    return out


_IDS = 10_000
"""Ids per statement of `batch_facts` (one array parameter on PostgreSQL, `in_values`)."""


def batch_facts(session: Session, events: Sequence[SourcedEvent], *, customers: Sequence[Customer] = ()) -> BatchFacts:
    """What is stored that the checks of ``events`` depend on (see `BatchFacts`).
    ``customers``: rows already read in this transaction (`lock_customers`), not queried again."""
    facts = BatchFacts(stored=existing_events(session, [se.id for se in events]))
    facts.customers = {c.id: KnownCustomer(c.currency, c.created_at, c.tax_rate) for c in customers}
    fresh = [se for se in events if se.id not in facts.stored]
    wanted = sorted({getattr(se.event, "customer_id", None) for se in fresh} - {None} - facts.customers.keys())
    for chunk in chunks(wanted, _IDS):
        for cid, cur, created, rate in session.execute(
                sa.select(Customer.id, Customer.currency, Customer.created_at, Customer.tax_rate)
                .where(in_values(session, Customer.id, chunk))):
            facts.customers[cid] = KnownCustomer(cur, created, rate)
    new_grant_ids = sorted({gid for se in fresh if not isinstance(se.event, UsageRecorded)
                            for k in declared(type(se.event), GRANT_ID_FIELDS)
                            if (gid := getattr(se.event, k)) is not None})
    for chunk in chunks(new_grant_ids, _IDS):
        facts.grant_ids.update(session.execute(sa.select(Grant.id).where(in_values(session, Grant.id, chunk))).scalars())
    targets = sorted({se.event.target_event_id for se in fresh if isinstance(se.event, EventVoided)})
    if targets:  # earlier voids matter only to new ones
        for payload, src in session.execute(sa.select(Event.payload, Event.source).where(Event.type == "event.voided")):
            facts.voided[json.loads(payload)["target_event_id"]] = src
    for chunk in chunks(targets):
        for tid, t_type, t_at in session.execute(sa.select(Event.id, Event.type, Event.occurred_at).where(Event.id.in_(chunk))):
            facts.targets[tid] = (t_type, t_at)
        for tid, t_at in session.execute(sa.select(UsageEvent.id, UsageEvent.occurred_at).where(UsageEvent.id.in_(chunk))):
            facts.targets.setdefault(tid, ("usage.recorded", t_at))
    return facts


GATE_KEY = 5495873993171928582
"""The posting gate's advisory lock key (a bigint: "LEDGER" in ASCII, then 6 and 6); migration
0010's ledger_close_period() and ledger_reopen_period() take it with the same key."""


def posting_gate(session: Session, *, exclusive: bool = False) -> None:
    """Take the posting gate for the rest of the transaction (PostgreSQL; nothing on SQLite):
    shared for a posting, ``exclusive`` for a close or a reopen. First in the lock order of
    docs/design.md §6.6: taken before any other lock of the transaction. It needs no privilege
    (an advisory lock), so a role that may not write fails at its first write, as before."""
    if is_postgres(session):
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(sa.text(f"SELECT {fn}({GATE_KEY})"))


def lock_customers(session: Session, events: Sequence[SourcedEvent]) -> list[Customer]:
    """On PostgreSQL, take the posting gate (shared: `posting_gate`), then lock (SELECT ... FOR
    UPDATE) every existing customer the batch touches, including the customers of the events it
    voids, in customer id order, until the transaction ends. Concurrent importers (and API
    callers) of the same customers therefore run one after the other, each seeing what the
    previous one committed: no credit is drawn twice and no update is lost; importers of
    different customers run in parallel; a close waits for them, and they wait for a close. One
    global order (docs/design.md §6.6) means no deadlock. Returns the rows locked, which the run
    then reads instead of querying them again (none on SQLite, which serialises writers by
    itself)."""
    if not is_postgres(session):
        return []
    posting_gate(session)
    ids = {cid for se in events if (cid := getattr(se.event, "customer_id", None)) is not None}
    targets = sorted({se.event.target_event_id for se in events if isinstance(se.event, EventVoided)})
    for chunk in chunks(targets):
        ids.update(x for x in session.execute(sa.select(Event.customer_id).where(Event.id.in_(chunk))).scalars() if x)
        ids.update(session.execute(sa.select(UsageEvent.customer_id).where(UsageEvent.id.in_(chunk))).scalars())
    locked: list[Customer] = []
    for chunk in chunks(sorted(ids), 10_000):
        locked += lock_customer_rows(session, Customer, in_values(session, Customer.id, chunk))
    return locked


def lock_customer_rows(session: Session, what: Any, where: sa.ColumnElement[bool] | None = None) -> list:
    """Lock (SELECT ... FOR UPDATE) the customer rows ``where`` selects (every customer without
    it) in customer id order, until the transaction ends, and return them in that order: the
    mapped rows (``what`` = `Customer`, read afresh: populate_existing) or their ids (``what`` =
    ``Customer.id``). The one way the customer locks of docs/design.md §6.6 are taken.

    PostgreSQL: one statement (``... ORDER BY id FOR UPDATE``). Citus refuses FOR UPDATE in a
    query over many shards ("could not run distributed query with FOR UPDATE/SHARE commands"),
    so there the ids are read first, unlocked and in the same ORDER BY (the database's collation,
    as every other locker orders them), and each customer is then locked by a statement of its
    own that names its id (`lock_each`: one shard), in that order; the rows are read after,
    under their locks. A customer gone meanwhile is left out. The same rows in the same order
    either way, so the lock order holds across both."""
    if what is not Customer and what is not Customer.id:
        raise ValueError(f"lock_customer_rows returns Customer rows or Customer.id, not {what!r}")
    q = sa.select(what).order_by(Customer.id).with_for_update().execution_options(populate_existing=True)
    if not is_citus(session):
        return list(session.execute(q if where is None else q.where(where)).scalars())
    ids = sa.select(Customer.id).order_by(Customer.id)
    locked = lock_each(session, session.execute(ids if where is None else ids.where(where)).scalars().all())
    if what is Customer.id or not locked:
        return locked
    rows = {r.id: r for r in session.execute(sa.select(Customer).where(in_values(session, Customer.id, locked))
                                             .execution_options(populate_existing=True)).scalars()}
    return [rows[c] for c in locked]


LOCK_ONE = "SELECT id FROM customer WHERE id = %s FOR UPDATE"
"""`lock_each`'s statement: one customer's row, one shard on Citus."""


def lock_each(session: Session, ids: Sequence[str]) -> list[str]:
    """Lock the customers ``ids`` one statement each (`LOCK_ONE`), in the order given; the ids
    locked (those that exist), in that order. The statements go to the server together (psycopg
    pipeline: ``executemany`` returning their rows), which runs them one after the other: the
    same locks in the same order as one round trip each, at a third of the time (10,000
    customers on the local Citus cluster: 3.5 s instead of 6.5-8 s)."""
    if not ids:
        return []
    raw = session.connection().connection.driver_connection
    locked: list[str] = []
    with raw.cursor() as cur:
        cur.executemany(LOCK_ONE, [(c,) for c in ids], returning=True)
        while True:
            locked += [row[0] for row in cur.fetchall()]
            if not cur.nextset():
                break
    return locked
