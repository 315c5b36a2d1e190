"""Invoice and credit-note rendering: text, escaping of customer input, no fetching, determinism.

No database: the documents are built by hand as `DocumentView` values with real numbers
(a 120,000-credit commitment at $0.05, sales tax 8.25% on $6,513.08 is $537.33).
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from pypdf import PdfReader
from weasyprint import HTML

from reports import pdf
from reports.pdf import (
    STATIC_DIR,
    ResourceRefusedError,
    StaticAssetFetcher,
    render_document_html,
    render_document_pdf,
)
from reports.views import DocumentLine, DocumentView, Party

INVOICE = DocumentView(
    title="Invoice",
    number="INV-2026-000001",
    issue_date="October 1, 2026",
    due_date="October 31, 2026",
    currency="USD",
    seller=Party("Example AI, Inc.", ("1 Market St", "San Francisco, CA 94105", "USA")),
    buyer=Party(
        "Northwind Analytics LLC",
        ("500 Congress Ave, Suite 1200", "Austin, TX 78701", "USA"),
        "ap@northwind.example",
    ),
    lines=(
        DocumentLine(
            "Prepaid commitment C-1001: 120,000 credits, term 2026-10-01 to 2027-09-30",
            "120,000",
            "$0.05",
            "$6,000.00",
        ),
        DocumentLine("Professional plan, October 2026", "1", "$299.00", "$299.00"),
        DocumentLine("Top-up pack pack_1000: 1,000 credits", "3", "$20.00", "$60.00"),
        DocumentLine("Overage, September 2026", "1,284", "$0.12", "$154.08"),
    ),
    subtotal="$6,513.08",
    tax_label="Sales tax (8.25%)",
    tax="$537.33",
    total="$7,050.41",
    amount_due="$7,050.41",
    payment_terms="Net 30: due by October 31, 2026",
    notes=("Unused credits of C-1001 roll over up to 25% into the next term.",),
    references=(("Customer ID", "cus_0001"),),
)


class SpyFetcher(StaticAssetFetcher):
    """The production fetcher, recording every URL WeasyPrint asks it for."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols=("file",))
        self.urls: list[str] = []

    def fetch(self, url, headers=None):
        self.urls.append(url)
        return super().fetch(url, headers)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyFetcher:
    spy = SpyFetcher()
    monkeypatch.setattr(pdf, "safe_fetcher", spy)
    return spy


@pytest.fixture
def listener():
    """A TCP socket on 127.0.0.1 that nobody should ever connect to."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def connections(server: socket.socket) -> int:
    """How many connections reached ``server`` (the kernel queues them even before accept)."""
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_invoice_pdf_shows_number_buyer_total_and_tax(tmp_path: Path) -> None:
    """The PDF text carries the invoice number, the buyer, the tax line and the total."""
    out = render_document_pdf(INVOICE, tmp_path / "invoice.pdf")

    assert out == tmp_path / "invoice.pdf"
    text = pdf_text(out)
    assert "INV-2026-000001" in text
    assert "Northwind Analytics LLC" in text
    assert "Sales tax (8.25%)" in text
    assert "$537.33" in text
    assert "$7,050.41" in text
    assert "1 / 1" in text  # the page footer: page / pages, the same in every language


def test_credit_note_without_due_date_renders(tmp_path: Path) -> None:
    """A credit note with no due date, notes or references still renders its number and total."""
    note = dataclasses.replace(
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
        references=(),
    )

    text = pdf_text(render_document_pdf(note, tmp_path / "note.pdf"))

    assert "Credit note" in text
    assert "CN-2026-000001" in text
    assert "$2,165.00" in text
    assert "Due date" not in text


def test_customer_markup_is_printed_literally_and_nothing_is_fetched(
    tmp_path: Path, spy: SpyFetcher, listener: socket.socket
) -> None:
    """A buyer named like an <img> tag is shown as text; only the bundled stylesheet is fetched."""
    port = listener.getsockname()[1]
    hostile = f'<img src="http://127.0.0.1:{port}/x">'
    view = dataclasses.replace(
        INVOICE,
        buyer=Party(
            hostile,
            ("file:///etc/passwd",),
            f'"><link rel=stylesheet href="http://127.0.0.1:{port}/s.css">',
        ),
        notes=(f"<style>@import url(http://127.0.0.1:{port}/i.css);</style>",),
    )

    assert "&lt;img src=" in render_document_html(view)
    text = pdf_text(render_document_pdf(view, tmp_path / "hostile.pdf"))

    assert hostile in text.replace("\n", "")
    assert "file:///etc/passwd" in text
    assert spy.urls == [(STATIC_DIR / "document.css").as_uri()]
    assert connections(listener) == 0


def test_fetcher_refuses_network_and_files_outside_static(listener: socket.socket) -> None:
    """Raw HTML rendered with the fetcher loads no URL, no outside file, no data: resource."""
    port = listener.getsockname()[1]
    fetcher = StaticAssetFetcher()
    refused = [
        f"http://127.0.0.1:{port}/x",
        f"https://127.0.0.1:{port}/x",
        "file:///etc/passwd",
        (STATIC_DIR / ".." / "pdf.py").as_uri(),
        f"file://127.0.0.1{STATIC_DIR / 'document.css'}",
        STATIC_DIR.as_uri(),
        "data:text/css,body{color:red}",
    ]
    for url in refused:
        with pytest.raises(ResourceRefusedError):
            fetcher.fetch(url)
    assert fetcher.fetch((STATIC_DIR / "document.css").as_uri()).read().startswith(b"/*")

    raw = (
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/s.css">'
        f'<img src="http://127.0.0.1:{port}/x"><img src="file:///etc/passwd">'
    )
    HTML(string=raw, base_url=STATIC_DIR, url_fetcher=fetcher).write_pdf()
    assert connections(listener) == 0


def test_source_date_epoch_makes_renders_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SOURCE_DATE_EPOCH set, two renders are byte-identical and dated from it."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790812800")  # 2026-10-01T00:00:00Z

    first = render_document_pdf(INVOICE, tmp_path / "a.pdf").read_bytes()
    second = render_document_pdf(INVOICE, tmp_path / "b.pdf").read_bytes()

    assert first == second
    assert PdfReader(tmp_path / "a.pdf").metadata["/CreationDate"] == "D:20261001000000Z"


def test_malformed_source_date_epoch_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SOURCE_DATE_EPOCH that is not integer seconds raises ValueError naming the value."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2026-10-01")

    with pytest.raises(ValueError, match="2026-10-01"):
        render_document_pdf(INVOICE, tmp_path / "x.pdf")
