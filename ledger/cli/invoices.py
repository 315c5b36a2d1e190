"""`ledger invoices list|show|render`: invoices and credit notes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.cli._common import FORMAT, OUT, Ctx, _period, emit_report, plural


@click.group()
def invoices() -> None:
    """Invoices and credit notes."""


@invoices.command("list")
@FORMAT
@OUT
@click.pass_obj
def invoices_list(obj: Ctx, fmt: str | None, out: str | None) -> None:
    """Every issued invoice and credit note (credit notes negative), with totals per currency:
    invoices, credit notes and net."""
    from ledger.services.documents import invoice_register

    with obj.session() as session:
        register = invoice_register(session)
    emit_report(register, fmt, out)


@invoices.command("show")
@click.argument("number")
@click.pass_obj
def invoices_show(obj: Ctx, number: str) -> None:
    """One invoice as JSON (header and lines; amounts as decimal strings)."""
    from ledger.services.documents import invoice_document

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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledger.services.documents import render_document, render_period

    if (number is None) == (period is None):
        raise click.UsageError("give one document NUMBER or --period YYYY-MM")
    if number is not None:
        with obj.session() as session:
            path = render_document(session, obj.catalog, number, out)
        click.echo(f"wrote {path}")
        return
    period = _period(period)  # type: ignore[arg-type]
    console = Console(stderr=True)
    with obj.session() as session, Progress(TextColumn(f"rendering {period}"), BarColumn(), MofNCompleteColumn(),
                                            TimeElapsedColumn(), console=console,
                                            disable=not console.is_terminal) as progress:
        task = progress.add_task("render", total=None)
        count = render_period(session, obj.catalog, period, out,
                              progress=lambda done, total: progress.update(task, completed=done, total=total))
    click.echo(f"wrote {plural(count, 'document')} of {period} to {Path(out)}")
