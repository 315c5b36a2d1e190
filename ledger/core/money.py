"""Money as integers: parsing, exact allocation and formatting.

Amounts are ``int`` minor units of an ISO 4217 currency whose exponent comes from Babel's CLDR
data (USD 2, JPY 0, KWD 3); credits are ``int`` units of the ``CREDIT`` commodity. Rounding is
half away from zero (docs/design.md §2.5), and every split uses cumulative rounding so the parts
add up exactly to the whole.

Worked example of the cumulative formula (docs/design.md §4.2): $100.00 (A = 10000 minor units)
for N = 3 credits, consumed one at a time, relieves
``round(10000*1/3) - 0 = 3333``, ``round(10000*2/3) - 3333 = 3334``, ``10000 - 6667 = 3333``.
"""

from __future__ import annotations

import functools

import re
from decimal import Decimal
from fractions import Fraction
from functools import cache, lru_cache

from babel.numbers import format_currency, format_decimal, get_currency_precision, list_currencies
from babel import Locale

CREDIT = "CREDIT"
INT64_MAX = 2**63 - 1

_DECIMAL_RE = re.compile(r"\A-?(0|[1-9][0-9]*)(\.[0-9]+)?\Z")
"""A plain decimal, the whole string (fullmatch; "$" would also match before a final newline)."""
DECIMAL_MAX_CHARS = 40
"""The longest decimal string accepted: an amount in 64 bits of minor units needs 21 characters;
a longer string is refused before Decimal and int conversions that grow with its length."""


@lru_cache(maxsize=None)
def is_currency(code: str) -> bool:
    """True when ``code`` is an ISO 4217 currency known to CLDR (Babel)."""
    return isinstance(code, str) and len(code) == 3 and code.isupper() and code in _currencies()


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@lru_cache(maxsize=None)
def exponent(currency: str) -> int:
    """Number of decimal places of ``currency`` (minor units), e.g. USD 2, JPY 0, KWD 3.

    Raises ValueError for a code that is not an ISO 4217 currency.
    """
    if not is_currency(currency):
        raise ValueError(f"unknown currency {currency!r}")
    return int(get_currency_precision(currency))


def parse_decimal(text: str) -> Decimal:
    """Parse a plain decimal string ("1234.50", "-3", "0.0825"); raises ValueError otherwise.

    Exponents, spaces, thousands separators, "+" signs, leading zeros, anything after the
    number (a trailing newline included) and strings longer than DECIMAL_MAX_CHARS are refused.
    """
    if not isinstance(text, str) or not _DECIMAL_RE.fullmatch(text):
        raise ValueError("must be a decimal string such as \"1234.50\"")
    if len(text) > DECIMAL_MAX_CHARS:
        raise ValueError(f"must be a decimal string of at most {DECIMAL_MAX_CHARS} characters")
    return Decimal(text)


def to_minor(text: str, currency: str) -> int:
    """Convert a decimal string in major units into int minor units of ``currency``.

    "50000.00" USD -> 5000000; "1500" JPY -> 1500. Raises ValueError when the string is not a
    plain decimal, has more decimals than the currency allows (never rounded), or does not fit
    in 64 bits.
    """
    value = parse_decimal(text)
    exp = exponent(currency)
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    if decimals > exp:
        raise ValueError(f"has {decimals} decimals; {currency} allows {exp}")
    minor = int(value.scaleb(exp))
    if abs(minor) > INT64_MAX:
        raise ValueError("does not fit in 64 bits")
    return minor


def to_major(amount: int, currency: str) -> Decimal:
    """int minor units -> Decimal in major units with the currency's exponent (exact)."""
    exp = exponent(currency)
    return Decimal(amount).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def major_str(amount: int, currency: str) -> str:
    """int minor units -> plain decimal string in major units ("1234.50"), as in JSON reports."""
    return format(to_major(amount, currency), "f")


def round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in exact integer arithmetic.

    denominator must be positive. round_div(5, 2) == 3, round_div(-5, 2) == -3.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q


def cumulative_share(total: int, done: int, whole: int) -> int:
    """The cumulative formula: round(total x done / whole), half away from zero.

    total: int (minor units); done, whole: int units with 0 <= done <= whole, whole > 0.
    The part for a step from R to R + d is cumulative_share(A, R + d, N) - cumulative_share(A, R, N);
    the parts always add up to ``total`` when ``done`` reaches ``whole``.
    """
    return round_div(total * done, whole)


def round_fraction(x: Fraction) -> int:
    """An exact rational rounded half away from zero: Fraction(5, 2) -> 3, Fraction(-5, 2) -> -3."""
    return round_div(x.numerator, x.denominator)


def allocate(total: int, weights: list) -> list[int]:
    """Split ``total`` (int minor units) in proportion to ``weights`` (Decimal, Fraction or int,
    >= 0, not all zero) by cumulative rounding: the parts add up to ``total`` exactly.

    Per ASC 606-10-32-28..33 (relative standalone selling prices). Example: 29900 split by
    SSPs 600.00 and 99.00 -> [25665, 4235].
    """
    ws = [Fraction(w) for w in weights]
    whole = sum(ws)
    if whole <= 0 or any(w < 0 for w in ws):
        raise ValueError("weights must be >= 0 and not all zero")
    out, done, before = [], Fraction(0), 0
    for w in ws:
        done += w
        upto = round_fraction(total * done / whole)
        out.append(upto - before)
        before = upto
    return out


def price_amount(units: int, price: str | Decimal, currency: str) -> int:
    """units x a per-credit price (decimal string in major units, may carry more decimals than
    the currency) in int minor units of ``currency``, rounded half away from zero:
    price_amount(3, "0.15", "USD") == 45; price_amount(1, "0.125", "USD") == 13."""
    return round_fraction(Fraction(units) * Fraction(Decimal(price)) * 10 ** exponent(currency))


def apply_rate(amount: int, rate: Decimal) -> int:
    """amount (int minor units) x rate (Decimal, e.g. tax 0.0825), rounded half away from zero."""
    product = Decimal(amount) * rate
    sign = -1 if product < 0 else 1
    return sign * int(abs(product).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def format_money(amount: int, currency: str, locale: str = "en_US") -> str:
    """int minor units -> localised money string by Babel/CLDR: 123450 USD -> "$1,234.50"."""
    return format_currency(to_major(amount, currency), currency, locale=locale)


@cache
@functools.cache
def _locale(name: str) -> Locale:
    """Babel's Locale, parsed once per name (parsing it costs more than formatting a number)."""
    return Locale.parse(name)


def format_price(price: Decimal, currency: str, locale: str = "en_US") -> str:
    """A unit price that may carry more decimals than the currency (e.g. $0.05 per credit)."""
    exp = exponent(currency)
    places = max(exp, -price.normalize().as_tuple().exponent if price != 0 else exp)
    # the locale's own currency pattern (symbol position, spacing), with the price's decimals
    pattern = _locale(locale).currency_formats["standard"].pattern
    pattern = re.sub(r"0(\.0+)?(?![0-9])", "0" + ("." + "0" * places if places else ""), pattern)
    return format_currency(price, currency, locale=locale, currency_digits=False, format=pattern)


def format_amount(amount: int, currency: str, locale: str = "en_US") -> str:
    """int minor units -> grouped decimal without symbol, for tables: 123450 USD -> "1,234.50"."""
    exp = exponent(currency)
    pattern = "#,##0." + "0" * exp if exp else "#,##0"
    return format_decimal(to_major(amount, currency), format=pattern, locale=locale)


def format_units(units: int, locale: str = "en_US") -> str:
    """int credit units -> grouped integer: 120000 -> "120,000". en_US (every journal entry's
    description) is Python's own grouping, which gives Babel's en_US result at a twentieth of
    the cost (tests/unit/test_money_and_grants.py compares the two)."""
    if locale == "en_US":
        return f"{units:,}"
    return format_decimal(units, locale=_locale(locale))
