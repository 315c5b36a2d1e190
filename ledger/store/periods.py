"""The accounting periods' state as stored: which periods are closed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from ledger.store.models import AccountingPeriod


def closed_periods(session: Session) -> list[str]:
    """Closed periods, oldest first."""
    rows = session.exec(  # type: ignore[call-overload]
        sa.select(AccountingPeriod.period).where(AccountingPeriod.status == "closed").order_by(AccountingPeriod.period)
    ).scalars()
    return list(rows)
