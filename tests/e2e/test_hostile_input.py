"""Hostile input refused at the door (docs/design.md §8.2): whole files (empty, UTF-16, lines
without end), bulk usage CSV rows, every date and text field of every event type, and the two
databases agreeing; plus the inputs at the edge of the rules that are accepted, with their meaning.

The CSV and whole-file corpus is imported as tests/e2e/test_bad_input.py imports its corpus: on top of
customer acme, each file must be refused naming file, line, field and value, with every table
unchanged (the harness is repeated here: tests do not import one another).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from datetime import date, datetime
from pathlib import Path
from typing import get_args

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from ledger.errors import InvalidInputError
from ledger.event_schemas import AnyEvent
from ledger.events import MAX_LINE_BYTES, iter_file, parse_event, raw_lines, read_jsonl, read_usage_csv
from ledger.services.importing import import_files
from ledger.store.db import make_engine

CUSTOMER = (b'{"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
            b'"customer_id": "acme", "name": "Acme", "currency": "USD"}\n')
OK_USAGE = b'{"id": "ok1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "credits": 1}\n'


def snapshot(engine) -> dict[str, list]:
    """Every row of every table."""
    with Session(engine) as s:
        return {t.name: sorted(map(repr, s.execute(sa.select(t)).all())) for t in SQLModel.metadata.sorted_tables}


def assert_reported(text: str, path, expected: str | tuple[str, ...]) -> None:
    """All fragments appear on one problem line; a leading ":" fragment follows the file's path."""
    fragments = (expected,) if isinstance(expected, str) else expected
    fragments = tuple(f"{path}{f}" if f.startswith(":") else f for f in fragments)
    assert any(all(f in ln for f in fragments) for ln in text.splitlines()), f"expected {fragments} in:\n{text}"


@pytest.fixture
def seeded(sqlite_url, tmp_path, plans_catalog):
    """Books holding customer acme (plans catalog): (engine, catalog, folder)."""
    engine = make_engine(sqlite_url)
    (tmp_path / "customer.jsonl").write_bytes(CUSTOMER)
    with Session(engine) as s:
        import_files(s, plans_catalog, [tmp_path / "customer.jsonl"])
    yield engine, plans_catalog, tmp_path
    engine.dispose()


HEADER = b"event_id,customer_id,occurred_at,credits\n"
ACTIONS = b"event_id,customer_id,occurred_at,action,quantity\n"
OK_ROW = b"u0,acme,2026-01-02T00:00:00Z,1\n"
BIG = b"9" * 4400

# (name, file name, whole file content, expected): the file is written exactly as given.
FILE_CASES = [
    ("CSV count of 4,400 digits", "bad.csv", HEADER + OK_ROW + b"u1,acme,2026-01-02T00:00:00Z," + BIG + b"\n",
     (":3: field 'credits': must be a whole number of at most 19 ASCII digits", "(value: '9999")),
    ("CSV count of 20 digits", "bad.csv", HEADER + b"u1,acme,2026-01-02T00:00:00Z,10000000000000000000\n",
     (":2: field 'credits': must be a whole number of at most 19", "(value: '10000000000000000000')")),
    ("CSV count past 64 bits", "bad.csv", HEADER + b"u1,acme,2026-01-02T00:00:00Z,9223372036854775808\n",
     (":2: field 'credits': Input should be less than or equal to 9223372036854775807", "(value: 9223372036854775808)")),
    ("CSV quantity of 4,400 digits", "bad.csv", ACTIONS + b"u1,acme,2026-01-02T00:00:00Z,EXTRACT_TEXT," + BIG + b"\n",
     ":2: field 'quantity': must be a whole number of at most 19"),
    ("CSV count with a sign", "bad.csv", HEADER + b"u1,acme,2026-01-02T00:00:00Z,+5\n",
     ":2: field 'credits': must be a whole number (value: '+5')"),
    ("CSV count with an exponent", "bad.csv", HEADER + b"u1,acme,2026-01-02T00:00:00Z,1e3\n",
     ":2: field 'credits': must be a whole number (value: '1e3')"),
    ("CSV Unix epoch", "bad.csv", HEADER + b"u1,acme,1767225600,1\n",
     (":2: field 'occurred_at': is not an RFC 3339 timestamp", "(value: '1767225600')")),
    ("CSV year 1", "bad.csv", HEADER + b"u1,acme,0001-01-01T00:00:00Z,1\n",
     (":2: field 'occurred_at': ", "years 2000 through 2099", "(value: '0001-01-01T00:00:00Z')")),
    ("CSV seven fractional digits", "bad.csv", HEADER + b"u1,acme,2026-01-02T00:00:00.1234567Z,1\n",
     ":2: field 'occurred_at': has more than 6 fractional digits"),
    ("CSV NUL in an event id", "bad.csv", HEADER + b'"u\x001",acme,2026-01-02T00:00:00Z,1\n',
     (":2: field 'id': String should match pattern", "(value: 'u\\x001')")),
    ("CSV control character in a customer id", "bad.csv", HEADER + b"u1,ac\x01me,2026-01-02T00:00:00Z,1\n",
     (":2: field 'customer_id': String should match pattern", "(value: 'ac\\x01me')")),
    ("CSV invalid UTF-8", "bad.csv", HEADER + b"u1,acme\xff,2026-01-02T00:00:00Z,1\n", ":2: is not valid UTF-8"),
    ("CSV in UTF-16 with BOM", "bad.csv", (HEADER + OK_ROW).decode().encode("utf-16"),
     ":1: is UTF-16 or UTF-32 (it starts with that byte order mark); save the file as UTF-8"),
    ("CSV line longer than 1 MiB", "bad.csv", HEADER + OK_ROW + b"u1,acme,2026-01-02T00:00:00Z," + b"1" * MAX_LINE_BYTES + b"\n",
     ":3: is longer than 1,048,576 bytes (1 MiB)"),
    ("empty CSV", "bad.csv", b"", ":1: is empty; expected a header line"),
    ("empty JSONL", "bad.jsonl", b"", ":1: is empty; expected one JSON event per line"),
    ("JSONL of blank lines only", "bad.jsonl", b"\n  \r\n\n", ":1: is empty; expected one JSON event per line"),
    ("JSONL in UTF-16 with BOM", "bad.jsonl", OK_USAGE.decode().encode("utf-16"), ":1: is UTF-16 or UTF-32"),
    ("JSONL in UTF-16 big-endian with BOM", "bad.jsonl", b"\xfe\xff" + OK_USAGE.decode().encode("utf-16-be"),
     ":1: is UTF-16 or UTF-32"),
    ("JSONL line longer than 1 MiB", "bad.jsonl",
     OK_USAGE + OK_USAGE.replace(b'"ok1"', b'"ok2"').replace(b"{", b"{" + b" " * MAX_LINE_BYTES, 1),
     ":2: is longer than 1,048,576 bytes (1 MiB), the longest line an event file may have; the rest of the file was not read"),
    ("JSONL without any line end, past 1 MiB", "bad.jsonl", b" " * (3 * MAX_LINE_BYTES), ":1: is longer than 1,048,576 bytes"),
    ("JSONL event with sub-microsecond twin", "bad.jsonl",
     OK_USAGE.replace(b"2026-01-02T00:00:00Z", b"2026-01-02T00:00:00.1234567Z")
     + OK_USAGE.replace(b"2026-01-02T00:00:00Z", b"2026-01-02T00:00:00.1234568Z"),
     ":2: field 'occurred_at': has more than 6 fractional digits"),
]


@pytest.mark.parametrize("name,filename,content,expected", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_hostile_files_are_refused_and_nothing_is_posted(seeded, name, filename, content, expected):
    """Each file is refused naming file and line (and field and value where there is one); every
    table is as it was."""
    engine, catalog, tmp = seeded
    path = tmp / filename
    path.write_bytes(content)
    before = snapshot(engine)
    with Session(engine) as s, pytest.raises(InvalidInputError) as err:
        import_files(s, catalog, [path])
    assert_reported(str(err.value), path, expected)
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- lines without end
def _stream(total: int | None, byte: bytes = b"\0"):
    """A ``read`` of ``total`` bytes of ``byte`` without a line end (None: endless, /dev/zero)."""
    sent = 0

    def read(n: int) -> bytes:
        nonlocal sent
        if total is not None and sent >= total:
            return b""
        sent += n
        return byte * n

    return read, lambda: sent


def test_an_endless_line_stops_the_reader_after_1_mib_in_bounded_memory():
    """/dev/zero-like input: the reader yields one 'too long' marker after reading little more than
    1 MiB, and never holds more than a few MiB."""
    read, sent = _stream(None)
    tracemalloc.start()
    got = list(raw_lines(read))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == [None]
    assert sent() <= MAX_LINE_BYTES + (1 << 18)
    assert peak < 8 * MAX_LINE_BYTES


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_is_one_problem_not_a_memory_error():
    problems = [str(p) for _, probs in iter_file("/dev/zero") for p in probs]
    assert problems == ["/dev/zero:1: is longer than 1,048,576 bytes (1 MiB), the longest line an event file may "
                        "have; the rest of the file was not read"]


def test_a_line_of_exactly_1_mib_is_read_and_one_byte_more_is_refused():
    body = b'{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "credits": 1}'
    fits = body[:-1] + b" " * (MAX_LINE_BYTES - len(body)) + b"}"
    assert len(fits) == MAX_LINE_BYTES
    events, problems = read_jsonl("f.jsonl", fits + b"\n" + fits)
    assert len(events) == 2 and problems == []
    events, problems = read_jsonl("f.jsonl", fits + b" \n")
    assert events == [] and [(p.line, p.field) for p in problems] == [(1, "")]
    assert "is longer than 1,048,576 bytes" in problems[0].message


def test_files_are_read_from_disk_in_bounded_chunks(tmp_path):
    """read_jsonl and read_usage_csv on a path stream the file: a 64 MiB line is refused while
    memory stays a few MiB (the file is never read whole)."""
    path = tmp_path / "long.csv"
    with path.open("wb") as fh:
        fh.write(HEADER)
        for _ in range(64):
            fh.write(b"7" * (1 << 20))
    for reader in (read_jsonl, read_usage_csv, lambda p: [p for _, probs in iter_file(p) for p in probs]):
        tracemalloc.start()
        out = reader(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        problems = out[1] if isinstance(out, tuple) else out
        assert [p.line for p in problems][-1] == 2 and "is longer than" in problems[-1].message
        assert peak < 8 * MAX_LINE_BYTES


# --------------------------------------------------------------------------- every field of every event type
BASES = {
    "customer.created": {"customer_id": "zed", "name": "Zed", "currency": "USD", "tax_rate": "0.1", "address": ["1 Main St"],
                         "email": "a@example.com", "locale": "en_US", "country": "US", "vat_id": "DE123456789"},
    "subscription.started": {"customer_id": "acme", "plan": "starter", "start_date": "2026-01-05"},
    "subscription.cancelled": {"customer_id": "acme", "end_date": "2026-01-31"},
    "commitment.purchased": {"customer_id": "acme", "commitment_id": "com-1", "amount": "10.00", "credits": 10,
                             "term_start": "2026-01-01", "term_end": "2026-12-31", "renews": "com-0", "overage_price": "0.1",
                             "breakage": {"method": "proportional", "expected_rate": "0.1"}},
    "topup.purchased": {"customer_id": "acme", "topup_id": "top-1", "credits": 5, "amount": "1.00",
                        "expires_at": "2027-01-01T00:00:00Z"},
    "credits.granted": {"customer_id": "acme", "grant_id": "g-1", "credits": 5, "expires_at": "2027-01-01T00:00:00Z",
                        "reason": "trial"},
    "usage.recorded": {"customer_id": "acme", "action": "EXTRACT_TEXT", "quantity": 2},
    "payment.received": {"customer_id": "acme", "amount": "5.00", "invoice_number": "INV-2026-000001"},
    "refund.issued": {"customer_id": "acme", "grant_ref": "top-1", "credits": 1, "reason": "unhappy"},
    "breakage.estimate_changed": {"customer_id": "acme", "grant_ref": "com-1", "expected_rate": "0.2"},
    "guarantee.enrolled": {"customer_id": "acme", "legacy_monthly_amount": "10.00", "start_month": "2026-01"},
    "event.voided": {"target_event_id": "t1", "reason": "typo"},
    "usage.approved": {"customer_id": "acme", "target_event_id": "u1", "credits": 5},
    "usage.rejected": {"customer_id": "acme", "target_event_id": "u1", "reason": "runaway job"},
}


def _event(type_: str, **fields) -> str:
    return json.dumps({"id": "e1", "type": type_, "occurred_at": "2026-01-02T00:00:00Z", **BASES[type_], **fields})


def _fields(kinds: tuple[type, ...]) -> list[tuple[str, str]]:
    """(event type, field) for every field of every event type whose annotation involves ``kinds``."""
    out = []
    for model in get_args(get_args(AnyEvent)[0]):
        type_ = get_args(model.model_fields["type"].annotation)[0]
        for name, info in model.model_fields.items():
            args = {info.annotation, *get_args(info.annotation)} | {a for x in get_args(info.annotation) for a in get_args(x)}
            if name != "type" and any(a in kinds for a in args):
                out.append((type_, name))
    return out


def test_every_base_event_is_valid():
    for type_ in BASES:
        ev, problems = parse_event(_event(type_), "f.jsonl", 1)
        assert problems == [] and ev is not None, (type_, problems)


DATE_FIELDS = _fields((date, datetime)) + [("guarantee.enrolled", "start_month")]


@pytest.mark.parametrize("type_,field", DATE_FIELDS, ids=[f"{t}.{f}" for t, f in DATE_FIELDS])
@pytest.mark.parametrize("value", ["0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31", "1767225600"])
def test_every_date_and_instant_field_has_the_bounds_and_the_format(type_, field, value):
    """Every date or instant field of every event type refuses a year before 2000 or after 2099,
    and a Unix epoch, naming the field and the value."""
    written = value
    if field in ("occurred_at", "expires_at") and value[4] == "-":
        written = value + "T23:59:59-12:00"
    elif field == "start_month" and value[4] == "-":
        written = value[:7]
    ev, problems = parse_event(_event(type_, **{field: written}), "f.jsonl", 7)
    assert ev is None and [(p.line, p.field, p.value) for p in problems] == [(7, field, written)], problems


TEXT_FIELDS = _fields((str,)) + [("commitment.purchased", "breakage")]


@pytest.mark.parametrize("type_,field", TEXT_FIELDS, ids=[f"{t}.{f}" for t, f in TEXT_FIELDS])
@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\x9f"])
def test_every_text_field_of_every_event_type_refuses_control_characters(type_, field, char):
    """C0 (NUL, tab, newline included), DEL and C1 are refused in every text field, in any
    position, naming the field."""
    base = BASES[type_].get(field, "x")
    if isinstance(base, list):
        value, where = [base[0] + char], f"{field}.0"
    elif isinstance(base, dict):
        value, where = {**base, "expected_rate": "0.1" + char}, f"{field}.expected_rate"
    else:
        value, where = (str(base) if field != "id" else "e1") + char, field
    ev, problems = parse_event(_event(type_, **{field: value}), "f.jsonl", 3)
    assert ev is None and where in [p.field for p in problems], problems


# --------------------------------------------------------------------------- accepted, with the documented meaning
def test_inputs_at_the_edge_of_the_rules_are_accepted_with_their_documented_meaning():
    """Lower-case t and z (RFC 3339 allows them) hash as upper case; the written year bounds the
    instant (2099 at -12:00 is 2100 UTC); 6 fractional digits are kept; ids may hold / : @ + .;
    a name of 200 characters of any script is one line."""
    def one(**fields) -> dict:
        ev, problems = parse_event(json.dumps({"id": "x1", "type": "usage.recorded", "customer_id": "acme",
                                               "occurred_at": "2026-01-02T00:00:00Z", "credits": 1, **fields}), "f", 1)
        assert problems == [], problems
        return ev

    assert one(occurred_at="2026-01-02t00:00:00z").content_hash == one().content_hash
    assert one(occurred_at="2099-12-31T23:59:59-12:00").event.occurred_at.year == 2099
    assert one(occurred_at="2000-01-01T00:00:00+14:00").event.occurred_at.isoformat() == "2000-01-01T00:00:00+14:00"
    assert one(occurred_at="2026-01-02T00:00:00.123456Z").event.occurred_at.microsecond == 123456
    assert one(id="org/acme:evt@1+a.b_c-d").id == "org/acme:evt@1+a.b_c-d"
    name = "Société Générale — 株式会社 " * 8
    ev, problems = parse_event(json.dumps({"id": "c2", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z",
                                           "customer_id": "zed", "name": name[:200], "currency": "USD"}), "f", 1)
    assert problems == [] and ev.event.name == name[:200]


def test_a_csv_with_only_its_header_is_nothing_to_import(seeded):
    """A header without rows is a well-formed file of zero usage rows: accepted, nothing posted
    (an empty file, CSV or JSONL, is refused: it is not a file of events)."""
    engine, catalog, tmp = seeded
    (tmp / "none.csv").write_bytes(HEADER)
    before = snapshot(engine)
    with Session(engine) as s:
        summary = import_files(s, catalog, [tmp / "none.csv"])
    assert summary.posted == 0 and summary.duplicates == 0
    after = snapshot(engine)
    assert {k: v for k, v in after.items() if k != "import_batch"} == {k: v for k, v in before.items() if k != "import_batch"}
    assert len(after["import_batch"]) == len(before["import_batch"]) + 1  # the import is recorded, with 0 events


def test_a_utf8_bom_is_refused_and_the_same_file_without_it_is_read():
    events, problems = read_jsonl("f.jsonl", b"\xef\xbb\xbf" + OK_USAGE)
    assert [(p.line, p.message.split(";")[0]) for p in problems] == [(1, "starts with a UTF-8 byte order mark (BOM)")]
    assert read_jsonl("f.jsonl", OK_USAGE)[1] == []


@pytest.mark.parametrize("at", [
    "1767225600", "2026-01-02 00:00:00Z", "0001-01-01T00:00:00Z", "2026-01-02T00:00:00.1234567Z", "2100-01-01T00:00:00Z",
    "2026-01-02T00:00:00Z", "2026-01-02t00:00:00z", "2026-01-02T01:00:00.5+01:00", "2099-12-31T23:59:59.999999-12:00",
    "2000-01-01T00:00:00+14:00", "2026-02-30T00:00:00Z"])
def test_csv_and_jsonl_read_the_same_instants_alike(at):
    """A CSV row (its fast path when it is plain, the whole schema otherwise) and its JSONL twin
    give the same event and hash, or the same problem."""
    rows = HEADER + f"ok1,acme,{at},1\n".encode() + HEADER[:0] + f'"ok1",acme,{at},1\n'.encode()
    csv_events, csv_problems = read_usage_csv("u.csv", rows)
    jsonl_events, jsonl_problems = read_jsonl("u.jsonl", OK_USAGE.replace(b"2026-01-02T00:00:00Z", at.encode()))
    assert [(p.field, p.value, p.message) for p in csv_problems] == \
        [(p.field, p.value, p.message) for p in jsonl_problems] * 2, at
    assert [(e.event, e.content_hash) for e in csv_events] == [(e.event, e.content_hash) for e in jsonl_events] * 2


# --------------------------------------------------------------------------- both databases refuse at input
@pytest.mark.parametrize("name,text", [
    ("NUL in a customer name", "Ze\\u0000d"),
    ("U+0001 in a customer name", "Zed\\u0001"),
    ("C1 in a customer name", "Zed\\u0085"),
])
def test_both_databases_refuse_control_characters_at_input(db_url, tmp_path, plans_catalog, name, text):
    """NUL is stored by SQLite and refused by PostgreSQL (DataError): both now refuse it, and the
    other control characters, at input with the same message, and nothing is written."""
    engine = make_engine(db_url)
    path = tmp_path / "zed.jsonl"
    path.write_bytes(CUSTOMER.replace(b'"Acme"', f'"{text}"'.encode()))
    before = snapshot(engine)
    with Session(engine) as s, pytest.raises(InvalidInputError) as err:
        import_files(s, plans_catalog, [path])
    assert f"{path}:1: field 'name': must not contain control characters" in str(err.value)
    assert snapshot(engine) == before
    engine.dispose()


def test_an_empty_jsonl_and_an_empty_csv_exit_1_alike(tmp_path, sqlite_url):
    """`ledger import` of an empty file, JSONL or CSV: exit 1, one line naming each file, no traceback."""
    from conftest import PLANS_CATALOG

    (tmp_path / "ledger.toml").write_text(PLANS_CATALOG, encoding="utf-8")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.csv").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "ledger", "--database-url", sqlite_url, "--catalog", "ledger.toml",
                        "import", "empty.jsonl", "empty.csv"], check=False, capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "empty.jsonl:1: is empty" in r.stderr and "empty.csv:1: is empty" in r.stderr, r.stderr


def test_parse_decimal_takes_the_whole_string_only():
    from ledger.core.money import parse_decimal

    for bad in ("20\n", "0.1\n", "\n20", "20 ", "1" * 41, "0.1\r", "２０"):
        with pytest.raises(ValueError):
            parse_decimal(bad)
    assert str(parse_decimal("1" * 40)) == "1" * 40


def test_raw_lines_splits_like_a_file():
    data = b"a\nbb\r\n\nccc"
    assert list(raw_lines(io.BytesIO(data).read)) == [b"a", b"bb\r", b"", b"ccc"]
    assert list(raw_lines(io.BytesIO(b"").read)) == []
    assert list(raw_lines(io.BytesIO(b"x\n").read)) == [b"x"]


@pytest.mark.parametrize("old,new,key", [
    ('name = "Example AI, Inc."', 'name = "Example\\u0001 AI"', "company.name"),
    ('address = ["1 Market St", "San Francisco, CA 94105", "USA"]', 'address = ["1 Main St\\nSpringfield"]',
     "company.address.0"),
    ('name = "Example AI, Inc."', 'name = "Example AI"\ntax_id = "12-3456789\\u0000"', "company.tax_id"),
    ('name = "Starter"', 'name = "Star\\u0085ter"', "plans.starter.name"),
])
def test_catalog_text_printed_on_documents_refuses_control_characters(tmp_path, old, new, key):
    """The seller's name, address, email, tax id and plan names go into every invoice and its
    Factur-X XML: the same control-character rule as the event files' text fields."""
    from conftest import PLANS_CATALOG

    from ledger.catalog import load_catalog
    from ledger.errors import CatalogError

    path = tmp_path / "ledger.toml"
    assert old in PLANS_CATALOG
    path.write_text(PLANS_CATALOG.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(path, required=True)
    assert f"key '{key}' must not contain control characters" in str(err.value), str(err.value)


def test_json_text_of_one_event_is_bounded_too():
    """The API's JSON text of one event follows the file's line limit, and refuses a key twice."""
    ev, problems = parse_event(" " * MAX_LINE_BYTES + OK_USAGE.decode(), "api", 1)
    assert ev is None and "is longer than 1,048,576 characters" in problems[0].message
    ev, problems = parse_event(OK_USAGE.decode().replace('"credits": 1', '"credits": 1, "credits": 2'), "api", 1)
    assert ev is None and [(p.field, p.value) for p in problems] == [("credits", [1, 2])]


@pytest.mark.parametrize("text", [
    '{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
    '"credits" :1, "credits"\t: 500}',
    '{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
    '"credits": 1, "cr\\u0065dits": 500}',
    '{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
    '"credits": 1, "credits": 1}',
    '{"id": "x1", "type": "commitment.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", '
    '"commitment_id": "c", "amount": "1.00", "credits": 1, "term_start": "2026-01-01", "term_end": "2026-01-31", '
    '"breakage": {"method": "proportional", "expected_rate": "0.1", "expected_rate": "0.2"}}',
], ids=["spaces before the colon", "escaped key", "same value twice", "nested"])
def test_a_key_given_twice_is_refused_however_it_is_written(text):
    ev, problems = parse_event(text, "f.jsonl", 4)
    assert ev is None and any(p.line == 4 and "more than once" in p.message for p in problems), problems
