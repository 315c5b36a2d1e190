"""Hypothesis strategies for the ledger, kept in one place (attrs/pluggy style).

Histories draw every event type of docs/design.md §8.2 for two customers (USD with sales tax, JPY
without) over January-March 2026. References (renewals, refunds, estimate changes, voids) point
at earlier events chosen at random, so some events are refused by the engine for business
reasons (a refund beyond the unused credits, a void of a used purchase); the property harness
drops those and re-imports, checking that the refused import posted nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
CUSTOMERS = ("acme", "globex")
CURRENCY = {"acme": "USD", "globex": "JPY"}
TAX = {"acme": "0.0825", "globex": "0"}
PLANS = {"USD": ("pro_usd", "basic_usd", "per_resolution_usd"), "JPY": ("pro_jpy",)}

CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]

[rate_card]
EXTRACT_TEXT = 5
GENERATE_REPORT = 50

[costs]
credit = { USD = "0.0035", JPY = "0.5" }

[topups.pack_500]
credits = 500
price = "10.00"
currency = "USD"

[customers.acme]
auto_topup = { below = 800, pack = "pack_500", monthly_cap = 2 }

[customers.globex]
soft_cap = 6000

[costs.actions]
EXTRACT_TEXT = { USD = "0.035" }

[plans.per_resolution_usd]
name = "Per resolution"
currency = "USD"
monthly_fee = "0.00"
included_credits = 0
overage_price = "0.99"
credit_ssp = "0.99"
platform_ssp = "0.00"

[plans.pro_usd]
name = "Professional"
currency = "USD"
monthly_fee = "299.00"
included_credits = 5000
overage_price = "0.12"
credit_ssp = "0.12"
platform_ssp = "99.00"
rollover = { percent = 25, max_periods = 1 }

[plans.basic_usd]
name = "Basic"
currency = "USD"
monthly_fee = "99.00"
included_credits = 1000
credit_ssp = "0.15"
platform_ssp = "49.00"
rollover = { percent = 50, max_credits = 300 }

[plans.pro_jpy]
name = "Professional JP"
currency = "JPY"
monthly_fee = "30000"
included_credits = 5000
overage_price = "15"
credit_ssp = "12"
platform_ssp = "9900"
rollover = { percent = 25, max_periods = 2, expires = false }
"""


def _ts(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(minor: int, customer: str) -> str:
    return f"{minor // 100}.{minor % 100:02d}" if CURRENCY[customer] == "USD" else str(minor)


def _rate(draw) -> str:
    return f"0.{draw(st.integers(0, 40)):02d}"


@st.composite
def operation(draw, n: int, earlier: list[dict]) -> dict:
    """One event at a random time in January-March 2026 (minute resolution)."""
    minute = draw(st.integers(0, 89 * 24 * 60))
    customer = draw(st.sampled_from(CUSTOMERS))
    kind = draw(st.sampled_from(["topup", "topup", "commitment", "commitment", "promo", "usage", "usage", "usage",
                                 "usage", "usage", "payment", "subscribe", "cancel", "refund", "estimate", "void",
                                 "guarantee", "review"]))
    base = {"id": f"e{n}", "occurred_at": _ts(minute), "customer_id": customer}
    mine = [e for e in earlier if e.get("customer_id") == customer]
    if kind == "topup":
        ev = base | {"type": "topup.purchased", "topup_id": f"top{n}", "credits": draw(st.integers(1, 5000)),
                     "amount": _amount(draw(st.integers(1, 2_000_000)), customer)}
        expires = draw(st.one_of(st.none(), st.integers(1, 80)))
        if expires is not None:
            ev["expires_at"] = _ts(minute + expires * 24 * 60)
        return ev
    if kind == "commitment":
        start = max(START.date(), (START + timedelta(minutes=minute)).date() + timedelta(days=draw(st.integers(-5, 5))))
        end = start + timedelta(days=draw(st.integers(0, 70)))
        ev = base | {"type": "commitment.purchased", "commitment_id": f"com{n}",
                     "credits": draw(st.integers(1, 100_000)), "amount": _amount(draw(st.integers(1, 9_000_000)), customer),
                     "term_start": start.isoformat(), "term_end": end.isoformat()}
        if draw(st.booleans()):
            policy = {"percent": draw(st.integers(0, 100))}
            if draw(st.booleans()):
                policy["max_periods"] = draw(st.integers(1, 3))
            if draw(st.booleans()):
                policy["max_credits"] = draw(st.integers(0, 5000))
            if draw(st.integers(0, 3)) == 0:
                policy["expires"] = False
            ev["rollover"] = policy
        renewable = [e["commitment_id"] for e in mine if e["type"] == "commitment.purchased"]
        if renewable and draw(st.booleans()):
            ev["renews"] = draw(st.sampled_from(renewable))
        if draw(st.booleans()):
            ev["overage_price"] = "0.125" if CURRENCY[customer] == "USD" else "7"
        if draw(st.integers(0, 2)) == 0:
            ev["breakage"] = {"method": "proportional", "expected_rate": _rate(draw)}
        return ev
    if kind == "promo":
        ev = base | {"type": "credits.granted", "grant_id": f"promo{n}", "credits": draw(st.integers(1, 3000))}
        if draw(st.booleans()):
            ev["expires_at"] = _ts(minute + draw(st.integers(1, 60)) * 24 * 60)
        return ev
    if kind == "payment":
        return base | {"type": "payment.received", "amount": _amount(draw(st.integers(1, 500_000)), customer)}
    if kind == "subscribe":
        start = max(START.date(), (START + timedelta(minutes=minute)).date() + timedelta(days=draw(st.integers(-3, 20))))
        return base | {"type": "subscription.started", "plan": draw(st.sampled_from(PLANS[CURRENCY[customer]])),
                       "start_date": start.isoformat()}
    if kind == "guarantee":
        return base | {"type": "guarantee.enrolled", "legacy_monthly_amount": _amount(draw(st.integers(1, 200_000)), customer),
                       "start_month": draw(st.sampled_from(["2026-01", "2026-02", "2026-03"])),
                       "months": draw(st.integers(1, 4)), "basis": draw(st.sampled_from(["monthly", "cumulative"]))}
    if kind == "cancel":
        end = (START + timedelta(minutes=minute)).date() + timedelta(days=draw(st.integers(-2, 45)))
        return base | {"type": "subscription.cancelled", "end_date": end.isoformat()}
    grants = [e.get("topup_id") or e.get("commitment_id") or e.get("grant_id") for e in mine
              if e["type"] in ("topup.purchased", "commitment.purchased", "credits.granted")]
    if kind == "refund" and grants:
        ev = base | {"type": "refund.issued", "grant_ref": draw(st.sampled_from(grants))}
        if draw(st.booleans()):
            ev["credits"] = draw(st.integers(1, 3000))
        if draw(st.integers(0, 3)) == 0:
            ev["concession"] = True
        return ev
    proportional = [e["commitment_id"] for e in mine if e.get("breakage")]
    if kind == "estimate" and proportional:
        return base | {"type": "breakage.estimate_changed", "grant_ref": draw(st.sampled_from(proportional)),
                       "expected_rate": _rate(draw)}
    voidable = [e for e in earlier if e["type"] in ("topup.purchased", "commitment.purchased", "credits.granted",
                                                     "payment.received", "usage.recorded")]
    used = [e["id"] for e in mine if e["type"] == "usage.recorded"]
    if kind == "review" and used:  # an approval or rejection of usage held at a soft cap (refused if not held)
        target = draw(st.sampled_from(used))
        if draw(st.booleans()):
            ev = base | {"type": "usage.approved", "target_event_id": target}
            if draw(st.booleans()):
                ev["credits"] = draw(st.integers(1, 3000))
            return ev
        return base | {"type": "usage.rejected", "target_event_id": target, "reason": "property test"}
    if kind == "void" and voidable:
        target = draw(st.sampled_from(voidable))
        later = max(minute, int((datetime.fromisoformat(target["occurred_at"]) - START).total_seconds() // 60) + 1)
        later = min(later, 90 * 24 * 60 - 1)  # still in March
        return {"id": f"e{n}", "type": "event.voided", "occurred_at": _ts(later), "target_event_id": target["id"],
                "reason": "property test"}
    if draw(st.booleans()):
        return base | {"type": "usage.recorded", "action": draw(st.sampled_from(["EXTRACT_TEXT", "GENERATE_REPORT"])),
                       "quantity": draw(st.integers(1, 80))}
    ev = base | {"type": "usage.recorded", "credits": draw(st.integers(1, 4000))}
    if draw(st.integers(0, 3)) == 0:  # its own cost to serve, more decimals than the currency
        ev["cost"] = f"{draw(st.integers(0, 99))}.{draw(st.integers(0, 999)):03d}"
    return ev


@st.composite
def histories(draw, max_events: int = 40) -> list[dict]:
    """Customer creation, then random events; sorted by time (a month's file in time order)."""
    n = draw(st.integers(1, max_events))
    ops: list[dict] = []
    for i in range(n):
        ops.append(draw(operation(i, ops)))
    created = [{"id": f"c-{c}", "type": "customer.created", "occurred_at": _ts(0), "customer_id": c,
                "name": c.title(), "currency": CURRENCY[c], "tax_rate": TAX[c]} for c in CUSTOMERS]
    return created + sorted(ops, key=lambda e: e["occurred_at"])


def jsonl(events: list[dict]) -> str:
    return "\n".join(json.dumps(e) for e in events) + "\n"
