"""The values of the journal exports: formats, columns, entries and lines, accounts, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from ledger.errors import LedgerError
from ledger.export.text import ledger_account_name

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


class ExportError(LedgerError):
    """An export that cannot be made (bad date range, unknown format, export not tying to the
    journal). The CLI prints the message and exits 1."""


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
class ExportContext:
    """What every writer needs besides the entries: the chart by code, customers' names by id,
    the (account code, commodity) pairs the export uses, its first date (the opening entry's
    day, else the first entry's; None when empty) and its title."""

    accounts: dict[str, AccountInfo]
    names: dict[str, str]
    used: list[tuple[str, str]]
    first_date: date | None
    title: str


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
