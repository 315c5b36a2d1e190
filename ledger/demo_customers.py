"""The demo's customers and what they buy: rule 4 of the demo scenario, over the months of the run.

The full rules are the docstring of ``ledger.demo_data``. Here: the 50 fictional customers
(``customer.created`` and the welcome ``credits.granted``), the annual and pilot commitments,
the plan subscriptions, the top-ups bought by the 75% auto-recharge rule (and the hard-cap
customer's small ones), the refund, the payments that fall inside the run, and the guarantee
enrolment. Events are JSON-ready dicts in the JSONL format of docs/design.md §8.2; amounts are
decimal strings with the currency's decimals. Standard library only; every value is a pure
function of the months, the customers' usage and the demo catalog's plan fees.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

from ledger.demo_directory import COUNTRY_LOCALES, CUSTOMER_DIRECTORY
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
YEN_PER_DOLLAR = 150  # a JPY commitment is priced at the USD price per credit x 150, to 10,000 yen
YEN_AMOUNT_STEP = Decimal("10000")
COMMITMENT_MIN_RATIO, COMMITMENT_MAX_RATIO = 8, 14
COST_BASIS_MIN, COST_BASIS_MAX = Decimal("0.04"), Decimal("0.06")
PILOT_RANKS = (7, 8)
PILOT_RATIO = Decimal("1.5")
PILOT_CREDIT_STEP = 500
PILOT_PRICE = Decimal("0.05")
PILOT_NEXT_PLAN = "professional"  # a pilot customer subscribes from the run's second month
# rank -> plan of the demo catalog, subscribed from the run's first month
PLAN_RANKS: dict[int, str] = {9: "professional", 10: "starter", 11: "starter", 13: "starter"}
AMOUNT_STEP = Decimal("100")
TOPUP_PACK_CREDITS = 1000
TOPUP_PACK_PRICE = Decimal("20.00")
TOPUP_COVERAGE = Decimal("1.3")
TOPUP_TRIGGER = Decimal("0.75")  # buy when usage reaches 75% of the credits held at the month start plus bought since
HARD_CAP_RANK = 12
GUARANTEE_RANK = 3  # Kestrelwerk Bioinformatik GmbH (EUR, 19% VAT, annual commitment)
GUARANTEE_LEGACY = "250.00"  # EUR a month on its former per-seat plan
HARD_CAP_TOPUP_CREDITS = 500
HARD_CAP_TOPUP_PRICE = Decimal("10.00")
HARD_CAP_MIN_EXCESS = Decimal("1.2")
REFUND_RANK = 17  # Brambleway Translation: half of its last pack's unused credits back, the run's last day
REFUND_REASON = "unused credits refunded at the customer's request"
PAYMENT_MIN_DELAY_DAYS, PAYMENT_MAX_DELAY_DAYS = 10, 20
CATALOG_PATH = Path(__file__).parent / "data" / "demo-catalog.toml"
DECIMALS = {"JPY": 0}  # minor-unit digits of the demo's currencies other than 2 (USD, EUR)

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class DemoCustomer:
    """A demo customer with its profile and figures over the run.

    profile: "annual commitment", "pilot commitment" (one month), "pilot, then Professional",
    "Professional plan", "Starter plan", "top-up", "hard cap" or "promotional only"; tax_rate:
    decimal string as in customer.created; expected_credits: the usage U of one month in credits
    (rules 1-3, the same every month); granted_credits: every credit granted to it by an event
    over the run (welcome, commitment and top-ups; a plan's credits are granted by the engine).
    Only the "hard cap" customer uses more than it holds without paying overage.
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


def _minor(currency: str) -> Decimal:
    return Decimal(1).scaleb(-DECIMALS.get(currency, 2))


def _money(value: Decimal, currency: str = "USD") -> str:
    """``value`` as a decimal string with exactly the currency's decimals (half up)."""
    return str(value.quantize(_minor(currency), rounding=ROUND_HALF_UP))


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


def _annual_commitment(rank: int, cid: str, used: int, m: DemoMonth) -> tuple[dict, Decimal, int]:
    """Rule 4c: (commitment.purchased event, amount, credits) of an annual commitment; raises
    ValueError if the credits are not 8-14x the month usage or the cost basis is out of range
    (in JPY: its dollar value at YEN_PER_DOLLAR)."""
    ratio, price = COMMITMENT_TERMS[rank]
    credits = int(_round_half_up(Decimal(used * ratio), Decimal(COMMITMENT_CREDIT_STEP)))
    yen = _currency(cid) == "JPY"
    amount = (_round_half_up(credits * price * YEN_PER_DOLLAR, YEN_AMOUNT_STEP) if yen
              else _round_half_up(credits * price, AMOUNT_STEP))
    if not COMMITMENT_MIN_RATIO * used <= credits <= COMMITMENT_MAX_RATIO * used:
        raise ValueError(f"{cid}: commitment {credits} not 8-14x usage {used}")
    if not COST_BASIS_MIN <= amount / (YEN_PER_DOLLAR if yen else 1) / credits <= COST_BASIS_MAX:
        raise ValueError(f"{cid}: cost basis {amount / credits} out of range")
    term_end = _add_months(m.first_day, 12) - timedelta(days=1)
    event = {
        "id": f"evt-{cid}-commitment",
        "type": "commitment.purchased",
        "occurred_at": _format_time(m.commitment_time),
        "customer_id": cid,
        "commitment_id": f"com-{cid}-{m.month}",
        "amount": _money(amount, _currency(cid)),
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
        "amount": _money(amount, _currency(cid)),
        "credits": credits,
        "term_start": m.first_day.isoformat(),
        "term_end": m.last_day.isoformat(),
    }
    return event, amount, credits


def _currency(cid: str) -> str:
    return CUSTOMER_DIRECTORY[int(cid.removeprefix("cus_")) - 1][2]


def plan_fee(plan: str) -> tuple[Decimal, str]:
    """(monthly fee, currency) of ``plan`` in the demo catalog (ledger/data/demo-catalog.toml)."""
    with open(CATALOG_PATH, "rb") as handle:
        terms = tomllib.load(handle)["plans"][plan]
    return Decimal(terms["monthly_fee"]), terms["currency"]


@dataclass(frozen=True)
class Grant:
    """Credits a customer holds from ``at`` until ``expires`` (None: not within the run); ref:
    the grant id (welcome credits, commitment or top-up)."""

    at: datetime
    credits: int
    expires: datetime | None
    ref: str


Purchase = tuple[datetime, str, str, Decimal, Decimal, str]
"""A purchase: (invoiced at, event id, customer id, amount before tax, tax rate, currency)."""


@dataclass
class CustomerRun:
    """One customer's part of the run: its DemoCustomer; its events (customer.created, the
    welcome credits, its purchases, subscription and refund); its purchases (and plan months,
    for the payments); its grants, the welcome credits first; refunds as (at, grant id, credits)."""

    customer: DemoCustomer | None = None
    events: list[dict] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    refunds: list[tuple[datetime, str, int]] = field(default_factory=list)


def _opening_events(cid: str, rank: int, m: DemoMonth) -> list[dict]:
    """Rules 4a and 4b: the customer's customer.created and welcome credits.granted events."""
    name, address, currency, tax_rate = CUSTOMER_DIRECTORY[rank - 1]
    country, locale = COUNTRY_LOCALES[address[-1]]
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
            "country": country,
            **({"locale": locale} if locale != "en_US" else {}),
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


def _subscribe(run: CustomerRun, cid: str, plan: str, months: list[DemoMonth], tax_rate: Decimal) -> None:
    """Rule 4i: subscription.started on ``plan`` from the first of ``months``; each month's
    invoice (the fee, billed on the 1st) is a purchase for the payments."""
    first = months[0]
    run.events.append({"id": f"evt-{cid}-subscription", "type": "subscription.started",
                       "occurred_at": _format_time(first.start), "customer_id": cid, "plan": plan,
                       "start_date": first.first_day.isoformat()})
    fee, currency = plan_fee(plan)
    for m in months:
        run.purchases.append((m.start, f"evt-{cid}-subscription:{m.month}", cid, fee, tax_rate, currency))


def _topup_plan(rank: int, used: int, held: int, first_month: bool) -> list[tuple[int, Decimal]]:
    """Rules 4e and 4f: the packs (credits, amount), in purchase order, of a customer without a
    commitment or plan for one month, holding ``held`` credits at the month start."""
    if rank == HARD_CAP_RANK:
        return [(HARD_CAP_TOPUP_CREDITS, HARD_CAP_TOPUP_PRICE)]
    if first_month and used < PROMO_CREDITS:
        return []  # the welcome credits cover the first month
    needed = TOPUP_COVERAGE * used - held  # exact Decimal
    if needed <= 0:
        return []
    pack_count = max(1, int((needed / TOPUP_PACK_CREDITS).to_integral_value(ROUND_CEILING)))
    packs = [(TOPUP_PACK_CREDITS, TOPUP_PACK_PRICE)]
    if pack_count > 1:
        rest = pack_count - 1
        packs.append((rest * TOPUP_PACK_CREDITS, rest * TOPUP_PACK_PRICE))
    return packs


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


def _buy_topups(run: CustomerRun, rank: int, used: int, usage: list[tuple[datetime, int]],
                months: list[DemoMonth], tax_rate: Decimal) -> None:
    """Rules 4e and 4f for every month of the run: packs bought by the 75% rule on the credits
    held at the month start (the welcome credits in the first month, the packs' rest later)
    plus those bought since; with nothing held, at the month start."""
    cid = customer_id(rank)
    pack_credits = pack_used = 0
    n = 0
    for i, m in enumerate(months):
        held = PROMO_CREDITS if i == 0 else pack_credits - pack_used
        granted = held
        month_usage = [(t, c) for t, c in usage if m.start <= t < m.end]
        for credits, amount in _topup_plan(rank, used, held, i == 0):
            at = m.start if granted == 0 else _recharge_time(cid, month_usage, granted, m.end)
            n += 1
            run.events.append(_topup_event(cid, n, credits, amount, at))
            run.purchases.append((at, f"evt-{cid}-topup-{n}", cid, amount, tax_rate, _currency(cid)))
            run.grants.append(Grant(at, credits, None, f"top-{cid}-{n}"))
            granted += credits
            pack_credits += credits
        pack_used = min(pack_credits, pack_used + used - (min(used, PROMO_CREDITS) if i == 0 else 0))


def _refund(run: CustomerRun, cid: str, used: int, months: list[DemoMonth]) -> None:
    """Rule 4j: on the run's last day at 23:00, half of what is left of the customer's last pack
    at the run end (rounded down to 100 credits) is refunded."""
    last = months[-1]
    packs = [g for g in run.grants if g.ref.startswith("top-")]
    total_used = used * len(months) - min(used, PROMO_CREDITS)
    left = sum(g.credits for g in packs) - total_used
    credits = 100 * (min(packs[-1].credits, left) // 200)
    at = last.end - timedelta(hours=1)
    if credits <= 0 or packs[-1].at >= at:
        raise ValueError(f"{cid}: nothing to refund from {packs[-1].ref}")
    run.refunds.append((at, packs[-1].ref, credits))
    run.events.append({"id": f"evt-{cid}-refund", "type": "refund.issued", "occurred_at": _format_time(at),
                       "customer_id": cid, "grant_ref": packs[-1].ref, "credits": credits,
                       "reason": REFUND_REASON})


def customer_run(rank: int, used: int, usage: list[tuple[datetime, int]], months: list[DemoMonth]) -> CustomerRun:
    """Rules 4a-4j for the customer of ``rank`` (1..50) over ``months`` (consecutive, in order).

    used: U, its usage of one month in credits; usage: its usage over the run as
    (occurred_at, credits) in time order (for the top-ups' times). Raises ValueError when a
    rule's guarantee breaks (see the helpers).
    """
    cid = customer_id(rank)
    name, _, currency, tax_rate = CUSTOMER_DIRECTORY[rank - 1]
    first = months[0]
    run = CustomerRun(events=_opening_events(cid, rank, first))
    run.grants.append(Grant(first.start, PROMO_CREDITS, first.end, f"promo-{cid}-welcome"))

    def commit(event: dict, amount: Decimal, credits: int, term_end: date) -> None:
        run.events.append(event)
        run.purchases.append((first.commitment_time, event["id"], cid, amount, Decimal(tax_rate), currency))
        expires = datetime.combine(term_end + timedelta(days=1), datetime.min.time(), timezone.utc)
        run.grants.append(Grant(first.commitment_time, credits, expires, event["commitment_id"]))

    if rank in COMMITMENT_TERMS:
        profile = "annual commitment"
        event, amount, credits = _annual_commitment(rank, cid, used, first)
        commit(event, amount, credits, date.fromisoformat(event["term_end"]))
    elif rank in PILOT_RANKS:
        profile = "pilot commitment" if len(months) == 1 else "pilot, then Professional"
        event, amount, credits = _pilot_commitment(cid, used, first)
        commit(event, amount, credits, first.last_day)
        if len(months) > 1:
            _subscribe(run, cid, PILOT_NEXT_PLAN, months[1:], Decimal(tax_rate))
    elif rank in PLAN_RANKS:
        profile = "Professional plan" if PLAN_RANKS[rank] == "professional" else "Starter plan"
        _subscribe(run, cid, PLAN_RANKS[rank], months, Decimal(tax_rate))
    else:
        _buy_topups(run, rank, used, usage, months, Decimal(tax_rate))
        profile = "hard cap" if rank == HARD_CAP_RANK else "top-up" if len(run.grants) > 1 else "promotional only"
        if rank == REFUND_RANK:
            _refund(run, cid, used, months)
    granted = sum(g.credits for g in run.grants)
    run.customer = DemoCustomer(id=cid, rank=rank, name=name, profile=profile, currency=currency,
                                tax_rate=tax_rate, expected_credits=used, granted_credits=granted)
    return run


def payment_events(purchases: list[Purchase], run_end: datetime) -> list[dict]:
    """Rule 4g: a payment.received for every purchase (and plan month) whose payment date,
    after its hashed delay of 10-20 days, falls before run_end, numbered per customer in
    purchase order."""
    payments: list[dict] = []
    payment_counts: dict[str, int] = {}
    for at, purchase_id, cid, amount, tax_rate, currency in sorted(purchases, key=lambda item: (item[0], item[1])):
        delay = PAYMENT_MIN_DELAY_DAYS + hashlib.sha256(purchase_id.encode()).digest()[0] % (
            PAYMENT_MAX_DELAY_DAYS - PAYMENT_MIN_DELAY_DAYS + 1
        )
        if at + timedelta(days=delay) >= run_end:
            continue  # would be paid after the run
        total = amount + _round_half_up(amount * tax_rate, _minor(currency))
        payment_counts[cid] = payment_counts.get(cid, 0) + 1
        payments.append(
            {
                "id": f"evt-{cid}-payment-{payment_counts[cid]}",
                "type": "payment.received",
                "occurred_at": _format_time(at + timedelta(days=delay)),
                "customer_id": cid,
                "amount": _money(total, currency),
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


def check_funding(runs: list[CustomerRun], usage: dict[str, list[tuple[datetime, int]]], months: list[DemoMonth]) -> None:
    """Rule 4f: a customer without a plan never runs out (its usage drawn from the grant
    expiring first, then the oldest, as the engine does), except the hard-cap customer, which
    uses at least 20% more than it is granted in every month."""
    for run in runs:
        customer = run.customer
        if customer.rank == HARD_CAP_RANK:
            for i, m in enumerate(months):
                month_grants = sum(g.credits for g in run.grants if m.start <= g.at < m.end)
                if customer.expected_credits < HARD_CAP_MIN_EXCESS * month_grants:
                    raise ValueError(f"{customer.id}: hard cap not exceeded by 20% in {m.month}")
            continue
        if customer.profile.endswith("plan") or customer.profile.endswith("Professional"):
            continue  # beyond its credits a plan customer pays overage
        _check_draws(customer.id, run, usage.get(customer.id, []))


def _check_draws(cid: str, run: CustomerRun, usage: list[tuple[datetime, int]]) -> None:
    """Replays the customer's grants, refunds and usage in time order (grants first at one
    instant); raises ValueError at the first usage its unexpired credits do not cover."""
    never = datetime.max.replace(tzinfo=timezone.utc)
    left = {g.ref: g.credits for g in run.grants}
    timeline = [(g.at, 0, g.ref, 0) for g in run.grants]
    timeline += [(at, 1, ref, credits) for at, ref, credits in run.refunds]
    timeline += [(at, 2, "", credits) for at, credits in usage]
    active: list[Grant] = []
    for moment, kind, ref, credits in sorted(timeline):
        if kind == 0:
            active.append(next(g for g in run.grants if g.ref == ref))
            continue
        if kind == 1:
            if left[ref] < credits:
                raise ValueError(f"{cid}: refund of {credits} from {ref} holding {left[ref]}")
            left[ref] -= credits
            continue
        for grant in sorted(active, key=lambda g: (g.expires or never, g.at)):
            if grant.expires is not None and grant.expires <= moment:
                continue
            drawn = min(left[grant.ref], credits)
            left[grant.ref] -= drawn
            credits -= drawn
        if credits:
            raise ValueError(f"{cid} runs out of credits at {moment.isoformat()}")
