"""Hypothesis strategies for the ledger, kept in one place (attrs/pluggy style)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
CUSTOMERS = ("acme", "globex")
CURRENCY = {"acme": "USD", "globex": "JPY"}
TAX = {"acme": "0.0825", "globex": "0"}


def _ts(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(minor: int, customer: str) -> str:
    return f"{minor // 100}.{minor % 100:02d}" if CURRENCY[customer] == "USD" else str(minor)


@st.composite
def operation(draw, n: int) -> dict:
    """One business event at a random time in January-March 2026 (minute resolution)."""
    minute = draw(st.integers(0, 89 * 24 * 60))
    customer = draw(st.sampled_from(CUSTOMERS))
    kind = draw(st.sampled_from(["topup", "topup", "commitment", "promo", "usage", "usage", "usage", "usage", "payment"]))
    base = {"id": f"e{n}", "occurred_at": _ts(minute), "customer_id": customer}
    if kind == "topup":
        credits = draw(st.integers(1, 5000))
        expires = draw(st.one_of(st.none(), st.integers(1, 80)))
        ev = base | {"type": "topup.purchased", "topup_id": f"top{n}", "credits": credits,
                     "amount": _amount(draw(st.integers(1, 2_000_000)), customer)}
        if expires is not None:
            ev["expires_at"] = _ts(minute + expires * 24 * 60)
        return ev
    if kind == "commitment":
        start = (START + timedelta(minutes=minute)).date()
        end = start + timedelta(days=draw(st.integers(0, 70)))
        return base | {"type": "commitment.purchased", "commitment_id": f"com{n}",
                       "credits": draw(st.integers(1, 100_000)), "amount": _amount(draw(st.integers(1, 9_000_000)), customer),
                       "term_start": start.isoformat(), "term_end": end.isoformat()}
    if kind == "promo":
        ev = base | {"type": "credits.granted", "grant_id": f"promo{n}", "credits": draw(st.integers(1, 3000))}
        if draw(st.booleans()):
            ev["expires_at"] = _ts(minute + draw(st.integers(1, 60)) * 24 * 60)
        return ev
    if kind == "payment":
        return base | {"type": "payment.received", "amount": _amount(draw(st.integers(1, 500_000)), customer)}
    return base | {"type": "usage.recorded", "credits": draw(st.integers(1, 4000))}


@st.composite
def histories(draw, max_events: int = 40) -> list[dict]:
    """Customer creation, then random events; sorted by time (a month's file in time order)."""
    n = draw(st.integers(1, max_events))
    ops = [draw(operation(i)) for i in range(n)]
    created = [{"id": f"c-{c}", "type": "customer.created", "occurred_at": _ts(0), "customer_id": c,
                "name": c.title(), "currency": CURRENCY[c], "tax_rate": TAX[c]} for c in CUSTOMERS]
    return created + sorted(ops, key=lambda e: e["occurred_at"])


def jsonl(events: list[dict]) -> str:
    return "\n".join(json.dumps(e) for e in events) + "\n"
