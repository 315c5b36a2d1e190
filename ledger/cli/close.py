"""`ledger close PERIOD [--out DIR]` and `ledger reopen PERIOD --reason TEXT`."""

from __future__ import annotations

import getpass
import sys

import click

from ledger.cli._common import Ctx, _period, plural


@click.command()
@click.argument("period")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the close package: reports (CSV, JSON), journal, invoice PDFs, "
                   "close-report.pdf, manifest.json.")
@click.pass_obj
def close(obj: Ctx, period: str, out_dir: str | None) -> None:
    """Close PERIOD (YYYY-MM): every period-end step, invariant checks, seal, lock; with --out,
    write the close package (again, identically, if PERIOD is already closed)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledger.services.closing import close_month
    from ledger.services.collector import collector_relaxed

    period = _period(period)
    console = Console(stderr=True)
    failed: Exception | None = None
    with obj.session() as session, Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                            TimeElapsedColumn(), console=console, transient=True,
                                            disable=not console.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        def closed(result) -> None:
            if result.already_closed:
                click.echo(f"{period} is already closed; nothing to do")
            else:
                rec = result.record
                posted = plural(result.entries, "period-end entry", "period-end entries")
                click.echo(f"closed {period}: {posted} posted; invariants 1-6 hold; {plural(rec.entries, 'entry', 'entries')} "
                           f"sealed, seal {rec.seal[:16]}... (journal head {rec.journal_head})")
                for event_id in result.late_events:
                    click.echo(f"  late: {event_id}")
            if out_dir:
                tasks["package: documents"] = bar.add_task("package: documents", total=None)

        try:
            with collector_relaxed():
                outcome = close_month(session, obj.catalog, period, out_dir=out_dir, closed_by=getpass.getuser(),
                                      progress=progress, on_closed=closed,
                                      on_document=lambda: bar.advance(tasks["package: documents"]))
        except Exception as exc:
            if "package: documents" not in tasks:  # the close itself failed: nothing is committed
                raise
            failed = exc
    if failed is not None:
        _package_failed(period, out_dir, failed)
    if out_dir:
        click.echo(f"wrote the close package of {period} to {out_dir}: {plural(outcome.files, 'file')} and manifest.json")


def _package_failed(period: str, out_dir: str | None, exc: Exception) -> None:
    """The close committed but its package could not be written: one clear message, exit 1."""
    from ledger.errors import LedgerError

    reason = str(exc) if isinstance(exc, LedgerError) else f"{type(exc).__name__}: {exc}"
    click.echo(f"error: {period} is closed, but its close package could not be written to {out_dir}: "
               f"{' '.join(reason.split())}\n"
               f"  {out_dir} is as it was; once fixed, run `ledger close {period} --out {out_dir}` again: "
               "it writes the package of the closed period", err=True)
    sys.exit(1)


@click.command()
@click.argument("period")
@click.option("--reason", required=True, help="Why the period is reopened (kept in the audit trail).")
@click.pass_obj
def reopen(obj: Ctx, period: str, reason: str) -> None:
    """Reopen PERIOD (YYYY-MM), the last closed period, recording who, when and why."""
    from ledger.services.closing import reopen_period

    period = _period(period)
    with obj.session() as session:
        try:
            record = reopen_period(session, period, reason=reason, by=getpass.getuser())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--reason") from None
        click.echo(f"reopened {period} ({record.at.isoformat()}, by {record.by}): {record.reason}")
