"""The set-based import's plain-form check on the bytes it sends to COPY
(`ledger.store.staging._copy_plain`), without a database: whole lines pass through unchanged,
across block boundaries and with or without a final newline; any line not in plain form stops it."""

from __future__ import annotations

import io

import pytest

from ledger.store import staging

GOOD = b"u-1,cus_1,2026-10-01T00:00:05.892655Z,2\nu.2:x/y@z+w-v,c,2026-02-28T23:59:59Z,9223372036854775807\n"


def _sent(data: bytes) -> tuple[bool, bytes]:
    out: list[bytes] = []
    return staging._copy_plain(io.BytesIO(data), out.append), b"".join(out)


@pytest.mark.parametrize("data", [b"", GOOD, GOOD.rstrip(b"\n"), GOOD * 40_000])
def test_plain_lines_are_sent_as_they_are(data):
    assert _sent(data) == (True, data)


@pytest.mark.parametrize("line", [
    b"u 1,c,2026-10-01T00:00:00Z,5", b"u1,c,2026-10-01T00:00:00+01:00,5", b"u1,c,2026-10-01T24:00:00Z,5",
    b"u1,c,2026-10-01T00:00:60Z,5", b"u1,c,2026-13-01T00:00:00Z,5", b"u1,c,1999-10-01T00:00:00Z,5",
    b"u1,c,2026-10-01T00:00:00.1234567Z,5", b"u1,c,2026-10-01T00:00:00Z,-5", b"u1,c,2026-10-01T00:00:00Z,12345678901234567890",
    b'"u1",c,2026-10-01T00:00:00Z,5', b"u1,c,2026-10-01T00:00:00Z,5\r", b"u1,c,2026-10-01T00:00:00Z", b"",
    b"u1,c,2026-10-01 00:00:00Z,5", b"-u1,c,2026-10-01T00:00:00Z,5", b"u" * 129 + b",c,2026-10-01T00:00:00Z,5",
    b"u1," + b"c" * 65 + b",2026-10-01T00:00:00Z,5", b"u\xc3\xa91,c,2026-10-01T00:00:00Z,5",
])
@pytest.mark.parametrize("where", ["first", "after a block", "last without newline"])
def test_a_line_not_in_plain_form_stops_it(line, where):
    if where == "first":
        data = line + b"\n" + GOOD
    elif where == "after a block":
        data = GOOD * 40_000 + line + b"\n" + GOOD
    else:
        data = GOOD + line
    if where == "last without newline" and line == b"":
        data = GOOD + b"\n"  # an empty last line
    assert _sent(data)[0] is False


def test_the_longest_ids_are_plain():
    assert _sent(b"u" * 128 + b"," + b"c" * 64 + b",2026-10-01T00:00:00Z,1\n")[0] is True
