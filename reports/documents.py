"""View models of invoices (and later credit notes) built from issued invoice rows.

Money and dates are formatted here with Babel in the customer's locale; the template only lays
the strings out. Every amount comes from the stored invoice, whose total equals the receivable
lines posted with it (invariant 5). The stored facts are read by ``ledger.store.documents``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from babel.dates import format_date

from ledger.catalog import Catalog, Company
from ledger.core.money import format_money, format_price, format_units, to_major
from ledger.core.periods import boundary_date
from ledger.errors import NotFoundError
from ledger.store import documents as store
from ledger.store.documents import DocumentFacts, InvoiceRecord
from reports.facturx import FacturXInvoice, FacturXLine, FacturXParty
from reports.views import DocumentLine, DocumentView, Party, Table

if TYPE_CHECKING:
    from ledger.store.db import Session

TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}


def document_view(session: Session, catalog: Catalog, number: str) -> DocumentView:
    """The view model of invoice or credit note ``number`` (every string formatted by Babel in
    the customer's locale); raises NotFoundError.

    Amount due = total - the customer credit balance applied to the invoice when it was issued
    (Dr 2200 lines carrying this invoice number). Invoices and credit notes carry the customer's
    credits summary at the issue date (balance per grant from the 9100 lines, and credits
    expiring in the next 30 days); a guarantee credit note carries the month-by-month
    calculation, legacy per-seat bill against the new bill (docs/design.md §5.9).
    """
    facts = _facts(session, number)
    catalog, logo = issued_seller(catalog, facts)
    inv, customer, lines = facts.invoice, facts.customer, facts.lines
    loc = customer.locale or "en_US"
    cur = inv.currency
    company = catalog.company

    def money(amount: int) -> str:
        return format_money(amount, cur, loc)

    rate = Decimal(inv.tax_rate)
    due = format_date(inv.due_date, format="long", locale=loc)
    adjustments: list[tuple[str, str]] = []
    amount_due = inv.total
    label = "Amount due"
    notes = ["Prepaid credits are non-refundable except as stated in your agreement; "
             "unused credits expire on the date shown."]
    if inv.kind == "invoice":
        applied = facts.credit_applied
        if applied:
            adjustments.append(("Credit balance applied", money(-applied)))
            amount_due -= applied
        terms = f"Net {company.payment_terms_days}: due by {due}" if amount_due else "Paid in full from your credit balance"
    else:
        label = "Credited to your account" if inv.category == "guarantee" else "Credited"
        terms = ("Applied to your next invoice automatically" if inv.category == "guarantee"
                 else "Reduces the amount you owe; any excess is refunded or held as credit")
        notes = []
    tables = []
    if inv.category == "guarantee":
        tables.append(_guarantee_table(session, inv, money))
        notes.append("No-increase guarantee: a price concession under ASC 606-10-32-5 (variable consideration), "
                     "including its share of tax.")
    credits = _credits_table(session, catalog, inv, loc)
    if credits is not None:
        tables.append(credits)
    return DocumentView(
        title=TITLES.get(inv.kind, inv.kind),
        number=inv.number,
        issue_date=format_date(inv.issue_date, format="long", locale=loc),
        due_date=due if inv.kind == "invoice" else None,
        currency=cur,
        seller=Party(company.name, tuple(company.address), company.email),
        buyer=Party(customer.name, tuple(json.loads(customer.address)), customer.email),
        lines=tuple(DocumentLine(ln.description, format_units(ln.quantity, loc),
                                 format_price(Decimal(ln.unit_price), cur, loc), money(ln.amount))
                    for ln in lines),
        subtotal=money(inv.subtotal),
        tax_label=f"Tax ({(rate * 100).normalize():f}%)" if rate else "Tax",
        tax=money(inv.tax),
        total=money(inv.total),
        amount_due=money(amount_due),
        amount_due_label=label,
        payment_terms=terms,
        notes=tuple(notes),
        references=tuple((label, value) for label, value in (
            ("Customer ID", customer.id), ("Corrects", inv.reference), ("Our tax ID", company.tax_id),
            ("Our VAT ID", company.vat_id), ("Your VAT ID", customer.vat_id)) if value),
        adjustments=tuple(adjustments),
        tables=tuple(tables),
        logo=logo,
    )


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


def _guarantee_table(session: Session, inv: InvoiceRecord, money) -> Table:
    """Legacy per-seat bill against the new bill, month by month, for a guarantee credit note."""
    g = store.guarantee(session, inv.event_id)
    assert g is not None, inv.event_id
    months = store.guarantee_months(session, g.id, inv.service_period or "9999-12")
    if g.basis == "monthly":
        months = [m for m in months if m.period == inv.service_period]
    rows = tuple((m.period, money(m.legacy), money(m.subscription), money(m.overage), money(m.topups + m.commitments),
                  money(m.charges), money(m.charges - m.legacy)) for m in months)
    legacy, charges = sum(m.legacy for m in months), sum(m.charges for m in months)
    basis = ("Monthly basis: the month's new bill less the legacy bill, when positive."
             if g.basis == "monthly" else
             f"Cumulative basis over {g.start_month} to {months[-1].period if months else g.start_month}: "
             "the sum of the new bills less the sum of the legacy bills, when positive.")
    return Table(
        title="No-increase guarantee: legacy per-seat bill vs new bill",
        headers=("Month", "Legacy per-seat bill", "Plan fee", "Overage", "Top-ups, commitments", "New bill",
                 "Difference"),
        rows=rows, numeric=(False,) + (True,) * 6,
        totals=("Total", money(legacy), money(sum(m.subscription for m in months)),
                money(sum(m.overage for m in months)), money(sum(m.topups + m.commitments for m in months)),
                money(charges), money(charges - legacy)),
        note=f"{basis} Credit: {money(inv.subtotal)} before tax.")


def _credits_table(session: Session, catalog: Catalog, inv: InvoiceRecord, loc: str) -> Table | None:
    """The customer's credits at the end of the issue date: remaining units per grant (9100
    balance), with the expiry date; credits expiring within 30 days are flagged. None if none."""
    balances = store.credit_balances(session, inv.customer_id, inv.issue_date)
    if not balances:
        return None
    tz = catalog.tz
    grants = store.grants(session, sorted(balances))
    soon = inv.issue_date + timedelta(days=30)
    rows, expiring = [], 0
    for gid in sorted(balances, key=lambda k: (grants[k].expires_at is None, grants[k].expires_at or 0, k)):
        g = grants[gid]
        until = boundary_date(g.expires_at, tz) if g.expires_at is not None else None
        flag = until is not None and until <= soon
        expiring += balances[gid] if flag else 0
        rows.append((gid, SOURCES.get(g.source, g.source), format_units(balances[gid], loc),
                     (format_date(until, format="medium", locale=loc) if until else "never")
                     + (" (within 30 days)" if flag else "")))
    return Table(
        title=f"Your credits at {format_date(inv.issue_date, format='long', locale=loc)}",
        headers=("Grant", "Source", "Credits left", "Valid through"), rows=tuple(rows),
        numeric=(False, False, True, False),
        totals=("Total", "", format_units(sum(balances.values()), loc), ""),
        note=(f"{format_units(expiring, loc)} credits expire in the next 30 days." if expiring
              else "No credits expire in the next 30 days."))


SOURCES = {"commitment": "Commitment", "topup": "Top-up", "promotional": "Promotional", "subscription": "Plan allowance",
           "rollover": "Rolled over"}


def facturx_invoice(session: Session, catalog: Catalog, number: str) -> FacturXInvoice | None:
    """The EN 16931 data of invoice or credit note ``number`` for its Factur-X XML, or None
    when the catalog gives the seller neither ``tax_id`` nor ``vat_id`` (EN 16931 needs one,
    BR-CO-26 and BR-S-02 / BR-Z-02). Amounts: `Decimal` major units, from the stored document;
    amount due = total - credit balance applied (BT-113 prepaid). raises NotFoundError."""
    facts = _facts(session, number)
    catalog, _ = issued_seller(catalog, facts)
    company = catalog.company
    if not (company.tax_id or company.vat_id):
        return None
    inv, customer, lines = facts.invoice, facts.customer, facts.lines
    cur = inv.currency
    applied = facts.credit_applied
    return FacturXInvoice(
        number=inv.number, type_code="380" if inv.kind == "invoice" else "381", issue_date=inv.issue_date,
        currency=cur,
        seller=FacturXParty(company.name, tuple(company.address), company.country,
                            legal_registration_id=company.tax_id, vat_id=company.vat_id,
                            tax_registration_id=company.tax_id, email=company.email),
        buyer=FacturXParty(customer.name, tuple(json.loads(customer.address)), customer.country or company.country,
                           identifier=customer.id, vat_id=customer.vat_id, email=customer.email),
        lines=tuple(FacturXLine(ln.description, Decimal(ln.quantity), Decimal(ln.unit_price), to_major(ln.amount, cur))
                    for ln in lines),
        tax_rate=Decimal(inv.tax_rate), subtotal=to_major(inv.subtotal, cur), tax=to_major(inv.tax, cur),
        total=to_major(inv.total, cur), amount_due=to_major(inv.total - applied, cur),
        due_date=inv.due_date if inv.kind == "invoice" else None,
        payment_terms=(f"Net {company.payment_terms_days}" if inv.kind == "invoice"
                       else "Credited to the customer's account; any excess over amounts owed is refunded"),
        buyer_reference=customer.id, preceding_invoice=inv.reference)


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
