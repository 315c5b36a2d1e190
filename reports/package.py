"""The close package (docs/design.md §9.6): everything a controller signs and an auditor takes away.

``write_package(session, catalog, period, out_dir)`` writes, for a closed period:

- ``reports/<name>.csv`` and ``.json``: trial balance, deferred-revenue rollforward, revenue by
  stream, credits by grant, AR aging, guarantees, late events, quarantined usage, gross margin
  by customer (and the forecasting reports when installed);
- ``journal/journal.csv`` and ``journal.jsonl``: the period's journal entries as ``ledger
  export journal --from <first day> --to <last day>`` writes them, with their manifests;
- ``invoices/<number>.pdf``: every invoice and credit note issued in the period;
- ``close-report.pdf``: key figures, rollforward, revenue by stream, checks, 12-month charts;
- ``manifest.json``: the close record (who, when, journal head, entries, seal, checks) and the
  sha256 and size of every file above.

Byte for byte reproducible: the same books give the same files. PDF dates come from
``SOURCE_DATE_EPOCH`` when set, else from the close record's time, and nothing else depends on
the clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ledger import forecast, reporting
from ledger.catalog import Catalog
from ledger.core.periods import first_day, last_day
from ledger.errors import PeriodOrderError
from ledger.store.documents import issued_numbers
from reports.tables import to_csv, to_json

if TYPE_CHECKING:
    from ledger.store.db import Session

UTC = ZoneInfo("UTC")


def period_reports(session: Session, period: str, tz: ZoneInfo = UTC, *, margin_threshold: int = 40,
                   soft_caps: dict[str, int] | None = None) -> list[reporting.Report]:
    """The reports of the close package for ``period``; ``tz``: the reporting timezone;
    ``margin_threshold``: the percent under which the margin report flags a customer;
    ``soft_caps``: customers' monthly soft caps, for the usage alerts."""
    from ledger.margin import gross_margin

    return [
        reporting.trial_balance(session, period),
        reporting.deferred_revenue(session, period),
        reporting.revenue(session, period),
        reporting.credits(session, period),
        reporting.quarantine(session, period),
        reporting.ar_aging(session, period),
        reporting.guarantees(session, period, tz=tz),
        reporting.late_events(session, period),
        gross_margin(session, period, threshold=margin_threshold),
        reporting.pending_reviews(session, period),
        forecast.waterfall(session, period, tz=tz),
        forecast.usage_alerts(session, period, tz=tz, soft_caps=soft_caps),
    ]


def write_reports(session: Session, period: str, out_dir: str | Path, tz: ZoneInfo = UTC, *,
                  margin_threshold: int = 40, soft_caps: dict[str, int] | None = None) -> list[Path]:
    """Write every period report as <name>.csv and <name>.json into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for report in period_reports(session, period, tz, margin_threshold=margin_threshold, soft_caps=soft_caps):
        for suffix, text in (("csv", to_csv(report)), ("json", to_json(report))):
            path = out / f"{report.name}.{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


@contextlib.contextmanager
def _source_date(epoch: int):
    """SOURCE_DATE_EPOCH for the renders inside (and their worker processes), unless set."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        yield
        return
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)


def write_package(session: Session, catalog: Catalog, period: str, out_dir: str | Path, *,
                  on_document=None) -> Path:
    """Write the close package of ``period`` into ``out_dir`` (see the module docstring) and
    return the path of its manifest.json. on_document: called once per PDF rendered.

    Read from the books in the caller's session, in transactions of its own (the documents are
    read and the transaction ended before the PDFs are rendered in worker processes). The parts
    are written into a sibling folder ``.<name>.part`` first, then moved into ``out_dir``
    (replacing the parts of an earlier package there, manifest.json last; other files are
    kept): a failed write leaves ``out_dir`` as it was and removes the folder it wrote in, so a
    folder with a manifest.json always holds the complete package it lists.

    raises PeriodOrderError if ``period`` is not closed (a package belongs to a close record);
    whatever the writing raised (OSError, a renderer's error), with nothing moved into ``out_dir``.
    """
    from ledger.store.closing import close_record

    record = close_record(session, period)
    if record is None:
        raise PeriodOrderError(f"{period} is not closed: close it first (the package carries its close record)")
    out = Path(out_dir)
    where = out.resolve()  # "." has no name of its own
    part = where.parent / f".{where.name}.part"
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(part, ignore_errors=True)  # what a killed earlier write left
    part.mkdir()
    try:
        files = _write_parts(session, catalog, period, record, part, on_document)
        manifest = {
            "period": period,
            "close": {"id": record.id, "at": record.at.isoformat(), "by": record.by,
                      "journal_head": record.journal_head, "entries": record.entries, "seal": record.seal,
                      "previous_seal": record.previous_seal, "checks": json.loads(record.checks or "[]")},
            "files": [{"path": p.relative_to(part).as_posix(), "sha256": _sha256(p), "bytes": p.stat().st_size}
                      for p in sorted(files, key=lambda p: p.relative_to(part).as_posix())],
        }
        (part / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        _move_in(part, out)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return out / "manifest.json"


def _write_parts(session: Session, catalog: Catalog, period: str, record, out: Path, on_document) -> list[Path]:
    """Every file of the package but manifest.json, written into ``out``; returns their paths."""
    from ledger.services.documents import render_jobs
    from reports.close_report import close_report_pdf
    from reports.documents import render_job

    files = write_reports(session, period, out / "reports", catalog.tz,
                          margin_threshold=catalog.model.costs.margin_threshold_percent,
                          soft_caps=catalog.soft_caps())
    files += _journal(session, period, out / "journal")
    numbers = issued_numbers(session, first_day(period), last_day(period))
    with _source_date(int(record.at.timestamp())):
        if numbers:
            (out / "invoices").mkdir(exist_ok=True)
            jobs = [render_job(session, catalog, n, out / "invoices" / f"{n}.pdf") for n in numbers]
            session.rollback()  # what the renders need is read: no worker inherits an open transaction
            files += render_jobs(jobs, on_done=on_document)
        report = out / "close-report.pdf"
        report.write_bytes(close_report_pdf(session, catalog, period, record))
        files.append(report)
    return files


def _move_in(part: Path, out: Path) -> None:
    """Move the package written in ``part`` to ``out``: a rename when ``out`` does not exist;
    else its manifest.json is removed first, each part replaces its namesake, and the new
    manifest.json comes last."""
    if not out.exists():
        os.rename(part, out)
        return
    (out / "manifest.json").unlink(missing_ok=True)
    for entry in sorted(part.iterdir()):
        if entry.name == "manifest.json":
            continue
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif entry.is_dir() and target.exists():
            target.unlink()
        os.replace(entry, target)
    os.replace(part / "manifest.json", out / "manifest.json")


def _journal(session: Session, period: str, folder: Path) -> list[Path]:
    """The period's journal as ``ledger export journal`` writes it (CSV and JSONL, each with an
    opening-balance entry, its manifest and sha256 file): every entry dated in the period."""
    from ledger.export import export_journal

    written = []
    for fmt in ("csv", "jsonl"):
        result = export_journal(session, folder / f"journal.{fmt}", fmt, start=first_day(period), end=last_day(period))
        written += [result.path, result.manifest_path, result.sha256_path]
    return written


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
