"""Event schemas (docs/design.md §8.2) and the readers for JSONL event files and CSV usage files.

Parsing never raises on bad input: every problem becomes an InputProblem naming file, line,
field and value, so an import can report them all and post nothing. Amounts stay decimal
strings here; they are converted to minor units once the customer's currency is known.

Example line::

    {"id": "evt-1", "type": "topup.purchased", "occurred_at": "2026-01-05T10:00:00Z",
     "customer_id": "cus_001", "topup_id": "top-1", "credits": 1000, "amount": "20.00",
     "expires_at": "2027-01-05T00:00:00Z"}
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, Union

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

from ledger.errors import NO_VALUE, InputProblem
from ledger.core.money import INT64_MAX, is_currency, parse_decimal

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
Credits = Annotated[int, Field(gt=0, le=INT64_MAX)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _decimal(value: str) -> str:
    parse_decimal(value)
    return value


def _positive_decimal(value: str) -> str:
    if parse_decimal(value) <= 0:
        raise ValueError("must be positive")
    return value


MAX_UNIT_PRICE = 1_000_000


def _unit_price(value: str) -> str:
    """A per-credit price: positive, at most 1,000,000 major units."""
    _positive_decimal(value)
    if parse_decimal(value) > MAX_UNIT_PRICE:
        raise ValueError(f"must be at most {MAX_UNIT_PRICE} per credit")
    return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    id: Id
    occurred_at: AwareDatetime


class CustomerCreated(_Event):
    """A customer with one currency (ISO 4217) and a sales tax rate (decimal string, 0 <= r < 1)."""

    type: Literal["customer.created"]
    customer_id: CustomerId
    name: Text
    currency: str
    tax_rate: str = "0"
    address: list[Annotated[str, StringConstraints(max_length=200)]] = Field(default_factory=list, max_length=10)
    email: Annotated[str, StringConstraints(max_length=200)] | None = None
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
        r = parse_decimal(v)
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

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    percent: int = Field(ge=0, le=100)
    max_periods: int | None = Field(default=None, ge=1, le=1200)
    max_credits: int | None = Field(default=None, ge=0, le=INT64_MAX)
    expires: bool = True


def _breakage_rate(v: str) -> str:
    r = parse_decimal(v)
    if not 0 <= r < 1:
        raise ValueError("must be between 0 and 1, 1 excluded (e.g. \"0.03\")")
    return v


class BreakagePolicy(BaseModel):
    """at_expiry (remote method) or proportional with an expected breakage rate (ASC 606-10-55-48)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
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
    term_start: date
    term_end: date
    rollover: RolloverPolicy | None = None
    renews: Id | None = None
    overage_price: str | None = None
    breakage: BreakagePolicy | None = None

    _amount = field_validator("amount")(classmethod(lambda cls, v: _decimal(v)))
    _price = field_validator("overage_price")(classmethod(lambda cls, v: v if v is None else _unit_price(v)))

    @field_validator("term_end")
    @classmethod
    def _term_end(cls, v: date) -> date:
        if v.year >= 9999:
            raise ValueError("is out of range (a term must end before 9999-12-31)")
        return v

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
    expires_at: AwareDatetime | None = None

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
    expires_at: AwareDatetime | None = None
    reason: Text = "promotional"


class UsageRecorded(_Event):
    """Metered usage in credits (``action`` + ``quantity`` is priced through the rate card)."""

    type: Literal["usage.recorded"]
    customer_id: CustomerId
    credits: Credits | None = None
    action: Id | None = None
    quantity: Credits | None = None

    @model_validator(mode="after")
    def _shape(self):
        if (self.credits is None) == (self.action is None):
            raise ValueError("needs either 'credits' or 'action' + 'quantity'")
        if self.action is not None and self.quantity is None:
            raise ValueError("'action' needs a 'quantity'")
        return self


class PaymentReceived(_Event):
    """Cash received: amount (positive decimal string), optionally for one invoice."""

    type: Literal["payment.received"]
    customer_id: CustomerId
    amount: str
    invoice_number: Annotated[str, StringConstraints(max_length=32)] | None = None

    _amount = field_validator("amount")(classmethod(lambda cls, v: _positive_decimal(v)))


class SubscriptionStarted(_Event):
    """A catalog plan billed monthly in advance from start_date (the first month prorated by days)."""

    type: Literal["subscription.started"]
    customer_id: CustomerId
    plan: Id
    start_date: date


class SubscriptionCancelled(_Event):
    """Billing stops after end_date (inclusive); a month already billed is not reversed."""

    type: Literal["subscription.cancelled"]
    customer_id: CustomerId
    end_date: date


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


AnyEvent = Annotated[
    Union[CustomerCreated, CommitmentPurchased, TopupPurchased, CreditsGranted, UsageRecorded, PaymentReceived,
          SubscriptionStarted, SubscriptionCancelled, RefundIssued, BreakageEstimateChanged, GuaranteeEnrolled,
          EventVoided],
    Field(discriminator="type"),
]
EVENT_TYPES = ("customer.created", "subscription.started", "subscription.cancelled", "commitment.purchased",
               "topup.purchased", "credits.granted", "usage.recorded", "payment.received", "refund.issued",
               "breakage.estimate_changed", "guarantee.enrolled", "event.voided")
_ADAPTER: TypeAdapter = TypeAdapter(AnyEvent)


@dataclass(frozen=True, slots=True)
class SourcedEvent:
    """A validated event with where it came from and its content hash (sha256 hex)."""

    event: BaseModel
    file: str
    line: int
    content_hash: str

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
    """`canonical_json` of a usage event, written directly (a bulk import hashes every line,
    twice): its strings match the Id patterns, which admit nothing JSON escapes, and the
    instant is serialised by pydantic as in ``model_dump(mode="json")``. Equality with
    `canonical_json` is a property test (tests/test_events.py)."""
    at = _INSTANT.dump_python(event.occurred_at, mode="json")
    return (f'{{"action":{_json_scalar(event.action)},"credits":{_json_scalar(event.credits)},'
            f'"customer_id":"{event.customer_id}","id":"{event.id}","occurred_at":"{at}",'
            f'"quantity":{_json_scalar(event.quantity)},"type":"usage.recorded"}}')


def content_hash(event: BaseModel) -> str:
    """sha256 of the canonical JSON: the same event from JSONL or CSV hashes the same."""
    text = _usage_canonical_json(event) if type(event) is UsageRecorded else canonical_json(event)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _problems_from(exc: ValidationError, file: str, line: int) -> list[InputProblem]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        kind = err["type"]
        value = err.get("input", NO_VALUE)
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "json_invalid":
            msg = f"is not valid JSON ({err.get('ctx', {}).get('error', msg)})"
            value = NO_VALUE
        elif kind == "union_tag_invalid":
            loc, msg = ["type"], f"unknown event type; expected one of {', '.join(EVENT_TYPES)}"
            value = err.get("ctx", {}).get("tag", value)
        elif kind == "union_tag_not_found":
            loc, msg, value = ["type"], "is missing", NO_VALUE
        elif kind == "missing":
            value = NO_VALUE
            msg = "is missing"
        elif kind == "extra_forbidden":
            msg = "is not a field of this event type"
        elif kind == "model_type" and not loc:
            msg = "each line must be a JSON object"
        elif kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
            msg = "must be a string (amounts are decimal strings such as \"100.00\", not JSON numbers)"
        elif kind == "timezone_aware":
            msg = "needs an RFC 3339 offset such as Z or +01:00 (naive timestamps are refused)"
        if isinstance(value, dict) and kind not in ("model_type",):
            value = NO_VALUE
        out.append(InputProblem(file, line, ".".join(loc), value, msg))
    return out


def parse_event(obj_or_text: str | dict, file: str, line: int, *, adapter: TypeAdapter | None = None
                ) -> tuple[SourcedEvent | None, list[InputProblem]]:
    """Validate one event (JSON text or an already decoded dict) against ``adapter`` (default:
    any event type, told apart by ``type``)."""
    adapter = adapter or _ADAPTER
    try:
        if isinstance(obj_or_text, str):
            event = adapter.validate_json(obj_or_text)
        else:
            event = adapter.validate_python(obj_or_text)
    except ValidationError as exc:
        return None, _problems_from(exc, file, line)
    return SourcedEvent(event, file, line, content_hash(event)), []


_BOM = "starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 without BOM"


def _text_lines(raw_lines: Iterable[bytes], file: str) -> Iterator[tuple[int, str | None, list[InputProblem]]]:
    """(line number, text or None, problems) per non-blank line; CRLF accepted; a BOM and
    invalid UTF-8 reported. Streams: holds one line at a time."""
    for n, raw in enumerate(raw_lines, start=1):
        problems: list[InputProblem] = []
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            problems.append(InputProblem(file, 1, "", NO_VALUE, _BOM))
            raw = raw[3:]
        raw = raw.rstrip(b"\n")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(InputProblem(file, n, "", raw[max(0, exc.start - 10):exc.end + 10],
                                         f"is not valid UTF-8 (byte {exc.start + 1} of the line)"))
            yield n, None, problems
            continue
        if text.strip() or problems:
            yield n, text if text.strip() else None, problems


USAGE_HEADERS = (("event_id", "customer_id", "occurred_at", "credits"),
                 ("event_id", "customer_id", "occurred_at", "action", "quantity"))


def _jsonl_events(lines, file: str) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    for n, text, problems in lines:
        if text is None:
            yield None, problems
            continue
        ev, probs = parse_event(text, file, n)
        yield ev, problems + probs


_CSV_PLAIN = re.compile(r'[^"\r\x00]*')
"""A CSV line that `str.split` cuts exactly as `csv.reader` does: no quote, CR or NUL."""
_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
"""Text that is a JSON string's body as it stands: nothing JSON escapes (quote, backslash, controls)."""
_USAGE_ADAPTER: TypeAdapter = TypeAdapter(UsageRecorded)


def csv_cells(text: str) -> list[str]:
    """One CSV line's cells, as ``csv.reader`` reads them (a plain line is split on commas
    directly: the bulk usage path reads a million of them). raises csv.Error (a CR inside an
    unquoted cell)."""
    if _CSV_PLAIN.fullmatch(text):
        return text.split(",")
    return next(csv.reader(io.StringIO(text)), [])


def csv_error_message(exc: csv.Error) -> str:
    """The problem's message for a line that ``csv.reader`` refuses."""
    if "new-line character" in str(exc):
        return "has a carriage return (CR) inside an unquoted cell; quote the cell or remove the CR"
    return f"is not a valid CSV line ({exc})"


def _usage_json(row: dict[str, str], counts: dict[str, int], plain: bool) -> str:
    """A usage CSV row as the JSON object of its event (the cells as strings, ``credits`` and
    ``quantity`` as the integers ``counts``), for the event schema to validate. ``plain``: the
    line holds nothing JSON escapes, so a row of the ``credits`` header is written as it stands
    (the bulk path); anything else goes through ``json.dumps``."""
    if plain and "action" not in row and "credits" in counts:
        return (f'{{"id":"{row["event_id"]}","type":"usage.recorded","occurred_at":"{row["occurred_at"]}",'
                f'"customer_id":"{row["customer_id"]}","credits":{counts["credits"]}}}')
    obj = {"id": row["event_id"], "type": "usage.recorded", "occurred_at": row["occurred_at"],
           "customer_id": row["customer_id"]}
    if "action" in row:
        obj["action"] = row["action"]
    return json.dumps(obj | counts)


def _csv_events(lines, file: str, customers: Container[str] | None = None
                ) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    """Usage events of a CSV file's lines; with ``customers``, the rows of other customers are
    skipped unread (for a second pass over input that a first pass has checked)."""
    header: tuple[str, ...] | None = None
    seen = False
    for n, text, problems in lines:
        seen = True
        if text is None:
            yield None, problems
            continue
        try:
            cells = csv_cells(text)
        except csv.Error as exc:
            yield None, problems + [InputProblem(file, n, "", text, csv_error_message(exc))]
            if header is None:
                return
            continue
        if header is None:
            found = tuple(h.strip() for h in cells)
            if found not in USAGE_HEADERS:
                yield None, problems + [InputProblem(file, n, "", text, "unexpected header; expected "
                                                     + " or ".join(",".join(h) for h in USAGE_HEADERS))]
                return
            header = found
            if problems:
                yield None, problems
            continue
        if len(cells) != len(header):
            yield None, problems + [InputProblem(file, n, "", text, f"has {len(cells)} fields; the header has {len(header)}")]
            continue
        row = dict(zip(header, cells))
        if customers is not None and row["customer_id"] not in customers:
            continue
        counts: dict[str, int] = {}
        for key in ("credits", "quantity"):
            if key in row:
                value = row[key]
                if not (value.isascii() and value.isdigit()):
                    problems.append(InputProblem(file, n, key, value, "must be a whole number"))
                else:
                    counts[key] = int(value)
        if problems:
            yield None, problems
            continue
        yield parse_event(_usage_json(row, counts, _JSON_PLAIN.fullmatch(text) is not None), file, n,
                          adapter=_USAGE_ADAPTER)
    if not seen:
        yield None, [InputProblem(file, 1, "", NO_VALUE, "is empty; expected a header line")]


def iter_file(path: str | Path, data: bytes | None = None, *, customers: Container[str] | None = None
              ) -> Iterator[tuple[SourcedEvent | None, list[InputProblem]]]:
    """Stream a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``, bulk usage) file:
    (event or None, problems) per line, in file order, holding one line at a time. A file that
    cannot be read yields one problem. ``customers``: a CSV file's rows for other customers are
    skipped before they are validated (a JSONL file's events are all yielded)."""
    file = str(path)
    p = Path(path)
    if data is not None:
        raw_lines: Iterable[bytes] = io.BytesIO(data)
        handle = None
    else:
        try:
            handle = p.open("rb")
        except OSError as exc:
            yield None, [InputProblem(file, 0, "", NO_VALUE, f"cannot be read: {exc.strerror}")]
            return
        raw_lines = handle
    try:
        lines = _text_lines(raw_lines, file)
        yield from (_csv_events(lines, file, customers) if p.suffix.lower() == ".csv" else _jsonl_events(lines, file))
    finally:
        if handle is not None:
            handle.close()


def _collect(items) -> tuple[list[SourcedEvent], list[InputProblem]]:
    events, problems = [], []
    for ev, probs in items:
        problems.extend(probs)
        if ev is not None:
            events.append(ev)
    return events, problems


def read_jsonl(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL event file: (events in file order, problems)."""
    file = str(path)
    if data is None:
        data = Path(path).read_bytes()
    return _collect(_jsonl_events(_text_lines(io.BytesIO(data), file), file))


def read_usage_csv(path: str | Path, data: bytes | None = None) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read bulk usage CSV (header ``event_id,customer_id,occurred_at,credits`` or with
    ``action,quantity``): (usage.recorded events, problems)."""
    file = str(path)
    if data is None:
        data = Path(path).read_bytes()
    return _collect(_csv_events(_text_lines(io.BytesIO(data), file), file))


def read_file(path: str | Path) -> tuple[list[SourcedEvent], list[InputProblem]]:
    """Read a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``) file of events."""
    return _collect(iter_file(path))
