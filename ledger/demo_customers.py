"""The demo's customers and what they buy: rule 4 of the demo scenario, for one month M.

The full rules are the docstring of ``ledger.demo_data``. Here: the 50 fictional customers
(``customer.created`` and the welcome ``credits.granted``), the annual and pilot commitments,
the top-ups bought by the 75% auto-recharge rule (and the hard-cap customer's small one), the
payments that fall inside M, and the guarantee enrolment. Events are JSON-ready dicts in the
JSONL format of docs/design.md §8.2; amounts are decimal strings with 2 decimals. Standard
library only; every value is a pure function of the month and the customers' usage.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from ledger.demo_trace import customer_id

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


Purchase = tuple[datetime, str, str, Decimal, Decimal]
"""A purchase: (occurred_at, event id, customer id, amount before tax, tax rate)."""


@dataclass(frozen=True)
class DemoMonth:
    """The calendar of the demo month M: month "YYYY-MM"; first_day and last_day (dates); days
    in M; start = M-01T00:00:00Z and end = (M+1)-01T00:00:00Z (aware, UTC)."""

    month: str
    first_day: date
    last_day: date
    days: int
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, month: str) -> DemoMonth:
        """The calendar of ``month``; raises ValueError unless it is "YYYY-MM" (year >= 1)."""
        first_day = _parse_month(month)
        days = calendar.monthrange(first_day.year, first_day.month)[1]
        next_month = _add_months(first_day, 1)
        return cls(month, first_day, first_day.replace(day=days), days,
                   datetime(first_day.year, first_day.month, 1, tzinfo=timezone.utc),
                   datetime(next_month.year, next_month.month, 1, tzinfo=timezone.utc))

    @property
    def commitment_time(self) -> datetime:
        """M-01T09:00:00Z: when the commitments (annual and pilot) are bought."""
        return self.start + COMMITMENT_PURCHASE_OFFSET


@dataclass(frozen=True)
class CustomerMonth:
    """One customer's part of month M: its DemoCustomer; its events (customer.created, the
    welcome credits, its purchases, in that order); its purchases; its grants as
    (occurred_at, credits), the welcome credits first."""

    customer: DemoCustomer
    events: list[dict]
    purchases: list[Purchase]
    grants: list[tuple[datetime, int]]


def _opening_events(cid: str, rank: int, m: DemoMonth) -> list[dict]:
    """Rules 4a and 4b: the customer's customer.created and welcome credits.granted events."""
    name, address, currency, tax_rate = _CUSTOMER_DIRECTORY[rank - 1]
    return [
        {
            "id": f"evt-{cid}-created",
            "type": "customer.created",
            "occurred_at": _format_time(m.start),
            "customer_id": cid,
            "name": name,
            "currency": currency,
            "tax_rate": tax_rate,
            "address": list(address),
            "email": f"billing@{_slug(name)}.example",
            **({"country": "DE", "locale": "de_DE"} if address[-1] == "Germany" else {"country": "US"}),
        },
        {
            "id": f"evt-{cid}-promo",
            "type": "credits.granted",
            "occurred_at": _format_time(m.start),
            "customer_id": cid,
            "grant_id": f"promo-{cid}-welcome",
            "credits": PROMO_CREDITS,
            "expires_at": _format_time(m.end),
            "reason": PROMO_REASON,
        },
    ]


def _annual_commitment(rank: int, cid: str, used: int, m: DemoMonth) -> tuple[dict, Decimal, int]:
    """Rule 4c: (commitment.purchased event, amount, credits) of an annual commitment; raises
    ValueError if the credits are not 8-14x the month usage or the cost basis is out of range."""
    ratio, price = COMMITMENT_TERMS[rank]
    credits = int(_round_half_up(Decimal(used * ratio), Decimal(COMMITMENT_CREDIT_STEP)))
    amount = _round_half_up(credits * price, AMOUNT_STEP)
    if not COMMITMENT_MIN_RATIO * used <= credits <= COMMITMENT_MAX_RATIO * used:
        raise ValueError(f"{cid}: commitment {credits} not 8-14x usage {used}")
    if not COST_BASIS_MIN <= amount / credits <= COST_BASIS_MAX:
        raise ValueError(f"{cid}: cost basis {amount / credits} out of range")
    term_end = _add_months(m.first_day, 12) - timedelta(days=1)
    event = {
        "id": f"evt-{cid}-commitment",
        "type": "commitment.purchased",
        "occurred_at": _format_time(m.commitment_time),
        "customer_id": cid,
        "commitment_id": f"com-{cid}-{m.month}",
        "amount": _money(amount),
        "credits": credits,
        "term_start": m.first_day.isoformat(),
        "term_end": term_end.isoformat(),
    }
    return event, amount, credits


def _pilot_commitment(cid: str, used: int, m: DemoMonth) -> tuple[dict, Decimal, int]:
    """Rule 4d: (commitment.purchased event, amount, credits) of a one-month pilot; raises
    ValueError if the cost basis is out of range."""
    credits = int(_round_half_up(PILOT_RATIO * used, Decimal(PILOT_CREDIT_STEP)))
    amount = _round_half_up(credits * PILOT_PRICE, AMOUNT_STEP)
    if not COST_BASIS_MIN <= amount / credits <= COST_BASIS_MAX:
        raise ValueError(f"{cid}: cost basis {amount / credits} out of range")
    event = {
        "id": f"evt-{cid}-pilot",
        "type": "commitment.purchased",
        "occurred_at": _format_time(m.commitment_time),
        "customer_id": cid,
        "commitment_id": f"pilot-{cid}-{m.month}",
        "amount": _money(amount),
        "credits": credits,
        "term_start": m.first_day.isoformat(),
        "term_end": m.last_day.isoformat(),
    }
    return event, amount, credits


def _topup_plan(rank: int, used: int) -> tuple[str, list[tuple[int, Decimal]]]:
    """Rules 4e and 4f: (profile, packs as (credits, amount) in purchase order) of a customer
    without a commitment; no packs for a customer the welcome credits cover."""
    if rank == HARD_CAP_RANK:
        return "hard cap", [(HARD_CAP_TOPUP_CREDITS, HARD_CAP_TOPUP_PRICE)]
    if used < PROMO_CREDITS:
        return "promotional only", []
    needed = TOPUP_COVERAGE * used - PROMO_CREDITS  # exact Decimal
    packs_needed = (needed / TOPUP_PACK_CREDITS).to_integral_value(ROUND_CEILING)
    pack_count = max(1, int(packs_needed))
    packs = [(TOPUP_PACK_CREDITS, TOPUP_PACK_PRICE)]
    if pack_count > 1:
        rest = pack_count - 1
        packs.append((rest * TOPUP_PACK_CREDITS, rest * TOPUP_PACK_PRICE))
    return "top-up", packs


def _topup_event(cid: str, n: int, credits: int, amount: Decimal, at: datetime) -> dict:
    """Rule 4e: the customer's n-th topup.purchased, expiring 12 months after its date."""
    return {
        "id": f"evt-{cid}-topup-{n}",
        "type": "topup.purchased",
        "occurred_at": _format_time(at),
        "customer_id": cid,
        "topup_id": f"top-{cid}-{n}",
        "credits": credits,
        "amount": _money(amount),
        "expires_at": _format_time(
            datetime.combine(_add_months(at.date(), 12), datetime.min.time(), timezone.utc)
        ),
    }


def customer_month(rank: int, month_usage: dict[str, int],
                   usage_by_customer: dict[str, list[tuple[datetime, int]]], m: DemoMonth) -> CustomerMonth:
    """Rules 4a-4f for the customer of ``rank`` (1..50): its events, purchases and grants in M.

    month_usage: customer id -> U, the month usage in credits (absent: 0); usage_by_customer:
    customer id -> its usage as (occurred_at, credits) in time order (for the top-ups' times).
    Raises ValueError when a rule's guarantee breaks (see the helpers).
    """
    cid = customer_id(rank)
    name, _, currency, tax_rate = _CUSTOMER_DIRECTORY[rank - 1]
    used = month_usage.get(cid, 0)
    events = _opening_events(cid, rank, m)
    purchases: list[Purchase] = []
    grants = [(m.start, PROMO_CREDITS)]

    def add_purchase(event: dict, amount: Decimal, credits: int, at: datetime) -> None:
        events.append(event)
        purchases.append((at, event["id"], cid, amount, Decimal(tax_rate)))
        grants.append((at, credits))

    if rank in COMMITMENT_TERMS:
        profile = "annual commitment"
        event, amount, credits = _annual_commitment(rank, cid, used, m)
        add_purchase(event, amount, credits, m.commitment_time)
    elif rank in PILOT_RANKS:
        profile = "pilot commitment"
        event, amount, credits = _pilot_commitment(cid, used, m)
        add_purchase(event, amount, credits, m.commitment_time)
    else:
        profile, packs = _topup_plan(rank, used)
        for n, (credits, amount) in enumerate(packs, start=1):
            granted = sum(c for _, c in grants)
            at = _recharge_time(cid, usage_by_customer[cid], granted, m.end)
            add_purchase(_topup_event(cid, n, credits, amount, at), amount, credits, at)
    customer = DemoCustomer(id=cid, rank=rank, name=name, profile=profile, currency=currency, tax_rate=tax_rate,
                            expected_credits=used, granted_credits=sum(c for _, c in grants))
    return CustomerMonth(customer, events, purchases, grants)


def payment_events(purchases: list[Purchase], month_end: datetime) -> list[dict]:
    """Rule 4g: a payment.received for every purchase whose payment date (after its hashed delay
    of 10-20 days) falls before month_end, numbered per customer in purchase order."""
    payments: list[dict] = []
    payment_counts: dict[str, int] = {}
    for at, purchase_id, cid, amount, tax_rate in sorted(purchases, key=lambda item: (item[0], item[1])):
        delay = PAYMENT_MIN_DELAY_DAYS + hashlib.sha256(purchase_id.encode()).digest()[0] % (
            PAYMENT_MAX_DELAY_DAYS - PAYMENT_MIN_DELAY_DAYS + 1
        )
        if at + timedelta(days=delay) >= month_end:
            continue  # would be paid next month
        total = amount + _round_half_up(amount * tax_rate, _CENT)
        payment_counts[cid] = payment_counts.get(cid, 0) + 1
        payments.append(
            {
                "id": f"evt-{cid}-payment-{payment_counts[cid]}",
                "type": "payment.received",
                "occurred_at": _format_time(at + timedelta(days=delay)),
                "customer_id": cid,
                "amount": _money(total),
            }
        )
    return payments


def guarantee_event(m: DemoMonth) -> dict:
    """Rule 4h: the rank-3 customer's guarantee.enrolled, from M for 6 months, monthly basis."""
    guaranteed = customer_id(GUARANTEE_RANK)
    return {
        "id": f"evt-{guaranteed}-guarantee",
        "type": "guarantee.enrolled",
        "occurred_at": _format_time(m.start),
        "customer_id": guaranteed,
        "legacy_monthly_amount": GUARANTEE_LEGACY,
        "start_month": m.month,
        "months": 6,
        "basis": "monthly",
    }


def check_funding(
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

