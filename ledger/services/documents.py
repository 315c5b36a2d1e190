"""Invoices and credit notes (docs/design.md §5.8, §8.1): the register, one document as JSON, and
their PDFs (`reports.documents`: PDF/A-3b, with Factur-X XML when the seller has a tax id).
Reads only, in the caller's session; the PDFs are rendered in worker processes that hold no
transaction and die with the calling process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.money import major_str
from ledger.errors import NotFoundError
from ledger.reporting import Column, Report
from ledger.core.periods import first_day, last_day
from ledger.store import invoices
from ledger.store.documents import issued_numbers

if TYPE_CHECKING:
    from ledger.store.db import Session
    from reports.documents import RenderJob

_REGISTER = [Column("number", "Number"), Column("kind", "Kind"), Column("customer_id", "Customer"),
             Column("customer", "Name"), Column("issue_date", "Issued"), Column("due_date", "Due"),
             Column("currency", "Cur"), Column("subtotal", "Subtotal", "money"), Column("tax", "Tax", "money"),
             Column("total", "Total", "money")]


_KINDS = ("invoice", "credit_note", "net")
_AMOUNTS = ("subtotal", "tax", "total")


def invoice_register(session: Session) -> Report:
    """Every invoice and credit note: number, kind, customer, dates, subtotal, tax, total (int
    minor units of its currency), in series and number order. A credit note's amounts are
    negative (it reduces what was billed), so each column sums to the net; the totals are three
    rows per currency: ``invoice``, ``credit_note`` (negative) and ``net`` (their sum).

    How the net ties to the trial balance (per currency, through the last issue date):

    - ``tax`` of the net row = the credit balance of 2400 Sales tax payable: tax is posted only
      with a document (Cr 2400 by an invoice, Dr 2400 by a credit note).
    - ``total`` of the net row = the debit balance of 1100 Accounts receivable
      + receivables settled without a document: the net credit to 1100 of the entries that issue
      none (``payment``: paid; ``credit_applied``: the customer credit balance applied to an
      invoice; ``void`` of a payment: negative; ``reclass`` of a cancelled paid invoice: negative)
      - credit notes settled outside receivables: the credits to 2200 Customer credit balance
      and 2300 Refunds payable on a credit note's own entry (a guarantee credit held as credit,
      the part of a refund beyond what the customer owed).
      It is exact because an invoice's entry debits 1100 by its total and a credit note's entry
      credits 1100, 2200 and 2300 by its total (invariant 5).

    E.g. the demo's EUR: net 4,507.44 = 1100 24.00 + payments 4,570.00 - guarantee credit held as
    credit 86.56; net tax 720.18 = 2400 720.18.
    """
    rows = []
    totals: dict[tuple[str, str], dict] = {}
    for inv in invoices.register(session):
        sign = -1 if inv["kind"] == "credit_note" else 1
        rows.append({"number": inv["number"], "kind": inv["kind"], "customer_id": inv["customer_id"],
                     "customer": inv["customer"], "issue_date": inv["issue_date"].isoformat(),
                     "due_date": inv["due_date"].isoformat(), "currency": inv["currency"],
                     **{k: sign * inv[k] for k in _AMOUNTS}})
        for kind in (inv["kind"], "net"):
            t = totals.setdefault((inv["currency"], kind), {"currency": inv["currency"], "kind": kind,
                                                            **dict.fromkeys(_AMOUNTS, 0)})
            for k in _AMOUNTS:
                t[k] += sign * inv[k]
    for cur in {c for c, _ in totals}:  # every currency shows all three rows, zero when none of a kind
        for kind in _KINDS:
            totals.setdefault((cur, kind), {"currency": cur, "kind": kind, **dict.fromkeys(_AMOUNTS, 0)})
    order = sorted(totals, key=lambda key: (key[0], _KINDS.index(key[1])))
    return Report("invoices", "Invoices and credit notes", None, list(_REGISTER), rows, [totals[k] for k in order])


def invoice_document(session: Session, number: str) -> dict:
    """One invoice with its lines; amounts as decimal strings in major units; ``seller`` and
    ``buyer`` as the document kept them when issued and the sha256 of its logo (None for a
    document issued before migration 0014, or without a logo). raises NotFoundError."""
    found = invoices.with_lines(session, number)
    if found is None:
        raise NotFoundError("invoice", number)
    inv, lines = found
    cur = inv["currency"]
    return {"number": inv["number"], "kind": inv["kind"], "customer_id": inv["customer_id"], "currency": cur,
            "issue_date": inv["issue_date"].isoformat(), "due_date": inv["due_date"].isoformat(),
            "tax_rate": inv["tax_rate"],
            "lines": [{"description": ln["description"], "quantity": ln["quantity"], "unit_price": ln["unit_price"],
                       "amount": major_str(ln["amount"], cur)} for ln in lines],
            "subtotal": major_str(inv["subtotal"], cur), "tax": major_str(inv["tax"], cur),
            "total": major_str(inv["total"], cur), "event_id": inv["event_id"], "entry_id": inv["entry_id"],
            "seller": json.loads(inv["seller"]) if inv["seller"] else None,
            "buyer": json.loads(inv["buyer"]) if inv["buyer"] else None,
            "logo_sha256": hashlib.sha256(inv["logo"]).hexdigest() if inv["logo"] is not None else None}


def render_document(session: Session, catalog: Catalog, number: str, out: str | Path) -> Path:
    """Render invoice or credit note ``number`` to a PDF at ``out``; returns its path. raises
    NotFoundError."""
    from reports.documents import render_invoice

    return render_invoice(session, catalog, number, out)


def render_period(session: Session, catalog: Catalog, period: str, folder: str | Path, *,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Render every invoice and credit note issued in ``period`` ('YYYY-MM') to
    ``folder``/<number>.pdf (the folder is created), in parallel processes; returns how many.
    ``progress(done, total)``: once before the first document is rendered, then after each."""
    from reports.documents import render_job

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [render_job(session, catalog, n, folder / f"{n}.pdf") for n in issued_numbers(session, first_day(period), last_day(period))]
    session.rollback()  # what the renders need is read: no connection held while they run
    done = 0

    def one_done() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(jobs))

    if progress is not None:
        progress(0, len(jobs))
    render_jobs(jobs, on_done=one_done)
    return len(jobs)


def render_jobs(jobs: list[RenderJob], *, on_done: Callable[[], None] | None = None) -> list[Path]:
    """Render ``jobs`` (`reports.documents.render_views`: PDFs, in parallel processes; returns
    their paths in job order; ``on_done()`` once per document) with workers that die with this
    process, even when it is killed with SIGKILL (Linux). The workers read no database: end the
    session's transaction before calling, so that none inherits a connection in a transaction."""
    from ledger.services.importing import children_die_with_this_process
    from reports.documents import render_views

    with children_die_with_this_process():
        return render_views(jobs, on_done=on_done)
