"""A corpus of bad inputs: each is refused with file, line, field and value, and nothing is posted.

Every case is imported on top of a valid customer (with the plans catalog of docs/design.md §8.3); the
expected text must appear in the error: a string, or a tuple of fragments that must all appear on
one problem line. A fragment starting with ":" must follow the file's path (it gives the line).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from ledger.store.db import make_engine
from ledger.errors import InvalidInputError
from ledger.store.models import Event, JournalEntry
from ledger.services.importing import import_files

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


# --------------------------------------------------------------------------- the lifecycle events
def ev(id: str, type: str, at: str, **fields) -> dict:
    """One event of customer acme (event.voided has no customer)."""
    out = {"id": id, "type": type, "occurred_at": at}
    if type not in ("event.voided", "customer.created"):
        out["customer_id"] = "acme"
    out.update(fields)
    return {k: v for k, v in out.items() if v is not ...}


def jl(*events: dict) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def customer(cid: str, currency: str = "USD", tax_rate: str = "0", eid: str | None = None) -> dict:
    return ev(eid or f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=cid.title(),
              currency=currency, tax_rate=tax_rate)


SUB = ev("s1", "subscription.started", "2026-01-05T00:00:00Z", plan="starter", start_date="2026-01-05")
TOP = ev("t1", "topup.purchased", "2026-01-03T00:00:00Z", topup_id="top-1", credits=10, amount="10.00")
PROMO = ev("g1", "credits.granted", "2026-01-03T00:00:00Z", grant_id="promo-1", credits=10)
TERM = {"commitment_id": "com-1", "amount": "120.00", "credits": 1200, "term_start": "2026-01-01", "term_end": "2026-12-31"}
PROPORTIONAL = {"method": "proportional", "expected_rate": "0.1"}


def com(id: str = "p1", at: str = "2026-01-02T00:00:00Z", **fields) -> dict:
    return ev(id, "commitment.purchased", at, **{**TERM, **fields})


def cancel(id: str, at: str, end_date: str) -> dict:
    return ev(id, "subscription.cancelled", at, end_date=end_date)


def refund(at: str = "2026-01-05T00:00:00Z", grant_ref: str = "top-1", **fields) -> dict:
    return ev("r1", "refund.issued", at, grant_ref=grant_ref, **fields)


def estimate(at: str = "2026-01-05T00:00:00Z", grant_ref: str = "com-1", rate: object = "0.2") -> dict:
    return ev("b1", "breakage.estimate_changed", at, grant_ref=grant_ref, expected_rate=rate)


def void(id: str, at: str, target: str, **fields) -> dict:
    return ev(id, "event.voided", at, **{"target_event_id": target, "reason": "entered in error", **fields})


def usage(id: str, at: str, credits: int) -> dict:
    return ev(id, "usage.recorded", at, credits=credits)


VOIDABLE = "(voidable: commitment.purchased, topup.purchased, credits.granted, payment.received, usage.recorded)"

# Line 1 of every bad file is a valid usage event; the lines below start at line 2.
LIFECYCLE_CASES = [
    # subscription.started / subscription.cancelled
    ("unknown plan", jl(ev("s1", "subscription.started", "2026-01-05T00:00:00Z", plan="enterprise", start_date="2026-01-05")),
     ":2: field 'plan': unknown plan (catalog: starter, professional) (value: 'enterprise')"),
    ("plan priced in another currency than the customer's", jl(customer("euro", "EUR"), {**SUB, "customer_id": "euro"}),
     ":3: field 'plan': is priced in USD; customer euro pays in EUR (value: 'starter')"),
    ("subscription without a plan", jl(ev("s1", "subscription.started", "2026-01-05T00:00:00Z", start_date="2026-01-05")),
     ":2: field 'plan': is missing"),
    ("start_date that does not exist", jl({**SUB, "start_date": "2026-02-30"}),
     (":2: field 'start_date': Input should be a valid date", "(value: '2026-02-30')")),
    ("subscription starting before the customer was created", jl({**SUB, "start_date": "2025-12-01"}),
     (":2: field 'start_date': ", "(value: '2025-12-01')")),
    ("a second subscription while one runs",
     jl(SUB, ev("s2", "subscription.started", "2026-01-06T00:00:00Z", plan="professional", start_date="2026-02-01")),
     (":3: field 'start_date': customer acme already has subscription s1 (starter) running then; cancel it first "
      "(value: '2026-02-01')")),
    ("cancel with no subscription", jl(cancel("x1", "2026-01-10T00:00:00Z", "2026-01-31")),
     ":2: field 'customer_id': cannot cancel: there is no subscription (value: 'acme')"),
    ("cancel of a cancelled subscription (cancelled twice)",
     jl(SUB, cancel("x1", "2026-01-10T00:00:00Z", "2026-01-31"), cancel("x2", "2026-01-11T00:00:00Z", "2026-02-28")),
     ":4: field 'customer_id': cannot cancel: subscription s1 was already cancelled (end_date 2026-01-31) (value: 'acme')"),
    ("cancel of another customer's subscription",
     jl(customer("other"), {**SUB, "customer_id": "other"}, cancel("x1", "2026-01-10T00:00:00Z", "2026-01-31")),
     ":4: field 'customer_id': cannot cancel: there is no subscription (value: 'acme')"),
    ("subscription ending before it starts", jl(SUB, cancel("x1", "2026-01-10T00:00:00Z", "2026-01-04")),
     ":3: field 'end_date': is before the subscription's start_date 2026-01-05 (value: '2026-01-04')"),
    # refund.issued
    ("refund of an unknown grant", jl(refund(grant_ref="top-404")),
     ":2: field 'grant_ref': unknown grant of customer acme (value: 'top-404')"),
    ("refund of another customer's grant", jl(customer("other"), {**TOP, "customer_id": "other"}, refund()),
     ":4: field 'grant_ref': unknown grant of customer acme (value: 'top-1')"),
    ("refund beyond the unused credits without concession", jl(TOP, refund(credits=11)),
     (":3: field 'credits': grant top-1 has only 10 unused credits; refunding more needs \"concession\": true "
      "(posted to 4910 Refunds and concessions) (value: 11)")),
    ("concession beyond the credits the grant ever had", jl(TOP, refund(credits=11, concession=True)),
     (":3: field 'credits': ", "(value: 11)")),
    ("concession credits past 64 bits", jl(TOP, refund(credits=2**63 - 1, concession=True)),
     (":3: field 'credits': ", "(value: 9223372036854775807)")),
    ("refund of a promotional grant", jl(PROMO, refund(grant_ref="promo-1")),
     ":3: field 'grant_ref': is a promotional (zero cost) grant: there is no money to refund (value: 'promo-1')"),
    ("refund of a proportional-breakage grant", jl(com(breakage=PROPORTIONAL), refund(grant_ref="com-1")),
     ":3: field 'grant_ref': refunds of proportional-breakage grants are not supported by this version (value: 'com-1')"),
    ("refund of a grant with nothing unused", jl(TOP, usage("u5", "2026-01-04T00:00:00Z", 10), refund()),
     (":4: field 'grant_ref': ", "no unused credits", "(value: 'top-1')")),
    ("refund of a voided grant", jl(TOP, void("v1", "2026-01-04T00:00:00Z", "t1"), refund()),
     (":4: field 'grant_ref': ", "voided", "(value: 'top-1')")),
    ("refund of zero credits", jl(TOP, refund(credits=0)), ":3: field 'credits': Input should be greater than 0 (value: 0)"),
    ("concession as a string", jl(TOP, refund(credits=11, concession="yes")),
     ":3: field 'concession': Input should be a valid boolean (value: 'yes')"),
    # breakage.estimate_changed
    ("estimate change of an unknown grant", jl(estimate(grant_ref="com-404")),
     ":2: field 'grant_ref': unknown grant of customer acme (value: 'com-404')"),
    ("estimate change on an at_expiry grant", jl(TOP, estimate(grant_ref="top-1")),
     ":3: field 'grant_ref': uses the at_expiry breakage method; only proportional grants have an estimate (value: 'top-1')"),
    ("estimate change after the grant expired",
     jl(com(term_end="2026-01-31", breakage=PROPORTIONAL), estimate(at="2026-02-05T00:00:00Z")),
     ":3: field 'grant_ref': has already expired; its breakage was trued up at expiry (value: 'com-1')"),
    ("estimate change on a voided grant",
     jl(com(term_start="2026-01-03", breakage=PROPORTIONAL), void("v1", "2026-01-04T00:00:00Z", "p1"), estimate()),
     (":4: field 'grant_ref': ", "voided", "(value: 'com-1')")),
    ("estimate of 1", jl(estimate(rate="1")),
     ":2: field 'expected_rate': must be between 0 and 1, 1 excluded (e.g. \"0.03\") (value: '1')"),
    ("negative estimate", jl(estimate(rate="-0.01")),
     ":2: field 'expected_rate': must be between 0 and 1, 1 excluded (e.g. \"0.03\") (value: '-0.01')"),
    ("estimate as a JSON number", jl(estimate(rate=0.1)),
     ":2: field 'expected_rate': must be a string (amounts are decimal strings such as \"100.00\", not JSON numbers) (value: 0.1)"),
    # commitment.purchased: breakage, rollover, renews, overage_price
    ("expected_rate of 1", jl(com(breakage={"method": "proportional", "expected_rate": "1.00"})),
     ":2: field 'breakage.expected_rate': must be between 0 and 1, 1 excluded (e.g. \"0.03\") (value: '1.00')"),
    ("negative expected_rate", jl(com(breakage={"method": "proportional", "expected_rate": "-0.05"})),
     ":2: field 'breakage.expected_rate': must be between 0 and 1, 1 excluded (e.g. \"0.03\") (value: '-0.05')"),
    ("proportional breakage without expected_rate", jl(com(breakage={"method": "proportional"})),
     ":2: field 'breakage': the proportional method needs expected_rate"),
    ("expected_rate with the at_expiry method", jl(com(breakage={"method": "at_expiry", "expected_rate": "0.1"})),
     ":2: field 'breakage': expected_rate applies to the proportional method only"),
    ("unknown breakage method", jl(com(breakage={"method": "straight_line"})),
     ":2: field 'breakage.method': Input should be 'at_expiry' or 'proportional' (value: 'straight_line')"),
    ("breakage as a string", jl(com(breakage="proportional")),
     ":2: field 'breakage': Input should be an object (value: 'proportional')"),
    ("rollover percent 101", jl(com(rollover={"percent": 101})),
     ":2: field 'rollover.percent': Input should be less than or equal to 100 (value: 101)"),
    ("rollover without percent", jl(com(rollover={"max_periods": 2})), ":2: field 'rollover.percent': is missing"),
    ("rollover max_periods 0", jl(com(rollover={"percent": 20, "max_periods": 0})),
     ":2: field 'rollover.max_periods': Input should be greater than or equal to 1 (value: 0)"),
    ("rollover max_periods past 64 bits", jl(com(rollover={"percent": 20, "max_periods": 2**63})),
     ":2: field 'rollover.max_periods': Input should be less than or equal to 1200 (value: 9223372036854775808)"),
    ("negative rollover max_credits", jl(com(rollover={"percent": 20, "max_credits": -1})),
     ":2: field 'rollover.max_credits': Input should be greater than or equal to 0 (value: -1)"),
    ("rollover expires as a string", jl(com(rollover={"percent": 20, "expires": "no"})),
     ":2: field 'rollover.expires': Input should be a valid boolean (value: 'no')"),
    ("rollover as a number", jl(com(rollover=20)), ":2: field 'rollover': Input should be an object (value: 20)"),
    ("renews naming an unknown commitment", jl(com(renews="com-0")),
     ":2: field 'renews': is not a commitment of customer acme (value: 'com-0')"),
    ("renews naming a top-up", jl(TOP, com(at="2026-01-04T00:00:00Z", renews="top-1")),
     ":3: field 'renews': is not a commitment of customer acme (value: 'top-1')"),
    ("renews naming another customer's commitment",
     jl(customer("other"), {**com("p0", commitment_id="com-0"), "customer_id": "other"}, com(at="2026-01-03T00:00:00Z", renews="com-0")),
     ":4: field 'renews': is not a commitment of customer acme (value: 'com-0')"),
    ("commitment renewed twice",
     jl(com("p0", commitment_id="com-0"), com(at="2026-01-03T00:00:00Z", renews="com-0"),
        com("p2", at="2026-01-04T00:00:00Z", commitment_id="com-2", renews="com-0")),
     ":4: field 'renews': is already renewed by another commitment (value: 'com-0')"),
    ("renewal recorded after the renewed term ended",
     jl(com("p0", commitment_id="com-0", term_end="2026-01-31"), com(at="2026-02-03T00:00:00Z", term_start="2026-02-01", renews="com-0")),
     (":3: field 'renews': commitment com-0 already expired (2026-02-01T00:00:00+00:00) before this renewal; "
      "a renewal must be recorded before the term it renews ends (value: 'com-0')")),
    ("renewal of a voided commitment",
     jl(com("p0", commitment_id="com-0", term_start="2026-01-03"), void("v1", "2026-01-03T00:00:00Z", "p0"),
        com(at="2026-01-04T00:00:00Z", renews="com-0")),
     (":4: field 'renews': ", "voided", "(value: 'com-0')")),
    ("negative overage_price", jl(com(overage_price="-0.10")), ":2: field 'overage_price': must be positive (value: '-0.10')"),
    ("zero overage_price", jl(com(overage_price="0")), ":2: field 'overage_price': must be positive (value: '0')"),
    ("overage_price as a JSON number", jl(com(overage_price=0.1)),
     ":2: field 'overage_price': must be a string (amounts are decimal strings such as \"100.00\", not JSON numbers) (value: 0.1)"),
    ("overage_price in exponent notation", jl(com(overage_price="1e-1")),
     ":2: field 'overage_price': must be a decimal string such as \"1234.50\" (value: '1e-1')"),
    ("overage_price past 64 bits of minor units per credit",
     jl(com(credits=1, overage_price="99999999999999999"), usage("u5", "2026-01-10T00:00:00Z", 5)),
     (":2: field 'overage_price': ", "(value: '99999999999999999')")),
    ("term_end at the end of the calendar", jl(com(term_end="9999-12-31")), (":2: field 'term_end': ", "(value: '9999-12-31')")),
    ("amount plus tax past 64 bits",
     jl(customer("taxed", tax_rate="0.5"), {**com(amount="92233720368547758.07"), "customer_id": "taxed"}),
     (":3: field 'amount': ", "(value: '92233720368547758.07')")),
    # event.voided
    ("void of an unknown event", jl(void("v1", "2026-01-05T00:00:00Z", "nope")),
     ":2: field 'target_event_id': unknown event (nothing with this id was imported) (value: 'nope')"),
    ("voiding twice", jl(TOP, void("v1", "2026-01-05T00:00:00Z", "t1"), void("v2", "2026-01-06T00:00:00Z", "t1")),
     (":4: field 'target_event_id': was already voided (by ", "bad.jsonl:3); an event is voided once (value: 't1')")),
    ("void of a customer.created event", jl(void("v1", "2026-01-05T00:00:00Z", "c1")),
     f":2: field 'target_event_id': is of type customer.created, which cannot be voided {VOIDABLE} (value: 'c1')"),
    ("void of a subscription.started event", jl(SUB, void("v1", "2026-01-06T00:00:00Z", "s1")),
     f":3: field 'target_event_id': is of type subscription.started, which cannot be voided {VOIDABLE} (value: 's1')"),
    ("void of a void", jl(TOP, void("v1", "2026-01-05T00:00:00Z", "t1"), void("v2", "2026-01-06T00:00:00Z", "v1")),
     (":4: field 'target_event_id': ", f"of type event.voided, which cannot be voided {VOIDABLE} (value: 'v1')")),
    ("void occurring before its target", jl(TOP, void("v1", "2026-01-02T00:00:00Z", "t1")),
     ":3: field 'occurred_at': is before the voided event (2026-01-03T00:00:00+00:00) (value: '2026-01-02T00:00:00+00:00')"),
    ("void of a top-up whose credits were used", jl(TOP, usage("u5", "2026-01-04T00:00:00Z", 3), void("v1", "2026-01-05T00:00:00Z", "t1")),
     (":4: field 'target_event_id': credits of grant top-1 were already used, rolled, refunded or expired (3 of 10); "
      "void that usage or refund the unused credits instead (value: 't1')")),
    ("void of quarantined usage", jl(usage("u5", "2026-01-04T00:00:00Z", 3), void("v1", "2026-01-05T00:00:00Z", "u5")),
     ":3: field 'target_event_id': was quarantined, not posted: there is nothing to void (value: 'u5')"),
    ("void of usage whose overage is invoiced",
     jl(SUB, usage("u5", "2026-01-10T00:00:00Z", 900), void("v1", "2026-02-02T00:00:00Z", "u5")),
     ":4: field 'target_event_id': its overage for 2026-01 is already invoiced; issue a refund or credit note instead (value: 'u5')"),
    ("void naming a customer", jl(TOP, void("v1", "2026-01-05T00:00:00Z", "t1", customer_id="acme")),
     ":3: field 'customer_id': is not a field of this event type (value: 'acme')"),
    ("void without a reason", jl(TOP, void("v1", "2026-01-05T00:00:00Z", "t1", reason=...)), ":3: field 'reason': is missing"),
]
CASES += LIFECYCLE_CASES


# --------------------------------------------------------------------------- hostile input (docs/design.md §8.2)
def zed(**fields) -> bytes:
    """A customer.created line for a new customer zed, with ``fields`` replaced."""
    return jl({**ev("c2", "customer.created", "2026-01-01T00:00:00Z", customer_id="zed", name="Zed", currency="USD"), **fields})


def when(at: object) -> bytes:
    """A usage line of acme at ``at`` (any JSON value)."""
    return line(occurred_at=at)


YEARS = "must be in the years 2000 through 2099"
RFC = "is not an RFC 3339 timestamp"
CONTROL = "must not contain control characters"
GRANT = ev("g1", "credits.granted", "2026-01-03T00:00:00Z", grant_id="promo-1", credits=10)
HOSTILE_CASES = [
    # dates and instants outside 2000-2099 (docs/design.md §8.2 "Date bounds"), every field
    ("customer created in the year 1", zed(occurred_at="0001-01-01T00:00:00Z"), (":2: field 'occurred_at': ", YEARS)),
    ("occurred_at at the end of the calendar", when("9999-12-31T23:59:59-12:00"),
     (":2: field 'occurred_at': ", YEARS, "(value: '9999-12-31T23:59:59-12:00')")),
    ("occurred_at in 1999", when("1999-12-31T23:59:59Z"), (":2: field 'occurred_at': ", YEARS)),
    ("occurred_at in 2100", when("2100-01-01T00:00:00Z"), (":2: field 'occurred_at': ", YEARS)),
    ("top-up expiring in 9999", jl({**TOP, "expires_at": "9999-12-31T00:00:00Z"}), (":2: field 'expires_at': ", YEARS)),
    ("grant expiring in 2100", jl({**GRANT, "expires_at": "2100-01-01T00:00:00Z"}), (":2: field 'expires_at': ", YEARS)),
    ("term_start in 1999", jl(com(term_start="1999-12-31")), (":2: field 'term_start': ", YEARS, "(value: '1999-12-31')")),
    ("term_end in 2100", jl(com(term_end="2100-01-01")), (":2: field 'term_end': ", YEARS)),
    ("start_date in the year 26", jl({**SUB, "start_date": "0026-01-05"}), (":2: field 'start_date': ", YEARS)),
    ("end_date in 9999", jl(SUB, cancel("x1", "2026-01-10T00:00:00Z", "9999-12-31")), (":3: field 'end_date': ", YEARS)),
    ("start_month in the year 1", jl(ev("g9", "guarantee.enrolled", "2026-01-02T00:00:00Z", legacy_monthly_amount="10.00",
                                        start_month="0001-01")), (":2: field 'start_month': ", YEARS, "(value: '0001-01')")),
    # instants: RFC 3339 only (date, "T", time, at most 6 fractional digits, offset)
    ("Unix epoch string as occurred_at", when("1767225600"), (":2: field 'occurred_at': ", RFC, "(value: '1767225600')")),
    ("Unix epoch number as occurred_at", when(1767225600), (":2: field 'occurred_at': ", "(value: 1767225600)")),
    ("Unix epoch string as a date", jl(com(term_start="1767225600")), (":2: field 'term_start': ", "YYYY-MM-DD")),
    ("timestamp in a date field", jl({**SUB, "start_date": "2026-01-05T00:00:00Z"}), (":2: field 'start_date': ", "YYYY-MM-DD")),
    ("space instead of T", when("2026-01-02 00:00:00Z"), (":2: field 'occurred_at': ", RFC)),
    ("time without seconds", when("2026-01-02T00:00Z"), (":2: field 'occurred_at': ", RFC)),
    ("offset without a colon", when("2026-01-02T00:00:00+0100"), (":2: field 'occurred_at': ", RFC)),
    ("fraction after a comma", when("2026-01-02T00:00:00,5Z"), (":2: field 'occurred_at': ", RFC)),
    ("seven fractional digits", when("2026-01-02T00:00:00.1234567Z"),
     (":2: field 'occurred_at': ", "more than 6 fractional digits", "(value: '2026-01-02T00:00:00.1234567Z')")),
    ("sub-microsecond expires_at", jl({**TOP, "expires_at": "2027-01-01T00:00:00.0000001Z"}),
     (":2: field 'expires_at': ", "more than 6 fractional digits")),
    # control characters (C0 including NUL, DEL, C1) in every text field
    ("NUL in a customer name", zed(name="Ze\x00d"), (":2: field 'name': ", CONTROL, "U+0000", "(value: 'Ze\\x00d')")),
    ("U+0001 in a customer name", zed(name="Zed\x01"), (":2: field 'name': ", CONTROL, "U+0001")),
    ("tab in a customer name", zed(name="Zed\tInc"), (":2: field 'name': ", CONTROL, "U+0009")),
    ("newline in an address line", zed(address=["1 Main St\nSpringfield"]), (":2: field 'address.0': ", CONTROL, "U+000A")),
    ("C1 control in an email", zed(email="zed\x85@example.com"), (":2: field 'email': ", CONTROL, "U+0085")),
    ("DEL in a grant reason", jl({**GRANT, "reason": "trial\x7f"}), (":2: field 'reason': ", CONTROL, "U+007F")),
    ("escape sequence in a void reason", jl(TOP, void("v1", "2026-01-05T00:00:00Z", "t1", reason="\x1b[31mred")),
     (":3: field 'reason': ", CONTROL, "U+001B")),
    ("NUL in an invoice number", jl(ev("pay1", "payment.received", "2026-01-03T00:00:00Z", amount="5.00",
                                       invoice_number="INV\x00")), (":2: field 'invoice_number': ", CONTROL)),
    ("NUL in an id", line(id="x\x001"), ":2: field 'id': String should match pattern"),
    # one JSON object, one value per key
    ("duplicate key", b'{"id": "x1", "type": "usage.recorded", "occurred_at": "2026-01-02T00:00:00Z", '
     b'"customer_id": "acme", "credits": 1, "credits": 500}\n', (":2: field 'credits': ", "more than once")),
    ("duplicate key in a nested object", jl(com()).replace(b'"credits": 1200', b'"credits": 1200, "rollover": '
                                                           b'{"percent": 10, "percent": 90}'), (":2: field 'percent': ", "more than once")),
    # decimal strings: the whole string, nothing after a trailing newline
    ("amount with a trailing newline", TOPUP.format('"credits": 5, "amount": "20\\n"').encode() + b"\n",
     (":2: field 'amount': must be a decimal string", "(value: '20\\n')")),
    ("tax rate with a trailing newline", zed(tax_rate="0.1\n"), (":2: field 'tax_rate': must be a decimal string", "(value: '0.1\\n')")),
    ("estimate with a trailing newline", jl(estimate(rate="0.1\n")), ":2: field 'expected_rate': must be a decimal string"),
    ("negative zero tax rate", zed(tax_rate="-0"), (":2: field 'tax_rate': ", "negative zero", "(value: '-0')")),
    ("negative zero amount", TOPUP.format('"credits": 5, "amount": "-0.00"').encode() + b"\n", ":2: field 'amount': "),
    ("negative zero credits", line(credits=-0.0), ":2: field 'credits': Input should be a valid integer"),
    ("decimal string of 1,000 digits", TOPUP.format('"credits": 5, "amount": "' + "9" * 1000 + '"').encode() + b"\n",
     (":2: field 'amount': ", "at most 40 characters")),
    # numbers, strings and JSON oddities
    ("number of 5,000 digits", b'{"id": "x1", "credits": 1' + b"0" * 5000 + b"}\n", ":2: is not valid JSON"),
    ("NaN credits", OK_USAGE.replace(b'"credits": 1', b'"credits": NaN').replace(b"ok1", b"x1"), ":2: field 'credits': "),
    ("Infinity as an amount", TOPUP.format('"credits": 5, "amount": Infinity').encode() + b"\n", ":2: field 'amount': must be a string"),
    ("id as a number", line(id=5), ":2: field 'id': Input should be a valid string (value: 5)"),
    ("name as a number", zed(name=5), ":2: field 'name': Input should be a valid string (value: 5)"),
    ("credits as true", line(credits=True), ":2: field 'credits': Input should be a valid integer (value: True)"),
    ("deeply nested JSON", b'{"id": ' + b"[" * 100_000 + b"\n", ":2: is not valid JSON (recursion limit exceeded"),
    ("lone surrogate in a name", zed(name="\ud800"), ":2: is not valid JSON"),
    ("unknown nested field", jl(com(rollover={"percent": 10, "colour": "red"})),
     ":2: field 'rollover.colour': is not a field of this event type (value: 'red')"),
    # ids and names: the documented alphabet and lengths
    ("id with a space", line(id="evt 1"), (":2: field 'id': String should match pattern", "(value: 'evt 1')")),
    ("id with non-ASCII letters", line(id="évt-1"), ":2: field 'id': String should match pattern"),
    ("customer id with a fullwidth digit", zed(customer_id="zed１"), ":2: field 'customer_id': String should match pattern"),
    ("id of 10,000 characters", line(id="x" * 10_000), ":2: field 'id': String should have at most 128 characters"),
    ("name of 10,000 characters", zed(name="Z" * 10_000), ":2: field 'name': String should have at most 200 characters"),
]
CASES += HOSTILE_CASES


def snapshot(engine) -> dict[str, list]:
    """Every row of every table: an import refused must leave all of them as they were (journal,
    events, grants, subscriptions, invoices, document numbers, import batches...)."""
    with Session(engine) as s:
        return {t.name: sorted(map(repr, s.execute(sa.select(t)).all())) for t in SQLModel.metadata.sorted_tables}


def assert_reported(text: str, path, expected: str | tuple[str, ...]) -> None:
    """All fragments appear on one problem line; a leading ":" fragment follows the file's path."""
    fragments = (expected,) if isinstance(expected, str) else expected
    fragments = tuple(f"{path}{f}" if f.startswith(":") else f for f in fragments)
    assert any(all(f in ln for f in fragments) for ln in text.splitlines()), f"expected {fragments} in:\n{text}"


@pytest.fixture
def seeded(sqlite_url, tmp_path, plans_catalog):
    engine = make_engine(sqlite_url)
    catalog = plans_catalog
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
    before = snapshot(engine)
    with Session(engine) as s:
        entries_before = s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one()
        with pytest.raises(InvalidInputError) as err:
            import_files(s, catalog, [path])
    text = str(err.value)
    assert str(path) in text
    assert_reported(text, path, expected)
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == entries_before
        assert s.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one() == 1  # only the customer
    assert snapshot(engine) == before


def test_crlf_line_endings_are_accepted(seeded):
    """CRLF files import normally."""
    engine, catalog, tmp = seeded
    path = tmp / "crlf.jsonl"
    path.write_bytes(OK_USAGE.replace(b"\n", b"\r\n"))
    with Session(engine) as s:
        summary = import_files(s, catalog, [path])
    assert summary.quarantined == 1  # valid, but acme holds no credits: hard cap


def test_the_corpus_has_at_least_60_cases():
    """A corpus of at least 60 bad inputs, 30 of them hostile (encodings, bounds, controls, JSON oddities)."""
    assert len(CASES) >= 60 and len(HOSTILE_CASES) >= 30


# Cases that need books already posted by an earlier import: (name, setup events, bad events, expected).
# Neither file holds the customer (seeded before): the setup and the bad events start at line 1.
STATEFUL_CASES = [
    ("voiding twice across imports", [TOP, void("v1", "2026-01-05T00:00:00Z", "t1")], [void("v2", "2026-01-06T00:00:00Z", "t1")],
     (":1: field 'target_event_id': was already voided (by ", "setup.jsonl:2); an event is voided once (value: 't1')")),
    ("void of a stored usage event voided before", [TOP, usage("u5", "2026-01-04T00:00:00Z", 3), void("v1", "2026-01-05T00:00:00Z", "u5")],
     [void("v2", "2026-01-06T00:00:00Z", "u5")],
     (":1: field 'target_event_id': was already voided (by ", "setup.jsonl:3); an event is voided once (value: 'u5')")),
    ("void occurring before its stored target", [TOP], [void("v1", "2026-01-02T00:00:00Z", "t1")],
     ":1: field 'occurred_at': is before the voided event (2026-01-03T00:00:00+00:00) (value: '2026-01-02T00:00:00+00:00')"),
    ("void of a stored top-up whose credits were used", [TOP, usage("u5", "2026-01-04T00:00:00Z", 3)],
     [void("v1", "2026-01-06T00:00:00Z", "t1")],
     ":1: field 'target_event_id': credits of grant top-1 were already used, rolled, refunded or expired (3 of 10)"),
    ("void of the stored customer.created event", [], [void("v1", "2026-01-06T00:00:00Z", "c1")],
     ":1: field 'target_event_id': is of type customer.created, which cannot be voided"),
    ("cancelling twice across imports", [SUB, cancel("x1", "2026-01-10T00:00:00Z", "2026-01-31")],
     [cancel("x2", "2026-01-11T00:00:00Z", "2026-02-28")],
     ":1: field 'customer_id': cannot cancel: subscription s1 was already cancelled (end_date 2026-01-31) (value: 'acme')"),
    ("a second subscription while a stored one runs", [SUB],
     [ev("s2", "subscription.started", "2026-01-06T00:00:00Z", plan="professional", start_date="2026-02-01")],
     ":1: field 'start_date': customer acme already has subscription s1 (starter) running then; cancel it first (value: '2026-02-01')"),
    ("estimate change of a stored grant that expired",
     [com(term_end="2026-01-31", breakage=PROPORTIONAL), usage("u7", "2026-02-02T00:00:00Z", 1)], [estimate(at="2026-02-05T00:00:00Z")],
     ":1: field 'grant_ref': has already expired; its breakage was trued up at expiry (value: 'com-1')"),
    ("refund of a stored grant beyond its unused credits", [TOP], [refund(credits=11)],
     ":1: field 'credits': grant top-1 has only 10 unused credits"),
    ("renewal of another customer's stored commitment", [customer("other"), {**com("p0", commitment_id="com-0"), "customer_id": "other"}],
     [com(at="2026-01-03T00:00:00Z", renews="com-0")], ":1: field 'renews': is not a commitment of customer acme (value: 'com-0')"),
]


@pytest.mark.parametrize("name,setup,bad,expected", STATEFUL_CASES, ids=[c[0] for c in STATEFUL_CASES])
def test_bad_input_against_posted_books_is_refused_and_nothing_is_posted(seeded, name, setup, bad, expected):
    """Problems that depend on books posted by an earlier import: named, and every table unchanged."""
    engine, catalog, tmp = seeded
    if setup:
        (tmp / "setup.jsonl").write_bytes(jl(*setup))
        with Session(engine) as s:
            import_files(s, catalog, [tmp / "setup.jsonl"])
    before = snapshot(engine)
    path = tmp / "bad.jsonl"
    path.write_bytes(jl(*bad))
    with Session(engine) as s, pytest.raises(InvalidInputError) as err:
        import_files(s, catalog, [path])
    assert_reported(str(err.value), path, expected)
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- the command line
def ledger_cli(tmp, url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real entry point in a subprocess, with the plans catalog."""
    from conftest import PLANS_CATALOG

    (tmp / "ledger.toml").write_text(PLANS_CATALOG, encoding="utf-8")
    cmd = [sys.executable, "-m", "ledger", "--database-url", url, "--catalog", str(tmp / "ledger.toml"), *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp, timeout=timeout)


def _cli_books(tmp_path, sqlite_url, *events: dict):
    (tmp_path / "events.jsonl").write_bytes(jl(customer("acme", eid="c1"), *events))
    return make_engine(sqlite_url)


def test_dry_run_of_a_subscription_prints_the_priced_summary_and_writes_nothing(tmp_path, sqlite_url):
    """`ledger import --dry-run` prices a subscription with usage (bills, overage invoice in arrears,
    month-end recognition), prints what it would post, and writes nothing; the real import then
    posts exactly that."""
    engine = _cli_books(tmp_path, sqlite_url, SUB, usage("u1", "2026-01-10T00:00:00Z", 900),
                        usage("u2", "2026-02-03T00:00:00Z", 10))
    before = snapshot(engine)
    dry = ledger_cli(tmp_path, sqlite_url, "import", "--dry-run", "events.jsonl", "--format", "table")
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr
    # Jan bill, Jan usage, Jan platform revenue, Jan overage invoice, Feb bill, Feb usage;
    # invoices: the January and February subscription months and January's overage
    assert dry.stdout.startswith("would post 4, duplicates 0, quarantined 0, late 0; 6 journal entries, 3 invoices "
                                 "(dry run: nothing written)"), dry.stdout
    assert snapshot(engine) == before
    real = ledger_cli(tmp_path, sqlite_url, "import", "events.jsonl", "--format", "table")
    assert real.returncode == 0, real.stderr
    assert real.stdout.startswith("posted 4, duplicates 0, quarantined 0, late 0; 6 journal entries, 3 invoices"), real.stdout
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one() == 6
    engine.dispose()


def test_a_problem_found_while_applying_exits_1_without_traceback_and_posts_nothing(tmp_path, sqlite_url):
    """A state-dependent problem (cancelling twice) is found while applying: exit 1, one clear line, no
    traceback, and neither the subscription nor its first bill is written."""
    engine = _cli_books(tmp_path, sqlite_url, SUB, cancel("x1", "2026-01-10T00:00:00Z", "2026-01-31"),
                        cancel("x2", "2026-01-11T00:00:00Z", "2026-02-28"))
    before = snapshot(engine)
    r = ledger_cli(tmp_path, sqlite_url, "import", "events.jsonl")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert ("events.jsonl:4: field 'customer_id': cannot cancel: subscription s1 was already cancelled "
            "(end_date 2026-01-31) (value: 'acme')") in r.stderr
    assert snapshot(engine) == before
    engine.dispose()


@pytest.mark.parametrize("name,events,expected", [
    ("rollover max_periods past 64 bits", [com(rollover={"percent": 20, "max_periods": 2**63})],
     "events.jsonl:2: field 'rollover.max_periods'"),
    ("term_end at the end of the calendar", [com(term_end="9999-12-31")], "events.jsonl:2: field 'term_end'"),
    ("concession credits past 64 bits", [TOP, refund(credits=2**63 - 1, concession=True)], "events.jsonl:3: field 'credits'"),
], ids=["rollover max_periods past 64 bits", "term_end at the end of the calendar", "concession credits past 64 bits"])
def test_values_out_of_range_exit_1_without_traceback(tmp_path, sqlite_url, name, events, expected):
    """Values the database or the calendar cannot hold are input problems, never a traceback."""
    engine = _cli_books(tmp_path, sqlite_url, *events)
    before = snapshot(engine)
    r = ledger_cli(tmp_path, sqlite_url, "import", "events.jsonl")
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 1 and expected in r.stderr, r.stderr
    assert snapshot(engine) == before
    engine.dispose()


def test_a_start_date_typo_is_refused_promptly(tmp_path, sqlite_url):
    """A subscription dated "0026-01-05" (for 2026) must be refused at once, naming start_date,
    not bill 24,000 months of a customer created in 2026."""
    engine = _cli_books(tmp_path, sqlite_url, {**SUB, "start_date": "0026-01-05"})
    before = snapshot(engine)
    try:
        r = ledger_cli(tmp_path, sqlite_url, "import", "events.jsonl", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("`ledger import` of a subscription starting 0026-01-05 was still running after 30 s")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "events.jsonl:2: field 'start_date'" in r.stderr and "'0026-01-05'" in r.stderr, r.stderr
    assert snapshot(engine) == before
    engine.dispose()
