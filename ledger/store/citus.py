"""The books distributed by customer on a Citus cluster (``ledger db distribute``).

Every table of a customer's books is distributed by the customer's id in one co-location group
(customer by ``id``, the others by ``customer_id``), so a customer's rows of every table live in
the same shard on the same worker and every join or lock of one customer runs there. The chart
(``account``) and the period locks (``accounting_period``) become reference tables, copied to
every node, so the guards on the shards can read them. What is company-wide stays a plain table
on the coordinator: import batches, the close records and their seal links, the document
numbers (gap-free, one row locked per series and year) and Alembic's revision.

Citus asks more of the schema than one PostgreSQL does, and `distribute` makes those changes in
the same transaction as the distribution, so a failure leaves the database as it was:

- the distribution column is NOT NULL, and every primary key and unique constraint of a
  distributed table includes it (``(customer_id, id)``); global lookups by id alone keep an index;
- a foreign key between distributed tables includes it on both sides; foreign keys to the
  coordinator's own tables (import_batch) are dropped;
- the journal's guards are row triggers whose queries name the customer (a shard's trigger may
  read only its own customer's rows), and the period lock is a row trigger again: Citus does not
  run statement triggers with transition tables on shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.store.db import forget_citus

DISTRIBUTED = ("customer", "credit_grant", "subscription", "subscription_period", "guarantee", "guarantee_month",
               "event", "journal_entry", "journal_line", "invoice", "invoice_line", "usage_event",
               "usage_draw_legacy", "usage_source", "quarantine", "webhook_delivery")
"""The tables of a customer's books, distributed by customer (customer by id, the rest by customer_id)."""
REFERENCE = ("account", "accounting_period")
"""Small tables every shard reads: copied to every node."""
LOCAL = ("import_batch", "period_close", "entry_seal", "document_sequence", "alembic_version")
"""Company-wide tables that stay on the coordinator."""
LOOKUP_INDEXES = (("event", "id"), ("usage_event", "id"), ("credit_grant", "id"), ("invoice", "number"),
                  ("quarantine", "event_id"), ("journal_entry", "id"))
"""Lookups by id alone (duplicates across customers, ``ledger invoices show N``) keep an index
once the keys lead with customer_id."""


class DistributeError(Exception):
    """The database cannot be distributed as it is (no Citus, rows without a customer, ...);
    nothing was changed."""


class DistributeFailed(Exception):
    """Citus refused a step of the distribution (the message names the statement and the
    server's reason); the transaction was rolled back, nothing changed."""


@dataclass
class Distribution:
    """What `distribute` did: ``tables`` name -> "distributed" | "reference" | "local";
    ``workers``: (host, port) of the workers the shards went to; ``shards``: shard count."""

    tables: dict[str, str] = field(default_factory=dict)
    workers: list[tuple[str, int]] = field(default_factory=list)
    shards: int = 0
    already: bool = False


def _column(table: str) -> str:
    return "id" if table == "customer" else "customer_id"


# ---------------------------------------------------------------------------------- guard functions
# As migrations/sql/0001_guards.postgresql.sql and revision 0018, but every query names the
# customer: on a shard a trigger's query is routed by its distribution column to the co-located
# shard.
_GUARDS = (
    # once per entry at COMMIT (revision 0018): lines present, balanced, as many as it declares
    """CREATE OR REPLACE FUNCTION ledger_check_entry_complete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint := 0;
BEGIN
    FOR r IN SELECT commodity, count(*) AS lines, sum(debit) AS debits, sum(credit) AS credits
               FROM journal_line WHERE customer_id = NEW.customer_id AND entry_id = NEW.id
              GROUP BY commodity ORDER BY commodity LOOP
        IF r.debits <> r.credits THEN
            RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
                NEW.id, r.commodity, r.debits, r.credits USING ERRCODE = 'check_violation';
        END IF;
        n := n + r.lines;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'journal entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    IF n <> NEW.line_count THEN
        RAISE EXCEPTION 'journal entry % has % lines, not the % it declares', NEW.id, n, NEW.line_count
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$""",
    # TG_ARGV[0] says which table fired: on a shard TG_TABLE_NAME is journal_entry_102008
    """CREATE OR REPLACE FUNCTION ledger_refuse_locked_period_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
    declared integer;
    was_full boolean := false;
BEGIN
    IF TG_ARGV[0] = 'entry' THEN
        d := NEW.entry_date;
    ELSE
        -- NEW.entry_id only here: an expression naming a field the row lacks fails even where
        -- an AND would not reach it (a journal_entry row has no entry_id)
        SELECT entry_date, line_count INTO d, declared
          FROM journal_entry WHERE customer_id = NEW.customer_id AND id = NEW.entry_id;
        -- revision 0019: what the key by entry id checked (the key by (customer, entry id)
        -- checks it too, after this trigger)
        IF NOT FOUND THEN
            RAISE EXCEPTION 'journal line names entry %, which does not exist', NEW.entry_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        -- revision 0018; a BEFORE row trigger sees the lines before this one (earlier rows of
        -- its statement too)
        was_full := (SELECT count(*) FROM journal_line
                  WHERE customer_id = NEW.customer_id AND entry_id = NEW.entry_id) >= declared;
    END IF;
    IF EXISTS (SELECT 1 FROM accounting_period WHERE period = to_char(d, 'YYYY-MM') AND status = 'closed') THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    IF was_full THEN
        RAISE EXCEPTION 'journal entry % already has its % lines: a line added later refused',
            NEW.entry_id, declared USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$""",
)

_JOURNAL_TRIGGERS = (
    "CREATE CONSTRAINT TRIGGER journal_entry_complete AFTER INSERT ON journal_entry "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_complete()",
    "CREATE TRIGGER journal_entry_append_only BEFORE UPDATE OR DELETE ON journal_entry "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change()",
    "CREATE TRIGGER journal_line_append_only BEFORE UPDATE OR DELETE ON journal_line "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change()",
    "CREATE TRIGGER journal_entry_no_truncate BEFORE TRUNCATE ON journal_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change()",
    "CREATE TRIGGER journal_line_no_truncate BEFORE TRUNCATE ON journal_line "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change()",
    "CREATE TRIGGER journal_entry_open_period BEFORE INSERT ON journal_entry "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period_row('entry')",
    "CREATE TRIGGER journal_line_open_period BEFORE INSERT ON journal_line "
    "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period_row('line')",
)

# rows a distributed table cannot hold, or that the co-located joins would lose
_PRECONDITIONS = (
    ("journal entries without a customer", "SELECT count(*) FROM journal_entry WHERE customer_id IS NULL"),
    ("journal lines without a customer", "SELECT count(*) FROM journal_line WHERE customer_id IS NULL"),
    ("events without a customer", "SELECT count(*) FROM event WHERE customer_id IS NULL"),
    ("journal lines whose customer is not their entry's",
     "SELECT count(*) FROM journal_line l JOIN journal_entry e ON e.id = l.entry_id WHERE l.customer_id <> e.customer_id"),
    ("invoice lines whose customer is not their invoice's",
     "SELECT count(*) FROM invoice_line l JOIN invoice i ON i.number = l.invoice_number "
     "WHERE l.customer_id IS DISTINCT FROM i.customer_id"),
)

_CONSTRAINTS = """
SELECT c.conname, c.contype, t.relname, r.relname AS referenced,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS columns,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS refcolumns
  FROM pg_constraint c
  JOIN pg_class t ON t.oid = c.conrelid
  LEFT JOIN pg_class r ON r.oid = c.confrelid
 WHERE c.contype IN ('p', 'u', 'f') AND t.relnamespace = current_schema()::regnamespace
   AND t.relname = ANY(:tables)
 ORDER BY c.contype DESC, t.relname, c.conname"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check(c: sa.Connection) -> Distribution | None:
    """Refuse what cannot be distributed; a Distribution with ``already`` if it was done before."""
    if not c.execute(sa.text("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'citus')")).scalar():
        raise DistributeError("Citus is not installed on this PostgreSQL server (no extension 'citus'): "
                              "install it from Citus's packages, or try `make citus-up` for a local cluster")
    if not c.execute(sa.text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")).scalar():
        raise DistributeError("the database has no Citus extension: run CREATE EXTENSION citus, as a superuser, "
                              "and add the workers (citus_add_node) first")
    if c.execute(sa.text("SELECT EXISTS (SELECT FROM pg_dist_partition "
                         "WHERE logicalrelid = 'journal_entry'::regclass)")).scalar():
        return Distribution(already=True)
    for what, sql in _PRECONDITIONS:
        n = c.execute(sa.text(sql)).scalar_one()
        if n:
            raise DistributeError(f"{n} {what}: every row of the books must name its customer "
                                  "(run `ledger verify`)")
    return None


# revision 0019: on one PostgreSQL a line's account is checked by the lines' statement trigger
# and the chart guarded by a trigger on account that reads journal_line; on Citus the statement
# trigger is a row trigger on the shards and the chart a reference table, so the key to it comes
# back (a distributed table may refer to a reference table) and the chart's triggers go
_CHART_KEYS = ({"conname": "fk_journal_line_account_code_account", "relname": "journal_line", "referenced": "account",
                "columns": ["account_code"], "refcolumns": ["code"]},)
_CHART_TRIGGERS = ("DROP TRIGGER IF EXISTS account_in_use ON account",
                   "DROP TRIGGER IF EXISTS account_in_use_truncate ON account")


def _reshape_keys(c: sa.Connection) -> list[str]:
    """Drop every foreign key of the distributed tables; make the distribution columns NOT NULL
    and every key lead with them. Returns the foreign keys to add once the tables are distributed
    (between co-located tables carrying customer_id; none to the coordinator's tables)."""
    rows = c.execute(sa.text(_CONSTRAINTS), {"tables": list(DISTRIBUTED)}).mappings().all()
    foreign = [r for r in rows if r["contype"] == "f"]
    for r in foreign:
        c.execute(sa.text(f"ALTER TABLE {_q(r['relname'])} DROP CONSTRAINT {_q(r['conname'])}"))
    for table in DISTRIBUTED:
        c.execute(sa.text(f"ALTER TABLE {_q(table)} ALTER COLUMN {_column(table)} SET NOT NULL"))
    for r in rows:
        table, cols = r["relname"], list(r["columns"])
        if r["contype"] == "f" or _column(table) in cols:
            continue
        kind = "PRIMARY KEY" if r["contype"] == "p" else "UNIQUE"
        keys = ", ".join(_q(x) for x in ["customer_id", *cols])
        c.execute(sa.text(f"ALTER TABLE {_q(table)} DROP CONSTRAINT {_q(r['conname'])}, "
                          f"ADD CONSTRAINT {_q(r['conname'])} {kind} ({keys})"))
    for table, col in LOOKUP_INDEXES:
        c.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {_q(f'ix_{table}_{col}_lookup')} ON {_q(table)} ({_q(col)})"))
    later, seen = [], set()
    for r in [*foreign, *_CHART_KEYS]:
        table, ref, cols, refcols = r["relname"], r["referenced"], list(r["columns"]), list(r["refcolumns"])
        if ref in LOCAL:
            continue
        if ref in DISTRIBUTED and ref != "customer" and "customer_id" not in cols:
            cols, refcols = ["customer_id", *cols], ["customer_id", *refcols]
        if (table, *cols, ref, *refcols) in seen:  # a key by entry id that one by (customer, entry id) already gives
            continue
        seen.add((table, *cols, ref, *refcols))
        later.append(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(r['conname'])} FOREIGN KEY "
                     f"({', '.join(map(_q, cols))}) REFERENCES {_q(ref)} ({', '.join(map(_q, refcols))})")
    return later


# the close's ledger_sealed_bytes (revision 0010) reads an entry's lines by entry id, as stored;
# on Citus by (customer, entry id) and grouped by both, which is the same on a cluster (a line on
# another customer's shard cannot be joined at all)
_CO_LOCATED = (("SELECT l0.entry_id, l0.id,", "SELECT l0.customer_id, l0.entry_id, l0.id,"),
               ("ON l.entry_id = e.id", "ON l.customer_id = e.customer_id AND l.entry_id = e.id"),
               ("GROUP BY e.id", "GROUP BY e.customer_id, e.id"))


def _sealed_bytes(c: sa.Connection) -> str:
    """The close's ledger_sealed_bytes, co-located by customer and as PL/pgSQL: Citus does not
    plan a SQL function's parameterized query over distributed tables (it sealed 0 entries)."""
    query = c.execute(sa.text("SELECT prosrc FROM pg_proc WHERE oid = 'ledger_sealed_bytes(date, date)'::regprocedure"
                              )).scalar_one().strip().rstrip(";")
    for old, new in _CO_LOCATED:
        if query.count(old) != 1:
            raise DistributeError(f"ledger_sealed_bytes is not revision 0010's (no single {old!r}): "
                                  "cannot make it co-located")
        query = query.replace(old, new)
    return ("CREATE OR REPLACE FUNCTION ledger_sealed_bytes(d0 date, d1 date) RETURNS TABLE (id integer, body text) "
            "LANGUAGE plpgsql STABLE AS $citus$\n#variable_conflict use_column\nBEGIN\nRETURN QUERY " + query
            + ";\nEND $citus$")


def _journal_triggers(c: sa.Connection) -> list[str]:
    """DROP TRIGGER statements for the journal's guards on the distributed tables (re-created on
    the shards afterwards); raises DistributeError, before any change, for a trigger it would not
    re-create (someone's own trigger would otherwise be lost)."""
    rows = c.execute(sa.text(
        "SELECT t.tgname, r.relname FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid "
        "WHERE NOT t.tgisinternal AND r.relname = ANY(:tables) AND r.relnamespace = current_schema()::regnamespace "
        "ORDER BY 2, 1"), {"tables": list(DISTRIBUTED)}).all()
    ours = {statement.split("TRIGGER ", 1)[1].split()[0] for statement in _JOURNAL_TRIGGERS}
    unknown = [f"{name} on {table}" for name, table in rows if name not in ours]
    if unknown:
        raise DistributeError(f"trigger(s) {', '.join(unknown)} would not be re-created on the shards: "
                              "drop them, distribute, then create them again with citus.enable_unsafe_triggers")
    return [f"DROP TRIGGER {_q(name)} ON {_q(table)}" for name, table in rows]


def distribute(engine: Engine, *, shard_count: int = 32) -> Distribution:
    """Distribute the books of the database at ``engine`` (a Citus coordinator at schema head,
    workers added) by customer, in one transaction: keys reshaped, reference tables, distributed
    tables in one co-location group, guards re-created on the shards. Idempotent (a distributed
    database is reported as it is).

    shard_count: int, shards per distributed table (Citus's default is 32).
    raises DistributeError (nothing changed), DistributeFailed (a step refused: rolled back).
    """
    try:
        return _distribute(engine, shard_count)
    except sa.exc.DBAPIError as exc:
        reason = str(getattr(exc.orig, "diag", None) and exc.orig.diag.message_primary or exc.orig).strip()
        params = exc.params if isinstance(exc.params, dict) else {}
        step = f"table {params['t']}" if "t" in params else repr(exc.statement.split("(")[0].strip()[:80])
        raise DistributeFailed(f"Citus refused {step}: {reason}; rolled back, nothing changed") from None
    finally:
        forget_citus(engine)


def _distribute(engine: Engine, shard_count: int) -> Distribution:
    with engine.begin() as c:
        c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('ledger db distribute'))"))
        done = _check(c)
        if done is None:
            c.execute(sa.text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
            c.execute(sa.text("SET LOCAL citus.enable_unsafe_triggers = on"))
            c.execute(sa.text(f"SET LOCAL citus.shard_count = {int(shard_count)}"))
            for drop in (*_journal_triggers(c), *_CHART_TRIGGERS):
                c.execute(sa.text(drop))
            foreign_keys = _reshape_keys(c)
            for statement in (*_GUARDS, _sealed_bytes(c)):
                c.execute(sa.text(statement))
            for table in REFERENCE:
                c.execute(sa.text("SELECT create_reference_table(:t)"), {"t": table})
            for table in DISTRIBUTED:
                c.execute(sa.text("SELECT create_distributed_table(:t, :col, colocate_with => :with)"),
                          {"t": table, "col": _column(table), "with": "none" if table == "customer" else "customer"})
            for statement in (*foreign_keys, *_JOURNAL_TRIGGERS):
                c.execute(sa.text(statement))
        result = done or Distribution(shards=int(shard_count))
        result.tables = _placement(c)
        result.workers = [(h, int(p)) for h, p in c.execute(sa.text(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND groupid <> 0 "
            "ORDER BY nodename, nodeport")).all()]
    return result


def _placement(c: sa.Connection) -> dict[str, str]:
    """table -> distributed | reference | local, for the tables of the books."""
    kinds = dict(c.execute(sa.text(
        "SELECT logicalrelid::regclass::text, CASE partmethod WHEN 'h' THEN 'distributed' "
        "WHEN 'n' THEN 'reference' ELSE partmethod::text END FROM pg_dist_partition")).all())
    return {t: kinds.get(t, "local") for t in (*DISTRIBUTED, *REFERENCE, *LOCAL)}
