"""The bulk usage CSV reader's rows (docs/design.md §8.2): header
``event_id,customer_id,occurred_at,credits`` or ``event_id,customer_id,occurred_at,action,quantity``,
one ``usage.recorded`` event per row.

This is the hot path of a bulk import (a million rows, read twice): a plain line (no quote, CR or
NUL) is split on commas directly, and a row of the ``credits`` header with nothing JSON escapes is
written as JSON text by hand before the schema validates it. Every other line goes through the
``csv`` and ``json`` modules, with the same result. Problems name file, line, field and value;
nothing raises on bad input. The file-level readers are ``ledger.events.read_usage_csv`` and
``ledger.events.iter_file``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Container, Iterable, Iterator

from pydantic import TypeAdapter

from ledger.errors import NO_VALUE, InputProblem
from ledger.event_schemas import EventType, SourcedEvent, UsageRecorded, parse_event

USAGE_HEADERS = (("event_id", "customer_id", "occurred_at", "credits"),
                 ("event_id", "customer_id", "occurred_at", "action", "quantity"))
"""The two accepted headers (cells stripped of surrounding blanks)."""

_CSV_PLAIN = re.compile(r'[^"\r\x00]*')
"""A CSV line that `str.split` cuts exactly as `csv.reader` does: no quote, CR or NUL."""
_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
"""Text that is a JSON string's body as it stands: nothing JSON escapes (quote, backslash, controls)."""
_USAGE_ADAPTER: TypeAdapter = TypeAdapter(UsageRecorded)


def csv_cells(text: str) -> list[str]:
    """One CSV line's cells, as ``csv.reader`` reads them (a plain line is split on commas
    directly: the bulk usage path reads a million of them). raises csv.Error (a CR inside an
    unquoted cell)."""
    if _CSV_PLAIN.fullmatch(text):
        return text.split(",")
    return next(csv.reader(io.StringIO(text)), [])


def csv_error_message(exc: csv.Error) -> str:
    """The problem's message for a line that ``csv.reader`` refuses."""
    if "new-line character" in str(exc):
        return "has a carriage return (CR) inside an unquoted cell; quote the cell or remove the CR"
    return f"is not a valid CSV line ({exc})"


def _usage_json(row: dict[str, str], counts: dict[str, int], plain: bool) -> str:
    """A usage CSV row as the JSON object of its event (the cells as strings, ``credits`` and
    ``quantity`` as the integers ``counts``), for the event schema to validate. ``plain``: the
    line holds nothing JSON escapes, so a row of the ``credits`` header is written as it stands
    (the bulk path); anything else goes through ``json.dumps``."""
    if plain and "action" not in row and "credits" in counts:
        return (f'{{"id":"{row["event_id"]}","type":"usage.recorded","occurred_at":"{row["occurred_at"]}",'
                f'"customer_id":"{row["customer_id"]}","credits":{counts["credits"]}}}')
    obj = {"id": row["event_id"], "type": EventType.USAGE_RECORDED.value, "occurred_at": row["occurred_at"],
           "customer_id": row["customer_id"]}
    if "action" in row:
        obj["action"] = row["action"]
    return json.dumps(obj | counts)


def usage_events(lines: Iterable[tuple[int, str | None, list[InputProblem]]], file: str,
                 customers: Container[str] | None = None) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    """Usage events of a CSV file's lines: ``lines`` as ``ledger.events`` decodes them (line
    number, text or None when undecodable, problems), the first one the header. Yields (event or
    None, problems) per line in file order; a bad header ends the file. With ``customers``, the
    rows of other customers are skipped unread (for a second pass over input that a first pass
    has checked)."""
    header: tuple[str, ...] | None = None
    seen = False
    for n, text, problems in lines:
        seen = True
        if text is None:
            yield None, problems
            continue
        try:
            cells = csv_cells(text)
        except csv.Error as exc:
            yield None, problems + [InputProblem(file, n, "", text, csv_error_message(exc))]
            if header is None:
                return
            continue
        if header is None:
            found = tuple(h.strip() for h in cells)
            if found not in USAGE_HEADERS:
                yield None, problems + [InputProblem(file, n, "", text, "unexpected header; expected "
                                                     + " or ".join(",".join(h) for h in USAGE_HEADERS))]
                return
            header = found
            if problems:
                yield None, problems
            continue
        if len(cells) != len(header):
            yield None, problems + [InputProblem(file, n, "", text, f"has {len(cells)} fields; the header has {len(header)}")]
            continue
        row = dict(zip(header, cells))
        if customers is not None and row["customer_id"] not in customers:
            continue
        counts: dict[str, int] = {}
        for key in ("credits", "quantity"):
            if key in row:
                value = row[key]
                if not (value.isascii() and value.isdigit()):
                    problems.append(InputProblem(file, n, key, value, "must be a whole number"))
                else:
                    counts[key] = int(value)
        if problems:
            yield None, problems
            continue
        yield parse_event(_usage_json(row, counts, _JSON_PLAIN.fullmatch(text) is not None), file, n,
                          adapter=_USAGE_ADAPTER)
    if not seen:
        yield None, [InputProblem(file, 1, "", NO_VALUE, "is empty; expected a header line")]
