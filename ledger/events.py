"""The readers of event files (docs/design.md §8.2): JSONL events and CSV usage, line by line.

The schemas, ``EventType`` and the validation of one event are in ``ledger.event_schemas``, the
CSV rows in ``ledger.usage_csv``; every name stays importable from here. Parsing never raises on
bad input: every problem becomes an InputProblem naming file, line, field and value, so an import
can report them all and post nothing. Amounts stay decimal strings here; they are converted to
minor units once the customer's currency is known.

Files are read in chunks (`raw_lines`), never whole: a line longer than ``MAX_LINE_BYTES`` (1 MiB)
is one problem and ends the file, so a stream without line ends (/dev/zero) costs 1 MiB, not all
memory. A UTF-16 or UTF-32 file ends at its first line; an empty file is one problem, JSONL or CSV.

Example line::

    {"id": "evt-1", "type": "topup.purchased", "occurred_at": "2026-01-05T10:00:00Z",
     "customer_id": "cus_001", "topup_id": "top-1", "credits": 1000, "amount": "20.00",
     "expires_at": "2027-01-05T00:00:00Z"}
"""

from __future__ import annotations

import io
from collections.abc import Callable, Container, Iterable, Iterator
from pathlib import Path

from ledger.errors import NO_VALUE, InputProblem
from ledger.event_schemas import (
    EVENT_TYPES,
    MAX_LINE_BYTES,
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
    UsageApproved,
    UsageRecorded,
    UsageRejected,
    _usage_canonical_json,
    canonical_json,
    content_hash,
    duplicate_keys,
    parse_event,
)
from ledger.usage_csv import USAGE_HEADERS, csv_cells, csv_error_message, usage_events

__all__ = [
    "EVENT_TYPES", "MAX_LINE_BYTES", "MAX_UNIT_PRICE", "USAGE_HEADERS", "AnyEvent", "BreakageEstimateChanged",
    "BreakagePolicy", "CommitmentPurchased", "Credits", "CreditsGranted", "CustomerCreated", "CustomerId", "EventType",
    "EventVoided", "GuaranteeEnrolled", "Id", "PaymentReceived", "RefundIssued", "RolloverPolicy", "SourcedEvent",
    "SubscriptionCancelled", "SubscriptionStarted", "Text", "TopupPurchased", "UsageApproved", "UsageRecorded",
    "UsageRejected",
    "_usage_canonical_json", "canonical_json", "content_hash", "csv_cells", "csv_error_message", "duplicate_keys",
    "iter_file", "parse_event", "raw_lines", "read_file", "read_jsonl", "read_usage_csv",
]

_BOM = "starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without BOM"
_UTF16 = ("is UTF-16 or UTF-32 (it starts with that byte order mark); save the file as UTF-8 without BOM; "
          "the rest of the file was not read")
_TOO_LONG = (f"is longer than {MAX_LINE_BYTES:,} bytes (1 MiB), the longest line an event file may have; "
             "the rest of the file was not read")
_READ = 1 << 18
"""Bytes read at a time (256 KiB, at most MAX_LINE_BYTES: a line is checked once, when it ends)."""


def raw_lines(read: Callable[[int], bytes]) -> Iterator[bytes | None]:
    """The lines of a binary stream, without their LF, read ``_READ`` bytes at a time: memory
    holds one chunk and one line, never more than MAX_LINE_BYTES of a line. A line longer than
    that yields None, and nothing more is read (a stream without line ends, /dev/zero, ends
    there)."""
    tail = b""
    while chunk := read(_READ):
        parts = chunk.split(b"\n")
        parts[0] = tail + parts[0]
        tail = parts.pop()
        if len(parts[0] if parts else tail) > MAX_LINE_BYTES:  # later lines are shorter than a chunk
            yield None
            return
        yield from parts
    if tail:
        yield tail


def _text_lines(raws: Iterable[bytes | None], file: str) -> Iterator[tuple[int, str | None, list[InputProblem]]]:
    """(line number, text or None, problems) per non-blank line; CRLF accepted; a BOM, invalid
    UTF-8 and a line longer than MAX_LINE_BYTES reported (UTF-16 and an overlong line end the
    file). Streams: holds one line at a time."""
    for n, raw in enumerate(raws, start=1):
        if raw is None:
            yield n, None, [InputProblem(file, n, "", NO_VALUE, _TOO_LONG)]
            return
        problems: list[InputProblem] = []
        if n == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            yield n, None, [InputProblem(file, 1, "", raw[:2], _UTF16)]
            return
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            problems.append(InputProblem(file, 1, "", NO_VALUE, _BOM))
            raw = raw[3:]
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
    """The events of a JSONL file's lines; a file without a line (empty or blank) is refused,
    as an empty CSV file is: importing it is a mistake worth telling."""
    seen = False
    for n, text, problems in lines:
        seen = True
        if text is None:
            yield None, problems
            continue
        ev, probs = parse_event(text, file, n)
        yield ev, problems + probs
    if not seen:
        yield None, [InputProblem(file, 1, "", NO_VALUE, "is empty; expected one JSON event per line")]


def iter_file(path: str | Path, data: bytes | None = None, *, customers: Container[str] | None = None
              ) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    """Stream a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``, bulk usage) file:
    (event or None, problems) per line, in file order, holding one line at a time. A file that
    cannot be read yields one problem. ``customers``: a CSV file's rows for other customers are
    skipped before they are validated (a JSONL file's events are all yielded)."""
    file = str(path)
    p = Path(path)
    if data is not None:
        read = io.BytesIO(data).read
        handle = None
    else:
        try:
            handle = p.open("rb")
        except OSError as exc:
            yield None, [InputProblem(file, 0, "", NO_VALUE, f"cannot be read: {exc.strerror}")]
            return
        read = handle.read
    try:
        lines = _text_lines(raw_lines(read), file)
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


def _read(path: str | Path, data: bytes | None, events_of: Callable) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """(events, problems) of ``data``, or of the file at ``path`` read in bounded chunks (raises
    OSError when it cannot be opened)."""
    file = str(path)
    with io.BytesIO(data) if data is not None else open(path, "rb") as handle:
        return _collect(events_of(_text_lines(raw_lines(handle.read), file), file))


def read_jsonl(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL event file: (events in file order, problems)."""
    return _read(path, data, _jsonl_events)


def read_usage_csv(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read bulk usage CSV (header ``event_id,customer_id,occurred_at,credits`` or with
    ``action,quantity``): (usage.recorded events, problems)."""
    return _read(path, data, usage_events)


def read_file(path: str | Path) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``) file of events."""
    return _collect(iter_file(path))
