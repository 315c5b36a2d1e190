-- Database guards for the journal on PostgreSQL (docs/design.md §9.1), in the style of
-- django-hordak: the database itself refuses what the application must never do.
-- Statements are separated by lines reading exactly "-- split".

-- 1. Every journal entry balances per commodity: checked at COMMIT by a deferred constraint
--    trigger, so an entry's lines can be inserted one by one inside a transaction.
CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT commodity, sum(debit) AS debits, sum(credit) AS credits INTO bad
      FROM journal_line WHERE entry_id = NEW.entry_id
     GROUP BY commodity HAVING sum(debit) <> sum(credit) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
            NEW.entry_id, bad.commodity, bad.debits, bad.credits
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
-- split
CREATE CONSTRAINT TRIGGER journal_line_entry_balanced
    AFTER INSERT ON journal_line DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
-- split
-- An entry with no lines at all is refused at COMMIT too.
CREATE FUNCTION ledger_check_entry_has_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM journal_line WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
-- split
CREATE CONSTRAINT TRIGGER journal_entry_has_lines
    AFTER INSERT ON journal_entry DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_lines();
-- split
-- 2. Append-only: no UPDATE, DELETE or TRUNCATE on journal tables.
CREATE FUNCTION ledger_refuse_journal_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal is append-only: % on % refused (post a reversing entry instead)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
-- split
CREATE TRIGGER journal_entry_append_only BEFORE UPDATE OR DELETE ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change();
-- split
CREATE TRIGGER journal_line_append_only BEFORE UPDATE OR DELETE ON journal_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_journal_change();
-- split
CREATE TRIGGER journal_entry_no_truncate BEFORE TRUNCATE ON journal_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change();
-- split
CREATE TRIGGER journal_line_no_truncate BEFORE TRUNCATE ON journal_line
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_journal_change();
-- split
-- 3. No posting dated in a locked (closed) period, for entries and for lines.
CREATE FUNCTION ledger_refuse_locked_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d date;
BEGIN
    IF TG_TABLE_NAME = 'journal_entry' THEN
        d := NEW.entry_date;
    ELSE
        SELECT entry_date INTO d FROM journal_entry WHERE id = NEW.entry_id;
    END IF;
    IF EXISTS (SELECT 1 FROM accounting_period
                WHERE period = to_char(d, 'YYYY-MM') AND status = 'closed') THEN
        RAISE EXCEPTION 'period % is closed: posting dated % refused', to_char(d, 'YYYY-MM'), d
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
-- split
CREATE TRIGGER journal_entry_open_period BEFORE INSERT ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period();
-- split
CREATE TRIGGER journal_line_open_period BEFORE INSERT ON journal_line
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_locked_period();
