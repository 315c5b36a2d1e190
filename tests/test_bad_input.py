"""A corpus of bad inputs: each is refused with file, line, field and value, and nothing is posted.

Every case is imported on top of a valid customer; the expected text must appear in the error.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ledger.catalog import load_catalog
from ledger.db import make_engine
from ledger.errors import InvalidInputError
from ledger.models import Event, JournalEntry
from ledger.service import import_files

CUSTOMER = (b'{"id": "c1", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
            b'"customer_id": "acme", "name": "Acme", "currency": "USD"}\n')
OK_USAGE = b'{"id": "ok1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "credits": 1}\n'
TOPUP = '{{"id": "t9", "type": "topup.purchased", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "topup_id": "top-9", {}}}'


def line(**fields) -> bytes:
    import json

    base = {"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", "customer_id": "acme", "credits": 1}
    base.update(fields)
    return (json.dumps({k: v for k, v in base.items() if v is not ...}) + "\n").encode()


CASES = [
    ("malformed JSON", b'{"id": "x1", "type": \n', ":2: is not valid JSON"),
    ("truncated line", b'{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00', ":2: is not valid JSON"),
    ("invalid UTF-8", b'{"id": "x\xff1", "type": "usage.recorded"}\n', ":2: is not valid UTF-8"),
    ("BOM", b"\xef\xbb\xbf" + OK_USAGE, ":1: starts with a UTF-8 byte order mark"),
    ("not an object", b"[1, 2]\n", ":2: Input should be an object"),
    ("missing type", b'{"id": "x1"}\n', ":2: field 'type': is missing"),
    ("unknown event type", line(type="usage.deleted"), "field 'type': unknown event type"),
    ("missing field", line(customer_id=...), "field 'customer_id': is missing"),
    ("extra field", line(colour="blue"), "field 'colour': is not a field of this event type (value: 'blue')"),
    ("naive timestamp", line(occurred_at="2026-01-02T00:00:00"), "field 'occurred_at': needs an RFC 3339 offset"),
    ("date that does not exist", line(occurred_at="2026-02-30T00:00:00Z"), "field 'occurred_at'"),
    ("unknown customer", line(customer_id="nobody"), "field 'customer_id': unknown customer (no customer.created event for it) (value: 'nobody')"),
    ("zero credits", line(credits=0), "field 'credits': Input should be greater than 0"),
    ("negative credits", line(credits=-5), "field 'credits': Input should be greater than 0 (value: -5)"),
    ("credits as a string", line(credits="5"), "field 'credits': Input should be a valid integer"),
    ("number past 64 bits", line(credits=2**64), "field 'credits': Input should be less than or equal to 9223372036854775807"),
    ("usage with neither credits nor action", line(credits=...), "needs either 'credits' or 'action' + 'quantity'"),
    ("unknown action", line(credits=..., action="TRANSLATE", quantity=2), "field 'action': unknown action"),
    ("amount as a JSON number", TOPUP.format('"credits": 5, "amount": 20.0').encode() + b"\n",
     "field 'amount': must be a string (amounts are decimal strings"),
    ("more decimals than the currency", TOPUP.format('"credits": 5, "amount": "20.001"').encode() + b"\n",
     "field 'amount': has 3 decimals; USD allows 2 (value: '20.001')"),
    ("amount in exponent notation", TOPUP.format('"credits": 5, "amount": "2e1"').encode() + b"\n",
     "field 'amount': must be a decimal string"),
    ("zero amount", TOPUP.format('"credits": 5, "amount": "0.00"').encode() + b"\n", "field 'amount': must be positive"),
    ("unknown pack", TOPUP.format('"pack": "pack_9"').encode() + b"\n", "field 'pack': unknown top-up pack"),
    ("pack and credits both", TOPUP.format('"pack": "pack_1000", "credits": 5').encode() + b"\n", "give either 'pack'"),
    ("expiry before purchase", TOPUP.format('"credits": 5, "amount": "1.00", "expires_at": "2026-01-01T00:00:00Z"').encode() + b"\n",
     "field 'expires_at': must be after occurred_at"),
    ("currency that does not exist", b'{"id": "c2", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
     b'"customer_id": "zed", "name": "Zed", "currency": "ABC"}\n', "field 'currency': is not an ISO 4217 currency (value: 'ABC')"),
    ("tax rate out of range", b'{"id": "c2", "type": "customer.created", "occurred_at": "2026-01-01T00:00:00Z", '
     b'"customer_id": "zed", "name": "Zed", "currency": "USD", "tax_rate": "1.5"}\n', "field 'tax_rate': must be between 0 and 1"),
    ("customer created twice", CUSTOMER.replace(b'"c1"', b'"c1b"'), "field 'customer_id': customer already exists"),
    ("duplicate id with different content", OK_USAGE + OK_USAGE.replace(b'"credits": 1', b'"credits": 2'),
     ":3: field 'id': conflicts with"),
    ("commitment term ends before it starts",
     b'{"id": "p1", "type": "commitment.purchased", "occurred_at": "2026-01-01T00:00:00Z", "customer_id": "acme", '
     b'"commitment_id": "com-1", "amount": "10.00", "credits": 10, "term_start": "2026-03-01", "term_end": "2026-02-01"}\n',
     "term_end 2026-02-01 is before term_start 2026-03-01"),
    ("grant id reused", TOPUP.format('"credits": 5, "amount": "1.00"').encode() + b"\n"
     + TOPUP.format('"credits": 5, "amount": "1.00"').replace('"t9"', '"t10"').encode() + b"\n",
     "field 'topup_id': is used twice in this batch"),
    ("payment for someone else's invoice", b'{"id": "pay1", "type": "payment.received", "occurred_at": "2026-01-03T00:00:00Z", '
     b'"customer_id": "acme", "amount": "5.00", "invoice_number": "INV-2026-000099"}\n',
     "field 'invoice_number': is not an invoice of customer acme"),
]


@pytest.fixture
def seeded(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    catalog = load_catalog(None)
    (tmp_path / "customer.jsonl").write_bytes(CUSTOMER)
    with Session(engine) as s:
        import_files(s, catalog, [tmp_path / "customer.jsonl"])
    yield engine, catalog, tmp_path
    engine.dispose()


@pytest.mark.parametrize("name,content,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_is_posted(seeded, name, content, expected):
    """Each bad input names file, line and field; a valid event in the same file is not posted either."""
    engine, catalog, tmp = seeded
    path = tmp / "bad.jsonl"
    path.write_bytes(OK_USAGE.replace(b'"ok1"', b'"ok0"') + content if not content.startswith(b"\xef\xbb\xbf") else content)
    with Session(engine) as s:
        entries_before = s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one()
        with pytest.raises(InvalidInputError) as err:
            import_files(s, catalog, [path])
    text = str(err.value)
    assert str(path) in text
    assert expected in text, text
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == entries_before
        assert s.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one() == 1  # only the customer


def test_crlf_line_endings_are_accepted(seeded):
    """CRLF files import normally."""
    engine, catalog, tmp = seeded
    path = tmp / "crlf.jsonl"
    path.write_bytes(OK_USAGE.replace(b"\n", b"\r\n"))
    with Session(engine) as s:
        summary = import_files(s, catalog, [path])
    assert summary.quarantined == 1  # valid, but acme holds no credits: hard cap


def test_the_corpus_has_at_least_30_cases():
    """The issue asks for a corpus of at least 30 bad inputs."""
    assert len(CASES) >= 30
