"""Deterministic demo scenario: one month of real AI usage for 50 customers.

The demo (``ledger demo``), the tests and the README all use this scenario. It turns the bundled
real production trace (``ledger/data/azure-llm-2023/``, Microsoft Azure LLM inference trace 2023,
CC BY 4.0, see the README next to it) into a month of metered usage plus the business events
that fund it. Standard library only, no database, no engine: the output is plain data (event
dicts in the JSONL format of docs/design.md §8.2 and usage rows in the bulk CSV format).
Every value is a pure function of the trace files and the month ``M`` (default ``2026-10``):
there is no randomness and no clock, so every build is identical and the written files are
byte-identical.

Input
    ``AzureLLMInferenceTrace_code.csv`` (F = ``"code"``, 8,819 requests) and
    ``AzureLLMInferenceTrace_conv.csv`` (F = ``"conv"``, 19,366 requests): 28,185 requests in
    all, read with the csv module (lines end in CRLF). ``k`` is the 0-based data row of a request
    in its file (the header is not a row). TIMESTAMP has 7 fractional digits and no zone; it is
    read as UTC and truncated to whole microseconds (the 7th digit is dropped).

Rule 1 - pricing (tokens -> credits)
    credits = ceil(ContextTokens / 1000) + ceil(GeneratedTokens / 250), and at least 1: a request
    with 0 tokens in both still costs 1 credit. Example: 4808 context and 10 generated tokens
    cost 5 + 1 = 6 credits.

Rule 2 - assignment to customers (heavy tail)
    50 customers, ranked r = 1..50, ids ``cus_001``..``cus_050`` in rank order, with Zipf
    weights w_r = 1 / r**1.1. With W = w_1 + ... + w_50 and C_r = (w_1 + ... + w_r) / W
    (C_0 = 0), request k of file F gets
    u = int.from_bytes(sha256(f"{F}:{k}".encode()).digest()[:8], "big") / 2**64 (in [0, 1))
    and belongs to the customer of rank r with C_{r-1} <= u < C_r (floats, IEEE double).

Rule 3 - replay over one calendar month
    Let s = T - T0, where T is the request's trace time and T0 the first timestamp of its file
    (both truncated to microseconds; 0 <= s < 3600 seconds in both files), and D the number of
    days of M. The request occurs at
    occurred_at = M-01T00:00:00Z + (k mod D) days + ((k // D) mod 24) hours + s,
    which always stays inside the same day, hence inside M. It is written as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always 6 fractional digits, so text order is time order).
    Its event id is f"u-{F}-{k:05d}". Usage rows are sorted by (occurred_at, event_id).
    (Both files' first requests, k = 0, fall exactly on M-01T00:00:00Z, the instant of the
    customer.created and welcome-credit events.)

Rule 4 - business events for month M (all dated inside M)
    Amounts are decimal strings in major units with exactly 2 decimals; timestamps carry a "Z"
    offset; dates are YYYY-MM-DD. U denotes a customer's month usage in credits (rules 1-3).
    round_half_up(x, q) rounds half away from zero to a multiple of q.

    a. ``customer.created`` for every customer at M-01T00:00:00Z, id ``evt-<cus>-created``.
       Fictional names, addresses and ``billing@<slug>.example`` emails (RFC 2606 domains).
       Currency USD and tax_rate "0", except 8 US customers with an illustrative sales tax rate
       (ranks 2, 5, 7, 10, 14, 19, 26, 38) and 3 European customers in EUR with VAT (rank 3
       Germany "0.19", rank 16 France "0.20", rank 23 Austria "0.20").
    b. ``credits.granted``: 500 welcome credits for every customer at M-01T00:00:00Z, grant
       ``promo-<cus>-welcome``, id ``evt-<cus>-promo``, expiring at (M+1)-01T00:00:00Z, reason
       "welcome credits": they expire at the month end (breakage in credits only, zero cost).
    c. ``commitment.purchased``, annual (ranks 1-6), at M-01T09:00:00Z, id
       ``evt-<cus>-commitment``, commitment ``com-<cus>-<M>``, term M-01 .. last day of M+11
       months. credits = round_half_up(U x ratio_r, 5000) and amount =
       round_half_up(credits x price_r, 100.00), with ratio_r and price_r from
       COMMITMENT_TERMS (ratios 9-13, prices 0.042-0.058 per credit): the commitment is 8-14x
       one month of usage and its cost basis stays within 0.04-0.06 per credit (checked).
    d. ``commitment.purchased``, one-month pilot (ranks 7 and 8), at M-01T09:00:00Z, id
       ``evt-<cus>-pilot``, commitment ``pilot-<cus>-<M>``, term M-01 .. last day of M.
       credits = round_half_up(1.5 x U, 500), amount = round_half_up(credits x 0.05, 100.00).
       The welcome credits are drawn first (same expiry, lower cost basis), and 40-50% of the
       pilot is left at the term end: breakage revenue at expiry.
    e. ``topup.purchased`` for each customer of ranks 9-50 (except the hard-cap customer)
       whose U >= 500, the welcome credits; the others have U < 500 and keep only the welcome
       credits. Packs: 1,000 credits for 20.00 (catalog ``pack_1000``). Total pack credits
       P = 1000 x ceil((1.3 x U - 500) / 1000), so the customer holds at least 1.3 x U credits
       with the welcome credits. P = 1000 is bought at
       once; otherwise 1,000 credits first and P - 1000 as a second purchase. Each purchase
       happens at the next whole hour strictly after the usage event that brings the customer's
       usage to at least 75% of the credits granted so far (an auto-recharge at 25% left).
       topup_id ``top-<cus>-<n>``, id ``evt-<cus>-topup-<n>`` (n = 1, 2), expires_at = the
       purchase date + 12 months at T00:00:00Z (last day of the month if that date is missing).
    f. Hard cap (exactly one customer, rank 12): welcome credits plus one small top-up of 500
       credits for 10.00, bought by the same 75% rule. Its usage exceeds its credits by at
       least 20% (checked; 1,600 used against 1,000 granted), so its later usage is quarantined
       by the engine. Every other customer holds at least its usage at every moment, a grant
       counting from its occurred_at (checked).
    g. ``payment.received``: each purchase (c-f) is paid after a delay of
       10 + (first byte of sha256(purchase event id) mod 11) days (10-20 days, same time of
       day) if that moment is still inside M; the others stay unpaid at the month end. For
       2026-10 that pays 24 of the 42 purchases. amount = the invoice total =
       amount + round_half_up(amount x tax_rate, 0.01); id ``evt-<cus>-payment-<n>`` (n counts
       the customer's payments in purchase order); no invoice_number key.
    h. ``guarantee.enrolled`` for the rank-3 customer (a German company migrated from per-seat
       pricing at GUARANTEE_LEGACY = 250.00 EUR a month), at M-01T00:00:00Z, id
       ``evt-<cus>-guarantee``, start_month M, 6 months, monthly basis. Its annual commitment's
       share of M (amount x 31/365 for October) exceeds 250.00, so the close of M issues a
       guarantee credit note for the difference plus 19% VAT.
    Events are sorted by (occurred_at, id); ids are unique.

Customers' month usage U depends only on rules 1-2, not on M, so the commitments and packs
are the same for every month; only the times move. Result for 2026-10: 94,565 credits in all;
cus_001 uses 24,486 (25.9%), the top 5 use 56.2%, the smallest customer (cus_048) 293.

Rule 5 - files
    ``write_demo_inputs`` writes ``events.jsonl`` (one compact JSON object per line, keys in the
    fixed order of the shapes above, UTF-8, "\\n" newlines) and ``usage.csv`` with header
    ``event_id,customer_id,occurred_at,credits`` ("\\n" newlines).

The code follows the rules: ``ledger.demo_trace`` (rules 1-3, the usage) and
``ledger.demo_customers`` (rule 4, the customers and what they buy); this module assembles the
month and writes the files (rule 5). Every name stays importable from here.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ledger.demo_customers import (
    DemoCustomer,
    DemoMonth,
    Purchase,
    check_funding,
    customer_month,
    guarantee_event,
    payment_events,
)
from ledger.demo_trace import (
    CUSTOMER_COUNT,
    DATA_DIR,
    TRACE_FILES,
    ZIPF_EXPONENT,
    UsageRow,
    _parse_trace_time,
    assign_rank,
    customer_id,
    price_request,
    replay_usage,
)

__all__ = [
    "DemoCustomer",
    "DemoScenario",
    "UsageRow",
    "assign_rank",
    "build_demo_scenario",
    "price_request",
    "write_demo_inputs",
]
# DATA_DIR, TRACE_FILES, ZIPF_EXPONENT, customer_id and _parse_trace_time are imported above so
# that they stay importable from here, as before the split (benchmarks/scale_data.py reads them).


@dataclass(frozen=True)
class DemoScenario:
    """The demo month M ("YYYY-MM").

    events: JSON-ready dicts in the JSONL format of docs/design.md §8.2 (rule 4), sorted by
    (occurred_at, id); usage: one UsageRow per trace request, sorted by (occurred_at, event_id);
    customers: the 50 customers in rank order.
    """

    month: str
    events: tuple[dict, ...]
    usage: tuple[UsageRow, ...]
    customers: tuple[DemoCustomer, ...]


def build_demo_scenario(month: str = "2026-10") -> DemoScenario:
    """Build the demo month M from the bundled trace by rules 1-4 of the module docstring.

    month: "YYYY-MM". Raises ValueError for a malformed month, or if the trace breaks a rule's
    guarantee (an offset outside [0, 1h), a cost basis or ratio out of range, a customer other
    than the hard-cap one running out of credits). Pure: reads only the bundled trace files.
    """
    m = DemoMonth.parse(month)
    replayed = replay_usage(m.start, m.days)
    usage_by_customer: dict[str, list[tuple[datetime, int]]] = {}
    for moment, row in replayed:
        usage_by_customer.setdefault(row.customer_id, []).append((moment, row.credits))
    month_usage = {cid: sum(c for _, c in items) for cid, items in usage_by_customer.items()}

    events: list[dict] = []
    purchases: list[Purchase] = []
    grants: dict[str, list[tuple[datetime, int]]] = {}
    customers: list[DemoCustomer] = []
    for rank in range(1, CUSTOMER_COUNT + 1):
        one = customer_month(rank, month_usage, usage_by_customer, m)
        events += one.events
        purchases += one.purchases
        grants[one.customer.id] = one.grants
        customers.append(one.customer)
    events += payment_events(purchases, m.end)
    events.append(guarantee_event(m))
    check_funding(customers, usage_by_customer, grants)
    events.sort(key=lambda event: (event["occurred_at"], event["id"]))
    if len({event["id"] for event in events}) != len(events):
        raise ValueError("duplicate event ids")
    return DemoScenario(
        month=month,
        events=tuple(events),
        usage=tuple(row for _, row in replayed),
        customers=tuple(customers),
    )


# --- files -----------------------------------------------------------------------------------
def write_demo_inputs(scenario: DemoScenario, directory: Path) -> tuple[Path, Path]:
    """Write events.jsonl and usage.csv (rule 5) into directory, creating it if needed.

    Returns (events_path, usage_path). Existing files of those names are overwritten.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    events_path = directory / "events.jsonl"
    usage_path = directory / "usage.csv"
    with open(events_path, "w", encoding="utf-8", newline="\n") as handle:
        for event in scenario.events:
            handle.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")
    with open(usage_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["event_id", "customer_id", "occurred_at", "credits"])
        for row in scenario.usage:
            writer.writerow([row.event_id, row.customer_id, row.occurred_at, row.credits])
    return events_path, usage_path
