"""Invoices and credit notes in the customer's language, with payment instructions and the
invoice a credit note corrects (docs/design.md §8.5), on SQLite and PostgreSQL.

One customer per language (en_US, de_DE, fr_FR, es_ES in EUR; ja_JP in JPY) buys credits and
gets part of them refunded. Each invoice and credit note is rendered to PDF and read back with
pypdf: the labels are the translated ones, the invoice says how to pay (IBAN, BIC, its number as
payment reference) and the credit note does not, but names the invoice it corrects. The
embedded Factur-X XML validates with the factur-x library and carries the payment means (BG-16)
and the corrected invoice (BT-25, BT-26). The Japanese PDFs use the bundled Japanese font.
"""

from __future__ import annotations

import json

import facturx
import pytest
import sqlalchemy as sa
from conftest import PLANS_CATALOG
from lxml import etree
from pypdf import PdfReader

from ledger.catalog import load_catalog
from ledger.store.models import Invoice
from reports.documents import document_view, render_invoice

NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"}

PAYMENT = """
[company.payment]
account_holder = "Example AI SAS"
bank = "Banque Exemple"
iban = "FR76 3000 6000 0112 3456 7890 189"
bic = "AGRIFRPP"
note = "Wire fees are borne by the payer."
"""

# locale: (currency, invoice title, credit note title, amount-due label, payment heading, "corrects")
LANGUAGES = {
    "en_US": ("EUR", "Invoice", "Credit note", "Amount due", "How to pay", "Corrects invoice"),
    "de_DE": ("EUR", "Rechnung", "Gutschrift", "Zu zahlender Betrag", "Zahlungsinformationen", "Korrigiert Rechnung"),
    "fr_FR": ("EUR", "Facture", "Avoir", "Montant dû", "Modalités de paiement", "Rectifie la facture"),
    "es_ES": ("EUR", "Factura", "Factura rectificativa", "Importe a pagar", "Cómo pagar", "Rectifica la factura"),
    "ja_JP": ("JPY", "請求書", "クレジットノート", "ご請求金額", "お支払方法", "の訂正"),
}


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


@pytest.fixture
def polyglot(make_books, tmp_path):
    """Books with a payment block in the catalog and one customer per language: each buys 1,000
    credits (an invoice) and has 500 refunded (a credit note correcting that invoice)."""
    text = PLANS_CATALOG.replace("payment_terms_days = 30", 'payment_terms_days = 30\ntax_id = "94-1234567"\n'
                                 'vat_id = "FR40303265045"', 1) + PAYMENT
    (tmp_path / "ledger.toml").write_text(text, encoding="utf-8")
    books = make_books()
    books.catalog = load_catalog(tmp_path / "ledger.toml", required=True)
    events = []
    for i, (locale, (currency, *_)) in enumerate(LANGUAGES.items(), 1):
        cid = f"c-{locale}"
        events += [
            ev(f"c-{i}", "customer.created", "2026-03-01T00:00:00Z", customer_id=cid, name=f"Kunde {locale}",
               currency=currency, tax_rate="0.10", address=["1 Rue Exemple", "75001 Paris"], locale=locale,
               country="FR"),
            ev(f"t-{i}", "topup.purchased", f"2026-03-0{i + 1}T10:00:00Z", customer_id=cid, topup_id=f"top-{locale}",
               credits=1000, amount="2000" if currency == "JPY" else "20.00"),
            ev(f"r-{i}", "refund.issued", "2026-03-20T10:00:00Z", customer_id=cid, grant_ref=f"top-{locale}", credits=500),
        ]
    books.post("\n".join(events))
    return books


def _documents(books) -> dict[str, dict[str, str]]:
    """{locale: {"invoice": number, "credit_note": number}}."""
    out: dict[str, dict[str, str]] = {}
    with books.session() as s:
        for number, kind, customer in s.execute(sa.select(Invoice.number, Invoice.kind, Invoice.customer_id)):
            out.setdefault(customer.removeprefix("c-"), {})[kind] = number
    return out


def _text(path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split()).casefold()


def _fonts(path) -> set[str]:
    names = set()
    for page in PdfReader(path).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


def test_invoice_and_credit_note_in_each_language_read_back_from_the_pdf(polyglot, tmp_path):
    """Every label on the page is the customer's language; only the invoice says how to pay."""
    docs = _documents(polyglot)
    assert set(docs) == set(LANGUAGES)
    for locale, (_cur, title, cn_title, due, how, corrects) in LANGUAGES.items():
        inv, cn = docs[locale]["invoice"], docs[locale]["credit_note"]
        with polyglot.session() as s:
            inv_pdf = render_invoice(s, polyglot.catalog, inv, tmp_path / f"{locale}-inv.pdf")
            cn_pdf = render_invoice(s, polyglot.catalog, cn, tmp_path / f"{locale}-cn.pdf")
        text, cn_text = _text(inv_pdf), _text(cn_pdf)
        for label in (title, due, how, inv, "FR76 3000 6000 0112 3456 7890 189", "AGRIFRPP"):
            assert label.casefold() in text, (locale, label, text)
        assert f"top-{locale}".casefold() not in text, (locale, text)  # no internal id on the page
        for label in (cn_title, corrects, inv):
            assert label.casefold() in cn_text, (locale, label, cn_text)
        assert how.casefold() not in cn_text and "agrifrpp" not in cn_text, (locale, cn_text)
        if locale == "ja_JP":
            assert any("Ledger-Sans-JP" in f for f in _fonts(inv_pdf)), _fonts(inv_pdf)
            assert "クレジット追加購入" in text, text
        else:
            assert not any("Ledger-Sans-JP" in f for f in _fonts(inv_pdf)), _fonts(inv_pdf)


def test_facturx_carries_payment_means_and_the_corrected_invoice(polyglot, tmp_path):
    """The EUR invoice: SEPA credit transfer (58) to the IBAN and BIC, its number as payment
    reference; the JPY one: a credit transfer (30); the credit note: BT-25 and BT-26."""
    docs = _documents(polyglot)
    for locale, code in (("de_DE", "58"), ("ja_JP", "30")):
        with polyglot.session() as s:
            issue = s.get(Invoice, docs[locale]["invoice"]).issue_date
            inv_pdf = render_invoice(s, polyglot.catalog, docs[locale]["invoice"], tmp_path / "inv.pdf")
            cn_pdf = render_invoice(s, polyglot.catalog, docs[locale]["credit_note"], tmp_path / "cn.pdf")
        _, xml = facturx.get_facturx_xml_from_pdf(inv_pdf.read_bytes(), check_xsd=True)
        root = etree.fromstring(xml)
        settlement = root.find(".//ram:ApplicableHeaderTradeSettlement", NS)
        assert settlement.findtext("ram:PaymentReference", namespaces=NS) == docs[locale]["invoice"]
        means = settlement.find("ram:SpecifiedTradeSettlementPaymentMeans", NS)
        assert means.findtext("ram:TypeCode", namespaces=NS) == code
        assert means.findtext("ram:PayeePartyCreditorFinancialAccount/ram:IBANID", namespaces=NS) == \
            "FR7630006000011234567890189"
        assert means.findtext("ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID", namespaces=NS) == "AGRIFRPP"
        _, xml = facturx.get_facturx_xml_from_pdf(cn_pdf.read_bytes(), check_xsd=True)
        root = etree.fromstring(xml)
        ref = root.find(".//ram:InvoiceReferencedDocument", NS)
        assert ref.findtext("ram:IssuerAssignedID", namespaces=NS) == docs[locale]["invoice"]
        assert ref.findtext("ram:FormattedIssueDateTime/qdt:DateTimeString", namespaces=NS) == \
            issue.strftime("%Y%m%d")
        assert root.find(".//ram:SpecifiedTradeSettlementPaymentMeans", NS) is None


def test_credits_table_is_taken_just_after_the_issuing_entry(polyglot):
    """A top-up bought at 10:00 and 300 credits used at 12:00 the same day: the invoice shows the
    1,000 credits it sold, not the 700 left at the end of the day."""
    polyglot.post("\n".join([
        ev("c-x", "customer.created", "2026-04-01T00:00:00Z", customer_id="x", name="X", currency="EUR",
           tax_rate="0", locale="en_US"),
        ev("t-x", "topup.purchased", "2026-04-02T10:00:00Z", customer_id="x", topup_id="top-x", credits=1000,
           amount="20.00"),
        ev("u-x", "usage.recorded", "2026-04-02T12:00:00Z", customer_id="x", credits=300),
    ]))
    with polyglot.session() as s:
        number = s.execute(sa.select(Invoice.number).where(Invoice.customer_id == "x")).scalar_one()
        view = document_view(s, polyglot.catalog, number)
    credits = next(t for t in view.tables if t.title.startswith("Your credits"))
    assert credits.rows == (("Top-up", "Apr 2, 2026", "1,000", "no expiry"),)
    assert view.lines[0].description == "Credit top-up: 1,000 credits, no expiry"
