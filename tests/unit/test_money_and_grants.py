"""Pure functions, no database: money in integers, the cumulative formula, consumption order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.grants import GrantState, plan_drawdown
from ledger.core.money import apply_rate, cumulative_share, format_money, format_units, major_str, round_div, to_minor

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,currency,minor", [("50000.00", "USD", 5_000_000), ("1500", "JPY", 1500),
                                                 ("1.234", "KWD", 1234), ("0.5", "USD", 50), ("-3", "USD", -300)])
def test_to_minor_uses_the_iso_exponent(text, currency, minor):
    """Decimal strings become integer minor units by the ISO 4217 exponent (USD 2, JPY 0, KWD 3)."""
    assert to_minor(text, currency) == minor


@pytest.mark.parametrize("text,currency,message", [
    ("1.001", "USD", "has 3 decimals; USD allows 2"), ("1.5", "JPY", "has 1 decimals; JPY allows 0"),
    ("1e3", "USD", "decimal string"), ("1,000.00", "USD", "decimal string"), (" 1", "USD", "decimal string"),
    ("99999999999999999999", "USD", "64 bits"), ("1.00", "ZZZ", "unknown currency"),
])
def test_to_minor_rejects_instead_of_rounding(text, currency, message):
    """More decimals than the currency allows, odd notations and overflow are errors, never rounded."""
    with pytest.raises(ValueError, match=message):
        to_minor(text, currency)


def test_rounding_is_half_away_from_zero():
    """round_div and apply_rate round halves away from zero."""
    assert [round_div(n, 2) for n in (1, 3, -1, -3)] == [1, 2, -1, -2]
    assert apply_rate(2000, Decimal("0.0825")) == 165
    assert apply_rate(10, Decimal("0.05")) == 1  # 0.5 -> 1


def test_cumulative_formula_worked_example():
    """$100.00 for 3 credits relieved one at a time: 33.33, 33.34, 33.33."""
    parts = [cumulative_share(10_000, r + 1, 3) - cumulative_share(10_000, r, 3) for r in range(3)]
    assert parts == [3333, 3334, 3333]


@given(amount=st.integers(0, 10**12), units=st.integers(1, 10**6), data=st.data())
def test_reliefs_always_add_up_to_the_amount(amount, units, data):
    """Any split of a grant's units into reliefs relieves exactly A in total, each part >= 0."""
    g = GrantState("g", "c", "topup", units, amount, "USD", T0, None)
    total = 0
    while g.remaining:
        d = data.draw(st.integers(1, g.remaining))
        part = g.relieve(d)
        assert part >= 0
        total += part
    assert total == amount and g.deferred == 0


def test_formatting_by_babel():
    """Money is formatted by CLDR rules for currency and locale."""
    assert format_money(123450, "USD") == "$1,234.50"
    assert format_money(123450, "EUR", "de_DE") == "1.234,50\xa0€"
    assert format_money(1500, "JPY") == "¥1,500"
    assert major_str(5, "KWD") == "0.005"


def _g(gid, units, amount, expires_days=None, effective=T0, source="topup"):
    return GrantState(gid, "c", source, units, amount, "USD", effective,
                      T0 + timedelta(days=expires_days) if expires_days else None)


def test_consumption_order_expiry_then_cost_basis_then_age():
    """Earliest expiry first (never last), then lower cost basis, then the oldest grant."""
    never = _g("never", 100, 100)
    late_cheap = _g("late-cheap", 100, 0, 30, source="promotional")
    soon_paid = _g("soon-paid", 100, 500, 10)
    soon_promo = _g("soon-promo", 100, 0, 10, source="promotional")
    soon_paid_newer = _g("soon-paid-newer", 100, 500, 10, effective=T0 + timedelta(hours=1))
    plan, available = plan_drawdown([never, late_cheap, soon_paid_newer, soon_paid, soon_promo],
                                    T0 + timedelta(days=2), 450)
    assert [(g.id, u) for g, u in plan] == [("soon-promo", 100), ("soon-paid", 100), ("soon-paid-newer", 100),
                                            ("late-cheap", 100), ("never", 50)]
    assert available == 500


def test_expired_and_not_yet_effective_grants_are_not_drawn():
    """A grant is usable from effective_at up to (not including) expires_at."""
    expired = _g("expired", 10, 10, 1)
    future = _g("future", 10, 10, effective=T0 + timedelta(days=5))
    plan, available = plan_drawdown([expired, future], T0 + timedelta(days=1), 1)
    assert plan == [] and available == 0


@given(st.integers(-(2**63), 2**63 - 1))
def test_format_units_in_en_us_is_babels_grouping(units):
    """The en_US shortcut of format_units gives exactly Babel's en_US formatting."""
    from babel.numbers import format_decimal

    assert format_units(units) == format_decimal(units, locale="en_US")
