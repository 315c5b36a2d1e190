"""Reading exports back: the balances an export's text carries, per format (pure; independent
of beancount and hledger), to tie an export to the journal's trial balance."""

from __future__ import annotations

import csv
import io
import json
import re

from ledger.export.text import csv_uncell, to_minor_units


def _add(out: dict[tuple[str, str], int], key: tuple[str, str], amount: int) -> None:
    out[key] = out.get(key, 0) + amount


def _nonzero(out: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in out.items() if v != 0}


def read_csv_balances(text: str) -> dict[tuple[str, str], int]:
    """Balances of a CSV export: {(account code, commodity): net int minor units, debit
    positive}, zero balances left out. Reads the decimal ``debit``/``credit`` columns (what a
    spreadsheet sees) and checks them against ``*_minor``; raises ValueError on a mismatch."""
    out: dict[tuple[str, str], int] = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        commodity = csv_uncell(row["commodity"])
        debit, credit = to_minor_units(row["debit"], commodity), to_minor_units(row["credit"], commodity)
        if (debit, credit) != (int(row["debit_minor"]), int(row["credit_minor"])):
            raise ValueError(f"line {row['line_id']}: decimal and minor amounts disagree")
        _add(out, (csv_uncell(row["account"]), commodity), debit - credit)
    return _nonzero(out)


def read_jsonl_balances(text: str) -> dict[tuple[str, str], int]:
    """Balances of a JSONL export (same shape as ``read_csv_balances``), from the decimal
    strings, checked against the minor units; raises ValueError on a mismatch."""
    out: dict[tuple[str, str], int] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        for ln in json.loads(raw)["lines"]:
            debit, credit = to_minor_units(ln["debit"], ln["commodity"]), to_minor_units(ln["credit"], ln["commodity"])
            if (debit, credit) != (ln["debit_minor"], ln["credit_minor"]):
                raise ValueError(f"line {ln['line_id']}: decimal and minor amounts disagree")
            _add(out, (ln["account"], ln["commodity"]), debit - credit)
    return _nonzero(out)


_POSTING_RE = re.compile(r"^\s+([A-Z][A-Za-z0-9:\-]*)\s{2,}(-?[0-9][0-9,]*(?:\.[0-9]+)?) ([A-Z][A-Z0-9'._-]*[A-Z0-9])(?:\s|$)")


def _read_ledger(text: str, account_codes: dict[str, str]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for raw in text.splitlines():
        m = _POSTING_RE.match(raw)
        if m:
            name, amount, commodity = m.groups()
            if name not in account_codes:
                raise ValueError(f"posting to an undeclared account {name!r}")
            _add(out, (account_codes[name], commodity), to_minor_units(amount, commodity))
    return _nonzero(out)


def read_beancount_balances(text: str) -> dict[tuple[str, str], int]:
    """Balances of a Beancount export (same shape as ``read_csv_balances``): account codes come
    from the ``code:`` metadata of the ``open`` directives. A plain-text reader of this
    module's own output, independent of beancount."""
    codes: dict[str, str] = {}
    current = None
    for raw in text.splitlines():
        m = re.match(r"^\d{4}-\d{2}-\d{2} open (\S+)", raw)
        if m:
            current = m.group(1)
        elif current and raw.startswith("  "):
            m = re.match(r'^\s+code: "(.*)"$', raw)
            if m:
                codes[current] = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        else:
            current = None
    return _read_ledger(text, codes)


def read_hledger_balances(text: str) -> dict[tuple[str, str], int]:
    """Balances of an hledger export (same shape as ``read_csv_balances``): account codes come
    from the ``code:`` tag of the ``account`` directives."""
    codes = {m.group(1): m.group(2) for m in re.finditer(r"^account (\S+)\s+; code:([^,\n]*)", text, re.MULTILINE)}
    return _read_ledger(text, codes)


def read_balances(text: str, fmt: str) -> dict[tuple[str, str], int]:
    """Balances of an export of format ``fmt`` read back from its text: {(account code,
    commodity): net int minor units, debit positive}, zero balances left out. Pure."""
    readers = {"csv": read_csv_balances, "jsonl": read_jsonl_balances, "beancount": read_beancount_balances,
               "hledger": read_hledger_balances}
    if fmt not in readers:
        raise ValueError(f"unknown export format {fmt!r}")
    return readers[fmt](text)


def balances_from_trial_balance(report) -> dict[tuple[str, str], int]:
    """A ``ledger.reporting.trial_balance`` report as {(account code, commodity): net int minor
    units, debit positive} (its rows already leave zero balances out), to compare with
    ``read_balances``."""
    return {(r["account"], r["commodity"]): r["debit"] - r["credit"] for r in report.rows}
