"""Property: random purchases, promotional grants, usage and payments, imported month by month
with closes in between, keep every invariant (DESIGN section 7, 1-3): each entry and the trial
balance balance per commodity, each grant's deferred balance equals A - round(A x R / N), and
deferred revenue on the ledger equals the sum over grants. And the unit identity holds:
issued = outstanding + consumed + expired.
"""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlmodel import Session

from ledger.catalog import load_catalog
from ledger.close import close_period
from ledger.db import make_engine
from ledger.engine import import_events
from ledger.events import read_jsonl
from ledger.invariants import check_all
from ledger.models import JournalLine
from strategies import histories, jsonl

MONTHS = ("2026-01", "2026-02", "2026-03")


def _unit_identity(session: Session) -> dict[str, int]:
    rows = session.execute(sa.select(JournalLine.account_code, sa.func.sum(JournalLine.debit - JournalLine.credit))
                           .where(JournalLine.commodity == "CREDIT").group_by(JournalLine.account_code)).all()
    return {code: int(v) for code, v in rows}


def _run_history(url: str, events: list[dict], tmp) -> None:
    engine = make_engine(url)
    catalog = load_catalog(None)
    try:
        for month in MONTHS:
            month_events = [e for e in events if e["occurred_at"].startswith(month) or e["type"] == "customer.created"]
            if month != MONTHS[0]:
                month_events = [e for e in month_events if e["type"] != "customer.created"]
            path = tmp / f"{month}.jsonl"
            path.write_text(jsonl(month_events))
            parsed, problems = read_jsonl(path)
            assert problems == []
            with Session(engine) as s:
                import_events(s, catalog, parsed, sources=[str(path)])
            with Session(engine) as s:
                assert check_all(s) == [], f"after importing {month}"
            with Session(engine) as s:
                close_period(s, catalog, month)
            with Session(engine) as s:
                assert check_all(s) == [], f"after closing {month}"
                units = _unit_identity(s)
                issued = units.get("9000", 0)
                assert issued == -sum(units.get(c, 0) for c in ("9100", "9200", "9300", "9400"))
                assert units.get("9100", 0) <= 0  # outstanding units never negative (credit-normal)
    finally:
        engine.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=histories())
def test_invariants_hold_on_sqlite(events, sqlite_template, tmp_path_factory):
    """Random histories keep invariants 1-3 and the unit identity after every import and close (SQLite)."""
    tmp = tmp_path_factory.mktemp("prop")
    shutil.copyfile(sqlite_template, tmp / "ledger.db")
    _run_history(f"sqlite:///{tmp / 'ledger.db'}", events, tmp)


@pytest.mark.postgres
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=histories(max_events=25))
def test_invariants_hold_on_postgresql(events, pg_admin_url, pg_template, tmp_path_factory):
    """The same property on PostgreSQL, where the database re-checks every entry's balance at commit."""
    from conftest import _admin_engine, _url_for

    tmp = tmp_path_factory.mktemp("prop")
    name = f"ledger_prop_{tmp.name.replace('-', '_')}"
    admin = _admin_engine(pg_admin_url)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        _run_history(_url_for(pg_admin_url, name), events, tmp)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
