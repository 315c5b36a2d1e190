"""credit-ledger: a double-entry ledger and revenue-recognition engine for prepaid AI credits.

Every purchase, consumption, expiry and payment becomes balanced journal entries in two
commodities (the customer's currency in integer minor units, and ``CREDIT`` units); deferred
revenue, recognised revenue, invoices and every report are derived from that journal.
See README.md and docs/design.md.
"""

__version__ = "0.1.0"
