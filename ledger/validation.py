"""Checking a batch of events against the books before anything is applied (an invalid batch
posts nothing), and locking the customers a batch touches (PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from ledger import guarantee as G
from ledger.catalog import Catalog
from ledger.db import CHUNK, chunks, in_values
from ledger.errors import InputProblem
from ledger.events import (
    CreditsGranted,
    CustomerCreated,
    EventVoided,
    GuaranteeEnrolled,
    PaymentReceived,
    SourcedEvent,
    SubscriptionStarted,
    TopupPurchased,
    UsageRecorded,
)
from ledger.models import Customer, Event, Grant, UsageEvent
from ledger.money import INT64_MAX, apply_rate, parse_decimal, to_minor
from ledger.periods import local_date, period_end, period_of


def existing_events(session: Session, ids: list[str], models: Sequence = (Event, UsageEvent)) -> dict[str, tuple[str, str]]:
    """id -> (content hash, source) for ids already stored in any of ``models`` (the business
    events and the usage events by default), in one query per chunk of ids.

    On PostgreSQL the ids go as one array parameter per 10,000 (``id = ANY(:ids)``): one
    statement text whatever the count, whose cached plan is an index scan (an ``IN`` list of
    500 parameters, prepared while the table was empty, kept a sequential scan as it grew)."""
    from sqlalchemy.dialects.postgresql import ARRAY

    from ledger.db import is_postgres

    out: dict[str, tuple[str, str]] = {}
    pg = is_postgres(session)
    for chunk in chunks(ids, 10_000 if pg else CHUNK // len(models)):
        param = sa.bindparam("ids", list(chunk), type_=ARRAY(sa.String)) if pg else None
        q = sa.union_all(*(sa.select(m.id, m.content_hash, m.source, sa.literal(n).label("n"))
                           .where(m.id == sa.any_(param) if pg else m.id.in_(chunk)) for n, m in enumerate(models)))
        for i, h, src, _ in sorted(session.execute(q), key=lambda r: r[3]):  # a later model wins, as before
            out[i] = (h, src)
    return out


def stored_conflict(se: SourcedEvent, stored_hash: str, stored_source: str) -> InputProblem:
    """The problem of an event whose id is already stored with other content (sha256
    ``stored_hash``, posted from ``stored_source``)."""
    return InputProblem(se.file, se.line, "id", se.id,
                        f"conflicts with the event already posted from {stored_source}: same event id, "
                        f"different content (sha256 {stored_hash[:12]}... vs {se.content_hash[:12]}...)")


def validate_batch(session: Session, catalog: Catalog, events: list[SourcedEvent], *,
                   customers: Sequence[Customer] = ()) -> tuple[list[SourcedEvent], int, list[InputProblem]]:
    """Check a parsed batch against the books: returns (new events to apply, duplicates, problems).

    Identical re-imports (same id and content hash) are duplicates; the same id with different
    content is a conflict problem naming both sources. References (customers, packs, actions,
    grant ids) and amounts in the customer's currency are checked here, so that an invalid batch
    posts nothing. ``customers``: rows already read in this transaction (`lock_customers`),
    not queried again.
    """
    problems: list[InputProblem] = []
    ids = [se.id for se in events]
    stored = existing_events(session, ids)
    seen: dict[str, SourcedEvent] = {}
    fresh: list[SourcedEvent] = []
    duplicates = 0
    for se in events:
        prior = seen.get(se.id)
        if prior is not None:
            if prior.content_hash == se.content_hash:
                duplicates += 1
            else:
                problems.append(InputProblem(se.file, se.line, "id", se.id,
                                             f"conflicts with {prior.source}: same event id, different content"))
            continue
        seen[se.id] = se
        if se.id in stored:
            h, src = stored[se.id]
            if h == se.content_hash:
                duplicates += 1
            else:
                problems.append(stored_conflict(se, h, src))
            continue
        fresh.append(se)

    customer_ids = sorted({getattr(se.event, "customer_id", None) for se in fresh} - {None})
    known: dict[str, tuple[str, datetime | None]] = {c.id: (c.currency, c.created_at) for c in customers}
    tax_rates: dict[str, str] = {c.id: c.tax_rate for c in customers}
    for chunk in chunks([c for c in customer_ids if c not in known]):
        for cid, cur, created, rate in session.execute(
                sa.select(Customer.id, Customer.currency, Customer.created_at, Customer.tax_rate)
                .where(Customer.id.in_(chunk))):
            known[cid] = (cur, created)
            tax_rates[cid] = rate
    grant_ids: set[str] = set()
    new_grant_ids = [getattr(se.event, k) for se in fresh if not isinstance(se.event, UsageRecorded)
                     for k in ("commitment_id", "topup_id", "grant_id") if getattr(se.event, k, None) is not None]
    for chunk in chunks(new_grant_ids):
        grant_ids.update(session.execute(sa.select(Grant.id).where(Grant.id.in_(chunk))).scalars())
    batch_grants: dict[str, str] = {}

    def problem(se: SourcedEvent, fld: str, value: object, msg: str) -> None:
        problems.append(InputProblem(se.file, se.line, fld, value, msg))

    voidable = ("commitment.purchased", "topup.purchased", "credits.granted", "payment.received", "usage.recorded")
    voided: dict[str, str] = {}
    if any(isinstance(se.event, EventVoided) for se in fresh):  # earlier voids matter only to new ones
        for payload, src in session.execute(sa.select(Event.payload, Event.source).where(Event.type == "event.voided")):
            voided[json.loads(payload)["target_event_id"]] = src
    batch_events = {se.id: se for se in fresh}

    def check_void(se: SourcedEvent, ev: EventVoided) -> None:
        target = ev.target_event_id
        if target in voided:
            problem(se, "target_event_id", target, f"was already voided (by {voided[target]}); an event is voided once")
            return
        voided[target] = se.source
        if target in batch_events:
            t_type, t_at = batch_events[target].event.type, batch_events[target].event.occurred_at  # type: ignore[attr-defined]
        else:
            row = session.execute(sa.select(Event.type, Event.occurred_at).where(Event.id == target)).first()
            if row is None:
                row = session.execute(sa.select(sa.literal("usage.recorded"), UsageEvent.occurred_at)
                                      .where(UsageEvent.id == target)).first()
            if row is None:
                problem(se, "target_event_id", target, "unknown event (nothing with this id was imported)")
                return
            t_type, t_at = row
        if t_type not in voidable:
            problem(se, "target_event_id", target, f"is of type {t_type}, which cannot be voided "
                    f"(voidable: {', '.join(voidable)})")
        elif ev.occurred_at < t_at:
            problem(se, "occurred_at", ev.occurred_at.isoformat(), f"is before the voided event ({t_at.isoformat()})")

    # customers created first, then the rest in time order; usage events last and unsorted: their
    # checks read only the customers known by then (the bulk of a large import: no sort of it)
    usage = [se for se in fresh if isinstance(se.event, UsageRecorded)]
    others = sorted((se for se in fresh if not isinstance(se.event, UsageRecorded)),
                    key=lambda x: (x.event.type != "customer.created", x.event.occurred_at))  # type: ignore[attr-defined]
    for se in others + usage:
        ev = se.event
        if isinstance(ev, EventVoided):
            check_void(se, ev)
            continue
        if isinstance(ev, CustomerCreated):
            if ev.customer_id in known:
                problem(se, "customer_id", ev.customer_id, "customer already exists")
            else:
                known[ev.customer_id] = (ev.currency, ev.occurred_at)
                tax_rates[ev.customer_id] = ev.tax_rate
            continue
        cid = ev.customer_id  # type: ignore[attr-defined]
        if cid not in known:
            problem(se, "customer_id", cid, "unknown customer (no customer.created event for it)")
            continue
        cur, created_at = known[cid]
        if created_at is not None and ev.occurred_at < created_at:  # type: ignore[attr-defined]
            problem(se, "occurred_at", ev.occurred_at.isoformat(), f"is before customer {cid} was created ({created_at.isoformat()})")  # type: ignore[attr-defined]
        if isinstance(ev, UsageRecorded):  # the bulk of a large import: its one other check, and none of the rest
            if ev.action is not None and ev.action not in catalog.model.rate_card:
                problem(se, "action", ev.action, "unknown action (not in the catalog's rate_card)")
            continue
        for fld in ("amount", "legacy_monthly_amount"):
            value = getattr(ev, fld, None)
            if value is not None:
                try:
                    minor = to_minor(value, cur)
                except ValueError as exc:
                    problem(se, fld, value, str(exc))
                    continue
                if minor <= 0 and not isinstance(ev, CreditsGranted):
                    problem(se, fld, value, "must be positive")
                elif not isinstance(ev, PaymentReceived) and minor + apply_rate(minor, parse_decimal(tax_rates.get(cid, "0"))) > INT64_MAX:
                    problem(se, fld, value, "with its sales tax exceeds the 64-bit range of amounts")
        for fld in ("commitment_id", "topup_id", "grant_id"):
            gid = getattr(ev, fld, None)
            if gid is None:
                continue
            if gid in grant_ids:
                problem(se, fld, gid, "a grant with this id already exists")
            elif gid in batch_grants:
                problem(se, fld, gid, f"is used twice in this batch (also at {batch_grants[gid]})")
            batch_grants[gid] = se.source
        if isinstance(ev, SubscriptionStarted) and created_at is not None and ev.start_date < local_date(created_at, catalog.tz):
            problem(se, "start_date", ev.start_date.isoformat(),
                    f"is before customer {cid} was created ({local_date(created_at, catalog.tz).isoformat()})")
        if isinstance(ev, SubscriptionStarted):
            plan = catalog.plan(ev.plan)
            if plan is None:
                problem(se, "plan", ev.plan, f"unknown plan (catalog: {', '.join(catalog.model.plans) or 'none'})")
            elif plan.currency != cur:
                problem(se, "plan", ev.plan, f"is priced in {plan.currency}; customer {cid} pays in {cur}")
        if isinstance(ev, TopupPurchased) and ev.pack is not None:
            pack = catalog.topup(ev.pack)
            if pack is None:
                problem(se, "pack", ev.pack, f"unknown top-up pack (catalog: {', '.join(catalog.model.topups) or 'none'})")
            elif pack.currency != cur:
                problem(se, "pack", ev.pack, f"is priced in {pack.currency}; customer {cid} pays in {cur}")
        if isinstance(ev, GuaranteeEnrolled):
            created_month = period_of(local_date(created_at, catalog.tz)) if created_at is not None else None
            last = G.window(ev.start_month, ev.months)[-1]
            if created_month is not None and ev.start_month < created_month:
                problem(se, "start_month", ev.start_month, f"is before customer {cid} was created ({created_month})")
            elif period_end(last, catalog.tz) <= ev.occurred_at:
                problem(se, "start_month", ev.start_month,
                        f"the window ({ev.start_month} to {last}) ended before the enrolment ({ev.occurred_at.isoformat()})")
        for fld in ("expires_at",):
            exp = getattr(ev, fld, None)
            if exp is not None and exp <= ev.occurred_at:  # type: ignore[attr-defined]
                problem(se, fld, exp.isoformat(), "must be after occurred_at")
    problems.sort(key=lambda p: (p.file, p.line))
    return fresh, duplicates, problems


def lock_customers(session: Session, events: Sequence[SourcedEvent]) -> list[Customer]:
    """On PostgreSQL, lock (SELECT ... FOR UPDATE) every existing customer the batch touches,
    including the customers of the events it voids, in customer id order, until the
    transaction ends. Concurrent importers (and API callers) of the same customers therefore
    run one after the other, each seeing what the previous one committed: no credit is drawn
    twice and no update is lost; importers of different customers run in parallel. One global
    order means no deadlock between importers. Returns the rows locked, which the run then
    reads instead of querying them again (none on SQLite, which serialises writers by itself)."""
    from ledger.db import is_postgres

    if not is_postgres(session):
        return []
    ids = {cid for se in events if (cid := getattr(se.event, "customer_id", None)) is not None}
    targets = sorted({se.event.target_event_id for se in events if isinstance(se.event, EventVoided)})
    for chunk in chunks(targets):
        ids.update(x for x in session.execute(sa.select(Event.customer_id).where(Event.id.in_(chunk))).scalars() if x)
        ids.update(session.execute(sa.select(UsageEvent.customer_id).where(UsageEvent.id.in_(chunk))).scalars())
    locked: list[Customer] = []
    for chunk in chunks(sorted(ids), 10_000):
        locked += session.execute(sa.select(Customer).where(in_values(session, Customer.id, chunk))
                                  .order_by(Customer.id).with_for_update()
                                  .execution_options(populate_existing=True)).scalars().all()
    return locked
