"""The default chart of accounts (docs/design.md §3), seeded by `ledger init`.

Currency accounts hold integer minor units of the customer's currency; memo accounts (9xxx)
hold ``CREDIT`` units, so the credit wallet is itself double-entry. Unit identity that every
report can show: issued + overage = outstanding + consumed + expired + refunded.
"""

from __future__ import annotations

from dataclasses import dataclass

CASH = "1000"
RECEIVABLE = "1100"
UNBILLED = "1150"
DEFERRED_CREDITS = "2100"
DEFERRED_SUBSCRIPTIONS = "2150"
CUSTOMER_CREDIT = "2200"
REFUNDS_PAYABLE = "2300"
SALES_TAX = "2400"
ACCRUED_COST = "2500"
USAGE_REVENUE = "4000"
OVERAGE_REVENUE = "4010"
SUBSCRIPTION_REVENUE = "4020"
BREAKAGE_REVENUE = "4050"
GUARANTEE_CREDITS = "4900"
REFUNDS_CONCESSIONS = "4910"
COST_OF_REVENUE = "5000"
CREDITS_ISSUED = "9000"
CREDITS_OVERAGE = "9050"
CREDITS_OUTSTANDING = "9100"
CREDITS_CONSUMED = "9200"
CREDITS_EXPIRED = "9300"
CREDITS_REFUNDED = "9400"
USAGE_HELD = "9500"
USAGE_UNDER_REVIEW = "9550"

DEFERRED_ACCOUNTS = (DEFERRED_CREDITS, DEFERRED_SUBSCRIPTIONS)
REVENUE_STREAMS = (
    (USAGE_REVENUE, "usage"),
    (OVERAGE_REVENUE, "overage"),
    (SUBSCRIPTION_REVENUE, "subscription"),
    (BREAKAGE_REVENUE, "breakage"),
    (GUARANTEE_CREDITS, "guarantee_credits"),
    (REFUNDS_CONCESSIONS, "refunds_and_concessions"),
)


@dataclass(frozen=True)
class AccountSpec:
    """code: str; type: asset | liability | revenue | contra-revenue | expense | memo;
    normal: debit | credit; memo accounts carry CREDIT units, the others currency."""

    code: str
    name: str
    type: str
    normal: str

    @property
    def is_memo(self) -> bool:
        return self.type == "memo"


CHART: tuple[AccountSpec, ...] = (
    AccountSpec(CASH, "Cash", "asset", "debit"),
    AccountSpec(RECEIVABLE, "Accounts receivable", "asset", "debit"),
    AccountSpec(UNBILLED, "Unbilled receivables", "asset", "debit"),
    AccountSpec(DEFERRED_CREDITS, "Deferred revenue - credits", "liability", "credit"),
    AccountSpec(DEFERRED_SUBSCRIPTIONS, "Deferred revenue - subscriptions", "liability", "credit"),
    AccountSpec(CUSTOMER_CREDIT, "Customer credit balance", "liability", "credit"),
    AccountSpec(REFUNDS_PAYABLE, "Refunds payable", "liability", "credit"),
    AccountSpec(SALES_TAX, "Sales tax payable", "liability", "credit"),
    AccountSpec(ACCRUED_COST, "Accrued cost of usage", "liability", "credit"),
    AccountSpec(USAGE_REVENUE, "Usage revenue", "revenue", "credit"),
    AccountSpec(OVERAGE_REVENUE, "Overage revenue", "revenue", "credit"),
    AccountSpec(SUBSCRIPTION_REVENUE, "Subscription revenue", "revenue", "credit"),
    AccountSpec(BREAKAGE_REVENUE, "Breakage revenue", "revenue", "credit"),
    AccountSpec(GUARANTEE_CREDITS, "Guarantee credits", "contra-revenue", "debit"),
    AccountSpec(REFUNDS_CONCESSIONS, "Refunds and concessions", "contra-revenue", "debit"),
    AccountSpec(COST_OF_REVENUE, "Cost of revenue", "expense", "debit"),
    AccountSpec(CREDITS_ISSUED, "Credits issued", "memo", "debit"),
    AccountSpec(CREDITS_OVERAGE, "Credits consumed as overage", "memo", "debit"),
    AccountSpec(CREDITS_OUTSTANDING, "Credits outstanding", "memo", "credit"),
    AccountSpec(CREDITS_CONSUMED, "Credits consumed", "memo", "credit"),
    AccountSpec(CREDITS_EXPIRED, "Credits expired", "memo", "credit"),
    AccountSpec(CREDITS_REFUNDED, "Credits refunded", "memo", "credit"),
    AccountSpec(USAGE_HELD, "Usage held for review", "memo", "debit"),
    AccountSpec(USAGE_UNDER_REVIEW, "Usage under review", "memo", "credit"),
)

BY_CODE = {a.code: a for a in CHART}
