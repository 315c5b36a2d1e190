"""The one writer of journal rows, documents and records.

Every journal entry reaches the database through `insert_entries`, after `check_draft`
(balanced per commodity, exactly one positive side per line, open period); on PostgreSQL the
database checks the same again at COMMIT (deferred constraint trigger), refuses UPDATE and
DELETE, and refuses postings dated in a locked period (migrations/sql/). `write_posting`
writes everything a `ledger.core.posting.Posting` produced, in the caller's transaction: the
service layer begins and commits it. The set-based usage import writes a posting's journal a
day at a time as it posts (`insert_entries` of `Posting.settle`'s entries, from its writer
thread), then the rest by `write_posting` (``written``), so the ids are those one write gives.

The row builders (`entry_values`, `line_values`, `usage_values`, ...) are shared with the
one-round-trip pipeline of ``ledger.store.pipeline``, so both strategies write the same rows.
"""

from __future__ import annotations

import secrets
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core.documents import InvoiceDraft
from ledger.core.entries import EntryDraft, Line, check_draft
from ledger.core.posting import Journal, Posting
from ledger.core.records import UsageRecord
from ledger.store.db import COPY_ROWS, bulk_insert, chunks, copy_rows, in_values, is_postgres
from ledger.store.models import (
    Customer,
    Event,
    ImportBatch,
    Grant,
    Guarantee,
    GuaranteeMonth,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    Quarantine,
    Subscription,
    SubscriptionPeriod,
    UsageEvent,
    UsageSource,
)
from ledger.store.periods import closed_periods
from ledger.store.usage_rows import batch_files, place
from ledger.store.books import values_of

if TYPE_CHECKING:
    import psycopg

ENTRY_COLUMNS = ("entry_date", "occurred_at", "kind", "description", "customer_id", "event_id", "import_id",
                 "line_count")
"""The journal_entry columns a draft fills (its attributes of the same names); the id comes from the sequence."""
LINE_COLUMNS = ("entry_id", "account_code", "commodity", "debit", "credit", "customer_id", "grant_id",
                "invoice_number", "event_id")
"""The journal_line columns, in the order of `line_values`."""
# the sequence looked up once (OFFSET 0 keeps the subquery from being pulled up): named per row,
# the text-to-regclass lookup cost 460 ms for a 1M-event import's 136,620 ids, instead of 50
ENTRY_SEQUENCE = "(SELECT pg_get_serial_sequence('journal_entry', 'id')::regclass AS seq OFFSET 0) s"
_NEXT_ENTRY_IDS = f"SELECT nextval(s.seq) FROM {ENTRY_SEQUENCE}, generate_series(1, :n)"


def entry_values(draft: EntryDraft) -> dict[str, Any]:
    """The journal_entry row of ``draft`` (without its id)."""
    return {c: getattr(draft, c) for c in ENTRY_COLUMNS}


def line_values(entry_id: int, ln: Line) -> tuple:
    """The journal_line row of ``ln`` in entry ``entry_id``, in the order of `LINE_COLUMNS`."""
    return (entry_id, ln.account, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
            ln.invoice_number, ln.event_id)


def usage_values(row: UsageRecord, entry_id: int | None, files: Sequence[str]) -> tuple[dict[str, Any], dict | None]:
    """(the usage_event row of ``row``, carried by entry ``entry_id`` (None: quarantined), its
    usage_source row or None): its source as the file's place in ``files`` (the sources of the
    row's import batch) and the line (`ledger.store.usage_rows`), kept as text in usage_source
    when the batch does not give it back. No content hash: the fields are the content."""
    values = values_of(row)
    source = values.pop("source")
    del values["content_hash"]
    try:
        values["file_index"], values["line"] = place(files, source)
    except ValueError:
        return {**values, "entry_id": entry_id}, {"customer_id": row.customer_id, "id": row.id, "source": source}
    return {**values, "entry_id": entry_id}, None


def document_rows(doc: InvoiceDraft, entry_id: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice row and its lines' rows (column -> value) of an issued document, issued by
    entry ``entry_id``; the row carries the seller, buyer and logo snapshots the draft took at
    issue (`ledger.core.posting.Posting.issue`)."""
    series, year, _ = doc.number.split("-")
    inv = {"number": doc.number, "series": series, "year": int(year), "sequence": doc.sequence, "kind": doc.kind,
           "customer_id": doc.customer_id, "currency": doc.currency, "issue_date": doc.issue_date,
           "due_date": doc.due_date, "tax_rate": doc.tax_rate, "subtotal": doc.subtotal, "tax": doc.tax,
           "total": doc.total, "event_id": doc.event_id, "entry_id": entry_id, "category": doc.category,
           "service_period": doc.service_period, "reference": doc.reference, "seller": doc.seller,
           "buyer": doc.buyer, "logo": doc.logo, "logo_type": doc.logo_type}
    lines = [{"invoice_number": doc.number, "position": i + 1, "description": d, "quantity": q, "unit_price": p,
              "amount": a, "customer_id": doc.customer_id} for i, (d, q, p, a) in enumerate(doc.lines)]
    return inv, lines


def check_drafts(drafts: Iterable[EntryDraft], closed: Iterable[str]) -> None:
    """`check_draft` every draft against the ``closed`` periods; raises on the first failure."""
    closed_set = set(closed)
    for d in drafts:
        check_draft(d, closed_set)


def insert_entries(session: Session, drafts: Sequence[EntryDraft], *, closed: Sequence[str] | None = None,
                   copy: bool = False) -> list[int]:
    """Check and write ``drafts`` in order inside the session's transaction; returns entry ids,
    increasing in draft order. ``closed``: the closed periods ('YYYY-MM') if the caller has
    read them in this transaction (read here otherwise); the database's own period-lock
    trigger stays the last word. ``copy``: by COPY on PostgreSQL whatever their number (a
    journal written a slice at a time, `Posting.settle`: its ids as one write would give them).

    raises UnbalancedEntryError, PeriodLockedError (nothing is written when any draft fails).
    """
    if not drafts:
        return []
    check_drafts(drafts, closed_periods(session) if closed is None else closed)
    copy = (copy or len(drafts) >= COPY_ROWS) and is_postgres(session)
    if copy:
        # A bulk import posts ~10,000 entries a chunk: ids drawn from the sequence in one query
        # and the rows sent with COPY cost a tenth of INSERT ... RETURNING. The triggers (open
        # period, lines present at COMMIT) fire as for INSERT; ids may have gaps, as with INSERT.
        for d in drafts:
            if d.occurred_at.tzinfo is None:  # what UTCDateTime refuses on the INSERT path
                raise ValueError(f"journal entry '{d.description}': naive occurred_at {d.occurred_at!r}")
        ids = sorted(session.execute(sa.text(_NEXT_ENTRY_IDS), {"n": len(drafts)}).scalars())
        # the values of ENTRY_COLUMNS, dates as ISO text (`ledger.store.db.copy_text`)
        copy_rows(session, JournalEntry.__tablename__, ("id", *ENTRY_COLUMNS),
                  ((entry_id, d.entry_date.isoformat(), d.occurred_at.isoformat(), d.kind, d.description,
                    d.customer_id, d.event_id, d.import_id, len(d.lines)) for entry_id, d in zip(ids, drafts)))
    else:
        ids = list(session.execute(sa.insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True),
                                   [entry_values(d) for d in drafts]).scalars())
    line_count = sum(len(d.lines) for d in drafts)
    if copy or (line_count >= COPY_ROWS and is_postgres(session)):  # streamed: no row object per line held at once
        copy_rows(session, JournalLine.__tablename__, LINE_COLUMNS,
                  (line_values(entry_id, ln) for entry_id, d in zip(ids, drafts) for ln in d.lines))
    else:
        bulk_insert(session, JournalLine.__table__,
                    [dict(zip(LINE_COLUMNS, line_values(entry_id, ln))) for entry_id, d in zip(ids, drafts) for ln in d.lines])
    return ids


def new_token() -> int:
    """A fresh book version, written to every customer whose book a posting loaded (see
    ``ledger.store.books.BookCache``)."""
    return secrets.randbits(62) + 1


def _write_customers(session: Session, p: Posting, token: int) -> None:
    """New customers, the others' moved steps cursor, and the book version of all of them."""
    s = session
    new = [b for b in p.books.values() if b.new]
    for b in new:  # inserted with their cursor and version: no UPDATE of rows just written
        b.customer.steps_through, b.customer.book_version = b.steps_through, token
    bulk_insert(s, Customer.__table__, [values_of(b.customer) for b in new])
    moved: dict[datetime | None, list[str]] = defaultdict(list)  # by new cursor: a close moves all to one
    for b in p.books.values():
        if not b.new and b.steps_through != b.customer.steps_through:
            moved[b.steps_through].append(b.customer.id)
            b.customer.steps_through = b.steps_through
    for steps_through, ids in moved.items():
        for chunk in chunks(sorted(ids), 10_000):
            s.execute(sa.update(Customer).where(in_values(s, Customer.id, chunk)).values(steps_through=steps_through)
                      .execution_options(synchronize_session=False))
    for chunk in chunks(sorted(cid for cid, b in p.books.items() if not b.new), 10_000):
        s.execute(sa.update(Customer).where(in_values(s, Customer.id, chunk)).values(book_version=token)
                  .execution_options(synchronize_session=False))
    for b in p.books.values():
        b.customer.book_version = token


def _write_contracts(session: Session, p: Posting) -> None:
    """New subscriptions (and cancelled ones' end), grants, billed months and guarantees."""
    s = session
    subs = [st for b in p.books.values() for st in b.subs]
    new_subs = [values_of(st.row) for st in subs if st.new]
    if new_subs:
        s.execute(sa.insert(Subscription.__table__), new_subs)
    for st in subs:
        if st.changed and not st.new:
            s.execute(sa.update(Subscription).where(Subscription.id == st.row.id)
                      .values(end_date=st.row.end_date, cancel_event_id=st.row.cancel_event_id)
                      .execution_options(synchronize_session=False))
    for st in subs:
        st.new = st.changed = False
    for model, rows in ((Grant, p.grant_rows), (SubscriptionPeriod, p.period_rows),
                        (Guarantee, [gs.row for b in p.books.values() for gs in b.guarantees if gs.new])):
        bulk_insert(s, model.__table__, [values_of(r) for r in rows])
    for b in p.books.values():
        for gs in b.guarantees:
            gs.new = False


def write_posting(session: Session, p: Posting, *, written: Sequence[int] = ()) -> int:
    """Write everything ``p`` produced, in the session's transaction: customers, contracts,
    journal entries (`insert_entries`), documents, usage rows (by COPY on PostgreSQL
    from `COPY_ROWS` rows), events, quarantine and guarantee months. ``written``: the ids of
    the journal's first entries, written already in this transaction (`Posting.settle`'s, by
    `insert_entries`); the rest follow them. Returns the book version token written to every
    customer the posting loaded. raises UnbalancedEntryError, PeriodLockedError, and what the
    database refuses."""
    s = session
    journal: Journal = p.entries()
    token = new_token()
    _write_customers(s, p, token)
    _write_contracts(s, p)
    ids = [*written, *insert_entries(s, journal.drafts[len(written):], closed=p.closed, copy=bool(written))]
    journal.ids = ids
    documents = [document_rows(doc, ids[index]) for (doc, _), index in zip(p.invoices, journal.invoice_entry)]
    bulk_insert(s, Invoice.__table__, [inv for inv, _ in documents])
    bulk_insert(s, InvoiceLine.__table__, [ln for _, doc_lines in documents for ln in doc_lines])
    files = batch_files(s, [p.import_id]).get(p.import_id, []) if p.usage_rows else []  # type: ignore[arg-type]
    usage = [usage_values(u, ids[journal.usage_entry[u.id]] if u.id in journal.usage_entry else None, files)
             for u in p.usage_rows]
    bulk_insert(s, UsageEvent.__table__, [row for row, _ in usage])
    bulk_insert(s, UsageSource.__table__, [kept for _, kept in usage if kept is not None])
    for model, rows in ((Event, p.event_rows), (Quarantine, p.quarantine_rows), (GuaranteeMonth, p.guarantee_month_rows)):
        bulk_insert(s, model.__table__, [values_of(r) for r in rows])
    for b in p.books.values():
        b.new = False
    p.summary.entries = len(ids)
    return token


# --------------------------------------------------------------------------- the pipelined strategy
# The same rows as `write_posting`, sent by psycopg's pipeline mode in one round trip with the
# transaction's other statements (``ledger.store.pipeline``): for a posting that writes only
# usage (one customer, `Posting.writes_only_usage`). PostgreSQL only.

_CURSOR = "UPDATE customer SET steps_through = %s, book_version = %s WHERE id = %s"
_BATCH_COLUMNS = ("id", "sources", "posted", "duplicates", "quarantined", "late")
_QUARANTINE_COLUMNS = tuple(c.name for c in Quarantine.__table__.columns)


def _insert(table: sa.Table, columns: Sequence[str], sql: dict[str, str] | None = None, rows: int = 1) -> str:
    """INSERT of ``rows`` rows of ``columns``: a parameter each, or the SQL expression ``sql[column]``."""
    values = ", ".join((sql or {}).get(c, "%s") for c in columns)
    return f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ' + ", ".join([f"({values})"] * rows)


def _send_usage(cur: psycopg.Cursor, rows: tuple[dict[str, Any], dict | None], sql: dict[str, str]) -> None:
    """Send the INSERT of a usage row and of its usage_source row, if any (`usage_values`)."""
    row, kept = rows
    _insert_row(cur, UsageEvent.__table__, row, sql)
    if kept is not None:
        _insert_row(cur, UsageSource.__table__, kept, {})


def _insert_row(cur: psycopg.Cursor, table: sa.Table, row: dict[str, Any], sql: dict[str, str]) -> None:
    """Send the INSERT of ``row`` (column -> value); the columns of ``sql`` get its expressions."""
    columns = tuple(c for c in row if c not in sql) + tuple(c for c in sql if c in row)
    cur.execute(_insert(table, columns, sql), tuple(row[c] for c in columns if c not in sql))


# Each entry takes its id from the sequence as it is inserted; its lines and usage rows, sent
# right after it in the same pipeline, name it with currval: this connection's last value of
# the sequence (no round trip to draw the ids first). Entries get their ids in draft order, as
# `insert_entries` gives them.
_ENTRY_JUST_INSERTED = {"entry_id": "currval(pg_get_serial_sequence('journal_entry', 'id'))"}


@functools.cache
def _insert_lines(n: int) -> str:
    """One INSERT of an entry's ``n`` lines, each naming the entry just inserted (currval)."""
    return _insert(JournalLine.__table__, LINE_COLUMNS, _ENTRY_JUST_INSERTED, rows=n)


INSERT_BATCH = _insert(ImportBatch.__table__, _BATCH_COLUMNS)
# the one-round-trip path (`_post_kept`) draws the batch id as it inserts the batch; the rows
# after it name it by currval of its sequence, as lines name their entry
BATCH_JUST_INSERTED = {"import_id": "currval(pg_get_serial_sequence('import_batch', 'id'))"}
INSERT_BATCH_FROM_SEQUENCE = _insert(ImportBatch.__table__, _BATCH_COLUMNS,
                                      {"id": "nextval(pg_get_serial_sequence('import_batch', 'id'))"}) + " RETURNING id"


def send_posting(cur: psycopg.Cursor, run: Posting, steps_through: datetime | None, token: int,
               batch_sql: dict[str, str], files: Sequence[str]) -> None:
    """Send, in the pipeline of ``cur``, every row of a posting that writes only usage (one
    customer), built by the writer's row builders: the customer's ``steps_through`` and
    ``book_version`` (``token``), each entry followed by its lines and usage rows (naming it by
    currval), the quarantined usage rows and the quarantine rows. ``batch_sql``:
    {"import_id": SQL} when the import batch id is drawn in the pipeline (the rows then name it
    by currval), {} when the posting carries it; ``files``: the batch's sources."""
    (customer_id,) = run.books
    journal = run.entries()
    usage_of: dict[int, list] = defaultdict(list)  # entry index -> the usage rows it carries (-1: none)
    for usage in run.usage_rows:
        usage_of[journal.usage_entry.get(usage.id, -1)].append(usage)
    entry_sql = {**_ENTRY_JUST_INSERTED, **batch_sql}
    cur.execute(_CURSOR, (steps_through, token, customer_id))
    for i, draft in enumerate(journal.drafts):  # each entry, then what names it by currval
        _insert_row(cur, JournalEntry.__table__, entry_values(draft), batch_sql)
        if draft.lines:  # (an entry without lines is refused at COMMIT by the journal's trigger)
            cur.execute(_insert_lines(len(draft.lines)), [v for ln in draft.lines for v in line_values(0, ln)[1:]])
        for usage in usage_of.pop(i, ()):
            _send_usage(cur, usage_values(usage, None, files), entry_sql)
    for usage in usage_of.pop(-1, ()):  # quarantined: in no entry
        _send_usage(cur, usage_values(usage, None, files), batch_sql)
    for q in run.quarantine_rows:
        _insert_row(cur, Quarantine.__table__, {c: getattr(q, c) for c in _QUARANTINE_COLUMNS}, batch_sql)
    for b in run.books.values():
        b.customer.steps_through, b.customer.book_version = b.steps_through, token


# --------------------------------------------------------------------------- the grouped strategy
# The rows of a usage-only posting of many customers (the HTTP API's group commit,
# ``ledger.store.grouped``), each table's rows in one INSERT ... SELECT FROM unnest(arrays): a
# handful of statements a group whatever its size, sent in the caller's pipeline. Ids come with
# the call (drawn from the sequences beforehand), so nothing waits for a result. PostgreSQL only.

@functools.cache
def _insert_unnest(table: sa.Table, columns: tuple[str, ...]) -> str:
    """INSERT of the rows whose column values come as one array parameter per column."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in columns)
    return f'INSERT INTO "{table.name}" ({", ".join(columns)}) SELECT * FROM unnest({arrays})'


Statement = tuple[str, Sequence]
"""One statement to send: its SQL and its parameters."""


def _columns(table: sa.Table, columns: tuple[str, ...], rows: list[tuple]) -> list[Statement]:
    """The INSERT of ``rows`` (tuples in the order of ``columns``) as one statement (none for no rows)."""
    return [(_insert_unnest(table, columns), [list(col) for col in zip(*rows)])] if rows else []


_USAGE_COLUMNS = tuple(c.name for c in UsageEvent.__table__.columns)
_ENTRY_ROW = ("id", *ENTRY_COLUMNS)
_CURSORS = ("UPDATE customer AS c SET steps_through = k.steps_through, book_version = %s "
            "FROM unnest(%b::varchar[], %b::timestamptz[]) AS k(id, steps_through) WHERE c.id = k.id")


def grouped_statements(run: Posting, token: int, batch_id: int, entry_ids: Sequence[int],
                       files: Sequence[str]) -> list[Statement]:
    """The statements that write every row of ``run`` (a posting that writes only usage,
    `Posting.writes_only_usage`, for any number of customers), built by the writer's row
    builders, to be sent in order with `send_statements`: each customer's ``steps_through`` and
    ``book_version`` (``token``), the entries with ``entry_ids`` (one id per draft, in draft
    order, drawn beforehand), their lines, the usage rows naming their entry and their place in
    ``files`` (the batch's sources), the quarantine rows; every row of the posting names import
    batch ``batch_id`` (inserted by the caller). The drafts must have been checked
    (`check_drafts`). Every value is read from ``run`` here, so the books may change after it
    returns (the next group applied on them) without changing what is sent."""
    journal = run.entries()
    books = sorted(run.books.values(), key=lambda b: b.customer.id)
    out: list[Statement] = [(_CURSORS, (token, [b.customer.id for b in books], [b.steps_through for b in books]))]
    entries = []
    for entry_id, draft in zip(entry_ids, journal.drafts, strict=True):
        draft.import_id = batch_id
        entries.append((entry_id, *entry_values(draft).values()))
    out += _columns(JournalEntry.__table__, _ENTRY_ROW, entries)
    out += _columns(JournalLine.__table__, LINE_COLUMNS,
                    [line_values(entry_id, ln) for entry_id, d in zip(entry_ids, journal.drafts) for ln in d.lines])
    usage, sources = [], []
    for u in run.usage_rows:
        u.import_id = batch_id
        index = journal.usage_entry.get(u.id)
        row, kept = usage_values(u, None if index is None else entry_ids[index], files)
        usage.append(tuple(row[c] for c in _USAGE_COLUMNS))
        if kept is not None:
            sources.append((kept["customer_id"], kept["id"], kept["source"]))
    out += _columns(UsageEvent.__table__, _USAGE_COLUMNS, usage)
    out += _columns(UsageSource.__table__, ("customer_id", "id", "source"), sources)
    quarantined = []
    for q in run.quarantine_rows:
        q.import_id = batch_id
        quarantined.append(tuple(getattr(q, c) for c in _QUARANTINE_COLUMNS))
    out += _columns(Quarantine.__table__, _QUARANTINE_COLUMNS, quarantined)
    for b in books:
        b.customer.steps_through, b.customer.book_version = b.steps_through, token
    return out


def send_statements(cur: psycopg.Cursor, statements: Sequence[Statement]) -> None:
    """Send ``statements`` (`grouped_statements`) on ``cur``, in order (in its pipeline)."""
    for sql, params in statements:
        cur.execute(sql, params)
