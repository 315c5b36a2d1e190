"""Checking a batch of events against the books before anything is applied, so that an invalid
batch posts nothing (docs/design.md §2.8, §8.2).

Pure: the store reads what the checks need into a `BatchFacts` first
(``ledger.store.events.batch_facts``). Identical re-imports (same id and content hash) are
duplicates; the same id with other content is a conflict naming both sources. References
(customers, plans, packs, actions, grant ids, void targets) and amounts in the customer's
currency are checked here; every problem names file, line, field and value.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger.catalog import Catalog
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
from ledger.core.guarantee import window
from ledger.core.money import INT64_MAX, apply_rate, parse_decimal, to_minor
from ledger.core.periods import local_date, period_end, period_of

VOIDABLE = ("commitment.purchased", "topup.purchased", "credits.granted", "payment.received", "usage.recorded")
"""The event types a void may target."""
GRANT_ID_FIELDS = ("commitment_id", "topup_id", "grant_id")
"""The fields naming the grant an event creates (at most one per event type)."""
_AMOUNT_FIELDS = ("amount", "legacy_monthly_amount")
_EXPIRES = ("expires_at",)


@functools.cache
def declared(event_type: type, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names among ``names`` that are fields of the event model ``event_type``, in the
    order given: read them with plain attribute access (``getattr(event, name, None)`` of a
    name the model lacks goes through pydantic's slow ``__getattr__`` and an exception)."""
    return tuple(n for n in names if n in event_type.model_fields)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class KnownCustomer:
    """What the checks need of a stored customer."""

    currency: str
    created_at: datetime | None
    tax_rate: str


@dataclass
class BatchFacts:
    """What is stored that a batch's checks depend on: ``stored`` event id -> (content hash,
    source); ``customers`` by id; existing ``grant_ids``; ``voided`` target id -> the source of
    its void; ``targets``: stored void targets' id -> (type, occurred_at)."""

    stored: dict[str, tuple[str, str]] = field(default_factory=dict)
    customers: dict[str, KnownCustomer] = field(default_factory=dict)
    grant_ids: set[str] = field(default_factory=set)
    voided: dict[str, str] = field(default_factory=dict)
    targets: dict[str, tuple[str, datetime]] = field(default_factory=dict)


def stored_conflict(se: SourcedEvent, stored_hash: str, stored_source: str) -> InputProblem:
    """The problem of an event whose id is already stored with other content (sha256
    ``stored_hash``, posted from ``stored_source``)."""
    return InputProblem(se.file, se.line, "id", se.id,
                        f"conflicts with the event already posted from {stored_source}: same event id, "
                        f"different content (sha256 {stored_hash[:12]}... vs {se.content_hash[:12]}...)")


def split_duplicates(events: Sequence[SourcedEvent], stored: dict[str, tuple[str, str]]
                     ) -> tuple[list[SourcedEvent], int, list[InputProblem]]:
    """(new events, duplicates, conflicts): an id seen before in the batch or stored is a
    duplicate when its content hash is the same, a conflict otherwise."""
    problems: list[InputProblem] = []
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
    return fresh, duplicates, problems


class _BatchCheck:
    """The checks of one batch's new events, in the order `check_batch` gives them."""

    def __init__(self, catalog: Catalog, fresh: list[SourcedEvent], facts: BatchFacts) -> None:
        self.catalog = catalog
        self.facts = facts
        self.known = dict(facts.customers)
        self.problems: list[InputProblem] = []
        self.batch_grants: dict[str, str] = {}
        self.voided = dict(facts.voided)
        self.batch_events = {se.id: se for se in fresh}

    def problem(self, se: SourcedEvent, fld: str, value: object, msg: str) -> None:
        self.problems.append(InputProblem(se.file, se.line, fld, value, msg))

    def void(self, se: SourcedEvent, ev: EventVoided) -> None:
        """A void names a voidable event, once, and comes after it."""
        target = ev.target_event_id
        if target in self.voided:
            self.problem(se, "target_event_id", target, f"was already voided (by {self.voided[target]}); an event is voided once")
            return
        self.voided[target] = se.source
        if target in self.batch_events:
            t = self.batch_events[target].event
            t_type, t_at = t.type, t.occurred_at  # type: ignore[attr-defined]
        elif target in self.facts.targets:
            t_type, t_at = self.facts.targets[target]
        else:
            self.problem(se, "target_event_id", target, "unknown event (nothing with this id was imported)")
            return
        if t_type not in VOIDABLE:
            self.problem(se, "target_event_id", target, f"is of type {t_type}, which cannot be voided "
                         f"(voidable: {', '.join(VOIDABLE)})")
        elif ev.occurred_at < t_at:
            self.problem(se, "occurred_at", ev.occurred_at.isoformat(), f"is before the voided event ({t_at.isoformat()})")

    def event(self, se: SourcedEvent) -> None:
        """Check one event other than a void."""
        ev = se.event
        if isinstance(ev, CustomerCreated):
            if ev.customer_id in self.known:
                self.problem(se, "customer_id", ev.customer_id, "customer already exists")
            else:
                self.known[ev.customer_id] = KnownCustomer(ev.currency, ev.occurred_at, ev.tax_rate)
            return
        cid = ev.customer_id  # type: ignore[attr-defined]
        customer = self.known.get(cid)
        if customer is None:
            self.problem(se, "customer_id", cid, "unknown customer (no customer.created event for it)")
            return
        created_at = customer.created_at
        if created_at is not None and ev.occurred_at < created_at:  # type: ignore[attr-defined]
            self.problem(se, "occurred_at", ev.occurred_at.isoformat(),  # type: ignore[attr-defined]
                         f"is before customer {cid} was created ({created_at.isoformat()})")
        if isinstance(ev, UsageRecorded):  # the bulk of a large import: its one other check, and none of the rest
            if ev.action is not None and ev.action not in self.catalog.model.rate_card:
                self.problem(se, "action", ev.action, "unknown action (not in the catalog's rate_card)")
            return
        self.amounts(se, customer)
        self.grant_ids(se)
        self.terms(se, cid, customer)

    def amounts(self, se: SourcedEvent, customer: KnownCustomer) -> None:
        """Amounts fit the customer's currency, are positive, and fit 64 bits with their tax."""
        ev = se.event
        for fld in declared(type(ev), _AMOUNT_FIELDS):
            value = getattr(ev, fld)
            if value is None:
                continue
            try:
                minor = to_minor(value, customer.currency)
            except ValueError as exc:
                self.problem(se, fld, value, str(exc))
                continue
            if minor <= 0 and not isinstance(ev, CreditsGranted):
                self.problem(se, fld, value, "must be positive")
            elif not isinstance(ev, PaymentReceived) and minor + apply_rate(minor, parse_decimal(customer.tax_rate or "0")) > INT64_MAX:
                self.problem(se, fld, value, "with its sales tax exceeds the 64-bit range of amounts")

    def grant_ids(self, se: SourcedEvent) -> None:
        """A new grant's id is used nowhere else."""
        for fld in declared(type(se.event), GRANT_ID_FIELDS):
            gid = getattr(se.event, fld)
            if gid is None:
                continue
            if gid in self.facts.grant_ids:
                self.problem(se, fld, gid, "a grant with this id already exists")
            elif gid in self.batch_grants:
                self.problem(se, fld, gid, f"is used twice in this batch (also at {self.batch_grants[gid]})")
            self.batch_grants[gid] = se.source

    def terms(self, se: SourcedEvent, cid: str, customer: KnownCustomer) -> None:
        """Plans and packs exist in the customer's currency; dates fit the customer and window."""
        ev, tz, cur, created_at = se.event, self.catalog.tz, customer.currency, customer.created_at
        if isinstance(ev, SubscriptionStarted):
            if created_at is not None and ev.start_date < local_date(created_at, tz):
                self.problem(se, "start_date", ev.start_date.isoformat(),
                             f"is before customer {cid} was created ({local_date(created_at, tz).isoformat()})")
            plan = self.catalog.plan(ev.plan)
            if plan is None:
                self.problem(se, "plan", ev.plan, f"unknown plan (catalog: {', '.join(self.catalog.model.plans) or 'none'})")
            elif plan.currency != cur:
                self.problem(se, "plan", ev.plan, f"is priced in {plan.currency}; customer {cid} pays in {cur}")
        if isinstance(ev, TopupPurchased) and ev.pack is not None:
            pack = self.catalog.topup(ev.pack)
            if pack is None:
                self.problem(se, "pack", ev.pack, f"unknown top-up pack (catalog: {', '.join(self.catalog.model.topups) or 'none'})")
            elif pack.currency != cur:
                self.problem(se, "pack", ev.pack, f"is priced in {pack.currency}; customer {cid} pays in {cur}")
        if isinstance(ev, GuaranteeEnrolled):
            created_month = period_of(local_date(created_at, tz)) if created_at is not None else None
            last = window(ev.start_month, ev.months)[-1]
            if created_month is not None and ev.start_month < created_month:
                self.problem(se, "start_month", ev.start_month, f"is before customer {cid} was created ({created_month})")
            elif period_end(last, tz) <= ev.occurred_at:
                self.problem(se, "start_month", ev.start_month,
                             f"the window ({ev.start_month} to {last}) ended before the enrolment ({ev.occurred_at.isoformat()})")
        exp = ev.expires_at if declared(type(ev), _EXPIRES) else None  # type: ignore[attr-defined]
        if exp is not None and exp <= ev.occurred_at:  # type: ignore[attr-defined]
            self.problem(se, "expires_at", exp.isoformat(), "must be after occurred_at")


def check_batch(catalog: Catalog, events: Sequence[SourcedEvent], facts: BatchFacts
                ) -> tuple[list[SourcedEvent], int, list[InputProblem]]:
    """Check a parsed batch against what is stored: returns (new events to apply, duplicates,
    problems sorted by file and line). Customers are checked first, then the other events in
    time order, then usage (unsorted: its checks read only the customers known by then)."""
    fresh, duplicates, problems = split_duplicates(events, facts.stored)
    check = _BatchCheck(catalog, fresh, facts)
    usage = [se for se in fresh if isinstance(se.event, UsageRecorded)]
    others = sorted((se for se in fresh if not isinstance(se.event, UsageRecorded)),
                    key=lambda x: (x.event.type != "customer.created", x.event.occurred_at))  # type: ignore[attr-defined]
    for se in others + usage:
        if isinstance(se.event, EventVoided):
            check.void(se, se.event)
        else:
            check.event(se)
    problems += check.problems
    problems.sort(key=lambda p: (p.file, p.line))
    return fresh, duplicates, problems
