"""`ledger demo`: the month-end job on the bundled real usage trace, on embedded SQLite.

Builds the deterministic scenario of ledger.demo_data (50 customers, the Azure LLM inference
trace 2023 priced into credits), imports it, closes the month, writes the reports, renders every
invoice, and prints a summary with the paths.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger import reporting
from ledger.catalog import load_catalog
from ledger.core.money import format_money
from ledger.demo_data import build_demo_scenario, write_demo_inputs
from ledger.services.closing import close_period
from ledger.services.importing import import_files
from ledger.services.setup import init_books
from ledger.store.admin import book_counts, session_at
from reports.package import write_package


def demo_catalog_path() -> Path:
    return Path(str(resources.files("ledger") / "data" / "demo-catalog.toml"))


def run_demo(out: Path, month: str = "2026-10") -> dict:
    """Run the demo into ``out`` (a fresh demo.db is created there); returns the summary numbers."""
    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.db"
    if db.exists():
        db.unlink()
    url = f"sqlite:///{db}"
    init_books(url)
    catalog = load_catalog(demo_catalog_path(), required=True)

    console.print(f"[bold]1/4[/] building {month} from the Azure LLM inference trace (50 customers)")
    scenario = build_demo_scenario(month)
    events_path, usage_path = write_demo_inputs(scenario, out / "inputs")

    console.print(f"[bold]2/4[/] importing {len(scenario.events)} business events and {len(scenario.usage):,} usage events")
    with session_at(url) as session:
        summary = import_files(session, catalog, [events_path, usage_path])

    console.print(f"[bold]3/4[/] closing {month}")
    close_dir = out / f"close-{month}"
    with session_at(url) as session:
        close_period(session, catalog, month, closed_by="ledger demo")

    with session_at(url) as session:
        counts = book_counts(session)
        with Progress(TextColumn("[bold]4/4[/] writing the close package"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("package", total=counts["invoices"])
            manifest = write_package(session, catalog, month, close_dir, on_document=lambda: progress.advance(task))

        rev = reporting.revenue(session, month)
        deferred = reporting.deferred_revenue(session, month)
        stats = counts | {
            "recognised": {t["currency"]: t["amount"] for t in rev.totals},
            "deferred_at_close": {t["currency"]: t["closing"] for t in deferred.totals},
        }
    _print_summary(stats, summary.posted, month, url, out, close_dir, manifest)
    return stats


def _print_summary(stats: dict, posted: int, month: str, url: str, out: Path, close_dir: Path, manifest: Path) -> None:
    click.echo("")
    click.echo(f"Demo month {month} closed on {url}")
    click.echo(f"  customers            {stats['customers']}")
    click.echo(f"  usage events         {stats['usage_events']:,} ({stats['usage_events'] - stats['quarantined']:,} posted, "
               f"{stats['quarantined']} quarantined at the hard cap)")
    click.echo(f"  business events      {posted - (stats['usage_events'] - stats['quarantined'])}")
    click.echo(f"  journal entries      {stats['journal_entries']:,}")
    click.echo(f"  invoices             {stats['invoices']}")
    for cur, amount in stats["recognised"].items():
        click.echo(f"  recognised revenue   {format_money(amount, cur)} ({cur}, net of all streams)")
    for cur, amount in stats["deferred_at_close"].items():
        click.echo(f"  deferred at close    {format_money(amount, cur)} ({cur})")
    click.echo("")
    click.echo(f"  inputs               {out / 'inputs'}")
    click.echo(f"  close package        {close_dir}  ({len(json.loads(manifest.read_text())['files'])} files in manifest.json)")
    click.echo(f"  close report         {close_dir / 'close-report.pdf'}")
    click.echo(f"  reports              {close_dir / 'reports'}  (.csv and .json)")
    click.echo(f"  invoice PDFs         {close_dir / 'invoices'}")
    click.echo(f"  explore              {ledger_command()} --database-url {url} report trial-balance --period {month}")


def ledger_command() -> str:
    """How to run this ledger from the shell: ``ledger`` when that name on PATH is the running
    executable, else the running executable's path (relative to the current folder when inside
    it, e.g. ``.venv/bin/ledger``)."""
    running = Path(sys.argv[0])
    if running.name != "ledger" or not running.exists():  # python -m ledger
        return f"{_shown(Path(sys.executable))} -m ledger"
    on_path = shutil.which("ledger")
    if on_path is not None and Path(on_path).resolve() == running.resolve():
        return "ledger"
    return _shown(running)


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when inside it, else absolute."""
    here, absolute = Path.cwd(), path.absolute()
    inside = absolute.is_relative_to(here) and here != Path(here.anchor)
    return str(absolute.relative_to(here)) if inside else str(absolute)
