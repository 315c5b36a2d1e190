-- Database guards for the journal on SQLite. SQLite has no deferred constraint triggers, so
-- per-entry balance is enforced by the single posting path in Python (ledger/posting.py);
-- append-only and the period lock are enforced here as well as in the application.
-- Statements are separated by lines reading exactly "-- split".
CREATE TRIGGER journal_entry_no_update BEFORE UPDATE ON journal_entry
BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE on journal_entry refused'); END;
-- split
CREATE TRIGGER journal_entry_no_delete BEFORE DELETE ON journal_entry
BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE on journal_entry refused'); END;
-- split
CREATE TRIGGER journal_line_no_update BEFORE UPDATE ON journal_line
BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE on journal_line refused'); END;
-- split
CREATE TRIGGER journal_line_no_delete BEFORE DELETE ON journal_line
BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE on journal_line refused'); END;
-- split
CREATE TRIGGER journal_entry_open_period BEFORE INSERT ON journal_entry
WHEN EXISTS (SELECT 1 FROM accounting_period
              WHERE period = strftime('%Y-%m', NEW.entry_date) AND status = 'closed')
BEGIN SELECT RAISE(ABORT, 'period is closed: posting refused'); END;
-- split
CREATE TRIGGER journal_line_open_period BEFORE INSERT ON journal_line
WHEN EXISTS (SELECT 1 FROM accounting_period p JOIN journal_entry e ON e.id = NEW.entry_id
              WHERE p.period = strftime('%Y-%m', e.entry_date) AND p.status = 'closed')
BEGIN SELECT RAISE(ABORT, 'period is closed: posting refused'); END;
