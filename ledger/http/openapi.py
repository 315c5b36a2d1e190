"""The OpenAPI 3.1 document of the HTTP API, written from the event schemas.

The request body of ``POST /v1/events`` is the JSON schema pydantic derives from
`ledger.event_schemas.AnyEvent` (one model per event type, told apart by ``type``): the same
models that validate a line of an event file, so the document cannot drift from the validation.
The rest (responses, the other paths) is written here by hand.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter

from ledger.event_schemas import AnyEvent

MAX_EVENTS = 1_000
"""Events in one request at most."""

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict | str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}}}


_PROBLEM = {"type": "object", "required": ["event", "field", "message"], "properties": {
    "event": {"type": "integer", "description": "1-based position of the event in the request (0: the request)"},
    "id": {"type": ["string", "null"]}, "field": {"type": "string", "description": "dotted path, '' for the event"},
    "value": {"description": "the value refused, as sent"}, "message": {"type": "string"}}}
_ERROR = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"},
    "problems": {"type": "array", "items": _ref("Problem")}}}
_RESULT = {"type": "object", "required": ["id", "status"], "properties": {
    "id": {"type": "string"}, "status": {"enum": ["posted", "duplicate", "quarantined"]},
    "reason": {"type": "string", "description": "why a usage event was quarantined (hard cap)"},
    "late": {"type": "boolean", "description": "posted on the first day of the first open period"}}}
_POSTED = {"type": "object", "required": ["results", "posted", "duplicates", "quarantined"], "properties": {
    "results": {"type": "array", "items": _ref("EventResult")}, "posted": {"type": "integer"},
    "duplicates": {"type": "integer"}, "quarantined": {"type": "integer"},
    "invoices": {"type": "array", "items": {"type": "string"}}}}
_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "decimal string in the currency"}
_BALANCE = {"type": "object", "properties": {
    "customer_id": {"type": "string"}, "currency": {"type": "string"}, "credits": {"type": "integer"},
    "grants": {"type": "array", "items": {"type": "object", "properties": {
        "grant_id": {"type": "string"}, "source": {"type": "string"}, "units": {"type": "integer"},
        "remaining": {"type": "integer"}, "effective_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"}, "deferred": _MONEY}}},
    "deferred": _MONEY, "receivables": _MONEY,
    "open_invoices": {"type": "array", "items": {"type": "object", "properties": {
        "number": {"type": "string"}, "issue_date": {"type": "string", "format": "date"},
        "due_date": {"type": "string", "format": "date"}, "total": _MONEY, "open": _MONEY}}}}}
_USAGE = {"type": "object", "properties": {
    "customer_id": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
    "events": {"type": "integer"}, "credits": {"type": "integer"}, "overage_units": {"type": "integer"},
    "quarantined": {"type": "integer"}, "quarantined_credits": {"type": "integer"}}}

_AUTH = {"401": _json("Error", "no valid bearer token")}
_NOT_FOUND = {"404": _json("Error", "no such customer or invoice (named in the message)")}


def _paths() -> dict[str, Any]:
    body = {"oneOf": [_ref("Event"), {"type": "object", "required": ["events"], "additionalProperties": False,
                                      "properties": {"events": {"type": "array", "minItems": 1,
                                                                "maxItems": MAX_EVENTS, "items": _ref("Event")}}}]}
    post = {"summary": "Post one event or a list of events (each shaped as a line of an event file)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": _json("Posted", "per-event outcome; the transaction has committed"),
                          **_AUTH,
                          "409": _json("Error", "an event id is already used with other content (both named); "
                                                "nothing of the request posted"),
                          "413": _json("Error", "body over the size limit, or more than 1,000 events"),
                          "422": _json("Error", "invalid events, with every field named; nothing of the "
                                                "request posted")}}
    customer = {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "string"}}
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    window = [{"name": n, "in": "query", "required": True, "schema": {"type": "string"},
               "description": "a date (midnight, reporting timezone) or an RFC 3339 instant; from inclusive, "
                              "to exclusive"} for n in ("from", "to")]
    return {
        "/v1/events": {"post": post},
        "/v1/customers/{customer_id}/balance": {"get": {
            "summary": "Credits by grant, deferred revenue, open receivables", "parameters": [customer],
            "responses": {"200": _json("Balance", "the customer's position"), **_AUTH, **_NOT_FOUND}}},
        "/v1/customers/{customer_id}/usage": {"get": {
            "summary": "Usage posted and quarantined in a window", "parameters": [customer, *window],
            "responses": {"200": _json("Usage", "counts and credits"), **_AUTH, **_NOT_FOUND,
                          "422": _json("Error", "a bound that is not a date or instant")}}},
        "/v1/invoices/{number}": {"get": {
            "summary": "One invoice or credit note with its lines", "parameters": [number],
            "responses": {"200": {"description": "the document; amounts as decimal strings"}, **_AUTH, **_NOT_FOUND}}},
        "/v1/invoices/{number}/pdf": {"get": {
            "summary": "The PDF/A-3 of one invoice or credit note", "parameters": [number],
            "responses": {"200": {"description": "the PDF", "content": {"application/pdf": {}}}, **_AUTH,
                          **_NOT_FOUND}}},
        "/healthz": {"get": {"summary": "Database reachable and migrations at head", "security": [],
                             "responses": {"200": {"description": "healthy"}, "503": {"description": "not"}}}},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a dict, built once)."""
    events = TypeAdapter(AnyEvent).json_schema(ref_template=_REF)
    schemas = dict(events.pop("$defs", {}))
    schemas["Event"] = events
    schemas.update(Problem=_PROBLEM, Error=_ERROR, EventResult=_RESULT, Posted=_POSTED, Balance=_BALANCE,
                   Usage=_USAGE)
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("credit-ledger")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        release = "0"
    return {"openapi": "3.1.0",
            "info": {"title": "credit-ledger HTTP API", "version": release,
                     "description": "Events in, books out: every event is validated as a line of an event file "
                                    "and posted with the same idempotency by event id. Amounts are decimal strings."},
            "paths": _paths(),
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}]}
