-- Distributing the ledger by customer on Citus: the DDL, in order (see docs/scaling.md).
--
-- Part A is plain PostgreSQL: it makes every key of the per-customer tables include customer_id,
-- as Citus requires of distributed tables, and rewrites the guard functions so that each one reads
-- only the customer's own shard. Part B is Citus only: extension, reference tables, distributed
-- tables co-located with customer, guards re-created on the shards.
--
--   psql -v ON_ERROR_STOP=1 -d DB -f docs/citus_ddl.sql                          Part A only
--   psql -v ON_ERROR_STOP=1 -v with_citus=1 -d DB -f docs/citus_ddl.sql          Parts A and B
--   psql -v ON_ERROR_STOP=1 -v with_citus=1 -v citus_only=1 -d DB -f ...         Part B only
--
-- DB: a database at Alembic head 0004 (`ledger init`). Part A runs in one transaction and was run
-- on PostgreSQL 15 (empty and populated databases); Part B has never run (no Citus here).

\if :{?citus_only}
\else
BEGIN;

-- A0. Preconditions: every row of the journal and of event names its customer, and a line belongs
--     to its entry's customer (true of every entry the engine writes today).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM journal_entry WHERE customer_id IS NULL)
       OR EXISTS (SELECT 1 FROM journal_line WHERE customer_id IS NULL)
       OR EXISTS (SELECT 1 FROM event WHERE customer_id IS NULL) THEN
        RAISE EXCEPTION 'rows without customer_id: post company-level rows under the pseudo customer __company__ first';
    END IF;
    IF EXISTS (SELECT 1 FROM journal_line l JOIN journal_entry e ON e.id = l.entry_id
                WHERE l.customer_id <> e.customer_id) THEN
        RAISE EXCEPTION 'journal lines whose customer differs from their entry''s';
    END IF;
END $$;

-- A1. Drop the foreign keys that change shape, and those to import_batch, which stays a plain
--     table on the coordinator (a distributed table cannot reference it).
ALTER TABLE journal_line        DROP CONSTRAINT fk_journal_line_entry_id_journal_entry;
ALTER TABLE usage_event         DROP CONSTRAINT fk_usage_event_entry_id_journal_entry;
ALTER TABLE invoice             DROP CONSTRAINT fk_invoice_entry_id_journal_entry;
ALTER TABLE invoice_line        DROP CONSTRAINT fk_invoice_line_invoice_number_invoice;
ALTER TABLE usage_draw          DROP CONSTRAINT fk_usage_draw_usage_event_id_usage_event;
ALTER TABLE usage_draw          DROP CONSTRAINT fk_usage_draw_grant_id_credit_grant;
ALTER TABLE subscription_period DROP CONSTRAINT fk_subscription_period_subscription_id_subscription;
ALTER TABLE guarantee_month     DROP CONSTRAINT fk_guarantee_month_guarantee_id_guarantee;
ALTER TABLE event               DROP CONSTRAINT fk_event_import_id_import_batch;
ALTER TABLE journal_entry       DROP CONSTRAINT fk_journal_entry_import_id_import_batch;
ALTER TABLE usage_event         DROP CONSTRAINT fk_usage_event_import_id_import_batch;
ALTER TABLE quarantine          DROP CONSTRAINT fk_quarantine_import_id_import_batch;

-- A2. The distribution column may not be NULL (Citus refuses such rows).
ALTER TABLE event         ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE journal_entry ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE journal_line  ALTER COLUMN customer_id SET NOT NULL;

-- A3. invoice_line has no customer_id: add it, fill it from its invoice.
ALTER TABLE invoice_line ADD COLUMN customer_id varchar(64);
UPDATE invoice_line l SET customer_id = i.customer_id FROM invoice i WHERE i.number = l.invoice_number;
ALTER TABLE invoice_line ALTER COLUMN customer_id SET NOT NULL;

-- A4. 64-bit journal ids (int4 ends at 2,147,483,647 lines), and the columns that hold them.
ALTER TABLE journal_entry ALTER COLUMN id TYPE bigint;
ALTER SEQUENCE journal_entry_id_seq AS bigint;
ALTER TABLE journal_line  ALTER COLUMN id TYPE bigint, ALTER COLUMN entry_id TYPE bigint;
ALTER SEQUENCE journal_line_id_seq AS bigint;
ALTER TABLE usage_event   ALTER COLUMN entry_id TYPE bigint;
ALTER TABLE invoice       ALTER COLUMN entry_id TYPE bigint;
ALTER TABLE entry_seal    ALTER COLUMN entry_id TYPE bigint;
ALTER TABLE period_close  ALTER COLUMN journal_head TYPE bigint;

-- A5. Primary keys and unique constraints include the distribution column.
ALTER TABLE credit_grant        DROP CONSTRAINT pk_credit_grant,        ADD CONSTRAINT pk_credit_grant        PRIMARY KEY (customer_id, id);
ALTER TABLE event               DROP CONSTRAINT pk_event,               ADD CONSTRAINT pk_event               PRIMARY KEY (customer_id, id);
ALTER TABLE journal_entry       DROP CONSTRAINT pk_journal_entry,       ADD CONSTRAINT pk_journal_entry       PRIMARY KEY (customer_id, id);
ALTER TABLE journal_line        DROP CONSTRAINT pk_journal_line,        ADD CONSTRAINT pk_journal_line        PRIMARY KEY (customer_id, id);
ALTER TABLE usage_event         DROP CONSTRAINT pk_usage_event,         ADD CONSTRAINT pk_usage_event         PRIMARY KEY (customer_id, id);
ALTER TABLE usage_draw          DROP CONSTRAINT pk_usage_draw,          ADD CONSTRAINT pk_usage_draw          PRIMARY KEY (customer_id, usage_event_id, grant_id);
ALTER TABLE quarantine          DROP CONSTRAINT pk_quarantine,          ADD CONSTRAINT pk_quarantine          PRIMARY KEY (customer_id, event_id);
ALTER TABLE invoice             DROP CONSTRAINT pk_invoice,             ADD CONSTRAINT pk_invoice             PRIMARY KEY (customer_id, number);
ALTER TABLE invoice             DROP CONSTRAINT uq_invoice_series_year_sequence,
                                ADD CONSTRAINT uq_invoice_customer_id_series_year_sequence UNIQUE (customer_id, series, year, sequence);
ALTER TABLE invoice_line        DROP CONSTRAINT pk_invoice_line,        ADD CONSTRAINT pk_invoice_line        PRIMARY KEY (customer_id, invoice_number, position);
ALTER TABLE subscription        DROP CONSTRAINT pk_subscription,        ADD CONSTRAINT pk_subscription        PRIMARY KEY (customer_id, id);
ALTER TABLE subscription_period DROP CONSTRAINT pk_subscription_period, ADD CONSTRAINT pk_subscription_period PRIMARY KEY (customer_id, subscription_id, period);
ALTER TABLE guarantee           DROP CONSTRAINT pk_guarantee,           ADD CONSTRAINT pk_guarantee           PRIMARY KEY (customer_id, id);
ALTER TABLE guarantee_month     DROP CONSTRAINT pk_guarantee_month,     ADD CONSTRAINT pk_guarantee_month     PRIMARY KEY (customer_id, guarantee_id, period);
-- customer keeps PRIMARY KEY (id): id is its distribution column. The foreign keys to
-- customer(id) from credit_grant, invoice, subscription and guarantee stay as they are.

-- A6. Foreign keys between co-located tables carry customer_id (names follow models.py's
--     naming convention: fk_<table>_<first column>_<referred table>).
ALTER TABLE journal_line        ADD CONSTRAINT fk_journal_line_customer_id_journal_entry
    FOREIGN KEY (customer_id, entry_id) REFERENCES journal_entry (customer_id, id);
ALTER TABLE usage_event         ADD CONSTRAINT fk_usage_event_customer_id_journal_entry
    FOREIGN KEY (customer_id, entry_id) REFERENCES journal_entry (customer_id, id);
ALTER TABLE invoice             ADD CONSTRAINT fk_invoice_customer_id_journal_entry
    FOREIGN KEY (customer_id, entry_id) REFERENCES journal_entry (customer_id, id);
ALTER TABLE invoice_line        ADD CONSTRAINT fk_invoice_line_customer_id_invoice
    FOREIGN KEY (customer_id, invoice_number) REFERENCES invoice (customer_id, number);
ALTER TABLE usage_draw          ADD CONSTRAINT fk_usage_draw_customer_id_usage_event
    FOREIGN KEY (customer_id, usage_event_id) REFERENCES usage_event (customer_id, id);
ALTER TABLE usage_draw          ADD CONSTRAINT fk_usage_draw_customer_id_credit_grant
    FOREIGN KEY (customer_id, grant_id) REFERENCES credit_grant (customer_id, id);
ALTER TABLE subscription_period ADD CONSTRAINT fk_subscription_period_customer_id_subscription
    FOREIGN KEY (customer_id, subscription_id) REFERENCES subscription (customer_id, id);
ALTER TABLE guarantee_month     ADD CONSTRAINT fk_guarantee_month_customer_id_guarantee
    FOREIGN KEY (customer_id, guarantee_id) REFERENCES guarantee (customer_id, id);

-- A7. Indexes for lookups that do not know the customer (duplicate detection and void targets
--     by event id, `ledger invoices show N`), now that the primary keys lead with customer_id,
--     and for the co-located joins line -> entry and usage -> entry.
CREATE INDEX ix_event_id                    ON event (id);
CREATE INDEX ix_usage_event_id              ON usage_event (id);
CREATE INDEX ix_credit_grant_id             ON credit_grant (id);
CREATE INDEX ix_invoice_number              ON invoice (number);
CREATE INDEX ix_journal_line_customer_entry ON journal_line (customer_id, entry_id);
CREATE INDEX ix_usage_event_customer_entry  ON usage_event (customer_id, entry_id);

-- A8. The guards read only the customer's own rows: on Citus each such read is a single-shard
--     query to the co-located shard on the same node, the only kind a trigger on a shard may run.
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT commodity, sum(debit) AS debits, sum(credit) AS credits INTO bad
      FROM journal_line WHERE customer_id = NEW.customer_id AND entry_id = NEW.entry_id
     GROUP BY commodity HAVING sum(debit) <> sum(credit) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
            NEW.entry_id, bad.commodity, bad.debits, bad.credits
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_check_entry_has_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM journal_line WHERE customer_id = NEW.customer_id AND entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_refuse_locked_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    IF TG_TABLE_NAME = 'journal_entry' THEN
        d := NEW.entry_date;
    ELSE
        SELECT entry_date INTO d FROM journal_entry WHERE customer_id = NEW.customer_id AND id = NEW.entry_id;
    END IF;
    IF EXISTS (SELECT 1 FROM accounting_period
                WHERE period = to_char(d, 'YYYY-MM') AND status = 'closed') THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

COMMIT;
\endif

\if :{?with_citus}
-- Part B: Citus (12.x assumed). Run on the coordinator after citus_add_node() for every worker.
-- NOT RUN HERE: Citus is not installed on this machine and no reachable registry packages it.

CREATE EXTENSION IF NOT EXISTS citus;

-- B1. Triggers on distributed tables need citus.enable_unsafe_triggers, at DDL time on the
--     coordinator and on the workers where the shard triggers fire.
SET citus.enable_unsafe_triggers = on;
ALTER SYSTEM SET citus.enable_unsafe_triggers = on;
SELECT pg_reload_conf();
SELECT run_command_on_workers('ALTER SYSTEM SET citus.enable_unsafe_triggers = on');
SELECT run_command_on_workers('SELECT pg_reload_conf()');
SET citus.shard_count = 64;

-- B2. Drop the journal guards while the tables are distributed; B6 re-creates them, which
--     propagates them to every shard.
DROP TRIGGER journal_entry_has_lines     ON journal_entry;
DROP TRIGGER journal_entry_append_only   ON journal_entry;
DROP TRIGGER journal_entry_no_truncate   ON journal_entry;
DROP TRIGGER journal_entry_open_period   ON journal_entry;
DROP TRIGGER journal_line_entry_balanced ON journal_line;
DROP TRIGGER journal_line_append_only    ON journal_line;
DROP TRIGGER journal_line_no_truncate    ON journal_line;
DROP TRIGGER journal_line_open_period    ON journal_line;

-- B3. Reference tables: small, read by every shard (the chart; the period lock's table).
SELECT create_reference_table('account');
SELECT create_reference_table('accounting_period');

-- B4. Distributed by customer, all in customer's co-location group, referenced tables first.
SELECT create_distributed_table('customer',            'id');
SELECT create_distributed_table('credit_grant',        'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('subscription',        'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('guarantee',           'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('event',               'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('journal_entry',       'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('journal_line',        'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('invoice',             'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('invoice_line',        'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('usage_event',         'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('usage_draw',          'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('quarantine',          'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('subscription_period', 'customer_id', colocate_with => 'customer');
SELECT create_distributed_table('guarantee_month',     'customer_id', colocate_with => 'customer');

-- B5. Stay plain tables on the coordinator: import_batch, period_close, entry_seal,
--     alembic_version, document_sequence (docs/scaling.md, "Gap-free numbers", for the choice).

-- B6. The guards again (same definitions as migrations/sql/0001_guards.postgresql.sql, with the
--     functions of A8). Citus creates row triggers on every shard; TRUNCATE triggers stay on the
--     coordinator's table only.
CREATE CONSTRAINT TRIGGER journal_line_entry_balanced
    AFTER INSERT ON journal_line DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
CREATE CONSTRAINT TRIGGER journal_entry_has_lines
    AFTER INSERT ON journal_entry DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_lines();
CREATE TRIGGER journal_entry_append_only BEFORE UPDATE OR DELETE ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change();
CREATE TRIGGER journal_line_append_only BEFORE UPDATE OR DELETE ON journal_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change();
CREATE TRIGGER journal_entry_no_truncate BEFORE TRUNCATE ON journal_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change();
CREATE TRIGGER journal_line_no_truncate BEFORE TRUNCATE ON journal_line
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change();
-- The period lock as a row trigger, as migration 0001 made it. On a single PostgreSQL,
-- migration 0009 made it a statement trigger with a transition table (one query per statement)
-- and kept this function for its downgrade; Citus does not create statement triggers on shards,
-- so here it stays per row (not verified on a cluster).
CREATE TRIGGER journal_entry_open_period BEFORE INSERT ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period();
CREATE TRIGGER journal_line_open_period BEFORE INSERT ON journal_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period();

-- B7. Check: every distributed table in one co-location group, two reference tables.
SELECT logicalrelid, partmethod, colocationid FROM pg_dist_partition ORDER BY colocationid, logicalrelid;
\endif
