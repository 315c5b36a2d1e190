"""PDF/A-3b, bundled fonts and Factur-X EN 16931 in rendered invoices and credit notes.

No database: documents are `DocumentView` values and `FacturXInvoice` values written by hand
with real numbers (a 120,000-credit commitment at $0.05, sales tax 8.25% on $6,513.08 is
$537.33). No veraPDF here (offline), so what PDF/A-3b requires is checked piece by piece on
the file read back with pypdf: the XMP identification (part 3, conformance B), the sRGB output
intent, every font embedded, info dictionary equal to the XMP, a file identifier, no
encryption, no JavaScript or actions, the associated file's /AF, /AFRelationship and MIME type.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

import facturx
import pytest
from babel.dates import format_date
from babel.numbers import format_currency
from fontTools.ttLib import TTFont
from lxml import etree
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject
from weasyprint.text.fonts import FontConfiguration

from reports import pdf
from reports.facturx import (
    FacturXInvoice,
    FacturXLine,
    FacturXParty,
    build_cii_xml,
)
from reports.pdf import (
    STATIC_DIR,
    StaticAssetFetcher,
    document_pdf_bytes,
    render_document_pdf,
)
from reports.views import DocumentLine, Party

EPOCH = "1790812800"  # 2026-10-01T00:00:00Z

from test_document_pdf import INVOICE

SELLER = FacturXParty(
    "Example AI, Inc.",
    ("1 Market St", "San Francisco, CA 94105", "USA"),
    "US",
    legal_registration_id="12-3456789",
    tax_registration_id="12-3456789",
)

FACTURX = FacturXInvoice(
    number="INV-2026-000001",
    type_code="380",
    issue_date=date(2026, 10, 1),
    currency="USD",
    seller=SELLER,
    buyer=FacturXParty(
        "Northwind Analytics LLC",
        ("500 Congress Ave, Suite 1200", "Austin, TX 78701", "USA"),
        "US",
        identifier="cus_0001",
        email="ap@northwind.example",
    ),
    lines=(
        FacturXLine(
            "Prepaid commitment C-1001: 120,000 credits, term 2026-10-01 to 2027-09-30",
            Decimal(120000),
            Decimal("0.05"),
            Decimal("6000.00"),
        ),
        FacturXLine("Professional plan, October 2026", Decimal(1), Decimal("299.00"), Decimal("299.00")),
        FacturXLine("Top-up pack pack_1000: 1,000 credits", Decimal(3), Decimal("20.00"), Decimal("60.00")),
        FacturXLine("Overage, September 2026", Decimal(1284), Decimal("0.12"), Decimal("154.08")),
    ),
    tax_rate=Decimal("0.0825"),
    subtotal=Decimal("6513.08"),
    tax=Decimal("537.33"),
    total=Decimal("7050.41"),
    amount_due=Decimal("7050.41"),
    due_date=date(2026, 10, 31),
    payment_terms="Net 30: due by October 31, 2026",
    buyer_reference="cus_0001",
    notes=("Unused credits of C-1001 roll over up to 25% into the next term.",),
)

CREDIT_NOTE = dataclasses.replace(
    INVOICE,
    title="Credit note",
    number="CN-2026-000001",
    due_date=None,
    lines=(DocumentLine("Refund of unused credits, C-1001", "40,000", "$0.05", "$2,000.00"),),
    subtotal="$2,000.00",
    tax="$165.00",
    total="$2,165.00",
    amount_due="$0.00",
    payment_terms="Applied to the customer credit balance",
    notes=(),
)

CREDIT_NOTE_FACTURX = dataclasses.replace(
    FACTURX,
    number="CN-2026-000001",
    type_code="381",
    lines=(
        FacturXLine(
            "Refund of unused credits, C-1001", Decimal(40000), Decimal("0.05"), Decimal("2000.00")
        ),
    ),
    subtotal=Decimal("2000.00"),
    tax=Decimal("165.00"),
    total=Decimal("2165.00"),
    amount_due=Decimal("0.00"),
    due_date=None,
    payment_terms="Applied to the customer credit balance",
    preceding_invoice="INV-2026-000001",
    notes=(),
)

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}


@pytest.fixture(autouse=True)
def fixed_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def xmp_properties(reader: PdfReader) -> dict[str, list[str]]:
    """Every XMP property as 'prefix:Name' -> its texts, from attributes and leaf elements (an
    rdf:li counts for the property around it). Asserts the packet has exactly one rdf:RDF."""
    packet = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    start, end = packet.index(b"<x:xmpmeta"), packet.rindex(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    rdfs = ElementTree.fromstring(packet[start:end]).findall("rdf:RDF", NS)
    assert len(rdfs) == 1
    prefixes = {uri: prefix for prefix, uri in NS.items()}
    found: dict[str, list[str]] = {}

    def name(tag: str) -> str:
        uri, local = tag[1:].split("}")
        return f"{prefixes.get(uri, uri)}:{local}"

    def visit(element: ElementTree.Element, owner: str | None) -> None:
        if not element.tag.startswith(f"{{{NS['rdf']}}}"):
            owner = name(element.tag)
        for attribute, value in element.attrib.items():
            if attribute.startswith("{") and not attribute.startswith(f"{{{NS['rdf']}}}"):
                found.setdefault(name(attribute), []).append(value)
        if len(element) == 0 and owner is not None:
            found.setdefault(owner, []).append(element.text or "")
        for child in element:
            visit(child, owner)

    visit(rdfs[0], None)
    return found


def walk(value, seen: set[int] | None = None):
    """Every dictionary reachable from ``value`` (direct or indirect), each once."""
    seen = set() if seen is None else seen
    if isinstance(value, IndirectObject):
        if value.idnum in seen:
            return
        seen.add(value.idnum)
        value = value.get_object()
    if isinstance(value, DictionaryObject):
        yield value
        for key, child in value.items():
            if key != "/Parent":
                yield from walk(child, seen)
    elif isinstance(value, ArrayObject):
        for child in value:
            yield from walk(child, seen)


def page_fonts(reader: PdfReader) -> list[DictionaryObject]:
    """Every font dictionary used by a page (Type0 fonts with their descendant CIDFonts)."""
    fonts = []
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts.append(font)
            fonts.extend(d.get_object() for d in font.get("/DescendantFonts", []))
    return fonts


def read(data: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(data))


def cii(xml: bytes, path: str) -> list[str]:
    return [node.text for node in etree.fromstring(xml).xpath(path, namespaces=NS)]


def test_pdf_declares_and_follows_pdfa_3b() -> None:
    """XMP says PDF/A-3 level B; sRGB output intent; file ID; no encryption, JavaScript or actions."""
    data = document_pdf_bytes(INVOICE)
    reader = read(data)

    assert data.startswith(b"%PDF-1.7\n")
    props = xmp_properties(reader)
    assert props["pdfaid:part"] == ["3"]
    assert props["pdfaid:conformance"] == ["B"]

    (intent,) = reader.trailer["/Root"]["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    assert "sRGB" in intent["/OutputConditionIdentifier"]
    profile = intent["/DestOutputProfile"].get_object()
    header = profile.get_data()[:40]
    assert profile["/N"] == 3 and header[16:20] == b"RGB " and header[36:40] == b"acsp"

    assert "/Encrypt" not in reader.trailer
    assert len(reader.trailer["/ID"]) == 2
    assert_no_actions_and_no_interpolation(reader)


def assert_no_actions_and_no_interpolation(reader: PdfReader) -> None:
    """No JavaScript, additional actions or forbidden action types; no image /Interpolate true."""
    forbidden_actions = {"/JavaScript", "/Launch", "/Sound", "/Movie", "/ResetForm", "/ImportData"}
    for obj in walk(reader.trailer["/Root"]):
        assert not {"/JS", "/JavaScript", "/AA"} & set(obj.keys())
        assert obj.get("/S") not in forbidden_actions
        assert obj.get("/Interpolate") in (None, False)


def test_info_dictionary_matches_xmp_dated_from_source_date_epoch() -> None:
    """PDF/A requires the info entries to equal their XMP counterparts."""
    reader = read(document_pdf_bytes(INVOICE))
    info = reader.metadata
    props = xmp_properties(reader)

    assert info["/Title"] == "Invoice INV-2026-000001" == props["dc:title"][0]
    assert [info["/Author"]] == props["dc:creator"] == ["Example AI, Inc."]
    assert [info["/Producer"]] == props["pdf:Producer"]
    assert [info["/Creator"]] == props["xmp:CreatorTool"]
    assert info["/CreationDate"] == info["/ModDate"] == "D:20261001000000Z"
    assert props["xmp:CreateDate"] == props["xmp:ModifyDate"] == ["2026-10-01T00:00:00Z"]


def test_every_font_is_embedded_and_is_the_bundled_font() -> None:
    """Each font has an embedded font program, and it is Ledger Sans (no DejaVu, no fallback)."""
    reader = read(document_pdf_bytes(INVOICE))
    fonts = page_fonts(reader)
    descriptors = [f["/FontDescriptor"].get_object() for f in fonts if "/FontDescriptor" in f]

    assert descriptors
    for descriptor in descriptors:
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor.keys())
        program = TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
        assert program["name"].getDebugName(1) == "Ledger Sans"
    base_names = sorted(str(f["/BaseFont"]).split("+")[-1] for f in fonts)
    assert set(base_names) == {"Ledger-Sans", "Ledger-Sans-Bold"}
    assert not any("DejaVu" in str(f["/BaseFont"]) for f in fonts)


def test_text_reads_back_with_number_and_totals(tmp_path: Path) -> None:
    """pypdf extracts the number, totals and tax from the bundled font's ToUnicode maps."""
    out = render_document_pdf(INVOICE, tmp_path / "invoice.pdf", facturx=FACTURX)
    text = "\n".join(page.extract_text() for page in PdfReader(out).pages)

    for expected in ("INV-2026-000001", "$7,050.41", "$537.33", "$6,513.08", "Sales tax (8.25%)"):
        assert expected in text


def test_babel_output_for_european_locales_needs_no_fallback_font() -> None:
    """Amounts and dates as Babel formats them (narrow NBSP, NBSP, €, ₹, £, ¥, ’), plus the
    typographic punctuation and U+2212 MINUS SIGN, render in the bundled font only: every
    character is in its cmap and the PDF uses no other font."""
    samples = []
    for locale, currency in (
        ("fr_FR", "EUR"), ("de_DE", "EUR"), ("de_CH", "CHF"), ("sv_SE", "SEK"),
        ("en_IN", "INR"), ("en_GB", "GBP"), ("en_US", "JPY"), ("pl_PL", "PLN"), ("cs_CZ", "CZK"),
    ):
        samples.append(format_currency(Decimal("-1234567.89"), currency, locale=locale))
        samples.append(format_currency(Decimal("7050.41"), currency, locale=locale))
        samples.append(format_date(date(2026, 10, 31), format="long", locale=locale))
    samples.append("\u2212 12.00 · – — ’ “ ” … Ł Ő Ž œ ₩ ₽ ₺ ₪ ₹ £ ¥")
    text = " ".join(samples)
    assert "\u202f" in text and "\u00a0" in text and "’" in samples[7]
    for weight in ("Regular", "Bold"):
        cmap = TTFont(STATIC_DIR / "fonts" / f"LedgerSans-{weight}.ttf").getBestCmap()
        assert [ch for ch in text if ord(ch) not in cmap] == []

    view = dataclasses.replace(INVOICE, notes=tuple(samples), tax_label="Taxe " + samples[0])
    reader = read(document_pdf_bytes(view))
    bases = {str(f["/BaseFont"]).split("+")[-1] for f in page_fonts(reader)}
    assert bases == {"Ledger-Sans", "Ledger-Sans-Bold"}
    extracted = "".join(page.extract_text() for page in reader.pages)
    for sample in ("31 octobre 2026", "31. Oktober 2026", "7.050,41", "₹", "£"):
        assert sample in extracted


def test_facturx_xml_is_embedded_valid_and_carries_the_invoice() -> None:
    """factur-x.xml comes back out of the PDF, validates against the EN 16931 XSD and has the
    number, type, totals and tax; the PDF stays PDF/A-3b with the Factur-X XMP."""
    data = document_pdf_bytes(INVOICE, facturx=FACTURX)

    filename, xml = facturx.get_facturx_xml_from_pdf(data, check_xsd=True)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    assert xml == build_cii_xml(FACTURX)
    assert cii(xml, "//rsm:ExchangedDocument/ram:ID") == ["INV-2026-000001"]
    assert cii(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["380"]
    assert cii(xml, "//ram:GrandTotalAmount") == ["7050.41"]
    assert cii(xml, "//ram:TaxTotalAmount") == ["537.33"]
    assert cii(xml, "//ram:TaxBasisTotalAmount") == ["6513.08"]
    assert cii(xml, "//ram:DuePayableAmount") == ["7050.41"]
    assert cii(xml, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent") == ["8.25"]
    assert cii(xml, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode") == ["S"]
    assert cii(xml, "//ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString") == ["20261031"]
    assert len(cii(xml, "//ram:IncludedSupplyChainTradeLineItem/ram:AssociatedDocumentLineDocument/ram:LineID")) == 4

    reader = read(data)
    props = xmp_properties(reader)
    assert props["pdfaid:part"] == ["3"] and props["pdfaid:conformance"] == ["B"]
    assert props["fx:ConformanceLevel"] == ["EN 16931"]
    assert props["fx:DocumentFileName"] == ["factur-x.xml"]
    assert props["fx:DocumentType"] == ["INVOICE"]
    assert props["fx:Version"] == ["1.0"]
    assert NS["fx"] in props["pdfaSchema:namespaceURI"]

    root = reader.trailer["/Root"]
    (spec,) = [ref.get_object() for ref in root["/AF"]]
    assert spec["/AFRelationship"] == "/Data"
    assert spec["/F"] == spec["/UF"] == "factur-x.xml"
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    assert names[0] == "factur-x.xml" and names[1].get_object() == spec
    stream = spec["/EF"]["/F"].get_object()
    assert isinstance(stream, StreamObject)
    assert stream["/Subtype"] == "/text/xml"
    assert stream["/Params"]["/ModDate"] == "D:20261001000000Z"
    assert stream.get_data() == xml


def test_facturx_render_is_byte_identical_under_source_date_epoch(tmp_path: Path) -> None:
    """Attachment, XMP and info dates all come from SOURCE_DATE_EPOCH: renders are identical."""
    first = render_document_pdf(INVOICE, tmp_path / "a.pdf", facturx=FACTURX).read_bytes()
    second = render_document_pdf(INVOICE, tmp_path / "b.pdf", facturx=FACTURX).read_bytes()

    assert first == second


def test_customer_text_is_escaped_in_the_xml() -> None:
    """Markup, ampersands and quotes in a buyer's name, address and line text stay text."""
    hostile = "<Acme & \"Sons\" 'Ltd'>]]><!--"
    view = dataclasses.replace(INVOICE, buyer=Party(hostile, ("<b>1 Main & 2nd</b>",)))
    data = dataclasses.replace(
        FACTURX,
        buyer=FacturXParty(hostile, ("<b>1 Main & 2nd</b>",), "US", email="a&b@example.com"),
        lines=(dataclasses.replace(FACTURX.lines[0], description=f"Credits for {hostile}"), *FACTURX.lines[1:]),
        buyer_reference="PO <7> & 'x'",
    )

    xml = facturx.get_facturx_xml_from_pdf(document_pdf_bytes(view, facturx=data))[1]

    assert b"<Acme" not in xml and b"<b>" not in xml and b"]]><!--" not in xml
    assert b"&lt;Acme &amp; \"Sons\" 'Ltd'&gt;]]&gt;&lt;!--" in xml
    assert cii(xml, "//ram:BuyerTradeParty/ram:Name") == [hostile]
    assert cii(xml, "//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:LineOne") == ["<b>1 Main & 2nd</b>"]
    assert cii(xml, "//ram:BuyerReference") == ["PO <7> & 'x'"]
    assert cii(xml, "//ram:SpecifiedTradeProduct/ram:Name")[0] == f"Credits for {hostile}"


def test_control_characters_are_refused_not_written() -> None:
    """XML 1.0 cannot carry a NUL: build_cii_xml raises ValueError naming the invoice."""
    data = dataclasses.replace(FACTURX, buyer=dataclasses.replace(FACTURX.buyer, name="Acme\x00"))

    with pytest.raises(ValueError, match="INV-2026-000001"):
        build_cii_xml(data)


def test_credit_note_is_type_381_with_prepaid_total() -> None:
    """A credit note: TypeCode 381, the invoice it corrects, nothing due (all of it prepaid)."""
    data = document_pdf_bytes(CREDIT_NOTE, facturx=CREDIT_NOTE_FACTURX)

    filename, xml = facturx.get_facturx_xml_from_pdf(data)
    assert filename == "factur-x.xml"
    assert cii(xml, "//rsm:ExchangedDocument/ram:ID") == ["CN-2026-000001"]
    assert cii(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert cii(xml, "//ram:GrandTotalAmount") == ["2165.00"]
    assert cii(xml, "//ram:TotalPrepaidAmount") == ["2165.00"]
    assert cii(xml, "//ram:DuePayableAmount") == ["0.00"]
    assert cii(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == ["INV-2026-000001"]
    assert xmp_properties(read(data))["fx:DocumentType"] == ["INVOICE"]
    text = "".join(page.extract_text() for page in read(data).pages)
    assert "CN-2026-000001" in text and "$2,165.00" in text


def test_zero_rate_is_zero_rated_and_exempt_needs_a_reason() -> None:
    """Rate 0 defaults to category Z; E needs an exemption reason (BR-E-10); S needs a rate."""
    zero = dataclasses.replace(
        FACTURX, tax_rate=Decimal(0), tax=Decimal("0.00"), total=Decimal("6513.08"),
        amount_due=Decimal("6513.08"),
    )
    assert cii(build_cii_xml(zero), "//ram:ApplicableTradeTax/ram:CategoryCode") == ["Z"] * 5
    assert cii(build_cii_xml(zero), "//ram:ApplicableTradeTax/ram:RateApplicablePercent") == ["0"] * 5

    exempt = dataclasses.replace(zero, tax_category="E", tax_exemption_reason="Exempt under art. 132")
    assert cii(build_cii_xml(exempt), "//ram:ExemptionReason") == ["Exempt under art. 132"]
    with pytest.raises(ValueError, match="BR-E-10"):
        build_cii_xml(dataclasses.replace(exempt, tax_exemption_reason=None))
    with pytest.raises(ValueError, match="BR-S-05"):
        build_cii_xml(dataclasses.replace(zero, tax_category="S"))


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"total": Decimal("7050.40")}, "BR-CO-15"),
        ({"subtotal": Decimal("6513.09"), "total": Decimal("7050.42")}, "BR-CO-10"),
        ({"amount_due": Decimal("7050.42")}, "BR-CO-16"),
        ({"tax": Decimal("537.333"), "total": Decimal("7050.413")}, "BR-DEC"),
        ({"seller": dataclasses.replace(SELLER, tax_registration_id=None)}, "BR-S-02"),
        ({"seller": dataclasses.replace(SELLER, legal_registration_id=None)}, "BR-CO-26"),
        ({"seller": dataclasses.replace(SELLER, vat_id="123")}, "BR-CO-09"),
        ({"due_date": None, "payment_terms": None}, "BR-CO-25"),
        ({"type_code": "384"}, "type_code"),
        ({"currency": "XYZ"}, "ISO 4217"),
        ({"buyer": dataclasses.replace(FACTURX.buyer, country_code="USA")}, "ISO 3166"),
    ],
)
def test_inconsistent_invoice_data_is_refused(change: dict, rule: str) -> None:
    """Values that break an EN 16931 rule raise ValueError naming the rule; no PDF is written."""
    with pytest.raises(ValueError, match=rule):
        document_pdf_bytes(INVOICE, facturx=dataclasses.replace(FACTURX, **change))


def test_facturx_data_for_another_document_is_refused() -> None:
    """The e-invoice must describe the document it is embedded in."""
    with pytest.raises(ValueError, match="CN-2026-000001"):
        document_pdf_bytes(INVOICE, facturx=CREDIT_NOTE_FACTURX)


class SpyFetcher(StaticAssetFetcher):
    def __init__(self) -> None:
        super().__init__(allowed_protocols=("file",))
        self.urls: list[str] = []

    def fetch(self, url, headers=None):
        self.urls.append(url)
        return super().fetch(url, headers)


def test_fonts_are_fetched_once_per_process_from_static(monkeypatch: pytest.MonkeyPatch) -> None:
    """warm_up loads the four bundled fonts (Latin and Japanese) once; renders after it fetch
    only document.css."""
    font_spy, render_spy = SpyFetcher(), SpyFetcher()
    monkeypatch.setattr(pdf, "_FONT_CONFIG", FontConfiguration())
    monkeypatch.setattr(pdf, "_fonts_registered", False)
    monkeypatch.setattr(pdf, "_font_fetcher", font_spy)
    monkeypatch.setattr(pdf, "safe_fetcher", render_spy)

    document_pdf_bytes(INVOICE)
    document_pdf_bytes(CREDIT_NOTE)
    pdf.warm_up()

    assert font_spy.urls == [
        (STATIC_DIR / "fonts" / "LedgerSans-Regular.ttf").as_uri(),
        (STATIC_DIR / "fonts" / "LedgerSans-Bold.ttf").as_uri(),
        (STATIC_DIR / "fonts" / "LedgerSansJP-Regular.otf").as_uri(),
        (STATIC_DIR / "fonts" / "LedgerSansJP-Bold.otf").as_uri(),
    ]
    assert render_spy.urls == [(STATIC_DIR / "document.css").as_uri()] * 2


def test_raster_logo_is_not_interpolated(tmp_path: Path) -> None:
    """A PNG logo (with transparency) becomes an image with /Interpolate false, as PDF/A
    requires; WeasyPrint alone would write true."""
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (60, 24), (19, 165, 123, 200)).save(logo)
    view = dataclasses.replace(INVOICE, logo=logo.as_uri())

    reader = read(document_pdf_bytes(view, facturx=FACTURX))

    images = [x.get_object() for x in reader.pages[0]["/Resources"]["/XObject"].values()]
    assert [x["/Subtype"] for x in images] == ["/Image"]
    assert images[0]["/Interpolate"].value is False
    assert images[0]["/SMask"].get_object()["/Interpolate"].value is False
    assert_no_actions_and_no_interpolation(reader)


def test_japanese_document_embeds_only_the_bundled_fonts_subset() -> None:
    """A Japanese page (labels and a buyer in kanji and kana) is drawn with Ledger Sans JP, not a
    system CJK font, embedded as a subset (the full font is 1.5 MB), and stays PDF/A-3b."""
    view = dataclasses.replace(INVOICE, lang="ja", title="請求書",
                               buyer=Party("株式会社ノースウィンド分析", ("東京都千代田区丸の内1-1",)))
    data = document_pdf_bytes(view)
    reader = read(data)
    fonts = page_fonts(reader)
    base_names = {str(f["/BaseFont"]).split("+")[-1] for f in fonts}
    assert {"Ledger-Sans-JP", "Ledger-Sans-JP-Bold"} <= base_names <= {
        "Ledger-Sans", "Ledger-Sans-Bold", "Ledger-Sans-JP", "Ledger-Sans-JP-Bold"}, base_names
    for descriptor in (f["/FontDescriptor"].get_object() for f in fonts if "/FontDescriptor" in f):
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor.keys())
    assert len(data) < 300_000, len(data)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "請求書" in text and "株式会社ノースウィンド分析" in text, text
    assert xmp_properties(reader)["pdfaid:part"] == ["3"]
    assert_no_actions_and_no_interpolation(reader)


def test_billing_period_is_written_as_bg14() -> None:
    """A document covering a month carries it as the invoicing period (BT-73, BT-74), and a
    period ending before it starts is refused."""
    invoice = dataclasses.replace(FACTURX, billing_period=(date(2026, 10, 1), date(2026, 10, 31)))
    xml = build_cii_xml(invoice)
    facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert cii(xml, "//ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString") == ["20261001"]
    assert cii(xml, "//ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString") == ["20261031"]
    with pytest.raises(ValueError, match="BR-29"):
        build_cii_xml(dataclasses.replace(FACTURX, billing_period=(date(2026, 10, 31), date(2026, 10, 1))))
