"""`ledger.store.db.bulk_insert`: from `COPY_ROWS` rows PostgreSQL gets them by COPY, with dates
and datetimes sent as ISO text (`copy_text`); what is read back must be what the multi-row
INSERT of fewer rows (and SQLite) stores: the same instants, whatever their offset and the
session's time zone, and the same days. A naive datetime is refused before anything is sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ledger.store.db import COPY_ROWS, bulk_insert, make_engine
from ledger.store.models import Customer, Subscription, SubscriptionPeriod

ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), ZoneInfo("Europe/Berlin"),
         ZoneInfo("America/New_York"), timezone(timedelta(minutes=9, seconds=21))]


def _customers(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        zone = ZONES[i % len(ZONES)]
        created = datetime(2026, 3, 29, 0, 30, tzinfo=UTC).astimezone(zone) + timedelta(hours=i, microseconds=i * 7)
        rows.append({"id": f"cus_{i:03d}", "name": f"Customer {i}", "currency": "USD", "tax_rate": "0",
                     "address": "[]", "email": None, "locale": "en_US", "country": "US", "vat_id": None,
                     "created_at": created, "steps_through": None if i % 2 else created + timedelta(days=40),
                     "book_version": i})
    return rows


@pytest.mark.parametrize("n", [COPY_ROWS - 1, COPY_ROWS + 6])
def test_datetimes_are_stored_as_the_same_instants(db_url, n):
    engine = make_engine(db_url)
    rows = _customers(n)
    with Session(engine) as s:
        if engine.dialect.name == "postgresql":
            s.execute(sa.text("SET TIME ZONE 'Asia/Tokyo'"))  # not the rows' zones, nor UTC
        bulk_insert(s, Customer.__table__, rows)
        s.commit()
    with Session(engine) as s:
        stored = {r.id: (r.created_at, r.steps_through) for r in s.execute(sa.select(Customer.__table__))}
    engine.dispose()
    assert stored == {r["id"]: (r["created_at"], r["steps_through"]) for r in rows}
    assert all(at.utcoffset() == timedelta(0) for at, _ in stored.values())


def test_dates_are_stored_as_the_same_days(db_url):
    engine = make_engine(db_url)
    with Session(engine) as s:
        bulk_insert(s, Customer.__table__, _customers(1))
        bulk_insert(s, Subscription.__table__, [{
            "id": "sub-1", "customer_id": "cus_000", "plan": "p", "plan_name": "P", "currency": "USD",
            "monthly_fee": 100, "included_credits": 10, "credit_ssp": "1", "platform_ssp": "1",
            "overage_price": None, "rollover_percent": 0, "rollover_max_periods": None, "rollover_max_credits": None,
            "rollover_expires": False, "start_date": date(2026, 1, 1), "end_date": None, "cancel_event_id": None}])
        periods = [{"subscription_id": "sub-1", "customer_id": "cus_000", "period": f"{2026 + k // 12}-{k % 12 + 1:02d}",
                    "service_start": date(2026, 1, 1) + timedelta(days=31 * k),
                    "service_end": date(2026, 1, 28) + timedelta(days=31 * k), "fee": 100, "credits_fee": 60,
                    "platform_fee": 40, "credits": 10} for k in range(COPY_ROWS + 2)]
        bulk_insert(s, SubscriptionPeriod.__table__, periods)
        s.commit()
    with Session(engine) as s:
        stored = {r.period: (r.service_start, r.service_end)
                  for r in s.execute(sa.select(SubscriptionPeriod.__table__))}
    engine.dispose()
    assert stored == {p["period"]: (p["service_start"], p["service_end"]) for p in periods}


@pytest.mark.postgres
def test_a_naive_datetime_is_refused_before_the_copy(pg_url):
    engine = make_engine(pg_url)
    rows = _customers(COPY_ROWS + 1)
    rows[-1]["steps_through"] = datetime(2026, 10, 1)  # naive
    with Session(engine) as s:
        with pytest.raises(ValueError, match="naive datetime"):
            bulk_insert(s, Customer.__table__, rows)
        assert s.execute(sa.text("SELECT count(*) FROM customer")).scalar_one() == 0  # the transaction still usable
        s.rollback()
    engine.dispose()
