"""Gross margin per customer (docs/design.md §5.10): revenue recognised in a period, by stream,
against the cost of serving the customer's usage in it (account 5000 Cost of revenue).

    gross margin = net revenue - cost;   margin % = gross margin / net revenue x 100

Every figure is a sum of journal lines dated in the period, per customer and currency (a
customer has one currency). Rows are sorted by margin %, lowest first (a customer with cost but
no revenue first of all), and a row whose margin % is under the threshold, or that has cost and
no revenue, is flagged. Worked example (``tests/examples/test_margin.py``): on a 5,000.00 plan,
2,000 documents at 0.12 each cost 240.00, a margin of 4,760.00 or 95.2%.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from ledger.core import accounts as A
from ledger.reporting import Column, Report, period_window
from ledger.store import reports as store
from ledger.store.journal import customer_names

if TYPE_CHECKING:
    from ledger.store.db import Session

STREAMS = tuple(stream for _, stream in A.REVENUE_STREAMS[:4]) + ("contra",)
"""Revenue columns: usage, overage, subscription, breakage, and the contra-revenue streams
(guarantee credits, refunds and concessions) together, negative."""


def margin_percent(revenue: int, margin: int) -> Decimal | None:
    """margin / revenue x 100 to one decimal, half away from zero; None when revenue is 0."""
    if revenue == 0:
        return None
    return (Decimal(margin) * 100 / Decimal(revenue)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def gross_margin(session: Session, period: str, *, threshold: Decimal | int = 40) -> Report:
    """Per customer and currency over ``period``: revenue recognised by stream (int minor units;
    contra-revenue negative), net revenue, cost of revenue, gross margin and margin % (`Decimal`
    to one decimal, None without revenue; a decimal string in JSON and CSV), and ``below`` (bool: margin % < ``threshold`` percent, or
    cost without revenue). Customers with neither revenue nor cost are left out.
    Totals per currency. raises ValueError for a period not written YYYY-MM."""
    start, end = period_window(period)
    codes = [code for code, _ in A.REVENUE_STREAMS] + [A.COST_OF_REVENUE]
    acc: dict[tuple[str, str], dict[str, int]] = {}
    for (cid, code, cur), v in store.customer_account_sums(session, codes, start, end).items():
        row = acc.setdefault((cid, cur), dict.fromkeys((*STREAMS, "revenue", "cost"), 0))
        if code == A.COST_OF_REVENUE:
            row["cost"] -= v  # a debit balance
            continue
        stream = dict(A.REVENUE_STREAMS)[code]
        row[stream if stream in STREAMS else "contra"] += v
        row["revenue"] += v
    names = customer_names(session)
    threshold = Decimal(threshold)
    rows, totals = [], {}
    for (cid, cur), r in acc.items():
        if not (r["revenue"] or r["cost"]):
            continue
        m = r["revenue"] - r["cost"]
        pct = margin_percent(r["revenue"], m)
        below = (pct is None and r["cost"] > 0) or (pct is not None and pct < threshold)
        rows.append({"customer_id": cid, "customer": names.get(cid, cid), "currency": cur, **r, "margin": m,
                     "margin_percent": pct, "below": below})
        t = totals.setdefault(cur, {"currency": cur, **dict.fromkeys((*STREAMS, "revenue", "cost", "margin"), 0)})
        for k in (*STREAMS, "revenue", "cost", "margin"):
            t[k] += rows[-1][k]
    rows.sort(key=lambda r: (r["margin_percent"] is not None, r["margin_percent"] or 0, r["customer_id"], r["currency"]))
    for t in totals.values():
        t["margin_percent"] = margin_percent(t["revenue"], t["margin"])
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur")]
    cols += [Column(k, k.capitalize(), "money") for k in STREAMS]
    cols += [Column("revenue", "Revenue", "money"), Column("cost", "Cost", "money"), Column("margin", "Margin", "money"),
             Column("margin_percent", "Margin %", "percent"), Column("below", f"Under {threshold}%")]
    return Report("margin", f"Gross margin by customer, {period} (flagged under {threshold}%)", period, cols, rows,
                  [totals[k] for k in sorted(totals)])
