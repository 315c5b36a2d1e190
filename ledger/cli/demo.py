"""`ledger demo`: month-end closes on the bundled usage trace, on embedded SQLite."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.cli._common import _period


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True,
              help="Folder for the demo database, inputs, close package and invoice PDFs.")
@click.option("--month", default="2026-10", show_default=True, help="The last month to simulate and close.")
@click.option("--months", default=3, show_default=True, type=click.IntRange(1, 12),
              help="How many months, ending with --month, to import and close in order.")
def demo(out_dir: str, month: str, months: int) -> None:
    """Month-end closes on the bundled real usage trace, on embedded SQLite."""
    from ledger.demo import run_demo

    run_demo(Path(out_dir), _period(month), months)
