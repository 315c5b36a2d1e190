"""Deferred-revenue waterfall and usage alerts (docs/design.md §8.1), on SQLite and PostgreSQL.

Every expected number is worked out by hand in the docstring or beside it; the reports are read
back through the builders and through `ledger report ... --format json`.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.forecast import ledger_deferred, usage_alerts, waterfall


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def customer(cid: str, currency: str = "USD") -> str:
    return ev(f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=cid.title(),
              currency=currency)


def daily_usage(cid: str, credits: int, days: range, month: str = "2026-03", hour: str = "10") -> list[str]:
    return [ev(f"u-{cid}-{d}", "usage.recorded", f"{month}-{d:02d}T{hour}:00:00Z", customer_id=cid, credits=credits)
            for d in days]


def commitment(cid: str, gid: str, credits: int, amount: str) -> str:
    return ev(f"e-{gid}", "commitment.purchased", "2026-01-01T00:00:00Z", customer_id=cid, commitment_id=gid,
              amount=amount, credits=credits, term_start="2026-01-01", term_end="2026-12-31")


@pytest.fixture
def books(make_books):
    return make_books()


def _close(books, *periods: str) -> None:
    for p in periods:
        books.close(p)


def _json(books, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--database-url", books.url, "report", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _deferred_on_ledger(books, currency: str, period: str) -> int:
    return books.balance("2100", currency, through=period) + books.balance("2150", currency, through=period)


# --------------------------------------------------------------------------- usage alerts
ALERTS = [
    customer("acme"), commitment("acme", "com-acme", 12_000, "600.00"),
    *daily_usage("acme", 300, range(2, 32)),
    customer("bob"),
    ev("sub-bob", "subscription.started", "2026-03-01T00:00:00Z", customer_id="bob", plan="starter",
       start_date="2026-03-01"),
    ev("u-bob", "usage.recorded", "2026-03-16T09:00:00Z", customer_id="bob", credits=1_250),
    customer("cara"),
    ev("e-top-cara", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="cara", topup_id="top-cara",
       pack="pack_1000"),
    ev("e-promo-cara", "credits.granted", "2026-03-01T00:00:00Z", customer_id="cara", grant_id="promo-cara",
       credits=500),
    ev("u-cara", "usage.recorded", "2026-03-20T09:00:00Z", customer_id="cara", credits=1_350),
]


def test_usage_alerts_at_70_90_and_100_percent(books):
    """At the end of March 2026 (January to March closed):

    - acme: a 12,000-credit commitment at 600.00 for 2026, 300 credits used on each of the 30
      days 2026-03-02..31: 9,000 consumed = 75.0% -> the 70% alert; rate 9,000 / 30 = 300.00 a
      day; 3,000 left last until 2026-03-31 + 3,000 / 300 = 10 days = 2026-04-10, before the
      commitment's last day 2026-12-31.
    - bob: Starter (1,000 included credits for March), 1,250 used on 2026-03-16: 1,000 from the
      grant (250 are overage, not drawn from a grant) = 100.0% -> 100; rate 1,000 / 30 = 33.33;
      nothing left, so no exhaustion date. April's grant is dated 2026-04-01: not in force yet.
    - cara: a 1,000-credit pack (expiring 2027-03-01) and 500 promotional credits that never
      expire; 1,350 used on 2026-03-20 draw 1,000 from the pack (sooner expiry) and 350 from the
      promotional grant. Neither is a commitment or plan, so only the "all credits held" row:
      1,350 of 1,500 = 90.0% -> 90; rate 45.00; 150 left: ceil(150 / 45) = 4 days -> 2026-04-04,
      and the credits never all expire, so it is before expiry.

    One customer at each threshold."""
    books.post("\n".join(ALERTS))
    _close(books, "2026-01", "2026-02", "2026-03")
    with books.session() as s:
        rep = usage_alerts(s, "2026-03", tz=books.catalog.tz)
    rows = {(r["customer_id"], r["scope"]): r for r in rep.rows}
    assert set(rows) == {("acme", "commitment"), ("bob", "subscription"), ("cara", "all")}
    pick = ("grant_id", "granted", "consumed", "percent", "threshold", "outstanding", "rate_per_day", "exhaustion",
            "expires", "before_expiry")
    assert tuple(rows[("acme", "commitment")][k] for k in pick) == (
        "com-acme", 12_000, 9_000, "75.0", 70, 3_000, "300.00", "2026-04-10", "2026-12-31", True)
    assert tuple(rows[("bob", "subscription")][k] for k in pick) == (
        "sub-bob:2026-03", 1_000, 1_000, "100.0", 100, 0, "33.33", None, "2026-03-31", False)
    assert tuple(rows[("cara", "all")][k] for k in pick) == (
        "", 1_500, 1_350, "90.0", 90, 150, "45.00", "2026-04-04", None, True)
    assert rep.totals == [{"threshold": 70, "customers": 1}, {"threshold": 90, "customers": 1},
                          {"threshold": 100, "customers": 1}]
    # the same through the command line
    data = _json(books, "usage-alerts", "--period", "2026-03")
    assert data["report"] == "usage-alerts"
    [acme] = [r for r in data["rows"] if r["customer_id"] == "acme"]
    assert (acme["consumed"], acme["percent"], acme["threshold"], acme["rate_per_day"], acme["exhaustion"]) == (
        9_000, "75.0", 70, "300.00", "2026-04-10")
    assert data["totals"] == [{"threshold": 70, "customers": 1}, {"threshold": 90, "customers": 1},
                              {"threshold": 100, "customers": 1}]


def test_usage_alerts_below_70_percent_and_voided_usage(books):
    """acme at the end of February: nothing used yet, no alert (0%). In March 300 a day for 30
    days is 9,000 (75%); voiding two of those days (600 credits, dated 2026-03-31) brings it to
    8,400 of 12,000 = 70.0%: still the 70% alert, with the voided units netted out of the rate
    too: 8,400 / 30 = 280.00 a day; 3,600 left last ceil(3,600 / 280) = 13 days -> 2026-04-13."""
    books.post("\n".join(ALERTS[:2]))
    with books.session() as s:
        assert usage_alerts(s, "2026-02", tz=books.catalog.tz).rows == []
    books.post("\n".join(ALERTS[2:32]))
    books.post("\n".join(ev(f"v-{d}", "event.voided", "2026-03-31T20:00:00Z", target_event_id=f"u-acme-{d}",
                            reason="duplicate meter reading") for d in (5, 6)))
    with books.session() as s:
        [row] = usage_alerts(s, "2026-03", tz=books.catalog.tz).rows
    assert (row["consumed"], row["percent"], row["threshold"], row["rate_per_day"], row["outstanding"],
            row["exhaustion"]) == (8_400, "70.0", 70, "280.00", 3_600, "2026-04-13")


# --------------------------------------------------------------------------- waterfall
WATERFALL = [
    customer("beta"), commitment("beta", "com-beta", 12_000, "600.00"),
    *daily_usage("beta", 100, range(2, 32)),
    ev("e-top-beta", "topup.purchased", "2026-03-31T12:00:00Z", customer_id="beta", topup_id="top-beta",
       credits=8_000, amount="120.00", expires_at="2026-06-01T00:00:00Z"),
    customer("gamma"),
    ev("e-top-gamma", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="gamma", topup_id="top-gamma",
       credits=1_000, amount="50.00"),
    customer("zeta"),
    ev("e-top-zeta", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="zeta", topup_id="top-zeta",
       credits=10_000, amount="100.00"),
    ev("u-zeta", "usage.recorded", "2026-03-15T09:00:00Z", customer_id="zeta", credits=1_000),
    customer("delta", "EUR"),
    ev("e-top-delta", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="delta", topup_id="top-delta",
       credits=1_000, amount="30.00", expires_at="2027-06-01T00:00:00Z"),
]
MONTHS = ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12",
          "2027-01", "2027-02", "2027-03"]


def _schedule(row: dict) -> dict[str, int]:
    return {k: row[k] for k in ("due", *MONTHS, "later", "no_expiry") if row[k]}


def test_waterfall_by_expiry_and_at_the_consumption_rate(books):
    """At the end of March 2026 (January to March closed), USD:

    - beta: a 12,000-credit commitment at 600.00 for 2026 (0.05 a credit); 100 credits used on
      each of the last 30 days (3,000, all from the commitment), so 450.00 is deferred on 9,000
      credits; on 2026-03-31 after that usage an 8,000-credit top-up for 120.00 expiring
      2026-06-01T00:00, i.e. its last day is 2026-05-31.
      By expiry: 120.00 in 2026-05 (two months after the period), 450.00 in 2026-12.
      At 100 a day, drawn soonest expiry first: the top-up gives 3,000 in April
      (round(12000 x 3000 / 8000) = 45.00) and 3,100 in May (cumulative 6,100:
      round(12000 x 6100 / 8000) = 91.50, so 46.50), and expires with 1,900 left: 28.50 of
      breakage also in May (75.00 in May). The commitment is drawn from June 1: 3,000 in June
      (150.00), 3,100 in July (155.00), the last 2,900 in August (145.00).
    - gamma: 1,000 credits for 50.00 that never expire, no usage: 50.00 "no expiry" both ways.
    - zeta: 10,000 never-expiring credits for 100.00; 1,000 used on 2026-03-15, so 90.00 on 9,000
      credits (a cent a credit) and a rate of 1,000 / 30 = 33.33 a day. Day k draws
      floor(1000k / 30) - floor(1000(k - 1) / 30): April (days 1-30) 1,000 = 10.00, May (31-61)
      2,033 - 1,000 = 10.33, June 10.00, July 10.33, August (123-153) 5,100 - 4,066 = 10.34,
      September 10.00, October 10.33, November 10.00, and December the last 867 = 8.67.

    EUR: delta, 1,000 credits for 30.00 expiring 2027-06-01: last day in 2027-05, past the 12
    months (2026-04..2027-03): "later" both ways (no usage).

    Totals per currency equal 2100 + 2150 on the ledger: USD 710.00, EUR 30.00."""
    books.post("\n".join(WATERFALL))
    _close(books, "2026-01", "2026-02", "2026-03")
    with books.session() as s:
        rep = waterfall(s, "2026-03", tz=books.catalog.tz)
        on_ledger = ledger_deferred(s, "2026-03")
    assert [c.key for c in rep.columns][5:] == ["due", *MONTHS, "later", "no_expiry", "total"]
    rows = {(r["customer_id"], r["method"]): r for r in rep.rows}
    assert _schedule(rows[("beta", "by_expiry")]) == {"2026-05": 120_00, "2026-12": 450_00}
    assert _schedule(rows[("beta", "at_rate")]) == {"2026-04": 45_00, "2026-05": 75_00, "2026-06": 150_00,
                                                    "2026-07": 155_00, "2026-08": 145_00}
    assert rows[("beta", "at_rate")]["rate_per_day"] == "100.00"
    assert rows[("beta", "by_expiry")]["rate_per_day"] is None
    for method in ("by_expiry", "at_rate"):
        assert _schedule(rows[("gamma", method)]) == {"no_expiry": 50_00}
        assert _schedule(rows[("delta", method)]) == {"later": 30_00}
        assert rows[("beta", method)]["total"] == 570_00
    assert _schedule(rows[("zeta", "by_expiry")]) == {"no_expiry": 90_00}
    assert _schedule(rows[("zeta", "at_rate")]) == {
        "2026-04": 10_00, "2026-05": 10_33, "2026-06": 10_00, "2026-07": 10_33, "2026-08": 10_34,
        "2026-09": 10_00, "2026-10": 10_33, "2026-11": 10_00, "2026-12": 8_67}
    assert rows[("zeta", "at_rate")]["rate_per_day"] == "33.33"
    # totals per currency and method tie to the ledger's 2100 + 2150
    assert on_ledger == {"USD": 710_00, "EUR": 30_00}
    assert _deferred_on_ledger(books, "USD", "2026-03") == 710_00
    totals = {(t["currency"], t["method"]): t for t in rep.totals}
    assert set(totals) == {("EUR", "by_expiry"), ("EUR", "at_rate"), ("USD", "by_expiry"), ("USD", "at_rate")}
    for (cur, _), t in totals.items():
        assert t["total"] == t["ledger"] == on_ledger[cur]
    assert _schedule(totals[("USD", "by_expiry")]) == {"2026-05": 120_00, "2026-12": 450_00, "no_expiry": 140_00}
    assert _schedule(totals[("USD", "at_rate")]) == {
        "2026-04": 55_00, "2026-05": 85_33, "2026-06": 160_00, "2026-07": 165_33, "2026-08": 155_34,
        "2026-09": 10_00, "2026-10": 10_33, "2026-11": 10_00, "2026-12": 8_67, "no_expiry": 50_00}
    # the command line gives the same numbers as decimal strings
    data = _json(books, "waterfall", "--period", "2026-03")
    assert data["report"] == "waterfall" and data["period"] == "2026-03"
    [beta] = [r for r in data["rows"] if r["customer_id"] == "beta" and r["method"] == "at_rate"]
    assert (beta["2026-04"], beta["2026-05"], beta["2026-08"], beta["total"]) == ("45.00", "75.00", "145.00", "570.00")
    usd = [t for t in data["totals"] if t["currency"] == "USD"]
    assert [(t["method"], t["total"], t["ledger"]) for t in usd] == [("by_expiry", "710.00", "710.00"),
                                                                   ("at_rate", "710.00", "710.00")]


def test_waterfall_subscription_due_before_the_close_and_rolled_credits_after(books):
    """Professional from 2026-03-01 (README worked example): 256.65 deferred on the month's grant
    (2100) and 42.35 of platform access (2150); 3,200 credits used on 2026-03-10 relieve 164.26.

    Before March is closed nothing has run the month end: 92.39 is still on the grant, which
    expires at 2026-04-01T00:00 (last day 2026-03-31), and 42.35 on 2150 for a service ending
    2026-03-31. Both are "due": the close recognises them in March. Total 134.74 = 2100 + 2150.

    After the close, 450 credits rolled into sub-1:2026-03~r1 carrying 23.09, expiring with
    April (last day 2026-04-30); April's bill is dated 2026-04-01, so it is not deferred at the
    end of March. By expiry 23.09 in 2026-04; at 3,200 / 30 = 106.67 a day the 450 credits are
    used in April too: 23.09 in 2026-04. 2150 is 0."""
    books.post(customer("acme") + "\n"
               + ev("sub-1", "subscription.started", "2026-03-01T00:00:00Z", customer_id="acme",
                    plan="professional", start_date="2026-03-01") + "\n"
               + ev("u-1", "usage.recorded", "2026-03-10T00:00:00Z", customer_id="acme", credits=3_200))
    with books.session() as s:
        before = waterfall(s, "2026-03", tz=books.catalog.tz)
    assert _deferred_on_ledger(books, "USD", "2026-03") == 134_74
    for row in before.rows:
        assert _schedule(row) == {"due": 134_74}
    assert [t["ledger"] for t in before.totals] == [134_74, 134_74]
    books.close("2026-03")
    with books.session() as s:
        after = waterfall(s, "2026-03", tz=books.catalog.tz)
    assert _deferred_on_ledger(books, "USD", "2026-03") == 23_09
    assert [(r["method"], _schedule(r), r["rate_per_day"]) for r in after.rows] == [
        ("by_expiry", {"2026-04": 23_09}, None), ("at_rate", {"2026-04": 23_09}, "106.67")]
    assert [(t["total"], t["ledger"]) for t in after.totals] == [(23_09, 23_09), (23_09, 23_09)]


def test_reports_refuse_a_malformed_period_and_write_csv(books, tmp_path):
    """--period 2026-13 is a usage error (exit 2); --format csv --out writes the file."""
    result = CliRunner().invoke(cli, ["--database-url", books.url, "report", "waterfall", "--period", "2026-13"])
    assert result.exit_code == 2
    books.post("\n".join(ALERTS[:32]))
    out = tmp_path / "alerts.csv"
    result = CliRunner().invoke(cli, ["--database-url", books.url, "report", "usage-alerts", "--period", "2026-03",
                                      "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("customer_id,customer,scope,grant_id,granted,consumed,percent,threshold")
    assert lines[1].startswith("acme,Acme,commitment,com-acme,12000,9000,75.0,70,3000,300.00,2026-04-10")
