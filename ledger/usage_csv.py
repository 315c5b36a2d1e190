"""The bulk usage CSV reader's rows (docs/design.md §8.2): header
``event_id,customer_id,occurred_at,credits`` or ``event_id,customer_id,occurred_at,action,quantity``,
one ``usage.recorded`` event per row.

This is the hot path of a bulk import (a million rows, read twice): a plain line (no quote, CR or
NUL) is split on commas directly, and a row of the ``credits`` header with nothing JSON escapes and
an RFC 3339 ``occurred_at`` (one regex over the line) is written as JSON text by hand and validated
by a copy of the schema that does not check that format again. Every other line goes through the
``csv`` and ``json`` modules and the whole schema, with the same result. Problems name file, line,
field and value; nothing raises on bad input. The file-level readers are
``ledger.events.read_usage_csv`` and ``ledger.events.iter_file``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Container, Iterable, Iterator

from pydantic import TypeAdapter
from pydantic_core import SchemaValidator, core_schema

from ledger.errors import NO_VALUE, InputProblem
from ledger.event_schemas import RFC3339, EventType, SourcedEvent, UsageRecorded, parse_built_json

USAGE_HEADERS = (("event_id", "customer_id", "occurred_at", "credits"),
                 ("event_id", "customer_id", "occurred_at", "action", "quantity"))
"""The two accepted headers (cells stripped of surrounding blanks)."""

_CSV_PLAIN = re.compile(r'[^"\r\x00]*')
"""A CSV line that `str.split` cuts exactly as `csv.reader` does: no quote, CR or NUL."""
_PLAIN_ROW = re.compile(rf'[^,"\\\x00-\x1f]*,[^,"\\\x00-\x1f]*,{RFC3339},[0-9]+')
"""A ``credits`` row whose cells are JSON string bodies as they stand (no quote, backslash or
control character for JSON to escape) and whose ``occurred_at`` is written as the schema requires."""
_USAGE_ADAPTER: TypeAdapter = TypeAdapter(UsageRecorded)


def _with_field(schema: object, name: str, field_schema: core_schema.CoreSchema) -> bool:
    """Replace, in place, the schema of model field ``name`` in a pydantic core schema."""
    if isinstance(schema, dict):
        if schema.get("type") == "model-fields" and name in schema.get("fields", {}):
            schema["fields"][name]["schema"] = field_schema
            return True
        return any(_with_field(v, name, field_schema) for v in schema.values())
    return isinstance(schema, list) and any(_with_field(v, name, field_schema) for v in schema)


def _prechecked_validator() -> SchemaValidator:
    """UsageRecorded's validator (same class, rules and errors) whose ``occurred_at`` is parsed
    directly from the JSON text, for rows `_PLAIN_ROW` has checked: the whole schema would check
    the RFC 3339 format again through a Python string, 8% of a bulk read."""
    schema = copy.deepcopy(UsageRecorded.__pydantic_core_schema__)
    if not _with_field(schema, "occurred_at", core_schema.datetime_schema(tz_constraint="aware", strict=True)):
        raise AssertionError("UsageRecorded's core schema has no occurred_at field")  # checked once, at import
    return SchemaValidator(schema)


_PRECHECKED = _prechecked_validator()
COUNT_MAX_DIGITS = 19
"""A CSV count (credits, quantity) has 1-19 ASCII digits: 2^63 - 1 has 19, and ``int`` of a longer
string costs time that grows with it (past 4,300 digits Python refuses it)."""
_COUNT_MESSAGE = f"must be a whole number of at most {COUNT_MAX_DIGITS} ASCII digits (at most 9223372036854775807)"


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
    ``quantity`` as the integers ``counts``), for the event schema to validate. ``plain``: a row
    of the ``credits`` header that `_PLAIN_ROW` matches, written as it stands (the bulk path);
    anything else goes through ``json.dumps``."""
    if plain:
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
                elif len(value) > COUNT_MAX_DIGITS:
                    problems.append(InputProblem(file, n, key, value, _COUNT_MESSAGE))
                else:
                    counts[key] = int(value)
        if problems:
            yield None, problems
            continue
        plain = "credits" in counts and _PLAIN_ROW.fullmatch(text) is not None
        yield parse_built_json(_usage_json(row, counts, plain), file, n, _PRECHECKED if plain else _USAGE_ADAPTER)
    if not seen:
        yield None, [InputProblem(file, 1, "", NO_VALUE, "is empty; expected a header line")]
