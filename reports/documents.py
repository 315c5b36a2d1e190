"""View models of invoices (and later credit notes) built from issued invoice rows.

Money and dates are formatted here with Babel in the customer's locale; the template only lays
the strings out. Every amount comes from the stored invoice, whose total equals the receivable
lines posted with it (invariant 5). The stored facts are read by ``ledger.store.documents``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from babel.numbers import format_decimal

from ledger.catalog import Catalog, Company
from ledger.core.money import format_money, format_price, format_units, to_major
from ledger.core.periods import boundary_date, first_day, last_day
from ledger.errors import NotFoundError
from ledger.store import documents as store
from ledger.store.documents import DocumentFacts, InvoiceRecord
from reports.facturx import FacturXInvoice, FacturXLine, FacturXParty, FacturXPaymentMeans
from reports.i18n import document_language, format_day, format_month, format_span, translations
from reports.lines import Wording, describe_lines
from reports.views import DocumentLine, DocumentView, Party, PaymentView, Table

if TYPE_CHECKING:
    from ledger.store.db import Session

def document_view(session: Session, catalog: Catalog, number: str) -> DocumentView:
    """The view model of invoice or credit note ``number``, in the customer's language
    (`reports.i18n.document_language` of ``customer.locale``) with money, numbers and dates
    formatted by Babel in the customer's locale; raises NotFoundError.

    Amount due = total - the customer credit balance applied to the invoice when it was issued
    (Dr 2200 lines carrying this invoice number). An invoice with an amount due carries the
    catalog's payment instructions with its number as the payment reference; a credit note
    names the invoice it corrects. Both carry the customer's credits just after the journal
    entry that issued them (balance per grant from the 9100 lines, and credits expiring in the
    next 30 days); a guarantee credit note carries the month-by-month calculation, legacy
    per-seat bill against the new bill (docs/design.md §5.9).
    """
    facts = _facts(session, number)
    catalog, logo = issued_seller(catalog, facts)
    inv, customer, lines = facts.invoice, facts.customer, facts.lines
    loc = customer.locale or "en_US"
    lang = document_language(loc)
    _ = translations(lang).gettext
    cur = inv.currency
    company = catalog.company

    def money(amount: int) -> str:
        return format_money(amount, cur, loc)

    rate = Decimal(inv.tax_rate)
    due = format_day(inv.due_date, loc)
    amount_due, label, terms, notes, adjustments, payment = _settlement(facts, company, money, due, _)
    tables = []
    if inv.category == "guarantee":
        tables.append(_guarantee_table(session, inv, money, loc, _))
    credits = _credits_table(session, catalog, inv, loc, _)
    if credits is not None:
        tables.append(credits)
    wording = Wording(loc, _, catalog.tz)
    return DocumentView(
        title=_("Invoice") if inv.kind == "invoice" else _("Credit note"),
        number=inv.number,
        issue_date=format_day(inv.issue_date, loc),
        due_date=due if inv.kind == "invoice" else None,
        currency=cur,
        seller=Party(company.name, tuple(company.address), company.email),
        buyer=Party(customer.name, tuple(json.loads(customer.address)), customer.email),
        lines=tuple(DocumentLine(text, format_units(ln.quantity, loc),
                                 format_price(Decimal(ln.unit_price), cur, loc), money(ln.amount))
                    for ln, text in zip(lines, describe_lines(session, inv, lines, wording), strict=True)),
        subtotal=money(inv.subtotal),
        tax_label=_("Tax ({rate}%)").format(rate=format_decimal(rate * 100, locale=loc)) if rate else _("Tax"),
        tax=money(inv.tax),
        total=money(inv.total),
        amount_due=money(amount_due),
        amount_due_label=label,
        payment_terms=terms,
        notes=tuple(notes),
        references=tuple((label, value) for label, value in (
            (_("Customer ID"), customer.id), (_("Our tax ID"), company.tax_id),
            (_("Our VAT ID"), company.vat_id), (_("Your VAT ID"), customer.vat_id)) if value),
        adjustments=tuple(adjustments),
        tables=tuple(tables),
        logo=logo,
        lang=lang,
        payment=payment,
        corrects=_corrects(session, inv, loc, _),
    )


def _settlement(facts: DocumentFacts, company: Company, money, due: str, _) -> tuple:
    """(amount due in minor units, its label, payment terms, notes, adjustments, payment view or
    None) of a document: an invoice less the credit balance applied to it, with the payment
    instructions while something is due; a credit note's credited amount."""
    inv = facts.invoice
    amount_due, payment, adjustments = inv.total, None, []
    if inv.kind != "invoice":
        label = _("Credited to your account") if inv.category == "guarantee" else _("Credited")
        terms = (_("Applied to your next invoice automatically") if inv.category == "guarantee"
                 else _("Reduces the amount you owe; any excess is refunded or held as credit"))
        return amount_due, label, terms, [], adjustments, payment
    notes = [_("Prepaid credits are non-refundable except as stated in your agreement; "
               "unused credits expire on the date shown.")]
    if facts.credit_applied:
        adjustments.append((_("Credit balance applied"), money(-facts.credit_applied)))
        amount_due -= facts.credit_applied
    terms = (_("Net {days} days: due by {date}").format(days=company.payment_terms_days, date=due)
             if amount_due else _("Paid in full from your credit balance"))
    if amount_due > 0 and company.payment is not None:
        payment = _payment_view(company, inv.number, inv.currency, money(amount_due), due, _)
    return amount_due, _("Amount due"), terms, notes, adjustments, payment


def _payment_view(company: Company, number: str, currency: str, amount_due: str, due: str, _) -> PaymentView:
    """How to pay invoice ``number``: the catalog's payment block, with ``number`` as reference.
    The account shown is the one `payment_means` names for ``currency``: the IBAN and BIC for a
    EUR invoice (or when there is no other account), else the account and routing number."""
    p = company.payment
    assert p is not None
    iban = _uses_iban(company, currency)
    rows = [(_("Account holder"), p.account_holder or company.name), (_("Bank"), p.bank),
            (_("IBAN"), _group(p.iban) if iban else None), (_("BIC"), p.bic if iban else None),
            (_("Account number"), None if iban else p.account_number),
            (_("Routing number (ABA)"), None if iban else p.routing_number), (_("Pay online"), p.payment_link),
            (_("Payment reference"), number)]
    if p.transfer:
        lead = _("Please transfer {amount} by {date}, quoting {number} as the payment reference.")
    else:
        lead = _("Please pay {amount} by {date} online, quoting {number}.")
    return PaymentView(lead.format(amount=amount_due, date=due, number=number),
                       tuple((label, value) for label, value in rows if value), p.note)


def _uses_iban(company: Company, currency: str) -> bool:
    """True when an invoice in ``currency`` is paid to the IBAN: a EUR invoice, or any invoice
    when the payment block has an IBAN and no other account number."""
    p = company.payment
    return p is not None and bool(p.iban) and (currency == "EUR" or not p.account_number)


def _group(iban: str | None) -> str | None:
    """An IBAN in groups of four, as printed: 'DE89 3704 0044 0532 0130 00'."""
    return None if iban is None else " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def _corrects(session: Session, inv: InvoiceRecord, loc: str, _) -> str | None:
    """On a credit note, the sentence naming the invoice it corrects; None on an invoice. A
    guarantee credit note corrects no single invoice (it gives back part of a month's or a
    window's bills) and says which months it covers instead."""
    if inv.kind == "invoice":
        return None
    original = store.invoice(session, inv.reference) if inv.reference else None
    if original is not None:
        return _("Corrects invoice {number} of {date}").format(number=original.number,
                                                               date=format_day(original.issue_date, loc))
    period = _billing_period(session, inv)
    if inv.category == "guarantee" and period is not None:
        return _("Credit under your no-increase guarantee for {period}").format(period=format_span(*period, loc))
    return None


def issued_seller(catalog: Catalog, facts: DocumentFacts) -> tuple[Catalog, str | None]:
    """Where a document's seller comes from: (the catalog with the company the document stored
    when it was issued, the stored logo as a data: URI or None). Every page and Factur-X field
    about the seller (name, address, tax ids, payment terms, reporting timezone, any later
    field of `Company`) reads the returned catalog, so a change to ``ledger.toml``, or none at
    all, changes no issued document. A document issued before migration 0014 stored none: it
    takes the catalog's company and logo file as they are now (raises CatalogError without a
    company)."""
    if facts.seller is None:
        catalog.require_company(f"rendering {facts.invoice.number}, issued before documents kept their seller,")
        path = catalog.logo_path
        return catalog, path.as_uri() if path is not None else None
    issued = catalog.with_company(Company.model_validate_json(facts.seller))
    if facts.logo is None:
        return issued, None
    content, media_type = facts.logo
    return issued, f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


def _facts(session: Session, number: str) -> DocumentFacts:
    """The stored facts of document ``number``; raises NotFoundError."""
    facts = store.document_facts(session, number)
    if facts is None:
        raise NotFoundError("invoice", number)
    return facts


def _guarantee_table(session: Session, inv: InvoiceRecord, money, loc: str, _) -> Table:
    """Legacy per-seat bill against the new bill, month by month, for a guarantee credit note."""
    g = store.guarantee(session, inv.event_id)
    assert g is not None, inv.event_id
    months = store.guarantee_months(session, g.id, inv.service_period or "9999-12")
    if g.basis == "monthly":
        months = [m for m in months if m.period == inv.service_period]
    rows = tuple((format_month(m.period, loc), money(m.legacy), money(m.subscription), money(m.overage), money(m.topups + m.commitments),
                  money(m.charges), money(m.charges - m.legacy)) for m in months)
    legacy, charges = sum(m.legacy for m in months), sum(m.charges for m in months)
    basis = (_("Each month, the new bill less the previous per-seat bill, when positive.")
             if g.basis == "monthly" else
             _("Over {first} to {last}: the sum of the new bills less the sum of the previous per-seat bills, "
               "when positive.").format(first=format_month(months[0].period if months else g.start_month, loc),
                                        last=format_month(months[-1].period if months else g.start_month, loc)))
    return Table(
        title=_("No-increase guarantee: previous per-seat bill and new bill"),
        headers=(_("Month"), _("Previous per-seat bill"), _("Plan fee"), _("Overage"), _("Top-ups, commitments"),
                 _("New bill"), _("Difference")),
        rows=rows, numeric=(False,) + (True,) * 6,
        totals=(_("Total"), money(legacy), money(sum(m.subscription for m in months)),
                money(sum(m.overage for m in months)), money(sum(m.topups + m.commitments for m in months)),
                money(charges), money(charges - legacy)),
        note=" ".join((_("Under your no-increase guarantee, you pay no more than your previous per-seat bill: "
                         "this credit gives back the difference, tax included."), basis,
                       _("Credit: {amount} before tax.").format(amount=money(inv.subtotal)))))


def _credits_table(session: Session, catalog: Catalog, inv: InvoiceRecord, loc: str, _) -> Table | None:
    """The customer's credits just after the journal entry that issued ``inv`` (so an invoice
    counts the credits it sells): remaining units per grant (9100 balance through that entry in
    event time, `ledger.store.documents.credit_balances_through`),
    with the last day they can be used; credits expiring within 30 days of the issue date are
    flagged. None if none (or if the document has no issuing entry)."""
    if inv.entry_id is None:
        return None
    balances = store.credit_balances_through(session, inv.customer_id, inv.entry_id)
    if not balances:
        return None
    tz = catalog.tz
    grants = store.grants(session, sorted(balances))
    soon = inv.issue_date + timedelta(days=30)
    sources = {"commitment": _("Prepaid credits"), "topup": _("Top-up"), "promotional": _("Promotional"),
               "subscription": _("Plan allowance"), "rollover": _("Rolled over")}
    rows, expiring = [], 0
    for gid in sorted(balances, key=lambda k: (grants[k].expires_at is None, grants[k].expires_at or 0, k)):
        g = grants[gid]
        start = g.effective_at.astimezone(tz).date()
        until = boundary_date(g.expires_at, tz) if g.expires_at is not None else None
        flag = until is not None and until <= soon
        expiring += balances[gid] if flag else 0
        rows.append((sources.get(g.source, g.source), format_day(start, loc), format_units(balances[gid], loc),
                     (format_day(until, loc) if until else _("no expiry"))
                     + (" " + _("(within 30 days)") if flag else "")))
    return Table(
        title=_("Your credits on {date}").format(date=format_day(inv.issue_date, loc)),
        headers=(_("Credits"), _("Since"), _("Credits left"), _("Valid through")), rows=tuple(rows),
        numeric=(False, False, True, False),
        totals=(_("Total"), "", format_units(sum(balances.values()), loc), ""),
        note=(_("{credits} credits expire in the next 30 days.").format(credits=format_units(expiring, loc))
              if expiring else _("No credits expire in the next 30 days.")))


def facturx_invoice(session: Session, catalog: Catalog, number: str) -> FacturXInvoice | None:
    """The EN 16931 data of invoice or credit note ``number`` for its Factur-X XML, or None
    when the catalog gives the seller neither ``tax_id`` nor ``vat_id`` (EN 16931 needs one,
    BR-CO-26 and BR-S-02 / BR-Z-02). Amounts: `Decimal` major units, from the stored document;
    amount due = total - credit balance applied (BT-113 prepaid). Line names are the page's
    descriptions (`reports.lines`). An invoice with an amount due carries the catalog's payment
    means (BG-16) and its number as payment reference (BT-83); a credit note names the invoice
    it corrects (BT-25, BT-26). raises NotFoundError."""
    facts = _facts(session, number)
    catalog, _logo = issued_seller(catalog, facts)
    company = catalog.company
    if not (company.tax_id or company.vat_id):
        return None
    inv, customer, lines = facts.invoice, facts.customer, facts.lines
    cur = inv.currency
    applied = facts.credit_applied
    loc = customer.locale or "en_US"
    gettext = translations(document_language(loc)).gettext
    texts = describe_lines(session, inv, lines, Wording(loc, gettext, catalog.tz))
    original = store.invoice(session, inv.reference) if inv.kind == "credit_note" and inv.reference else None
    amount_due = to_major(inv.total - applied, cur)
    means = (payment_means(company, cur)
             if inv.kind == "invoice" and amount_due > 0 and company.payment is not None else ())
    return FacturXInvoice(
        number=inv.number, type_code="380" if inv.kind == "invoice" else "381", issue_date=inv.issue_date,
        currency=cur,
        seller=FacturXParty(company.name, tuple(company.address), company.country,
                            legal_registration_id=company.tax_id, vat_id=company.vat_id,
                            tax_registration_id=company.tax_id, email=company.email),
        buyer=FacturXParty(customer.name, tuple(json.loads(customer.address)), customer.country or company.country,
                           identifier=customer.id, vat_id=customer.vat_id, email=customer.email),
        lines=tuple(FacturXLine(text, Decimal(ln.quantity), Decimal(ln.unit_price), to_major(ln.amount, cur))
                    for ln, text in zip(lines, texts, strict=True)),
        tax_rate=Decimal(inv.tax_rate), subtotal=to_major(inv.subtotal, cur), tax=to_major(inv.tax, cur),
        total=to_major(inv.total, cur), amount_due=amount_due,
        due_date=inv.due_date if inv.kind == "invoice" else None,
        payment_terms=(f"Net {company.payment_terms_days}" if inv.kind == "invoice"
                       else "Credited to the customer's account; any excess over amounts owed is refunded"),
        buyer_reference=customer.id,
        preceding_invoice=original.number if original is not None else None,
        preceding_invoice_date=original.issue_date if original is not None else None,
        payment_means=means, payment_reference=inv.number if means else None,
        billing_period=_billing_period(session, inv))


def _billing_period(session: Session, inv: InvoiceRecord) -> tuple[date, date] | None:
    """The period a plan month, an overage invoice or a guarantee credit covers (first and last
    day, inclusive; a cumulative guarantee: its whole window), or None."""
    if not inv.service_period:
        return None
    first = inv.service_period
    if inv.category == "guarantee":
        g = store.guarantee(session, inv.event_id)
        first = g.start_month if g is not None and g.basis != "monthly" else first
    return first_day(first), last_day(inv.service_period)


def payment_means(company: Company, currency: str) -> tuple[FacturXPaymentMeans, ...]:
    """The payment means (BG-16) of the catalog's payment block for an invoice in ``currency``:
    a SEPA credit transfer (code 58) to the IBAN and BIC for a EUR invoice; otherwise a credit
    transfer (30) to the account number, or to the IBAN when there is none; only a payment link:
    an online payment service (68). Empty without a payment block."""
    p = company.payment
    if p is None:
        return ()
    holder = p.account_holder or company.name
    if _uses_iban(company, currency):
        return (FacturXPaymentMeans("58" if currency == "EUR" else "30", iban=p.iban, account_name=holder,
                                    bic=p.bic),)
    if p.account_number:
        return (FacturXPaymentMeans("30", account_id=p.account_number, account_name=holder),)
    return (FacturXPaymentMeans("68", information=f"Pay online: {p.payment_link}"),)


@dataclass(frozen=True)
class RenderJob:
    """One document to render: its view, its e-invoice data (or None) and where to write it."""

    view: DocumentView
    out: Path
    facturx: FacturXInvoice | None = None
    templates: Path | None = None  # the catalog's template folder, or None for the bundled one


def render_job(session: Session, catalog: Catalog, number: str, out: str | Path) -> RenderJob:
    """Everything needed to render document ``number`` to ``out`` (no database in the worker)."""
    return RenderJob(document_view(session, catalog, number), Path(out), facturx_invoice(session, catalog, number),
                     catalog.templates_dir)


def render_invoice(session: Session, catalog: Catalog, number: str, out: str | Path) -> Path:
    """Render invoice or credit note ``number`` to a PDF/A-3b file at ``out`` (with its Factur-X
    XML when the catalog has the seller's tax or VAT id); raises NotFoundError."""
    return _render_one(render_job(session, catalog, number, out))


def _render_one(job: RenderJob) -> Path:
    from reports.pdf import render_document_pdf

    return render_document_pdf(job.view, job.out, facturx=job.facturx, templates=job.templates)


def render_views(jobs: list[RenderJob], *, workers: int | None = None, on_done=None) -> list[Path]:
    """Render many documents in parallel processes (WeasyPrint is CPU-bound and single-threaded);
    each worker registers the bundled fonts once and freezes its heap (`reports.pdf.worker_init`).

    on_done: called once per finished document. Returns the paths in job order. workers
    defaults to the number of CPUs; 1 (or a single job) renders in this process.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from reports.pdf import worker_init

    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    done: list[Path] = []
    if workers == 1:
        for job in jobs:
            done.append(_render_one(job))
            if on_done:
                on_done()
        return done
    with ProcessPoolExecutor(max_workers=workers, initializer=worker_init) as pool:
        for path in pool.map(_render_one, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
            done.append(path)
            if on_done:
                on_done()
    return done
