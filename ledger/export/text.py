"""Naming, escaping and amounts of the journal exports: pure functions of their arguments.

Amounts: the journal holds int minor units (a currency's ISO 4217 exponent: USD 2, JPY 0, KWD 3;
``CREDIT`` has exponent 0); the exports write decimal strings in major units (`major`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

from ledger.core.money import CREDIT, exponent

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "'")
"""The first characters `csv_cell` neutralises (``ledger.store.journal`` keeps the same tuple
for the server-side CSV rows)."""

_ROOTS = {"asset": "Assets", "liability": "Liabilities", "equity": "Equity", "revenue": "Income",
          "contra-revenue": "Income:Contra", "expense": "Expenses"}


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-")


def ledger_account_name(code: str, name: str, type_: str, normal: str) -> str:
    """The Beancount/hledger account for an account of the chart: ``ROOT:Name-code``.

    ROOT by type: asset ``Assets``, liability ``Liabilities``, equity ``Equity``, revenue
    ``Income``, contra-revenue ``Income:Contra``, expense ``Expenses``; memo (CREDIT) accounts
    ``Assets:Memo`` when debit-normal (9000 issued, 9050 overage) and ``Equity:Memo`` when
    credit-normal (9100 outstanding, 9200 consumed, 9300 expired, 9400 refunded). The leaf is
    the name reduced to ASCII letters, digits and dashes, capitalised, then a dash and the code:
    ``ledger_account_name("1100", "Accounts receivable", "asset", "debit")
    == "Assets:Accounts-receivable-1100"``. Raises ValueError for an unknown type or a code
    with no letter or digit.
    """
    if type_ == "memo":
        root = "Assets:Memo" if normal == "debit" else "Equity:Memo"
    elif type_ in _ROOTS:
        root = _ROOTS[type_]
    else:
        raise ValueError(f"account {code!r}: unknown account type {type_!r}")
    code_part = _slug(code)
    if not code_part:
        raise ValueError(f"account code {code!r} has no letter or digit")
    leaf = _slug(name) or "Account"
    return f"{root}:{leaf[0].upper()}{leaf[1:]}-{code_part}"


def csv_cell(value: str) -> str:
    """Neutralise a text cell against spreadsheet formula injection (OWASP "CSV Injection"):
    a value starting with ``= + - @``, tab, carriage return, line feed or ``'`` gets a leading
    ``'``. Reversible with ``csv_uncell``. Amount cells never go through it (they are unsigned)."""
    return "'" + value if value and value.startswith(CSV_TRIGGERS) else value


def csv_uncell(value: str) -> str:
    """The text ``csv_cell`` was given: drops one leading ``'``."""
    return value.removeprefix("'")


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def beancount_string(text: str) -> str:
    """A Beancount string literal: backslash, double quote, newline, carriage return and tab
    escaped (``\\\\ \\" \\n \\r \\t``); other control characters become U+FFFD."""
    text = _CONTROL_RE.sub("\ufffd", text)
    text = (text.replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{text}"'


def hledger_text(text: str, forbidden: str = ";") -> str:
    """Text for an hledger description (``forbidden=";"``) or tag value (``forbidden=",;"``):
    hledger has no escapes, so control characters become spaces and each forbidden character
    (``;`` starts a comment; ``,`` ends a tag value) becomes ``,`` resp. ``_``. Lossy by
    necessity; the CSV and JSONL exports keep the exact text."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", text)
    replacement = "_" if "," in forbidden else ","
    for ch in forbidden:
        text = text.replace(ch, replacement)
    return text.strip()


def decimals(commodity: str) -> int:
    """The decimals of ``commodity`` in major units: 0 for CREDIT, else its ISO 4217 exponent.
    Raises ValueError for a commodity that is neither."""
    return 0 if commodity == CREDIT else exponent(commodity)


def major(amount: int, commodity: str) -> str:
    """int minor units -> plain decimal string in major units with the commodity's decimals:
    major(-2165, "USD") == "-21.65"; major(1500, "JPY") == "1500"; major(1000, "CREDIT") == "1000".
    Raises ValueError for a commodity that is neither CREDIT nor an ISO 4217 currency."""
    exp = decimals(commodity)
    if exp == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10 ** exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def to_minor_units(text: str, commodity: str) -> int:
    """Inverse of ``major``: "21.65" USD -> 2165, "-1500" JPY -> -1500. Raises ValueError when
    the string has more decimals than the commodity allows."""
    value = Decimal(text.replace(",", ""))
    minor = value.scaleb(decimals(commodity))
    if minor != minor.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {commodity} allows")
    return int(minor)


def iso(instant: datetime | None) -> str | None:
    """An instant as RFC 3339 in UTC with a ``Z`` (microseconds only when not zero); None stays
    None."""
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
