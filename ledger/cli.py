"""The `ledger` command line (click). Thin: each command parses its arguments, calls one
service function, and prints. Exit codes: 0 ok, 1 invalid input or failed check (the message
names file, line, field and value), 2 usage error.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import Catalog, load_catalog
from ledger.db import DEFAULT_URL, init_database, make_engine, open_engine
from ledger.errors import LedgerError

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
                      help="Output format (default: table on a terminal, json otherwise).")
OUT = click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
                   help="Write the output to this file instead of standard output.")
PERIOD = click.option("--period", required=True, help="Accounting period YYYY-MM (reporting timezone).")


class Ctx:
    def __init__(self, url: str, catalog_path: str):
        self.url = url
        self.catalog_path = catalog_path
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.catalog_path)
        return self._catalog

    def session(self) -> Session:
        return Session(open_engine(self.url))


def _fmt(fmt: str | None) -> str:
    return fmt or ("table" if sys.stdout.isatty() else "json")


def _emit(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


def _period(value: str) -> str:
    from ledger.periods import parse_period

    try:
        return parse_period(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--database-url", envvar="LEDGER_DATABASE_URL", default=DEFAULT_URL, show_default=True,
              help="SQLAlchemy URL: sqlite:///file.db or postgresql://user@host/db (env LEDGER_DATABASE_URL).")
@click.option("--catalog", "catalog_path", envvar="LEDGER_CATALOG", default="ledger.toml", show_default=True,
              help="Catalog file: company, rate card, plans, top-up packs (env LEDGER_CATALOG).")
@click.version_option(package_name="credit-ledger")
@click.pass_context
def cli(ctx: click.Context, database_url: str, catalog_path: str) -> None:
    """Double-entry ledger and revenue recognition for prepaid AI credits."""
    ctx.obj = Ctx(database_url, catalog_path)


@cli.command()
@click.pass_obj
def init(obj: Ctx) -> None:
    """Create or migrate the database (Alembic upgrade head) and seed the chart of accounts."""
    init_database(make_engine(obj.url))
    click.echo(f"database ready: {obj.url}")


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate and price everything, then roll back.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, show_default="40000",
              help="Events per transaction for inputs larger than this (bulk usage streams).")
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
    same files again finishes it exactly once). Progress with events/s on a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledger.service import CHUNK, import_files

    console = Console(stderr=True)
    with obj.session() as session, Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                                            TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(),
                                            console=console, transient=True,
                                            disable=not console.is_terminal) as bar:
        task = bar.add_task("import", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}" if elapsed else "-")

        summary = import_files(session, obj.catalog, list(files), dry_run=dry_run, chunk_size=chunk_size or CHUNK,
                               progress=progress, jobs=jobs)
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
               f"late {summary.late}; {summary.entries} journal entries, {len(summary.invoices)} invoices"
               + (" (dry run: nothing written)" if dry_run else ""))
    for event_id, reason in summary.quarantine[:20]:
        click.echo(f"  quarantined {event_id}: {reason}")
    if len(summary.quarantine) > 20:
        click.echo(f"  ... and {len(summary.quarantine) - 20} more (ledger report quarantine)")


@cli.command()
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

    from ledger.close import close_period
    from reports.package import write_package

    period = _period(period)
    console = Console(stderr=True)
    with obj.session() as session, Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                            TimeElapsedColumn(), console=console, transient=True,
                                            disable=not console.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = close_period(session, obj.catalog, period, closed_by=getpass.getuser(), progress=progress)
        if result.already_closed:
            click.echo(f"{period} is already closed; nothing to do")
        else:
            rec = result.record
            click.echo(f"closed {period}: {result.entries} period-end entries posted; invariants 1-6 hold; "
                       f"{rec.entries} entries sealed, seal {rec.seal[:16]}... (journal head {rec.journal_head})")
            for event_id in result.late_events:
                click.echo(f"  late: {event_id}")
        if out_dir:
            documents = bar.add_task("package: documents", total=None)
            manifest = write_package(session, obj.catalog, period, out_dir,
                                     on_document=lambda: bar.advance(documents))
            count = len(json.loads(manifest.read_text(encoding="utf-8"))["files"])
            click.echo(f"wrote the close package of {period} to {out_dir}: {count} files and manifest.json")


@cli.group()
def report() -> None:
    """Reports derived from the journal (--format table|csv|json, --out FILE)."""


def _report_command(name: str, builder_name: str, help_text: str, period_required: bool = True):
    @report.command(name, help=help_text)
    @click.option("--period", required=period_required, default=None, help="Accounting period YYYY-MM.")
    @FORMAT
    @OUT
    @click.pass_obj
    def command(obj: Ctx, period: str | None, fmt: str | None, out: str | None, **kw) -> None:
        from ledger import reporting
        from reports.tables import render

        if period is not None:
            period = _period(period)
        with obj.session() as session:
            rep = getattr(reporting, builder_name)(session, period, **kw)
        _emit(render(rep, _fmt(fmt)), out)

    return command


_report_command("trial-balance", "trial_balance", "Balances per account and commodity at the period end.")
_report_command("deferred-revenue", "deferred_revenue",
                "Deferred revenue rollforward per customer: opening, billed, recognised, breakage, refunded, rolled, closing.")
_report_command("revenue", "revenue", "Revenue by stream in the period, per currency, and the net.")
click.option("--customer", "customer_id", default=None, help="Only this customer's grants.")(
    _report_command("credits", "credits", "Per grant: opening, granted, consumed, rolled, expired, refunded, remaining, deferred."))
_report_command("audit-trail", "audit_trail", "Closes and reopens of periods: who, when, why, journal head, seal, checks.",
                period_required=False)
_report_command("quarantine", "quarantine", "Usage kept out of the books (e.g. hard cap), with reasons.", period_required=False)
click.option("--customer", "customer_id", required=True, help="The customer.")(
    _report_command("customer", "customer_statement",
                    "Statement of account: invoices, payments, credit notes and credit balance, with the running balance.",
                    period_required=False))


@report.command("ar-aging")
@click.option("--period", default=None, help="Accounting period YYYY-MM: aging at its last day.")
@click.option("--as-of", "as_of", default=None, help="Aging at this date (YYYY-MM-DD); default: today, without --period.")
@FORMAT
@OUT
@click.pass_obj
def ar_aging_cmd(obj: Ctx, period: str | None, as_of: str | None, fmt: str | None, out: str | None) -> None:
    """Open receivables by days past due: current, 1-30, 31-60, 61-90, over 90."""
    from datetime import date

    from ledger.reporting import ar_aging
    from reports.tables import render

    if period is not None and as_of is not None:
        raise click.UsageError("give --period or --as-of, not both")
    day = None
    if period is not None:
        period = _period(period)
    else:
        try:
            day = date.fromisoformat(as_of) if as_of else date.today()
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from None
    with obj.session() as session:
        rep = ar_aging(session, period, as_of=day)
    _emit(render(rep, _fmt(fmt)), out)


@report.command("guarantees")
@PERIOD
@FORMAT
@OUT
@click.pass_obj
def guarantees_cmd(obj: Ctx, period: str, fmt: str | None, out: str | None) -> None:
    """No-increase guarantees: per enrolled customer and month, legacy bill vs new bill, credits, cost."""
    from ledger.reporting import guarantees
    from reports.tables import render

    period = _period(period)
    with obj.session() as session:
        rep = guarantees(session, period, tz=obj.catalog.tz)
    _emit(render(rep, _fmt(fmt)), out)


@cli.command()
@click.argument("period")
@click.option("--reason", required=True, help="Why the period is reopened (kept in the audit trail).")
@click.pass_obj
def reopen(obj: Ctx, period: str, reason: str) -> None:
    """Reopen PERIOD (YYYY-MM), the last closed period, recording who, when and why."""
    from ledger.close import reopen_period

    period = _period(period)
    with obj.session() as session:
        try:
            record = reopen_period(session, period, reason=reason, by=getpass.getuser())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--reason") from None
        click.echo(f"reopened {period} ({record.at.isoformat()}, by {record.by}): {record.reason}")


@cli.group()
def catalog() -> None:
    """The catalog (ledger.toml): company, rate card, plans, top-up packs."""


@catalog.command("show")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format (default: table on a terminal, json otherwise).")
@click.pass_obj
def catalog_show(obj: Ctx, fmt: str | None) -> None:
    """Validate the catalog and print it back (exit 1 naming file, key and value if invalid)."""
    from ledger.catalog import load_catalog

    cat = load_catalog(obj.catalog_path, required=True)
    data = cat.model.model_dump(mode="json")
    if _fmt(fmt) == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    company = data["company"]
    click.echo(f"{company['name']} ({cat.path}); reporting timezone {company['reporting_timezone']}, "
               f"net {company['payment_terms_days']} days")
    click.echo("rate card: " + (", ".join(f"{k} = {v} credits" for k, v in data["rate_card"].items()) or "none"))
    for code, plan in data["plans"].items():
        click.echo(f"plan {code}: {plan['name']}, {plan['monthly_fee']} {plan['currency']}/month, "
                   f"{plan['included_credits']:,} credits, overage {plan['overage_price'] or 'none (hard cap)'}, "
                   f"SSP credit {plan['credit_ssp']} / platform {plan['platform_ssp']}, rollover {plan['rollover']['percent']}%")
    for code, pack in data["topups"].items():
        click.echo(f"top-up {code}: {pack['credits']:,} credits for {pack['price']} {pack['currency']}"
                   + (f", expires after {pack['expires_after_months']} months" if pack["expires_after_months"] else ""))


@cli.group()
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
    from pathlib import Path

    import sqlalchemy as sa
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledger.models import Invoice
    from ledger.periods import first_day, last_day
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


@cli.command()
@click.pass_obj
def verify(obj: Ctx) -> None:
    """Check invariants 1-6 of DESIGN section 7 over the whole journal, recomputing the seal of
    every closed period; exit 1 naming the first entry that breaks a seal, or any violation."""
    from ledger.db import one_snapshot
    from ledger.invariants import check_all
    from ledger.seals import latest_closes, verify_seals

    with obj.session() as session:
        one_snapshot(session)  # what is posted meanwhile is not half-seen by the checks
        violations = check_all(session, tz=obj.catalog.tz)
        breaks = verify_seals(session)
        sealed = len(latest_closes(session))
    for v in violations:
        click.echo(str(v), err=True)
    for b in breaks:
        click.echo(f"invariant 6 (seal): {b}", err=True)
    if violations or breaks:
        raise SystemExit(1)
    click.echo("ok: invariants 1-6 hold: every entry and the trial balance balance per commodity; grants, deferred "
               f"revenue, billing and documents tie; the seals of {sealed} closed period(s) hold")


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True,
              help="Folder for the demo database, inputs, close package and invoice PDFs.")
@click.option("--month", default="2026-10", show_default=True, help="Calendar month to simulate.")
def demo(out_dir: str, month: str) -> None:
    """The month-end job on the bundled real usage trace, on embedded SQLite."""
    from ledger.demo import run_demo

    run_demo(Path(out_dir), _period(month))


import ledger.cli_forecast  # noqa: F401  (report waterfall, usage-alerts)

cli.add_command(__import__("ledger.cli_db", fromlist=["db"]).db)  # ledger db roles
cli.add_command(__import__("ledger.cli_export", fromlist=["export"]).export)  # ledger export journal


def main() -> None:
    """Entry point: LedgerError -> message on stderr, exit 1 (never a traceback for bad input)."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LedgerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except sa.exc.IntegrityError as exc:
        click.echo(f"error: the database refused the change: {str(exc.orig).strip()}", err=True)
        sys.exit(1)
    except sa.exc.DBAPIError as exc:  # permission denied (least-privilege roles): one line, exit 1
        from ledger.cli_db import refused_message

        if (message := refused_message(exc)) is None:
            raise
        click.echo(f"error: {message}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
