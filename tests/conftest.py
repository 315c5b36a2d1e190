"""Test fixtures: every engine test runs on SQLite and on PostgreSQL.

PostgreSQL: the suite uses the server at LEDGER_TEST_PG_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/postgres). Without one it starts a throwaway cluster with
pytest-postgresql when PostgreSQL binaries (pg_ctl) are installed; with neither, PostgreSQL tests
are skipped with that reason, except under CI (CI=true), where that is a failure. The suite
creates one migrated template database, clones it for every test (CREATE DATABASE ... TEMPLATE),
and drops everything it created.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ledger.core import accounts as A
from ledger.catalog import Catalog, load_catalog
from ledger.store.db import init_database, make_engine
from builders import COMPANY_CATALOG

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Every reuse of a kept customer book (books.BookCache) is checked against a fresh derivation
# from the journal, in this process and in the `ledger` processes the tests start.
os.environ.setdefault("LEDGER_CHECK_BOOK_CACHE", "1")
_SUFFIX = uuid.uuid4().hex[:8]


def _admin_engine(url: str) -> sa.Engine:
    return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")


def _reachable(url: str) -> bool:
    try:
        eng = _admin_engine(url)
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_admin_url(request) -> str:
    """Admin URL of a PostgreSQL server: the running one, or a throwaway cluster."""
    url = os.environ.get("LEDGER_TEST_PG_ADMIN_URL", DEFAULT_ADMIN)
    if _reachable(url):
        return url
    pg_ctl = shutil.which("pg_ctl") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None)
    reason = f"no PostgreSQL server at {url}"
    if pg_ctl:
        try:
            proc = request.getfixturevalue("throwaway_postgresql")
            return f"postgresql://{proc.user}@{proc.host}:{proc.port}/postgres"
        except Exception as exc:  # e.g. initdb refuses to run as root
            reason += f", and starting a throwaway cluster with {pg_ctl} failed: {exc}"
    else:
        reason += " and no PostgreSQL binaries (pg_ctl) to start a throwaway cluster"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI requires the PostgreSQL tests to run)")
    pytest.skip(reason)


try:  # pytest-postgresql's process fixture, used only when no server is running
    from pytest_postgresql import factories

    throwaway_postgresql = factories.postgresql_proc(
        executable=shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl", port=None)
except Exception:  # pragma: no cover - the plugin is a test dependency
    pass


def _url_for(admin: str, dbname: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + dbname


# `make test-citus`: LEDGER_TEST_CITUS=1 runs the PostgreSQL tests on the local Citus cluster of
# tests/citus/cluster.sh (coordinator at LEDGER_TEST_PG_ADMIN_URL): every database is made on the
# three nodes, migrated and distributed by customer (`ledger db distribute`).
CITUS = os.environ.get("LEDGER_TEST_CITUS") == "1"
CITUS_SHARDS = 4  # per table: enough to spread customers over both workers, quick to create


def _cluster():
    """tests/citus/cluster.py, the local Citus cluster's databases."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ledger_test_citus_cluster", Path(__file__).parent / "citus" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create_pg_database(admin_url: str, name: str, template: str | None) -> str:
    """Create database ``name`` (a clone of ``template``, or migrated when None) and return its URL."""
    if CITUS:
        from ledger.store.citus import distribute

        url = _cluster().create_database(name)
        eng = make_engine(url)
        init_database(eng)
        distribute(eng, shard_count=CITUS_SHARDS)
        eng.dispose()
        return url
    admin = _admin_engine(admin_url)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    url = _url_for(admin_url, name)
    if template is None:
        eng = make_engine(url)
        init_database(eng)
        eng.dispose()
    return url


def drop_pg_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (on every node of the Citus cluster under LEDGER_TEST_CITUS)."""
    if CITUS:
        _cluster().drop_database(name)
        return
    admin = _admin_engine(admin_url)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url) -> str:
    """A migrated, seeded template database; dropped at the end of the session (none on Citus:
    a distributed database cannot be cloned, each test's is made anew)."""
    if CITUS:
        yield None
        return
    name = f"ledger_tpl_{_SUFFIX}"
    create_pg_database(pg_admin_url, name, None)
    yield name
    drop_pg_database(pg_admin_url, name)


_counter = iter(range(1_000_000))


@pytest.fixture
def pg_url(pg_admin_url, pg_template) -> str:
    """A fresh database cloned from the template, dropped after the test."""
    name = f"ledger_t_{_SUFFIX}_{next(_counter)}"
    url = create_pg_database(pg_admin_url, name, pg_template)
    yield url
    drop_pg_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    init_database(eng)
    eng.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "ledger.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """A fresh, migrated database: SQLite, then PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@dataclass
class Books:
    """Test helper: post events written inline as JSONL, close periods, read balances.

    balance(): signed on the account's normal side, int minor units (or CREDIT units).
    """

    url: str
    engine: sa.Engine
    catalog: Catalog
    tmp: Path
    _n: int = 0

    def session(self) -> Session:
        return Session(self.engine)

    def write(self, text: str, suffix: str = ".jsonl") -> Path:
        self._n += 1
        path = self.tmp / f"input{self._n}{suffix}"
        path.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
        return path

    def post(self, text: str, suffix: str = ".jsonl", **kw):
        from ledger.services.importing import import_files

        with self.session() as s:
            return import_files(s, self.catalog, [self.write(text, suffix)], **kw)

    def close(self, period: str):
        from ledger.services.closing import close_period

        with self.session() as s:
            return close_period(s, self.catalog, period)

    def balance(self, account: str, commodity: str = "USD", *, grant: str | None = None,
                customer: str | None = None, period: str | None = None, through: str | None = None) -> int:
        from ledger.store.keys import entry_lines
        from ledger.store.models import JournalEntry, JournalLine
        from ledger.core.periods import first_day, last_day

        q = (sa.select(sa.func.coalesce(sa.func.sum(JournalLine.debit - JournalLine.credit), 0))
             .join(JournalEntry, entry_lines())
             .where(JournalLine.account_code == account, JournalLine.commodity == commodity))
        if grant:
            q = q.where(JournalLine.grant_id == grant)
        if customer:
            q = q.where(JournalLine.customer_id == customer)
        if period:
            q = q.where(JournalEntry.entry_date >= first_day(period), JournalEntry.entry_date <= last_day(period))
        if through:
            q = q.where(JournalEntry.entry_date <= last_day(through))
        with self.session() as s:
            net = int(s.execute(q).scalar_one())
        return net if A.BY_CODE[account].normal == "debit" else -net

    def count(self, model) -> int:
        with self.session() as s:
            return s.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()

    def verify(self):
        from ledger.store.invariants import check_all

        with self.session() as s:
            return check_all(s)

    def journal(self) -> list[tuple]:
        """The journal as comparable values: (date, kind, sorted lines) per entry, sorted."""
        from ledger.store.models import JournalEntry, JournalLine

        with self.session() as s:
            entries = {e.id: e for e in s.execute(sa.select(JournalEntry)).scalars()}
            lines: dict[int, list] = {}
            for ln in s.execute(sa.select(JournalLine)).scalars():
                lines.setdefault(ln.entry_id, []).append(
                    (ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id, ln.invoice_number))
        return sorted((e.entry_date.isoformat(), e.kind, tuple(sorted(lines.get(i, [])))) for i, e in entries.items())


def company_catalog() -> Catalog:
    """The catalog of `COMPANY_CATALOG`: Example AI, Inc., UTC, net 30."""
    return load_catalog(COMPANY_CATALOG, required=True)


@pytest.fixture
def books(db_url, tmp_path) -> Books:
    engine = make_engine(db_url)
    yield Books(db_url, engine, company_catalog(), tmp_path)
    engine.dispose()


@pytest.fixture
def books_with(db_url, tmp_path):
    """Factory: fresh books on ``db_url`` whose catalog is the TOML text given (written to
    ``tmp_path/ledger.toml`` and loaded as `ledger --catalog` would)."""
    engines = []

    def make(catalog_text: str) -> Books:
        path = tmp_path / "ledger.toml"
        path.write_text(catalog_text, encoding="utf-8")
        engines.append(make_engine(db_url))
        return Books(db_url, engines[-1], load_catalog(path, required=True), tmp_path)

    yield make
    for engine in engines:
        engine.dispose()


PLANS_CATALOG = """
[company]
name = "Example AI, Inc."
address = ["1 Market St", "San Francisco, CA 94105", "USA"]
reporting_timezone = "UTC"
payment_terms_days = 30

[rate_card]
EXTRACT_TEXT = 5
SUMMARIZE_SHORT = 10
GENERATE_REPORT = 50

[plans.starter]
name = "Starter"
currency = "USD"
monthly_fee = "99.00"
included_credits = 1000
overage_price = "0.15"
credit_ssp = "0.15"
platform_ssp = "49.00"
rollover = { percent = 0 }

[plans.professional]
name = "Professional"
currency = "USD"
monthly_fee = "299.00"
included_credits = 5000
overage_price = "0.12"
credit_ssp = "0.12"
platform_ssp = "99.00"
rollover = { percent = 25, max_periods = 1 }

[topups.pack_1000]
credits = 1000
price = "20.00"
currency = "USD"
expires_after_months = 12
"""


@pytest.fixture
def plans_catalog(tmp_path_factory) -> Catalog:
    """The plans catalog (docs/design.md §8.3): Starter and Professional plans, a 1,000-credit pack."""
    path = tmp_path_factory.mktemp("catalog") / "ledger.toml"
    path.write_text(PLANS_CATALOG, encoding="utf-8")
    return load_catalog(path, required=True)


@pytest.fixture
def make_books(request, db_url, tmp_path, plans_catalog):
    """Factory of more fresh books on the same backend as ``db_url`` (for comparing two import
    orders), each with the plans catalog; everything created is dropped afterwards."""
    made: list[tuple[Books, str | None]] = []

    def make() -> Books:
        n = len(made) + 1
        if db_url.startswith("sqlite"):
            path = tmp_path / f"extra{n}.db"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            url, name = f"sqlite:///{path}", None
        else:
            admin_url = request.getfixturevalue("pg_admin_url")
            name = f"ledger_x_{_SUFFIX}_{next(_counter)}"
            url = create_pg_database(admin_url, name, request.getfixturevalue("pg_template"))
        folder = tmp_path / f"books{n}"
        folder.mkdir()
        b = Books(url, make_engine(url), plans_catalog, folder)
        made.append((b, name))
        return b

    yield make
    for b, name in made:
        b.engine.dispose()
        if name:
            drop_pg_database(request.getfixturevalue("pg_admin_url"), name)
