"""B4 invoice rendering: WeasyPrint's defaults against reports.pdf, same invoices, same run.

Usage::

    .venv/bin/python benchmarks/bench_render.py [--count N] [--workers W] [--results FILE]

Builds ``--count`` realistic invoices and credit notes (1 to 6 lines, 12 customers in en_US,
fr_FR, de_DE, en_GB and en_IN with their currencies and tax rates) as `DocumentView` values
with matching `FacturXInvoice` data, then renders all of them, to PDF files in a temporary
folder, five ways:

1. **defaults**: ``HTML(string=..., base_url=...).write_pdf(target)``, the stylesheet as it
   was before the bundled fonts (system "DejaVu Sans", no ``@font-face``), WeasyPrint's own URL
   fetcher, no shared `FontConfiguration` (WeasyPrint makes one per document), in this process;
2. **ours, W processes**: `reports.pdf.render_document_pdf` (bundled fonts embedded whole,
   shared font configuration, PDF/A-3b, Factur-X XML embedded) in a fresh
   ``ProcessPoolExecutor(W)`` whose workers start with `reports.pdf.worker_init`,
   ``chunksize=4``;
3. **ours, 1 process**: the same with one worker process, so that 2 vs 3 is parallelism
   alone and 1 vs 3 the font, the shared configuration and the worker set-up (net of the
   PDF/A-3b and Factur-X work that 1 does not do);
4. **ours, 1 process, fonts subset per document**: as 3 with ``full_fonts=False``, to show
   what embedding the 43 KB fonts whole saves (not what ships);
5. **ours, W processes, previous layout**: as 2 with a user stylesheet restoring the layout
   rules before B4 was measured (``overflow-wrap: anywhere`` on everything, automatic table
   layout; see `WHAT_IF_CSS`), to show what the layout change saves (not what ships).

Throughput is documents / wall-clock seconds of the whole batch (including warm-up and, for
4, starting the pool); "median ms" is the median time of one render inside its process.
Prints a Rich table with the machine (cores, CPU model from /proc/cpuinfo, date) and writes
every mode (median, ratio, PDF size) and where the speed comes from to
``benchmarks/work/profile-<stamp>-render.md`` (ignored by git). With ``--results FILE`` it
replaces the section "B4 invoice rendering" of that Markdown file (or appends it) with the
compact form: the targets met or not, the defaults of the same run as the reference, two
sentences, the detail file's name; and says whether the file is still under 10 KB.
Targets: ours (W processes) at least 4x defaults and at least 15 invoices/s. Exit code 0
whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from results_md import Row, file_stamp, replace_section, shown, size_note, target_table, write_details
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import weasyprint
from weasyprint import CSS, HTML

from reports import pdf
from reports.facturx import FacturXInvoice, FacturXLine, FacturXParty
from reports.views import DocumentLine, DocumentView, Party

SECTION = "B4 invoice rendering"
WHAT_IF_CSS = ("html, html * { overflow-wrap: anywhere !important } "
               ".lines, .detail { table-layout: auto !important }")
WHAT_IF_LABEL = "previous layout: overflow-wrap anywhere, automatic tables"
"""The layout before this benchmark: ``overflow-wrap: anywhere`` everywhere makes every
character a break opportunity when WeasyPrint computes min-content widths (tables, flex
items). document.css now keeps it to the top blocks and fixes the table layouts."""
TARGET_RATIO = 4.0
TARGET_RATE = 15.0

SELLER = Party("Example AI, Inc.", ("1 Market St", "San Francisco, CA 94105", "USA"), "billing@example.ai")
SELLER_FX = FacturXParty(
    SELLER.name, SELLER.address, "US",
    legal_registration_id="12-3456789", tax_registration_id="12-3456789", email=SELLER.email,
)


@dataclass(frozen=True)
class Customer:
    """A buyer of the benchmark's documents: locale, currency (ISO 4217) and tax rate (fraction)."""

    id: str
    name: str
    address: tuple[str, ...]
    country: str
    locale: str
    currency: str
    tax_rate: Decimal


CUSTOMERS = (
    Customer("cus_0001", "Northwind Analytics LLC", ("500 Congress Ave, Suite 1200", "Austin, TX 78701", "USA"), "US", "en_US", "USD", Decimal("0.0825")),
    Customer("cus_0002", "Contoso Research Labs, Inc.", ("1 Microsoft Way", "Redmond, WA 98052", "USA"), "US", "en_US", "USD", Decimal("0.101")),
    Customer("cus_0003", "Société Générale d’Analyse SAS", ("12 rue de la Paix", "75002 Paris", "France"), "FR", "fr_FR", "EUR", Decimal("0.20")),
    Customer("cus_0004", "Müller & Söhne Datenwerk GmbH", ("Königstraße 28", "70173 Stuttgart", "Deutschland"), "DE", "de_DE", "EUR", Decimal("0.19")),
    Customer("cus_0005", "Brightwater Insights Ltd", ("221B Baker Street", "London NW1 6XE", "United Kingdom"), "GB", "en_GB", "GBP", Decimal("0.20")),
    Customer("cus_0006", "Shakti Data Systems Pvt. Ltd.", ("Plot 14, Cyber City", "Gurugram, Haryana 122002", "India"), "IN", "en_IN", "INR", Decimal("0.18")),
    Customer("cus_0007", "Acme Robotics Co.", ("77 Industrial Pkwy", "Dayton, OH 45402", "USA"), "US", "en_US", "USD", Decimal(0)),
    Customer("cus_0008", "Éditions Lumière SARL", ("4 quai des Chartrons", "33000 Bordeaux", "France"), "FR", "fr_FR", "EUR", Decimal("0.20")),
    Customer("cus_0009", "Wörterbuch KI UG (haftungsbeschränkt)", ("Torstraße 49", "10119 Berlin", "Deutschland"), "DE", "de_DE", "EUR", Decimal("0.19")),
    Customer("cus_0010", "Pinecrest Legal Partners LLP", ("1200 Market St, Floor 14", "Philadelphia, PA 19107", "USA"), "US", "en_US", "USD", Decimal("0.06")),
    Customer("cus_0011", "Harbourside Media Group", ("3 Pier Road", "Bristol BS1 5TR", "United Kingdom"), "GB", "en_GB", "GBP", Decimal("0.20")),
    Customer("cus_0012", "Quillon Health Informatics, Inc.", ("45 Fremont St", "San Francisco, CA 94105", "USA"), "US", "en_US", "USD", Decimal("0.08625")),
)

# (description, quantity, unit price in USD; converted roughly for other currencies)
CATALOG = (
    ("Prepaid commitment C-{n}: {q} credits, term 2026-10-01 to 2027-09-30", 120000, Decimal("0.05")),
    ("Professional plan, October 2026 (5,000 credits included)", 1, Decimal("299.00")),
    ("Starter plan, October 2026 (1,000 credits included)", 1, Decimal("99.00")),
    ("Top-up pack pack_1000: 1,000 credits, expires 2027-10-31", 3, Decimal("20.00")),
    ("Overage, September 2026: credits beyond the included allowance", 1284, Decimal("0.12")),
    ("Platform fee, October 2026", 1, Decimal("49.00")),
    ("Promotional credits (zero cost), campaign Q4-LAUNCH", 500, Decimal(0)),
)
RATES = {"USD": Decimal(1), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "INR": Decimal(83)}
CENT = Decimal("0.01")
NOTE = (
    "Prepaid credits are non-refundable except as stated in your agreement; "
    "unused credits expire on the date shown."
)


def build_documents(count: int) -> list[tuple[DocumentView, FacturXInvoice]]:
    """``count`` invoices (every 10th a credit note) with 1 to 6 lines, cycling customers."""
    docs = []
    for i in range(count):
        customer = CUSTOMERS[i % len(CUSTOMERS)]
        loc, cur, rate = customer.locale, customer.currency, customer.tax_rate
        credit_note = i % 10 == 9
        line_count = 1 if credit_note else 1 + (i * 7) % 6
        issue = date(2026, 10, 1) + timedelta(days=i % 28)
        due = issue + timedelta(days=30)
        lines, fx_lines = [], []
        for j in range(line_count):
            text, quantity, price = CATALOG[(i + j * 3) % len(CATALOG)]
            quantity = quantity + (i * 13 + j) % 7 * (10 if quantity > 100 else 0)
            price = (price * RATES[cur]).quantize(Decimal("0.0001")).normalize()
            amount = (price * quantity).quantize(CENT, ROUND_HALF_UP)
            description = text.format(n=1000 + i, q=format_decimal(quantity, locale=loc))
            lines.append(DocumentLine(
                description, format_decimal(quantity, locale=loc),
                format_currency(price, cur, locale=loc, decimal_quantization=False),
                format_currency(amount, cur, locale=loc),
            ))
            fx_lines.append(FacturXLine(description, Decimal(quantity), price, amount))
        subtotal = sum((ln.net_amount for ln in fx_lines), Decimal("0.00"))
        tax = (subtotal * rate).quantize(CENT, ROUND_HALF_UP)
        total = subtotal + tax
        due_amount = Decimal("0.00") if credit_note else total
        prefix = "CN" if credit_note else "INV"
        number = f"{prefix}-2026-{i + 1:06d}"
        money = lambda value, cur=cur, loc=loc: format_currency(value, cur, locale=loc)
        due_text = format_date(due, format="long", locale=loc)
        terms = "Applied to the customer credit balance" if credit_note else f"Net 30: due by {due_text}"
        view = DocumentView(
            title="Credit note" if credit_note else "Invoice",
            number=number,
            issue_date=format_date(issue, format="long", locale=loc),
            due_date=None if credit_note else due_text,
            currency=cur,
            seller=SELLER,
            buyer=Party(customer.name, customer.address, f"ap@{customer.id}.example"),
            lines=tuple(lines),
            subtotal=money(subtotal),
            tax_label=f"Tax ({(rate * 100).normalize():f}%)" if rate else "Tax",
            tax=money(tax),
            total=money(total),
            amount_due=money(due_amount),
            payment_terms=terms,
            notes=(NOTE,),
            references=(("Customer ID", customer.id),),
        )
        fx = FacturXInvoice(
            number=number, type_code="381" if credit_note else "380", issue_date=issue,
            currency=cur, seller=SELLER_FX,
            buyer=FacturXParty(customer.name, customer.address, customer.country,
                               identifier=customer.id, email=f"ap@{customer.id}.example"),
            lines=tuple(fx_lines), tax_rate=rate, subtotal=subtotal, tax=tax, total=total,
            amount_due=due_amount, due_date=None if credit_note else due, payment_terms=terms,
            buyer_reference=customer.id,
            preceding_invoice=f"INV-2026-{i:06d}" if credit_note else None,
        )
        docs.append((view, fx))
    return docs


def legacy_static(folder: Path) -> Path:
    """A copy of reports/static whose document.css uses the system DejaVu Sans, as before."""
    target = folder / "static-dejavu"
    shutil.copytree(pdf.STATIC_DIR, target)
    css = (target / "document.css").read_text()
    css = re.sub(r"@font-face\s*\{[^}]*\}\s*", "", css)
    css = css.replace('"Ledger Sans"', '"DejaVu Sans"')
    (target / "document.css").write_text(css)
    return target


def run_defaults(docs, static: Path, out: Path) -> list[float]:
    """Render ``docs`` with WeasyPrint's defaults in this process; return each render's seconds."""
    times = []
    for view, _fx in docs:
        start = time.perf_counter()
        HTML(string=pdf.render_document_html(view), base_url=static).write_pdf(out / f"{view.number}.pdf")
        times.append(time.perf_counter() - start)
    return times


def render_ours(job: tuple[DocumentView, FacturXInvoice, str]) -> float:
    """Render one document with reports.pdf; return its render time in seconds."""
    view, fx, path = job
    start = time.perf_counter()
    pdf.render_document_pdf(view, path, facturx=fx)
    return time.perf_counter() - start


def init_worker(options: dict[str, object], extra_css: str | None) -> None:
    """Pool initializer: PDF options for this run (the subset-fonts variant) and an extra user
    stylesheet (the layout what-if), then `reports.pdf.worker_init` (fonts registered,
    gc.freeze) as production workers do."""
    pdf.PDF_OPTIONS.update(options)
    if extra_css:
        pdf.PDF_OPTIONS["stylesheets"] = [CSS(string=extra_css)]
    pdf.worker_init()


def run_ours(docs, out: Path, workers: int, extra_css: str | None = None, **options) -> list[float]:
    """Render ``docs`` in a fresh pool of ``workers`` processes; return each render's seconds."""
    jobs = [(view, fx, str(out / f"{view.number}.pdf")) for view, fx in docs]
    with ProcessPoolExecutor(
        max_workers=workers, initializer=init_worker, initargs=(options, extra_css)
    ) as pool:
        return list(pool.map(render_ours, jobs, chunksize=4))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform.processor(), else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    """Render every mode, print and write the results (module docstring); always 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="documents per mode (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel mode")
    parser.add_argument("--results", type=Path, help="Markdown file whose B4 section to rewrite")
    args = parser.parse_args(argv)

    os.environ.setdefault("SOURCE_DATE_EPOCH", "1790812800")
    docs = build_documents(args.count)
    console = Console(width=max(Console().width, 120))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        tmp_path = Path(tmp)
        static = legacy_static(tmp_path)
        modes = (
            ("defaults: system DejaVu Sans, no shared font config", 1,
             lambda out: run_defaults(docs, static, out)),
            (f"ours, {args.workers} processes", args.workers,
             lambda out: run_ours(docs, out, args.workers)),
            ("ours, 1 process", 1, lambda out: run_ours(docs, out, 1)),
            ("ours, 1 process, fonts subset per document (not shipped)", 1,
             lambda out: run_ours(docs, out, 1, full_fonts=False)),
            (f"ours, {args.workers} processes, {WHAT_IF_LABEL} (not shipped)", args.workers,
             lambda out: run_ours(docs, out, args.workers, extra_css=WHAT_IF_CSS)),
        )
        for label, processes, run in modes:
            out = tmp_path / f"out-{len(rows)}"
            out.mkdir()
            console.print(f"[dim]rendering {len(docs)} documents: {label}[/dim]")
            start = time.perf_counter()
            times = run(out)
            wall = time.perf_counter() - start
            rows.append((label, processes, len(docs) / wall, statistics.median(times) * 1000,
                         sum(p.stat().st_size for p in out.iterdir()) / len(docs) / 1024))

    report(args, rows, len(docs), console)
    return 0


def target_rows(rows: list[tuple], workers: int) -> list[Row]:
    """The section's table: the defaults (the reference), ours in one process, and the targets
    (ours in ``workers`` processes: invoices/s and the ratio to the defaults), met or not."""
    base, (_, _, best, best_median, _), (_, _, one, one_median, _) = rows[0][2], rows[1], rows[2]
    return [
        Row(f"reference: WeasyPrint's defaults ({rows[0][0].split(': ', 1)[1]}), 1 process",
            f"{base:.1f} invoices/s (median {rows[0][3]:.0f} ms)"),
        Row("ours, 1 process", f"{one:.1f} invoices/s (median {one_median:.0f} ms, {one / base:.1f}x defaults)"),
        Row(f"B4 ours, {workers} processes", f"{best:.1f} invoices/s (median {best_median:.0f} ms)",
            f">= {TARGET_RATE:.0f}/s", bool(best >= TARGET_RATE)),
        Row(f"B4 ours, {workers} processes / defaults", f"{best / base:.1f}x", f">= {TARGET_RATIO:.0f}x",
            bool(best / base >= TARGET_RATIO)),
    ]


def report(args: argparse.Namespace, rows: list[tuple], count: int, console: Console) -> None:
    """Print the modes and the verdict, write the detail file under benchmarks/work/ and, with
    ``--results``, the compact section of that file (its size against the 10 KB limit printed).
    ``rows``: (mode, processes, invoices/s, median ms, KiB per PDF) in the order of main's modes."""
    base = rows[0][2]
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, WeasyPrint {weasyprint.__version__}"
    table = Table(title=f"B4 invoice rendering: {count} documents per mode")
    for column in ("mode", "processes", "invoices/s", "median ms/doc", "x defaults", "KiB/PDF"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for label, processes, rate, median, size in rows:
        table.add_row(label, str(processes), f"{rate:.1f}", f"{median:.0f}", f"{rate / base:.1f}x", f"{size:.0f}")
    console.print(table)
    console.print(f"machine: {machine}; run {stamp}")
    best = rows[1][2]
    verdict = (
        f"ours ({args.workers} processes) {best:.1f} invoices/s = {best / base:.1f}x defaults; "
        f"targets >= {TARGET_RATIO:.0f}x and >= {TARGET_RATE:.0f}/s: "
        + ("met" if best / base >= TARGET_RATIO and best >= TARGET_RATE else "NOT met")
    )
    console.print(verdict)
    table_rows = target_rows(rows, args.workers)
    details = write_details(file_stamp(now), "render",
                            detail_lines(rows, table_rows, machine, stamp, count, verdict, args.results))
    console.print(f"details of the run: {shown(details)}")
    if args.results:
        size = replace_section(args.results, SECTION,
                               section_lines(rows, table_rows, machine, stamp, count, shown(details)))
        console.print(f"wrote section {SECTION!r} of {args.results}")
        console.print(size_note(args.results, size))


def _run_line(machine: str, stamp: str, count: int) -> str:
    return (f"`make bench` (benchmarks/bench_render.py), {stamp}. Machine: {machine}. {count} documents per mode "
            "(invoices with 1-6 lines and credit notes, 12 customers in 5 locales); ours = reports.pdf (PDF/A-3b, "
            "Factur-X XML embedded); a rate counts the whole batch's wall clock, warm-up and pool start "
            "included; one run.")


def section_lines(rows: list[tuple], table_rows: list[Row], machine: str, stamp: str, count: int,
                  details: str) -> list[str]:
    """The Markdown section of RESULTS.md, heading first: the run, the table of targets, two
    sentences on where the speed comes from, and the detail file's name."""
    base = rows[0][2]
    return [
        f"## {SECTION}", "", _run_line(machine, stamp, count), "", *target_table(table_rows), "",
        (f"One process of ours renders {rows[2][2] / base:.1f}x as fast as the defaults (bundled font embedded "
         "whole, one font configuration per process, gc.freeze), although it also writes PDF/A-3b and the "
         f"Factur-X XML, and {rows[1][1]} processes add {rows[1][2] / rows[2][2]:.2f}x; subsetting the font per "
         f"document would cost {rows[3][3] - rows[2][3]:.0f} ms more a document, the previous layout "
         f"{rows[4][3] - rows[1][3]:.0f} ms more. Every mode, with PDF sizes: `{details}` (not committed)."),
    ]


def detail_lines(rows: list[tuple], table_rows: list[Row], machine: str, stamp: str, count: int, verdict: str,
                 results: Path | None) -> list[str]:
    """The detail file of the run (Markdown): the table of targets, every mode (median, ratio,
    PDF size) and where the speed comes from."""
    base = rows[0][2]
    return [
        f"# B4 invoice rendering, {stamp}", "",
        (f"The details of the run summarised in the section \"{SECTION}\" of "
         f"{shown(results) if results else 'the results (not written: no --results)'}."),
        "", _run_line(machine, stamp, count), "", *target_table(table_rows), "",
        "| mode | processes | invoices/s | median ms/doc | x defaults | KiB/PDF |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {label} | {processes} | {rate:.1f} | {median:.0f} | {rate / base:.1f}x | {size:.0f} |"
          for label, processes, rate, median, size in rows),
        "",
        *textwrap.wrap(
            f"Where the speed comes from: one process of ours renders {rows[2][2] / base:.1f}x as "
            "fast as the defaults (bundled 43 KB font embedded whole instead of DejaVu Sans "
            "subset per document, one font configuration per process, fonts deflated once, "
            "gc.freeze in the worker), although it also writes PDF/A-3b and the Factur-X XML; "
            f"{rows[1][1]} processes add {rows[1][2] / rows[2][2]:.2f}x. Subsetting the bundled font per "
            f"document instead costs {rows[3][3] - rows[2][3]:.0f} ms a document. The last row "
            "is the layout before this benchmark (overflow-wrap: anywhere on everything makes "
            "WeasyPrint measure min-content widths character by character; document.css now "
            "keeps it to the top blocks and gives the tables a fixed layout): "
            f"{rows[4][3] - rows[1][3]:.0f} ms more a document.",
            width=95,
        ),
        "", verdict + ".",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
