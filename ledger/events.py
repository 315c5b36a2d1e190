"""The readers of event files (docs/design.md §8.2): JSONL events and CSV usage, line by line.

The schemas, ``EventType`` and the validation of one event are in ``ledger.event_schemas``, the
CSV rows in ``ledger.usage_csv``; every name stays importable from here. Parsing never raises on
bad input: every problem becomes an InputProblem naming file, line, field and value, so an import
can report them all and post nothing. Amounts stay decimal strings here; they are converted to
minor units once the customer's currency is known.

Example line::

    {"id": "evt-1", "type": "topup.purchased", "occurred_at": "2026-01-05T10:00:00Z",
     "customer_id": "cus_001", "topup_id": "top-1", "credits": 1000, "amount": "20.00",
     "expires_at": "2027-01-05T00:00:00Z"}
"""

from __future__ import annotations

import io
from collections.abc import Container, Iterable, Iterator
from pathlib import Path

from ledger.errors import NO_VALUE, InputProblem
from ledger.event_schemas import (
    EVENT_TYPES,
    MAX_UNIT_PRICE,
    AnyEvent,
    BreakageEstimateChanged,
    BreakagePolicy,
    CommitmentPurchased,
    Credits,
    CreditsGranted,
    CustomerCreated,
    CustomerId,
    EventType,
    EventVoided,
    GuaranteeEnrolled,
    Id,
    PaymentReceived,
    RefundIssued,
    RolloverPolicy,
    SourcedEvent,
    SubscriptionCancelled,
    SubscriptionStarted,
    Text,
    TopupPurchased,
    UsageRecorded,
    _usage_canonical_json,
    canonical_json,
    content_hash,
    parse_event,
)
from ledger.usage_csv import USAGE_HEADERS, csv_cells, csv_error_message, usage_events

__all__ = [
    "EVENT_TYPES", "MAX_UNIT_PRICE", "USAGE_HEADERS", "AnyEvent", "BreakageEstimateChanged", "BreakagePolicy",
    "CommitmentPurchased", "Credits", "CreditsGranted", "CustomerCreated", "CustomerId", "EventType",
    "EventVoided", "GuaranteeEnrolled", "Id", "PaymentReceived", "RefundIssued", "RolloverPolicy", "SourcedEvent",
    "SubscriptionCancelled", "SubscriptionStarted", "Text", "TopupPurchased", "UsageRecorded",
    "_usage_canonical_json", "canonical_json", "content_hash", "csv_cells", "csv_error_message", "iter_file",
    "parse_event", "read_file", "read_jsonl", "read_usage_csv",
]

_BOM = "starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without BOM"


def _text_lines(raw_lines: Iterable[bytes], file: str) -> Iterator[tuple[int, str | None, list[InputProblem]]]:
    """(line number, text or None, problems) per non-blank line; CRLF accepted; a BOM and
    invalid UTF-8 reported. Streams: holds one line at a time."""
    for n, raw in enumerate(raw_lines, start=1):
        problems: list[InputProblem] = []
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            problems.append(InputProblem(file, 1, "", NO_VALUE, _BOM))
            raw = raw[3:]
        raw = raw.rstrip(b"\n")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(InputProblem(file, n, "", raw[max(0, exc.start - 10):exc.end + 10],
                                         f"is not valid UTF-8 (byte {exc.start + 1} of the line)"))
            yield n, None, problems
            continue
        if text.strip() or problems:
            yield n, text if text.strip() else None, problems


def _jsonl_events(lines: Iterable[tuple[int, str | None, list[InputProblem]]], file: str
                  ) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    for n, text, problems in lines:
        if text is None:
            yield None, problems
            continue
        ev, probs = parse_event(text, file, n)
        yield ev, problems + probs


def iter_file(path: str | Path, data: bytes | None = None, *, customers: Container[str] | None = None
              ) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    """Stream a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``, bulk usage) file:
    (event or None, problems) per line, in file order, holding one line at a time. A file that
    cannot be read yields one problem. ``customers``: a CSV file's rows for other customers are
    skipped before they are validated (a JSONL file's events are all yielded)."""
    file = str(path)
    p = Path(path)
    if data is not None:
        raw_lines: Iterable[bytes] = io.BytesIO(data)
        handle = None
    else:
        try:
            handle = p.open("rb")
        except OSError as exc:
            yield None, [InputProblem(file, 0, "", NO_VALUE, f"cannot be read: {exc.strerror}")]
            return
        raw_lines = handle
    try:
        lines = _text_lines(raw_lines, file)
        yield from (usage_events(lines, file, customers) if p.suffix.lower() == ".csv" else _jsonl_events(lines, file))
    finally:
        if handle is not None:
            handle.close()


def _collect(items) -> tuple[list[SourcedEvent], list[InputProblem]]:
    events, problems = [], []
    for ev, probs in items:
        problems.extend(probs)
        if ev is not None:
            events.append(ev)
    return events, problems


def read_jsonl(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL event file: (events in file order, problems)."""
    file = str(path)
    if data is None:
        data = Path(path).read_bytes()
    return _collect(_jsonl_events(_text_lines(io.BytesIO(data), file), file))


def read_usage_csv(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read bulk usage CSV (header ``event_id,customer_id,occurred_at,credits`` or with
    ``action,quantity``): (usage.recorded events, problems)."""
    file = str(path)
    if data is None:
        data = Path(path).read_bytes()
    return _collect(usage_events(_text_lines(io.BytesIO(data), file), file))


def read_file(path: str | Path) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``) file of events."""
    return _collect(iter_file(path))
