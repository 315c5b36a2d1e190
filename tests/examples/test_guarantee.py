"""The no-increase guarantee (docs/design.md §5.9), worked examples on SQLite and PostgreSQL.

The pricing research example: a customer paid 750.00 a month per seat and moves to Professional
(299.00 a month with 5,000 credits, overage 0.12 a credit). A month with 15,000 credits used
costs 299.00 + 10,000 x 0.12 = 1,499.00, so the monthly basis credits 749.00 at that month's
close; a month that stays on the plan fee (299.00) is under 750.00 and credits nothing.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from builders import ACME, PRO, TAXED, enrol, ev, usage

from ledger.errors import InvalidInputError
from ledger.store.models import GuaranteeMonth, Invoice, InvoiceLine


def lines(*items: str) -> str:
    return "\n".join(items)


@pytest.fixture
def books(make_books):
    return make_books()


def _guarantee_notes(books) -> list[Invoice]:
    with books.session() as s:
        rows = list(s.execute(sa.select(Invoice).where(Invoice.category == "guarantee").order_by(Invoice.number)).scalars())
        s.expunge_all()
        return rows


def _months(books) -> dict[str, GuaranteeMonth]:
    with books.session() as s:
        rows = {m.period: m for m in s.execute(sa.select(GuaranteeMonth)).scalars()}
        s.expunge_all()
        return rows


def test_monthly_basis_credits_749_and_nothing_under_the_legacy_bill(books):
    """March: 15,000 credits used, 1,499.00 charged (299.00 fee + 1,200.00 overage), credit
    749.00 (Dr 4900 / Cr 2200) on a credit note dated March 31. April stays at 299.00: no credit.
    The 749.00 credit balance pays April's bill (issued April 1) and then May's (issued at April's
    close): 749.00 - 299.00 - 299.00 = 151.00 left in 2200."""
    books.post(lines(ACME, enrol(), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000),
                     usage("u2", "2026-04-10T12:00:00Z", 3_000)))
    books.close("2026-03")
    months = _months(books)
    march = months["2026-03"]
    assert (march.subscription, march.overage, march.topups, march.commitments) == (299_00, 1_200_00, 0, 0)
    assert (march.charges, march.legacy, march.credit) == (1_499_00, 750_00, 749_00)
    [note] = _guarantee_notes(books)
    assert (note.kind, note.subtotal, note.tax, note.total, note.issue_date.isoformat(), note.service_period) == (
        "credit_note", 749_00, 0, 749_00, "2026-03-31", "2026-03")
    assert march.credit_note == note.number
    assert books.balance("4900", period="2026-03") == 749_00
    assert books.balance("2200", through="2026-03") == 749_00

    books.close("2026-04")
    april = _months(books)["2026-04"]
    assert (april.charges, april.credit, april.credit_note) == (299_00, 0, None)
    assert len(_guarantee_notes(books)) == 1
    assert books.balance("4900", through="2026-04") == 749_00
    # April's and May's subscription invoices were paid from the credit balance
    assert books.balance("2200", through="2026-04") == 749_00 - 299_00
    assert books.balance("2200") == 151_00
    with books.session() as s:
        april_bill = s.execute(sa.select(Invoice).where(Invoice.category == "subscription",
                                                        Invoice.service_period == "2026-04")).scalar_one()
    assert april_bill.total == 299_00
    # still owed: March's bill 299.00 and March's overage invoice 1,200.00 (issued before the credit)
    assert books.balance("1100", customer="acme") == 1_499_00
    assert books.verify() == []


def test_taxed_credit_carries_its_tax_share(books):
    """With 8.25% sales tax the 749.00 credit returns 749.00 x 0.0825 = 61.79 of tax:
    Dr 4900 749.00 / Dr 2400 61.79 / Cr 2200 810.79."""
    books.post(lines(TAXED, enrol(), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000)))
    books.close("2026-03")
    [note] = _guarantee_notes(books)
    assert (note.subtotal, note.tax, note.total) == (749_00, 61_79, 810_79)
    with books.session() as s:
        entry_lines = s.execute(sa.text(
            "SELECT account_code, debit, credit FROM journal_line WHERE invoice_number = :n ORDER BY account_code"),
            {"n": note.number}).all()
    assert [tuple(r) for r in entry_lines] == [("2200", 0, 810_79), ("2400", 61_79, 0), ("4900", 749_00, 0)]
    assert books.verify() == []


def test_cumulative_basis_one_credit_at_the_end_of_the_window(books):
    """Three months, cumulative: 1,499.00 + 299.00 + 899.00 (11,250 credits used in May against
    5,000 included and 1,250 rolled over from April's unused 5,000 at 25%: 5,000 overage x 0.12 =
    600.00) = 2,697.00 against 3 x 750.00 = 2,250.00: one credit of 447.00 at
    May's close. The monthly basis would have credited 749.00 + 0 + 149.00 = 898.00."""
    books.post(lines(ACME, enrol("cumulative", 3), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000),
                     usage("u2", "2026-05-20T12:00:00Z", 11_250)))
    books.close("2026-03")
    books.close("2026-04")
    assert _guarantee_notes(books) == []
    assert _months(books) == {}
    books.close("2026-05")
    [note] = _guarantee_notes(books)
    assert (note.subtotal, note.issue_date.isoformat()) == (447_00, "2026-05-31")
    months = _months(books)
    assert [(m, r.charges, r.credit) for m, r in sorted(months.items())] == [
        ("2026-03", 1_499_00, 0), ("2026-04", 299_00, 0), ("2026-05", 899_00, 447_00)]
    assert books.balance("4900") == 447_00
    assert books.verify() == []
    # the credit note shows the whole window, month by month, and the cumulative calculation
    from pypdf import PdfReader

    from reports.documents import render_invoice

    with books.session() as s:
        path = render_invoice(s, books.catalog, note.number, books.tmp / "cumulative.pdf")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(path).pages).split())
    for row in ("Mar 2026 $750.00 $299.00 $1,200.00 $0.00 $1,499.00 $749.00",
                "Apr 2026 $750.00 $299.00 $0.00 $0.00 $299.00 -$451.00",
                "May 2026 $750.00 $299.00 $600.00 $0.00 $899.00 $149.00",
                "Total $2,250.00 $897.00 $1,800.00 $0.00 $2,697.00 $447.00"):
        assert row in text, (row, text)
    assert "Over Mar 2026 to May 2026: the sum of the new bills" in text, text
    assert "Credit under your no-increase guarantee for Mar 1 – May 31, 2026" in text, text


def test_monthly_basis_same_usage(books):
    """The same three months on the monthly basis: 749.00 (March) + 0 (April) + 149.00 (May)."""
    books.post(lines(ACME, enrol("monthly", 3), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000),
                     usage("u2", "2026-05-20T12:00:00Z", 11_250)))
    for m in ("2026-03", "2026-04", "2026-05", "2026-06"):
        books.close(m)
    assert [n.subtotal for n in _guarantee_notes(books)] == [749_00, 149_00]
    assert sorted(_months(books)) == ["2026-03", "2026-04", "2026-05"]  # nothing after the window
    assert books.balance("4900") == 898_00
    assert books.verify() == []


def test_commitment_share_and_top_ups_count_as_charges(books):
    """A 12,000.00 commitment for 2026-03-01..2027-02-28 (365 days) charges March
    round(1,200,000 x 31 / 365) = 1,019.18; a 20.00 pack bought in March adds 20.00; a top-up
    voided with a credit note charges nothing. March: 1,039.18 - 750.00 = 289.18 credited."""
    books.post(lines(
        ACME, enrol(),
        ev("com-1", "commitment.purchased", "2026-03-01T00:00:00Z", customer_id="acme", commitment_id="com-1",
           amount="12000.00", credits=240000, term_start="2026-03-01", term_end="2027-02-28"),
        ev("t-1", "topup.purchased", "2026-03-05T00:00:00Z", customer_id="acme", topup_id="t-1", pack="pack_1000"),
        ev("t-2", "topup.purchased", "2026-03-06T00:00:00Z", customer_id="acme", topup_id="t-2", pack="pack_1000"),
        ev("v-1", "event.voided", "2026-03-07T00:00:00Z", target_event_id="t-2", reason="bought twice"),
    ))
    books.close("2026-03")
    march = _months(books)["2026-03"]
    assert (march.commitments, march.topups, march.charges, march.credit) == (1_019_18, 20_00, 1_039_18, 289_18)
    books.close("2026-04")
    # April: round(1,200,000 x 61 / 365) - 101,918 = 2,005.48 - 1,019.18 = 986.30 -> 236.30 credited
    april = _months(books)["2026-04"]
    assert (april.commitments, april.credit) == (986_30, 236_30)
    assert books.verify() == []


def test_enrolment_after_the_months_closed_catches_up_in_the_open_period(books):
    """Enrolled late (after March closed), the March credit is posted on the first open day."""
    books.post(lines(ACME, PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000)))
    books.close("2026-03")
    books.post(ev("g-late", "guarantee.enrolled", "2026-04-02T00:00:00Z", customer_id="acme",
                  legacy_monthly_amount="750.00", start_month="2026-03", months=2))
    [note] = _guarantee_notes(books)
    assert (note.subtotal, note.issue_date.isoformat()) == (749_00, "2026-04-01")
    assert books.verify() == []


@pytest.mark.parametrize("fields, field, message", [
    ({"legacy_monthly_amount": "750.001"}, "legacy_monthly_amount", "decimal"),
    ({"legacy_monthly_amount": "0"}, "legacy_monthly_amount", "positive"),
    ({"start_month": "2026-13"}, "start_month", "pattern"),
    ({"months": 0}, "months", "greater than or equal to 1"),
    ({"basis": "weekly"}, "basis", "monthly"),
    ({"start_month": "2025-12"}, "start_month", "before customer acme was created"),
    ({"start_month": "2025-01", "months": 2}, "start_month", "before customer"),
])
def test_bad_enrolments_are_refused(books, fields, field, message):
    body = {"customer_id": "acme", "legacy_monthly_amount": "750.00", "start_month": "2026-03", **fields}
    with pytest.raises(InvalidInputError) as err:
        books.post(lines(ACME, ev("g-bad", "guarantee.enrolled", "2026-03-01T00:00:00Z", **body)))
    [problem] = err.value.problems
    assert problem.field == field and message in problem.message, problem
    assert books.count(Invoice) == 0


def test_overlapping_windows_and_voids_are_refused(books):
    books.post(lines(ACME, enrol()))
    with pytest.raises(InvalidInputError, match="already enrolled"):
        books.post(enrol(start="2026-05", eid="g-2"))
    with pytest.raises(InvalidInputError, match="cannot be voided"):
        books.post(ev("v-g", "event.voided", "2026-03-02T00:00:00Z", target_event_id="g-1", reason="x"))
    books.post(enrol(start="2026-09", eid="g-3"))  # the next window may follow
    assert books.count(InvoiceLine) == 0


def test_report_guarantees_lists_months_credits_and_cost(books):
    """`ledger report guarantees --period 2026-04`: the window's months up to April with legacy
    vs new bill, the March credit and its credit note, April open (not closed); the cost is the
    4900 balance, equal to the credits issued."""
    import json

    from click.testing import CliRunner

    from ledger.cli import cli

    books.post(lines(ACME, enrol(), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000),
                     usage("u2", "2026-04-10T12:00:00Z", 6_000)))
    books.close("2026-03")
    catalog = books.tmp / "ledger.toml"
    from conftest import PLANS_CATALOG

    catalog.write_text(PLANS_CATALOG, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--database-url", books.url, "--catalog", str(catalog), "report", "guarantees",
                                      "--period", "2026-04", "--format", "json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.output)
    [note] = _guarantee_notes(books)
    assert [(r["month"], r["legacy"], r["charges"], r["difference"], r["credit"], r["credit_note"], r["status"])
            for r in rep["rows"]] == [
        ("2026-03", "750.00", "1499.00", "749.00", "749.00", note.number, "evaluated"),
        # April so far: 299.00 fee; 1,000 credits beyond 5,000 not yet invoiced (overage is billed at the close)
        ("2026-04", "750.00", "299.00", "-451.00", "0.00", "", "open"),
    ]
    assert rep["totals"] == [{"currency": "USD", "customers": 1, "legacy": "1500.00", "charges": "1798.00",
                              "credit": "749.00", "cost": "749.00"}]
    table = CliRunner().invoke(cli, ["--database-url", books.url, "--catalog", str(catalog), "report", "guarantees",
                                     "--period", "2026-04", "--format", "table"])
    assert "Cost to date (4900 Guarantee credits), USD: 749.00" in table.output, table.output


def test_guarantee_credit_note_and_next_invoice_read_back_from_the_pdf(books, tmp_path):
    """The credit note shows both calculations side by side (legacy 750.00 vs the new bill
    1,499.00 = 299.00 fee + 1,200.00 overage, difference 749.00); April's invoice shows the
    credit balance applied and 0.00 due."""
    from pypdf import PdfReader

    from reports.documents import render_invoice

    books.post(lines(ACME, enrol(), PRO, usage("u1", "2026-03-20T12:00:00Z", 15_000)))
    books.close("2026-03")
    [note] = _guarantee_notes(books)
    with books.session() as s:
        april = s.execute(sa.select(Invoice.number).where(Invoice.service_period == "2026-04",
                                                          Invoice.category == "subscription")).scalar_one()
        render_invoice(s, books.catalog, note.number, tmp_path / "cn.pdf")
        render_invoice(s, books.catalog, april, tmp_path / "april.pdf")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(tmp_path / "cn.pdf").pages).split())
    assert note.number in text and "Credit note" in text
    assert "previous per-seat bill and new bill" in text.lower()
    assert "Mar 2026 $750.00 $299.00 $1,200.00 $0.00 $1,499.00 $749.00" in text, text
    assert "Credited to your account (USD) $749.00" in text
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(tmp_path / "april.pdf").pages).split())
    assert "Credit balance applied -$299.00" in text or "Credit balance applied −$299.00" in text, text
    assert "Amount due (USD) $0.00" in text
    low = text.lower()  # headings are upper-cased by the stylesheet
    assert "your credits on apr 1, 2026" in low, text  # April's 5,000 plan credits, valid through April 30
    assert "plan allowance apr 1, 2026 5,000 apr 30, 2026 (within 30 days)" in low, text
    assert "sub-1" not in low, text  # no internal id on the page
    assert "5,000 credits expire in the next 30 days" in low
