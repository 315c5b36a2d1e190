"""The records the accounting core reads and creates, as plain values.

Each mirrors one table of the store (``ledger.store.models``) field for field, so the store
converts between the two by field name and the core never sees a database row. Amounts are
int minor units of the record's currency, credits int units, instants aware datetimes (UTC
as stored), dates local dates of the reporting timezone, periods 'YYYY-MM'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass
class CustomerRecord:
    """A customer: its currency and tax rate price every document. ``steps_through``: the
    instant through which its time-driven steps have run (None: none yet)."""

    id: str
    name: str
    currency: str
    tax_rate: str
    address: str
    email: str | None
    locale: str
    country: str | None
    vat_id: str | None
    created_at: datetime
    steps_through: datetime | None = None
    book_version: int = 0


@dataclass
class SubscriptionRecord:
    """A subscription; ``id`` is its subscription.started event id. The plan's terms are copied
    at the start (monthly_fee: int minor units; SSPs and overage price: decimal strings)."""

    id: str
    customer_id: str
    plan: str
    plan_name: str
    currency: str
    monthly_fee: int
    included_credits: int
    credit_ssp: str
    platform_ssp: str
    overage_price: str | None
    rollover_percent: int
    rollover_max_periods: int | None
    rollover_max_credits: int | None
    rollover_expires: bool
    start_date: date
    end_date: date | None = None
    cancel_event_id: str | None = None


@dataclass
class SubscriptionPeriodRecord:
    """One billed month of a subscription: fee = credits_fee + platform_fee (SSP split)."""

    subscription_id: str
    period: str
    customer_id: str
    service_start: date
    service_end: date
    fee: int
    credits_fee: int
    platform_fee: int
    credits: int
    invoice_number: str | None  # None: a month with nothing to bill (a zero fee) has no invoice
    grant_id: str | None


@dataclass
class GrantRecord:
    """A grant (lot) of ``units`` credits bought for ``amount``; see `ledger.core.grants.GrantState`
    for what is left of it. source: commitment | subscription | topup | promotional | rollover."""

    id: str
    customer_id: str
    source: str
    units: int
    amount: int
    currency: str
    effective_at: datetime
    expires_at: datetime | None
    breakage_method: str
    expected_breakage_rate: str | None
    rollover_percent: int
    rollover_max_periods: int | None
    rollover_max_credits: int | None
    rollover_expires: bool
    renews: str | None
    overage_price: str | None
    contract_id: str | None
    generation: int
    parent_grant_id: str | None
    event_id: str
    invoice_number: str | None


@dataclass
class GuaranteeRecord:
    """A no-increase guarantee; ``id`` is its guarantee.enrolled event id."""

    id: str
    customer_id: str
    currency: str
    legacy_monthly_amount: int
    start_month: str
    months: int
    basis: str
    enrolled_at: datetime


@dataclass
class GuaranteeMonthRecord:
    """A month of a guarantee window as evaluated at its close: charges by source, the legacy
    amount, and the credit (with its credit note) when this month's close issued one."""

    guarantee_id: str
    period: str
    customer_id: str
    subscription: int
    overage: int
    topups: int
    commitments: int
    charges: int
    legacy: int
    credit: int
    credit_note: str | None


@dataclass
class EventRecord:
    """A posted business event (not usage): its canonical JSON ``payload`` and sha256."""

    id: str
    type: str
    customer_id: str | None
    occurred_at: datetime
    content_hash: str
    payload: str
    status: str
    late: bool
    posted_date: date | None
    source: str
    import_id: int | None


@dataclass
class UsageRecord:
    """A usage event as posted: ``credits`` drawn (the overage part in ``overage_units`` at
    ``overage_price``); status posted | quarantined. The entry that carries it is known only
    when the journal is written (see `ledger.core.posting.Posting.entries`)."""

    id: str
    customer_id: str
    occurred_at: datetime
    credits: int
    action: str | None
    quantity: int | None
    content_hash: str
    status: str
    late: bool
    import_id: int | None
    source: str
    overage_units: int = 0
    overage_price: str | None = None
    cost: str | None = None  # the event's own cost to serve (major units), when it gave one
    # units its entry's grant draws had taken before it (its place in the entry's drawdown
    # stream: it drew [draw_start, draw_start + credits - overage_units) of it)
    draw_start: int = 0



@dataclass
class QuarantineRecord:
    """Usage refused at the hard cap, kept with its reason (never dropped)."""

    event_id: str
    customer_id: str
    occurred_at: datetime
    credits: int
    reason: str
    available: int
    import_id: int | None


@dataclass(slots=True)
class UsageDay:
    """The usage of one customer on one accounting day, summed (a set-based import hands these
    to `ledger.core.rules.usage.post_usage_day` instead of its events): the first and last
    event time, how many events and credits, and the line of the first event (file order breaks
    ties of time)."""

    customer_id: str
    day: date
    first_at: datetime
    last_at: datetime
    events: int
    credits: int
    first_line: int
