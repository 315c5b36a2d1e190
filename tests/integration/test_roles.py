"""Least privilege on PostgreSQL (docs/design.md §9.5): `ledger db roles`.

Every test gets a fresh migrated database (conftest ``pg_url``) and two roles with unique names
(roles are cluster-wide), created by the real command with ``--login`` (the test cluster trusts
local connections), and dropped afterwards (DROP OWNED BY + DROP ROLE). The engine and the CLI
then run *as* those roles, with a --database-url whose user is the role:

- the writer imports every event type, closes three months and reads everything back, and the
  database grants it exactly ``ledger.store.roles.WRITER_POLICY``: on the journal INSERT and SELECT
  only, so UPDATE, DELETE and TRUNCATE are refused by privileges before any trigger runs;
- the auditor reads (reports, verify, invoices) and every write fails with exit 1 and a message
  naming the table, the role and the missing privilege.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _SUFFIX, PLANS_CATALOG
from sqlmodel import Session, SQLModel

from ledger.services import closing as close_module
from ledger.catalog import load_catalog
from ledger.store.db import make_engine
from ledger.store.models import Invoice, JournalEntry, SubscriptionPeriod
from ledger.store.roles import (
    JOURNAL_TABLES,
    WRITER_POLICY,
    RolesError,
    effective_privileges,
    lock_journal,
    plan_roles,
)


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def usage(eid: str, when: str, credits: int, customer: str = "acme") -> str:
    return ev(eid, "usage.recorded", when, customer_id=customer, credits=credits)


# Every event type of docs/design.md §8.2, so that the writer touches every table the engine writes:
# a subscription (bills, overage in arrears), a guarantee (credit notes), a top-up and its
# partial refund, a payment, a proportional commitment and its estimate change, promotional
# credits, usage (JSONL and CSV), a void; in February a cancellation (UPDATE subscription) and a
# late usage event dated in the closed January.
JAN = "\n".join([
    ev("c-acme", "customer.created", "2026-01-01T00:00:00Z", customer_id="acme", name="Acme AI", currency="USD",
       tax_rate="0.0825"),
    ev("c-beta", "customer.created", "2026-01-01T00:00:00Z", customer_id="beta", name="Beta Labs", currency="USD"),
    ev("sub-1", "subscription.started", "2026-01-01T00:00:00Z", customer_id="acme", plan="starter",
       start_date="2026-01-01"),
    ev("g-1", "guarantee.enrolled", "2026-01-01T00:00:00Z", customer_id="acme", legacy_monthly_amount="50.00",
       start_month="2026-01", months=2),
    ev("t1", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="acme", topup_id="top-1", pack="pack_1000"),
    ev("r1", "refund.issued", "2026-01-05T00:00:00Z", customer_id="acme", grant_ref="top-1", credits=100),
    ev("pay1", "payment.received", "2026-01-05T00:00:00Z", customer_id="acme", amount="10.00"),
    ev("p1", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id="beta", commitment_id="com-p",
       amount="900.00", credits=1000, term_start="2026-01-01", term_end="2026-03-31",
       breakage={"method": "proportional", "expected_rate": "0.03"}),
    ev("promo", "credits.granted", "2026-01-03T00:00:00Z", customer_id="beta", grant_id="promo-1", credits=10),
    ev("b1", "breakage.estimate_changed", "2026-01-20T00:00:00Z", customer_id="beta", grant_ref="com-p",
       expected_rate="0.05"),
    usage("u1", "2026-01-10T12:00:00Z", 300),
    usage("u2", "2026-01-20T12:00:00Z", 2000),
    usage("ub1", "2026-01-15T12:00:00Z", 100, "beta"),
    usage("ub2", "2026-01-16T12:00:00Z", 50, "beta"),
    ev("v1", "event.voided", "2026-01-21T00:00:00Z", target_event_id="ub2", reason="duplicate metering"),
]) + "\n"
USAGE_CSV = "event_id,customer_id,occurred_at,credits\r\nuc1,beta,2026-01-18T12:00:00Z,40\r\n"
FEB = "\n".join([
    ev("x1", "subscription.cancelled", "2026-02-10T00:00:00Z", customer_id="acme", end_date="2026-02-28"),
    usage("u3", "2026-02-12T12:00:00Z", 700),
    usage("ub3", "2026-02-13T12:00:00Z", 200, "beta"),
    usage("late1", "2026-01-30T12:00:00Z", 20, "beta"),
]) + "\n"

_roles = itertools.count()


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)


@dataclass
class Roles:
    """A fresh database with its writer and auditor (LOGIN, trust auth) and files to import."""

    url: str  # as the superuser that owns the tables
    writer: str
    auditor: str
    tmp: Path

    @property
    def writer_url(self) -> str:
        return _as(self.url, self.writer)

    @property
    def auditor_url(self) -> str:
        return _as(self.url, self.auditor)

    def ledger(self, *args: str, url: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the real console entry point in a subprocess, with the plans catalog."""
        cmd = [sys.executable, "-m", "ledger", "--database-url", url or self.url, "--catalog",
               str(self.tmp / "ledger.toml"), *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=self.tmp, timeout=300, env=env)


def _drop_roles(url: str, *names: str) -> None:
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        for name in names:
            if c.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first():
                c.execute(sa.text(f'DROP OWNED BY "{name}"'))
                c.execute(sa.text(f'DROP ROLE "{name}"'))
    engine.dispose()


@pytest.fixture
def fresh(pg_url, tmp_path):
    """Unique role names on a fresh database (roles not created yet); dropped afterwards."""
    n = next(_roles)
    names = Roles(pg_url, f"ledger_w_{_SUFFIX}_{n}", f"ledger_a_{_SUFFIX}_{n}", tmp_path)
    (tmp_path / "ledger.toml").write_text(PLANS_CATALOG, encoding="utf-8")
    (tmp_path / "jan.jsonl").write_text(JAN, encoding="utf-8")
    (tmp_path / "usage.csv").write_text(USAGE_CSV, encoding="utf-8")
    (tmp_path / "feb.jsonl").write_text(FEB, encoding="utf-8")
    yield names
    _drop_roles(pg_url, names.writer, names.auditor)
    engine = make_engine(pg_url)
    with engine.connect() as c:
        left = c.execute(sa.text("SELECT count(*) FROM pg_roles WHERE rolname IN (:w, :a)"),
                         {"w": names.writer, "a": names.auditor}).scalar_one()
    engine.dispose()
    assert left == 0, "the test's roles were not dropped"


@pytest.fixture
def roles(fresh) -> Roles:
    """``fresh`` with the roles created by `ledger db roles --login`."""
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor, "--login", "--format", "json")
    assert r.returncode == 0, r.stderr
    return fresh


@pytest.fixture
def writer_lock_through_roles(monkeypatch):
    """close_period as it will be once close.py takes its lock with ``ledger.store.roles.lock_journal``
    (through ledger_lock_journal(), since a writer cannot LOCK TABLE journal_entry IN SHARE ROW
    EXCLUSIVE MODE without UPDATE, DELETE or TRUNCATE on it): close.py calls ``is_postgres`` only
    to decide on that LOCK TABLE, so this takes the lock the new way and skips the old one."""
    def is_postgres(session) -> bool:
        lock_journal(session)
        return False

    if "LOCK TABLE journal_entry" in inspect.getsource(close_module):  # else close.py is fixed already
        monkeypatch.setattr(close_module, "is_postgres", is_postgres)


def _scalar(url: str, sql: str, **params):
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the policy
def test_policy_covers_every_table_and_fixes_the_journal_to_insert_and_select():
    """Every table of the models and alembic_version has a policy; the journal tables are exactly
    INSERT + SELECT; nothing anywhere grants DELETE, TRUNCATE or a table-wide UPDATE."""
    assert set(SQLModel.metadata.tables) | {"alembic_version"} <= set(WRITER_POLICY)
    for table in JOURNAL_TABLES:
        assert set(WRITER_POLICY[table].privileges) == {"SELECT", "INSERT"} and not WRITER_POLICY[table].update
    assert all(set(p.privileges) <= {"SELECT", "INSERT"} for p in WRITER_POLICY.values())
    assert WRITER_POLICY["alembic_version"].privileges == ("SELECT",)


@pytest.mark.postgres
def test_roles_get_exactly_the_policy_and_public_loses_the_schema(roles):
    """The server's own view (has_table_privilege, has_column_privilege) equals the policy for
    the writer and SELECT for the auditor, table by table; PUBLIC has no privilege on the schema;
    the writer may use the id sequences; only the writer may run ledger_lock_journal()."""
    engine = make_engine(roles.url)
    with engine.connect() as c:
        writer = effective_privileges(c, roles.writer)
        auditor = effective_privileges(c, roles.auditor)
        tables = set(c.execute(sa.text("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = current_schema()")).scalars())
        acl = c.execute(sa.text("SELECT nspacl::text FROM pg_namespace WHERE nspname = current_schema()")).scalar_one()
        seq = c.execute(sa.text("SELECT has_sequence_privilege(:r, 'journal_entry_id_seq', 'USAGE')"),
                        {"r": roles.writer}).scalar_one()
        can_lock = {r: c.execute(sa.text("SELECT has_function_privilege(:r, 'ledger_lock_journal()', 'EXECUTE')"),
                                 {"r": r}).scalar_one() for r in (roles.writer, roles.auditor)}
        login = dict(c.execute(sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN (:w, :a)"),
                               {"w": roles.writer, "a": roles.auditor}).all())
    engine.dispose()
    assert set(writer) == set(auditor) == tables
    assert writer == {t: WRITER_POLICY[t].describe() for t in tables}
    assert writer["journal_entry"] == writer["journal_line"] == "SELECT, INSERT"
    assert auditor == {t: "SELECT" for t in tables}
    assert not [item for item in acl.strip("{}").split(",") if item.startswith("=")], acl  # no PUBLIC entry
    assert seq and can_lock == {roles.writer: True, roles.auditor: False}
    assert login == {roles.writer: True, roles.auditor: True}


@pytest.mark.postgres
def test_running_again_is_idempotent_and_takes_back_extra_privileges(roles):
    """A second run changes nothing visible; a privilege granted by hand outside the policy
    (DELETE on the journal, INSERT for the auditor) is revoked by the next run."""
    engine = make_engine(roles.url)
    with engine.connect() as c:
        before = effective_privileges(c, roles.writer)
    with engine.begin() as c:
        c.execute(sa.text(f'GRANT DELETE, TRUNCATE ON journal_line TO "{roles.writer}"'))
        c.execute(sa.text(f'GRANT INSERT ON invoice TO "{roles.auditor}"'))
    r = roles.ledger("db", "roles", "--writer", roles.writer, "--auditor", roles.auditor, "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["roles"][roles.writer] == {"role": "writer", "state": "existed, LOGIN"}
    with engine.connect() as c:
        assert effective_privileges(c, roles.writer) == before
        assert effective_privileges(c, roles.auditor)["invoice"] == "SELECT"
    engine.dispose()
    assert {row["table"]: row["writer"] for row in out["tables"]} == before


@pytest.mark.postgres
def test_new_roles_are_nologin_unless_asked_and_passwords_are_stored_as_scram(fresh):
    """Without --login or a password the roles cannot log in (SET ROLE still works); a password
    from the environment makes the role LOGIN with a SCRAM verifier (never the clear text)."""
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor, "--format", "table")
    assert r.returncode == 0, r.stderr
    assert f"writer {fresh.writer} (created, NOLOGIN), auditor {fresh.auditor} (created, NOLOGIN)" in r.stdout
    assert "journal_line" in r.stdout
    with pytest.raises(sa.exc.OperationalError, match="not permitted to log in"):
        _scalar(fresh.writer_url, "SELECT 1")
    engine = make_engine(fresh.url)
    with engine.begin() as c:
        c.execute(sa.text(f'SET LOCAL ROLE "{fresh.auditor}"'))
        assert c.execute(sa.text("SELECT count(*) FROM account")).scalar_one() > 0
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for table account"):
            c.execute(sa.text("INSERT INTO account VALUES ('9999', 'x', 'asset', 'debit')"))
    engine.dispose()
    env = {**os.environ, "LEDGER_TEST_WRITER_PW": "correct horse battery staple"}
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor,
                     "--writer-password-env", "LEDGER_TEST_WRITER_PW", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["roles"][fresh.auditor]["state"] == "existed, NOLOGIN"
    stored = _scalar(fresh.url, "SELECT rolpassword FROM pg_authid WHERE rolname = :r", r=fresh.writer)
    assert stored.startswith("SCRAM-SHA-256$") and "horse" not in stored
    assert _scalar(fresh.url, "SELECT rolcanlogin FROM pg_roles WHERE rolname = :r", r=fresh.writer) is True
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor,
                     "--writer-password-env", "LEDGER_TEST_UNSET_VAR")
    assert r.returncode == 2 and "LEDGER_TEST_UNSET_VAR is unset or empty" in r.stderr


@pytest.mark.postgres
def test_dry_run_prints_the_sql_and_changes_nothing(fresh):
    """--dry-run prints the statements (passwords masked) and creates no role."""
    env = {**os.environ, "LEDGER_TEST_PW": "s3cret-value"}
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor, "--dry-run",
                     "--writer-password-env", "LEDGER_TEST_PW", env=env)
    assert r.returncode == 0, r.stderr
    assert f'CREATE ROLE {fresh.writer} LOGIN PASSWORD \'***\';' in r.stdout
    assert f"GRANT SELECT, INSERT ON public.journal_line TO {fresh.writer};" in r.stdout
    assert "s3cret" not in r.stdout and "SCRAM" not in r.stdout
    assert _scalar(fresh.url, "SELECT count(*) FROM pg_roles WHERE rolname IN (:w, :a)",
                   w=fresh.writer, a=fresh.auditor) == 0


@pytest.mark.postgres
def test_refusals_exit_1_with_a_reason(fresh, sqlite_url):
    """SQLite, a table without a policy, a superuser as the writer, the same role twice, a
    reserved name: exit 1 (2 for a malformed name) with the reason, and no role created."""
    r = fresh.ledger("db", "roles", url=sqlite_url)
    assert r.returncode == 1 and "roles need PostgreSQL" in r.stderr and "Traceback" not in r.stderr
    r = fresh.ledger("db", "roles", "--writer", "postgres", "--auditor", fresh.auditor)
    assert r.returncode == 1 and "role postgres is a superuser" in r.stderr
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.writer)
    assert r.returncode == 1 and "must be different roles" in r.stderr
    r = fresh.ledger("db", "roles", "--writer", "pg_monitor")
    assert r.returncode == 2 and "not allowed" in r.stderr
    engine = make_engine(fresh.url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE side_notes (id int)"))
    with engine.connect() as c, pytest.raises(RolesError, match="no privilege policy for table.s. side_notes"):
        plan_roles(c, fresh.writer, fresh.auditor)
    engine.dispose()
    r = fresh.ledger("db", "roles", "--writer", fresh.writer, "--auditor", fresh.auditor)
    assert r.returncode == 1 and "no privilege policy for table(s) side_notes" in r.stderr
    assert _scalar(fresh.url, "SELECT count(*) FROM pg_roles WHERE rolname IN (:w, :a)",
                   w=fresh.writer, a=fresh.auditor) == 0


# --------------------------------------------------------------------------- the writer
@pytest.mark.postgres
def test_writer_imports_every_event_type_and_closes_three_months(roles, writer_lock_through_roles):
    """As the writer (a connection whose user is the role): two imports covering every event
    type (CSV usage, a void, a refund, a cancellation, a late event), closes of January to March
    with their period-end steps (subscription bills, overage invoice, guarantee credit notes,
    expiries, seals), the invariants, a reopen refused (no EXECUTE on ledger_reopen_period), the owner's reopen
    and the writer's close again (an UPDATE of the period row)."""
    from ledger.services.closing import close_period
    from ledger.store.invariants import check_all
    from ledger.services.importing import import_files

    catalog = load_catalog(roles.tmp / "ledger.toml", required=True)
    engine = make_engine(roles.writer_url)
    assert _scalar(roles.writer_url, "SELECT current_user") == roles.writer
    with Session(engine) as s:
        summary = import_files(s, catalog, [roles.tmp / "jan.jsonl", roles.tmp / "usage.csv"])
    assert (summary.posted, summary.quarantined) == (16, 0)
    with Session(engine) as s:
        close_period(s, catalog, "2026-01", closed_by="writer")
    with Session(engine) as s:
        summary = import_files(s, catalog, [roles.tmp / "feb.jsonl"])
    assert summary.late_events == ["late1"]
    for period in ("2026-02", "2026-03"):
        with Session(engine) as s:
            close_period(s, catalog, period, closed_by="writer")
    with Session(engine) as s:
        assert check_all(s, tz=catalog.tz) == []
        categories = {(i.kind, i.category) for i in s.execute(sa.select(Invoice)).scalars()}
        assert {("invoice", "subscription"), ("invoice", "overage"), ("invoice", "purchase"),
                ("credit_note", "refund"), ("credit_note", "guarantee")} <= categories, categories
        assert s.execute(sa.select(sa.func.count()).select_from(SubscriptionPeriod)).scalar_one() == 2
        if s.execute(sa.text("SELECT to_regclass('period_close')")).scalar_one():  # seals (docs/design.md §9.2)
            assert s.execute(sa.text("SELECT count(*) FROM period_close")).scalar_one() == 3

    reopen = getattr(close_module, "reopen_period", None)
    if reopen is not None:
        with Session(engine) as s, pytest.raises(sa.exc.ProgrammingError, match="permission denied for function ledger_reopen_period"):
            reopen(s, "2026-03", reason="the writer may not")
        owner = make_engine(roles.url)
        with Session(owner) as s:
            reopen(s, "2026-03", reason="a correction")
        owner.dispose()
        with Session(engine) as s:
            assert close_period(s, catalog, "2026-03", closed_by="writer").already_closed is False
    engine.dispose()


@pytest.mark.postgres
def test_writer_cannot_change_the_journal_by_privilege_not_just_by_trigger(roles):
    """Raw SQL as the writer: UPDATE, DELETE and TRUNCATE on the journal fail with "permission
    denied" (the privilege check runs before the append-only triggers, whose message differs);
    so do changes outside the policy (a customer's name, an invoice, a closed period reopened);
    an INSERT into the journal works (a balanced entry by hand)."""
    engine = make_engine(roles.writer_url)
    with engine.begin() as c:
        e = c.execute(sa.text("INSERT INTO journal_entry (entry_date, occurred_at, kind, description, line_count) "
                              "VALUES ('2026-01-15', '2026-01-15 12:00:00+00', 'manual', 'by hand', 2) RETURNING id")).scalar_one()
        c.execute(sa.text("INSERT INTO journal_line (entry_id, account_code, commodity, debit, credit) "
                          "VALUES (:e, '1000', 'USD', 500, 0), (:e, '2200', 'USD', 0, 500)"), {"e": e})
    refused = [
        ("UPDATE journal_line SET debit = debit + 1", "journal_line"),
        ("UPDATE journal_entry SET description = 'edited'", "journal_entry"),
        ("DELETE FROM journal_entry", "journal_entry"),
        ("DELETE FROM journal_line", "journal_line"),
        ("TRUNCATE journal_line", "journal_line"),
        ("LOCK TABLE journal_entry IN SHARE ROW EXCLUSIVE MODE", "journal_entry"),
        ("UPDATE customer SET name = 'x'", "customer"),
        ("DELETE FROM invoice", "invoice"),
        ("UPDATE credit_grant SET units = units + 1", "credit_grant"),
        ("INSERT INTO account VALUES ('9999', 'x', 'asset', 'debit')", "account"),
    ]
    for sql, table in refused:
        with engine.begin() as c, pytest.raises(sa.exc.ProgrammingError) as err:
            c.execute(sa.text(sql))
        assert f"permission denied for table {table}" in str(err.value), sql
        assert "append-only" not in str(err.value)
    with engine.begin() as c:  # the close's lock, the way the writer may take it
        c.execute(sa.text("SELECT ledger_lock_journal()"))
        mode = c.execute(sa.text("SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted "
                                 "AND relation = 'journal_entry'::regclass AND mode LIKE 'Share%'")).scalar_one()
        assert mode == "ShareRowExclusiveLock"
    for sql in ("INSERT INTO accounting_period (period, status) VALUES ('2025-12', 'closed')",
                "UPDATE accounting_period SET status = 'open' WHERE period = '2025-12'",
                "INSERT INTO accounting_period (period, status) VALUES ('2025-11', 'open')"):
        # closes and reopens go through ledger_close_period() / ledger_reopen_period() only
        with engine.begin() as c, pytest.raises(sa.exc.ProgrammingError, match="permission denied for table accounting_period"):
            c.execute(sa.text(sql))
    engine.dispose()
    assert _scalar(roles.url, "SELECT count(*) FROM journal_line") == 2


@pytest.mark.postgres
def test_writer_cli_import_reports_verify(roles):
    """The real `ledger` commands with --database-url as the writer: import, reports, verify and
    the invoice register succeed."""
    url = roles.writer_url
    r = roles.ledger("import", "--format", "table", "jan.jsonl", "usage.csv", url=url)
    assert r.returncode == 0, r.stderr
    assert "posted 16, duplicates 0, quarantined 0" in r.stdout
    tb = roles.ledger("report", "trial-balance", "--period", "2026-01", "--format", "json", url=url)
    assert tb.returncode == 0, tb.stderr
    usd = next(t for t in json.loads(tb.stdout)["totals"] if t["commodity"] == "USD")
    assert usd["debit"] == usd["credit"]
    for args in (("verify",), ("invoices", "list", "--format", "json"), ("report", "credits", "--period", "2026-01")):
        r = roles.ledger(*args, url=url)
        assert r.returncode == 0, (args, r.stderr)


@pytest.mark.postgres
def test_writer_cli_closes_a_month(roles):
    """`ledger close --out` as the writer: the close's lock goes through ledger_lock_journal()
    (SECURITY DEFINER), since LOCK TABLE itself needs UPDATE, DELETE or TRUNCATE, which the
    writer must not have."""
    assert roles.ledger("import", "jan.jsonl", "usage.csv", url=roles.writer_url).returncode == 0
    r = roles.ledger("close", "2026-01", "--out", "pkg", url=roles.writer_url)
    assert r.returncode == 0, r.stderr
    assert "closed 2026-01" in r.stdout and (roles.tmp / "pkg" / "manifest.json").exists()


# --------------------------------------------------------------------------- the auditor
@pytest.mark.postgres
def test_auditor_reads_everything_and_every_write_fails_naming_the_privilege(roles):
    """As the auditor: reports, verify, the invoice register and one invoice succeed; import and
    close exit 1 with one line naming the table, the role and the missing privilege (no
    traceback), and nothing is written."""
    assert roles.ledger("import", "jan.jsonl", "usage.csv").returncode == 0  # as the owner
    url = roles.auditor_url
    for args in (("report", "trial-balance", "--period", "2026-01", "--format", "json"),
                 ("report", "deferred-revenue", "--period", "2026-01", "--format", "csv"),
                 ("report", "revenue", "--period", "2026-01"),
                 ("report", "quarantine"),
                 ("report", "customer", "--customer", "acme"),
                 ("report", "ar-aging", "--period", "2026-01"),
                 ("verify",),
                 ("invoices", "list", "--format", "json"),
                 ("invoices", "show", "INV-2026-000001"),
                 ("report", "audit-trail"),
                 ("export", "journal", "--format", "jsonl", "--out", "journal.jsonl"),
                 ("export", "journal", "--format", "csv", "--out", "journal.csv")):
        r = roles.ledger(*args, url=url)
        assert r.returncode == 0, (args, r.stderr)
    entries = _scalar(roles.url, "SELECT count(*) FROM journal_entry")

    r = roles.ledger("import", "feb.jsonl", url=url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    # the import's first write-side act is locking its customers (SELECT ... FOR UPDATE)
    assert (f"error: permission denied for table customer: role {roles.auditor} has no UPDATE privilege on it, "
            "which SELECT ... FOR UPDATE needs") in r.stderr
    r = roles.ledger("close", "2026-01", url=url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "error: permission denied for " in r.stderr and f"role {roles.auditor} has no " in r.stderr
    assert _scalar(roles.url, "SELECT count(*) FROM journal_entry") == entries
    assert _scalar(roles.url, "SELECT count(*) FROM accounting_period") == 0
    engine = make_engine(url)
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == entries
    engine.dispose()
    # once the owner has closed the month, the auditor may write its close package again
    assert roles.ledger("close", "2026-01").returncode == 0
    r = roles.ledger("close", "2026-01", "--out", "pkg", url=url)
    assert r.returncode == 0, r.stderr
    assert "already closed" in r.stdout and (roles.tmp / "pkg" / "manifest.json").exists()
