"""`ledger export journal`: CSV, JSONL, Beancount and hledger audit exports, on SQLite and PostgreSQL.

The books: four customers whose names are spreadsheet formulas (USD with tax, EUR, JPY, USD),
an annual commitment, top-ups (a catalog pack and ad-hoc ones), usage, a refund, payments, a
Starter subscription with overage, a voided usage event whose reason needs escaping, and the
January close. Every export's balances, read back from the file (by the module's own readers, by
beancount's Python API, and by the real ``bean-check`` / ``hledger`` binaries), must equal
``trial_balance`` per account and commodity.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core.accounts import CHART
from ledger.export import (
    CSV_COLUMNS,
    FORMATS,
    OPENING_KIND,
    ExportError,
    balances_from_trial_balance,
    beancount_string,
    csv_cell,
    csv_uncell,
    export_journal,
    hledger_text,
    ledger_account_name,
    major,
    read_balances,
    read_csv_movements,
    to_minor_units,
)
from ledger.store.models import Customer, JournalEntry, JournalLine
from ledger.reporting import trial_balance

HYPERLINK = '=HYPERLINK("http://x")'
NAMES = {"acme": HYPERLINK, "plus": "+1", "minus": "-2", "at": "@SUM(A1)"}
VOID_REASON = 'duplicate "row" \\ from the meter; see ticket, =1+2'


def ev(eid: str, kind: str, when: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": when, **fields})


def customer(cid: str, currency: str, tax: str = "0") -> str:
    return ev(f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=NAMES[cid],
              currency=currency, tax_rate=tax)


def usage(eid: str, when: str, cid: str, credits: int) -> str:
    return ev(eid, "usage.recorded", when, customer_id=cid, credits=credits)


JANUARY = "\n".join([
    customer("acme", "USD", "0.0825"), customer("plus", "EUR"), customer("minus", "JPY"), customer("at", "USD"),
    ev("com-ev", "commitment.purchased", "2026-01-02T09:00:00Z", customer_id="acme", commitment_id="com-1",
       amount="1200.00", credits=12_000, term_start="2026-01-01", term_end="2026-12-31", overage_price="0.10"),
    ev("top-ev", "topup.purchased", "2026-01-05T10:00:00Z", customer_id="acme", topup_id="top-1", pack="pack_1000"),
    ev("top-eur", "topup.purchased", "2026-01-05T11:00:00Z", customer_id="plus", topup_id="top-eur",
       credits=500, amount="50.00"),
    ev("top-jpy", "topup.purchased", "2026-01-06T11:00:00Z", customer_id="minus", topup_id="top-jpy",
       credits=100, amount="1500"),
    ev("sub-at", "subscription.started", "2026-01-01T00:00:00Z", customer_id="at", plan="starter",
       start_date="2026-01-01"),
    usage("u-acme-1", "2026-01-10T12:00:00Z", "acme", 3_000),
    usage("u-jpy-1", "2026-01-11T12:00:00Z", "minus", 30),
    usage("u-jpy-dup", "2026-01-11T12:05:00Z", "minus", 30),
    ev("pay-acme", "payment.received", "2026-01-15T00:00:00Z", customer_id="acme", amount="1299.00"),
    ev("ref-acme", "refund.issued", "2026-01-20T00:00:00Z", customer_id="acme", grant_ref="top-1", credits=400),
    ev("void-dup", "event.voided", "2026-01-21T00:00:00Z", target_event_id="u-jpy-dup", reason=VOID_REASON),
    usage("u-at-1", "2026-01-25T12:00:00Z", "at", 1_200),
])
FEBRUARY = "\n".join([
    usage("u-acme-2", "2026-02-03T12:00:00Z", "acme", 500),
    ev("pay-eur", "payment.received", "2026-02-04T00:00:00Z", customer_id="plus", amount="50.00"),
    usage("u-at-2", "2026-02-10T12:00:00Z", "at", 300),
])


@pytest.fixture
def books(make_books):
    b = make_books()
    b.post(JANUARY)
    b.close("2026-01")
    b.post(FEBRUARY)
    return b


def _tb(books, period: str) -> dict[tuple[str, str], int]:
    with books.session() as s:
        return balances_from_trial_balance(trial_balance(s, period))


def _last_period(books) -> str:
    with books.session() as s:
        return f"{s.execute(sa.select(sa.func.max(JournalEntry.entry_date))).scalar_one():%Y-%m}"


def _export(books, path: Path, fmt: str, start: date | None = None, end: date | None = None):
    with books.session() as s:
        return export_journal(s, path, fmt, start=start, end=end)


# (start, end, the trial balance period the export must equal)
RANGES = [(None, None, None), (date(2026, 2, 1), date(2026, 2, 28), "2026-02"), (None, date(2026, 1, 31), "2026-01")]


def _bean_check() -> str:
    exe = Path(sys.executable).with_name("bean-check")
    found = str(exe) if exe.exists() else shutil.which("bean-check")
    if not found:
        pytest.fail("bean-check not installed: pip install -e '.[test]' (beancount is a test dependency)")
    return found


def test_the_books_cover_both_commodities_and_every_dimension(books):
    with books.session() as s:
        kinds = set(s.execute(sa.select(JournalEntry.kind)).scalars())
        commodities = set(s.execute(sa.select(JournalLine.commodity)).scalars())
        assert s.execute(sa.select(sa.func.count()).where(JournalLine.invoice_number.is_not(None))).scalar_one() > 0
        assert s.execute(sa.select(sa.func.count()).where(JournalLine.grant_id.is_not(None))).scalar_one() > 0
    assert {"purchase", "consumption", "payment", "refund", "void", "subscription"} <= kinds
    assert commodities == {"USD", "EUR", "JPY", "CREDIT"}
    assert books.verify() == []


# --------------------------------------------------------------------------- 1. Beancount
@pytest.mark.parametrize("start,end,period", RANGES)
def test_beancount_export_passes_bean_check_and_ties_to_the_trial_balance(books, tmp_path, start, end, period):
    from beancount import loader
    from beancount.core import data, realization

    period = period or _last_period(books)
    expected = _tb(books, period)
    path = tmp_path / "journal.beancount"
    result = _export(books, path, "beancount", start, end)

    r = subprocess.run([_bean_check(), str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == ""

    entries, errors, options = loader.load_file(str(path))
    assert errors == []
    assert set(options["operating_currency"]) <= {"USD", "EUR", "JPY"}
    codes = {e.account: e.meta["code"] for e in entries if isinstance(e, data.Open)}
    balances: dict[tuple[str, str], int] = {}
    for acc in realization.iter_children(realization.realize(entries)):
        for pos in acc.balance:
            minor = to_minor_units(str(pos.units.number), pos.units.currency)
            if minor:
                balances[(codes[acc.account], pos.units.currency)] = minor
    assert balances == expected
    assert read_balances(path.read_text(encoding="utf-8"), "beancount") == expected
    assert result.balances == expected

    txns = [e for e in entries if isinstance(e, data.Transaction)]
    assert len(txns) == result.entries + (1 if start else 0)
    if start:
        [opening] = [t for t in txns if t.meta["kind"] == OPENING_KIND]
        assert opening.date == date(2026, 1, 31) and "entry-id" not in opening.meta
        assert all(t.date >= start for t in txns if t is not opening)
    if end is None:
        # customer text survives Beancount's string escaping exactly
        refund = next(t for t in txns if t.meta["kind"] == "refund")
        assert refund.payee == HYPERLINK and refund.meta["event-id"] == "ref-acme"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", refund.meta["occurred-at"])
        assert any(p.meta.get("invoice") for p in refund.postings)
        assert all(p.meta.get("grant") == "top-1" for p in refund.postings if p.account.endswith("-2100"))
        void = next(t for t in txns if t.meta["kind"] == "void")
        assert VOID_REASON in void.narration and void.payee == "-2"
        jpy = [p.units.number for t in txns for p in t.postings if p.units.currency == "JPY"]
        assert jpy and all(n == n.to_integral_value() and n.as_tuple().exponent == 0 for n in jpy)
        assert {p.units.currency for t in txns for p in t.postings} == {"USD", "EUR", "JPY", "CREDIT"}


# --------------------------------------------------------------------------- 2. hledger
HLEDGER = shutil.which("hledger")


@pytest.mark.skipif(HLEDGER is None, reason="hledger binary not installed: `make test` installs it with apt-get "
                                            "when run as root on Debian/Ubuntu (apt-get install hledger)")
@pytest.mark.parametrize("start,end,period", RANGES)
def test_hledger_export_passes_hledger_check_and_ties_to_the_trial_balance(books, tmp_path, start, end, period):
    period = period or _last_period(books)
    expected = _tb(books, period)
    path = tmp_path / "journal.hledger"
    result = _export(books, path, "hledger", start, end)

    r = subprocess.run([HLEDGER, "-f", str(path), "--strict", "check"], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([HLEDGER, "-f", str(path), "balance", "--output-format=csv", "--layout=bare"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    code_of = {b["ledger_account"]: b["account"] for b in manifest["balances"]}
    balances = {}
    for row in csv.DictReader(io.StringIO(r.stdout)):
        if row["account"] == "total":
            continue
        minor = to_minor_units(row["balance"], row["commodity"])
        if minor:
            balances[(code_of[row["account"]], row["commodity"])] = minor
    assert balances == expected
    assert read_balances(path.read_text(encoding="utf-8"), "hledger") == expected
    tags = subprocess.run([HLEDGER, "-f", str(path), "tags"], capture_output=True, text=True, timeout=120, check=False).stdout.split()
    assert {"entry-id", "event-id", "occurred-at", "kind", "customer", "grant", "invoice", "code"} <= set(tags)
    if end is None:
        reg = subprocess.run([HLEDGER, "-f", str(path), "register", "tag:kind=refund", "-O", "csv"],
                             capture_output=True, text=True, timeout=120, check=False).stdout
        rows = list(csv.DictReader(io.StringIO(reg)))
        assert rows and rows[0]["code"].isdigit() and rows[0]["description"].startswith(HYPERLINK + " | Refund")


# --------------------------------------------------------------------------- 3. CSV, JSONL, manifest, determinism
def test_csv_neutralises_formulas_and_keeps_amounts_numeric(books, tmp_path):
    path = tmp_path / "journal.csv"
    result = _export(books, path, "csv")
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0].keys()) == list(CSV_COLUMNS) and len(rows) == result.postings
    names = {r["customer_id"]: r["customer_name"] for r in rows if r["customer_id"]}
    assert names == {"acme": "'" + HYPERLINK, "plus": "'+1", "minus": "'-2", "at": "'@SUM(A1)"}
    assert {cid: csv_uncell(n) for cid, n in names.items()} == NAMES
    void = next(r for r in rows if r["kind"] == "void")
    assert VOID_REASON in void["description"]
    for row in rows:
        for key, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (key, cell)
        debit, credit = Decimal(row["debit"]), Decimal(row["credit"])
        float(row["debit"]), float(row["credit"])  # what a spreadsheet parses
        assert debit >= 0 and credit >= 0 and (debit > 0) != (credit > 0)
        assert to_minor_units(row["debit"], row["commodity"]) == int(row["debit_minor"])
        assert to_minor_units(row["credit"], row["commodity"]) == int(row["credit_minor"])
        if row["commodity"] == "JPY" or row["commodity"] == "CREDIT":
            assert "." not in row["debit"] + row["credit"]
        else:
            assert re.fullmatch(r"\d+\.\d\d", row["debit"]) and re.fullmatch(r"\d+\.\d\d", row["credit"])
    assert {r["commodity"] for r in rows} == {"USD", "EUR", "JPY", "CREDIT"}
    assert read_balances(text, "csv") == _tb(books, _last_period(books))
    # a range export opens with the balances brought forward and still ties
    ranged = _export(books, tmp_path / "feb.csv", "csv", date(2026, 2, 1), date(2026, 2, 28))
    feb = list(csv.DictReader(io.StringIO(ranged.path.read_text(encoding="utf-8"), newline="")))
    assert feb[0]["kind"] == OPENING_KIND and feb[0]["entry_id"] == "" and feb[0]["entry_date"] == "2026-01-31"
    assert all(r["entry_date"] >= "2026-02-01" for r in feb if r["kind"] != OPENING_KIND)
    assert read_balances(ranged.path.read_text(encoding="utf-8"), "csv") == _tb(books, "2026-02")


def test_jsonl_round_trips_the_journal(books, tmp_path):
    path = tmp_path / "journal.jsonl"
    result = _export(books, path, "jsonl")
    objs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(objs) == result.entries
    with books.session() as s:
        entries = {e.id: e for e in s.execute(sa.select(JournalEntry)).scalars()}
        lines: dict[int, list] = {}
        for ln in s.execute(sa.select(JournalLine).order_by(JournalLine.id)).scalars():
            lines.setdefault(ln.entry_id, []).append(
                (ln.id, ln.account_code, ln.commodity, ln.debit, ln.credit, ln.customer_id, ln.grant_id,
                 ln.invoice_number, ln.event_id))
    assert [o["entry_id"] for o in objs] == sorted(entries, key=lambda i: (entries[i].entry_date, i))
    for o in objs:
        e = entries[o["entry_id"]]
        assert (o["entry_date"], o["kind"], o["description"], o["customer_id"], o["event_id"], o["import_id"]) == (
            e.entry_date.isoformat(), e.kind, e.description, e.customer_id, e.event_id, e.import_id)
        assert o["occurred_at"] == e.occurred_at.isoformat().replace("+00:00", "Z")
        if e.customer_id:
            assert o["customer_name"] == NAMES[e.customer_id]
        got = [(ln["line_id"], ln["account"], ln["commodity"],
                to_minor_units(ln["debit"], ln["commodity"]), to_minor_units(ln["credit"], ln["commodity"]),
                ln["customer_id"], ln["grant_id"], ln["invoice_number"], ln["event_id"]) for ln in o["lines"]]
        assert got == lines[e.id]
        assert [(ln["debit_minor"], ln["credit_minor"]) for ln in o["lines"]] == [(x[3], x[4]) for x in lines[e.id]]
    assert read_balances(path.read_text(encoding="utf-8"), "jsonl") == _tb(books, _last_period(books))


@pytest.mark.parametrize("fmt", FORMATS)
def test_manifest_matches_and_exports_are_deterministic(books, tmp_path, fmt):
    a = _export(books, tmp_path / "a" / f"journal.{fmt}", fmt, date(2026, 1, 15), date(2026, 2, 28))
    b = _export(books, tmp_path / "b" / f"journal.{fmt}", fmt, date(2026, 1, 15), date(2026, 2, 28))
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.manifest_path.read_bytes() == b.manifest_path.read_bytes()
    assert a.sha256_path.read_bytes() == b.sha256_path.read_bytes()
    data = a.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    manifest = json.loads(a.manifest_path.read_text(encoding="utf-8"))
    assert a.sha256_path.read_text(encoding="utf-8").splitlines() == [
        f"{digest}  journal.{fmt}",
        f"{hashlib.sha256(a.manifest_path.read_bytes()).hexdigest()}  journal.{fmt}.manifest.json"]
    if shutil.which("sha256sum"):
        r = subprocess.run(["sha256sum", "-c", a.sha256_path.name], cwd=a.path.parent, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    with books.session() as s:
        n_entries = s.execute(sa.select(sa.func.count()).select_from(JournalEntry).where(
            JournalEntry.entry_date.between(date(2026, 1, 15), date(2026, 2, 28)))).scalar_one()
    assert (manifest["file"], manifest["format"], manifest["sha256"], manifest["bytes"], manifest["lines"]) == (
        f"journal.{fmt}", fmt, digest, len(data), data.count(b"\n"))
    assert (manifest["entries"], manifest["from"], manifest["to"], manifest["opening_entry"]) == (
        n_entries, "2026-01-15", "2026-02-28", True)
    expected = _tb(books, "2026-02")
    assert {(r["account"], r["commodity"]): r["net_minor"] for r in manifest["balances"]} == expected
    assert read_balances(a.path.read_text(encoding="utf-8"), fmt) == expected
    # the opening balances are the journal before --from, and every amount string is unsigned or signed major units
    assert {(r["account"], r["commodity"]) for r in manifest["opening_balances"]} == set(a.opening)
    for r in manifest["balances"]:
        assert to_minor_units(r["debit"], r["commodity"]) - to_minor_units(r["credit"], r["commodity"]) == r["net_minor"]


def test_an_empty_journal_exports_valid_files(make_books, tmp_path):
    books = make_books()
    for fmt in FORMATS:
        result = _export(books, tmp_path / f"empty.{fmt}", fmt)
        assert (result.entries, result.postings, result.balances) == (0, 0, {})
        assert read_balances(result.path.read_text(encoding="utf-8"), fmt) == {}
    r = subprocess.run([_bean_check(), str(tmp_path / "empty.beancount")], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- the command line
def ledger(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ledger", "--database-url", url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=120, check=False)


def test_cli_writes_the_export_and_its_manifest_and_reports_errors(books, tmp_path):
    r = ledger(tmp_path, books.url, "export", "journal", "--format", "csv", "--out", "out/journal.csv")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"journal.csv", "journal.csv.manifest.json", "journal.csv.sha256"}
    assert "wrote" in r.stdout and hashlib.sha256((out / "journal.csv").read_bytes()).hexdigest() in r.stdout
    r = ledger(tmp_path, books.url, "export", "journal", "--from", "2026-02-01", "--to", "2026-02-28",
               "--format", "beancount", "--out", "feb.beancount")
    assert r.returncode == 0, r.stderr
    assert read_balances((tmp_path / "feb.beancount").read_text(encoding="utf-8"), "beancount") == _tb(books, "2026-02")

    bad_format = ledger(tmp_path, books.url, "export", "journal", "--format", "xlsx", "--out", "x.xlsx")
    assert bad_format.returncode == 2 and "xlsx" in bad_format.stderr and "Traceback" not in bad_format.stderr
    reversed_range = ledger(tmp_path, books.url, "export", "journal", "--from", "2026-03-01", "--to", "2026-02-01",
                            "--format", "csv", "--out", "r.csv")
    assert reversed_range.returncode == 1 and "Traceback" not in reversed_range.stderr
    assert "error: --from 2026-03-01 is after --to 2026-02-01" in reversed_range.stderr
    assert not (tmp_path / "r.csv").exists()
    bad_date = ledger(tmp_path, books.url, "export", "journal", "--to", "2026-02-30", "--format", "csv", "--out", "d.csv")
    assert bad_date.returncode == 2 and "2026-02-30" in bad_date.stderr
    no_out = ledger(tmp_path, books.url, "export", "journal", "--format", "csv")
    assert no_out.returncode == 2 and "--out" in no_out.stderr


# --------------------------------------------------------------------------- pure helpers
def test_account_names_escaping_and_amounts():
    names = [ledger_account_name(a.code, a.name, a.type, a.normal) for a in CHART]
    assert len(set(names)) == len(names)
    component = r"[A-Z0-9][A-Za-z0-9-]*"
    for name in names:
        assert re.fullmatch(rf"(Assets|Liabilities|Equity|Income|Expenses)(:{component})+", name), name
    assert ledger_account_name("1100", "Accounts receivable", "asset", "debit") == "Assets:Accounts-receivable-1100"
    assert ledger_account_name("2100", "Deferred revenue - credits", "liability", "credit") == \
        "Liabilities:Deferred-revenue-credits-2100"
    assert ledger_account_name("4900", "Guarantee credits", "contra-revenue", "debit") == "Income:Contra:Guarantee-credits-4900"
    assert ledger_account_name("9000", "Credits issued", "memo", "debit") == "Assets:Memo:Credits-issued-9000"
    assert ledger_account_name("9100", "Credits outstanding", "memo", "credit") == "Equity:Memo:Credits-outstanding-9100"
    assert ledger_account_name("1200", "créances à recevoir", "asset", "debit") == "Assets:Creances-a-recevoir-1200"
    with pytest.raises(ValueError):
        ledger_account_name("1", "x", "mystery", "debit")

    assert beancount_string('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    assert hledger_text("a; b\nc") == "a, b c" and hledger_text("x,y;z", ",;") == "x_y_z"
    for value in ("=1+2", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "\nx", "\r=1+1", "\t=cmd", " =1+1", "\u3000@x",
                  "'quoted", "plain", ""):
        assert csv_uncell(csv_cell(value)) == value
        assert not csv_cell(value).lstrip(" \u3000").startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
    assert csv_cell("plain") == "plain" and csv_cell("a=b") == "a=b"

    for amount, commodity, text in ((-2165, "USD", "-21.65"), (5, "USD", "0.05"), (1500, "JPY", "1500"),
                                    (1, "KWD", "0.001"), (-1000, "CREDIT", "-1000"), (0, "EUR", "0.00")):
        assert major(amount, commodity) == text
        assert to_minor_units(text, commodity) == amount
    with pytest.raises(ValueError):
        to_minor_units("1.5", "JPY")


# Text that stresses CSV quoting: comma, quote, CR/LF, tab, backslash, non-ASCII, a leading
# formula character (also after blanks), a lone "\." (PostgreSQL's own CSV writer would quote
# it) and the \x01 the COPY path uses as its quote character.
AWKWARD = {"nl": 'Line one\r\nline "two", ünïcødé\ttab \\ end', "dot": "\\.", "sp": " lead and trail ",
           "soh": "\x01quoted\x01\x01 =1", "eq": "=SUM(A1)", "blank": " =1+1", "ideo": "\u3000@SUM(A1)",
           "nbsp": "\u00a0-2", "neg": "-3.50"}


def awkward_pg_books(pg_url, plans_catalog, tmp_path):
    """PostgreSQL books with JANUARY, KWD customers named by AWKWARD (set in the database),
    January closed, FEBRUARY, an entry without a customer and a line holding the largest
    amount; the engine is disposed of by the caller (``b.engine.dispose()``)."""
    from conftest import Books

    from ledger.store.db import make_engine

    b = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    b.post(JANUARY)
    extra = []
    for cid in AWKWARD:  # named below, in the database: intake refuses control characters in a name
        extra.append(ev(f"c-{cid}", "customer.created", "2026-01-01T00:00:00Z", customer_id=cid, name=f"Customer {cid}",
                        currency="KWD"))
        extra.append(ev(f"top-{cid}", "topup.purchased", "2026-01-07T10:00:00.250000Z", customer_id=cid,
                        topup_id=f"top-{cid}", credits=1000, amount="12.345"))
        extra.append(usage(f"u-{cid}", "2026-01-08T10:00:00.000001Z", cid, 7))
    b.post("\n".join(extra))
    with b.session() as s:
        for cid, name in AWKWARD.items():
            s.execute(sa.update(Customer).where(Customer.id == cid).values(name=name))
        s.commit()
    b.close("2026-01")
    b.post(FEBRUARY)
    # an entry without a customer (the engine makes none today; a manual entry could): its
    # lines must keep all 20 fields, with customer_id and customer_name empty
    from datetime import datetime

    from ledger.core.entries import EntryDraft
    from ledger.store.writer import insert_entries as post

    with b.session() as s:
        draft = EntryDraft(date(2026, 2, 20), datetime(2026, 2, 20, 9, tzinfo=UTC), "adjustment",
                           "Reclass, no customer")
        post(s, [draft.dr("1000", "USD", 500).cr("1100", "USD", 500)])
        # the largest amount a line holds: its decimal text must be exact in both writers
        huge = EntryDraft(date(2026, 2, 21), datetime(2026, 2, 21, 9, tzinfo=UTC), "largest_amount", "Largest amount",
                          "nl")
        post(s, [huge.dr("1000", "USD", 2**63 - 1, customer_id="nl").cr("1000", "USD", 2**63 - 1, customer_id="nl")])
        s.commit()
    return b


@pytest.mark.postgres
def test_postgres_copy_export_equals_the_python_writer(pg_url, plans_catalog, tmp_path, monkeypatch):
    """On PostgreSQL the CSV export is formatted by the server (COPY ... TO STDOUT); it must
    give the bytes the Python writer gives (the writer SQLite uses)."""
    b = awkward_pg_books(pg_url, plans_catalog, tmp_path)
    for start, end in [(None, None), (date(2026, 1, 6), date(2026, 2, 28)), (None, date(2026, 1, 31))]:
        fast = _export(b, tmp_path / "copy" / "journal.csv", "csv", start, end)
        with monkeypatch.context() as m:
            m.setattr("ledger.export.is_postgres", lambda _s: False)
            slow = _export(b, tmp_path / "python" / "journal.csv", "csv", start, end)
        fast_bytes, slow_bytes = fast.path.read_bytes(), slow.path.read_bytes()
        assert (fast.entries, fast.postings, fast.balances, fast.lines) == (
            slow.entries, slow.postings, slow.balances, slow.lines)
        fast_rows = list(csv.reader(io.StringIO(fast_bytes.decode("utf-8"), newline="")))
        assert fast_rows == list(csv.reader(io.StringIO(slow_bytes.decode("utf-8"), newline="")))
        assert fast_bytes == slow_bytes
        names = {r[CSV_COLUMNS.index("customer_name")] for r in fast_rows}
        assert {csv_cell(v) for v in AWKWARD.values()} <= names or start is not None
        assert {len(r) for r in fast_rows} == {len(CSV_COLUMNS)}
        no_customer = [r for r in fast_rows if r[CSV_COLUMNS.index("kind")] == "adjustment"]
        assert len(no_customer) == (0 if end == date(2026, 1, 31) else 2)
        assert any(r[CSV_COLUMNS.index("debit")] == "92233720368547758.07" for r in fast_rows) or end is not None
        assert all(r[CSV_COLUMNS.index("customer_id")] == r[CSV_COLUMNS.index("customer_name")] == ""
                   for r in no_customer)
        assert any(r[CSV_COLUMNS.index("occurred_at")].endswith(".000001Z") for r in fast_rows) or start is not None
    b.engine.dispose()


_BIG = 2**63 - 1


def _awkward_export(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """A CSV export written by hand: (its path, its header and opening rows, its rows). The rows
    hold a quoted multi-line cell with commas and quotes, a csv_cell'd account, sums past 64
    bits, and entry ids that do not ascend."""
    def row(entry: int, description: str, account: str, commodity: str, debit: int, credit: int) -> list:
        return [entry, "2026-01-01", "2026-01-01T00:00:00Z", "k", "e", "", description, 1, account, "n",
                commodity, "0", "0", debit, credit, "", "", "", "", ""]

    head = io.StringIO(newline="")
    w = csv.writer(head, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    w.writerow(row(0, "opening", "1000", "USD", 5, 0))  # not counted: before the offset
    body = io.StringIO(newline="")
    w = csv.writer(body, lineterminator="\r\n")
    w.writerow(row(7, 'a "quoted", multi-line\r\ndescription', "1000", "USD", _BIG, 0))
    w.writerow(row(7, "x", csv_cell("=2100"), "USD", _BIG, 0))
    w.writerow(row(7, "x", "4000", "USD", 0, 2 * _BIG))
    w.writerow(row(3, "y", "1000", "USD", _BIG, 0))  # a new entry (ids need not ascend: dates order the file)
    w.writerow(row(3, "y", "4000", "USD", 0, _BIG))
    path = tmp_path / "journal.csv"
    path.write_bytes(head.getvalue().encode() + body.getvalue().encode())
    return path, head.getvalue().encode(), body.getvalue().encode()


_AWKWARD_MOVEMENTS = ({("1000", "USD"): 2 * _BIG, ("=2100", "USD"): _BIG, ("4000", "USD"): -3 * _BIG}, 2, 5)


def test_the_csv_read_back_sums_exactly_and_counts_entries(tmp_path):
    """read_csv_movements (reading a CSV export back) reads past the header and opening rows at
    ``offset``, parses quoted cells with commas, quotes and line breaks, undoes csv_cell on
    account and commodity cells, and sums beyond 64 bits exactly."""
    path, head, _ = _awkward_export(tmp_path)
    assert read_csv_movements(path, len(head)) == _AWKWARD_MOVEMENTS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_the_counting_writer_counts_what_was_written_in_any_pieces(tmp_path, cuts):
    """Rows written through `_CountingWriter` in pieces cut anywhere (inside a quoted multi-line
    cell, a number, a line end) land in the file byte for byte, its bytes, lines and sha256 are
    the file's, and the file read back gives the rows' movements."""
    from ledger.export import _CountingWriter

    _, head, body = _awkward_export(tmp_path)
    cuts = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    path = tmp_path / "streamed.csv"
    with open(path, "wb") as fh:
        w = _CountingWriter(fh, head)
        for a, b in itertools.pairwise(cuts):
            w.write(body[a:b])
    data = head + body
    assert path.read_bytes() == data
    assert (w.bytes, w.lines, w.sha.hexdigest()) == (len(data), data.count(b"\n"), hashlib.sha256(data).hexdigest())
    assert read_csv_movements(path, len(head)) == _AWKWARD_MOVEMENTS


def test_the_read_back_reports_a_row_it_cannot_read(tmp_path):
    """A minor amount that is not a number makes the read-back raise pyarrow.ArrowInvalid."""
    import pyarrow as pa

    path, head, body = _awkward_export(tmp_path)
    path.write_bytes(head + body.replace(b",9223372036854775807,0,", b",not-a-number,0,", 1))
    with pytest.raises(pa.ArrowInvalid):
        read_csv_movements(path, len(head))


_EXIT_SCRIPT = """
import sys
from pathlib import Path
import pyarrow as pa
from sqlmodel import Session
from ledger.store.db import make_engine
from ledger.export import export_journal, read_csv_movements
url, out, bad, offset = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
engine = make_engine(url)
with Session(engine) as s:
    r = export_journal(s, out, "csv")
try:
    read_csv_movements(bad, offset)
except pa.ArrowInvalid:
    print("refused")
print(r.entries)
"""


@pytest.mark.postgres
def test_a_process_that_exported_exits(pg_url, plans_catalog, tmp_path):
    """A process that ran the PostgreSQL CSV export and a read-back that failed exits at once:
    no pyarrow or export thread is left to hold the interpreter at exit."""
    from conftest import Books

    from ledger.store.db import make_engine

    b = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    b.post(JANUARY)
    bad, head, body = _awkward_export(tmp_path)
    bad.write_bytes(head + body.replace(b",9223372036854775807,0,", b",not-a-number,0,", 1))
    for _ in range(3):  # the hang was intermittent: a few runs
        r = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, pg_url, str(tmp_path / "j.csv"), str(bad), str(len(head))],
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == "refused" and int(r.stdout.split()[1]) > 0


@pytest.mark.postgres
def test_a_csv_export_that_does_not_tie_is_refused(pg_url, plans_catalog, tmp_path, monkeypatch):
    """A row lost on the way from PostgreSQL to the file (here the last one, dropped by a wrapped
    writer) makes the read-back disagree with the journal: ExportError, and no file is left."""
    from conftest import Books

    from ledger import export as X
    from ledger.store.db import make_engine

    b = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    b.post(JANUARY)
    copy_rows = X.copy_csv_rows

    def lossy(session, out, start, end, commodities, **kw):
        buffer = io.BytesIO()
        copy_rows(session, buffer, start, end, commodities, **kw)
        out.write(buffer.getvalue()[:buffer.getvalue().rstrip(b"\r\n").rfind(b"\r\n") + 2])

    monkeypatch.setattr(X, "copy_csv_rows", lossy)
    out = tmp_path / "out" / "journal.csv"
    with pytest.raises(ExportError, match="does not tie to the journal"):
        _export(b, out, "csv")
    assert not out.exists() and not out.with_name("journal.csv.part").exists()
    monkeypatch.setattr(X, "copy_csv_rows", copy_rows)
    assert _export(b, out, "csv").postings > 0  # the same export, whole, ties
    b.engine.dispose()


@pytest.mark.postgres
def test_an_export_reads_one_snapshot_while_postings_go_on(pg_url, plans_catalog, tmp_path, monkeypatch):
    """A usage event posted and committed while the export runs (here after the rows are copied
    and before the journal's balances are read for the tie-out) is not in the file, and the
    export ties: every statement of the export reads one snapshot (REPEATABLE READ). In READ
    COMMITTED the balances would include it and the export would be refused as not tying."""
    from conftest import Books

    from ledger import export as X
    from ledger.store.db import make_engine

    b = Books(pg_url, make_engine(pg_url), plans_catalog, tmp_path)
    b.post(JANUARY)
    before = _export(b, tmp_path / "before.csv", "csv")
    balances, posted = X.journal_balances, []

    def meanwhile(session, **kw):
        if not posted:
            b.post(usage("u-meanwhile", "2026-01-30T12:00:00Z", "acme", 7))
            posted.append(True)
        return balances(session, **kw)

    monkeypatch.setattr(X, "journal_balances", meanwhile)
    during = _export(b, tmp_path / "during.csv", "csv")
    assert posted and (during.entries, during.postings, during.balances) == (
        before.entries, before.postings, before.balances)
    assert b"Usage of acme on 2026-01-30" not in during.path.read_bytes()
    after = _export(b, tmp_path / "after.csv", "csv")
    assert after.entries == before.entries + 1 and b"Usage of acme on 2026-01-30" in after.path.read_bytes()
    b.engine.dispose()
