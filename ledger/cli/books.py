"""`ledger init`, `ledger import` and `ledger verify`: create the books, post to them, check them."""

from __future__ import annotations

import json
import sys

import click

from ledger.cli._common import FORMAT, Ctx, _fmt, install_db_error_hook, plural


@click.command()
@click.option("--catalog", "starter", type=click.Path(dir_okay=False), default=None,
              help="Also write a commented starter catalog to this file, to fill in (never overwrites a file).")
@click.pass_obj
def init(obj: Ctx, starter: str | None) -> None:
    """Create or migrate the database (Alembic upgrade head) and seed the chart of accounts; with
    --catalog FILE, first write a starter catalog there (company to fill in, rate card, a plan,
    a top-up pack): import and close need its [company] name and address."""
    from ledger.services.setup import init_books, write_starter_catalog

    if starter is not None:
        written = write_starter_catalog(starter)
    install_db_error_hook()
    init_books(obj.url)
    click.echo(f"database ready: {obj.url}")
    if starter is not None:
        click.echo(f"starter catalog written: {written} (fill in [company] name and address, then pass "
                   f"--catalog {written} or name it ledger.toml)")


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate and price everything, then roll back.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, show_default="40000",
              help="Events per transaction for inputs larger than this (bulk usage streams); given, it "
                   "also turns off the set-based import of a usage CSV.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes posting the chunks, each for its own customers (PostgreSQL; inputs without "
                   "event.voided; otherwise one).")
@FORMAT
@click.pass_obj
def import_(obj: Ctx, files: tuple[str, ...], dry_run: bool, chunk_size: int | None, jobs: int,
            fmt: str | None) -> None:
    """Post events from JSONL files and usage from CSV files: atomically (all or nothing) up to
    --chunk-size events; larger inputs are checked in full first, then posted in chunks of that
    many events, one transaction each (a killed import loses only its last chunk; importing the
    same files again finishes it exactly once). Progress with events/s on a terminal.

    One usage CSV on PostgreSQL, without --chunk-size or --jobs, is imported set-based: the
    server parses it and one transaction posts it whole (a killed import posts nothing)."""
    import gc

    gc.disable()  # the imports below create ~1M objects that all stay: collecting meanwhile finds nothing
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ledger.errors import LedgerError
        from ledger.services.collector import collector_relaxed
        from ledger.services.importing import CHUNK, import_files
    finally:
        gc.enable()

    console = Console(stderr=True)
    failed: LedgerError | None = None
    with obj.session() as session, Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                            TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(),
                                            console=console, transient=True,
                                            disable=not console.is_terminal) as bar:
        task = bar.add_task("import", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}" if elapsed else "-")

        try:
            with collector_relaxed():
                summary = import_files(session, obj.catalog, list(files), dry_run=dry_run,
                                       chunk_size=chunk_size or CHUNK, progress=progress, jobs=jobs,
                                       staged=None if chunk_size is None and jobs == 1 else False)
        except LedgerError as exc:
            if not getattr(exc, "__notes__", None):
                raise
            failed = exc  # refused after some chunks committed: the note says which, and how to resume
    if failed is not None:
        click.echo(f"error: {failed}", err=True)
        for note in failed.__notes__:
            click.echo(note, err=True)
        sys.exit(1)
    data = {"posted": summary.posted, "duplicates": summary.duplicates, "quarantined": summary.quarantined,
            "late": summary.late, "journal_entries": summary.entries, "invoices": len(summary.invoices),
            "dry_run": summary.dry_run}
    if _fmt(fmt) == "json":
        click.echo(json.dumps(data | {"quarantine": [{"event_id": e, "reason": r} for e, r in summary.quarantine],
                                      "late_events": summary.late_events}, indent=2))
        return
    if _fmt(fmt) == "csv":
        click.echo(",".join(data) + "\n" + ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in data.values()))
        return
    verb = "would post" if dry_run else "posted"
    click.echo(f"{verb} {summary.posted}, duplicates {summary.duplicates}, quarantined {summary.quarantined}, "
               f"late {summary.late}; {plural(summary.entries, 'journal entry', 'journal entries')}, "
               f"{plural(len(summary.invoices), 'invoice')}"
               + (" (dry run: nothing written)" if dry_run else ""))
    for event_id, reason in summary.quarantine[:20]:
        click.echo(f"  quarantined {event_id}: {reason}")
    if len(summary.quarantine) > 20:
        click.echo(f"  ... and {len(summary.quarantine) - 20} more (ledger report quarantine)")


@click.command()
@click.pass_obj
def verify(obj: Ctx) -> None:
    """Check invariants 1-6 of docs/design.md §7 over the whole journal, recomputing the seal of
    every closed period; exit 1 naming the first entry that breaks a seal, or any violation."""
    from ledger.services.verifying import verify_books

    with obj.session() as session:
        found = verify_books(session, obj.catalog)
    for v in found.violations:
        click.echo(str(v), err=True)
    for b in found.breaks:
        click.echo(f"invariant 6 (seal): {b}", err=True)
    if not found.ok:
        raise SystemExit(1)
    click.echo("ok: invariants 1-6 hold: every entry and the trial balance balance per commodity; grants, deferred "
               f"revenue, billing and documents tie; the seals of {plural(found.sealed, 'closed period')} hold")
