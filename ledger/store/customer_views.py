"""Reads of one customer's position for the HTTP API (``ledger.http``): what is left of each of
its grants, its open receivables by invoice, its usage in a window. Plain values out (int minor
units or CREDIT units); the service (`ledger.services.serving`) formats them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.store.lots import lot_balances
from ledger.store.models import Customer, Grant, Invoice, JournalLine, UsageEvent


def customer_currency(session: Session, customer_id: str) -> str | None:
    """The customer's currency (ISO 4217), None when there is no such customer."""
    return session.execute(sa.select(Customer.currency).where(Customer.id == customer_id)).scalar_one_or_none()


def grant_positions(session: Session, customer_id: str) -> list[dict]:
    """Every grant (lot) of the customer, by effective_at then id: {grant_id, source, units,
    effective_at, expires_at (None: never), outstanding (int CREDIT units left: 9100 credit -
    debit), deferred (int minor units left on 2100)}."""
    lots = lot_balances(session, customer_ids=[customer_id])
    rows = session.execute(sa.select(Grant.id, Grant.source, Grant.units, Grant.effective_at, Grant.expires_at)
                           .where(Grant.customer_id == customer_id)
                           .order_by(Grant.effective_at, Grant.id)).all()
    out = []
    for gid, source, units, effective_at, expires_at in rows:
        lot = lots.get(gid)
        out.append({"grant_id": gid, "source": source, "units": int(units), "effective_at": effective_at,
                    "expires_at": expires_at, "outstanding": lot.outstanding if lot else 0,
                    "deferred": lot.deferred if lot else 0})
    return out


def open_invoices(session: Session, customer_id: str) -> list[dict]:
    """The customer's invoices with a 1100 Receivable balance (debit - credit, int minor units)
    other than zero over the whole journal, by number: {number, issue_date, due_date, total,
    open}."""
    q = (sa.select(JournalLine.invoice_number, sa.func.sum(JournalLine.debit - JournalLine.credit))
         .where(JournalLine.customer_id == customer_id, JournalLine.account_code == A.RECEIVABLE,
                JournalLine.invoice_number.is_not(None))
         .group_by(JournalLine.invoice_number))
    balances = {n: int(v) for n, v in session.execute(q) if int(v) != 0}
    if not balances:
        return []
    docs = session.execute(sa.select(Invoice.number, Invoice.issue_date, Invoice.due_date, Invoice.total)
                           .where(Invoice.number.in_(sorted(balances))).order_by(Invoice.number)).all()
    return [{"number": n, "issue_date": issued, "due_date": due, "total": int(total), "open": balances[n]}
            for n, issued, due, total in docs]


def usage_between(session: Session, customer_id: str, start: datetime, end: datetime) -> dict[str, int]:
    """The customer's usage events with ``start <= occurred_at < end`` (aware instants): {events,
    credits, overage_units} of those posted and {quarantined, quarantined_credits} of those kept
    in quarantine at the hard cap (int counts and CREDIT units)."""
    out = {"events": 0, "credits": 0, "overage_units": 0, "quarantined": 0, "quarantined_credits": 0}
    for status, n, credits, overage in session.execute(
            sa.select(UsageEvent.status, sa.func.count(), sa.func.sum(UsageEvent.credits),
                      sa.func.sum(UsageEvent.overage_units))
            .where(UsageEvent.customer_id == customer_id, UsageEvent.occurred_at >= start,
                   UsageEvent.occurred_at < end)
            .group_by(UsageEvent.status)):
        if status == "posted":
            out.update(events=int(n), credits=int(credits or 0), overage_units=int(overage or 0))
        else:
            out.update(quarantined=int(n), quarantined_credits=int(credits or 0))
    return out
