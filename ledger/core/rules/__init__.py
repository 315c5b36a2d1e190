"""The accounting rules, one module per rule, and the table that maps each event type to the
rule that applies it (`HANDLERS`).

Every handler is ``handler(posting, sourced_event, event) -> None``: it reads the customer's
book from the posting, runs the customer's time-driven steps due by the event's time
(``ledger.core.schedule``), and adds entries, documents and records to the posting. A handler
raises InvalidInputError (file, line, field, value) for an event the books refuse; the service
then posts nothing of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.core.rules.breakage import on_breakage_estimate_changed
from ledger.core.rules.customers import on_customer_created
from ledger.core.rules.guarantee import on_guarantee_enrolled
from ledger.core.rules.payments import on_payment_received
from ledger.core.rules.purchases import on_commitment_purchased, on_credits_granted, on_topup_purchased
from ledger.core.rules.refunds import on_refund_issued
from ledger.core.rules.review import on_usage_approved, on_usage_rejected
from ledger.core.rules.subscriptions import on_subscription_cancelled, on_subscription_started
from ledger.core.rules.usage import on_usage_recorded
from ledger.core.rules.voids import on_event_voided
from ledger.events import (
    BreakageEstimateChanged,
    CommitmentPurchased,
    CreditsGranted,
    CustomerCreated,
    EventVoided,
    GuaranteeEnrolled,
    PaymentReceived,
    RefundIssued,
    SubscriptionCancelled,
    SubscriptionStarted,
    TopupPurchased,
    UsageApproved,
    UsageRecorded,
    UsageRejected,
)

HANDLERS: dict[type, Callable] = {
    CustomerCreated: on_customer_created,
    SubscriptionStarted: on_subscription_started,
    SubscriptionCancelled: on_subscription_cancelled,
    CommitmentPurchased: on_commitment_purchased,
    TopupPurchased: on_topup_purchased,
    CreditsGranted: on_credits_granted,
    UsageRecorded: on_usage_recorded,
    PaymentReceived: on_payment_received,
    RefundIssued: on_refund_issued,
    BreakageEstimateChanged: on_breakage_estimate_changed,
    GuaranteeEnrolled: on_guarantee_enrolled,
    EventVoided: on_event_voided,
    UsageApproved: on_usage_approved,
    UsageRejected: on_usage_rejected,
}
"""Event type -> the rule that applies it."""
