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
"""

from __future__ import annotations

import bisect
import calendar
import csv
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

__all__ = [
    "DemoCustomer",
    "DemoScenario",
    "UsageRow",
    "assign_rank",
    "build_demo_scenario",
    "price_request",
    "write_demo_inputs",
]

# --- the trace -------------------------------------------------------------------------------
DATA_DIR = Path(__file__).parent / "data" / "azure-llm-2023"
TRACE_FILES: dict[str, str] = {
    "code": "AzureLLMInferenceTrace_code.csv",
    "conv": "AzureLLMInferenceTrace_conv.csv",
}

# --- rule 1: pricing -------------------------------------------------------------------------
CONTEXT_TOKENS_PER_CREDIT = 1000
GENERATED_TOKENS_PER_CREDIT = 250
MIN_CREDITS_PER_REQUEST = 1

# --- rule 2: assignment ----------------------------------------------------------------------
CUSTOMER_COUNT = 50
ZIPF_EXPONENT = 1.1
ZIPF_WEIGHTS: tuple[float, ...] = tuple(1 / r**ZIPF_EXPONENT for r in range(1, CUSTOMER_COUNT + 1))


def _cumulative_bounds() -> tuple[float, ...]:
    total = sum(ZIPF_WEIGHTS)
    running = 0.0
    bounds = []
    for weight in ZIPF_WEIGHTS:
        running += weight
        bounds.append(running / total)
    return tuple(bounds)


CUMULATIVE_BOUNDS: tuple[float, ...] = _cumulative_bounds()  # C_1 .. C_50

# --- rule 4: business events -----------------------------------------------------------------
PROMO_CREDITS = 500
PROMO_REASON = "welcome credits"
COMMITMENT_PURCHASE_OFFSET = timedelta(hours=9)  # M-01T09:00:00Z
# rank -> (ratio of one month's usage, price per credit)
COMMITMENT_TERMS: dict[int, tuple[int, Decimal]] = {
    1: (12, Decimal("0.042")),
    2: (10, Decimal("0.045")),
    3: (11, Decimal("0.048")),
    4: (9, Decimal("0.050")),
    5: (13, Decimal("0.052")),
    6: (10, Decimal("0.058")),
}
COMMITMENT_CREDIT_STEP = 5000
COMMITMENT_MIN_RATIO, COMMITMENT_MAX_RATIO = 8, 14
COST_BASIS_MIN, COST_BASIS_MAX = Decimal("0.04"), Decimal("0.06")
PILOT_RANKS = (7, 8)
PILOT_RATIO = Decimal("1.5")
PILOT_CREDIT_STEP = 500
PILOT_PRICE = Decimal("0.05")
AMOUNT_STEP = Decimal("100")
TOPUP_PACK_CREDITS = 1000
TOPUP_PACK_PRICE = Decimal("20.00")
TOPUP_COVERAGE = Decimal("1.3")
TOPUP_TRIGGER = Decimal("0.75")  # buy when usage reaches 75% of the credits granted so far
HARD_CAP_RANK = 12
GUARANTEE_RANK = 3  # Kestrelwerk Bioinformatik GmbH (EUR, 19% VAT, annual commitment)
GUARANTEE_LEGACY = "250.00"  # EUR a month on its former per-seat plan
HARD_CAP_TOPUP_CREDITS = 500
HARD_CAP_TOPUP_PRICE = Decimal("10.00")
HARD_CAP_MIN_EXCESS = Decimal("1.2")
PAYMENT_MIN_DELAY_DAYS, PAYMENT_MAX_DELAY_DAYS = 10, 20

# rank -> (name, address lines, currency, tax_rate). Fictional companies; .example emails.
_CUSTOMER_DIRECTORY: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("Acme Robotics", ("410 Foundry Way", "Portland, OR 97209", "USA"), "USD", "0"),
    ("Tumbleweed Analytics", ("2200 Mesa Ridge Blvd", "Austin, TX 78701", "USA"), "USD", "0.0825"),
    ("Kestrelwerk Bioinformatik GmbH", ("Lindenhofstrasse 14", "80331 München", "Germany"),
     "EUR", "0.19"),
    ("Halcyon Harbor Legal", ("88 Pier Street, Suite 300", "Wilmington, DE 19801", "USA"),
     "USD", "0"),
    ("Quillfeather Publishing", ("1501 Alder Lane", "Sacramento, CA 95814", "USA"),
     "USD", "0.0725"),
    ("Tidewell Health Records", ("75 Lighthouse Road", "Portsmouth, NH 03801", "USA"), "USD", "0"),
    ("Copperleaf Claims Services", ("19 Beacon Court", "Boston, MA 02108", "USA"), "USD", "0.0625"),
    ("Larkspur Learning Co.", ("640 Prairie Avenue", "Bozeman, MT 59715", "USA"), "USD", "0"),
    ("Ferncastle Logistics", ("3300 Depot Street", "Anchorage, AK 99501", "USA"), "USD", "0"),
    ("Moonrake Games", ("912 Chestnut Row", "Philadelphia, PA 19107", "USA"), "USD", "0.06"),
    ("Juniper Fold Design", ("27 Quarry Hill", "Eugene, OR 97401", "USA"), "USD", "0"),
    ("Saltmarsh Support Desk", ("5 Cannery Lane", "Dover, DE 19901", "USA"), "USD", "0"),
    ("Oakhaven Property Tools", ("1180 Orchard Drive", "Bend, OR 97701", "USA"), "USD", "0"),
    ("Marigold Tutoring", ("450 Monument Circle", "Indianapolis, IN 46204", "USA"), "USD", "0.07"),
    ("Pinecrest Field Services", ("62 Timberline Road", "Missoula, MT 59802", "USA"), "USD", "0"),
    ("Atelier Verlaine SAS", ("12 rue des Tanneurs", "69002 Lyon", "France"), "EUR", "0.20"),
    ("Brambleway Translation", ("301 Ferry Street", "Manchester, NH 03101", "USA"), "USD", "0"),
    ("Ironbark Construction Software", ("7700 Girder Avenue", "Salem, OR 97301", "USA"),
     "USD", "0"),
    ("Sunfield Agritech", ("1400 Harvest Parkway", "Dallas, TX 75201", "USA"), "USD", "0.0825"),
    ("Wrenfield Marketing", ("230 Market Square", "Newark, DE 19711", "USA"), "USD", "0"),
    ("Driftwood Media Lab", ("18 Seawall Street", "Juneau, AK 99801", "USA"), "USD", "0"),
    ("Alderpoint Finance Tools", ("990 Ledger Lane", "Concord, NH 03301", "USA"), "USD", "0"),
    ("Bergkiesel Reisedaten GmbH", ("Mariahilfer Gasse 31", "1060 Wien", "Austria"), "EUR", "0.20"),
    ("Cinderpath Security", ("4410 Ember Road", "Helena, MT 59601", "USA"), "USD", "0"),
    ("Hollowbrook Recruiting", ("58 Millrace Drive", "Medford, OR 97501", "USA"), "USD", "0"),
    ("Seaglass Retail Insights", ("2750 Tidepool Way", "San Diego, CA 92101", "USA"),
     "USD", "0.0725"),
    ("Thistledown Research", ("116 Heather Street", "Nashua, NH 03060", "USA"), "USD", "0"),
    ("Gullwing Travel Desk", ("600 Harbor Loop", "Ketchikan, AK 99901", "USA"), "USD", "0"),
    ("Rosehip Dental Software", ("84 Briar Avenue", "Lewes, DE 19958", "USA"), "USD", "0"),
    ("Starling Creek Nonprofit Services", ("2020 Creekside Drive", "Corvallis, OR 97330", "USA"),
     "USD", "0"),
    ("Quarrystone Data", ("350 Granite Street", "Butte, MT 59701", "USA"), "USD", "0"),
    ("Lanternfish Studios", ("71 Deepwater Row", "Keene, NH 03431", "USA"), "USD", "0"),
    ("Meadowlark Insurance Tools", ("1225 Grassland Road", "Billings, MT 59101", "USA"),
     "USD", "0"),
    ("Cobblestone Civic Apps", ("9 Town Hall Plaza", "Ashland, OR 97520", "USA"), "USD", "0"),
    ("Foxglove Clinical Notes", ("440 Apothecary Lane", "Milford, DE 19963", "USA"), "USD", "0"),
    ("Windrow Farm Software", ("3100 Haybale Road", "Great Falls, MT 59401", "USA"), "USD", "0"),
    ("Harrowgate Archives", ("17 Vellum Court", "Dover, NH 03820", "USA"), "USD", "0"),
    ("Kindlewood Events", ("505 Hearth Street", "Raleigh, NC 27601", "USA"), "USD", "0.0475"),
    ("Pebblebank Accounting", ("62 Riverstone Drive", "Hillsboro, OR 97123", "USA"), "USD", "0"),
    ("Nightjar Audio", ("808 Dusk Avenue", "Fairbanks, AK 99701", "USA"), "USD", "0"),
    ("Willowmere Architecture", ("1900 Drafting Way", "Lebanon, NH 03766", "USA"), "USD", "0"),
    ("Rushlight Nonprofit Tech", ("33 Candle Street", "Kalispell, MT 59901", "USA"), "USD", "0"),
    ("Gannet Point Surveys", ("270 Cliffside Road", "Newport, OR 97365", "USA"), "USD", "0"),
    ("Sorrel & Vine Catering Tech", ("1315 Vineyard Lane", "Smyrna, DE 19977", "USA"), "USD", "0"),
    ("Heronsgate Compliance", ("44 Wetland Way", "Sitka, AK 99835", "USA"), "USD", "0"),
    ("Sparrowhill Schools", ("612 Schoolhouse Road", "Laconia, NH 03246", "USA"), "USD", "0"),
    ("Mossbank Veterinary Systems", ("87 Paddock Lane", "Livingston, MT 59047", "USA"), "USD", "0"),
    ("Kettlebrook Coffee Ops", ("2 Roastery Row", "Astoria, OR 97103", "USA"), "USD", "0"),
    ("Ashgrove Civil Engineering", ("1600 Bridgeworks Avenue", "Seaford, DE 19973", "USA"),
     "USD", "0"),
    ("Featherstone Legal Aid Software", ("95 Courthouse Square", "Kodiak, AK 99615", "USA"),
     "USD", "0"),
)

_CENT = Decimal("0.01")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


# --- public data types -----------------------------------------------------------------------
@dataclass(frozen=True)
class UsageRow:
    """One metered request priced into credits: a row of usage.csv.

    event_id: f"u-{F}-{k:05d}"; customer_id: "cus_001".."cus_050"; occurred_at: RFC 3339 UTC,
    "YYYY-MM-DDTHH:MM:SS.ffffffZ"; credits: int, >= 1 (rule 1).
    """

    event_id: str
    customer_id: str
    occurred_at: str
    credits: int


@dataclass(frozen=True)
class DemoCustomer:
    """A demo customer with its profile and the month's expected figures.

    profile: "annual commitment", "pilot commitment", "top-up", "hard cap" or
    "promotional only"; tax_rate: decimal string as in customer.created; expected_credits: the
    month usage U in credits (rules 1-3); granted_credits: every credit granted to it in the
    month (welcome, commitment and top-ups). Only the "hard cap" customer has
    expected_credits > granted_credits.
    """

    id: str
    rank: int
    name: str
    profile: str
    currency: str
    tax_rate: str
    expected_credits: int
    granted_credits: int


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


# --- rules as functions ----------------------------------------------------------------------
def price_request(context_tokens: int, generated_tokens: int) -> int:
    """Rule 1: credits (int, >= 1) for a request's context and generated token counts."""
    credits = -(-context_tokens // CONTEXT_TOKENS_PER_CREDIT) + -(
        -generated_tokens // GENERATED_TOKENS_PER_CREDIT
    )
    return max(MIN_CREDITS_PER_REQUEST, credits)


def assign_rank(file_key: str, k: int) -> int:
    """Rule 2: the rank (1..50) of the customer owning request k (0-based) of file "code"/"conv"."""
    digest = hashlib.sha256(f"{file_key}:{k}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return min(bisect.bisect_right(CUMULATIVE_BOUNDS, u), CUSTOMER_COUNT - 1) + 1


def customer_id(rank: int) -> str:
    return f"cus_{rank:03d}"


def _parse_trace_time(text: str) -> datetime:
    """Trace TIMESTAMP (7 fractional digits, no zone) -> aware UTC, truncated to microseconds."""
    whole, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(whole)  # "YYYY-MM-DD HH:MM:SS"
    micro = int((fraction + "000000")[:6])
    return parsed.replace(microsecond=micro, tzinfo=timezone.utc)


def _format_usage_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def _format_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def _round_half_up(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def _money(value: Decimal) -> str:
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):.2f}"


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _parse_month(month: str) -> date:
    match = _MONTH_RE.match(month)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("&", "and")).strip("-")


# --- building --------------------------------------------------------------------------------
def _replay_usage(month_start: datetime, days: int) -> list[tuple[datetime, UsageRow]]:
    rows: list[tuple[datetime, UsageRow]] = []
    for file_key, file_name in TRACE_FILES.items():
        with open(DATA_DIR / file_name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            if header != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
                raise ValueError(f"{file_name}: unexpected header {header}")
            first: datetime | None = None
            for k, (stamp, context, generated) in enumerate(reader):
                trace_time = _parse_trace_time(stamp)
                if first is None:
                    first = trace_time
                s = trace_time - first
                if not timedelta(0) <= s < timedelta(hours=1):
                    raise ValueError(f"{file_name} row {k}: offset {s} outside [0, 1h)")
                moment = month_start + timedelta(days=k % days, hours=(k // days) % 24) + s
                rows.append(
                    (
                        moment,
                        UsageRow(
                            event_id=f"u-{file_key}-{k:05d}",
                            customer_id=customer_id(assign_rank(file_key, k)),
                            occurred_at=_format_usage_time(moment),
                            credits=price_request(int(context), int(generated)),
                        ),
                    )
                )
    rows.sort(key=lambda item: (item[0], item[1].event_id))
    return rows


def _next_hour_after(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _recharge_time(
    cid: str, usage: list[tuple[datetime, int]], granted_so_far: int, month_end: datetime
) -> datetime:
    """Next whole hour after the usage event bringing usage to >= 75% of granted_so_far."""
    threshold = TOPUP_TRIGGER * granted_so_far
    used = 0
    for moment, credits in usage:
        used += credits
        if used >= threshold:
            when = _next_hour_after(moment)
            if when >= month_end:
                raise ValueError(f"{cid}: top-up at {when.isoformat()} is after the month end")
            return when
    raise ValueError(f"{cid}: usage never reaches {threshold} credits, no top-up due")


def build_demo_scenario(month: str = "2026-10") -> DemoScenario:
    """Build the demo month M from the bundled trace by rules 1-4 of the module docstring.

    month: "YYYY-MM". Raises ValueError for a malformed month, or if the trace breaks a rule's
    guarantee (an offset outside [0, 1h), a cost basis or ratio out of range, a customer other
    than the hard-cap one running out of credits). Pure: reads only the bundled trace files.
    """
    first_day = _parse_month(month)
    days = calendar.monthrange(first_day.year, first_day.month)[1]
    last_day = first_day.replace(day=days)
    month_start = datetime(first_day.year, first_day.month, 1, tzinfo=timezone.utc)
    next_month = _add_months(first_day, 1)
    month_end = datetime(next_month.year, next_month.month, 1, tzinfo=timezone.utc)

    replayed = _replay_usage(month_start, days)
    usage_by_customer: dict[str, list[tuple[datetime, int]]] = {}
    for moment, row in replayed:
        usage_by_customer.setdefault(row.customer_id, []).append((moment, row.credits))
    month_usage = {cid: sum(c for _, c in items) for cid, items in usage_by_customer.items()}

    events: list[dict] = []
    # (occurred_at, event id, customer id, currency amount, tax rate) of every purchase
    purchases: list[tuple[datetime, str, str, Decimal, Decimal]] = []
    grants: dict[str, list[tuple[datetime, int]]] = {}
    customers: list[DemoCustomer] = []

    promo_expiry = _format_time(month_end)
    commitment_time = month_start + COMMITMENT_PURCHASE_OFFSET
    commitment_at = _format_time(commitment_time)

    for rank in range(1, CUSTOMER_COUNT + 1):
        cid = customer_id(rank)
        name, address, currency, tax_rate = _CUSTOMER_DIRECTORY[rank - 1]
        used = month_usage.get(cid, 0)
        events.append(
            {
                "id": f"evt-{cid}-created",
                "type": "customer.created",
                "occurred_at": _format_time(month_start),
                "customer_id": cid,
                "name": name,
                "currency": currency,
                "tax_rate": tax_rate,
                "address": list(address),
                "email": f"billing@{_slug(name)}.example",
                **({"country": "DE", "locale": "de_DE"} if address[-1] == "Germany" else {"country": "US"}),
            }
        )
        events.append(
            {
                "id": f"evt-{cid}-promo",
                "type": "credits.granted",
                "occurred_at": _format_time(month_start),
                "customer_id": cid,
                "grant_id": f"promo-{cid}-welcome",
                "credits": PROMO_CREDITS,
                "expires_at": promo_expiry,
                "reason": PROMO_REASON,
            }
        )
        customer_grants = [(month_start, PROMO_CREDITS)]

        def add_purchase(event: dict, amount: Decimal, credits: int, at: datetime) -> None:
            events.append(event)
            purchases.append((at, event["id"], cid, amount, Decimal(tax_rate)))
            customer_grants.append((at, credits))

        if rank in COMMITMENT_TERMS:
            profile = "annual commitment"
            ratio, price = COMMITMENT_TERMS[rank]
            credits = int(_round_half_up(Decimal(used * ratio), Decimal(COMMITMENT_CREDIT_STEP)))
            amount = _round_half_up(credits * price, AMOUNT_STEP)
            if not COMMITMENT_MIN_RATIO * used <= credits <= COMMITMENT_MAX_RATIO * used:
                raise ValueError(f"{cid}: commitment {credits} not 8-14x usage {used}")
            if not COST_BASIS_MIN <= amount / credits <= COST_BASIS_MAX:
                raise ValueError(f"{cid}: cost basis {amount / credits} out of range")
            term_end = _add_months(first_day, 12) - timedelta(days=1)
            at = commitment_time
            add_purchase(
                {
                    "id": f"evt-{cid}-commitment",
                    "type": "commitment.purchased",
                    "occurred_at": commitment_at,
                    "customer_id": cid,
                    "commitment_id": f"com-{cid}-{month}",
                    "amount": _money(amount),
                    "credits": credits,
                    "term_start": first_day.isoformat(),
                    "term_end": term_end.isoformat(),
                },
                amount,
                credits,
                at,
            )
        elif rank in PILOT_RANKS:
            profile = "pilot commitment"
            credits = int(_round_half_up(PILOT_RATIO * used, Decimal(PILOT_CREDIT_STEP)))
            amount = _round_half_up(credits * PILOT_PRICE, AMOUNT_STEP)
            if not COST_BASIS_MIN <= amount / credits <= COST_BASIS_MAX:
                raise ValueError(f"{cid}: cost basis {amount / credits} out of range")
            at = commitment_time
            add_purchase(
                {
                    "id": f"evt-{cid}-pilot",
                    "type": "commitment.purchased",
                    "occurred_at": commitment_at,
                    "customer_id": cid,
                    "commitment_id": f"pilot-{cid}-{month}",
                    "amount": _money(amount),
                    "credits": credits,
                    "term_start": first_day.isoformat(),
                    "term_end": last_day.isoformat(),
                },
                amount,
                credits,
                at,
            )
        else:
            if rank == HARD_CAP_RANK:
                profile = "hard cap"
                packs = [(HARD_CAP_TOPUP_CREDITS, HARD_CAP_TOPUP_PRICE)]
            elif used >= PROMO_CREDITS:
                profile = "top-up"
                needed = TOPUP_COVERAGE * used - PROMO_CREDITS  # exact Decimal
                packs_needed = (needed / TOPUP_PACK_CREDITS).to_integral_value(ROUND_CEILING)
                pack_count = max(1, int(packs_needed))
                packs = [(TOPUP_PACK_CREDITS, TOPUP_PACK_PRICE)]
                if pack_count > 1:
                    rest = pack_count - 1
                    packs.append((rest * TOPUP_PACK_CREDITS, rest * TOPUP_PACK_PRICE))
            else:
                profile = "promotional only"
                packs = []
            for n, (credits, amount) in enumerate(packs, start=1):
                granted = sum(c for _, c in customer_grants)
                at = _recharge_time(cid, usage_by_customer[cid], granted, month_end)
                add_purchase(
                    {
                        "id": f"evt-{cid}-topup-{n}",
                        "type": "topup.purchased",
                        "occurred_at": _format_time(at),
                        "customer_id": cid,
                        "topup_id": f"top-{cid}-{n}",
                        "credits": credits,
                        "amount": _money(amount),
                        "expires_at": _format_time(
                            datetime.combine(
                                _add_months(at.date(), 12), datetime.min.time(), timezone.utc
                            )
                        ),
                    },
                    amount,
                    credits,
                    at,
                )

        grants[cid] = customer_grants
        customers.append(
            DemoCustomer(
                id=cid,
                rank=rank,
                name=name,
                profile=profile,
                currency=currency,
                tax_rate=tax_rate,
                expected_credits=used,
                granted_credits=sum(c for _, c in customer_grants),
            )
        )

    # Payments: every purchase whose payment date (after its hashed delay) falls inside M.
    purchases.sort(key=lambda item: (item[0], item[1]))
    payment_counts: dict[str, int] = {}
    for at, purchase_id, cid, amount, tax_rate in purchases:
        delay = PAYMENT_MIN_DELAY_DAYS + hashlib.sha256(purchase_id.encode()).digest()[0] % (
            PAYMENT_MAX_DELAY_DAYS - PAYMENT_MIN_DELAY_DAYS + 1
        )
        if at + timedelta(days=delay) >= month_end:
            continue  # would be paid next month
        total = amount + _round_half_up(amount * tax_rate, _CENT)
        payment_counts[cid] = payment_counts.get(cid, 0) + 1
        events.append(
            {
                "id": f"evt-{cid}-payment-{payment_counts[cid]}",
                "type": "payment.received",
                "occurred_at": _format_time(at + timedelta(days=delay)),
                "customer_id": cid,
                "amount": _money(total),
            }
        )

    guaranteed = customer_id(GUARANTEE_RANK)
    events.append(
        {
            "id": f"evt-{guaranteed}-guarantee",
            "type": "guarantee.enrolled",
            "occurred_at": _format_time(month_start),
            "customer_id": guaranteed,
            "legacy_monthly_amount": GUARANTEE_LEGACY,
            "start_month": month,
            "months": 6,
            "basis": "monthly",
        }
    )
    _check_funding(customers, usage_by_customer, grants)
    events.sort(key=lambda event: (event["occurred_at"], event["id"]))
    if len({event["id"] for event in events}) != len(events):
        raise ValueError("duplicate event ids")
    return DemoScenario(
        month=month,
        events=tuple(events),
        usage=tuple(row for _, row in replayed),
        customers=tuple(customers),
    )


def _check_funding(
    customers: list[DemoCustomer],
    usage: dict[str, list[tuple[datetime, int]]],
    grants: dict[str, list[tuple[datetime, int]]],
) -> None:
    """Rule 4f: only the hard-cap customer runs out, and it does so by a clear margin."""
    for customer in customers:
        if customer.rank == HARD_CAP_RANK:
            if customer.expected_credits < HARD_CAP_MIN_EXCESS * customer.granted_credits:
                raise ValueError(f"{customer.id}: hard cap not exceeded by 20%")
            continue
        if customer.profile == "promotional only" and customer.expected_credits >= PROMO_CREDITS:
            raise ValueError(f"{customer.id}: needs a top-up")
        schedule = sorted(grants[customer.id])
        available = used = index = 0
        for moment, credits in usage.get(customer.id, []):
            while index < len(schedule) and schedule[index][0] <= moment:
                available += schedule[index][1]
                index += 1
            used += credits
            if used > available:
                raise ValueError(f"{customer.id} runs out of credits at {moment.isoformat()}")


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
