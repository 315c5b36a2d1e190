"""Tests of the deterministic demo scenario built from the bundled Azure LLM trace."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest

from ledger import demo_data
from ledger.demo_data import build_demo_scenario, price_request, write_demo_inputs

MONTH = "2026-10"
MONTH_START = datetime(2026, 10, 1, tzinfo=timezone.utc)
MONTH_END = datetime(2026, 11, 1, tzinfo=timezone.utc)
AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")
YEN_RE = re.compile(r"^\d+$")
PLAN_CUSTOMERS = {"cus_009", "cus_010", "cus_011", "cus_013"}  # Professional, then Starter
GRANTING_TYPES = ("credits.granted", "topup.purchased", "commitment.purchased")


@pytest.fixture(scope="module")
def scenario() -> demo_data.DemoScenario:
    return build_demo_scenario(MONTH)


@pytest.fixture(scope="module")
def usage_by_customer(scenario) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for row in scenario.usage:
        totals[row.customer_id] += row.credits
    return dict(totals)


@pytest.fixture(scope="module")
def granted_by_customer(scenario) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for event in scenario.events:
        if event["type"] in GRANTING_TYPES:
            totals[event["customer_id"]] += event["credits"]
    return dict(totals)


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


def test_build_is_deterministic(scenario, tmp_path):
    """Two builds are equal and their written files are byte-identical."""
    again = build_demo_scenario(MONTH)
    assert again == scenario
    first = write_demo_inputs(scenario, tmp_path / "a")
    second = write_demo_inputs(again, tmp_path / "b")
    assert [p.name for p in first] == ["events.jsonl", "usage.csv"]
    for one, other in zip(first, second):
        assert one.read_bytes() == other.read_bytes()


def test_every_trace_request_becomes_one_usage_row(scenario):
    """All 28,185 trace requests (8,819 code + 19,366 conv) become exactly one usage row each."""
    # The data README says 8,818 + 19,365; the files hold one more row each (last line has no CRLF).
    assert len(scenario.usage) == 28_185
    per_file = Counter(row.event_id.split("-")[1] for row in scenario.usage)
    assert per_file == {"code": 8_819, "conv": 19_366}
    assert len({row.event_id for row in scenario.usage}) == 28_185


def test_usage_is_inside_the_month_and_sorted(scenario):
    """Every usage occurred_at is inside the month, and rows are sorted by (time, id)."""
    keys = []
    for row in scenario.usage:
        moment = _aware(row.occurred_at)
        assert MONTH_START <= moment < MONTH_END
        keys.append((moment, row.event_id))
    assert keys == sorted(keys)


def test_heavy_tail(usage_by_customer):
    """The top customer holds >15% of credits, the top 5 >40%, and all 50 have usage."""
    total = sum(usage_by_customer.values())
    ranked = sorted(usage_by_customer.values(), reverse=True)
    assert len(usage_by_customer) == 50
    assert set(usage_by_customer) == {f"cus_{r:03d}" for r in range(1, 51)}
    assert all(credits > 0 for credits in ranked)
    assert ranked[0] / total > 0.15
    assert sum(ranked[:5]) / total > 0.40
    assert max(usage_by_customer, key=usage_by_customer.get) == "cus_001"


def test_pricing_rule_on_concrete_rows(scenario):
    """Concrete trace rows are priced ceil(ctx/1000) + ceil(gen/250), minimum 1."""
    by_id = {row.event_id: row for row in scenario.usage}
    # (event id, ContextTokens, GeneratedTokens, credits computed by hand)
    cases = [
        ("u-code-00000", 4808, 10, 5 + 1),
        ("u-code-00126", 5538, 697, 6 + 3),
        ("u-code-01424", 3000, 201, 3 + 1),
        ("u-conv-00000", 374, 44, 1 + 1),
        ("u-conv-00143", 1035, 520, 2 + 3),
        ("u-conv-00180", 1000, 375, 1 + 2),
    ]
    for event_id, context, generated, credits in cases:
        assert price_request(context, generated) == credits
        assert by_id[f"{event_id}-202610"].credits == credits
    assert price_request(0, 0) == 1
    assert price_request(0, 250) == 1
    assert price_request(0, 251) == 2
    assert price_request(1001, 0) == 2


def test_replay_times_on_concrete_rows(scenario):
    """occurred_at = month start + (k mod D) days + ((k // D) mod 24) h + offset in the trace."""
    by_id = {row.event_id: row for row in scenario.usage}
    # code k=126: day 126 mod 31 = 2, hour 126 // 31 = 4, 18:20:20.0340900 - 18:17:03.9799600
    assert by_id["u-code-00126-202610"].occurred_at == "2026-10-03T04:03:16.054130Z"
    # conv k=143: day 19, hour 4, 18:16:36.4232750 - 18:15:46.6805900
    assert by_id["u-conv-00143-202610"].occurred_at == "2026-10-20T04:00:49.742685Z"
    assert by_id["u-code-00000-202610"].occurred_at == "2026-10-01T00:00:00.000000Z"


def test_assignment_rule_matches_an_independent_computation(scenario):
    """Customer assignment follows the sha256 / Zipf(1.1) cumulative-interval rule."""
    weights = [1 / r**1.1 for r in range(1, 51)]
    total = sum(weights)
    by_id = {row.event_id: row for row in scenario.usage}
    for file_key, k in [("code", 0), ("code", 8818), ("conv", 0), ("conv", 12345)]:
        u = int.from_bytes(hashlib.sha256(f"{file_key}:{k}".encode()).digest()[:8], "big") / 2**64
        running, rank = 0.0, 50
        for r, weight in enumerate(weights, start=1):
            running += weight
            if u < running / total:
                rank = r
                break
        assert by_id[f"u-{file_key}-{k:05d}-202610"].customer_id == f"cus_{rank:03d}"


def test_exactly_one_customer_hits_the_hard_cap(usage_by_customer, granted_by_customer):
    """Exactly one customer uses >= 120% of its credits; every other has enough credits, but
    the plan subscribers, whose plan grants its credits and bills overage."""
    short = [c for c in usage_by_customer if usage_by_customer[c] > granted_by_customer[c] and c not in PLAN_CUSTOMERS]
    assert short == ["cus_012"]
    assert usage_by_customer["cus_012"] >= Decimal("1.2") * granted_by_customer["cus_012"]
    for customer, used in usage_by_customer.items():
        if customer != "cus_012" and customer not in PLAN_CUSTOMERS:
            assert granted_by_customer[customer] >= used, customer


def test_no_other_customer_runs_out_at_any_moment(scenario):
    """Except the hard-cap customer, credits granted so far always cover usage so far."""
    timeline: dict[str, list[tuple[datetime, int, int]]] = defaultdict(list)
    for event in scenario.events:
        if event["type"] in GRANTING_TYPES:
            # grants sort before usage at the same instant (0 < 1)
            moment = _aware(event["occurred_at"])
            timeline[event["customer_id"]].append((moment, 0, event["credits"]))
    for row in scenario.usage:
        timeline[row.customer_id].append((_aware(row.occurred_at), 1, -row.credits))
    ran_out = set()
    for customer, items in timeline.items():
        balance = 0
        for _, _, delta in sorted(items):
            balance += delta
            if balance < 0:
                ran_out.add(customer)
                break
    assert ran_out - PLAN_CUSTOMERS - {"cus_007", "cus_008"} == {"cus_012"}  # pilots subscribe in September


def test_commitments(scenario, usage_by_customer):
    """Annual commitments are 8-14x month usage at 0.04-0.06 per credit; pilots last the month."""
    commitments = [e for e in scenario.events if e["type"] == "commitment.purchased"]
    annual = {e["customer_id"]: e for e in commitments if e["term_end"] == "2027-09-30"}
    pilots = {e["customer_id"]: e for e in commitments if e["term_end"] == "2026-10-31"}
    assert sorted(annual) == [f"cus_{r:03d}" for r in range(1, 7)]
    assert sorted(pilots) == ["cus_007", "cus_008"]
    assert len(commitments) == 8
    for event in commitments:
        customer = event["customer_id"]
        used = usage_by_customer[customer]
        assert event["term_start"] == "2026-10-01"
        assert event["occurred_at"] == "2026-10-01T09:00:00Z"
        per_dollar = 150 if customer == "cus_006" else 1  # the JPY commitment: 150 yen a dollar
        assert Decimal("0.04") <= Decimal(event["amount"]) / per_dollar / event["credits"] <= Decimal("0.06")
        assert Decimal(event["amount"]) % (100 * per_dollar) == 0
        if customer in annual:
            assert 8 * used <= event["credits"] <= 14 * used
        else:
            # about 1.5x the month: part of it expires unused at the month end (breakage)
            assert 1.3 * used <= event["credits"] <= 1.7 * used


def test_event_shapes_and_amounts(scenario):
    """Events have unique ids, are sorted, dated in the month, with 2-decimal amounts."""
    ids = [event["id"] for event in scenario.events]
    assert len(ids) == len(set(ids))
    assert [(e["occurred_at"], e["id"]) for e in scenario.events] == sorted(
        (e["occurred_at"], e["id"]) for e in scenario.events
    )
    counts = Counter(event["type"] for event in scenario.events)
    assert counts["customer.created"] == 50
    assert counts["credits.granted"] == 50
    for event in scenario.events:
        assert MONTH_START <= _aware(event["occurred_at"]) < MONTH_END
        if "amount" in event:
            pattern = YEN_RE if event["customer_id"] == "cus_006" else AMOUNT_RE
            assert isinstance(event["amount"], str) and pattern.match(event["amount"]), event
        if "expires_at" in event:
            assert _aware(event["expires_at"]) >= MONTH_END
        assert "invoice_number" not in event
    promo = [e for e in scenario.events if e["type"] == "credits.granted"]
    assert all(e["credits"] == 500 and e["expires_at"] == "2026-11-01T00:00:00Z" for e in promo)
    currencies = Counter(e["currency"] for e in scenario.events if e["type"] == "customer.created")
    assert currencies == {"USD": 46, "EUR": 3, "JPY": 1}
    locales = {e["customer_id"]: e.get("locale") for e in scenario.events if e["type"] == "customer.created"}
    assert (locales["cus_003"], locales["cus_006"], locales["cus_016"]) == ("de_DE", "ja_JP", "fr_FR")
    taxed_usd = [
        e
        for e in scenario.events
        if e["type"] == "customer.created" and e["currency"] == "USD" and e["tax_rate"] != "0"
    ]
    assert len(taxed_usd) == 8


def test_all_timestamps_carry_an_offset(scenario):
    """Every occurred_at and expires_at, in events and usage, has an explicit UTC offset."""
    stamps = [row.occurred_at for row in scenario.usage]
    for event in scenario.events:
        stamps.append(event["occurred_at"])
        if "expires_at" in event:
            stamps.append(event["expires_at"])
    for stamp in stamps:
        assert stamp.endswith("Z") or stamp.endswith("+00:00"), stamp
        assert _aware(stamp).utcoffset() == timedelta(0)


def test_payments_are_exact_invoice_totals(scenario):
    """Each payment equals one purchase's amount plus tax rounded half up, 10-20 days later."""
    tax = {
        e["customer_id"]: Decimal(e["tax_rate"])
        for e in scenario.events
        if e["type"] == "customer.created"
    }
    fees = {"starter": Decimal("99.00"), "professional": Decimal("299.00")}
    purchases = defaultdict(list)
    for event in scenario.events:
        if event["type"] in ("commitment.purchased", "topup.purchased", "subscription.started"):
            amount = fees[event["plan"]] if "plan" in event else Decimal(event["amount"])
            unit = Decimal("1") if event["customer_id"] == "cus_006" else Decimal("0.01")
            total = amount + (amount * tax[event["customer_id"]]).quantize(unit, rounding=ROUND_HALF_UP)
            purchases[event["customer_id"]].append((_aware(event["occurred_at"]), total))
    payments = [e for e in scenario.events if e["type"] == "payment.received"]
    purchase_count = sum(len(items) for items in purchases.values())
    assert 0.4 * purchase_count <= len(payments) <= 0.7 * purchase_count
    for payment in payments:
        paid_at = _aware(payment["occurred_at"])
        assert any(
            total == Decimal(payment["amount"])
            and timedelta(days=10) <= paid_at - bought_at <= timedelta(days=20)
            for bought_at, total in purchases[payment["customer_id"]]
        ), payment
    assert "evt-cus_005-payment-1" in {p["id"] for p in payments}
    assert next(p for p in payments if p["id"] == "evt-cus_005-payment-1")["amount"] == "3324.75"


def test_written_files(scenario, tmp_path):
    """events.jsonl is compact JSON per line and usage.csv has the bulk usage header, LF only."""
    events_path, usage_path = write_demo_inputs(scenario, tmp_path)
    raw_events = events_path.read_bytes()
    raw_usage = usage_path.read_bytes()
    assert b"\r" not in raw_events and b"\r" not in raw_usage
    lines = raw_events.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(scenario.events)
    assert lines[0].startswith('{"id":"evt-cus_001-created","type":"customer.created",')
    for line, event in zip(lines, scenario.events):
        assert line == json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    with open(usage_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["event_id", "customer_id", "occurred_at", "credits"]
    assert len(rows) == 1 + len(scenario.usage)
    first = scenario.usage[0]
    assert rows[1] == [first.event_id, first.customer_id, first.occurred_at, str(first.credits)]


def test_customer_summary_matches_the_data(scenario, usage_by_customer, granted_by_customer):
    """The customers' summary agrees with the usage rows and the granting events."""
    assert [c.id for c in scenario.customers] == [f"cus_{r:03d}" for r in range(1, 51)]
    for customer in scenario.customers:
        assert customer.expected_credits == usage_by_customer[customer.id]
        assert customer.granted_credits == granted_by_customer[customer.id]
    profiles = Counter(c.profile for c in scenario.customers)
    assert profiles["hard cap"] == 1
    assert profiles["annual commitment"] == 6 and profiles["pilot commitment"] == 2
    assert profiles["Starter plan"] == 3 and profiles["Professional plan"] == 1
    assert next(c for c in scenario.customers if c.currency == "JPY").profile == "annual commitment"
    for customer in scenario.customers:
        if customer.profile == "promotional only":
            assert customer.expected_credits < 500


def test_other_months_and_bad_month():
    """Any calendar month builds with usage inside it; a malformed month is rejected."""
    february = build_demo_scenario("2028-02")
    assert february.usage[-1].occurred_at.startswith("2028-02-29T")
    assert all(row.occurred_at.startswith("2028-02-") for row in february.usage)
    for bad in ("2026-13", "2026-1", "Oct 2026"):
        with pytest.raises(ValueError):
            build_demo_scenario(bad)


# --- the three-month run of `ledger demo` ------------------------------------------------------
RUN_MONTHS = ("2026-08", "2026-09", "2026-10")


@pytest.fixture(scope="module")
def run() -> demo_data.DemoScenario:
    return build_demo_scenario("2026-08", 3)


def test_the_run_replays_the_trace_in_each_month(run):
    """Three months of 28,185 requests each, ids unique, every row inside its month; the month
    slices split the run's events and usage without loss."""
    assert run.months == RUN_MONTHS and len(run.usage) == 3 * 28_185
    assert len({row.event_id for row in run.usage}) == len(run.usage)
    slices = [run.in_month(m) for m in RUN_MONTHS]
    for month, part in zip(RUN_MONTHS, slices):
        assert len(part.usage) == 28_185
        assert all(row.occurred_at.startswith(month) and row.event_id.endswith(month.replace("-", ""))
                   for row in part.usage)
    assert sum(len(p.events) for p in slices) == len(run.events)
    per_month = [Counter(r.customer_id for r in p.usage) for p in slices]
    assert per_month[0] == per_month[1] == per_month[2]  # the same usage U each month


def test_the_run_has_plans_rollover_refund_and_a_guarantee(run):
    """Plans from the first month (pilots from the second), one refund in the last month from
    a pack of the refunding customer, one guarantee, customers in USD, EUR and JPY."""
    subs = {e["customer_id"]: (e["plan"], e["start_date"]) for e in run.events if e["type"] == "subscription.started"}
    assert subs == {"cus_009": ("professional", "2026-08-01"), "cus_010": ("starter", "2026-08-01"),
                    "cus_011": ("starter", "2026-08-01"), "cus_013": ("starter", "2026-08-01"),
                    "cus_007": ("professional", "2026-09-01"), "cus_008": ("professional", "2026-09-01")}
    refunds = [e for e in run.events if e["type"] == "refund.issued"]
    assert len(refunds) == 1 and refunds[0]["occurred_at"] == "2026-10-31T23:00:00Z"
    packs = {e["topup_id"]: e for e in run.events if e["type"] == "topup.purchased"}
    refunded = packs[refunds[0]["grant_ref"]]
    assert refunded["customer_id"] == refunds[0]["customer_id"] == "cus_017"
    assert 0 < refunds[0]["credits"] <= refunded["credits"] // 2
    assert sum(e["type"] == "guarantee.enrolled" for e in run.events) == 1
    later = Counter(e["occurred_at"][:7] for e in run.events if e["type"] == "topup.purchased")
    assert later["2026-09"] > 0 and later["2026-10"] > 0  # packs bought again as they run low


def test_no_customer_without_a_plan_runs_out_in_the_run(run):  # noqa: C901 (one replay, read top to bottom)
    """Welcome credits expire at the first month's end; packs last 12 months; commitments their
    term. Except the hard-cap customer, what is held always covers the usage so far."""
    expiry = {}
    timeline: dict[str, list[tuple[datetime, int, int, str]]] = defaultdict(list)
    for event in run.events:
        if event["type"] in GRANTING_TYPES:
            ref = event.get("grant_id") or event.get("topup_id") or event.get("commitment_id")
            if "expires_at" in event:
                expiry[ref] = _aware(event["expires_at"])
            elif "term_end" in event:
                expiry[ref] = datetime.fromisoformat(event["term_end"]).replace(tzinfo=timezone.utc) + timedelta(days=1)
            timeline[event["customer_id"]].append((_aware(event["occurred_at"]), 0, event["credits"], ref))
        elif event["type"] == "refund.issued":
            timeline[event["customer_id"]].append((_aware(event["occurred_at"]), 1, -event["credits"], event["grant_ref"]))
    for row in run.usage:
        timeline[row.customer_id].append((_aware(row.occurred_at), 2, -row.credits, ""))
    ran_out = set()
    for customer, items in timeline.items():
        left: dict[str, int] = {}
        for moment, kind, delta, ref in sorted(items):
            if kind < 2:
                left[ref] = left.get(ref, 0) + delta
                continue
            need = -delta
            for grant in sorted(left, key=lambda g: (expiry[g], g)):
                if expiry[grant] > moment:
                    drawn = min(left[grant], need)
                    left[grant] -= drawn
                    need -= drawn
            if need:
                ran_out.add(customer)
                break
    assert ran_out - PLAN_CUSTOMERS - {"cus_007", "cus_008"} == {"cus_012"}  # pilots subscribe in September
