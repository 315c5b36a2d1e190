"""The tables, in one module (SQLModel over SQLAlchemy); Alembic's env.py points at this metadata.

Journal tables (``journal_entry``, ``journal_line``) are append-only: the application never
updates them and the database refuses UPDATE/DELETE (triggers in migrations/sql/). Every other
balance (wallets, deferred revenue, receivables) is derived from ``journal_line``.

Datetimes are stored as UTC (``UTCDateTime``) and come back timezone-aware; dates (``entry_date``,
invoice dates) are calendar dates in the company's reporting timezone.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# A naming convention set before any table is defined keeps constraint names stable across
# PostgreSQL and SQLite, so migrations and `alembic check` agree (Alembic naming.rst).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored as UTC; naive values are refused (never guessed)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: an offset is required")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _str(length: int, **kw) -> sa.Column:
    return sa.Column(sa.String(length), **kw)


class Account(SQLModel, table=True):
    """A ledger account of the chart (docs/design.md §3)."""

    __tablename__ = "account"
    code: str = Field(sa_column=_str(16, primary_key=True))
    name: str = Field(sa_column=_str(100, nullable=False))
    type: str = Field(sa_column=_str(20, nullable=False))
    normal_balance: str = Field(sa_column=_str(6, nullable=False))
    __table_args__ = (
        sa.CheckConstraint("normal_balance IN ('debit', 'credit')", name="normal_balance"),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'contra-revenue', 'expense', 'memo')",
            name="type",
        ),
    )


class Customer(SQLModel, table=True):
    """A customer; one currency per customer. address: JSON list of lines."""

    __tablename__ = "customer"
    id: str = Field(sa_column=_str(64, primary_key=True))
    name: str = Field(sa_column=_str(200, nullable=False))
    currency: str = Field(sa_column=_str(3, nullable=False))
    tax_rate: str = Field(sa_column=_str(20, nullable=False))
    address: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    email: Optional[str] = Field(default=None, sa_column=_str(200, nullable=True))
    locale: str = Field(sa_column=_str(20, nullable=False))
    country: Optional[str] = Field(default=None, sa_column=_str(2, nullable=True))  # ISO 3166-1 alpha-2
    vat_id: Optional[str] = Field(default=None, sa_column=_str(20, nullable=True))  # EU VAT id with prefix
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    # Event time through which this customer's time-driven steps (expiries) have run.
    # A processing cursor, not a balance: usage older than it is late (docs/design.md §6.3).
    steps_through: Optional[datetime] = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    # A random token written by every run that loaded this customer's book (0: none yet). A
    # process that kept the book in memory (books.BookCache) reuses it only while the token is
    # the one it wrote: any other writer since has changed it.
    book_version: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))


class ImportBatch(SQLModel, table=True):
    """One `ledger import` run (or one API call batch)."""

    __tablename__ = "import_batch"
    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=True))
    sources: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    posted: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    duplicates: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    quarantined: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    late: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))


class Event(SQLModel, table=True):
    """A business event as received (docs/design.md §8.2), with its content hash for idempotency.

    status: posted | quarantined. payload: canonical JSON of the event object.
    Usage events live in ``usage_event`` instead; ids are unique across both tables.
    """

    __tablename__ = "event"
    id: str = Field(sa_column=_str(128, primary_key=True))
    type: str = Field(sa_column=_str(40, nullable=False))
    customer_id: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True, index=True))
    occurred_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    content_hash: str = Field(sa_column=_str(64, nullable=False))
    payload: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=_str(20, nullable=False))
    late: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    posted_date: Optional[date] = Field(default=None, sa_column=sa.Column(sa.Date, nullable=True))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    import_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("import_batch.id"), nullable=True))


class JournalEntry(SQLModel, table=True):
    """A journal entry: a balanced set of lines, per commodity. Append-only.

    entry_date: the accounting date (reporting timezone) that decides its period;
    occurred_at: the event time it records (a late event keeps its original time).
    kind: purchase | promotion | consumption | expiry | payment | ...
    """

    __tablename__ = "journal_entry"
    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=True))
    entry_date: date = Field(sa_column=sa.Column(sa.Date, nullable=False, index=True))
    occurred_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    kind: str = Field(sa_column=_str(30, nullable=False))
    description: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    customer_id: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))
    event_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    import_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("import_batch.id"), nullable=True))
    # how many lines the entry has (migration 0018): PostgreSQL checks it at COMMIT and refuses
    # a line that would make more
    line_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    # a customer's entries of one kind (its refunds, when its book is loaded); also serves
    # lookups by customer alone
    __table_args__ = (sa.Index("ix_journal_entry_customer_kind", "customer_id", "kind"),
                      # an event's entry (PostgreSQL, migration 0020: only the entries that name one)
                      sa.Index("ix_journal_entry_event_id", "event_id", postgresql_where=sa.text("event_id IS NOT NULL")),
                      # PostgreSQL (migration 0013): what the key of a line's entry below refers to
                      sa.UniqueConstraint("customer_id", "id", name="uq_journal_entry_customer_id_id",
                                          info={"postgresql_only": True}))


class JournalLine(SQLModel, table=True):
    """A posting: one side of an entry, in one commodity (ISO currency or CREDIT).

    debit, credit: int >= 0, exactly one positive; minor units of ``commodity``.
    Dimensions: customer_id, grant_id, invoice_number, event_id.
    """

    __tablename__ = "journal_line"
    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=True))
    entry_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, index=True))
    account_code: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    commodity: str = Field(sa_column=_str(8, nullable=False))
    debit: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credit: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    customer_id: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))
    grant_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    invoice_number: Optional[str] = Field(default=None, sa_column=_str(32, nullable=True))
    event_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    __table_args__ = (
        # a customer's lines of one account (grant balances, receivables, customer credit):
        # what loading a customer's book reads; also serves lookups by customer alone
        sa.Index("ix_journal_line_customer_account", "customer_id", "account_code"),
        # a grant's lines, a document's lines (PostgreSQL, migration 0020: only the lines that name one)
        sa.Index("ix_journal_line_grant_id", "grant_id", postgresql_where=sa.text("grant_id IS NOT NULL")),
        sa.Index("ix_journal_line_invoice_number", "invoice_number",
                 postgresql_where=sa.text("invoice_number IS NOT NULL")),
        # PostgreSQL (migration 0013): a line's (customer, entry) is its entry's; tells the planner
        # that the joins of ledger.store.keys match one entry per line
        sa.ForeignKeyConstraint(["customer_id", "entry_id"], ["journal_entry.customer_id", "journal_entry.id"],
                                name="fk_journal_line_customer_id_journal_entry", info={"postgresql_only": True}),
        # SQLite: the entry and the account each line names; PostgreSQL checks both once per
        # statement in the lines' trigger, and guards the chart by a trigger (migration 0019)
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"], name="fk_journal_line_entry_id_journal_entry",
                                info={"sqlite_only": True}),
        sa.ForeignKeyConstraint(["account_code"], ["account.code"], name="fk_journal_line_account_code_account",
                                info={"sqlite_only": True}),
        sa.CheckConstraint("debit >= 0 AND credit >= 0", name="non_negative"),
        sa.CheckConstraint("(debit > 0 AND credit = 0) OR (debit = 0 AND credit > 0)", name="one_side"),
    )


class Grant(SQLModel, table=True):
    """A lot of credits (docs/design.md §4). Its balances are derived from journal lines.

    units: int N credits; amount: int A, minor units of ``currency`` (0 for promotional);
    cost basis per credit is A / N, relieved by the cumulative formula.
    expires_at: None means never. source: commitment | subscription | topup | promotional | rollover.
    """

    __tablename__ = "credit_grant"
    id: str = Field(sa_column=_str(128, primary_key=True))
    customer_id: str = Field(sa_column=sa.Column(sa.String(64), sa.ForeignKey("customer.id"), nullable=False, index=True))
    source: str = Field(sa_column=_str(20, nullable=False))
    units: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    currency: str = Field(sa_column=_str(3, nullable=False))
    effective_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    expires_at: Optional[datetime] = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    breakage_method: str = Field(sa_column=_str(20, nullable=False))
    expected_breakage_rate: Optional[str] = Field(default=None, sa_column=_str(20, nullable=True))
    rollover_percent: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    rollover_max_periods: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    rollover_max_credits: Optional[int] = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    # False: credits rolled out of this grant never expire (e.g. an enterprise 50% rollover policy)
    rollover_expires: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true()))
    # commitments: the commitment this one renews (its rollover lands here); per-credit overage price
    renews: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    overage_price: Optional[str] = Field(default=None, sa_column=_str(40, nullable=True))
    # the commitment or subscription whose term the grant belongs to (rolled grants: the one
    # they rolled into); rollover looks for its renewal or its next month
    contract_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    generation: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    parent_grant_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))
    event_id: str = Field(sa_column=_str(128, nullable=False))
    invoice_number: Optional[str] = Field(default=None, sa_column=_str(32, nullable=True))
    __table_args__ = (
        sa.CheckConstraint("units > 0", name="units_positive"),
        sa.CheckConstraint("amount >= 0", name="amount_non_negative"),
        sa.CheckConstraint("rollover_percent BETWEEN 0 AND 100", name="rollover_percent"),
        sa.CheckConstraint(
            "source IN ('commitment', 'subscription', 'topup', 'promotional', 'rollover')", name="source"
        ),
    )


class UsageEvent(SQLModel, table=True):
    """A metered usage event, kept as received, with the journal entry that posted it.

    credits: int units drawn. status: posted | quarantined. entry_id: the consumption entry
    (one per customer per day per import) that carries this event's relief; None when quarantined.
    No content hash: the fields are the content (`ledger.store.usage_rows`, migration 0017).
    """

    __tablename__ = "usage_event"
    id: str = Field(sa_column=_str(128, primary_key=True))
    customer_id: str = Field(sa_column=_str(64, nullable=False))
    occurred_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    credits: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    action: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))
    quantity: Optional[int] = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    status: str = Field(sa_column=_str(20, nullable=False))
    late: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    # where it came from: file ``file_index`` of import batch ``import_id``'s sources, line ``line``
    # (`ledger.store.usage_rows`; usage_source keeps the source the batch does not give back)
    file_index: int = Field(default=0, sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="0"))
    line: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    # no foreign keys on PostgreSQL (migration 0017): the one writer inserts the entry and the
    # import batch in the same transaction as the row, and keys checked row by row cost the bulk
    # import more than the rows' own primary key; SQLite keeps them (dropping one there copies
    # the table)
    entry_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    import_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    # units beyond the credits held, posted as overage at overage_price (decimal string per credit)
    overage_units: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    overage_price: Optional[str] = Field(default=None, sa_column=_str(40, nullable=True))
    # the event's own cost to serve (decimal string, major units), when it gave one (migration 0015)
    cost: Optional[str] = Field(default=None, sa_column=_str(40, nullable=True))
    # its place in its entry's drawdown stream: the units the entry's grant draws had taken before
    # it. It drew units [draw_start, draw_start + credits - overage_units) of the entry's Dr 9100
    # lines taken in line order; the view usage_draw gives each event's draws from it. NULL: a
    # row converted from older books whose draws are kept in usage_draw_legacy instead.
    draw_start: Optional[int] = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=True, server_default="0"))
    __table_args__ = (
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entry.id"], name="fk_usage_event_entry_id_journal_entry",
                                info={"sqlite_only": True}),
        sa.ForeignKeyConstraint(["import_id"], ["import_batch.id"], name="fk_usage_event_import_id_import_batch",
                                info={"sqlite_only": True}),
        # a customer's usage, and the usage an entry carries (every read names the customer):
        # one index where there were one by customer and one by entry (migration 0017)
        sa.Index("ix_usage_event_customer_entry", "customer_id", "entry_id"),
        # the usage that went to overage, per customer: what loading a customer's book reads
        sa.Index("ix_usage_event_overage", "customer_id", "entry_id", postgresql_where=sa.text("overage_units > 0"),
                 sqlite_where=sa.text("overage_units > 0")),
    )


class UsageSource(SQLModel, table=True):
    """The source (``FILE:LINE``) of a usage row whose import batch does not give it back (no
    batch, a file not among the batch's sources, a row converted from older books)."""

    __tablename__ = "usage_source"
    customer_id: str = Field(sa_column=_str(64, primary_key=True))
    id: str = Field(sa_column=_str(128, primary_key=True))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class UsageDrawLegacy(SQLModel, table=True):
    """Draws of usage events converted from books written before usage rows carried their place
    in the drawdown stream, where the entry's lines cannot give them (a grant drawn again after
    another on the same day). Written only by the migration; read through the view usage_draw."""

    __tablename__ = "usage_draw_legacy"
    usage_event_id: str = Field(sa_column=sa.Column(sa.String(128), sa.ForeignKey("usage_event.id"), primary_key=True))
    grant_id: str = Field(sa_column=sa.Column(sa.String(128), sa.ForeignKey("credit_grant.id"), primary_key=True))
    customer_id: str = Field(sa_column=_str(64, nullable=False))
    units: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class Quarantine(SQLModel, table=True):
    """Usage that could not be posted for a business reason (e.g. hard cap), never dropped."""

    __tablename__ = "quarantine"
    event_id: str = Field(sa_column=_str(128, primary_key=True))
    customer_id: str = Field(sa_column=_str(64, nullable=False, index=True))
    occurred_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    credits: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    available: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    import_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("import_batch.id"), nullable=True))


class AccountingPeriod(SQLModel, table=True):
    """A calendar month 'YYYY-MM' of the reporting timezone; status open | closed."""

    __tablename__ = "accounting_period"
    period: str = Field(sa_column=_str(7, primary_key=True))
    status: str = Field(sa_column=_str(10, nullable=False))
    closed_at: Optional[datetime] = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    closed_by: Optional[str] = Field(default=None, sa_column=_str(100, nullable=True))
    __table_args__ = (sa.CheckConstraint("status IN ('open', 'closed')", name="status"),)


class DocumentSequence(SQLModel, table=True):
    """Last number issued per document series and year; locked while a number is taken,
    so numbers are gap-free (a rolled-back transaction gives its number back)."""

    __tablename__ = "document_sequence"
    series: str = Field(sa_column=_str(8, primary_key=True))
    year: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    last_number: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))


class Invoice(SQLModel, table=True):
    """An issued invoice or credit note. Never changed once issued.

    subtotal, tax, total: int minor units of ``currency``; total = subtotal + tax, and equals
    the receivable lines posted with this invoice_number by its entry.
    """

    __tablename__ = "invoice"
    number: str = Field(sa_column=_str(32, primary_key=True))
    series: str = Field(sa_column=_str(8, nullable=False))
    year: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    sequence: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    kind: str = Field(sa_column=_str(20, nullable=False))
    customer_id: str = Field(sa_column=sa.Column(sa.String(64), sa.ForeignKey("customer.id"), nullable=False, index=True))
    currency: str = Field(sa_column=_str(3, nullable=False))
    issue_date: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    due_date: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    tax_rate: str = Field(sa_column=_str(20, nullable=False))
    subtotal: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    tax: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    total: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    event_id: str = Field(sa_column=_str(128, nullable=False))
    entry_id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("journal_entry.id"), nullable=True))
    # purchase | subscription | overage | refund | void; service_period 'YYYY-MM' for subscription
    # and overage invoices; reference: the invoice a credit note corrects
    category: str = Field(default="purchase", sa_column=_str(20, nullable=False, server_default="purchase"))
    service_period: Optional[str] = Field(default=None, sa_column=_str(7, nullable=True))
    reference: Optional[str] = Field(default=None, sa_column=_str(32, nullable=True))
    # What the page shows beyond the journal, as it was at issue (migration 0014; NULL on documents
    # issued before it, which render from the catalog): seller, canonical JSON of the catalog's
    # company; buyer, canonical JSON of the customer's name, address, e-mail, locale, country and
    # VAT id; logo, the logo file's bytes, logo_type its media type (NULL: no logo)
    seller: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    buyer: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    logo: Optional[bytes] = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    logo_type: Optional[str] = Field(default=None, sa_column=_str(40, nullable=True))
    __table_args__ = (sa.UniqueConstraint("series", "year", "sequence"),)


class InvoiceLine(SQLModel, table=True):
    """A line of an invoice. quantity: int; unit_price: decimal string in major units;
    amount: int minor units."""

    __tablename__ = "invoice_line"
    invoice_number: str = Field(sa_column=sa.Column(sa.String(32), sa.ForeignKey("invoice.number"), primary_key=True))
    position: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    description: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    quantity: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    unit_price: str = Field(sa_column=_str(40, nullable=False))
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    # the invoice's customer (every row of a customer's books names it: see ledger db distribute)
    customer_id: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))


class Subscription(SQLModel, table=True):
    """A customer's plan subscription, billed monthly in advance (docs/design.md §5.3 and §8.2).

    id: the subscription.started event id. The plan's terms are copied at the start (fee: int
    minor units; SSPs and overage price: decimal strings), so later catalog edits do not change
    what was sold. end_date: last day of service once cancelled (inclusive).
    """

    __tablename__ = "subscription"
    id: str = Field(sa_column=_str(128, primary_key=True))
    customer_id: str = Field(sa_column=sa.Column(sa.String(64), sa.ForeignKey("customer.id"), nullable=False, index=True))
    plan: str = Field(sa_column=_str(64, nullable=False))
    plan_name: str = Field(sa_column=_str(200, nullable=False))
    currency: str = Field(sa_column=_str(3, nullable=False))
    monthly_fee: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    included_credits: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credit_ssp: str = Field(sa_column=_str(40, nullable=False))
    platform_ssp: str = Field(sa_column=_str(40, nullable=False))
    overage_price: Optional[str] = Field(default=None, sa_column=_str(40, nullable=True))
    rollover_percent: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    rollover_max_periods: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    rollover_max_credits: Optional[int] = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    rollover_expires: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    start_date: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    end_date: Optional[date] = Field(default=None, sa_column=sa.Column(sa.Date, nullable=True))
    cancel_event_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))


class SubscriptionPeriod(SQLModel, table=True):
    """One billed month of a subscription: the fee F = Fc + Fp split by relative SSPs.

    fee, credits_fee (Fc, deferred on the grant), platform_fee (Fp, deferred on 2150 and
    recognised at service_end): int minor units; credits: included units granted (floored when
    prorated). service_start..service_end: inclusive dates the invoice covers.
    """

    __tablename__ = "subscription_period"
    subscription_id: str = Field(sa_column=sa.Column(sa.String(128), sa.ForeignKey("subscription.id"), primary_key=True))
    period: str = Field(sa_column=sa.Column(sa.String(7), primary_key=True))
    customer_id: str = Field(sa_column=_str(64, nullable=False, index=True))
    service_start: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    service_end: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    fee: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credits_fee: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    platform_fee: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credits: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    invoice_number: Optional[str] = Field(default=None, sa_column=_str(32, nullable=True))  # None: nothing billed
    grant_id: Optional[str] = Field(default=None, sa_column=_str(128, nullable=True))


class Guarantee(SQLModel, table=True):
    """A no-increase guarantee for a customer migrated from per-seat pricing (docs/design.md §5.9).

    id: the guarantee.enrolled event id. legacy_monthly_amount: int minor units of
    ``currency``, the pre-tax per-seat bill the customer paid each month. The window is
    ``months`` calendar months from ``start_month`` ('YYYY-MM'). basis: ``monthly`` (a credit at
    the close of each month where charges exceed the legacy bill) or ``cumulative`` (one credit at
    the close of the window's last month for the excess over months x legacy).
    """

    __tablename__ = "guarantee"
    id: str = Field(sa_column=_str(128, primary_key=True))
    customer_id: str = Field(sa_column=sa.Column(sa.String(64), sa.ForeignKey("customer.id"), nullable=False, index=True))
    currency: str = Field(sa_column=_str(3, nullable=False))
    legacy_monthly_amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    start_month: str = Field(sa_column=_str(7, nullable=False))
    months: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    basis: str = Field(sa_column=_str(20, nullable=False))
    enrolled_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


class GuaranteeMonth(SQLModel, table=True):
    """One month of a guarantee's window as evaluated at its close: the new bill, by source,
    against the legacy bill. All money: int minor units of the guarantee's currency.

    charges = subscription + overage + topups + commitments (pre-tax, net of credit notes that
    correct those invoices); difference = charges - legacy. credit: the guarantee credit issued
    at this month's close (monthly basis: max(0, difference); cumulative basis: 0 except the last
    month, which carries max(0, sum of differences)); credit_note: its number, else None.
    """

    __tablename__ = "guarantee_month"
    guarantee_id: str = Field(sa_column=sa.Column(sa.String(128), sa.ForeignKey("guarantee.id"), primary_key=True))
    period: str = Field(sa_column=sa.Column(sa.String(7), primary_key=True))
    customer_id: str = Field(sa_column=_str(64, nullable=False, index=True))
    subscription: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    overage: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    topups: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    commitments: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    charges: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    legacy: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credit: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    credit_note: Optional[str] = Field(default=None, sa_column=_str(32, nullable=True))


class PeriodClose(SQLModel, table=True):
    """The audit trail of the month close: one row per close or reopen of a period. Append-only.

    action: close | reopen. at (UTC) and by: when and who. reason: why (a reopen). A close
    also records journal_head (the highest journal entry id when it was sealed), entries (how
    many entries are dated in the period), seal (sha256 hex head of the hash chain over those
    entries in id order, starting from previous_seal: the seal of the previous closed period,
    or 64 zeros), and checks (JSON list of the checks that passed).
    """

    __tablename__ = "period_close"
    id: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=True))
    period: str = Field(sa_column=_str(7, nullable=False, index=True))
    action: str = Field(sa_column=_str(10, nullable=False))
    at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    by: str = Field(sa_column=_str(100, nullable=False))
    reason: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    journal_head: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    entries: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    seal: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))
    previous_seal: Optional[str] = Field(default=None, sa_column=_str(64, nullable=True))
    checks: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    __table_args__ = (sa.CheckConstraint("action IN ('close', 'reopen')", name="action"),)


class EntrySeal(SQLModel, table=True):
    """One link of a period's hash chain: the entry at position ``seq`` (1-based, entry id
    order) and the chain hash through it (sha256 hex). Append-only."""

    __tablename__ = "entry_seal"
    close_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("period_close.id"), primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    entry_id: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, index=True))
    hash: str = Field(sa_column=_str(64, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """One usage alert to deliver to one URL of the catalog's ``[webhooks]``: a customer crossed
    ``threshold`` percent (70, 90, 100) of a commitment, a plan month's grant or all the credits
    it holds (``scope``: commitment | subscription | all; ``grant_id`` '' for all).
    ``idempotency_key``: the same for every URL of one alert (sent as Idempotency-Key); ``id``:
    per URL. status: pending | delivered | failed (attempts exhausted)."""

    __tablename__ = "webhook_delivery"
    customer_id: str = Field(sa_column=_str(64, primary_key=True))
    id: str = Field(sa_column=_str(64, primary_key=True))
    idempotency_key: str = Field(sa_column=_str(64, nullable=False))
    url: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    scope: str = Field(sa_column=_str(20, nullable=False))
    grant_id: str = Field(sa_column=_str(128, nullable=False))
    threshold: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    payload: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=_str(20, nullable=False, index=True))
    attempts: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    next_attempt_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    delivered_at: Optional[datetime] = Field(default=None, sa_column=sa.Column(UTCDateTime, nullable=True))
    response_status: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    last_error: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
