"""The messages an invalid event gets where pydantic's own would mislead: dates and instants not
written as the event schema requires, text with a control character (docs/design.md §8.2)."""

from __future__ import annotations

import json
import re

from pydantic import AwareDatetime, TypeAdapter, ValidationError

YEAR_MIN, YEAR_MAX = 2000, 2099
"""The years of every date and instant of an event (docs/design.md §8.2 "Date bounds"): nothing booked
is older, and period, expiry and term arithmetic stays far from the end of datetime (9999)."""
_YEARS = f"is out of range: dates and timestamps must be in the years {YEAR_MIN} through {YEAR_MAX}"
_LOOSE_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?P<frac>\.[0-9]+)?"
                            r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?")
_LOOSE_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


_INSTANT: TypeAdapter = TypeAdapter(AwareDatetime)


def _format_message(kind: str, value: object) -> str:
    """The message of a date or instant not written as `Instant` or `Day` require."""
    if kind == "iso_date":
        loose = isinstance(value, str) and _LOOSE_DAY.fullmatch(value)
        return _YEARS if loose else "must be a date string \"YYYY-MM-DD\" (e.g. \"2026-01-05\")"
    if not isinstance(value, str):
        return "must be an RFC 3339 timestamp string such as \"2026-01-05T10:00:00Z\""
    m = _LOOSE_INSTANT.fullmatch(value)
    if m is None:
        epoch = " (Unix epoch seconds are refused)" if value.strip().isdigit() else ""
        return (f"is not an RFC 3339 timestamp{epoch}: a date, \"T\", a time and an offset, e.g. "
                "2026-01-05T10:00:00Z or 2026-01-05T11:00:00.5+01:00")
    if m["frac"] and len(m["frac"]) > 7:
        return "has more than 6 fractional digits (an instant is kept to the microsecond)"
    if not m["offset"]:
        return "needs an RFC 3339 offset such as Z or +01:00 (naive timestamps are refused)"
    return _YEARS


def control_message(value: object) -> str:
    """The message for a text holding a control character (`NO_CONTROLS`), naming the first one."""
    found = next((c for c in value if c <= "\x1f" or "\x7f" <= c <= "\x9f"), "") if isinstance(value, str) else ""
    at = f": U+{ord(found):04X} at character {value.index(found) + 1}" if found else ""  # type: ignore[union-attr]
    return f"must not contain control characters (C0 such as NUL or newline, DEL, C1){at}"


def _strict_instant_message(value: object) -> str | None:
    try:
        _INSTANT.validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        return exc.errors()[0]["msg"]
    return None
