"""Worked example of a soft cap (docs/design.md §5.12), on SQLite and PostgreSQL.

acme holds 10,000 credits bought for 100.00 (0.01 each) and has a soft cap of 1,000 credits a
month: usage past it is held for review, not consumed, not quarantined.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.store.models import Quarantine, UsageEvent
from builders import ev

CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]

[customers.acme]
soft_cap = 1000
"""


@pytest.fixture
def books(books_with):
    return books_with(CATALOG)


def use(eid: str, when: str, credits: int) -> str:
    return ev(eid, "usage.recorded", when, customer_id="acme", credits=credits)


START = "\n".join([
    ev("c-acme", "customer.created", "2026-03-01T00:00:00Z", customer_id="acme", name="Acme", currency="USD"),
    ev("t1", "topup.purchased", "2026-03-01T00:00:00Z", customer_id="acme", topup_id="top-1", credits=10_000,
       amount="100.00"),
    use("u1", "2026-03-05T10:00:00Z", 800),   # 800 of 1,000: consumed
    use("u2", "2026-03-06T10:00:00Z", 300),   # would make 1,100: held
    use("u3", "2026-03-07T10:00:00Z", 150),   # 950: consumed (fits under the cap)
    use("u4", "2026-03-08T10:00:00Z", 100),   # would make 1,050: held
])


def _alert(books) -> tuple:
    """The usage-alerts row of acme's soft cap in March: (cap, consumed, percent, alert %)."""
    from ledger.forecast import usage_alerts

    with books.session() as s:
        rows = [r for r in usage_alerts(s, "2026-03", soft_caps=books.catalog.soft_caps()).rows
                if r["scope"] == "soft_cap"]
    return tuple((r["granted"], r["consumed"], r["percent"], r["threshold"]) for r in rows)[0]


def _status(books) -> dict[str, str]:
    with books.session() as s:
        return dict(s.execute(sa.select(UsageEvent.id, UsageEvent.status)).all())


def test_usage_past_the_soft_cap_is_held_then_part_released(books):
    """800 and 150 credits are consumed (9.50 of usage revenue); 300 (u2) and 100 (u4) are held:
    Dr 9500 / Cr 9550, no revenue. Approving 200 of u2 consumes them at the approval (2.00 more);
    rejecting u4 quarantines its 100 with the reason; 100 of u2 stay pending until approved."""
    books.post(START)
    assert _status(books) == {"u1": "posted", "u2": "held", "u3": "posted", "u4": "held"}
    assert _alert(books) == (1000, 950, "95.0", 90)
    assert books.balance("4000") == 9_50 and books.balance("9500", "CREDIT") == 400
    assert books.balance("9200", "CREDIT") == 950
    summary = books.post("\n".join([
        ev("a1", "usage.approved", "2026-03-10T09:00:00Z", customer_id="acme", target_event_id="u2", credits=200),
        ev("r1", "usage.rejected", "2026-03-10T09:30:00Z", customer_id="acme", target_event_id="u4",
           reason="runaway batch job"),
    ]))
    assert (summary.posted, summary.quarantined) == (2, 1)
    assert books.balance("4000") == 11_50 and books.balance("9200", "CREDIT") == 1_150
    assert books.balance("9500", "CREDIT") == 100 and books.balance("9550", "CREDIT") == 100
    with books.session() as s:
        q = s.execute(sa.select(Quarantine.event_id, Quarantine.credits, Quarantine.reason)).one()
        from ledger.margin import gross_margin  # noqa: F401 (import check)
        from ledger.reporting import pending_reviews
        pending = pending_reviews(s).rows
    assert q == ("u4", 100, "rejected at review (r1): runaway batch job")
    assert [(r["event_id"], r["held"], r["pending"]) for r in pending] == [("u2", 300, 100)]
    # past the cap, later usage is held too; approving the rest of u2 clears the review
    books.post(ev("a2", "usage.approved", "2026-03-11T09:00:00Z", customer_id="acme", target_event_id="u2"))
    assert books.balance("9500", "CREDIT") == 0 and books.balance("9200", "CREDIT") == 1_250
    assert _alert(books) == (1000, 1250, "125.0", 100)
    books.close("2026-03")
    assert books.verify() == []


def test_approving_more_than_is_held_or_twice_is_refused(books):
    """An approval of more credits than are held, or of usage not held, posts nothing."""
    from ledger.errors import InvalidInputError

    books.post(START)
    with pytest.raises(InvalidInputError, match="has only 300 credits held"):
        books.post(ev("a1", "usage.approved", "2026-03-10T09:00:00Z", customer_id="acme", target_event_id="u2",
                      credits=301))
    with pytest.raises(InvalidInputError, match="is not a usage event held for review"):
        books.post(ev("a1", "usage.approved", "2026-03-10T09:00:00Z", customer_id="acme", target_event_id="u1"))
