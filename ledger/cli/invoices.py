"""`ledger invoices list|show|render`: invoices and credit notes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.cli._common import FORMAT, OUT, Ctx, _emit, _fmt, _period


@click.group()
def invoices() -> None:
    """Invoices and credit notes."""


@invoices.command("list")
@FORMAT
@OUT
@click.pass_obj
def invoices_list(obj: Ctx, fmt: str | None, out: str | None) -> None:
    """Every issued invoice with its totals."""
    from ledger.service import invoice_register
    from reports.tables import render

    with obj.session() as session:
        _emit(render(invoice_register(session), _fmt(fmt)), out)


@invoices.command("show")
@click.argument("number")
@click.pass_obj
def invoices_show(obj: Ctx, number: str) -> None:
    """One invoice as JSON (header and lines; amounts as decimal strings)."""
    from ledger.service import invoice_document

    with obj.session() as session:
        click.echo(json.dumps(invoice_document(session, number), indent=2, ensure_ascii=False))


@invoices.command("render")
@click.argument("number", required=False)
@click.option("--period", default=None, help="Render every invoice and credit note issued in YYYY-MM.")
@click.option("--out", "out", required=True, type=click.Path(),
              help="PDF file to write (one NUMBER), or a folder (--period).")
@click.pass_obj
def invoices_render(obj: Ctx, number: str | None, period: str | None, out: str) -> None:
    """Render invoice or credit note NUMBER to a PDF, or every document of --period into a
    folder, in parallel processes with a progress bar."""
    import sqlalchemy as sa
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledger.store.models import Invoice
    from ledger.core.periods import first_day, last_day
    from reports.documents import render_invoice, render_job, render_views

    if (number is None) == (period is None):
        raise click.UsageError("give one document NUMBER or --period YYYY-MM")
    if number is not None:
        with obj.session() as session:
            path = render_invoice(session, obj.catalog, number, out)
        click.echo(f"wrote {path}")
        return
    period = _period(period)  # type: ignore[arg-type]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with obj.session() as session:
        numbers = list(session.execute(sa.select(Invoice.number).where(
            Invoice.issue_date >= first_day(period), Invoice.issue_date <= last_day(period))
            .order_by(Invoice.number)).scalars())
        jobs = [render_job(session, obj.catalog, n, folder / f"{n}.pdf") for n in numbers]
    console = Console(stderr=True)
    with Progress(TextColumn(f"rendering {period}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("render", total=len(jobs))
        render_views(jobs, on_done=lambda: progress.advance(task))
    click.echo(f"wrote {len(jobs)} documents of {period} to {folder}")
