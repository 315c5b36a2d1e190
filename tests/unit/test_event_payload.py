"""The canonical JSON a parsed business event keeps (``SourcedEvent.payload``) is the one its
content hash is taken of, and the one `canonical_json` gives; the checks' field lookup by model."""

from __future__ import annotations

import hashlib
import json

from memory_store import MemoryStore, catalog  # noqa: F401 (catalog: a fixture)

from ledger.core.checks import GRANT_ID_FIELDS, declared
from ledger.core.posting import Posting, apply_order
from ledger.event_schemas import canonical_json, content_hash, parse_event
from ledger.events import CommitmentPurchased, CustomerCreated, PaymentReceived, SourcedEvent, TopupPurchased

LINES = [
    {"id": "c1", "type": "customer.created", "occurred_at": "2026-10-01T00:00:00Z", "customer_id": "cus_1",
     "name": "Zoë Ünïcode \u2028 «quoted»", "currency": "EUR", "tax_rate": "0.19", "address": ["Straße 1", "Berlin"]},
    {"id": "p1", "type": "commitment.purchased", "occurred_at": "2026-10-01T00:00:00+02:00", "customer_id": "cus_1",
     "commitment_id": "com-1", "amount": "100.00", "credits": 2000, "term_start": "2026-10-01",
     "term_end": "2027-09-30", "rollover": {"percent": 25, "max_periods": 1},
     "breakage": {"method": "proportional", "expected_rate": "0.03"}},
    {"id": "t1", "type": "topup.purchased", "occurred_at": "2026-10-02T10:00:00.123456Z", "customer_id": "cus_1",
     "topup_id": "top-1", "credits": 1000, "amount": "20.00"},
    {"id": "g1", "type": "credits.granted", "occurred_at": "2026-10-02T10:00:00Z", "customer_id": "cus_1",
     "grant_id": "promo-1", "credits": 500, "reason": "welcome"},
    {"id": "pay1", "type": "payment.received", "occurred_at": "2026-10-03T00:00:00Z", "customer_id": "cus_1",
     "amount": "119.00", "invoice_number": "INV-2026-000001"},
    {"id": "v1", "type": "event.voided", "occurred_at": "2026-10-04T00:00:00Z", "target_event_id": "g1",
     "reason": "mistake"},
]


def test_a_business_event_keeps_the_json_its_hash_is_taken_of():
    for n, obj in enumerate(LINES, start=1):
        se, problems = parse_event(json.dumps(obj, ensure_ascii=False), "in.jsonl", n)
        assert se is not None, problems
        assert se.payload == canonical_json(se.event)
        assert se.content_hash == content_hash(se.event) == hashlib.sha256(se.payload.encode()).hexdigest()


def test_a_usage_event_keeps_no_json_and_hashes_as_before():
    line = {"id": "u1", "type": "usage.recorded", "occurred_at": "2026-10-05T00:00:00Z", "customer_id": "cus_1",
            "credits": 7}
    se, problems = parse_event(json.dumps(line), "in.jsonl", 1)
    assert se is not None, problems
    assert se.payload is None
    assert se.content_hash == hashlib.sha256(canonical_json(se.event).encode()).hexdigest()


def test_the_posting_stores_the_kept_json_as_the_event_payload(catalog):
    lines = [LINES[0], *LINES[2:5]]  # (the commitment is dated before the customer)
    parsed = [parse_event(json.dumps(obj, ensure_ascii=False), "in.jsonl", n)[0] for n, obj in enumerate(lines, 1)]
    p = Posting(catalog, MemoryStore(), closed=())
    for se in sorted(parsed, key=apply_order):
        p.apply(se)
    kept = {se.id: se.payload for se in parsed}
    assert {row.id: row.payload for row in p.event_rows} == kept
    # the very text parse_event kept and hashed: not serialised a second time
    assert all(row.payload is kept[row.id] for row in p.event_rows)


def test_the_kept_json_takes_no_part_in_equality():
    se, _ = parse_event(json.dumps(LINES[3]), "in.jsonl", 4)
    assert se is not None
    assert se == SourcedEvent(se.event, se.file, se.line, se.content_hash)


def test_declared_names_only_the_fields_of_the_model():
    assert declared(CommitmentPurchased, GRANT_ID_FIELDS) == ("commitment_id",)
    assert declared(TopupPurchased, GRANT_ID_FIELDS) == ("topup_id",)
    assert declared(PaymentReceived, GRANT_ID_FIELDS) == ()
    assert declared(CustomerCreated, ("amount", "legacy_monthly_amount")) == ()
    assert declared(PaymentReceived, ("amount", "legacy_monthly_amount")) == ("amount",)
