"""The Starlette application of ``ledger serve`` (docs/design.md §8.6).

Endpoints (JSON; amounts are decimal strings in the customer's currency):

- ``POST /v1/events``: one event, or ``{"events": [...]}`` (1 to 1,000), each shaped as a line of
  an event file and validated as one (`ledger.event_schemas.parse_event`). 200 with one result
  per event (posted, duplicate, quarantined with its reason) once the transaction holding them
  has committed; 409 when an event id is already used with other content (the message names
  the source of the stored event and both hashes); 422 with every problem (event position,
  field, value, message) and nothing of the request posted; 401 without a valid bearer token;
  413 over ``max_body`` bytes (Content-Length, then the streamed body) or 1,000 events; 503
  when the database failed (send the same request again: it is idempotent).
- ``GET /v1/customers/{id}/balance``, ``GET /v1/customers/{id}/usage?from=&to=``,
  ``GET /v1/invoices/{number}`` and ``.../pdf``: 404 naming what is missing.
- ``GET /healthz`` (no token): 200 when the database answers and its schema is at head, else 503.
- ``GET /openapi.json`` (no token): the OpenAPI document (`ledger.http.openapi`).

POST /v1/events, the write load, is answered by a plain ASGI entry (`_Api`) ahead of Starlette's
middleware and routing, which serve the rest; a body of one event is validated from its text.
`create_app` takes a `ServeConfig`; `from_environment` is the factory uvicorn calls in each
worker process (the config as JSON in ``LEDGER_HTTP_CONFIG``, written by ``ledger serve``).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger.errors import NO_VALUE, InputProblem, NotFoundError
from ledger.event_schemas import duplicate_keys, parse_event
from ledger.http import auth, openapi
from ledger.http.alerts import AlertWorker
from ledger.http.batching import MAX_EVENTS, WINDOW, GroupCommitter
from ledger.services import alerting, serving
from ledger.services.serving import Outcome, Submission

CONFIG_ENV = "LEDGER_HTTP_CONFIG"
MAX_BODY = 4 * 1024 * 1024
"""Bytes of one request body at most (4 MiB): 1,000 events of a few hundred bytes fit many times."""


@dataclass(frozen=True)
class ServeConfig:
    """What a worker needs: the database URL, the catalog file (None: the default catalog), the
    token file (tokens also come from ``LEDGER_API_TOKENS``), the group window (seconds), the
    events of a group at most, the body limit (bytes) and the committer threads (PostgreSQL;
    SQLite takes 1)."""

    database_url: str
    catalog_path: str | None = None
    token_file: str | None = None
    window: float = WINDOW
    max_group_events: int = MAX_EVENTS
    max_body: int = MAX_BODY
    committers: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class _State:
    """One worker's engine, catalog, tokens and committer (made at start-up)."""

    def __init__(self, config: ServeConfig) -> None:
        from ledger.catalog import load_catalog
        from ledger.services.recording import open_books

        self.config = config
        self.tokens = auth.load_tokens(config.token_file)
        self.catalog = load_catalog(config.catalog_path, required=config.catalog_path is not None)
        self.engine, self.direct = open_books(config.database_url)
        self.alerts = None
        if self.catalog.model.webhooks.urls:
            secret = os.environ.get(alerting.SECRET_ENV, "")
            if len(secret) < 16:
                raise auth.TokenError(f"the catalog names webhook URLs: set {alerting.SECRET_ENV} (at least 16 "
                                      "characters) to sign their payloads")
            self.alerts = AlertWorker(self.engine, self.catalog, secret)
        self.committer = GroupCommitter(self._post, window=config.window, max_events=config.max_group_events,
                                        threads=config.committers if serving.concurrent_writers(self.engine) else 1)
        self.tag = f"{os.getpid()}"
        self.counter = itertools.count(1)

    def _post(self, subs: list[Submission]) -> list[Outcome]:
        """Post a group; then note the customers it changed for the usage alerts."""
        outcomes = serving.post_requests(self.engine, self.catalog, subs, direct=self.direct)
        if self.alerts is not None:
            done = [se.event for sub, o in zip(subs, outcomes) if o.status == "ok" for se in sub.events]
            customers = {cid for ev in done if (cid := getattr(ev, "customer_id", None))}
            if customers:
                latest = max(ev.occurred_at for ev in done).astimezone(self.catalog.tz)
                self.alerts.note(customers, f"{latest.year:04d}-{latest.month:02d}")
        return outcomes

    def start(self) -> None:
        # What exists now (modules, the app, the catalog) stays out of the cyclic collector's
        # passes, and its young generation is collected every 50,000 allocations instead of 700,
        # as `ledger.services.collector.collector_relaxed` does for imports: a group's books and
        # rows would otherwise be scanned again and again (p99 under 64 connections: 179 -> 153 ms
        # and 271 -> 207 ms in two side-by-side runs on the shared machine, same throughput)
        gc.freeze()
        gc.set_threshold(50_000, *gc.get_threshold()[1:])
        self.committer.start()
        if self.alerts is not None:
            self.alerts.start()

    def close(self) -> None:
        self.committer.stop()
        if self.alerts is not None:
            self.alerts.stop()
        self.engine.dispose()


def _error(status: int, error: str, message: str, problems: list[dict] | None = None,
           headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, headers=headers)


def _plain(value: object) -> Any:
    """A problem's value as JSON can carry it (what was sent, or its text)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _problem(p: InputProblem, events: list | None = None) -> dict:
    out: dict[str, Any] = {"event": p.line, "field": p.field, "message": p.message}
    if events and 1 <= p.line <= len(events):
        out["id"] = events[p.line - 1]
    if p.value is not NO_VALUE:
        out["value"] = _plain(p.value)
    return out


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    """The client disconnected before its body was read."""


async def _body(receive: Callable, declared: str | None, limit: int) -> bytes:
    """The body read from ASGI ``receive``, refused (`_TooLarge`) past ``limit`` bytes: by
    Content-Length (``declared``), then as it streams; `_Gone` when the client went."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(f"the body is {int(declared):,} bytes; at most {limit:,}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"the body is over {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_SMALL = 16_384
"""Characters of a body at most that `_parse` first tries as one event (an event is a few hundred)."""


def _parse(text: str, file: str) -> tuple[list, list[InputProblem], list]:
    """(events, problems, ids) of a body: one event, or {"events": [...]} (`_TooLarge` over
    1,000). Each event is validated as line n of an event file named ``file``."""
    if len(text) <= _SMALL:  # most often one valid event: validated from the text without decoding it first
        se, problems = parse_event(text, file, 1)
        if se is not None:  # an event validates only as an object with "type" and no other key: one event
            return [se], [], [se.event.id]
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return [], [InputProblem(file, 0, "", NO_VALUE, f"is not valid JSON ({exc})")], []
    if not (isinstance(obj, dict) and "events" in obj and "type" not in obj):
        se, problems = parse_event(text, file, 1)
        return ([se] if se else []), problems, [obj.get("id") if isinstance(obj, dict) else None]
    items = obj["events"]
    if set(obj) != {"events"} or not isinstance(items, list) or not items:
        extra = sorted(set(obj) - {"events"})
        why = (f"has other keys than 'events': {', '.join(extra)}" if extra
               else "'events' must be a list of 1 to 1,000 events")
        return [], [InputProblem(file, 0, "events" if not extra else "", NO_VALUE, why)], []
    if len(items) > MAX_EVENTS:
        raise _TooLarge(f"{len(items):,} events in one request; at most {MAX_EVENTS:,}")
    events, problems = [], [InputProblem(file, 0, f"events.{key}", values, "is given more than once in one JSON "
                                         "object (each field must appear once)")
                            for key, values in duplicate_keys(text)]
    for n, item in enumerate(items, 1):
        se, found = parse_event(json.dumps(item, ensure_ascii=False) if isinstance(item, dict) else item, file, n)
        problems.extend(found)
        if se is not None:
            events.append(se)
    return events, problems, [it.get("id") if isinstance(it, dict) else None for it in items]


def _answer(outcome: Outcome, ids: list) -> JSONResponse:
    if outcome.status == "ok":
        counts = {k: sum(1 for r in outcome.results if r["status"] == s)
                  for k, s in (("posted", "posted"), ("duplicates", "duplicate"), ("quarantined", "quarantined"))}
        return JSONResponse({"results": outcome.results, **counts, "invoices": outcome.invoices})
    if outcome.status == "refused":
        problems = [_problem(p, ids) for p in outcome.problems]
        if outcome.conflict:
            return _error(409, "conflict", "an event id is already used with other content; nothing of this "
                          "request was posted: " + "; ".join(p.message for p in outcome.problems), problems)
        n = len(problems)
        return _error(422, "invalid", f"{n} problem{'' if n == 1 else 's'} in the request; nothing of it was posted",
                      problems)
    return _error(503, "unavailable", f"the events were not posted ({outcome.message}); send the same request "
                  "again (events are idempotent by id)")


async def _post_events(state: _State, header: Callable[[str], str | None], receive: Callable) -> Response:
    """The answer to POST /v1/events, given the request's ``header(name)`` and ASGI ``receive``
    (raises `_Gone` when the client went before sending its body)."""
    if not auth.allowed(header("authorization"), state.tokens):
        return _error(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                      headers={"WWW-Authenticate": "Bearer"})
    file = f"http:{state.tag}-{next(state.counter)}"
    try:
        raw = await _body(receive, header("content-length"), state.config.max_body)
        text = raw.decode("utf-8")
        events, problems, ids = _parse(text, file)
    except _TooLarge as exc:
        return _error(413, "too_large", str(exc))
    except UnicodeDecodeError as exc:
        return _error(422, "invalid", f"the body is not UTF-8 ({exc.reason} at byte {exc.start})")
    if problems:
        n = len(problems)
        return _error(422, "invalid", f"{n} problem{'' if n == 1 else 's'} in the request; nothing of it was posted",
                      [_problem(p, ids) for p in problems])
    outcome = await state.committer.submit(Submission(file, events))
    return _answer(outcome, ids)


async def post_events(request: Request) -> Response:
    """POST /v1/events as a Starlette endpoint (`_Api` answers it first, without routing)."""
    try:
        return await _post_events(request.app.state.ledger, request.headers.get, request.receive)
    except _Gone:
        return Response(status_code=400)


class _Api:
    """The ASGI application: POST /v1/events (every request of the write load) answered here,
    without Starlette's middleware, routing and request objects; anything else by ``app``.
    ``state`` is ``app``'s (``state.ledger``: the `_State`)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]

        def header(name: str) -> str | None:
            key = name.encode("latin-1")
            return next((v.decode("latin-1") for k, v in headers if k == key), None)

        try:
            response = await _post_events(self.state.ledger, header, receive)
        except _Gone:
            return  # nobody to answer
        await response(scope, receive, send)


def _guarded(read):
    """A GET endpoint: token checked, the read run on a thread, NotFoundError -> 404, ValueError -> 422."""
    async def endpoint(request: Request) -> Response:
        state: _State = request.app.state.ledger
        if not auth.allowed(request.headers.get("authorization"), state.tokens):
            return _error(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            return await run_in_threadpool(read, state, request)
        except NotFoundError as exc:
            return _error(404, "not_found", str(exc))
        except ValueError as exc:
            return _error(422, "invalid", str(exc))
    return endpoint


def _balance(state: _State, request: Request) -> Response:
    return JSONResponse(serving.customer_balance(state.engine, request.path_params["customer_id"]))


def _usage(state: _State, request: Request) -> Response:
    q = request.query_params
    missing = [k for k in ("from", "to") if not q.get(k)]
    if missing:
        raise ValueError(f"query parameter(s) {' and '.join(repr(m) for m in missing)} missing: "
                         "?from=2026-01-01&to=2026-02-01 (from inclusive, to exclusive)")
    return JSONResponse(serving.customer_usage(state.engine, state.catalog, request.path_params["customer_id"],
                                               q["from"], q["to"]))


def _invoice(state: _State, request: Request) -> Response:
    return JSONResponse(serving.invoice(state.engine, request.path_params["number"]))


def _invoice_pdf(state: _State, request: Request) -> Response:
    number = request.path_params["number"]
    serving.invoice(state.engine, number)  # 404 before rendering anything
    with tempfile.TemporaryDirectory(prefix="ledger-pdf-") as folder:
        pdf = serving.invoice_pdf(state.engine, state.catalog, number, folder)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{number}.pdf"'})


async def healthz(request: Request) -> Response:
    state: _State = request.app.state.ledger
    ok, details = await run_in_threadpool(serving.health, state.engine)
    details["group_commit"] = {"worker": os.getpid(), "groups": state.committer.groups,
                               "requests": state.committer.requests, "paths": serving.path_counts()}
    return JSONResponse(details, status_code=200 if ok else 503)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.document())


def create_app(config: ServeConfig) -> _Api:
    """The ASGI application for ``config`` (Starlette's routes, with POST /v1/events answered
    ahead of them; ``.state.ledger`` holds the worker's state): its engine, catalog, tokens and
    group committer are made at start-up (raises NotInitialisedError, CatalogError, auth.TokenError) and released at
    shutdown, after the committer has answered what was queued."""
    state = _State(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state.start()
        try:
            yield
        finally:
            state.close()

    app = Starlette(routes=[
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/customers/{customer_id}/balance", _guarded(_balance), methods=["GET"]),
        Route("/v1/customers/{customer_id}/usage", _guarded(_usage), methods=["GET"]),
        Route("/v1/invoices/{number}", _guarded(_invoice), methods=["GET"]),
        Route("/v1/invoices/{number}/pdf", _guarded(_invoice_pdf), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.ledger = state
    return _Api(app)


def from_environment() -> _Api:
    """uvicorn's factory in each worker: `create_app` of the `ServeConfig` in ``LEDGER_HTTP_CONFIG``."""
    return create_app(ServeConfig(**json.loads(os.environ[CONFIG_ENV])))
