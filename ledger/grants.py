"""Credit grants (lots): cost basis, relief by the cumulative formula, and drawdown order.

Pure values and functions, no database. A grant of N units bought for A (minor units) has a
cost basis of A / N per credit, kept exact by the cumulative formula (DESIGN section 4)::

    relieved amount after R of N units have left = round(A x R / N)

Worked example: $100.00 for 3 credits consumed one at a time relieves 33.33, 33.34, 33.33, and
after the third the grant's deferred balance is exactly 0.00.

Consumption order at time t, among grants effective at t and not expired at t (DESIGN 4):
earliest expires_at first (never-expiring last), then lower cost basis first (promotional
before paid), then the oldest grant first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from ledger.money import cumulative_share


@dataclass
class GrantState:
    """A grant and how many of its units have left it (R), as derived from the journal.

    units: int N > 0; amount: int A >= 0, minor units of ``currency``; relieved: int R, 0..N.
    """

    id: str
    customer_id: str
    source: str
    units: int
    amount: int
    currency: str
    effective_at: datetime
    expires_at: datetime | None
    relieved: int = 0
    seq: int = 0  # creation order, the last tie-breaker of the drawdown order

    @property
    def remaining(self) -> int:
        """Units still outstanding (N - R)."""
        return self.units - self.relieved

    @property
    def deferred(self) -> int:
        """Deferred revenue left on the grant: A - round(A x R / N), minor units."""
        return self.amount - cumulative_share(self.amount, self.relieved, self.units)

    @property
    def cost_basis(self) -> Fraction:
        """A / N, minor units per credit, exact."""
        return Fraction(self.amount, self.units)

    def relief_amount(self, units: int) -> int:
        """Amount that ``units`` more units relieve from deferred revenue (not applied)."""
        if not 0 < units <= self.remaining:
            raise ValueError(f"grant {self.id}: cannot relieve {units} of {self.remaining} remaining units")
        return cumulative_share(self.amount, self.relieved + units, self.units) - cumulative_share(
            self.amount, self.relieved, self.units
        )

    def relieve(self, units: int) -> int:
        """Apply a relief of ``units``; returns the amount moved out of deferred revenue."""
        amount = self.relief_amount(units)
        self.relieved += units
        return amount

    def usable_at(self, t: datetime) -> bool:
        """Effective at t, not expired at t, and with units left."""
        return self.effective_at <= t and (self.expires_at is None or t < self.expires_at) and self.remaining > 0


def drawdown_key(g: GrantState) -> tuple:
    """Sort key of the consumption order of DESIGN section 4."""
    return (g.expires_at is None, g.expires_at or datetime.max.replace(tzinfo=g.effective_at.tzinfo),
            g.cost_basis, g.effective_at, g.seq, g.id)


def plan_drawdown(grants: list[GrantState], t: datetime, credits: int) -> tuple[list[tuple[GrantState, int]], int]:
    """Which grants ``credits`` units drawn at ``t`` come from, in consumption order.

    Returns (plan, available): plan is [(grant, units)] covering ``credits`` exactly, or [] when
    the usable grants hold fewer than ``credits`` units (available says how many they hold).
    Pure: the grants are not changed.
    """
    usable = sorted((g for g in grants if g.usable_at(t)), key=drawdown_key)
    available = sum(g.remaining for g in usable)
    if available < credits:
        return [], available
    plan, left = [], credits
    for g in usable:
        take = min(left, g.remaining)
        plan.append((g, take))
        left -= take
        if left == 0:
            break
    return plan, available


def due_expiries(grants: list[GrantState], until: datetime) -> list[GrantState]:
    """Grants whose expiry is due at or before ``until`` and that still hold units, by expiry time."""
    due = [g for g in grants if g.expires_at is not None and g.expires_at <= until and g.remaining > 0]
    return sorted(due, key=lambda g: (g.expires_at, g.seq, g.id))
