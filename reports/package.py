"""The close package: the period's reports written to a folder, each as CSV and JSON."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session

from ledger import reporting
from reports.tables import to_csv, to_json


def period_reports(session: Session, period: str, tz: ZoneInfo = ZoneInfo("UTC")) -> list[reporting.Report]:
    """The reports of the close package for ``period``; ``tz``: the reporting timezone."""
    return [
        reporting.trial_balance(session, period),
        reporting.deferred_revenue(session, period),
        reporting.revenue(session, period),
        reporting.credits(session, period),
        reporting.quarantine(session, period),
        reporting.ar_aging(session, period),
        reporting.guarantees(session, period, tz=tz),
    ]


def write_reports(session: Session, period: str, out_dir: str | Path, tz: ZoneInfo = ZoneInfo("UTC")) -> list[Path]:
    """Write every period report as <name>.csv and <name>.json into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for report in period_reports(session, period, tz):
        for suffix, text in (("csv", to_csv(report)), ("json", to_json(report))):
            path = out / f"{report.name}.{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
