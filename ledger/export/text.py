"""Naming, escaping and amounts of the journal exports: pure functions of their arguments.

Amounts: the journal holds int minor units (a currency's ISO 4217 exponent: USD 2, JPY 0, KWD 3;
``CREDIT`` has exponent 0); the exports write decimal strings in major units (`major`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from ledger.core.money import CREDIT, exponent

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "'", "\x00")
"""The characters `csv_cell` neutralises at the start of a text cell, also after `CSV_BLANKS`:
the OWASP "CSV Injection" set (``= + - @``, tab, carriage return, line feed), NUL (OWASP ASVS),
and ``'`` so that `csv_uncell` can undo it. ``ledger.store.journal`` keeps the same tuple for
the server-side CSV rows."""

CSV_BLANKS = ("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
              "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""The characters a spreadsheet may skip before a formula: the C0 controls (U+0000-U+001F), the
space and every other Unicode whitespace character (``str.isspace``). ``ledger.store.journal``
keeps the same string."""

_LEADS = frozenset(CSV_TRIGGERS) | frozenset(CSV_BLANKS)
_FORMULA_RE = re.compile(f"[{re.escape(CSV_BLANKS)}]*[{re.escape(''.join(CSV_TRIGGERS))}]")
_QUOTE_RE = re.compile('[,"\r\n]')
_SPECIAL_RE = re.compile('["\r\n]')

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
    """A text cell of a CSV file, neutralised against spreadsheet formula injection (OWASP
    "CSV Injection"): ``value`` with a leading ``'`` when it starts with one of `CSV_TRIGGERS`,
    also after leading `CSV_BLANKS` (``"=1+1"``, ``"\\t=cmd"``, ``"\\r=1+1"``, ``" @x"``,
    ``"'x"``), else ``value`` unchanged. The one cell function of every CSV the product writes
    (the journal export, ``reports.tables.to_csv``); quoting is `csv_line`'s. Only text goes
    through it: amounts written by the engine stay numbers (``"-3.50"`` from the engine is
    written as is; the same text from a user becomes ``"'-3.50"``). Reversed by `csv_uncell`."""
    if value and value[0] in _LEADS and _FORMULA_RE.match(value):
        return "'" + value
    return value


def csv_uncell(value: str) -> str:
    """The text ``csv_cell`` was given: drops one leading ``'`` (every text starting with ``'``
    gets one, so ``csv_uncell(csv_cell(t)) == t`` for every string ``t``)."""
    return value.removeprefix("'")


def csv_field(value: str) -> str:
    """``value`` as an RFC 4180 field: in double quotes, each ``"`` doubled, when it holds a
    comma, a double quote, a carriage return or a line feed; else as it is. Python's csv writer
    with ``lineterminator="\\r\\n"`` quotes the same fields."""
    return '"' + value.replace('"', '""') + '"' if _QUOTE_RE.search(value) else value


def csv_line(fields: Sequence[str], end: str) -> str:
    """One CSV record: `csv_field` of each field, joined by commas, then ``end`` (``"\\r\\n"`` or
    ``"\\n"``). A CR or LF inside a field is always quoted, whatever ``end`` is (Python's csv
    writer quotes only the characters of its line terminator). As Python's csv writer, a record
    of one empty field is written ``""`` and a record of no field is just ``end``."""
    line = ",".join(fields)
    if line.count(",") == len(fields) - 1 and not _SPECIAL_RE.search(line):  # nothing to quote: the usual case
        return (line or ('""' if fields else "")) + end
    return ",".join(map(csv_field, fields)) + end


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
