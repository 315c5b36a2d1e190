"""`ledger export ...`: audit exports of the journal.

``ledger export journal [--from YYYY-MM-DD] [--to YYYY-MM-DD] --format csv|jsonl|beancount|hledger
--out FILE`` writes FILE, FILE.manifest.json and FILE.sha256 (see ledger.export). Exit codes as
everywhere: 0 ok; 1 invalid input (e.g. --from after --to, printed as ``error: ...`` by
``ledger.cli.main``) or a file that cannot be written; 2 usage error (unknown --format,
malformed date, missing --out).
"""

from __future__ import annotations

import re
import time
from datetime import date

import click

from ledger.cli._common import EXPORT_FORMATS, Ctx, plural


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group()
def export() -> None:
    """Audit exports of the journal, each with a sha256 manifest."""


@export.command("journal")
@click.option("--from", "start", callback=_date, default=None, metavar="YYYY-MM-DD",
              help="First entry date (inclusive); the export then opens with the balances brought forward.")
@click.option("--to", "end", callback=_date, default=None, metavar="YYYY-MM-DD",
              help="Last entry date (inclusive); default: the whole journal.")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="csv (one row per line), jsonl (one entry per line), beancount or hledger.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write; FILE.manifest.json and FILE.sha256 are written beside it.")
@click.pass_obj
def journal(obj: Ctx, start: date | None, end: date | None, fmt: str, out: str) -> None:
    """Export the journal entries dated --from..--to, with every line, both commodities and the
    customer, grant, invoice and event dimensions; balances tie to the trial balance at --to."""
    import gc

    from ledger.export import export_journal

    from ledger.store.pg import open_snapshot, snapshot_url

    gc.freeze()  # what is loaded by now lives as long as the process: no collection, not even at exit, need scan it
    t0 = time.perf_counter()
    # A CSV of PostgreSQL books is made by the server: read on psycopg alone (no SQLAlchemy to import)
    books = open_snapshot(obj.url) if fmt == "csv" and snapshot_url(obj.url) else obj.session()
    with books as session:
        try:
            result = export_journal(session, out, fmt, start=start, end=end)
        except OSError as exc:
            raise click.ClickException(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    seconds = time.perf_counter() - t0
    click.echo(f"wrote {result.path}: {plural(result.entries, 'entry', 'entries')}, {plural(result.postings, 'line')} "
               f"({fmt}, {plural(result.bytes, 'byte')}, sha256 {result.sha256})")
    click.echo(f"wrote {result.manifest_path} and {result.sha256_path}")
    click.echo(f"{seconds:.2f} s, {result.postings / seconds if seconds else 0:,.0f} lines/s", err=True)
