"""Event parsing: the usage events' direct canonical JSON (what a bulk import hashes every line
with) equals the generic canonical JSON, byte for byte, so a file hashes the same whichever
path read it and re-imports of older files stay duplicates, not conflicts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.events import (
    UsageRecorded,
    _usage_canonical_json,
    canonical_json,
    content_hash,
    parse_event,
)

FIRST = "ABCXYZabcxyz0189"
REST = FIRST + "._:/@+-"
ids = st.builds(lambda a, b: a + b, st.sampled_from(FIRST), st.text(REST, max_size=60))
instants = st.builds(
    lambda t, minutes: t.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),  # docs/design.md §8.2
    st.integers(-14 * 60, 14 * 60),
)
amounts = st.integers(1, 2**63 - 1)


@st.composite
def usage_events(draw) -> dict:
    body = {"id": draw(ids), "type": "usage.recorded", "customer_id": draw(ids),
            "occurred_at": draw(instants).isoformat()}
    if draw(st.booleans()):
        body["credits"] = draw(amounts)
    else:
        body["action"], body["quantity"] = draw(ids), draw(amounts)
    return body


@settings(max_examples=300, deadline=None)
@given(usage_events())
def test_usage_canonical_json_equals_the_generic_one(body):
    ev, problems = parse_event(json.dumps(body), "usage.jsonl", 1)
    assert problems == [] and isinstance(ev.event, UsageRecorded)
    utc = ev.event.model_copy(update={"occurred_at": ev.event.occurred_at.astimezone(timezone.utc)})
    assert _usage_canonical_json(ev.event) == canonical_json(utc)


def test_a_csv_line_and_its_jsonl_twin_hash_the_same(tmp_path):
    from ledger.events import read_file

    (tmp_path / "u.csv").write_text("event_id,customer_id,occurred_at,credits\n"
                                    "u-1,cus_1,2026-10-01T02:00:00.5+02:00,7\n")
    (tmp_path / "u.jsonl").write_text(json.dumps({"id": "u-1", "type": "usage.recorded", "customer_id": "cus_1",
                                                  "occurred_at": "2026-10-01T02:00:00.500+02:00", "credits": 7}) + "\n")
    (csv_ev,), _ = read_file(tmp_path / "u.csv")
    (jsonl_ev,), _ = read_file(tmp_path / "u.jsonl")
    assert csv_ev.content_hash == jsonl_ev.content_hash == content_hash(jsonl_ev.event)
    # the hash covers the instant in UTC as pydantic writes it (the stored row keeps no offset),
    # the fraction in full
    assert '"occurred_at":"2026-10-01T00:00:00.500000Z"' in _usage_canonical_json(csv_ev.event)


# -- the bulk usage CSV reader ------------------------------------------------------------------

_AWKWARD = st.text(alphabet='ab1_-",\\\r\x00\x01é٣²: ', max_size=8)
_cells = st.one_of(ids, _AWKWARD, st.integers(0, 2**64).map(str), instants.map(datetime.isoformat))


def _reference_csv_read(text: str) -> tuple[list, list]:
    """What the usage CSV reader must yield for a file: each line cut by ``csv.reader``, counts
    that are ASCII digits made integers, the object given to the event schema as ``json.dumps``
    writes it (the reader's plain-text shortcuts must not change a result)."""
    import csv
    import io

    from ledger.errors import InputProblem
    from ledger.events import csv_error_message

    lines = text.split("\n")
    header = tuple(next(csv.reader([lines[0]])))
    events, problems = [], []
    for n, line in enumerate(lines[1:], start=2):
        line = line.removesuffix("\r")  # CRLF is a line end
        if not line.strip():
            continue
        try:
            cells = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            problems.append(InputProblem("u.csv", n, "", line, csv_error_message(exc)))
            continue
        if len(cells) != len(header):
            problems.append(InputProblem("u.csv", n, "", line, f"has {len(cells)} fields; the header has {len(header)}"))
            continue
        row = dict(zip(header, cells))
        obj = {"id": row["event_id"], "type": "usage.recorded", "occurred_at": row["occurred_at"],
               "customer_id": row["customer_id"]}
        bad = [InputProblem("u.csv", n, k, row[k], "must be a whole number")
               if not (row[k].isascii() and row[k].isdigit()) else
               InputProblem("u.csv", n, k, row[k], "must be a whole number of at most 19 ASCII digits (at most "
                            "9223372036854775807)")  # docs/design.md §8.2
               for k in ("credits", "quantity") if k in row and not (row[k].isascii() and row[k].isdigit()
                                                                      and len(row[k]) <= 19)]
        if bad:
            problems += bad
            continue
        obj |= {k: int(row[k]) for k in ("credits", "quantity") if k in row}
        if "action" in row:
            obj["action"] = row["action"]
        ev, probs = parse_event(json.dumps(obj), "u.csv", n)
        problems += probs
        if ev is not None:
            events.append(ev)
    return events, problems


@settings(max_examples=300, deadline=None)
@given(shape=st.sampled_from([0, 1]), quoted=st.booleans(),
       rows=st.lists(st.lists(_cells, min_size=3, max_size=6), max_size=6))
def test_the_usage_csv_reader_equals_csv_reader_and_json(shape, quoted, rows):
    """`read_usage_csv` (plain lines cut with ``str.split``, JSON written directly when nothing
    needs escaping) gives the same events, hashes and problems as ``csv.reader`` and
    ``json.dumps`` on any line: quotes, commas, backslashes, CR and NUL in cells, non-ASCII
    digits, too many or too few fields."""
    import csv
    import io

    from ledger.events import USAGE_HEADERS, read_usage_csv

    out = io.StringIO()
    out.write(",".join(USAGE_HEADERS[shape]) + "\n")
    for cells in rows:
        if quoted:
            csv.writer(out, lineterminator="\n").writerow(cells)
        else:
            out.write(",".join(cells) + "\n")
    text = out.getvalue()
    if text.count("\n") != len(rows) + 1:  # a quoted cell with a line break spans lines: not this test's case
        return
    events, problems = read_usage_csv("u.csv", text.encode())
    want_events, want_problems = _reference_csv_read(text.rstrip("\n"))
    assert [(e.event, e.line, e.content_hash) for e in events] == \
        [(e.event, e.line, e.content_hash) for e in want_events]
    assert problems == want_problems


def test_usage_counts_must_be_ascii_digits(tmp_path):
    """A count written in other digits ('٣', '²') is refused with its line and field, not read
    as a number (or, for '²', raised as a ValueError: ``str.isdigit`` admits it, ``int`` not);
    a bare CR inside a line is a problem of that line, not a ``csv.Error`` out of the import."""
    from ledger.events import read_usage_csv

    data = ("event_id,customer_id,occurred_at,credits\n"
            "u-1,cus_1,2026-10-01T00:00:00Z,٣\n"
            "u-2,cus_1,2026-10-01T00:00:00Z,²\n"
            "u-3,cus_1,2026-10-01T00:00:00Z,3\n"
            "u-4,cus_1,2026-10-01T00:00:00Z\r,3\n").encode()
    events, problems = read_usage_csv("u.csv", data)
    assert [e.id for e in events] == ["u-3"]
    assert [(p.line, p.field, p.value) for p in problems] == [
        (2, "credits", "٣"), (3, "credits", "²"), (5, "", "u-4,cus_1,2026-10-01T00:00:00Z\r,3")]
    assert "carriage return (CR) inside an unquoted cell" in problems[2].message


def test_a_second_pass_skips_other_customers_rows_unread(tmp_path):
    """``iter_file(customers=...)`` yields a CSV file's rows of those customers only, and does
    not validate the others (the first pass of a bulk import has); the rows it yields are the
    ones a full read gives."""
    from ledger.events import iter_file

    path = tmp_path / "u.csv"
    path.write_text("event_id,customer_id,occurred_at,credits\n"
                    "u-1,cus_1,2026-10-01T00:00:00Z,3\n"
                    "u-2,cus_2,not a time,3\n"
                    "u-3,cus_1,2026-10-01T01:00:00Z,4\n")
    mine = [(ev.id, ev.line, ev.content_hash) for ev, _ in iter_file(path, customers={"cus_1"})]
    full = [(ev.id, ev.line, ev.content_hash) for ev, probs in iter_file(path) if ev is not None]
    assert mine == [f for f in full if f[0] != "u-2"] and [m[0] for m in mine] == ["u-1", "u-3"]
    assert [p.field for _, probs in iter_file(path) for p in probs] == ["occurred_at"]
