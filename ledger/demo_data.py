"""Deterministic demo scenario: months of real AI usage for 50 customers.

The demo (``ledger demo``), the tests and the README all use this scenario. It turns the bundled
real production trace (``ledger/data/azure-llm-2023/``, Microsoft Azure LLM inference trace 2023,
CC BY 4.0, see the README next to it) into metered usage over consecutive months plus the
business events that fund it. Standard library only, no database, no engine: the output is plain
data (event dicts in the JSONL format of docs/design.md §8.2 and usage rows in the bulk CSV
format). Every value is a pure function of the trace files, the first month ``M1`` and the
number of months (``ledger demo``: 2026-08 to 2026-10; one month, default ``2026-10``, for the
golden corpus and the Citus tests): there is no randomness and no clock, so every build is
identical and the written files are byte-identical. The trace is replayed once in each month
(rule 3), so every customer uses the same credits U each month; what changes from month to
month is what they hold and buy: welcome credits expire, plans roll credits over, pilots become
subscriptions, top-ups run out and are bought again.

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

Rule 3 - replay in each calendar month M of the run
    Let s = T - T0, where T is the request's trace time and T0 the first timestamp of its file
    (both truncated to microseconds; 0 <= s < 3600 seconds in both files), and D the number of
    days of M. The request occurs at
    occurred_at = M-01T00:00:00Z + (k mod D) days + ((k // D) mod 24) hours + s,
    which always stays inside the same day, hence inside M. It is written as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always 6 fractional digits, so text order is time order).
    Its event id is f"u-{F}-{k:05d}-{YYYYMM}" (the month M). Usage rows are sorted by (occurred_at, event_id).
    (Both files' first requests, k = 0, fall exactly on M-01T00:00:00Z, the instant of the
    customer.created and welcome-credit events.)

Rule 4 - business events (M1: the run's first month; M: any month of the run)
    Amounts are decimal strings in major units with the currency's decimals (2, JPY 0);
    timestamps carry a "Z" offset; dates are YYYY-MM-DD. U denotes a customer's month usage in
    credits (rules 1-3). round_half_up(x, q) rounds half away from zero to a multiple of q.

    a. ``customer.created`` for every customer at M1-01T00:00:00Z, id ``evt-<cus>-created``
       (``ledger.demo_directory``). Fictional names, addresses and ``billing@<slug>.example``
       emails (RFC 2606 domains), the country, and the locale of its documents when not en_US.
       Currency USD and tax_rate "0", except 8 US customers with an illustrative sales tax rate
       (ranks 2, 5, 7, 10, 14, 19, 26, 38), 3 European customers in EUR with VAT (rank 3
       Germany "0.19" de_DE, rank 16 France "0.20" fr_FR, rank 23 Austria "0.20" de_AT) and
       one Japanese customer in JPY (rank 6, consumption tax "0.10", ja_JP).
    b. ``credits.granted``: 500 welcome credits for every customer at M1-01T00:00:00Z, grant
       ``promo-<cus>-welcome``, id ``evt-<cus>-promo``, expiring at (M1+1)-01T00:00:00Z, reason
       "welcome credits": what is left expires at M1's end (breakage in credits only, zero cost).
    c. ``commitment.purchased``, annual (ranks 1-6), at M1-01T09:00:00Z, id
       ``evt-<cus>-commitment``, commitment ``com-<cus>-<M1>``, term M1-01 .. last day of M1+11
       months. credits = round_half_up(U x ratio_r, 5000) and amount =
       round_half_up(credits x price_r, 100.00), with ratio_r and price_r from
       COMMITMENT_TERMS (ratios 9-13, prices 0.042-0.058 per credit): the commitment is 8-14x
       one month of usage and its cost basis stays within 0.04-0.06 per credit (checked). In
       JPY (rank 6) amount = round_half_up(credits x price_r x 150, 10000) yen.
    d. ``commitment.purchased``, one-month pilot (ranks 7 and 8), at M1-01T09:00:00Z, id
       ``evt-<cus>-pilot``, commitment ``pilot-<cus>-<M1>``, term M1-01 .. last day of M1.
       credits = round_half_up(1.5 x U, 500), amount = round_half_up(credits x 0.05, 100.00).
       The welcome credits are drawn first (same expiry, lower cost basis), and 40-50% of the
       pilot is left at the term end: breakage revenue at expiry. From M1+1 (when the run has
       more than one month) both subscribe to Professional (rule 4i).
    e. ``topup.purchased`` for each customer without a plan or commitment (ranks 14-50),
       month by month. Let H be the credits it
       holds at M's start: the welcome credits in M1, what is left of its packs later. In M1
       a customer with U < 500 buys nothing (the welcome credits cover it). Otherwise, if
       1.3 x U > H, it buys P = 1000 x ceil((1.3 x U - H) / 1000) pack credits (1,000 credits
       for 20.00 each, catalog ``pack_1000``): 1,000 first and P - 1000 as a second purchase.
       Each purchase happens at the next whole hour strictly after the usage event that brings
       the month's usage to at least 75% of H plus the credits bought in M so far (an
       auto-recharge at 25% left), or at M-01T00:00:00Z when that is 0. topup_id
       ``top-<cus>-<n>``, id ``evt-<cus>-topup-<n>`` (n = 1, 2, ... over the run), expires_at =
       the purchase date + 12 months at T00:00:00Z (last day of the month if that date is
       missing).
    f. Hard cap (exactly one customer, rank 12): one small top-up of 500 credits for 10.00 a
       month, in M1 by the 75% rule on the welcome credits, later at M-01T00:00:00Z. Its usage
       exceeds what it is granted in each month by at least 20% (checked), so its later usage
       is quarantined by the engine. Every other customer without a plan holds at least its
       usage at every moment, a grant counting from its occurred_at and until its expiry
       (checked).
    g. ``payment.received``: each purchase (c-f) and each plan month (i) is paid after a delay
       of 10 + (first byte of sha256(purchase event id) mod 11) days (10-20 days, same time of
       day; a plan month's id is ``evt-<cus>-subscription:<M>``) if that moment is still inside
       the run; the others stay unpaid at its end. amount = the invoice total = amount +
       round_half_up(amount x tax_rate, minor unit); id ``evt-<cus>-payment-<n>`` (n counts the
       customer's payments in purchase order); no invoice_number key, so a payment settles the
       customer's oldest open invoices (overage invoices are never paid by the demo).
    h. ``guarantee.enrolled`` for the rank-3 customer (a German company migrated from per-seat
       pricing at GUARANTEE_LEGACY = 250.00 EUR a month), at M1-01T00:00:00Z, id
       ``evt-<cus>-guarantee``, start_month M1, 6 months, monthly basis. Its annual commitment's
       share of each month (amount x days / 365) exceeds 250.00, so each close issues a
       guarantee credit note for the difference plus 19% VAT.
    i. ``subscription.started`` on a plan of the demo catalog (``ledger/data/demo-catalog.toml``),
       id ``evt-<cus>-subscription``, at the first day of its first month (T00:00:00Z), that
       day as start_date: rank 9 on Professional (5,000 credits, 25% roll over into the next
       month), ranks 10, 11 and 13 on Starter (1,000 credits, overage at 0.15), all from M1;
       ranks 7 and 8 on Professional from M1+1.
    j. ``refund.issued`` for the rank-17 customer at the run's end minus one hour, id
       ``evt-<cus>-refund``: grant_ref its last pack, credits = 100 x floor(min(the pack's
       credits, the pack credits left at the run's end) / 200), i.e. half of what that pack
       still holds, rounded down to 100.
    Events are sorted by (occurred_at, id); ids are unique.

Customers' month usage U depends only on rules 1-2, not on M; only the times move. Result
for one month: 94,565 credits in all;
cus_001 uses 24,486 (25.9%), the top 5 use 56.2%, the smallest customer (cus_048) 293.

Rule 5 - files
    ``write_demo_inputs`` writes ``events.jsonl`` (one compact JSON object per line, keys in the
    fixed order of the shapes above, UTF-8, "\\n" newlines) and ``usage.csv`` with header
    ``event_id,customer_id,occurred_at,credits`` ("\\n" newlines): the whole run, or with
    ``month`` only the events and usage dated in that month (what ``ledger demo`` imports
    before closing it).

The code follows the rules: ``ledger.demo_trace`` (rules 1-3, the usage),
``ledger.demo_directory`` (rule 4a) and ``ledger.demo_customers`` (rule 4, what the customers
buy); this module assembles the run and writes the files (rule 5). Every name stays importable
from here.
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
    check_funding,
    customer_run,
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
    """The demo run: ``months`` ("YYYY-MM", consecutive, oldest first; ``month`` is the first).

    events: JSON-ready dicts in the JSONL format of docs/design.md §8.2 (rule 4), sorted by
    (occurred_at, id); usage: one UsageRow per trace request and month, sorted by
    (occurred_at, event_id); customers: the 50 customers in rank order.
    """

    month: str
    events: tuple[dict, ...]
    usage: tuple[UsageRow, ...]
    customers: tuple[DemoCustomer, ...]
    months: tuple[str, ...] = ()

    def in_month(self, month: str) -> DemoScenario:
        """The part of the run dated in ``month`` (its events and usage; all the customers)."""
        return DemoScenario(month, tuple(e for e in self.events if e["occurred_at"].startswith(month)),
                            tuple(u for u in self.usage if u.occurred_at.startswith(month)),
                            self.customers, (month,))


def build_demo_scenario(month: str = "2026-10", months: int = 1) -> DemoScenario:
    """Build the demo run of ``months`` months from ``month`` (M1, "YYYY-MM") from the bundled
    trace by rules 1-4 of the module docstring.

    Raises ValueError for a malformed month or a count below 1, or if the trace breaks a rule's
    guarantee (an offset outside [0, 1h), a cost basis or ratio out of range, a customer other
    than the hard-cap one running out of credits). Pure: reads only the bundled trace files and
    the demo catalog's plan fees.
    """
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    calendar = [DemoMonth.parse(month)]
    while len(calendar) < months:
        calendar.append(DemoMonth.parse(calendar[-1].end.strftime("%Y-%m")))
    replayed = [item for m in calendar for item in replay_usage(m.start, m.days)]
    usage_by_customer: dict[str, list[tuple[datetime, int]]] = {}
    for moment, row in replayed:
        usage_by_customer.setdefault(row.customer_id, []).append((moment, row.credits))
    first_end = calendar[0].end
    month_usage = {cid: sum(c for t, c in items if t < first_end) for cid, items in usage_by_customer.items()}

    runs = [customer_run(rank, month_usage.get(customer_id(rank), 0), usage_by_customer.get(customer_id(rank), []),
                         calendar)
            for rank in range(1, CUSTOMER_COUNT + 1)]
    events = [event for run in runs for event in run.events]
    events += payment_events([p for run in runs for p in run.purchases], calendar[-1].end)
    events.append(guarantee_event(calendar[0]))
    check_funding(runs, usage_by_customer, calendar)
    events.sort(key=lambda event: (event["occurred_at"], event["id"]))
    if len({event["id"] for event in events}) != len(events):
        raise ValueError("duplicate event ids")
    return DemoScenario(
        month=month,
        events=tuple(events),
        usage=tuple(row for _, row in replayed),
        customers=tuple(run.customer for run in runs),
        months=tuple(m.month for m in calendar),
    )


# --- files -----------------------------------------------------------------------------------
def write_demo_inputs(scenario: DemoScenario, directory: Path, month: str | None = None) -> tuple[Path, Path]:
    """Write events.jsonl and usage.csv (rule 5) into directory, creating it if needed: the
    whole run, or with ``month`` ("YYYY-MM") only what is dated in it.

    Returns (events_path, usage_path). Existing files of those names are overwritten.
    """
    if month is not None:
        scenario = scenario.in_month(month)
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
