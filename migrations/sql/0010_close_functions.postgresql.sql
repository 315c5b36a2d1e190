-- The close and the reopen as the only writers of what `ledger verify` trusts, on PostgreSQL
-- (docs/design.md §6.4-6.6, §9.2, §9.5; migration 0010). Run by the migration with @schema@
-- replaced by the ledger's schema (quoted) and @gate@ by the posting gate's advisory lock key
-- (ledger.store.events.GATE_KEY). Statements are separated by lines reading exactly "-- split".
--
-- 1. The seal's chain in the server: h_i = sha256(h_(i-1) + "\n" + canonical bytes of entry i),
--    as ledger.store.seals computes it; the aggregate, used as a window over the entries in id
--    order, yields every link. The canonical bytes are those of ledger.store.seals.chain_copy_sql.
CREATE FUNCTION ledger_chain_link(h text, h0 text, body bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN encode(sha256(convert_to(coalesce(h, h0), 'UTF8') || '\x0a'::bytea || body), 'hex');
END $$;
-- split
CREATE AGGREGATE ledger_chain(text, bytea) (SFUNC = ledger_chain_link, STYPE = text);
-- split
CREATE FUNCTION ledger_sealed_bytes(d0 date, d1 date) RETURNS TABLE (id integer, body text)
LANGUAGE sql STABLE AS $$
  SELECT e.id, ('{"customer_id":' || coalesce(to_json(e.customer_id)::text, 'null') || ',"description":' || coalesce(to_json(e.description)::text, 'null') || ',"entry_date":' || ('"' || to_char(e.entry_date, 'YYYY-MM-DD') || '"') || ',"event_id":' || coalesce(to_json(e.event_id)::text, 'null') || ',"id":' || coalesce(to_json(e.id)::text, 'null') || ',"import_id":' || coalesce(to_json(e.import_id)::text, 'null') || ',"kind":' || coalesce(to_json(e.kind)::text, 'null') || ',"lines":' || ('[' || coalesce(string_agg(l.body, ',' ORDER BY l.id), '') || ']') || ',"occurred_at":' || ('"' || to_char((e.occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN date_trunc('second', (e.occurred_at AT TIME ZONE 'UTC')) = (e.occurred_at AT TIME ZONE 'UTC') THEN '' ELSE to_char((e.occurred_at AT TIME ZONE 'UTC'), '.US') END || '+00:00"') || '}')
  FROM journal_entry e
  LEFT JOIN (SELECT l0.entry_id, l0.id, ('{"account_code":' || coalesce(to_json(l0.account_code)::text, 'null') || ',"commodity":' || coalesce(to_json(l0.commodity)::text, 'null') || ',"credit":' || coalesce(to_json(l0.credit)::text, 'null') || ',"customer_id":' || coalesce(to_json(l0.customer_id)::text, 'null') || ',"debit":' || coalesce(to_json(l0.debit)::text, 'null') || ',"event_id":' || coalesce(to_json(l0.event_id)::text, 'null') || ',"grant_id":' || coalesce(to_json(l0.grant_id)::text, 'null') || ',"id":' || coalesce(to_json(l0.id)::text, 'null') || ',"invoice_number":' || coalesce(to_json(l0.invoice_number)::text, 'null') || '}') AS body FROM journal_line l0) l ON l.entry_id = e.id
  WHERE e.entry_date >= d0 AND e.entry_date <= d1
  GROUP BY e.id
$$;
-- split
-- 2. One close record per close: a close only after the period's last record is a reopen (or
--    it has none), a reopen only of a period whose last record is a close.
CREATE FUNCTION ledger_check_close_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_action text;
BEGIN
    SELECT action INTO last_action FROM period_close WHERE period = NEW.period ORDER BY id DESC LIMIT 1;
    IF NEW.action = 'close' AND last_action = 'close' THEN
        RAISE EXCEPTION 'period % is already closed: one close record per close (reopen it first)', NEW.period
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.action = 'reopen' AND last_action IS DISTINCT FROM 'close' THEN
        RAISE EXCEPTION 'period % is not closed: nothing to reopen', NEW.period
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
-- split
CREATE TRIGGER period_close_sequence BEFORE INSERT ON period_close
    FOR EACH ROW EXECUTE FUNCTION ledger_check_close_sequence();
-- split
-- 3. The close: the posting gate (exclusive) and the journal lock, the period's order, then
--    the seal computed here (every link into entry_seal, the close record into period_close)
--    and the period locked. Refusals raise SQLSTATE LX002. Returns the close record's id.
CREATE FUNCTION ledger_close_period(p_period text, p_at timestamptz, p_by text, p_checks text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @schema@, pg_temp
SET jit = off SET work_mem = '128MB' AS $$
DECLARE
    v_last text;
    v_expected text;
    v_previous text;
    v_start text;
    v_head integer;
    v_id integer;
    d0 date;
BEGIN
    IF p_period IS NULL OR p_period !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN
        RAISE EXCEPTION 'cannot close %: not a period (YYYY-MM)', p_period USING ERRCODE = 'LX002';
    END IF;
    IF p_at IS NULL OR coalesce(p_by, '') = '' THEN
        RAISE EXCEPTION 'cannot close %: a close records when and by whom', p_period USING ERRCODE = 'LX002';
    END IF;
    PERFORM pg_advisory_xact_lock(@gate@);
    LOCK TABLE journal_entry IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM accounting_period WHERE period = p_period AND status = 'closed') THEN
        RAISE EXCEPTION 'cannot close %: it is already closed', p_period USING ERRCODE = 'LX002';
    END IF;
    SELECT max(period) INTO v_last FROM accounting_period WHERE status = 'closed';
    IF v_last IS NOT NULL THEN
        v_expected := to_char(to_date(v_last || '-01', 'YYYY-MM-DD') + interval '1 month', 'YYYY-MM');
    ELSE
        SELECT to_char(min(entry_date), 'YYYY-MM') INTO v_expected FROM journal_entry;
    END IF;
    IF v_expected IS NOT NULL AND p_period > v_expected THEN
        RAISE EXCEPTION 'cannot close %: % is still open (periods close in order)', p_period, v_expected
            USING ERRCODE = 'LX002';
    ELSIF v_expected IS NOT NULL AND p_period < v_expected THEN
        RAISE EXCEPTION 'cannot close %: it is before the first open period %', p_period, v_expected
            USING ERRCODE = 'LX002';
    END IF;
    SELECT c.seal INTO v_previous
      FROM (SELECT DISTINCT ON (period) period, action, seal FROM period_close ORDER BY period, id DESC) c
     WHERE c.action = 'close' AND c.period < p_period ORDER BY c.period DESC LIMIT 1;
    v_previous := coalesce(v_previous, repeat('0', 64));
    v_start := encode(sha256(convert_to(v_previous || E'\nperiod ' || p_period, 'UTF8')), 'hex');
    SELECT max(id) INTO v_head FROM journal_entry;
    d0 := to_date(p_period || '-01', 'YYYY-MM-DD');
    WITH links AS (
        SELECT row_number() OVER w AS seq, b.id AS entry_id, ledger_chain(v_start, convert_to(b.body, 'UTF8')) OVER w AS hash
          FROM ledger_sealed_bytes(d0, (d0 + interval '1 month' - interval '1 day')::date) b
        WINDOW w AS (ORDER BY b.id ROWS UNBOUNDED PRECEDING)
    ), rec AS (
        INSERT INTO period_close (period, action, at, by, journal_head, entries, seal, previous_seal, checks)
        SELECT p_period, 'close', p_at, p_by, v_head, (SELECT count(*) FROM links),
               coalesce((SELECT hash FROM links ORDER BY seq DESC LIMIT 1), v_start), v_previous, p_checks
        RETURNING period_close.id
    ), stored AS (
        INSERT INTO entry_seal (close_id, seq, entry_id, hash)
        SELECT rec.id, links.seq, links.entry_id, links.hash FROM rec, links
    )
    SELECT rec.id INTO v_id FROM rec;
    INSERT INTO accounting_period (period, status, closed_at, closed_by) VALUES (p_period, 'closed', p_at, p_by)
        ON CONFLICT (period) DO UPDATE SET status = 'closed', closed_at = EXCLUDED.closed_at, closed_by = EXCLUDED.closed_by;
    RETURN v_id;
END $$;
-- split
-- 4. The reopen of the last closed period, with a reason: the record, then the period unlocked.
CREATE FUNCTION ledger_reopen_period(p_period text, p_at timestamptz, p_by text, p_reason text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, @schema@, pg_temp AS $$
DECLARE
    v_last text;
    v_id integer;
BEGIN
    IF coalesce(btrim(p_reason), '') = '' OR p_at IS NULL OR coalesce(p_by, '') = '' THEN
        RAISE EXCEPTION 'cannot reopen %: a reopen records when, by whom and why', p_period USING ERRCODE = 'LX002';
    END IF;
    PERFORM pg_advisory_xact_lock(@gate@);
    LOCK TABLE journal_entry IN SHARE ROW EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT FROM accounting_period WHERE period = p_period AND status = 'closed') THEN
        RAISE EXCEPTION 'cannot reopen %: it is not closed', p_period USING ERRCODE = 'LX002';
    END IF;
    SELECT max(period) INTO v_last FROM accounting_period WHERE status = 'closed';
    IF p_period <> v_last THEN
        RAISE EXCEPTION 'cannot reopen %: % is closed after it (only the last closed period can be reopened)',
            p_period, v_last USING ERRCODE = 'LX002';
    END IF;
    INSERT INTO period_close (period, action, at, by, reason) VALUES (p_period, 'reopen', p_at, p_by, p_reason)
        RETURNING id INTO v_id;
    UPDATE accounting_period SET status = 'open' WHERE period = p_period;
    RETURN v_id;
END $$;
-- split
REVOKE ALL ON FUNCTION ledger_close_period(text, timestamptz, text, text) FROM PUBLIC;
-- split
REVOKE ALL ON FUNCTION ledger_reopen_period(text, timestamptz, text, text) FROM PUBLIC;
-- split
COMMENT ON FUNCTION ledger_close_period(text, timestamptz, text, text) IS 'The close''s seal, record and period lock (docs/design.md §6.4); `ledger db roles` lets the writer run it';
-- split
COMMENT ON FUNCTION ledger_reopen_period(text, timestamptz, text, text) IS 'The reopen of the last closed period (docs/design.md §6.5), for the owner of the ledger''s tables';
