"""Event schemas (docs/design.md §8.2): one pydantic model per event type, and the validation
and content hash of one event.

``EventType`` lists every event type string; each model's ``type`` field is the ``Literal`` of
its string, and ``AnyEvent`` tells them apart by it. Validation never raises on bad input:
``parse_event`` turns every problem into an InputProblem naming file, line, field and value.
Amounts stay decimal strings here; they are converted to minor units once the customer's
currency is known. The readers of JSONL and CSV files are in ``ledger.events``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from ledger.errors import NO_VALUE, InputProblem
from ledger.json_keys import duplicate_keys
from ledger.schema_messages import (  # noqa: F401 (YEAR_MIN, YEAR_MAX, control_message: re-exported)
    _YEARS,
    YEAR_MAX,
    YEAR_MIN,
    _format_message,
    _strict_instant_message,
    control_message,
)
from ledger.core.money import INT64_MAX, is_currency, parse_decimal


class EventType(StrEnum):
    """Every event type string (the ``type`` field of a JSONL line), in the order error messages
    list them. A member equals its string: ``EventType.USAGE_RECORDED == "usage.recorded"``."""

    CUSTOMER_CREATED = "customer.created"
    SUBSCRIPTION_STARTED = "subscription.started"
    SUBSCRIPTION_CANCELLED = "subscription.cancelled"
    COMMITMENT_PURCHASED = "commitment.purchased"
    TOPUP_PURCHASED = "topup.purchased"
    CREDITS_GRANTED = "credits.granted"
    USAGE_RECORDED = "usage.recorded"
    PAYMENT_RECEIVED = "payment.received"
    REFUND_ISSUED = "refund.issued"
    BREAKAGE_ESTIMATE_CHANGED = "breakage.estimate_changed"
    GUARANTEE_ENROLLED = "guarantee.enrolled"
    EVENT_VOIDED = "event.voided"
    USAGE_APPROVED = "usage.approved"
    USAGE_REJECTED = "usage.rejected"


# Patterns run in pydantic-core's Rust regex engine (regex_engine="rust-regex" on every model), where "$"
# and "\z" match only at the very end: "acme\n" is refused (Python's "$" matches before a final newline).
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
Credits = Annotated[int, Field(gt=0, le=INT64_MAX)]

NO_CONTROLS = r"\A[^\x00-\x1f\x7f-\x9f]*\z"
"""No C0 (U+0000-U+001F: NUL, tab, newline too), DEL or C1 (U+0080-U+009F) in a text field: PostgreSQL
refuses NUL, XML (Factur-X) any C0 but tab, LF, CR; an address is a list of lines, so none needs a break."""
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROLS)]
Line = Annotated[str, StringConstraints(max_length=200, pattern=NO_CONTROLS)]
"""Text (names, reasons) and Line (address lines, email): one line of at most 200 characters."""

RFC3339 = r"20[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
"""An instant as RFC 3339 writes it, year 2000-2099: date, T, time, at most 6 fractional digits (an
instant keeps microseconds, nothing finer), Z or +hh:mm. Unanchored; valid in Rust and Python."""
_RFC3339 = rf"\A{RFC3339}\z"
_DAY = r"\A20[0-9]{2}-[0-9]{2}-[0-9]{2}\z"
def _year_in_bounds(value: date) -> date:
    if YEAR_MIN <= value.year <= YEAR_MAX:
        return value
    raise ValueError(_YEARS)


class _Written:
    """A date or instant (``parsed``) whose JSON text must match ``pattern``, checked in pydantic-core
    (no Python per value); a mismatch is the error type ``kind`` (see `_format_message`). Python
    values (not used by the readers) are checked for the year."""

    def __init__(self, pattern: str, kind: str, parsed: core_schema.CoreSchema):
        self.pattern, self.kind, self.parsed = pattern, kind, parsed

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        text = core_schema.str_schema(pattern=self.pattern, regex_engine="rust-regex", strict=True)
        written = core_schema.custom_error_schema(text, custom_error_type=self.kind, custom_error_message=self.kind)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([written, {**self.parsed, "strict": False}]),  # from the checked str
            python_schema=core_schema.no_info_after_validator_function(_year_in_bounds, self.parsed))


Instant = Annotated[datetime, _Written(_RFC3339, "rfc3339_instant", core_schema.datetime_schema(tz_constraint="aware"))]
"""An aware datetime written as `_RFC3339` (a Unix epoch, a space for "T", no offset or seconds refused)."""
Day = Annotated[date, _Written(_DAY, "iso_date", core_schema.date_schema())]
"""A date written YYYY-MM-DD, year 2000-2099."""


def _parse(value: str) -> Decimal:
    """parse_decimal, refusing negative zero ("-0", "-0.00": write 0)."""
    d = parse_decimal(value)
    if d.is_zero() and d.is_signed():
        raise ValueError("is negative zero; write 0")
    return d


def _decimal(value: str) -> str:
    _parse(value)
    return value


def _positive_decimal(value: str) -> str:
    if _parse(value) <= 0:
        raise ValueError("must be positive")
    return value


MAX_UNIT_PRICE = 1_000_000


def _unit_price(value: str) -> str:
    """A per-credit price: positive, at most 1,000,000 major units."""
    _positive_decimal(value)
    if _parse(value) > MAX_UNIT_PRICE:
        raise ValueError(f"must be at most {MAX_UNIT_PRICE} per credit")
    return value


MAX_EVENT_COST = 1_000_000_000_000


def _cost(value: str | None) -> str | None:
    """A usage event's own cost to serve: a decimal string >= 0, at most 10^12 major units (more
    decimals than the currency are allowed: costs are rounded per customer-day)."""
    if value is not None and not 0 <= _parse(value) <= MAX_EVENT_COST:
        raise ValueError("must not be negative" if _parse(value) < 0 else f"must be at most {MAX_EVENT_COST}")
    return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="rust-regex")
    id: Id
    occurred_at: Instant


class CustomerCreated(_Event):
    """A customer with one currency (ISO 4217) and a sales tax rate (decimal string, 0 <= r < 1)."""

    type: Literal["customer.created"]
    customer_id: CustomerId
    name: Text
    currency: str
    tax_rate: str = "0"
    address: list[Line] = Field(default_factory=list, max_length=10)
    email: Line | None = None
    locale: str = "en_US"
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None  # ISO 3166-1 alpha-2
    vat_id: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9A-Za-z+*.]{2,13}$")] | None = None  # with prefix

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not is_currency(v):
            raise ValueError("is not an ISO 4217 currency")
        return v

    @field_validator("tax_rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        r = _parse(v)
        if not 0 <= r < 1:
            raise ValueError("must be between 0 and 1 (e.g. \"0.0825\")")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(v)
        except (UnknownLocaleError, ValueError):
            raise ValueError("is not a known locale (e.g. en_US, de_DE)") from None
        return v


class RolloverPolicy(BaseModel):
    """percent of the unused units (floored) rolls into a new grant, capped by max_credits, for at
    most max_periods generations; ``expires: false`` makes rolled credits never expire."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="rust-regex")
    percent: int = Field(ge=0, le=100)
    max_periods: int | None = Field(default=None, ge=1, le=1200)
    max_credits: int | None = Field(default=None, ge=0, le=INT64_MAX)
    expires: bool = True


def _breakage_rate(v: str) -> str:
    r = _parse(v)
    if not 0 <= r < 1:
        raise ValueError("must be between 0 and 1, 1 excluded (e.g. \"0.03\")")
    return v


class BreakagePolicy(BaseModel):
    """at_expiry (remote method) or proportional with an expected breakage rate (ASC 606-10-55-48)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="rust-regex")
    method: Literal["at_expiry", "proportional"] = "at_expiry"
    expected_rate: str | None = None

    _r = field_validator("expected_rate")(classmethod(lambda cls, v: v if v is None else _breakage_rate(v)))

    @model_validator(mode="after")
    def _needs_rate(self):
        if self.method == "proportional" and self.expected_rate is None:
            raise ValueError("the proportional method needs expected_rate")
        if self.method == "at_expiry" and self.expected_rate is not None:
            raise ValueError("expected_rate applies to the proportional method only")
        return self


class CommitmentPurchased(_Event):
    """A prepaid commitment invoiced now: amount (decimal string) for credits over a term.

    term_end is inclusive: the grant expires at the start of the next day (reporting timezone).
    """

    type: Literal["commitment.purchased"]
    customer_id: CustomerId
    commitment_id: Id
    amount: str
    credits: Credits
    term_start: Day
    term_end: Day
    rollover: RolloverPolicy | None = None
    renews: Id | None = None
    overage_price: str | None = None
    breakage: BreakagePolicy | None = None

    _amount = field_validator("amount")(classmethod(lambda cls, v: _decimal(v)))
    _price = field_validator("overage_price")(classmethod(lambda cls, v: v if v is None else _unit_price(v)))

    @model_validator(mode="after")
    def _term(self):
        if self.term_end < self.term_start:
            raise ValueError(f"term_end {self.term_end} is before term_start {self.term_start}")
        return self


class TopupPurchased(_Event):
    """A top-up pack invoiced now: a catalog ``pack``, or ``credits`` + ``amount``."""

    type: Literal["topup.purchased"]
    customer_id: CustomerId
    topup_id: Id
    pack: Id | None = None
    credits: Credits | None = None
    amount: str | None = None
    expires_at: Instant | None = None

    _amount = field_validator("amount")(classmethod(lambda cls, v: v if v is None else _decimal(v)))

    @model_validator(mode="after")
    def _shape(self):
        if self.pack is None and (self.credits is None or self.amount is None):
            raise ValueError("needs either 'pack' or both 'credits' and 'amount'")
        if self.pack is not None and (self.credits is not None or self.amount is not None):
            raise ValueError("give either 'pack' or 'credits' + 'amount', not both")
        return self


class CreditsGranted(_Event):
    """Promotional credits at zero cost basis (CREDIT lines only)."""

    type: Literal["credits.granted"]
    customer_id: CustomerId
    grant_id: Id
    credits: Credits
    expires_at: Instant | None = None
    reason: Text = "promotional"


class UsageRecorded(_Event):
    """Metered usage in credits (``action`` + ``quantity`` is priced through the rate card)."""

    type: Literal["usage.recorded"]
    customer_id: CustomerId
    credits: Credits | None = None
    action: Id | None = None
    quantity: Credits | None = None
    # the event's own cost to serve, in major units of the customer's currency (overrides the
    # catalog's costs); left out of the canonical JSON when not given, so hashes stay as they were
    cost: str | None = Field(default=None, exclude_if=lambda v: v is None)

    _cost = field_validator("cost")(classmethod(lambda cls, v: _cost(v)))

    @model_validator(mode="after")
    def _shape(self):
        if (self.credits is None) == (self.action is None):
            raise ValueError("needs either 'credits' or 'action' + 'quantity'")
        if self.action is not None and self.quantity is None:
            raise ValueError("'action' needs a 'quantity'")
        return self


class UsageApproved(_Event):
    """Usage held for review at a soft cap released: ``credits`` of it (default: all still held)
    are consumed now."""

    type: Literal["usage.approved"]
    customer_id: CustomerId
    target_event_id: Id
    credits: Credits | None = None


class UsageRejected(_Event):
    """Usage held for review at a soft cap refused: what is still held is quarantined."""

    type: Literal["usage.rejected"]
    customer_id: CustomerId
    target_event_id: Id
    reason: Text


class PaymentReceived(_Event):
    """Cash received: amount (positive decimal string), optionally for one invoice."""

    type: Literal["payment.received"]
    customer_id: CustomerId
    amount: str
    invoice_number: Annotated[str, StringConstraints(max_length=32, pattern=NO_CONTROLS)] | None = None

    _amount = field_validator("amount")(classmethod(lambda cls, v: _positive_decimal(v)))


class SubscriptionStarted(_Event):
    """A catalog plan billed monthly in advance from start_date (the first month prorated by days)."""

    type: Literal["subscription.started"]
    customer_id: CustomerId
    plan: Id
    start_date: Day


class SubscriptionCancelled(_Event):
    """Billing stops after end_date (inclusive); a month already billed is not reversed."""

    type: Literal["subscription.cancelled"]
    customer_id: CustomerId
    end_date: Day


class RefundIssued(_Event):
    """Money back for credits of a grant: all unused units by default. Units beyond the unused
    ones need ``concession: true`` (posted to 4910 Refunds and concessions)."""

    type: Literal["refund.issued"]
    customer_id: CustomerId
    grant_ref: Id
    credits: Credits | None = None
    concession: bool = False
    reason: Text | None = None


class BreakageEstimateChanged(_Event):
    """A new expected breakage rate for a proportional grant: a cumulative catch-up is posted."""

    type: Literal["breakage.estimate_changed"]
    customer_id: CustomerId
    grant_ref: Id
    expected_rate: str

    _r = field_validator("expected_rate")(classmethod(lambda cls, v: _breakage_rate(v)))


class EventVoided(_Event):
    """Reverse an earlier event: the mirror of its journal entries, in the first open period."""

    type: Literal["event.voided"]
    target_event_id: Id
    reason: Text


class GuaranteeEnrolled(_Event):
    """A no-increase guarantee for a customer migrated from per-seat pricing (docs/design.md §5.9):
    legacy_monthly_amount (positive decimal string, the customer's currency, pre-tax) for
    ``months`` months (1-36) from start_month ('YYYY-MM'); basis monthly or cumulative."""

    type: Literal["guarantee.enrolled"]
    customer_id: CustomerId
    legacy_monthly_amount: str
    start_month: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    months: Annotated[int, Field(ge=1, le=36)] = 6
    basis: Literal["monthly", "cumulative"] = "monthly"

    _amount = field_validator("legacy_monthly_amount")(classmethod(lambda cls, v: _positive_decimal(v)))

    @field_validator("start_month")
    @classmethod
    def _start_month(cls, v: str) -> str:
        if not YEAR_MIN <= int(v[:4]) <= YEAR_MAX:
            raise ValueError(_YEARS)
        return v


AnyEvent = Annotated[
    Union[CustomerCreated, CommitmentPurchased, TopupPurchased, CreditsGranted, UsageRecorded, PaymentReceived,
          SubscriptionStarted, SubscriptionCancelled, RefundIssued, BreakageEstimateChanged, GuaranteeEnrolled,
          EventVoided, UsageApproved, UsageRejected],
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
"""The event type strings as plain str, in EventType's order."""
if sorted(get_args(model.model_fields["type"].annotation)[0]
          for model in get_args(get_args(AnyEvent)[0])) != sorted(EVENT_TYPES):
    raise AssertionError("EventType and the event models' type literals differ")  # checked once, at import
_ADAPTER: TypeAdapter = TypeAdapter(AnyEvent)


@dataclass(frozen=True, slots=True)
class SourcedEvent:
    """A validated event, where it came from, its content hash (sha256 hex) and the JSON hashed
    (``payload``: `canonical_json`), kept for a business event read from a file, else None."""

    event: BaseModel
    file: str
    line: int
    content_hash: str
    payload: str | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def id(self) -> str:
        return self.event.id  # type: ignore[attr-defined]


def canonical_json(event: BaseModel) -> str:
    """The event as canonical JSON (sorted keys, defaults filled in, no whitespace)."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_INSTANT: TypeAdapter = TypeAdapter(AwareDatetime)


def _json_scalar(value: str | int | None) -> str:
    # only for values whose JSON needs no escaping: ints, None and the pattern-checked Id strings
    return "null" if value is None else str(value) if isinstance(value, int) else f'"{value}"'


def _usage_canonical_json(event: UsageRecorded) -> str:
    """`canonical_json` of a usage event with its instant in UTC, written directly (a bulk import
    hashes every line, twice): its strings match the Id patterns, which admit nothing JSON
    escapes, and the instant is serialised by pydantic as in ``model_dump(mode="json")``. In UTC
    because a usage event's content is its fields as stored (the stored row keeps the instant,
    not the offset it was written with: `ledger.store.usage_rows` hashes the row), so the same
    instant written with two offsets is the same event. Equality with `canonical_json` of the
    event moved to UTC is a property test (tests/unit/test_events.py)."""
    at = _INSTANT.dump_python(event.occurred_at.astimezone(timezone.utc), mode="json")
    cost = "" if event.cost is None else f'"cost":"{event.cost}",'  # a checked decimal: nothing to escape
    return (f'{{"action":{_json_scalar(event.action)},{cost}"credits":{_json_scalar(event.credits)},'
            f'"customer_id":"{event.customer_id}","id":"{event.id}","occurred_at":"{at}",'
            f'"quantity":{_json_scalar(event.quantity)},"type":"usage.recorded"}}')


def content_hash(event: BaseModel) -> str:
    """sha256 of the canonical JSON (a usage event's with its instant in UTC:
    `_usage_canonical_json`): the same event from JSONL or CSV hashes the same."""
    text = _usage_canonical_json(event) if type(event) is UsageRecorded else canonical_json(event)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_DECIMAL_FIELDS = frozenset({"amount", "tax_rate", "expected_rate", "overage_price", "legacy_monthly_amount", "cost"})


def _message(err: Any, loc: list[str], value: object) -> tuple[str, object]:
    """(message, value) of one pydantic error, in our words where pydantic's would mislead."""
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "json_invalid":
        return f"is not valid JSON ({err.get('ctx', {}).get('error', msg)})", NO_VALUE
    if kind == "missing":
        return "is missing", NO_VALUE
    if kind in ("rfc3339_instant", "iso_date"):
        return _format_message(kind, value), value
    if kind == "datetime_from_date_parsing":  # RFC 3339 in form, not a time (25:00, Feb 30): say it as strict parsing
        return _strict_instant_message(value) or msg, value
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NO_CONTROLS:
        return control_message(value), value
    if kind == "extra_forbidden":
        return "is not a field of this event type", value
    if kind == "model_type" and not loc:
        return "each line must be a JSON object", value
    if (kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and loc and loc[-1] in _DECIMAL_FIELDS):
        return "must be a string (amounts are decimal strings such as \"100.00\", not JSON numbers)", value
    if kind == "timezone_aware":
        return "needs an RFC 3339 offset such as Z or +01:00 (naive timestamps are refused)", value
    return msg, value


def _problems_from(exc: ValidationError, file: str, line: int) -> list[InputProblem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        kind = err["type"]
        value = err.get("input", NO_VALUE)
        if kind == "union_tag_invalid":
            loc, msg = ["type"], f"unknown event type; expected one of {', '.join(EVENT_TYPES)}"
            value = err.get("ctx", {}).get("tag", value)
        elif kind == "union_tag_not_found":
            loc, msg, value = ["type"], "is missing", NO_VALUE
        else:
            msg, value = _message(err, loc, value)
        if isinstance(value, dict) and kind not in ("model_type",):
            value = NO_VALUE
        out.append(InputProblem(file, line, ".".join(loc), value, msg))
    return out


MAX_LINE_BYTES = 1 << 20
"""The longest line of an event file (bytes, LF not counted) and JSON text of one event (characters):
1 MiB. An event is a few hundred bytes (docs/design.md §8.2 "Limits")."""


_KEY_END = re.compile(r'"[ \t\n\r]*:')
"""The end of a JSON key; also matched by an escaped quote before a colon in a string: counts every key."""


def parse_event(obj_or_text: str | dict, file: str, line: int, *, adapter: TypeAdapter | None = None
                ) -> tuple[SourcedEvent | None, list[InputProblem]]:
    """Validate one event (JSON text or an already decoded dict) against ``adapter`` (default:
    any event type, told apart by ``type``): (the event, []) or (None, problems). JSON text
    longer than `MAX_LINE_BYTES` characters, or with a key twice in one object, is refused: a
    valid event whose text has no more key ends than fields set repeats no key (a repeat, nested
    too, adds one), so `duplicate_keys` reads the text again only for the others."""
    adapter = adapter or _ADAPTER
    text = obj_or_text if isinstance(obj_or_text, str) else None
    if text is not None and len(text) > MAX_LINE_BYTES:
        return None, [InputProblem(file, line, "", NO_VALUE, f"is longer than {MAX_LINE_BYTES:,} characters "
                                   "(1 MiB): an event is at most that long")]
    try:
        event = adapter.validate_json(text) if text is not None else adapter.validate_python(obj_or_text)
    except ValidationError as exc:
        return None, _repeated(text, file, line) + _problems_from(exc, file, line)
    if text is not None and len(_KEY_END.findall(text)) > len(event.model_fields_set):
        if problems := _repeated(text, file, line):
            return None, problems
    # a business event keeps the JSON it is hashed by, which the posting stores (a usage event's is not stored)
    kept = None if type(event) is UsageRecorded else canonical_json(event)
    digest = content_hash(event) if kept is None else hashlib.sha256(kept.encode("utf-8")).hexdigest()
    return SourcedEvent(event, file, line, digest, kept), []


def parse_built_json(text: str, file: str, line: int, adapter: TypeAdapter | SchemaValidator
                     ) -> tuple[SourcedEvent | None, list[InputProblem]]:
    """`parse_event` of JSON text this program wrote (a CSV row's fixed keys, from a line within
    `MAX_LINE_BYTES`): validated and hashed, nothing else (the bulk usage path, once per row)."""
    try:
        event = adapter.validate_json(text)
    except ValidationError as exc:
        return None, _problems_from(exc, file, line)
    return SourcedEvent(event, file, line, content_hash(event)), []


def _repeated(text: str | None, file: str, line: int) -> list[InputProblem]:
    return [InputProblem(file, line, key, values, "is given more than once in one JSON object (each field must "
                         "appear once)") for key, values in (duplicate_keys(text) if text is not None else [])]
