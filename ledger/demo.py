"""`ledger demo`: three month-ends on the bundled real usage trace, on embedded SQLite.

Builds the deterministic scenario of ledger.demo_data (50 customers, the Azure LLM inference
trace 2023 priced into credits, replayed in each month; commitments, plans with overage and
rollover, top-ups, a refund, a guarantee, customers in USD, EUR and JPY), then for each month in
order imports what is dated in it, closes it and writes its close package (reports, invoice
PDFs, the close report), and prints a summary with the paths.
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
from ledger.core.periods import first_day, last_day, previous_period
from ledger.demo_data import build_demo_scenario, write_demo_inputs
from ledger.services.closing import close_period
from ledger.services.importing import import_files
from ledger.services.setup import init_books
from ledger.store.admin import book_counts, session_at
from ledger.store.documents import issued_numbers
from reports.package import write_package


def demo_catalog_path() -> Path:
    return Path(str(resources.files("ledger") / "data" / "demo-catalog.toml"))


def run_demo(out: Path, month: str = "2026-10", months: int = 3) -> dict:
    """Run the demo into ``out`` (a fresh demo.db is created there): the ``months`` months
    ending with ``month`` ("YYYY-MM"), each imported, closed and packaged in order.

    Returns the summary numbers: the book counts at the end (customers, usage_events,
    journal_entries, quarantined, invoices), ``business_events`` and, per month in ``months``
    (a dict by "YYYY-MM", oldest first): ``recognised`` and ``deferred_at_close`` (currency ->
    int minor units), ``invoices`` (documents issued in it) and ``package`` (its close folder).
    """
    console = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.db"
    if db.exists():
        db.unlink()
    url = f"sqlite:///{db}"
    init_books(url)
    catalog = load_catalog(demo_catalog_path(), required=True)
    calendar = [month]
    while len(calendar) < months:
        calendar.insert(0, previous_period(calendar[0]))

    console.print(f"building {calendar[0]} to {calendar[-1]} from the Azure LLM inference trace (50 customers)")
    scenario = build_demo_scenario(calendar[0], months)
    per_month: dict[str, dict] = {}
    for n, period in enumerate(calendar, start=1):
        per_month[period] = _month_end(console, url, catalog, scenario, period, out, f"{n}/{len(calendar)}")
    with session_at(url) as session:
        stats = book_counts(session) | {"business_events": len(scenario.events), "months": per_month}
    _print_summary(stats, calendar, url, out)
    return stats


def _month_end(console: Console, url: str, catalog, scenario, period: str, out: Path, step: str) -> dict:
    """Import what ``scenario`` dates in ``period``, close it and write its close package into
    ``out``/close-``period``; returns the month's figures (see run_demo)."""
    events_path, usage_path = write_demo_inputs(scenario, out / "inputs" / period, period)
    part = scenario.in_month(period)
    console.print(f"[bold]{step}[/] {period}: importing {len(part.events)} business events and "
                  f"{len(part.usage):,} usage events, closing")
    with session_at(url) as session:
        import_files(session, catalog, [events_path, usage_path])
    with session_at(url) as session:
        close_period(session, catalog, period, closed_by="ledger demo")
    close_dir = out / f"close-{period}"
    with session_at(url) as session:
        documents = len(issued_numbers(session, first_day(period), last_day(period)))
        with Progress(TextColumn(f"[bold]{step}[/] {period}: writing the close package"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("package", total=documents)
            manifest = write_package(session, catalog, period, close_dir, on_document=lambda: progress.advance(task))
        rev = reporting.revenue(session, period)
        deferred = reporting.deferred_revenue(session, period)
        return {"recognised": {t["currency"]: t["amount"] for t in rev.totals},
                "deferred_at_close": {t["currency"]: t["closing"] for t in deferred.totals},
                "invoices": documents, "package": close_dir,
                "files": len(json.loads(manifest.read_text())["files"])}


def _print_summary(stats: dict, calendar: list[str], url: str, out: Path) -> None:
    posted = stats["usage_events"] - stats["quarantined"]
    click.echo("")
    click.echo(f"Demo months {calendar[0]} to {calendar[-1]} closed on {url}")
    click.echo(f"  customers            {stats['customers']}")
    click.echo(f"  usage events         {stats['usage_events']:,} ({posted:,} posted, "
               f"{stats['quarantined']:,} quarantined at the hard cap)")
    click.echo(f"  business events      {stats['business_events']}")
    click.echo(f"  journal entries      {stats['journal_entries']:,}")
    click.echo(f"  documents            {stats['invoices']} (invoices and credit notes)")
    for period, figures in stats["months"].items():
        click.echo("")
        click.echo(f"  {period}")
        click.echo(f"    recognised revenue {_amounts(figures['recognised'])}  (net of all streams)")
        click.echo(f"    deferred at close  {_amounts(figures['deferred_at_close'])}")
        folder = figures["package"]
        click.echo(f"    close package      {folder}  ({figures['files']} files in manifest.json)")
        click.echo(f"    close report       {folder / 'close-report.pdf'}")
        click.echo(f"    reports            {folder / 'reports'}  (.csv and .json)")
        click.echo(f"    invoice PDFs       {folder / 'invoices'}  ({figures['invoices']} documents)")
    click.echo("")
    click.echo(f"  inputs               {out / 'inputs'}  (one folder per month)")
    click.echo(f"  explore              {ledger_command()} --database-url {url} report trial-balance --period {calendar[-1]}")


def _amounts(by_currency: dict[str, int]) -> str:
    """Money per currency, symbol first, in currency order: "€267.50  $2,762.21"."""
    return "  ".join(format_money(amount, cur) for cur, amount in sorted(by_currency.items()))


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
