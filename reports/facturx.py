"""Factur-X / ZUGFeRD e-invoice data: the EN 16931 CII XML embedded in invoice PDFs.

`build_cii_xml` turns a `FacturXInvoice` (plain values: `Decimal` amounts in major units of
``currency``, `datetime.date` dates) into the UN/CEFACT Cross Industry Invoice (CII D16B)
XML of the Factur-X 1.0 profile EN 16931 (guideline ``urn:cen.eu:en16931:2017``), checks it
against the profile's XSD shipped with the ``factur-x`` library, and returns UTF-8 bytes.
`reports.pdf.render_document_pdf` embeds those bytes as ``factur-x.xml`` in a PDF/A-3b file.

The XML is built with lxml, so every customer-supplied string (names, addresses, line
descriptions, notes) is escaped as XML text. The XSD checks structure only; the EN 16931
business rules (a Schematron that needs an XSLT 2 processor) are not run here. The rules that
concern the values this module writes are checked in `check_invoice` instead:

- BR-CO-10 sum of line net amounts = subtotal; BR-CO-15 subtotal + tax = total;
  BR-CO-16 amount due = total - prepaid (prepaid = total - amount due, never negative);
- BR-DEC-* amounts have at most 2 decimals;
- BR-CO-25 a positive amount due needs a due date or payment terms;
- BR-CO-26 the seller has an identifier, a legal registration identifier or a VAT identifier;
- BR-S/Z/E-02 a taxed, zero-rated or exempt invoice names the seller's VAT identifier or tax
  registration identifier; BR-S-05 / BR-Z-05 / BR-E-05 rate > 0 for S, rate = 0 for Z and E;
  BR-E-10 exempt invoices give an exemption reason;
- BR-CO-09 VAT identifiers start with a country prefix; country and currency codes are known
  ISO 3166-1 alpha-2 and ISO 4217 codes.

Example::

    xml = build_cii_xml(FacturXInvoice(
        number="INV-2026-000001", type_code="380", issue_date=date(2026, 10, 1),
        currency="USD",
        seller=FacturXParty("Example AI, Inc.", ("1 Market St", "San Francisco, CA 94105"),
                            "US", tax_registration_id="12-3456789",
                            legal_registration_id="12-3456789"),
        buyer=FacturXParty("Northwind Analytics LLC", ("500 Congress Ave",), "US"),
        lines=(FacturXLine("Prepaid commitment C-1001", Decimal("120000"),
                           Decimal("0.05"), Decimal("6000.00")),),
        tax_rate=Decimal("0.0825"), subtotal=Decimal("6000.00"), tax=Decimal("495.00"),
        total=Decimal("6495.00"), amount_due=Decimal("6495.00"),
        due_date=date(2026, 10, 31), payment_terms="Net 30",
    ))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import facturx
from babel import Locale
from babel.numbers import is_currency
from lxml import etree
from lxml.builder import ElementMaker

GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"
"""BT-24 specification identifier of the Factur-X EN 16931 profile."""

FACTURX_FILENAME = "factur-x.xml"
"""Name the Factur-X standard requires for the embedded XML."""

FACTURX_LEVEL = "en16931"
"""Profile name as the ``factur-x`` library spells it (``facturx.xml_check_xsd(level=...)``)."""

FACTURX_XMP_LEVEL = "EN 16931"
"""Profile name as written in the PDF's XMP (``fx:ConformanceLevel``)."""

TYPE_CODES = {"380": "commercial invoice", "381": "credit note"}
"""UNTDID 1001 document type codes this module writes (BT-3)."""

TAX_CATEGORIES = {"S": "standard rate", "Z": "zero rated", "E": "exempt from tax"}
"""UNCL 5305 VAT category codes this module writes (BT-118, BT-151)."""

_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_RSM = ElementMaker(namespace=_NS["rsm"], nsmap=_NS)
_RAM = ElementMaker(namespace=_NS["ram"], nsmap=_NS)
_UDT = ElementMaker(namespace=_NS["udt"], nsmap=_NS)
_QDT = ElementMaker(namespace=_NS["qdt"], nsmap=_NS)

_COUNTRIES = frozenset(
    code for code in Locale("en").territories
    if len(code) == 2 and code not in ("EU", "EZ", "QO", "UN", "ZZ")
)


@dataclass(frozen=True)
class FacturXParty:
    """Seller or buyer as the e-invoice names them.

    address_lines: free postal lines, top to bottom (first three become LineOne..LineThree,
    any further lines are joined into LineThree with ", "); country_code: ISO 3166-1
    alpha-2, e.g. "US". identifier: BT-29 / BT-46 party identifier (e.g. the customer ID);
    legal_registration_id: BT-30 / BT-47; vat_id: BT-31 / BT-48 with its country prefix,
    e.g. "FR40303265045"; tax_registration_id: BT-32, a local tax number (e.g. a US EIN);
    email: BT-34 / BT-49 electronic address.
    """

    name: str
    address_lines: tuple[str, ...] = ()
    country_code: str = "US"
    identifier: str | None = None
    legal_registration_id: str | None = None
    vat_id: str | None = None
    tax_registration_id: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class FacturXLine:
    """One invoice line: quantity x unit_price ~ net_amount, all `Decimal`, major units.

    unit_code: UN/ECE Recommendation 20 unit of ``quantity``; "C62" (one) by default.
    """

    description: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal
    unit_code: str = "C62"


PAYMENT_MEANS = {"30": "credit transfer", "58": "SEPA credit transfer", "68": "online payment service"}
"""UNTDID 4461 payment means codes this module writes (BT-81)."""


@dataclass(frozen=True)
class FacturXPaymentMeans:
    """How the buyer pays (BG-16): type_code (BT-81, `PAYMENT_MEANS`); information (BT-82);
    iban (BT-84 as an IBAN) or account_id (BT-84 as a proprietary account number); account_name
    (BT-85); bic (BT-86). A credit transfer ("30", "58") needs iban or account_id (BR-61)."""

    type_code: str
    iban: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    bic: str | None = None
    information: str | None = None


@dataclass(frozen=True)
class FacturXInvoice:
    """An invoice (type_code "380") or credit note ("381") as EN 16931 values.

    Amounts are `Decimal` in major units of ``currency`` (ISO 4217) with at most 2 decimals;
    a credit note carries positive amounts. tax_rate is a fraction (Decimal("0.0825") is
    8.25%) applied to the whole subtotal. amount_due is what remains to pay (BT-115); the
    difference total - amount_due is written as prepaid (BT-113), e.g. a credit balance
    applied. tax_category: "S", "Z" or "E"; None picks "S" for a positive rate and "Z" for a
    zero rate. tax_exemption_reason: required for "E". preceding_invoice: for a credit note,
    the number of the invoice it corrects (BT-25).
    """

    number: str
    type_code: str
    issue_date: date
    currency: str
    seller: FacturXParty
    buyer: FacturXParty
    lines: tuple[FacturXLine, ...]
    tax_rate: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    amount_due: Decimal
    due_date: date | None = None
    payment_terms: str | None = None
    tax_category: str | None = None
    tax_exemption_reason: str | None = None
    buyer_reference: str | None = None
    preceding_invoice: str | None = None
    notes: tuple[str, ...] = ()
    preceding_invoice_date: date | None = None
    payment_means: tuple[FacturXPaymentMeans, ...] = ()
    payment_reference: str | None = None
    billing_period: tuple[date, date] | None = None

    @property
    def category(self) -> str:
        """The VAT category code written (BT-118): ``tax_category`` or the default for the rate."""
        if self.tax_category is not None:
            return self.tax_category
        return "S" if self.tax_rate > 0 else "Z"


def check_invoice(invoice: FacturXInvoice) -> None:
    """Check the EN 16931 rules listed in the module docstring.

    raises ValueError naming the rule and the values when one does not hold.
    """
    if invoice.type_code not in TYPE_CODES:
        raise ValueError(f"type_code {invoice.type_code!r} is not one of {sorted(TYPE_CODES)}")
    if not invoice.number.strip():
        raise ValueError("number is empty (BT-1)")
    if not is_currency(invoice.currency):
        raise ValueError(f"currency {invoice.currency!r} is not an ISO 4217 code")
    if not invoice.lines:
        raise ValueError("an invoice needs at least one line (BG-25)")
    for role, party in (("seller", invoice.seller), ("buyer", invoice.buyer)):
        if not party.name.strip():
            raise ValueError(f"{role} name is empty (BT-27 / BT-44)")
        if party.country_code not in _COUNTRIES:
            raise ValueError(
                f"{role} country_code {party.country_code!r} is not ISO 3166-1 alpha-2"
            )
        if party.vat_id is not None and not (
            len(party.vat_id) > 2 and party.vat_id[:2].isalpha() and party.vat_id[:2].isupper()
        ):
            raise ValueError(f"{role} vat_id {party.vat_id!r} lacks a country prefix (BR-CO-09)")

    amounts = {
        "subtotal": invoice.subtotal,
        "tax": invoice.tax,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
    }
    amounts.update({f"line {i} net_amount": ln.net_amount for i, ln in enumerate(invoice.lines, 1)})
    for name, amount in amounts.items():
        if not amount.is_finite() or _decimals(amount) > 2:
            raise ValueError(f"{name} {amount} has more than 2 decimals (BR-DEC)")
    line_total = sum((ln.net_amount for ln in invoice.lines), Decimal(0))
    if line_total != invoice.subtotal:
        raise ValueError(
            f"lines sum to {line_total}, subtotal is {invoice.subtotal} (BR-CO-10, BR-CO-13)"
        )
    if invoice.subtotal + invoice.tax != invoice.total:
        raise ValueError(
            f"subtotal {invoice.subtotal} + tax {invoice.tax} != total {invoice.total} (BR-CO-15)"
        )
    if not Decimal(0) <= invoice.amount_due <= invoice.total:
        raise ValueError(
            f"amount_due {invoice.amount_due} is not between 0 and total {invoice.total} "
            "(BR-CO-16 with a non-negative prepaid amount)"
        )
    _check_payment_and_reference(invoice)
    if invoice.amount_due > 0 and invoice.due_date is None and not invoice.payment_terms:
        raise ValueError("a positive amount due needs due_date or payment_terms (BR-CO-25)")

    seller = invoice.seller
    if not (seller.identifier or seller.legal_registration_id or seller.vat_id):
        raise ValueError(
            "the seller needs identifier, legal_registration_id or vat_id (BR-CO-26)"
        )
    category = invoice.category
    if category not in TAX_CATEGORIES:
        raise ValueError(f"tax_category {category!r} is not one of {sorted(TAX_CATEGORIES)}")
    if not (seller.vat_id or seller.tax_registration_id):
        raise ValueError(
            f"tax category {category} needs the seller's vat_id or tax_registration_id "
            f"(BR-{category}-02)"
        )
    if category == "S" and invoice.tax_rate <= 0:
        raise ValueError(f"tax category S needs a positive rate, got {invoice.tax_rate} (BR-S-05)")
    if category in ("Z", "E") and invoice.tax_rate != 0:
        raise ValueError(
            f"tax category {category} needs a zero rate, got {invoice.tax_rate} "
            f"(BR-{category}-05)"
        )
    if category in ("Z", "E") and invoice.tax != 0:
        raise ValueError(f"tax category {category} needs zero tax, got {invoice.tax}")
    if category == "E" and not invoice.tax_exemption_reason:
        raise ValueError("tax category E needs tax_exemption_reason (BR-E-10)")


def _check_payment_and_reference(invoice: FacturXInvoice) -> None:
    """BT-81 codes, BR-61 (a credit transfer names the account), BT-26 only with BT-25."""
    for means in invoice.payment_means:
        if means.type_code not in PAYMENT_MEANS:
            raise ValueError(f"payment means {means.type_code!r} is not one of {sorted(PAYMENT_MEANS)} (BT-81)")
        if means.type_code in ("30", "58") and not (means.iban or means.account_id):
            raise ValueError(f"payment means {means.type_code} needs an account identifier (BR-61)")
        if means.type_code == "58" and not means.iban:
            raise ValueError("a SEPA credit transfer (58) needs an IBAN (BT-84)")
    if invoice.billing_period is not None and invoice.billing_period[0] > invoice.billing_period[1]:
        raise ValueError(f"billing period {invoice.billing_period} ends before it starts (BR-29)")
    if invoice.preceding_invoice_date is not None and not invoice.preceding_invoice:
        raise ValueError("preceding_invoice_date (BT-26) without preceding_invoice (BT-25)")


def build_cii_xml(invoice: FacturXInvoice) -> bytes:
    """The EN 16931 CII XML of ``invoice`` as UTF-8 bytes with an XML declaration.

    Deterministic: equal invoices give equal bytes. raises ValueError when `check_invoice`
    fails or a string holds a character XML 1.0 cannot carry (e.g. a NUL or other control
    character); raises Exception (the ``factur-x`` library's) if the result does not validate
    against the Factur-X EN 16931 XSD, which would be a bug here.
    """
    check_invoice(invoice)
    try:
        root = _document(invoice)
    except ValueError as error:  # lxml refuses control characters
        raise ValueError(f"invoice {invoice.number!r}: text not allowed in XML ({error})") from None
    facturx.xml_check_xsd(root, flavor="factur-x", level=FACTURX_LEVEL)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _document(inv: FacturXInvoice) -> etree._Element:
    category = inv.category
    rate = _number(inv.tax_rate * 100)
    cur = inv.currency
    header_tax = [
        _RAM.CalculatedAmount(_amount(inv.tax)),
        _RAM.TypeCode("VAT"),
        *([_RAM.ExemptionReason(inv.tax_exemption_reason)] if inv.tax_exemption_reason else []),
        _RAM.BasisAmount(_amount(inv.subtotal)),
        _RAM.CategoryCode(category),
        _RAM.RateApplicablePercent(rate),
    ]
    terms = []
    if inv.payment_terms:
        terms.append(_RAM.Description(inv.payment_terms))
    if inv.due_date is not None:
        terms.append(_RAM.DueDateDateTime(_date(inv.due_date)))
    settlement = [
        *([_RAM.PaymentReference(inv.payment_reference)] if inv.payment_reference else []),
        _RAM.InvoiceCurrencyCode(cur),
        *(_payment_means(means) for means in inv.payment_means),
        _RAM.ApplicableTradeTax(*header_tax),
        *(
            [_RAM.BillingSpecifiedPeriod(_RAM.StartDateTime(_date(inv.billing_period[0])),
                                         _RAM.EndDateTime(_date(inv.billing_period[1])))]
            if inv.billing_period is not None
            else []
        ),
        *([_RAM.SpecifiedTradePaymentTerms(*terms)] if terms else []),
        _RAM.SpecifiedTradeSettlementHeaderMonetarySummation(
            _RAM.LineTotalAmount(_amount(inv.subtotal)),
            _RAM.TaxBasisTotalAmount(_amount(inv.subtotal)),
            _RAM.TaxTotalAmount(_amount(inv.tax), currencyID=cur),
            _RAM.GrandTotalAmount(_amount(inv.total)),
            *(
                [_RAM.TotalPrepaidAmount(_amount(inv.total - inv.amount_due))]
                if inv.amount_due != inv.total
                else []
            ),
            _RAM.DuePayableAmount(_amount(inv.amount_due)),
        ),
    ]
    if inv.preceding_invoice:
        settlement.append(
            _RAM.InvoiceReferencedDocument(
                _RAM.IssuerAssignedID(inv.preceding_invoice),
                *(
                    [_RAM.FormattedIssueDateTime(_QDT.DateTimeString(
                        inv.preceding_invoice_date.strftime("%Y%m%d"), format="102"))]
                    if inv.preceding_invoice_date is not None
                    else []
                ),
            )
        )
    agreement = [
        *([_RAM.BuyerReference(inv.buyer_reference)] if inv.buyer_reference else []),
        _RAM.SellerTradeParty(*_party(inv.seller)),
        _RAM.BuyerTradeParty(*_party(inv.buyer)),
    ]
    return _RSM.CrossIndustryInvoice(
        _RSM.ExchangedDocumentContext(
            _RAM.GuidelineSpecifiedDocumentContextParameter(_RAM.ID(GUIDELINE_EN16931)),
        ),
        _RSM.ExchangedDocument(
            _RAM.ID(inv.number),
            _RAM.TypeCode(inv.type_code),
            _RAM.IssueDateTime(_date(inv.issue_date)),
            *(_RAM.IncludedNote(_RAM.Content(note)) for note in inv.notes),
        ),
        _RSM.SupplyChainTradeTransaction(
            *(
                _line(position, line, category, rate)
                for position, line in enumerate(inv.lines, 1)
            ),
            _RAM.ApplicableHeaderTradeAgreement(*agreement),
            _RAM.ApplicableHeaderTradeDelivery(),
            _RAM.ApplicableHeaderTradeSettlement(*settlement),
        ),
    )


def _payment_means(means: FacturXPaymentMeans) -> etree._Element:
    account = [
        *([_RAM.IBANID(means.iban)] if means.iban else []),
        *([_RAM.AccountName(means.account_name)] if means.account_name else []),
        *([_RAM.ProprietaryID(means.account_id)] if means.account_id else []),
    ]
    return _RAM.SpecifiedTradeSettlementPaymentMeans(
        _RAM.TypeCode(means.type_code),
        *([_RAM.Information(means.information)] if means.information else []),
        *([_RAM.PayeePartyCreditorFinancialAccount(*account)] if (means.iban or means.account_id) else []),
        *([_RAM.PayeeSpecifiedCreditorFinancialInstitution(_RAM.BICID(means.bic))] if means.bic else []),
    )


def _line(position: int, line: FacturXLine, category: str, rate: str) -> etree._Element:
    return _RAM.IncludedSupplyChainTradeLineItem(
        _RAM.AssociatedDocumentLineDocument(_RAM.LineID(str(position))),
        _RAM.SpecifiedTradeProduct(_RAM.Name(line.description)),
        _RAM.SpecifiedLineTradeAgreement(
            _RAM.NetPriceProductTradePrice(_RAM.ChargeAmount(_number(line.unit_price))),
        ),
        _RAM.SpecifiedLineTradeDelivery(
            _RAM.BilledQuantity(_number(line.quantity), unitCode=line.unit_code),
        ),
        _RAM.SpecifiedLineTradeSettlement(
            _RAM.ApplicableTradeTax(
                _RAM.TypeCode("VAT"),
                _RAM.CategoryCode(category),
                _RAM.RateApplicablePercent(rate),
            ),
            _RAM.SpecifiedTradeSettlementLineMonetarySummation(
                _RAM.LineTotalAmount(_amount(line.net_amount)),
            ),
        ),
    )


def _party(party: FacturXParty) -> list[etree._Element]:
    lines = list(party.address_lines)
    if len(lines) > 3:
        lines = [*lines[:2], ", ".join(lines[2:])]
    tags = ("LineOne", "LineTwo", "LineThree")
    children = []
    if party.identifier:
        children.append(_RAM.ID(party.identifier))
    children.append(_RAM.Name(party.name))
    if party.legal_registration_id:
        children.append(
            _RAM.SpecifiedLegalOrganization(_RAM.ID(party.legal_registration_id))
        )
    children.append(
        _RAM.PostalTradeAddress(
            *(getattr(_RAM, tag)(text) for tag, text in zip(tags, lines, strict=False)),
            _RAM.CountryID(party.country_code),
        )
    )
    if party.email:
        children.append(_RAM.URIUniversalCommunication(_RAM.URIID(party.email, schemeID="EM")))
    if party.vat_id:
        children.append(_RAM.SpecifiedTaxRegistration(_RAM.ID(party.vat_id, schemeID="VA")))
    if party.tax_registration_id:
        children.append(
            _RAM.SpecifiedTaxRegistration(_RAM.ID(party.tax_registration_id, schemeID="FC"))
        )
    return children


def _date(day: date) -> etree._Element:
    return _UDT.DateTimeString(day.strftime("%Y%m%d"), format="102")


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _amount(value: Decimal) -> str:
    """An amount with at least 2 decimals, e.g. Decimal('6000') -> '6000.00'."""
    return f"{value.quantize(Decimal('0.01')) if _decimals(value) < 2 else value:f}"


def _number(value: Decimal) -> str:
    """A quantity, unit price or percentage in plain notation without trailing zeros."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text
