"""close-report.pdf, the page a controller signs: the key figures beside the previous month's
with the change, receivables aged by days past due at the period end, the trial balance, and
charts that start when the books start, with readable months, in the documents' font. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from builders import ACME, ev, usage
from pypdf import PdfReader

from ledger.store.closing import close_record
from reports.close_charts import axis_labels, month_label
from reports.close_report import close_report_pdf, key_figures, month_figures

# Top-ups of 1,000 credits for 20.00 (0.02 a credit), never paid; payment terms 30 days.
HISTORY = "\n".join([
    ACME,
    ev("t-0", "topup.purchased", "2026-01-10T10:00:00Z", customer_id="acme", topup_id="t-0", pack="pack_1000"),
    usage("u-0", "2026-01-20T12:00:00Z", 400),
    usage("u-1", "2026-02-15T12:00:00Z", 300),
    ev("t-1", "topup.purchased", "2026-02-20T10:00:00Z", customer_id="acme", topup_id="t-1", pack="pack_1000"),
    usage("u-2", "2026-03-10T12:00:00Z", 200),
])


@pytest.fixture
def books(make_books, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1775000000")
    b = make_books()
    b.post(HISTORY)
    for period in ("2026-01", "2026-02", "2026-03"):
        b.close(period)
    return b


def _report(books, period: str) -> tuple[PdfReader, str]:
    with books.session() as s:
        pdf = close_report_pdf(s, books.catalog, period, close_record(s, period))
    path = books.tmp / f"close-{period}.pdf"
    path.write_bytes(pdf)
    reader = PdfReader(path)
    return reader, " ".join(" ".join(p.extract_text() for p in reader.pages).split())


def test_key_figures_sit_beside_the_previous_month_with_the_change(books):
    """March recognises 200 credits (4.00) against February's 300 (6.00): -2.00, -33%."""
    with books.session() as s:
        march, february = month_figures(s, "2026-03")["USD"], month_figures(s, "2026-02")["USD"]
        currencies, rows, prior = key_figures(s, "2026-03", "2026-01")
    assert (march["recognised"], february["recognised"]) == (400, 600)
    assert (march["invoiced"], february["invoiced"]) == (0, 2000)
    assert march["receivables"] == 4000 and march["past_due"] == 4000
    assert prior == "2026-02" and currencies == ["USD"]
    recognised = next(r for r in rows if r.label == "Recognised revenue, net")
    assert recognised.cells == [("6.00", "4.00", "-2.00 (-33%)")]
    _, text = _report(books, "2026-03")
    assert "Month-end close, Mar 2026 (2026-03)" in text
    assert "Key figures, Mar 2026 beside Feb 2026".upper() in text
    assert "Recognised revenue, net 6.00 4.00 -2.00 (-33%)" in text


def test_the_first_month_of_the_books_has_no_previous_month(books):
    with books.session() as s:
        _, rows, prior = key_figures(s, "2026-01", "2026-01")
    assert prior is None and rows[0].cells == [("", "8.00", "")]


def test_receivables_are_aged_by_days_past_due_at_the_period_end(books):
    """At 31 March: January's top-up (due 9 February) is 50 days past due, February's (due 22
    March) 9 days."""
    _, text = _report(books, "2026-03")
    assert "Current 1-30 days 31-60 days 61-90 days Over 90 days Total" in text
    assert "USD 2 0.00 20.00 20.00 0.00 0.00 40.00" in text


def test_trial_balance_and_sign_off_are_in_the_report(books):
    reader, text = _report(books, "2026-03")
    assert "TRIAL BALANCE AT 2026-03-31" in text  # headings are upper-cased by CSS
    assert "1100 Accounts receivable 40.00" in text
    assert "Prepared by" in text and "Reviewed and approved by" in text
    assert "invariant 6" in text


def test_charts_start_with_the_books_read_months_and_use_the_documents_font(books):
    """The books start in January: the charts show Jan to Mar 2026 (not the 9 empty months
    before), in Ledger Sans, the only font of the report."""
    reader, text = _report(books, "2026-03")
    assert "TRENDS, JAN 2026 TO MAR 2026" in text
    assert "Jan 2026 Feb 2026 Mar 2026" in text and "Dec 2025" not in text
    fonts = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            fonts.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    assert fonts and all(name.startswith("Ledger-Sans") for name in fonts), fonts
    assert len(reader.pages) == 3  # the signed page, the balances, revenue and the charts


def test_month_labels_and_the_report_bytes_are_stable(books):
    assert month_label("2026-10") == "Oct 2026" and month_label("2026-10", "de_DE") == "Okt. 2026"
    assert axis_labels(["2026-09", "2026-10"]) == ["Sep 2026", "Oct 2026"]
    year = axis_labels(["2025-11", "2025-12", *(f"2026-{m:02d}" for m in range(1, 11))])  # a year fits a third of a page
    assert year[:4] == ["Nov\n2025", "Dec", "Jan\n2026", "Feb"] and year[-1] == "Oct"
    with books.session() as s:
        record = close_record(s, "2026-03")
        assert close_report_pdf(s, books.catalog, "2026-03", record) == close_report_pdf(
            s, books.catalog, "2026-03", record)


def test_a_close_of_empty_books_has_a_report_too(make_books, monkeypatch):
    """A month closed before anything was posted: no journal head, no figures, no charts, and
    still a report that says so (it used to fail formatting the missing journal head)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1775000000")
    books = make_books()
    books.close("2026-01")
    reader, text = _report(books, "2026-01")
    assert "no entry yet; 0 entries dated in 2026-01 sealed" in text
    assert "(the first close of these books)" in text and "No receivable is open." in text
    assert "TRENDS" not in text


def test_the_gross_margin_section_flags_customers_under_the_threshold(make_books, tmp_path, monkeypatch):
    """With a cost of 0.015 a credit, March's 200 credits (4.00 of revenue at 0.02) cost 3.00:
    a margin of 1.00, 25.0%, under the 40% threshold, so acme is listed; the books without
    costs (the other tests) have no margin section at all."""
    from conftest import PLANS_CATALOG

    from ledger.catalog import load_catalog

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1775000000")
    path = tmp_path / "costs.toml"
    path.write_text(PLANS_CATALOG + '\n[costs]\ncredit = { USD = "0.015" }\n', encoding="utf-8")
    b = make_books()
    b.catalog = load_catalog(path, required=True)
    b.post(HISTORY)
    for period in ("2026-01", "2026-02", "2026-03"):
        b.close(period)
    assert b.balance("5000") == 900 * 15 // 10  # 900 credits used at 0.015: 13.50
    _, text = _report(b, "2026-03")
    assert "Gross margin, Mar 2026".upper() in text
    assert "USD 4.00 3.00 1.00 25.0%" in text
    assert "Under 40% gross margin: 1 of 1 customers".upper() in text
    assert "(acme) USD 4.00 3.00 25.0%" in text


def test_books_without_costs_have_no_margin_section(books):
    _, text = _report(books, "2026-03")
    assert "GROSS MARGIN" not in text
