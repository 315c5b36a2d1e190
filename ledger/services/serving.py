"""The use cases behind the HTTP API (``ledger.http``, docs/design.md §8.6): post the events of
several requests in one transaction (group commit), and read one customer's position, its usage,
an invoice, the database's health.

`post_requests` is the write path: the events of every request of a group are validated as the
lines of an event file (each request is a "file" named ``http:<tag>``, its events lines 1..n)
and posted by `ledger.services.importing.import_events`, in one transaction, with the same
idempotency by event id and the same customer locks as ``ledger import``. When the books refuse
an event, the problem names its request's "file": that request alone is answered with its
problems and the group is posted again without it, so a refused event never refuses a neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from ledger.catalog import Catalog
from ledger.core.money import major_str
from ledger.core.posting import ImportSummary
from ledger.errors import InputProblem, InvalidInputError, NotFoundError
from ledger.events import SourcedEvent, UsageRecorded
from ledger.services.importing import import_events
from ledger.store import customer_views as views
from ledger.store.admin import session_on
from ledger.store.db import SCHEMA_HEAD, current_revision, is_postgres
from ledger.store.grouped import all_kept, groupable, post_usage_group
from ledger.store.pipeline import ATTEMPTS, post_usage

if TYPE_CHECKING:
    from ledger.store.admin import Engine


@dataclass
class Submission:
    """One request's events, validated (``file``: ``http:<tag>``, each event's line its 1-based
    position in the request)."""

    file: str
    events: list[SourcedEvent]


@dataclass
class Outcome:
    """What became of one `Submission`: ``status`` "ok" with one result per event
    ({"id", "status": posted | duplicate | quarantined, "reason"?, "late"?}) and the invoices
    issued; "refused" (nothing of it posted) with its ``problems``, ``conflict`` when every one is
    an event id already used with other content; "error" with ``message`` (a database failure)."""

    status: str
    results: list[dict] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    conflict: bool = False
    message: str = ""


def _is_conflict(p: InputProblem) -> bool:
    return p.field == "id" and "same event id, different content" in p.message


def _refused(problems: list[InputProblem]) -> Outcome:
    return Outcome("refused", problems=problems, conflict=all(_is_conflict(p) for p in problems))


def _results(sub: Submission, summary: ImportSummary) -> list[dict]:
    """Per event of ``sub``: posted, duplicate or quarantined (with its reason), from the
    summary of the transaction that held it."""
    dup = set(summary.duplicate_sources)
    held = dict(summary.quarantine)
    late = set(summary.late_events)
    out = []
    for se in sub.events:
        if se.source in dup:
            out.append({"id": se.id, "status": "duplicate"})
        elif se.id in held:
            out.append({"id": se.id, "status": "quarantined", "reason": held[se.id]})
        else:
            out.append({"id": se.id, "status": "posted"} | ({"late": True} if se.id in late else {}))
    return out


def _post(engine: Engine, catalog: Catalog, subs: list[Submission], direct: bool) -> ImportSummary:
    """One transaction for ``subs``: `import_events`, or for a lone usage event with ``direct``
    (PostgreSQL) the pipelined path of the Python API (`ledger.store.pipeline.post_usage`, same
    books), which declines (None) what the general path must answer."""
    events = [se for sub in subs for se in sub.events]
    with session_on(engine) as session:
        if direct and len(events) > 1 and groupable(events) and all_kept(str(engine.url), events):
            summary = post_usage_group(session, catalog, events, [sub.file for sub in subs])
            if summary is not None:
                return summary
        if direct and len(subs) == 1 and len(subs[0].events) == 1 and isinstance(subs[0].events[0].event,
                                                                                  UsageRecorded):
            se = subs[0].events[0]
            summary = post_usage(session, catalog, se, [subs[0].file])
            if summary is not None:
                if summary.duplicates and not summary.duplicate_sources:
                    summary.duplicate_sources = [se.source]
                return summary
        return import_events(session, catalog, events, sources=[sub.file for sub in subs])


def post_requests(engine: Engine, catalog: Catalog, subs: list[Submission], *, direct: bool = False
                  ) -> list[Outcome]:
    """Post the events of every submission in one transaction (committed), one `Outcome` per
    submission, in order; each outcome holds only once its transaction has committed (or has
    been rolled back, for a refused submission).

    A submission whose events the books refuse (an unknown customer, an id used with other
    content, a rule of the posting) is answered "refused" with its problems and the others are
    posted again without it. Any other failure of a group of several submissions posts each one
    alone, so it is answered for the submission that caused it ("error"), not its neighbours.
    Never raises for a submission: a failure is its outcome. ``direct`` (PostgreSQL; see
    `open_books`): a group of usage events over books this process keeps takes
    `ledger.store.grouped.post_usage_group` (the submissions of customers it does not keep yet
    are then posted first, in a transaction of their own), a group of one usage event the
    pipelined path of the Python API.
    """
    if direct and len(subs) > 1:
        cold = _cold(engine, subs)
        if 0 < len(cold) < len(subs):  # two transactions: the kept customers' requests, then the others
            warm = [sub for sub in subs if sub.file not in cold]
            done = dict(zip(cold, post_requests(engine, catalog, list(cold.values()), direct=direct)))
            done.update(zip((sub.file for sub in warm), post_requests(engine, catalog, warm, direct=direct)))
            return [done[sub.file] for sub in subs]
    outcomes: dict[str, Outcome] = {}
    pending = list(subs)
    while pending:
        try:
            summary = _post(engine, catalog, pending, direct)
        except InvalidInputError as exc:
            mine: dict[str, list[InputProblem]] = {}
            for p in exc.problems:
                mine.setdefault(p.file, []).append(p)
            named = [sub for sub in pending if sub.file in mine]
            if not named:  # a problem no request is named by: each alone tells whose it is
                return [outcomes.get(sub.file) or _alone(engine, catalog, sub, direct) for sub in subs]
            for sub in named:
                outcomes[sub.file] = _refused(mine[sub.file])
            pending = [sub for sub in pending if sub.file not in mine]
            continue
        except Exception as exc:  # noqa: BLE001 -- a database failure: each submission alone says whose
            if len(pending) == 1:
                outcomes[pending[0].file] = _error(exc)
                break
            return [outcomes.get(sub.file) or _alone(engine, catalog, sub, direct) for sub in subs]
        for sub in pending:
            outcomes[sub.file] = Outcome("ok", results=_results(sub, summary), invoices=list(summary.invoices))
        break
    return [outcomes[sub.file] for sub in subs]


def _cold(engine: Engine, subs: list[Submission]) -> dict[str, Submission]:
    """The submissions of a usage-only group whose customers' books this process does not keep
    (file -> submission, in order; none unless every event is usage): posted apart, so that the
    others may take `post_usage_group`, which needs every book kept."""
    events = [se for sub in subs for se in sub.events]
    if not groupable(events):
        return {}
    db = str(engine.url)
    return {sub.file: sub for sub in subs if not all_kept(db, sub.events)}


def _alone(engine: Engine, catalog: Catalog, sub: Submission, direct: bool) -> Outcome:
    try:
        summary = _post(engine, catalog, [sub], direct)
    except InvalidInputError as exc:
        return _refused(list(exc.problems))
    except Exception as exc:  # noqa: BLE001 -- answered to this request as a server error
        return _error(exc)
    return Outcome("ok", results=_results(sub, summary), invoices=list(summary.invoices))


def _error(exc: BaseException) -> Outcome:
    text = str(exc).strip()
    return Outcome("error", message=f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


def path_counts() -> dict[str, int]:
    """How this process's groups were posted so far: "group_posted" (`post_usage_group`),
    "group_declined" / "group_changed" / "group_error" (then the general path), and the counts
    of the one-event path (`ledger.store.pipeline.ATTEMPTS`)."""
    return dict(ATTEMPTS)


def customer_balance(engine: Engine, customer_id: str) -> dict:
    """The customer's position over the whole journal: credits by grant (remaining units,
    expires_at), deferred revenue, open receivables by invoice; amounts as decimal strings in
    its currency. raises NotFoundError."""
    with session_on(engine) as session:
        currency = views.customer_currency(session, customer_id)
        if currency is None:
            raise NotFoundError("customer", customer_id)
        grants = views.grant_positions(session, customer_id)
        invoices = views.open_invoices(session, customer_id)
    return {
        "customer_id": customer_id, "currency": currency,
        "credits": sum(g["outstanding"] for g in grants),
        "grants": [{"grant_id": g["grant_id"], "source": g["source"], "units": g["units"],
                    "remaining": g["outstanding"], "effective_at": _instant(g["effective_at"]),
                    "expires_at": _instant(g["expires_at"]), "deferred": major_str(g["deferred"], currency)}
                   for g in grants],
        "deferred": major_str(sum(g["deferred"] for g in grants), currency),
        "receivables": major_str(sum(i["open"] for i in invoices), currency),
        "open_invoices": [{"number": i["number"], "issue_date": i["issue_date"].isoformat(),
                           "due_date": i["due_date"].isoformat(), "total": major_str(i["total"], currency),
                           "open": major_str(i["open"], currency)} for i in invoices],
    }


def customer_usage(engine: Engine, catalog: Catalog, customer_id: str, start: str, end: str) -> dict:
    """The customer's usage with ``start <= occurred_at < end``: each bound an RFC 3339 instant
    or a date (midnight in the catalog's reporting timezone). raises NotFoundError, ValueError
    (naming the bound) for a bound that is neither or an empty window."""
    lo, hi = _bound("from", start, catalog), _bound("to", end, catalog)
    if hi <= lo:
        raise ValueError(f"'to' ({end}) must be after 'from' ({start})")
    with session_on(engine) as session:
        if views.customer_currency(session, customer_id) is None:
            raise NotFoundError("customer", customer_id)
        found = views.usage_between(session, customer_id, lo, hi)
    return {"customer_id": customer_id, "from": _instant(lo), "to": _instant(hi), **found}


def _bound(name: str, text: str, catalog: Catalog) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), catalog.tz).astimezone(UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{name}' must be a date (2026-01-01) or an RFC 3339 instant "
                         f"(2026-01-01T00:00:00Z), not {text!r}") from None
    if at.tzinfo is None:
        raise ValueError(f"'{name}' needs an offset such as Z or +01:00, not {text!r}")
    return at.astimezone(UTC)


def _instant(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def invoice(engine: Engine, number: str) -> dict:
    """Invoice or credit note ``number`` with its lines (`ledger.services.documents.invoice_document`).
    raises NotFoundError."""
    from ledger.services.documents import invoice_document

    with session_on(engine) as session:
        return invoice_document(session, number)


def invoice_pdf(engine: Engine, catalog: Catalog, number: str, folder: str) -> bytes:
    """The PDF of invoice or credit note ``number``, rendered in ``folder``. raises NotFoundError."""
    from pathlib import Path

    from ledger.services.documents import render_document

    with session_on(engine) as session:
        path = render_document(session, catalog, number, Path(folder) / f"{number}.pdf")
    return Path(path).read_bytes()


def concurrent_writers(engine: Engine) -> bool:
    """Whether several transactions may write at once (PostgreSQL: they serialise per customer on
    its row lock); SQLite has one writer at a time."""
    return is_postgres(engine)


def health(engine: Engine) -> tuple[bool, dict]:
    """(healthy, details): the database answers and its schema is at the head revision."""
    try:
        current = current_revision(engine)
    except Exception as exc:  # noqa: BLE001 -- unreachable, whatever the driver says
        return False, {"database": "unreachable", "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    ok = current == SCHEMA_HEAD
    return ok, {"database": "ok", "schema": current, "head": SCHEMA_HEAD,
                "migrations": "at head" if ok else "behind"}
