"""Credit grants (lots): cost basis, relief by the cumulative formula, and drawdown order.

Pure values and functions, no database. A grant of N units bought for A (minor units) has a
cost basis of A / N per credit, kept exact by the cumulative formula (docs/design.md §4.2)::

    relieved amount after R of N units have left = round(A x R / N)

Worked example: $100.00 for 3 credits consumed one at a time relieves 33.33, 33.34, 33.33, and
after the third the grant's deferred balance is exactly 0.00.

Proportional breakage (ASC 606-10-55-48, IFRS 15 B46): with expected breakage rate b the
expected redeemed units are E = N x (1 - b), and after C units consumed the total recognised
is round(A x min(C, E) / E); each consumption recognises the increment, split into usage
revenue (the cumulative formula) and breakage revenue (the rest, negative once C passes E).
Worked check (docs/design.md §5.5): A = 9,000.00, N = 10,000, b = 3%: after 4,500 consumed 4,175.26 is
recognised; the estimate becomes 1% and 4,000 more are consumed: 7,727.27 in total.

Consumption order at time t, among grants effective at t and not expired at t (docs/design.md §4.3):
earliest expires_at first (never-expiring last), then lower cost basis first (promotional
before paid), then the oldest grant first (rolled credits, bought in an earlier term, before the
grant they rolled beside).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from ledger.core.money import cumulative_share, round_fraction


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
    released: int | None = None  # amount moved out of deferred revenue so far (None: f(R))
    method: str = "at_expiry"
    rate: Fraction | None = None  # expected breakage rate b (proportional method)
    rollover_percent: int = 0
    rollover_max_periods: int | None = None
    rollover_max_credits: int | None = None
    rollover_expires: bool = True
    generation: int = 0
    root_id: str | None = None
    invoice_number: str | None = None
    overage_price: str | None = None
    renews: str | None = None
    contract_id: str | None = None
    event_id: str | None = None
    expiry_done: bool = False  # the expiry step (with its rollover) has run once
    voided: bool = False  # its purchase or grant event was voided

    def __post_init__(self) -> None:
        if self.released is None:
            self.released = cumulative_share(self.amount, self.relieved, self.units)

    @property
    def remaining(self) -> int:
        """Units still outstanding (N - R)."""
        return self.units - self.relieved

    @property
    def deferred(self) -> int:
        """Deferred revenue left on the grant, minor units: A - round(A x R / N) for at_expiry
        grants, A - round(A x min(C, E) / E) for proportional ones (until expiry)."""
        assert self.released is not None
        return self.amount - self.released

    @property
    def proportional(self) -> bool:
        return self.method == "proportional"

    def target(self, consumed: int, rate: Fraction | None = None) -> int:
        """Proportional method: total recognised after ``consumed`` units, round(A x min(C, E) / E)."""
        b = self.rate if rate is None else rate
        assert b is not None and 0 <= b < 1
        expected = self.units * (1 - b)
        if consumed >= expected:
            return self.amount
        return round_fraction(self.amount * consumed / expected)

    def consume(self, units: int) -> tuple[int, int]:
        """Draw ``units`` for usage; returns (usage revenue, breakage revenue) in minor units.

        at_expiry: (relief by the cumulative formula, 0). proportional: the increment of the
        total recognised, of which the cumulative-formula part is usage and the rest breakage.
        """
        usage = self.relieve(units, track=False)
        if not self.proportional:
            self.released += usage  # type: ignore[operator]
            return usage, 0
        total = self.target(self.relieved) - self.released  # type: ignore[operator]
        self.released += total  # type: ignore[operator]
        return usage, total - usage

    def unconsume(self, units: int) -> tuple[int, int]:
        """Return ``units`` of earlier consumption (a voided usage event): the exact reverse of
        ``consume`` at the current R, so the grant stays on its formula; (usage, breakage) >= 0
        are the amounts to take back out of revenue."""
        if not 0 < units <= self.relieved:
            raise ValueError(f"grant {self.id}: cannot return {units} of {self.relieved} relieved units")
        usage = cumulative_share(self.amount, self.relieved, self.units) - cumulative_share(
            self.amount, self.relieved - units, self.units)
        self.relieved -= units
        if not self.proportional:
            self.released -= usage  # type: ignore[operator]
            return usage, 0
        total = self.released - self.target(self.relieved)  # type: ignore[operator]
        self.released -= total  # type: ignore[operator]
        return usage, total - usage

    def change_estimate(self, rate: Fraction) -> int:
        """A new expected breakage rate: returns the cumulative catch-up (signed, minor units)."""
        self.rate = rate
        catch_up = self.target(self.relieved) - self.released  # type: ignore[operator]
        self.released += catch_up  # type: ignore[operator]
        return catch_up

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

    def relieve(self, units: int, *, track: bool = True) -> int:
        """Apply a relief of ``units`` (rollover out, expiry, refund); returns the amount moved
        out of deferred revenue by the cumulative formula."""
        amount = self.relief_amount(units)
        self.relieved += units
        if track:
            self.released += amount  # type: ignore[operator]
        return amount

    def release_rest(self) -> int:
        """At expiry, after any rollover: the deferred amount left (the true-up; signed)."""
        rest = self.amount - self.released  # type: ignore[operator]
        self.released = self.amount
        return rest

    def usable_at(self, t: datetime) -> bool:
        """Effective at t, not expired at t, and with units left."""
        return self.effective_at <= t and (self.expires_at is None or t < self.expires_at) and self.remaining > 0


def drawdown_key(g: GrantState) -> tuple:
    """Sort key of the consumption order of docs/design.md §4.3."""
    # at equal expiry, cost and start, rolled credits (bought earlier) go before their renewal's
    return (g.expires_at is None, g.expires_at or datetime.max.replace(tzinfo=g.effective_at.tzinfo),
            g.cost_basis, g.effective_at, -g.generation, g.seq, g.id)


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


def first_due_expiry(grants: Iterable[GrantState], until: datetime) -> GrantState | None:
    """The grant whose expiry is due first at or before ``until`` among those that still hold
    units (a grant whose units came back after it expired, by a voided usage, expires again);
    ties by sequence then id. None when none is due."""
    return min((g for g in grants if g.expires_at is not None and g.expires_at <= until and g.remaining > 0),
               key=lambda g: (g.expires_at, g.seq, g.id), default=None)


def rollover_units(g: GrantState, unused: int) -> int:
    """Units that roll over (docs/design.md §5.4): floor(unused x percent / 100), capped by max_credits, and
    none when the grant's generation has reached max_periods."""
    if g.rollover_percent <= 0 or unused <= 0:
        return 0
    if g.rollover_max_periods is not None and g.generation >= g.rollover_max_periods:
        return 0
    rolled = unused * g.rollover_percent // 100
    if g.rollover_max_credits is not None:
        rolled = min(rolled, g.rollover_max_credits)
    return rolled
