"""Property: random histories over every event type (customers, subscriptions and cancellations,
commitments with rollover, renewals, overage and proportional breakage, top-ups, promotional
grants, usage in credits or actions, payments, refunds and concessions, estimate changes and
voids), imported month by month with closes in between, keep every invariant of docs/design.md
§7 checked here (1-5) after every import and close, and the unit identity per customer:
issued + overage = outstanding + consumed + expired + refunded.

Events the engine refuses for a business reason (a refund beyond the unused credits, a void of
a purchase whose credits were used, a renewal after the term ended) make the whole import fail;
the harness checks that nothing was posted, drops the refused events and imports the rest.
"""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from sqlmodel import Session

from ledger.catalog import load_catalog
from ledger.services.closing import close_period
from ledger.store.db import make_engine
from ledger.services.importing import import_events
from ledger.errors import InvalidInputError
from ledger.events import read_jsonl
from ledger.store.invariants import check_all
from ledger.store.models import JournalEntry, JournalLine
from strategies import CATALOG, histories, jsonl

MONTHS = ("2026-01", "2026-02", "2026-03")


def unit_identity_by_customer(session: Session) -> dict[str, tuple[int, int]]:
    """customer -> (issued + overage, outstanding + consumed + expired + refunded), CREDIT units."""
    rows = session.execute(sa.select(JournalLine.customer_id, JournalLine.account_code,
                                     sa.func.sum(JournalLine.debit - JournalLine.credit))
                           .where(JournalLine.commodity == "CREDIT")
                           .group_by(JournalLine.customer_id, JournalLine.account_code)).all()
    out: dict[str, list[int]] = {}
    for cid, code, net in rows:
        acc = out.setdefault(cid, [0, 0])
        if code in ("9000", "9050"):
            acc[0] += int(net)
        else:
            acc[1] -= int(net)
    return {cid: (a, b) for cid, (a, b) in out.items()}


def _entries(engine) -> int:
    with Session(engine) as s:
        return s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one()


def _import_month(engine, catalog, events: list[dict], path) -> None:
    while events:
        path.write_text(jsonl(events))
        parsed, problems = read_jsonl(path)
        assert problems == []
        before = _entries(engine)
        try:
            with Session(engine) as s:
                import_events(s, catalog, parsed, sources=[str(path)])
            return
        except InvalidInputError as exc:
            assert _entries(engine) == before, "a refused import posted entries"
            bad = {p.line for p in exc.problems}
            assert bad, exc
            events = [e for i, e in enumerate(events, start=1) if i not in bad]


def _run_history(url: str, events: list[dict], tmp) -> None:
    engine = make_engine(url)
    (tmp / "ledger.toml").write_text(CATALOG)
    catalog = load_catalog(tmp / "ledger.toml", required=True)
    try:
        for month in MONTHS:
            month_events = [e for e in events if e["occurred_at"].startswith(month) or e["type"] == "customer.created"]
            if month != MONTHS[0]:
                month_events = [e for e in month_events if e["type"] != "customer.created"]
            _import_month(engine, catalog, month_events, tmp / f"{month}.jsonl")
            with Session(engine) as s:
                assert check_all(s, tz=catalog.tz) == [], f"after importing {month}"
            with Session(engine) as s:
                close_period(s, catalog, month)
            with Session(engine) as s:
                assert check_all(s, tz=catalog.tz) == [], f"after closing {month}"
                for cid, (issued, held) in unit_identity_by_customer(s).items():
                    assert issued == held, f"unit identity of {cid} after closing {month}"
    finally:
        engine.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=histories())
def test_invariants_hold_on_sqlite(events, sqlite_template, tmp_path_factory):
    """Random histories keep invariants 1-5 and the unit identity after every import and close (SQLite)."""
    tmp = tmp_path_factory.mktemp("prop")
    shutil.copyfile(sqlite_template, tmp / "ledger.db")
    _run_history(f"sqlite:///{tmp / 'ledger.db'}", events, tmp)


@pytest.mark.postgres
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=histories(max_events=25))
def test_invariants_hold_on_postgresql(events, pg_admin_url, pg_template, tmp_path_factory):
    """The same property on PostgreSQL, where the database re-checks every entry's balance at commit."""
    from conftest import create_pg_database, drop_pg_database

    tmp = tmp_path_factory.mktemp("prop")
    name = f"ledger_prop_{tmp.name.replace('-', '_')}"
    url = create_pg_database(pg_admin_url, name, pg_template)
    try:
        _run_history(url, events, tmp)
    finally:
        drop_pg_database(pg_admin_url, name)
