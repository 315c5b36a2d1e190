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
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
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
    assert _usage_canonical_json(ev.event) == canonical_json(ev.event)


def test_a_csv_line_and_its_jsonl_twin_hash_the_same(tmp_path):
    from ledger.events import read_file

    (tmp_path / "u.csv").write_text("event_id,customer_id,occurred_at,credits\n"
                                    "u-1,cus_1,2026-10-01T02:00:00.5+02:00,7\n")
    (tmp_path / "u.jsonl").write_text(json.dumps({"id": "u-1", "type": "usage.recorded", "customer_id": "cus_1",
                                                  "occurred_at": "2026-10-01T02:00:00.500+02:00", "credits": 7}) + "\n")
    (csv_ev,), _ = read_file(tmp_path / "u.csv")
    (jsonl_ev,), _ = read_file(tmp_path / "u.jsonl")
    assert csv_ev.content_hash == jsonl_ev.content_hash == content_hash(jsonl_ev.event)
    # the hash covers the instant as pydantic writes it: the offset kept, the fraction in full
    assert '"occurred_at":"2026-10-01T02:00:00.500000+02:00"' in _usage_canonical_json(csv_ev.event)
