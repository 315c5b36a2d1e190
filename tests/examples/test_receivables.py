"""Receivables (docs/design.md §5.8), on SQLite and PostgreSQL: an overpayment waits in 2200 and is
applied to the next invoice automatically; AR aging buckets at a frozen date."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from ledger.cli import cli
from builders import import_in_process

TAXED = ('{"id": "c-acme", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
         '"customer_id": "acme", "name": "Acme AI", "currency": "USD", "tax_rate": "0.0825"}')


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, "customer_id": "acme", **fields})


def topup(eid: str, when: str, amount: str, credits: int = 1000) -> str:
    return ev(eid, "topup.purchased", when, topup_id=f"top-{eid}", credits=credits, amount=amount)


@pytest.fixture
def books(make_books):
    return make_books()


def test_overpayment_is_applied_to_the_next_invoice(books):
    """21.65 is due (20.00 + 8.25% tax); 30.00 is paid: 8.35 waits in 2200. The next top-up's
    invoice of 10.83 (10.00 + 0.83) takes 8.35 of it (Dr 2200 / Cr 1100), leaving 2.48 due."""
    books.post(TAXED + "\n" + topup("t1", "2026-01-02T00:00:00Z", "20.00") + "\n"
               + ev("pay", "payment.received", "2026-01-03T00:00:00Z", amount="30.00"))
    assert books.balance("2200") == 8_35 and books.balance("1100") == 0
    books.post(topup("t2", "2026-01-10T00:00:00Z", "10.00"))
    assert books.balance("2200") == 0
    assert books.balance("1100") == 10_83 - 8_35
    assert books.verify() == []


def test_ar_aging_buckets_at_a_frozen_date(books, tmp_path):
    """Invoices issued 2026-01-02, 2026-02-20 and 2026-03-25 with 30 days' terms (due 2026-02-01,
    2026-03-22, 2026-04-24). On 2026-04-15: 73 days past due (61-90), 24 days (1-30), not yet due
    (current); a partial payment of 5.00 against the oldest reduces its bucket."""
    books.post(TAXED.replace('"tax_rate": "0.0825"', '"tax_rate": "0"') + "\n"
               + topup("t1", "2026-01-02T00:00:00Z", "100.00") + "\n"
               + topup("t2", "2026-02-20T00:00:00Z", "40.00") + "\n"
               + topup("t3", "2026-03-25T00:00:00Z", "7.00") + "\n"
               + ev("pay", "payment.received", "2026-04-01T00:00:00Z", amount="5.00", invoice_number="INV-2026-000001"))
    with freeze_time("2026-04-15"):
        result = CliRunner().invoke(cli, ["--database-url", books.url, "report", "ar-aging", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [row] = data["rows"]
    assert (row["current"], row["1-30"], row["31-60"], row["61-90"], row["over_90"], row["total"], row["invoices"]) == (
        "7.00", "40.00", "0.00", "95.00", "0.00", "142.00", 3)
    # at the end of February only the first invoice is past due (27 days) and the second is current
    result = CliRunner().invoke(cli, ["--database-url", books.url, "report", "ar-aging", "--period", "2026-02",
                                      "--format", "json"])
    [row] = json.loads(result.output)["rows"]
    assert (row["current"], row["1-30"], row["total"]) == ("40.00", "100.00", "140.00")


def test_statement_of_account_runs_the_balance(books):
    """Invoice 21.65, payment 30.00 (8.35 to the credit balance), invoice 10.83 with 8.35 applied:
    the customer owes 2.48 at the end, and every line says which document it belongs to."""
    books.post(TAXED + "\n" + topup("t1", "2026-01-02T00:00:00Z", "20.00") + "\n"
               + ev("pay", "payment.received", "2026-01-03T00:00:00Z", amount="30.00") + "\n"
               + topup("t2", "2026-01-10T00:00:00Z", "10.00"))
    result = CliRunner().invoke(cli, ["--database-url", books.url, "report", "customer", "--customer", "acme",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(r["document"], r["debit"], r["credit"], r["balance"]) for r in data["rows"]] == [
        ("INV-2026-000001", "21.65", "0.00", "21.65"),
        ("INV-2026-000001", "0.00", "21.65", "0.00"),  # the payment settles the invoice
        ("", "0.00", "8.35", "-8.35"),                 # the excess, to the credit balance
        ("INV-2026-000002", "10.83", "0.00", "2.48"),
    ]
    assert data["totals"][0]["balance"] == "2.48"
    missing = CliRunner().invoke(cli, ["--database-url", books.url, "report", "customer", "--customer", "nobody"])
    assert str(missing.exception) == "no customer 'nobody'"  # ledger.cli.main turns it into exit 1


@pytest.mark.postgres
def test_invoice_numbers_stay_gap_free_under_four_concurrent_importers(pg_url, tmp_path):
    """Four processes post 15 top-ups each, for their own customers, at the same time: the 60
    invoices get INV-2026-000001 .. 000060 with no gap and no duplicate, because each number is
    taken under a row lock on its (series, year) sequence inside the posting transaction."""
    import multiprocessing as mp

    import sqlalchemy as sa

    from ledger.store.db import make_engine
    from ledger.store.models import Invoice

    paths = []
    for w in range(4):
        lines = [json.dumps({"id": f"c{w}", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                             "customer_id": f"cus{w}", "name": f"Customer {w}", "currency": "USD"})]
        lines += [json.dumps({"id": f"t{w}-{i}", "type": "topup.purchased", "occurred_at": f"2026-01-02T00:{i:02d}:00Z",
                              "customer_id": f"cus{w}", "topup_id": f"top{w}-{i}", "credits": 100, "amount": "10.00"})
                  for i in range(15)]
        p = tmp_path / f"w{w}.jsonl"
        p.write_text("\n".join(lines) + "\n")
        paths.append(str(p))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=import_in_process, args=(pg_url, p)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    engine = make_engine(pg_url)
    with engine.connect() as c:
        numbers = sorted(c.execute(sa.select(Invoice.sequence).where(Invoice.series == "INV")).scalars())
    engine.dispose()
    assert numbers == list(range(1, 61))
