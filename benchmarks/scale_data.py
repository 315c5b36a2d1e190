"""Benchmark data for bench_scale.py: the real Azure LLM trace replayed to N usage events across
M customers over one month, plus the business events that fund them. Deterministic: every file
is a pure function of (N, M, month) and the bundled trace; no randomness, no clock.

Usage (bench_scale.py calls `build` itself; this is for inspecting the data)::

    .venv/bin/python benchmarks/scale_data.py OUT_DIR [--events N] [--customers M] [--month YYYY-MM]

Input
    The two files of ``ledger/data/azure-llm-2023/`` (Microsoft Azure LLM inference trace 2023,
    CC BY 4.0): ``code`` (8,819 requests) then ``conv`` (19,366), T = 28,185 requests in that
    order, request i being row k of file F. Each request keeps its offset s from the first
    timestamp of its file (0 <= s < 1 h, truncated to microseconds) and is priced by the demo's
    rule 1 (`ledger.demo_data.price_request`): ceil(context / 1000) + ceil(generated / 250)
    credits, at least 1.

Replay rule (time shifts)
    Usage event g = 0 .. N-1 is request i = g mod T of replay j = g div T (replay j is the
    j-th copy of the whole trace; 1,000,000 events = 35 full replays and 13,525 requests of a
    36th). With H = the number of hours of month M (744 for October), event g occurs at
    M-01T00:00:00Z + (g mod H) hours + s. So consecutive requests of the trace land in
    consecutive hours, replay j is shifted by whole hours ((j x T) mod H) against replay 0, and
    every event stays inside its hour, hence inside M (about N / H events an hour). Its id is
    ``u-{F}-{k:05d}-r{j:03d}``; occurred_at is written ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The CSV
    (``event_id,customer_id,occurred_at,credits``) is sorted by (occurred_at, event_id).

Assignment to customers (heavy tail)
    M customers ``cus_00001`` .. ranked r = 1..M with Zipf weights 1 / r**1.1 (the demo's
    exponent). Event (F, k, j) gets u = first 8 bytes of sha256(f"{F}:{k}:{j}") / 2**64 and
    goes to the rank whose cumulative weight interval contains u (as the demo's rule 2, with
    the replay index in the hash). For 1,000,000 events and 10,000 customers the top customer
    has 15.2% of the events (151,669), the top 1% of customers (100) 64.9%, and 2 customers
    have none.

Business events (JSONL, sorted by occurred_at, customer.created first, then id); U = a customer's month usage in credits
    - every customer: ``customer.created`` at M-01T00:00Z, USD with tax rate 0, except ranks
      r % 25 == 5 (US sales tax 0.0825) and r % 100 == 50 (EUR, Germany, VAT 0.19);
    - every customer except the hard-capped ones: 500 welcome credits (``credits.granted``,
      zero cost) expiring at (M+1)-01T00:00Z, so the close expires them (breakage in credits);
    - profile by rank:
      * hard cap (r % 100 == 12 and r <= M / 5: 20 customers of 10,000): an annual commitment
        of floor(0.8 U / 10) x 10 credits (at least 10) and nothing else: once it is used up,
        their usage is quarantined (about 20% of their events);
      * pilot (r % 10 == 7): a one-month commitment (term M) of 100 x ceil(1.5 U / 100)
        credits: what is left expires at the close (breakage revenue);
      * top-up (r % 10 == 3 and U >= 1,000): an annual commitment of C = 100 x
        ceil(0.5 U / 100) credits, plus one ``topup.purchased`` of P = 100 x
        ceil((1.3 U - C - 500) / 100) credits for P x 0.02, bought at the next whole hour after
        the usage event that brings the customer's usage to 75% of C + 500, expiring 12 months
        after M-01;
      * annual (everyone else): an annual commitment (term M-01 .. last day of M+11) of
        1000 x ceil(1.2 U / 1000) credits (at least 1,000).
      Commitments are bought at M-01T00:00Z for 0.05 a credit (amounts in major units with two
      decimals); their invoices are issued by the import.
    - ``payment.received`` for each purchase of a customer with r % 3 == 0, 14 days after the
      purchase if that is still inside M, for the invoice total (amount plus tax).
    `build` checks that every customer but the hard-capped ones holds its usage at every
    moment (a grant counting from its occurred_at) and that every hard-capped one with usage
    runs out.
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import csv
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

from ledger.demo_data import (
    DATA_DIR,
    TRACE_FILES,
    ZIPF_EXPONENT,
    _parse_trace_time,
    price_request,
)

WELCOME_CREDITS = 500
COMMITMENT_PRICE = Decimal("0.05")
TOPUP_PRICE = Decimal("0.02")
PAYMENT_DELAY = timedelta(days=14)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class TraceRequest:
    file: str
    k: int
    offset_us: int  # s, microseconds after the first timestamp of its file
    credits: int


@dataclass
class Profile:
    rank: int
    id: str
    kind: str  # "annual", "pilot", "top-up", "hard cap"
    usage: int = 0
    events: int = 0
    granted: int = 0  # every credit granted in the month
    commitment: int = 0
    topup: int = 0
    topup_at: datetime | None = None
    currency: str = "USD"
    tax_rate: str = "0"


@dataclass
class ScaleData:
    """What `build` wrote: paths and the shape of the data."""

    month: str
    events_path: Path
    usage_path: Path
    usage_events: int
    customers: int
    business_events: int
    credits: int
    replays: float
    profiles: list[Profile] = field(repr=False, default_factory=list)

    def by_kind(self, kind: str) -> list[Profile]:
        return [p for p in self.profiles if p.kind == kind]

    def shape(self) -> dict:
        """Counts for the results: events, customers, credits, profiles, heavy tail."""
        used = sorted((p.usage for p in self.profiles), reverse=True)
        events = sorted((p.events for p in self.profiles), reverse=True)
        top1 = max(1, len(events) // 100)
        return {
            "usage_events": self.usage_events,
            "customers": self.customers,
            "business_events": self.business_events,
            "credits": self.credits,
            "replays": self.replays,
            "profiles": {k: len(self.by_kind(k)) for k in ("annual", "pilot", "top-up", "hard cap")},
            "top_customer_events": events[0] if events else 0,
            "top_customer_share": events[0] / self.usage_events if self.usage_events else 0.0,
            "top1pct_share": sum(events[:top1]) / self.usage_events if self.usage_events else 0.0,
            "customers_without_usage": sum(1 for u in used if u == 0),
            "expected_quarantined_credits": sum(p.usage - p.granted for p in self.by_kind("hard cap")
                                                if p.usage > p.granted),
        }


def load_trace() -> list[TraceRequest]:
    """The T requests of the trace, ``code`` then ``conv``, in file order."""
    requests: list[TraceRequest] = []
    for file_key, file_name in TRACE_FILES.items():
        with open(DATA_DIR / file_name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            first = None
            for k, (stamp, context, generated) in enumerate(reader):
                moment = _parse_trace_time(stamp)
                first = first or moment
                offset = (moment - first) // timedelta(microseconds=1)
                if not 0 <= offset < 3_600_000_000:
                    raise ValueError(f"{file_name} row {k}: offset {offset} us outside [0, 1 h)")
                requests.append(TraceRequest(file_key, k, offset, price_request(int(context), int(generated))))
    return requests


def zipf_bounds(customers: int) -> list[float]:
    weights = [1 / r**ZIPF_EXPONENT for r in range(1, customers + 1)]
    total = sum(weights)
    bounds, running = [], 0.0
    for w in weights:
        running += w
        bounds.append(running / total)
    return bounds


def customer_id(rank: int, customers: int) -> str:
    return f"cus_{rank:0{max(5, len(str(customers)))}d}"


def profile_kind(rank: int, customers: int) -> str:
    if rank % 100 == 12 and rank <= customers // 5:
        return "hard cap"
    if rank % 10 == 7:
        return "pilot"
    if rank % 10 == 3:
        return "top-up"  # downgraded to "annual" when U < 1,000
    return "annual"


def _parse_month(month: str) -> tuple[date, int]:
    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, 1), calendar.monthrange(year, mon)[1]


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, m0 = divmod(index, 12)
    return date(year, m0 + 1, min(d.day, calendar.monthrange(year, m0 + 1)[1]))


def _z(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):.2f}"


def _ceil_to(value: Decimal | int, step: int) -> int:
    return -(-int(Decimal(value).to_integral_value(rounding=ROUND_CEILING)) // step) * step


def usage_rows(events: int, customers: int, month: str) -> list[tuple[str, str, str, int]]:
    """(occurred_at, event_id, customer_id, credits) of every usage event, in time order."""
    first, days = _parse_month(month)
    hours = days * 24
    trace = load_trace()
    bounds = zipf_bounds(customers)
    ids = [customer_id(r, customers) for r in range(1, customers + 1)]
    prefix = [f"{first:%Y-%m}-{1 + h // 24:02d}T{h % 24:02d}:" for h in range(hours)]
    last = customers - 1
    rows = []
    t = len(trace)
    for g in range(events):
        j, i = divmod(g, t)
        req = trace[i]
        u = int.from_bytes(hashlib.sha256(f"{req.file}:{req.k}:{j}".encode()).digest()[:8], "big") / 2**64
        rank0 = min(bisect.bisect_right(bounds, u), last)
        sec, micro = divmod(req.offset_us, 1_000_000)
        stamp = f"{prefix[g % hours]}{sec // 60:02d}:{sec % 60:02d}.{micro:06d}Z"
        rows.append((stamp, f"u-{req.file}-{req.k:05d}-r{j:03d}", ids[rank0], req.credits))
    rows.sort()
    return rows


def _parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def build(directory: Path, events: int = 1_000_000, customers: int = 10_000, month: str = "2026-10") -> ScaleData:
    """Write ``events.jsonl`` and ``usage.csv`` into ``directory`` by the rules of the module
    docstring; returns what was written. Raises ValueError if a funding check fails."""
    directory.mkdir(parents=True, exist_ok=True)
    first, days = _parse_month(month)
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    nxt = _add_months(first, 1)
    month_end = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
    rows = usage_rows(events, customers, month)

    profiles = [Profile(r, customer_id(r, customers), profile_kind(r, customers)) for r in range(1, customers + 1)]
    by_id = {p.id: p for p in profiles}
    for _, _, cid, credits in rows:
        p = by_id[cid]
        p.usage += credits
        p.events += 1
    for p in profiles:
        if p.rank % 100 == 50:
            p.currency, p.tax_rate = "EUR", "0.19"
        elif p.rank % 25 == 5:
            p.tax_rate = "0.0825"
        if p.kind == "top-up" and p.usage < 1000:
            p.kind = "annual"
        if p.kind == "hard cap":
            p.commitment = max(10, p.usage * 8 // 10 // 10 * 10)
        elif p.kind == "pilot":
            p.commitment = max(100, _ceil_to(Decimal(p.usage) * Decimal("1.5"), 100))
        elif p.kind == "top-up":
            p.commitment = _ceil_to(Decimal(p.usage) / 2, 100)
            p.topup = _ceil_to(Decimal(p.usage) * Decimal("1.3") - p.commitment - WELCOME_CREDITS, 100)
        else:
            p.commitment = max(1000, _ceil_to(Decimal(p.usage) * Decimal("1.2"), 1000))
        p.granted = p.commitment + p.topup + (0 if p.kind == "hard cap" else WELCOME_CREDITS)

    # top-up times: next whole hour after usage reaches 75% of what was granted at the start
    used: dict[str, int] = {}
    pending = {p.id: Decimal("0.75") * (p.commitment + WELCOME_CREDITS) for p in profiles if p.kind == "top-up"}
    for stamp, _, cid, credits in rows:
        if cid in pending:
            used[cid] = used.get(cid, 0) + credits
            if used[cid] >= pending[cid]:
                moment = _parse_stamp(stamp)
                by_id[cid].topup_at = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
                del pending[cid]
    for cid in pending:  # never reached 75%: cannot happen since 1.3 U > C + 500 ... but keep it safe
        raise ValueError(f"{cid}: usage never reaches 75% of its first grants")
    for p in profiles:
        if p.topup_at is not None and p.topup_at >= month_end:
            raise ValueError(f"{p.id}: top-up at {p.topup_at} is after the month end")

    # funding check: only hard-capped customers run out
    used = {}
    topup_stamp = {p.id: _z(p.topup_at) for p in profiles if p.topup_at is not None}
    short: set[str] = set()
    for stamp, _, cid, credits in rows:
        p = by_id[cid]
        used[cid] = used.get(cid, 0) + credits
        held = p.granted - (p.topup if cid in topup_stamp and stamp < topup_stamp[cid] else 0)
        if used[cid] > held:
            if p.kind != "hard cap":
                raise ValueError(f"{cid} ({p.kind}) runs out of credits at {stamp}")
            short.add(cid)
    for p in profiles:
        if p.kind == "hard cap" and p.usage > p.granted and p.id not in short:
            raise ValueError(f"{p.id}: hard cap never reached")

    business: list[dict] = []
    purchases: list[tuple[datetime, str, Profile, Decimal]] = []
    at0 = _z(start)
    annual_end = _add_months(first, 12) - timedelta(days=1)
    for p in profiles:
        business.append({"id": f"evt-{p.id}-created", "type": "customer.created", "occurred_at": at0,
                         "customer_id": p.id, "name": f"Benchmark customer {p.rank}", "currency": p.currency,
                         "tax_rate": p.tax_rate, "country": "DE" if p.currency == "EUR" else "US"})
        if p.kind != "hard cap":
            business.append({"id": f"evt-{p.id}-promo", "type": "credits.granted", "occurred_at": at0,
                             "customer_id": p.id, "grant_id": f"promo-{p.id}", "credits": WELCOME_CREDITS,
                             "expires_at": _z(month_end), "reason": "welcome credits"})
        amount = p.commitment * COMMITMENT_PRICE
        pilot = p.kind == "pilot"
        eid = f"evt-{p.id}-{'pilot' if pilot else 'commitment'}"
        business.append({"id": eid, "type": "commitment.purchased", "occurred_at": at0, "customer_id": p.id,
                         "commitment_id": f"{'pilot' if pilot else 'com'}-{p.id}", "amount": _money(amount),
                         "credits": p.commitment, "term_start": first.isoformat(),
                         "term_end": (first.replace(day=days) if pilot else annual_end).isoformat()})
        purchases.append((start, eid, p, amount))
        if p.topup:
            assert p.topup_at is not None
            amount = p.topup * TOPUP_PRICE
            expires = _add_months(first, 12)
            business.append({"id": f"evt-{p.id}-topup-1", "type": "topup.purchased", "occurred_at": _z(p.topup_at),
                             "customer_id": p.id, "topup_id": f"top-{p.id}-1", "credits": p.topup,
                             "amount": _money(amount), "expires_at": f"{expires.isoformat()}T00:00:00Z"})
            purchases.append((p.topup_at, f"evt-{p.id}-topup-1", p, amount))
    payments: dict[str, int] = {}
    for at, _, p, amount in purchases:
        if p.rank % 3 or at + PAYMENT_DELAY >= month_end:
            continue
        payments[p.id] = payments.get(p.id, 0) + 1
        total = amount + (amount * Decimal(p.tax_rate)).quantize(CENT, rounding=ROUND_HALF_UP)
        business.append({"id": f"evt-{p.id}-payment-{payments[p.id]}", "type": "payment.received",
                         "occurred_at": _z(at + PAYMENT_DELAY), "customer_id": p.id, "amount": _money(total)})
    business.sort(key=lambda e: (e["occurred_at"], e["type"] != "customer.created", e["id"]))

    events_path = directory / "events.jsonl"
    usage_path = directory / "usage.csv"
    with open(events_path, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in business)
    with open(usage_path, "w", encoding="utf-8", newline="") as fh:
        fh.write("event_id,customer_id,occurred_at,credits\n")
        fh.writelines(f"{eid},{cid},{stamp},{credits}\n" for stamp, eid, cid, credits in rows)
    return ScaleData(month, events_path, usage_path, len(rows), customers, len(business),
                     sum(r[3] for r in rows), round(events / len(load_trace()), 2), profiles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--month", default="2026-10")
    args = parser.parse_args(argv)
    data = build(args.out, args.events, args.customers, args.month)
    print(json.dumps(data.shape(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
