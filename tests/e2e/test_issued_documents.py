"""An issued invoice or credit note never changes (docs/design.md §5.8): it keeps the seller (the
catalog's whole company), the logo and the customer as they were at issue, and renders from
them. Changing the catalog's company name, e-mail, tax id and logo, or the customer's name, or
having no catalog at all, gives the same PDF bytes (with SOURCE_DATE_EPOCH fixed). A document
issued before its seller was stored (migration 0014) renders from the catalog, as before.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from conftest import PLANS_CATALOG

from ledger.catalog import Catalog, load_catalog
from ledger.errors import CatalogError
from ledger.store.models import Customer, Invoice
from ledger.services.documents import invoice_document
from reports.documents import render_invoice

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">'
        '<rect width="120" height="30" fill="#13a57b"/></svg>')
OTHER_LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30">'
              '<circle cx="15" cy="15" r="15" fill="#a51313"/></svg>')


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def _catalog_text(name: str, email: str, tax_id: str, logo: str) -> str:
    return (PLANS_CATALOG.replace('name = "Example AI, Inc."', f'name = "{name}"')
            .replace("payment_terms_days = 30", f'payment_terms_days = 30\nemail = "{email}"\ntax_id = "{tax_id}"\n'
                                                f'vat_id = "FR40303265045"\nlogo = "{logo}"'))


@pytest.fixture
def issued(make_books, tmp_path, monkeypatch):
    """Books with an invoice (INV-2026-000001) and a credit note (CN-2026-000001) issued under a
    catalog with a logo, an e-mail and tax ids."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    (tmp_path / "logo.svg").write_text(LOGO, encoding="utf-8")
    (tmp_path / "ledger.toml").write_text(_catalog_text("Example AI, Inc.", "billing@example-ai.example",
                                                        "94-1234567", "logo.svg"), encoding="utf-8")
    books = make_books()
    books.catalog = load_catalog(tmp_path / "ledger.toml", required=True)
    books.post("\n".join([
        ev("c-k", "customer.created", "2026-01-01T00:00:00Z", customer_id="kestrel", name="Kestrelwerk GmbH",
           currency="USD", tax_rate="0.19", address=["Lindenhofstrasse 14", "80331 München"],
           email="rechnung@kestrel.example", locale="de_DE", country="DE", vat_id="DE129273398"),
        ev("t-1", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="kestrel", topup_id="t-1",
           credits=1000, amount="20.00"),
        ev("r-1", "refund.issued", "2026-01-07T10:00:00Z", customer_id="kestrel", grant_ref="t-1", credits=500),
    ]))
    return books


def _render(books, catalog: Catalog, folder) -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    with books.session() as s:
        return {n: render_invoice(s, catalog, n, folder / f"{n}.pdf").read_bytes()
                for n in ("INV-2026-000001", "CN-2026-000001")}


def test_issued_documents_render_the_same_after_the_catalog_and_customer_change(issued, tmp_path):
    """Company name, e-mail, tax id and logo changed in ledger.toml, the customer renamed: the
    invoice and the credit note are the same bytes; with no catalog at all too."""
    before = _render(issued, issued.catalog, tmp_path / "before")
    (tmp_path / "new-logo.svg").write_text(OTHER_LOGO, encoding="utf-8")
    (tmp_path / "logo.svg").write_text(OTHER_LOGO, encoding="utf-8")  # the old file changed too
    (tmp_path / "ledger.toml").write_text(_catalog_text("Renamed Corp", "ar@renamed.example", "12-3456789",
                                                        "new-logo.svg"), encoding="utf-8")
    changed = load_catalog(tmp_path / "ledger.toml", required=True)
    with issued.session() as s:
        s.execute(sa.update(Customer).where(Customer.id == "kestrel").values(name="Someone Else AG",
                                                                              address='["Elsewhere 1"]'))
        s.commit()
    after = _render(issued, changed, tmp_path / "after")
    without = _render(issued, Catalog(), tmp_path / "without")
    assert after == before
    assert without == before
    # the render is not blind to its inputs: the same invoice as a pre-0014 document (no stored
    # seller, buyer, logo) takes the changed catalog and customer, and differs
    with issued.session() as s:
        s.execute(sa.update(Invoice).values(seller=None, buyer=None, logo=None, logo_type=None))
        s.commit()
    legacy = _render(issued, changed, tmp_path / "legacy")
    assert legacy["INV-2026-000001"] != before["INV-2026-000001"]
    assert legacy["CN-2026-000001"] != before["CN-2026-000001"]


def test_the_invoice_row_holds_the_seller_buyer_and_logo_as_issued(issued):
    """The stored seller is the whole company model as canonical JSON; the buyer is the customer's
    name, address, e-mail, locale, country and VAT id; the logo is the file's bytes."""
    with issued.session() as s:
        row = s.execute(sa.select(Invoice).where(Invoice.number == "INV-2026-000001")).scalar_one()
        seller, buyer, logo, logo_type = row.seller, row.buyer, bytes(row.logo), row.logo_type
    assert seller == issued.catalog.seller_snapshot()
    assert json.loads(seller)["name"] == "Example AI, Inc."
    assert json.loads(seller)["tax_id"] == "94-1234567"
    assert json.loads(seller)["payment_terms_days"] == 30
    assert json.loads(buyer) == {"name": "Kestrelwerk GmbH", "address": ["Lindenhofstrasse 14", "80331 München"],
                                 "email": "rechnung@kestrel.example", "locale": "de_DE", "country": "DE",
                                 "vat_id": "DE129273398"}
    assert (logo, logo_type) == (LOGO.encode(), "image/svg+xml")
    with issued.session() as s:  # `ledger invoices show` prints them back
        shown = invoice_document(s, "INV-2026-000001")
    assert shown["seller"] == json.loads(seller) and shown["buyer"] == json.loads(buyer)
    assert shown["logo_sha256"] == hashlib.sha256(LOGO.encode()).hexdigest()


def test_a_document_issued_before_snapshots_needs_a_catalog_to_render(issued, tmp_path):
    """Without a stored seller and without a company in the catalog there is nothing to print as
    the seller: CatalogError naming the document and the missing [company]."""
    with issued.session() as s:
        s.execute(sa.update(Invoice).values(seller=None, buyer=None, logo=None, logo_type=None))
        s.commit()
    with issued.session() as s, pytest.raises(CatalogError) as err:
        render_invoice(s, Catalog(), "INV-2026-000001", tmp_path / "x.pdf")
    assert "INV-2026-000001" in str(err.value) and "[company]" in str(err.value)
