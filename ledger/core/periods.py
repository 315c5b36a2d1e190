"""Accounting periods: calendar months of the reporting timezone, and event-time dating.

A period is 'YYYY-MM'. An instant belongs to the period of its local date; a time-driven step
due at a period boundary (e.g. expiry at 2026-02-01T00:00 local) belongs to the period that
ends there, so it is dated on the local date of the instant just before it (2026-01-31).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_EPSILON = timedelta(microseconds=1)


def parse_period(text: str) -> str:
    """Validate 'YYYY-MM'; raises ValueError otherwise."""
    if not isinstance(text, str) or not _PERIOD_RE.match(text):
        raise ValueError(f"period must look like 2026-01, got {text!r}")
    return text


def period_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def first_day(period: str) -> date:
    y, m = map(int, parse_period(period).split("-"))
    return date(y, m, 1)


def next_period(period: str) -> str:
    d = first_day(period)
    return period_of(date(d.year + (d.month == 12), d.month % 12 + 1, 1))


def previous_period(period: str) -> str:
    d = first_day(period) - timedelta(days=1)
    return period_of(d)


def last_day(period: str) -> date:
    return first_day(next_period(period)) - timedelta(days=1)


def start_of_day(d: date, tz: ZoneInfo) -> datetime:
    """The instant local midnight starts ``d`` in ``tz`` (aware datetime)."""
    return datetime.combine(d, time(0), tzinfo=tz)


def period_end(period: str, tz: ZoneInfo) -> datetime:
    """The instant the period ends: local midnight of the first day of the next period."""
    return start_of_day(first_day(next_period(period)), tz)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def boundary_date(instant: datetime, tz: ZoneInfo) -> date:
    """Accounting date of a step due at ``instant``: the local date just before it."""
    return (instant - _EPSILON).astimezone(tz).date()


def first_open_day(closed: Sequence[str]) -> date | None:
    """First day of the first open period, after the last of ``closed`` (`closed_periods`, oldest
    first); None if none is closed."""
    return first_day(next_period(closed[-1])) if closed else None
