"""The webhook deliveries of usage alerts (table ``webhook_delivery``): queued once per alert and
URL, then each attempt recorded. Plain values in and out; `ledger.services.alerting` decides.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store.db import is_postgres
from ledger.store.models import WebhookDelivery

_TABLE = WebhookDelivery.__table__


def queue_deliveries(session: Session, rows: list[dict]) -> int:
    """Insert the deliveries ``rows`` (dicts of the table's columns) that are not there yet (by
    (customer_id, id)): an alert already queued is not queued again. Returns how many were new."""
    if not rows:
        return 0
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(_TABLE).on_conflict_do_nothing(index_elements=["customer_id", "id"]).returning(_TABLE.c.id)
    return sum(len(session.execute(stmt.values(**row)).all()) for row in rows)


def due_deliveries(session: Session, now: datetime, limit: int = 100) -> list[dict]:
    """Pending deliveries whose next attempt is due at ``now``, oldest first: dicts of the
    table's columns. On PostgreSQL locked (FOR UPDATE SKIP LOCKED) until the transaction ends,
    so that two server processes never send the same one at once."""
    q = (sa.select(_TABLE).where(_TABLE.c.status == "pending", _TABLE.c.next_attempt_at <= now)
         .order_by(_TABLE.c.next_attempt_at, _TABLE.c.customer_id, _TABLE.c.id).limit(limit))
    if is_postgres(session):
        q = q.with_for_update(skip_locked=True)
    return [dict(r) for r in session.execute(q).mappings()]


def record_attempt(session: Session, customer_id: str, delivery_id: str, *, status: str, attempts: int,
                   next_attempt_at: datetime, response_status: int | None, error: str | None,
                   delivered_at: datetime | None) -> None:
    """Record one attempt of delivery (customer_id, delivery_id)."""
    session.execute(sa.update(_TABLE).where(_TABLE.c.customer_id == customer_id, _TABLE.c.id == delivery_id)
                    .values(status=status, attempts=attempts, next_attempt_at=next_attempt_at,
                            response_status=response_status, last_error=error, delivered_at=delivered_at))


def deliveries(session: Session, customer_id: str | None = None) -> list[dict]:
    """Every delivery (of one customer), by created_at then id."""
    q = sa.select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.id)
    if customer_id is not None:
        q = q.where(_TABLE.c.customer_id == customer_id)
    return [dict(r) for r in session.execute(q).mappings()]
