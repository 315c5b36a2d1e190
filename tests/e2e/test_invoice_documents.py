"""Invoices and credit notes rendered from the books (docs/design.md §5.8), on SQLite and PostgreSQL.

A catalog with the seller's tax and VAT ids, a logo and a template folder; a German customer
with locale de_DE and a VAT id. Each PDF is read back: the Factur-X XML validates against the
library's EN 16931 schema and carries the stored totals; the logo is drawn; a custom template
replaces the bundled one and still escapes customer text; money follows the customer's locale.
"""

from __future__ import annotations

import base64
import json

import facturx
import pytest
import sqlalchemy as sa
from conftest import PLANS_CATALOG
from lxml import etree
from pypdf import PdfReader

from ledger.catalog import load_catalog
from ledger.store.models import Invoice
from reports.documents import facturx_invoice, render_invoice

NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">'
        '<rect width="120" height="30" fill="#13a57b"/></svg>')


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


KESTREL = ev("c-k", "customer.created", "2026-01-01T00:00:00Z", customer_id="kestrel",
             name="Kestrelwerk <Bioinformatik> GmbH", currency="EUR", tax_rate="0.19",
             address=["Lindenhofstrasse 14", "80331 München", "Germany"], email="rechnung@kestrel.example",
             locale="de_DE", country="DE", vat_id="DE129273398")


@pytest.fixture
def shop(make_books, tmp_path):
    """Books whose catalog has a tax id, a VAT id, a logo and (optionally used) a template folder."""
    folder = tmp_path / "brand"
    folder.mkdir()
    (folder / "logo.svg").write_text(LOGO, encoding="utf-8")
    text = PLANS_CATALOG.replace('payment_terms_days = 30', 'payment_terms_days = 30\ntax_id = "94-1234567"\n'
                                 'vat_id = "FR40303265045"\nlogo = "brand/logo.svg"')
    text += '\n[topups.pack_eur]\ncredits = 1000\nprice = "20.00"\ncurrency = "EUR"\n'
    (tmp_path / "ledger.toml").write_text(text, encoding="utf-8")
    books = make_books()
    books.catalog = load_catalog(tmp_path / "ledger.toml", required=True)
    books.post("\n".join([
        KESTREL,
        ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="kestrel", topup_id="t-1", pack="pack_eur"),
        ev("t-2", "topup.purchased", "2026-01-06T10:00:00Z", customer_id="kestrel", topup_id="t-2",
           credits=50000, amount="1234.50"),
        ev("r-1", "refund.issued", "2026-01-07T10:00:00Z", customer_id="kestrel", grant_ref="t-1", credits=500),
    ]))
    return books


def _numbers(books) -> list[str]:
    with books.session() as s:
        return list(s.execute(sa.select(Invoice.number).order_by(Invoice.number)).scalars())


def test_invoice_pdf_embeds_valid_facturx_with_the_stored_totals(shop, tmp_path):
    """INV-2026-000002: 50,000 credits for 1,234.50 EUR + 19% VAT 234.56 = 1,469.06 EUR."""
    with shop.session() as s:
        path = render_invoice(s, shop.catalog, "INV-2026-000002", tmp_path / "inv.pdf")
    name, xml = facturx.get_facturx_xml_from_pdf(path.read_bytes(), check_xsd=True)
    assert name == "factur-x.xml"
    root = etree.fromstring(xml)
    assert root.findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=NS) == "INV-2026-000002"
    assert root.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "380"
    totals = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert totals.findtext("ram:TaxBasisTotalAmount", namespaces=NS) == "1234.50"
    assert totals.findtext("ram:GrandTotalAmount", namespaces=NS) == "1469.06"
    assert totals.findtext("ram:DuePayableAmount", namespaces=NS) == "1469.06"
    assert root.findtext(".//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID", namespaces=NS) == "DE129273398"
    assert root.findtext(".//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:CountryID", namespaces=NS) == "DE"
    text = " ".join(PdfReader(path).pages[0].extract_text().split())
    assert "1.469,06 €" in text and "Kestrelwerk <Bioinformatik> GmbH" in text, text  # de_DE money, escaped name


def test_credit_note_is_381_referencing_its_invoice(shop, tmp_path):
    """The refund of 500 of t-1's 1,000 credits: 10.00 + 1.90 VAT, correcting INV-2026-000001."""
    with shop.session() as s:
        data = facturx_invoice(s, shop.catalog, "CN-2026-000001")
        path = render_invoice(s, shop.catalog, "CN-2026-000001", tmp_path / "cn.pdf")
    assert (data.type_code, data.total, data.preceding_invoice) == ("381", data.subtotal + data.tax, "INV-2026-000001")
    assert str(data.total) == "11.90"
    _, xml = facturx.get_facturx_xml_from_pdf(path.read_bytes(), check_xsd=True)
    root = etree.fromstring(xml)
    assert root.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS) == "INV-2026-000001"


def test_logo_is_drawn_and_no_other_file_is_read(shop, tmp_path, monkeypatch):
    from reports import pdf

    seen: list[str] = []
    original = pdf.StaticAssetFetcher.fetch

    def spy(self, url, headers=None):
        seen.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(pdf.StaticAssetFetcher, "fetch", spy)
    with shop.session() as s:
        path = render_invoice(s, shop.catalog, "INV-2026-000001", tmp_path / "logo.pdf")
    stored = "data:image/svg+xml;base64," + base64.b64encode(LOGO.encode()).decode()
    assert stored in seen, seen  # the logo the invoice stored when it was issued, not the file
    assert all(u == stored or u.endswith("/document.css") or "/fonts/" in u for u in seen), seen
    drawn = PdfReader(path).pages[0].get_contents().get_data()
    assert b"0.07451 0.647059 0.482353 rg" in drawn  # the logo's rectangle, #13a57b, a colour nothing else uses


def test_template_folder_from_the_catalog_replaces_the_layout_and_still_escapes(shop, tmp_path):
    folder = tmp_path / "brand" / "templates"
    folder.mkdir()
    (folder / "document.html").write_text(
        "<html><body><h1>Rechnung {{ view.number }}</h1><p>{{ view.buyer.name }}</p>"
        "<p>Gesamt {{ view.total }}</p></body></html>", encoding="utf-8")
    toml = (tmp_path / "ledger.toml").read_text(encoding="utf-8")
    (tmp_path / "ledger.toml").write_text(toml.replace('logo = "brand/logo.svg"', 'templates = "brand/templates"'),
                                          encoding="utf-8")
    shop.catalog = load_catalog(tmp_path / "ledger.toml", required=True)
    with shop.session() as s:
        path = render_invoice(s, shop.catalog, "INV-2026-000002", tmp_path / "custom.pdf")
    text = " ".join(PdfReader(path).pages[0].extract_text().split())
    assert text.startswith("Rechnung INV-2026-000002"), text
    assert "Kestrelwerk <Bioinformatik> GmbH" in text and "Gesamt 1.469,06 €" in text


def test_no_tax_id_means_no_facturx_but_still_a_pdf(make_books, tmp_path):
    books = make_books()
    books.post("\n".join([KESTREL.replace('"EUR"', '"USD"'),
                          ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="kestrel",
                             topup_id="t-1", credits=10, amount="1.00")]))
    with books.session() as s:
        assert facturx_invoice(s, books.catalog, "INV-2026-000001") is None
        path = render_invoice(s, books.catalog, "INV-2026-000001", tmp_path / "plain.pdf")
    assert PdfReader(path).attachments == {}
    assert _numbers(books) == ["INV-2026-000001"]


def test_hostile_customer_text_from_an_event_file_is_printed_not_fetched(make_books, tmp_path, monkeypatch):
    """A customer named `<img src="http://127.0.0.1:9/x">` with `file:///etc/passwd` as an address
    line, imported like any other: the PDF shows both as text, and the renderer asked for nothing
    but the bundled stylesheet and fonts (every fetch is recorded by a spy on the fetcher)."""
    import socket

    from reports import pdf

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    hostile = f'<img src="http://127.0.0.1:{port}/x">'
    books = make_books()
    books.post("\n".join([
        ev("c-h", "customer.created", "2026-01-01T00:00:00Z", customer_id="h", name=hostile, currency="USD",
           address=["file:///etc/passwd", f"<link rel=stylesheet href=http://127.0.0.1:{port}/s.css>"]),
        ev("t-h", "topup.purchased", "2026-01-02T00:00:00Z", customer_id="h", topup_id="t-h", credits=10, amount="1.00"),
    ]))
    seen: list[str] = []
    original = pdf.StaticAssetFetcher.fetch

    def spy(self, url, headers=None):
        seen.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(pdf.StaticAssetFetcher, "fetch", spy)
    with books.session() as s:
        path = render_invoice(s, books.catalog, "INV-2026-000001", tmp_path / "hostile.pdf")
    text = PdfReader(path).pages[0].extract_text().replace("\n", "")
    assert hostile in text and "file:///etc/passwd" in text
    assert seen and all(url.startswith(pdf.STATIC_DIR.as_uri()) for url in seen), seen
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    assert not connected
