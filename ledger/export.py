"""Audit exports of the journal (``ledger export journal``): CSV, JSONL, Beancount, hledger.

Every export holds the journal entries whose ``entry_date`` lies in ``[start, end]`` (both
inclusive, both optional), ordered by (entry_date, entry id, line id), with for each entry its
id, entry_date, occurred_at (UTC, RFC 3339), kind, event id, import id and description, and for
each line its account, commodity (ISO currency or ``CREDIT``), debit or credit, and the
dimensions customer_id (with the customer's name), grant_id, invoice_number and event_id.

When ``start`` is given, the export opens with one *opening balance* entry (kind
``opening_balance``, no entry id, dated the day before ``start``) that carries the life-to-date
balance of every account and commodity before ``start``. It balances per commodity like any
entry, so the balances of every export equal the trial balance at ``end`` (life to date),
whatever the range: ``read_balances(text, fmt) == balances_from_trial_balance(trial_balance(...))``
when ``end`` is a period's last day.

Amounts. The journal holds int minor units (a currency's ISO 4217 exponent: USD 2, JPY 0, KWD 3;
``CREDIT`` has exponent 0). CSV and JSONL give both the decimal string in major units
("21.65") and the int minor units (2165), on separate debit and credit sides, never signed.
Beancount and hledger give signed amounts in major units with the commodity's decimals
(debit positive, credit negative): ``21.65 USD``, ``1500 JPY``, ``1000 CREDIT``.

Files. ``export_journal`` writes FILE (atomically: a temporary file renamed into place), then
``FILE.manifest.json`` (file name, sha256, byte/line/entry/posting counts, date range, opening
and closing balances per account and commodity) and ``FILE.sha256`` in ``sha256sum`` format
covering FILE and its manifest (``cd DIR && sha256sum -c FILE.sha256``). The output is
deterministic: the same journal and arguments give the same bytes (no timestamps).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, TextIO

import sqlalchemy as sa
from sqlmodel import Session

from ledger import __version__
from ledger.store.db import is_postgres, one_snapshot
from ledger.errors import LedgerError
from ledger.store.models import Account, Customer, JournalEntry, JournalLine
from ledger.core.money import CREDIT, exponent

FORMATS = ("csv", "jsonl", "beancount", "hledger")
"""The export formats, as given to ``--format``."""

OPENING_KIND = "opening_balance"
"""``kind`` of the opening balance entry an export with a start date begins with."""

CSV_COLUMNS = (
    "entry_id", "entry_date", "occurred_at", "kind", "event_id", "import_id", "description",
    "line_id", "account", "account_name", "commodity", "debit", "credit", "debit_minor", "credit_minor",
    "customer_id", "customer_name", "grant_id", "invoice_number", "line_event_id",
)
"""The CSV header: one row per journal line, each with its entry's fields. ``debit``/``credit``:
unsigned decimal strings in major units ("0.00" on the other side); ``*_minor``: the same as
int minor units."""

_AMOUNT_COLUMNS = frozenset({"debit", "credit", "debit_minor", "credit_minor"})
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "'")


class ExportError(LedgerError):
    """An export that cannot be made (bad date range, unknown format, export not tying to the
    journal). The CLI prints the message and exits 1."""


# --------------------------------------------------------------------------- values
@dataclass(frozen=True)
class ExportLine:
    """One posting. debit, credit: int >= 0 minor units of ``commodity``, one of them positive
    (the opening balance entry carries net balances the same way). line_id: None on the
    opening balance entry."""

    line_id: int | None
    account: str
    commodity: str
    debit: int
    credit: int
    customer_id: str | None = None
    grant_id: str | None = None
    invoice_number: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class ExportEntry:
    """One journal entry with its lines. entry_id and occurred_at are None only on the opening
    balance entry (kind ``opening_balance``)."""

    entry_id: int | None
    entry_date: date
    occurred_at: datetime | None
    kind: str
    description: str
    customer_id: str | None
    event_id: str | None
    import_id: int | None
    lines: tuple[ExportLine, ...]


@dataclass(frozen=True)
class AccountInfo:
    """An account of the chart as the export names it. type: asset | liability | equity |
    revenue | contra-revenue | expense | memo; normal: debit | credit."""

    code: str
    name: str
    type: str
    normal: str

    @property
    def ledger_name(self) -> str:
        """The Beancount/hledger account name, e.g. ``Assets:Accounts-receivable-1100``."""
        return ledger_account_name(self.code, self.name, self.type, self.normal)


@dataclass
class ExportResult:
    """What ``export_journal`` wrote. balances: {(account code, commodity): net int minor units,
    debit positive} at ``end`` (life to date), zero balances left out; the same for
    ``opening`` the day before ``start`` (empty without ``start``)."""

    path: Path
    manifest_path: Path
    sha256_path: Path
    fmt: str
    sha256: str
    bytes: int
    lines: int
    entries: int
    postings: int
    balances: dict[tuple[str, str], int]
    opening: dict[tuple[str, str], int] = field(default_factory=dict)


# --------------------------------------------------------------------------- naming and escaping
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
    return "'" + value if value and value.startswith(_CSV_TRIGGERS) else value


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


def _exp(commodity: str) -> int:
    return 0 if commodity == CREDIT else exponent(commodity)


def major(amount: int, commodity: str) -> str:
    """int minor units -> plain decimal string in major units with the commodity's decimals:
    major(-2165, "USD") == "-21.65"; major(1500, "JPY") == "1500"; major(1000, "CREDIT") == "1000".
    Raises ValueError for a commodity that is neither CREDIT nor an ISO 4217 currency."""
    exp = _exp(commodity)
    if exp == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10 ** exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def to_minor_units(text: str, commodity: str) -> int:
    """Inverse of ``major``: "21.65" USD -> 2165, "-1500" JPY -> -1500. Raises ValueError when
    the string has more decimals than the commodity allows."""
    value = Decimal(text.replace(",", ""))
    minor = value.scaleb(_exp(commodity))
    if minor != minor.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {commodity} allows")
    return int(minor)


def _iso(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- reading the journal
def _range(q, start: date | None, end: date | None):
    if start is not None:
        q = q.where(JournalEntry.entry_date >= start)
    if end is not None:
        q = q.where(JournalEntry.entry_date <= end)
    return q


def journal_balances(session: Session, *, before: date | None = None, through: date | None = None) -> dict[tuple[str, str], int]:
    """Life-to-date balances from the database: {(account code, commodity): net int minor units,
    debit positive}, zero balances left out, over entries dated before ``before`` (exclusive)
    and/or through ``through`` (inclusive); both None: the whole journal."""
    q = (sa.select(JournalLine.account_code, JournalLine.commodity,
                   sa.func.sum(JournalLine.debit) - sa.func.sum(JournalLine.credit))
         .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
         .group_by(JournalLine.account_code, JournalLine.commodity))
    if before is not None:
        q = q.where(JournalEntry.entry_date < before)
    if through is not None:
        q = q.where(JournalEntry.entry_date <= through)
    return {(code, commodity): int(net) for code, commodity, net in session.execute(q) if int(net) != 0}


def _accounts(session: Session) -> dict[str, AccountInfo]:
    return {a.code: AccountInfo(a.code, a.name, a.type, a.normal_balance)
            for a in session.execute(sa.select(Account)).scalars()}


def _customer_names(session: Session) -> dict[str, str]:
    return dict(session.execute(sa.select(Customer.id, Customer.name)).all())


def _opening_entry(opening: dict[tuple[str, str], int], day: date) -> ExportEntry:
    lines = tuple(ExportLine(None, code, commodity, max(net, 0), max(-net, 0))
                  for (code, commodity), net in sorted(opening.items(), key=lambda kv: (kv[0][1] == CREDIT, kv[0][1], kv[0][0])))
    return ExportEntry(None, day, None, OPENING_KIND, f"Balances brought forward at {day.isoformat()}",
                       None, None, None, lines)


def iter_entries(session: Session, start: date | None = None, end: date | None = None,
                 *, chunk: int = 5000) -> Iterator[ExportEntry]:
    """The journal entries dated in [start, end] (inclusive, None = open-ended) with their lines,
    ordered by (entry_date, entry id), lines by id; streamed in chunks of ``chunk`` rows."""
    e, ln = JournalEntry, JournalLine
    q = _range(sa.select(e.id, e.entry_date, e.occurred_at, e.kind, e.description, e.customer_id, e.event_id,
                         e.import_id, ln.id, ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id,
                         ln.grant_id, ln.invoice_number, ln.event_id)
               .join(ln, ln.entry_id == e.id), start, end).order_by(e.entry_date, e.id, ln.id)
    head: tuple | None = None
    lines: list[ExportLine] = []
    for row in session.execute(q.execution_options(yield_per=chunk)):
        if head is None or row[0] != head[0]:
            if head is not None:
                yield ExportEntry(*head, tuple(lines))
            head, lines = tuple(row[:8]), []
        lines.append(ExportLine(row[8], row[9], row[10], int(row[11]), int(row[12]), row[13], row[14], row[15], row[16]))
    if head is not None:
        yield ExportEntry(*head, tuple(lines))


# --------------------------------------------------------------------------- writers
@dataclass
class _Context:
    accounts: dict[str, AccountInfo]
    names: dict[str, str]
    used: list[tuple[str, str]]  # (account code, commodity) pairs in the export
    first_date: date | None
    title: str


def _amounts(ln: ExportLine) -> tuple[str, str]:
    return major(ln.debit, ln.commodity), major(ln.credit, ln.commodity)


def write_csv(out: TextIO, entries: Iterable[ExportEntry], ctx: _Context) -> None:
    """CSV (RFC 4180, CRLF): the ``CSV_COLUMNS`` header, then one row per line. Text cells go
    through ``csv_cell``; amounts are unsigned decimal strings (never starting with '-')."""
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for e in entries:
        for ln in e.lines:
            debit, credit = _amounts(ln)
            acct = ctx.accounts.get(ln.account)
            row = {
                "entry_id": e.entry_id, "entry_date": e.entry_date.isoformat(), "occurred_at": _iso(e.occurred_at),
                "kind": e.kind, "event_id": e.event_id, "import_id": e.import_id, "description": e.description,
                "line_id": ln.line_id, "account": ln.account, "account_name": acct.name if acct else None,
                "commodity": ln.commodity, "debit": debit, "credit": credit,
                "debit_minor": ln.debit, "credit_minor": ln.credit, "customer_id": ln.customer_id,
                "customer_name": ctx.names.get(ln.customer_id) if ln.customer_id else None,
                "grant_id": ln.grant_id, "invoice_number": ln.invoice_number, "line_event_id": ln.event_id,
            }
            w.writerow(["" if v is None else (str(v) if k in _AMOUNT_COLUMNS or not isinstance(v, str) else csv_cell(v))
                        for k, v in row.items()])


_SQL_TRIGGERS = ", ".join({"\t": "E'\\t'", "\r": "E'\\r'", "\n": "E'\\n'", "'": "''''"}.get(t, f"'{t}'")
                          for t in _CSV_TRIGGERS)


def _sql_text(expr: str) -> str:
    """SQL for the CSV field ``write_csv`` writes for a text cell: ``csv_cell``, then quoted as
    Python's csv writer quotes (QUOTE_MINIMAL: a comma, double quote, CR or LF inside); NULL
    and '' give an empty field."""
    cell = f"CASE WHEN left({expr}, 1) IN ({_SQL_TRIGGERS}) THEN '''' || {expr} ELSE {expr} END"
    quoted = f"'\"' || replace({cell}, '\"', '\"\"') || '\"'"  # csv_cell adds no comma, quote, CR or LF
    return f"coalesce(CASE WHEN {expr} ~ '[,\"\\r\\n]' THEN {quoted} ELSE {cell} END, '')"


def _sql_major(expr: str) -> str:
    """SQL for ``major(expr, commodity)`` of an amount >= 0, given the joined exponent row ``x``
    (x.m: the numeric 10 ** -decimals, written with that many decimals: 1, 0.01, 0.001)."""
    return f"({expr}::numeric * x.m)::text"  # exact: a product's scale is the sum of the scales


def _sql_iso(expr: str) -> str:
    """SQL for ``_iso(expr)``: UTC, RFC 3339, a fraction only when not zero, then ``Z``."""
    utc = f"({expr} AT TIME ZONE 'UTC')"
    return (f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {utc}) = {utc} "
            f"THEN '' ELSE to_char({utc}, '.US') END || 'Z'")


def copy_csv_rows(session: Session, out: BinaryIO, start: date | None, end: date | None,
                  commodities: Iterable[str]) -> None:
    """PostgreSQL only: the rows ``write_csv`` writes (no header, no opening entry) for the
    entries dated in [start, end], byte for byte, made by the server and streamed to ``out``.

    The SQL formats every field as ``write_csv`` does (``csv_cell``, then quoted where Python's
    csv writer quotes; decimal and minor amounts as ``major``; dates; UTC instants; CRLF line
    ends) and joins an entry's lines into one value, which ``COPY (SELECT ...) TO STDOUT``
    sends as one message: its CSV mode with \\x01 as quote character wraps each value in \\x01
    (the value holds a line end) and doubles any \\x01 inside, which is undone here.
    ``commodities``: every commodity the lines use (a line in another one is not exported, and
    the caller's tie-out check then fails)."""
    sql = copy_csv_sql(start, end, commodities)
    if sql is None:
        return
    # compiling these expressions costs more than it saves; the sorts (about 50 MB a process at
    # 450,000 lines) in memory, not in files (4 MB by default)
    session.execute(sa.text("SET LOCAL jit = off"))
    session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    raw = session.connection().connection.driver_connection
    batch: list[bytes] = []

    def flush() -> None:
        data = b"".join(batch).replace(b"\x01\x01", b"\x01")
        out.write(data)
        batch.clear()

    with raw.cursor() as cur, cur.copy(sql) as copy:
        for message in copy:  # one entry: \x01 + its lines + \x01 + LF
            batch.append(bytes(message[1:-2]))
            if len(batch) >= 4096:
                flush()
    flush()


def copy_csv_sql(start: date | None, end: date | None, commodities: Iterable[str]) -> str | None:
    """The ``COPY (SELECT ...) TO STDOUT`` statement of `copy_csv_rows`; None when there are no
    commodities (nothing to export). raises ExportError for a commodity code that is not
    [A-Z0-9]+ (it is written into the SQL)."""
    exps = sorted({(c, _exp(c)) for c in commodities})
    if not exps:
        return None
    bad = [c for c, _ in exps if not re.fullmatch(r"[A-Z0-9]+", c)]
    if bad:
        raise ExportError(f"unexpected commodity code(s) in the journal: {bad}")
    values = ", ".join(f"('{c}', {major(1, c)}::numeric)" for c, _ in exps)
    where = []
    if start is not None:
        where.append(f"entry_date >= DATE '{start.isoformat()}'")
    if end is not None:
        where.append(f"entry_date <= DATE '{end.isoformat()}'")
    text = _sql_text
    # Each line is formatted by the parallel workers in the join's projection (PostgreSQL pulls
    # the subqueries up, so the entry's fields too are formatted once per line; PostgreSQL 15
    # cannot aggregate string_agg in the workers, so formatting them once per entry would make
    # the leader do all the work, measured slower). The cells of accounts, customers and grants
    # are taken from the joined rows; a value not among them is formatted from the line's own.
    # concat_ws skips NULLs, so every field it joins is a non-NULL text (a line without a
    # customer gives an empty field, as in write_csv).
    sql = f"""
        COPY (
          SELECT string_agg(line, '' ORDER BY line_id) FROM (
            SELECT e.entry_date, e.id, l.id AS line_id,
                   concat_ws(',', e.head, l.id, coalesce(a.code_f, {text('l.account_code')}), coalesce(a.name_f, ''), x.c,
                             {_sql_major('l.debit')}, {_sql_major('l.credit')}, l.debit, l.credit,
                             CASE WHEN c.id IS NULL THEN {text('l.customer_id')} ELSE c.id_f END, coalesce(c.name_f, ''),
                             CASE WHEN g.id IS NULL THEN {text('l.grant_id')} ELSE g.id_f END,
                             {text('l.invoice_number')}, {text('l.event_id')}) || E'\\r\\n' AS line
            FROM (SELECT id, entry_date,
                         concat_ws(',', id, to_char(entry_date, 'YYYY-MM-DD'), {_sql_iso('occurred_at')},
                                   {text('kind')}, {text('event_id')}, coalesce(import_id::text, ''),
                                   {text('description')}) AS head
                  FROM journal_entry {"WHERE " + " AND ".join(where) if where else ""}) e
            JOIN journal_line l ON l.entry_id = e.id
            JOIN (VALUES {values}) AS x(c, m) ON x.c = l.commodity
            LEFT JOIN (SELECT code, {text('code')} AS code_f, {text('name')} AS name_f FROM account) a
              ON a.code = l.account_code
            LEFT JOIN (SELECT id, {text('id')} AS id_f, {text('name')} AS name_f FROM customer) c
              ON c.id = l.customer_id AND l.customer_id <> ''
            LEFT JOIN (SELECT id, {text('id')} AS id_f FROM credit_grant) g
              ON g.id = l.grant_id
            ORDER BY e.entry_date, e.id, l.id
          ) lines
          GROUP BY entry_date, id
          ORDER BY entry_date, id
        ) TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"""
    return sql


def entry_object(e: ExportEntry, ctx: _Context | None = None) -> dict:
    """The JSONL object of one entry: {entry_id, entry_date, occurred_at, kind, description,
    customer_id, customer_name, event_id, import_id, lines: [{line_id, account, account_name,
    commodity, debit, credit (decimal strings, major units, unsigned), debit_minor, credit_minor
    (int), customer_id, grant_id, invoice_number, event_id}]}; absent values are null."""
    accounts = ctx.accounts if ctx else {}
    names = ctx.names if ctx else {}
    lines = []
    for ln in e.lines:
        debit, credit = _amounts(ln)
        acct = accounts.get(ln.account)
        lines.append({"line_id": ln.line_id, "account": ln.account, "account_name": acct.name if acct else None,
                      "commodity": ln.commodity, "debit": debit, "credit": credit,
                      "debit_minor": ln.debit, "credit_minor": ln.credit, "customer_id": ln.customer_id,
                      "grant_id": ln.grant_id, "invoice_number": ln.invoice_number, "event_id": ln.event_id})
    return {"entry_id": e.entry_id, "entry_date": e.entry_date.isoformat(), "occurred_at": _iso(e.occurred_at),
            "kind": e.kind, "description": e.description, "customer_id": e.customer_id,
            "customer_name": names.get(e.customer_id) if e.customer_id else None,
            "event_id": e.event_id, "import_id": e.import_id, "lines": lines}


def write_jsonl(out: TextIO, entries: Iterable[ExportEntry], ctx: _Context) -> None:
    """JSONL: one ``entry_object`` per line, compact, UTF-8, keys in a fixed order."""
    out.writelines(json.dumps(entry_object(e, ctx), ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries)


def _commodities(ctx: _Context) -> list[str]:
    return sorted({c for _, c in ctx.used}, key=lambda c: (c == CREDIT, c))


def write_beancount(out: TextIO, entries: Iterable[ExportEntry], ctx: _Context) -> None:
    """A Beancount file that ``bean-check`` accepts: options (title, one operating_currency per
    currency), a ``commodity`` directive per commodity and an ``open`` per account used (with
    metadata code, name, type, normal), both dated the export's first date; then one
    transaction per entry dated entry_date, payee = customer name, narration = description,
    metadata entry-id, event-id, occurred-at, kind, customer, import-id; postings in major
    units, debit positive, with metadata customer, grant, invoice, event-id (when it differs
    from the entry's)."""
    w = out.write
    w(f"; {ctx.title}\n; generated by credit-ledger {__version__} (ledger export journal); amounts in major units, "
      "debit positive\n")
    w(f"option \"title\" {beancount_string(ctx.title)}\n")
    for c in _commodities(ctx):
        if c != CREDIT:
            w(f'option "operating_currency" "{c}"\n')
    w("\n")
    if ctx.first_date is not None:
        day = ctx.first_date.isoformat()
        for c in _commodities(ctx):
            w(f"{day} commodity {c}\n")
            w(f"  name: {beancount_string('prepaid AI credits (units)' if c == CREDIT else c)}\n")
            w(f"  precision: {_exp(c)}\n")
        w("\n")
        for code in sorted({a for a, _ in ctx.used}):
            acct = ctx.accounts[code]
            w(f"{day} open {acct.ledger_name}\n")
            w(f"  code: {beancount_string(acct.code)}\n  name: {beancount_string(acct.name)}\n"
              f"  type: {beancount_string(acct.type)}\n  normal: {beancount_string(acct.normal)}\n")
        w("\n")
    for e in entries:
        payee = ctx.names.get(e.customer_id) if e.customer_id else None
        head = f"{e.entry_date.isoformat()} *"
        if payee:
            head += f" {beancount_string(payee)}"
        w(f"{head} {beancount_string(e.description)}\n")
        meta = [("entry-id", None if e.entry_id is None else str(e.entry_id)), ("event-id", e.event_id),
                ("occurred-at", _iso(e.occurred_at)), ("kind", e.kind), ("customer", e.customer_id),
                ("import-id", None if e.import_id is None else str(e.import_id))]
        for key, value in meta:
            if value is not None:
                w(f"  {key}: {beancount_string(value)}\n")
        for ln in e.lines:
            w(f"  {ctx.accounts[ln.account].ledger_name}  {major(ln.debit - ln.credit, ln.commodity)} {ln.commodity}\n")
            pmeta = [("customer", ln.customer_id), ("grant", ln.grant_id), ("invoice", ln.invoice_number),
                     ("event-id", ln.event_id if ln.event_id != e.event_id else None)]
            for key, value in pmeta:
                if value is not None:
                    w(f"    {key}: {beancount_string(value)}\n")
        w("\n")


_HLEDGER_TYPES = {"Assets": "A", "Liabilities": "L", "Equity": "E", "Income": "R", "Expenses": "X"}


def _tags(pairs: list[tuple[str, object]]) -> str:
    return ", ".join(f"{k}:{hledger_text(str(v), ',;')}" for k, v in pairs if v is not None)


def write_hledger(out: TextIO, entries: Iterable[ExportEntry], ctx: _Context) -> None:
    """An hledger journal that ``hledger check --strict`` accepts: ``decimal-mark .``, a
    ``commodity`` directive per commodity giving its decimals (``commodity 1000.00 USD``,
    ``commodity 1000. JPY``), an ``account`` directive per account used (tags code, type),
    then one transaction per entry: ``DATE * (ENTRY-ID) CUSTOMER NAME | DESCRIPTION`` with tags
    entry-id, event-id, occurred-at, kind, customer, import-id, and postings ``ACCOUNT  AMOUNT
    COMMODITY`` in major units (debit positive) tagged customer, grant, invoice, event-id.
    Text goes through ``hledger_text`` (hledger has no escapes)."""
    w = out.write
    w(f"; {hledger_text(ctx.title)}\n; generated by credit-ledger {__version__} (ledger export journal); amounts in "
      "major units, debit positive\n\ndecimal-mark .\n\n")
    for c in _commodities(ctx):
        exp = _exp(c)
        w(f"commodity 1000.{'0' * exp} {c}\n")
    w("\n")
    for code in sorted({a for a, _ in ctx.used}):
        acct = ctx.accounts[code]
        name = acct.ledger_name
        w(f"account {name}  ; code:{hledger_text(acct.code, ',;')}, type:{_HLEDGER_TYPES[name.split(':', 1)[0]]}\n")
    w("\n")
    for e in entries:
        payee = ctx.names.get(e.customer_id) if e.customer_id else None
        code = f" ({e.entry_id})" if e.entry_id is not None else ""
        desc = hledger_text(e.description)
        if payee:
            desc = f"{hledger_text(payee).replace('|', '/')} | {desc}"
        tags = _tags([("entry-id", e.entry_id), ("event-id", e.event_id), ("occurred-at", _iso(e.occurred_at)),
                      ("kind", e.kind), ("customer", e.customer_id), ("import-id", e.import_id)])
        w(f"{e.entry_date.isoformat()} *{code} {desc}  ; {tags}\n")
        for ln in e.lines:
            posting = f"    {ctx.accounts[ln.account].ledger_name}  {major(ln.debit - ln.credit, ln.commodity)} {ln.commodity}"
            ptags = _tags([("customer", ln.customer_id), ("grant", ln.grant_id), ("invoice", ln.invoice_number),
                           ("event-id", ln.event_id if ln.event_id != e.event_id else None)])
            w(posting + (f"  ; {ptags}" if ptags else "") + "\n")
        w("\n")


_WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "beancount": write_beancount, "hledger": write_hledger}


# --------------------------------------------------------------------------- the export
def _fmt_balances(balances: dict[tuple[str, str], int], accounts: dict[str, AccountInfo]) -> list[dict]:
    rows = []
    for (code, commodity), net in sorted(balances.items(), key=lambda kv: (kv[0][1] == CREDIT, kv[0][1], kv[0][0])):
        acct = accounts.get(code)
        rows.append({"account": code, "name": acct.name if acct else None,
                     "ledger_account": acct.ledger_name if acct else None, "commodity": commodity,
                     "debit": major(max(net, 0), commodity), "credit": major(max(-net, 0), commodity),
                     "net_minor": net})
    return rows


def _copy_csv(session: Session, tmp: Path, start: date | None, end: date | None, ctx: _Context,
              opening: dict[tuple[str, str], int], opening_day: date | None,
              movements: dict[tuple[str, str], int], counts: dict[str, int]) -> tuple[str, int, int]:
    """The CSV export on PostgreSQL: header and opening entry from ``write_csv``, the journal's
    rows from ``copy_csv_rows``, written through a `_CountingWriter` (sha256, bytes, lines of
    what was written). The rows are then read back from the file (`read_csv_movements`) for the
    tie-out check: their entry id, account, commodity and minor amounts go into ``movements``
    and ``counts``. Returns the file's (sha256 hex, bytes, lines), of the bytes written."""
    head = io.StringIO(newline="")
    write_csv(head, [_opening_entry(opening, opening_day)] if opening else [], ctx)  # type: ignore[arg-type]
    head_bytes = head.getvalue().encode("utf-8")
    with open(tmp, "wb") as fh:
        rows = _CountingWriter(fh, head_bytes)
        copy_csv_rows(session, rows, start, end, {c for _, c in ctx.used})
    nets, entries, postings = read_csv_movements(tmp, len(head_bytes))
    for key, net in nets.items():
        movements[key] += net
    counts["entries"] += entries
    counts["postings"] += postings
    return rows.sha.hexdigest(), rows.bytes, rows.lines


class _CountingWriter:
    """A binary writer that passes every chunk to ``fh`` and counts what went through: ``sha``
    (sha256), ``bytes`` and ``lines``, starting with ``head`` (written first)."""

    def __init__(self, fh: BinaryIO, head: bytes = b"") -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.bytes = self.lines = 0
        self.write(head)

    def write(self, data: bytes) -> int:
        self._fh.write(data)
        self.sha.update(data)
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        return len(data)


def _csv_stream(source) -> Iterator:
    """pyarrow's streaming CSV reader over ``source`` (a pyarrow NativeFile at the first row, no
    header): batches of the entry id, account, commodity and minor-amount columns, in blocks
    of 4 MiB (memory stays bounded), amounts as decimal128(38, 0). ``source`` must be a native
    file, never a Python file object: pyarrow's read-ahead threads then never call back into
    Python, so none can be left waiting for the interpreter at exit."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    amount = pa.decimal128(38, 0)
    return pcsv.open_csv(
        source, read_options=pcsv.ReadOptions(column_names=list(CSV_COLUMNS), block_size=4 << 20),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            include_columns=["entry_id", "account", "commodity", "debit_minor", "credit_minor"],
            column_types={"entry_id": pa.int64(), "account": pa.string(), "commodity": pa.string(),
                          "debit_minor": amount, "credit_minor": amount},
            strings_can_be_null=False, quoted_strings_can_be_null=False))


class _Movements:
    """The running tie-out of CSV export rows read in batches (`_csv_stream`): ``nets``
    {(account code, commodity): net int minor units, debit positive}, ``entries`` (counted as
    `write_csv` writes them, each entry's rows together) and ``rows``. Sums are decimal128 per
    batch, so none can overflow (a row holds at most 2**63 - 1)."""

    def __init__(self) -> None:
        self.nets: dict[tuple[str, str], int] = defaultdict(int)
        self.entries = self.rows = 0
        self._last: int | None = None

    def add(self, batch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        if not n:
            return
        ids = batch.column("entry_id")
        self.entries += (pc.sum(pc.not_equal(ids.slice(1), ids.slice(0, n - 1))).as_py() or 0) + (
            ids[0].as_py() != self._last)
        self._last = ids[n - 1].as_py()
        self.rows += n
        sums = pa.Table.from_batches([batch]).group_by(["account", "commodity"]).aggregate(
            [("debit_minor", "sum"), ("credit_minor", "sum")])
        for account, commodity, debit, credit in zip(
                *(sums.column(c).to_pylist() for c in ("account", "commodity", "debit_minor_sum", "credit_minor_sum")),
                strict=True):
            self.nets[csv_uncell(account), csv_uncell(commodity)] += int(debit) - int(credit)


def read_csv_movements(path: Path, offset: int) -> tuple[dict[tuple[str, str], int], int, int]:
    """Read back the rows of a CSV export from byte ``offset`` on (past its header and opening
    entry): ({(account code, commodity): net int minor units, debit positive}, entries, rows),
    as `_Movements` counts them. A value that is not a number raises pyarrow.ArrowInvalid.
    The file and the reader are closed on every path, so no pyarrow thread outlives the call."""
    import pyarrow as pa

    totals = _Movements()
    if os.path.getsize(path) > offset:  # (pyarrow refuses an empty input)
        with pa.OSFile(str(path), "rb") as fh:
            fh.seek(offset)
            reader = _csv_stream(fh)
            try:
                for batch in reader:
                    totals.add(batch)
            finally:
                reader.close()
    return dict(totals.nets), totals.entries, totals.rows


def export_journal(session: Session, out: str | os.PathLike, fmt: str, *, start: date | None = None,
                   end: date | None = None) -> ExportResult:
    """Write the journal dated in [start, end] to ``out`` in ``fmt`` (one of ``FORMATS``), with
    ``out.manifest.json`` and ``out.sha256`` beside it (see the module docstring).

    start, end: inclusive entry dates, None = open-ended; with ``start`` the export begins with
    the opening balance entry. Every statement reads one snapshot (`db.one_snapshot`, when
    ``session`` has no transaction open), so postings made meanwhile are not in the file and do
    not break its tie-out. Returns an ``ExportResult``. Raises ExportError when start is
    after end, the format is unknown, or the exported lines do not add up to the journal's
    balances at ``end`` (never expected: a self-check); ValueError for an unknown commodity;
    OSError when FILE cannot be written (no partial FILE is left behind).
    """
    if fmt not in _WRITERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if start is not None and end is not None and start > end:
        raise ExportError(f"--from {start.isoformat()} is after --to {end.isoformat()}: nothing to export")
    if not session.in_transaction():  # else the caller's transaction decides what is read
        one_snapshot(session)
    path = Path(out)
    accounts = _accounts(session)
    opening = journal_balances(session, before=start) if start is not None else {}
    used_q = _range(sa.select(JournalLine.account_code, JournalLine.commodity, sa.func.min(JournalEntry.entry_date))
                    .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
                    .group_by(JournalLine.account_code, JournalLine.commodity), start, end)
    used_rows = session.execute(used_q).all()
    used = sorted({(a, c) for a, c, _ in used_rows} | set(opening))
    first_dates = [d for _, _, d in used_rows]
    opening_day = start - timedelta(days=1) if start is not None else None
    first_date = opening_day if opening else (min(first_dates) if first_dates else None)
    unknown = sorted({a for a, _ in used} - accounts.keys())
    if unknown:
        raise ExportError(f"journal lines use accounts missing from the chart: {', '.join(unknown)}")
    span = ("all entry dates" if start is None and end is None else
            f"entry dates {start.isoformat() if start else 'first'} to {end.isoformat() if end else 'last'}")
    ctx = _Context(accounts, _customer_names(session), used, first_date, f"Journal export, {span}")

    movements: dict[tuple[str, str], int] = defaultdict(int)
    counts = {"entries": 0, "postings": 0}

    def counted() -> Iterator[ExportEntry]:
        if opening:
            yield _opening_entry(opening, opening_day)  # type: ignore[arg-type]
        for e in iter_entries(session, start, end):
            counts["entries"] += 1
            counts["postings"] += len(e.lines)
            for ln in e.lines:
                movements[(ln.account, ln.commodity)] += ln.debit - ln.credit
            yield e

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    written = None  # (sha256, bytes, lines) when the writer counted them
    try:
        if fmt == "csv" and is_postgres(session):
            written = _copy_csv(session, tmp, start, end, ctx, opening, opening_day, movements, counts)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                _WRITERS[fmt](fh, counted(), ctx)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    closing = dict(opening)
    for key, net in movements.items():
        closing[key] = closing.get(key, 0) + net
    closing = {k: v for k, v in closing.items() if v != 0}
    expected = journal_balances(session, through=end)
    if closing != expected:
        tmp.unlink()
        diff = sorted(k for k in closing.keys() | expected.keys() if closing.get(k, 0) != expected.get(k, 0))
        raise ExportError(f"export does not tie to the journal's balances at {end or 'the end'}: {diff[:5]}")
    os.replace(tmp, path)

    if written is None:
        data = path.read_bytes()
        written = (hashlib.sha256(data).hexdigest(), len(data), data.count(b"\n"))
    digest, size, nlines = written
    manifest = {
        "schema": 1,
        "generator": f"credit-ledger {__version__}",
        "file": path.name,
        "format": fmt,
        "sha256": digest,
        "bytes": size,
        "lines": nlines,
        "entries": counts["entries"],
        "postings": counts["postings"],
        "opening_entry": bool(opening),
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "first_entry_date": min(first_dates).isoformat() if first_dates else None,
        "commodities": _commodities(ctx),
        "amounts": "decimal strings in major units (a currency's ISO 4217 exponent; CREDIT units), "
                   "net_minor: int minor units, debit positive",
        "opening_balances": _fmt_balances(opening, accounts),
        "balances": _fmt_balances(closing, accounts),
    }
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    manifest_path.write_bytes(manifest_bytes)
    sha_path = path.with_name(path.name + ".sha256")
    sha_path.write_text(f"{digest}  {path.name}\n{hashlib.sha256(manifest_bytes).hexdigest()}  {manifest_path.name}\n",
                        encoding="utf-8")
    return ExportResult(path, manifest_path, sha_path, fmt, digest, size, nlines, counts["entries"],
                        counts["postings"], closing, opening)


# --------------------------------------------------------------------------- reading exports back
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
