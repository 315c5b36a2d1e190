"""Spreadsheet formula injection (OWASP "CSV Injection") in every CSV the product writes: the
journal export (Python writer and PostgreSQL COPY), the report CSVs and the close package's.

Text from users (customer names, descriptions, event ids) that begins with ``= + - @``, TAB, CR
or LF, or with blanks before one of them, is written with a leading ``'`` (`csv_cell`), and a
field holding a comma, quote, CR or LF is quoted, so a spreadsheet reading the file sees text
and no formula. Amounts written by the engine (unsigned in the export, signed in reports) stay
numbers. The export's read-back (`csv_uncell`, `read_csv_balances`, `read_csv_movements`)
gives back the exact text. The hostile text is written straight into the database: intake may
refuse some of it, the CSV writers must not depend on that.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.core.entries import EntryDraft
from ledger.export import (
    CSV_COLUMNS,
    AccountInfo,
    ExportContext,
    ExportEntry,
    ExportLine,
    csv_cell,
    csv_uncell,
    export_journal,
    read_balances,
    read_csv_movements,
    write_csv,
)
from ledger.reporting import Column, Report, customer_statement
from ledger.store.models import Customer
from ledger.store.writer import insert_entries
from reports.package import write_reports
from reports.tables import to_csv

BLANKS = "".join(chr(c) for c in range(0x110000) if c <= 0x20 or chr(c).isspace())
"""Leading characters a spreadsheet may skip before a formula: C0 controls, space, Unicode
whitespace."""
DANGER = ("=", "+", "-", "@", "\t", "\r", "\n")
"""The first characters a spreadsheet may read as the start of a formula (OWASP)."""

LEADING = ("=1+1", "+1", "-2", "-3.50", "@SUM(A1)", "\t", "\r", "\n", "\r=1+1", "\t=cmd|' /C calc'!A0",
           "\n-1+1", " =1+1", "  @x", "\u00a0+1", "\u3000=1", "\u2028=1", " \t=1", "'quoted")
"""Text that begins with a trigger, also after blanks: written with a leading "'"."""
MIDDLE = ("a\r=2+2", 'a, "b"\r\n=2+2')
"""Text with a line break, a comma or a quote inside: written quoted, as it is."""
HOSTILE = LEADING + MIDDLE
"""Text a hostile user may have put in a name or description (no NUL: PostgreSQL text has none)."""


def _cell(text: str) -> str:
    """The cell the writers must write for ``text``, before CSV quoting."""
    return "'" + text if text in LEADING else text

NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _formula_like(cell: str) -> bool:
    """Whether a spreadsheet could read ``cell`` as a formula: it begins with a DANGER
    character, also after leading blanks (spaces, NBSP, ...), and is not a plain number."""
    return (cell.startswith(DANGER) or cell.lstrip(BLANKS).startswith(DANGER)) and not NUMBER.fullmatch(cell)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# --------------------------------------------------------------------------- the cell function
PLAIN = ("", "Acme", "2026-01", "0.00", "Jürgen's shop", "a=b", "x -1", "\u00a0", " ")


@pytest.mark.parametrize("text", HOSTILE + ("\x00=1", "\x00") + PLAIN)
def test_every_trigger_is_neutralised_and_reads_back(text):
    """A trigger at the start, also after blanks, gets a "'"; other text is left alone."""
    cell = csv_cell(text)
    assert cell == ("'" + text if text.startswith("\x00") else _cell(text))
    assert not _formula_like(cell)
    assert csv_uncell(cell) == text


@given(st.text())
@example(" =")
@example("\u3000\t@")
def test_any_text_reads_back_and_never_starts_a_formula(text):
    cell = csv_cell(text)
    assert csv_uncell(cell) == text
    assert not cell.startswith(DANGER) and not cell.lstrip(BLANKS).startswith(DANGER)


@given(st.lists(st.text(alphabet=st.sampled_from('ab ,"\r\n\t=\x00é'), max_size=6), max_size=5))
def test_csv_line_quotes_as_rfc_4180_and_reads_back(fields):
    """With CRLF ends a record is what Python's csv writer writes; with LF ends too, but a CR
    inside a field is quoted as well (Python's writer would leave it bare); both read back."""
    from ledger.export.text import csv_line

    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerow(fields)
    assert csv_line(fields, "\r\n") == buf.getvalue()
    for end in ("\r\n", "\n"):
        assert _rows(csv_line(fields, end)) == [fields]
        assert csv_line(fields, end).count(end) == 1 + sum(f.count(end) for f in fields)


def test_the_cell_function_and_the_server_side_csv_use_the_same_characters():
    from ledger.export.text import CSV_BLANKS, CSV_TRIGGERS
    from ledger.store import journal

    assert set(CSV_BLANKS) == set(BLANKS) and set(DANGER) < set(CSV_TRIGGERS)
    assert (journal.CSV_TRIGGERS, journal.CSV_BLANKS) == (CSV_TRIGGERS, CSV_BLANKS)


# --------------------------------------------------------------------------- report CSV (pure)
def _report(names) -> Report:
    cols = [Column("customer_id", "Customer"), Column("customer", "Name"), Column("currency", "Cur"),
            Column("closing", "Closing", "money"), Column("credits", "Credits", "credits")]
    rows = [{"customer_id": f"c{i}", "customer": n, "currency": "USD", "closing": -350, "credits": -5}
            for i, n in enumerate(names)]
    return Report("hostile", "Hostile", "2026-01", cols, rows, [{"currency": "USD", "closing": -350 * len(rows)}])


def test_a_report_csv_neutralises_text_and_keeps_amounts_numeric():
    rows = _rows(to_csv(_report(HOSTILE)))
    header, body = rows[0], rows[1:1 + len(HOSTILE)]
    assert header == ["customer_id", "customer", "currency", "closing", "credits"]
    assert [r[1] for r in body] == [_cell(n) for n in HOSTILE]
    assert [csv_uncell(r[1]) for r in body] == list(HOSTILE)
    assert {(r[3], r[4]) for r in body} == {("-3.50", "-5")}  # engine amounts: numbers, signed
    assert rows[1 + len(HOSTILE):] == [["Total", "", "USD", f"{-3.5 * len(HOSTILE):.2f}", ""]]
    assert not [c for r in rows for c in r if _formula_like(c)]


def test_a_report_csv_quotes_a_bare_carriage_return():
    text = to_csv(_report(["a\r=2+2"]))
    assert text.splitlines()[1] == 'c0,"a' and '"a\r=2+2"' in text
    assert len(_rows(text)) == 3  # header, the row, the Total row


# --------------------------------------------------------------------------- books with hostile text
def _ev(eid: str, kind: str, **fields) -> str:
    return json.dumps({"id": eid, "type": kind, "occurred_at": "2026-01-02T00:00:00Z", **fields})


@pytest.fixture
def hostile_books(make_books):
    """One customer per HOSTILE text (its name), each with a top-up, usage and a manual entry
    whose description and line event id are that text; January 2026 stays open."""
    b = make_books()
    events = []
    for i, _ in enumerate(HOSTILE):
        events += [_ev(f"cust-{i}", "customer.created", customer_id=f"c{i}", name=f"Customer {i}", currency="USD"),
                   _ev(f"top-{i}", "topup.purchased", customer_id=f"c{i}", topup_id=f"t{i}", credits=100,
                       amount="10.00"),
                   _ev(f"use-{i}", "usage.recorded", customer_id=f"c{i}", credits=10)]
    b.post("\n".join(events))
    with b.session() as s:
        for i, text in enumerate(HOSTILE):
            s.execute(sa.update(Customer).where(Customer.id == f"c{i}").values(name=text))
            draft = EntryDraft(date(2026, 1, 20), datetime(2026, 1, 20, 9, tzinfo=UTC), "adjustment", text,
                               customer_id=f"c{i}")
            insert_entries(s, [draft.dr("1100", "USD", 100 + i, event_id=text).cr("1000", "USD", 100 + i)])
        s.commit()
    return b


def _export(books, path: Path, **kw):
    with books.session() as s:
        return export_journal(s, path, "csv", **kw)


def test_the_journal_export_neutralises_every_hostile_text(hostile_books, tmp_path, monkeypatch):
    """On PostgreSQL the server writes the rows (COPY); the Python writer must give the same bytes."""
    result = _export(hostile_books, tmp_path / "journal.csv")
    data = result.path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr("ledger.export.is_postgres", lambda _s: False)
        assert _export(hostile_books, tmp_path / "python" / "journal.csv").path.read_bytes() == data
    text = data.decode("utf-8")
    rows = _rows(text)
    assert rows[0] == list(CSV_COLUMNS) and {len(r) for r in rows} == {len(CSV_COLUMNS)}
    assert not [c for r in rows for c in r if _formula_like(c)]
    col = {k: i for i, k in enumerate(CSV_COLUMNS)}
    names = {r[col["customer_id"]]: r[col["customer_name"]] for r in rows[1:] if r[col["customer_id"]]}
    assert names == {f"c{i}": _cell(t) for i, t in enumerate(HOSTILE)}
    manual = [r for r in rows[1:] if r[col["kind"]] == "adjustment"]
    assert sorted(csv_uncell(r[col["description"]]) for r in manual) == sorted(HOSTILE * 2)
    assert sorted(csv_uncell(r[col["line_event_id"]]) for r in manual if r[col["account"]] == "1100") == sorted(HOSTILE)
    assert read_balances(text, "csv") == result.balances
    # a range export: the same cells, and the rows read back from the file tie out
    ranged = _export(hostile_books, tmp_path / "jan.csv", start=date(2026, 1, 2), end=date(2026, 1, 31))
    assert not [c for r in _rows(ranged.path.read_bytes().decode("utf-8")) for c in r if _formula_like(c)]


def test_hostile_account_and_commodity_cells_read_back_exactly(tmp_path):
    """The read-backs (`read_csv_balances`, `read_csv_movements`) undo `csv_cell` on the account
    and commodity cells the writer neutralised."""
    accounts = {t: AccountInfo(t, "Hostile", "asset", "debit") for t in HOSTILE}
    lines = tuple(ExportLine(i + 1, t, "USD", 100 + i, 0) for i, t in enumerate(HOSTILE))
    entry = ExportEntry(1, date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC), "k", "d", None, None, None,
                        (*lines, ExportLine(99, "1000", "USD", 0, sum(ln.debit for ln in lines))))
    out = io.StringIO(newline="")
    write_csv(out, [entry], ExportContext(accounts, {}, [], None, "t"))
    text = out.getvalue()
    assert not [c for r in _rows(text) for c in r if _formula_like(c)]
    expected = {(t, "USD"): 100 + i for i, t in enumerate(HOSTILE)} | {("1000", "USD"): -sum(ln.debit for ln in lines)}
    assert read_balances(text, "csv") == expected
    path = tmp_path / "journal.csv"
    path.write_text(text, encoding="utf-8", newline="")
    head = text.split("\r\n", 1)[0] + "\r\n"
    assert read_csv_movements(path, len(head.encode())) == (expected, 1, len(HOSTILE) + 1)


def test_report_and_close_package_csvs_neutralise_every_hostile_text(hostile_books, tmp_path):
    with hostile_books.session() as s:
        paths = write_reports(s, "2026-01", tmp_path / "reports")
        statements = [to_csv(customer_statement(s, "2026-01", customer_id=f"c{i}")) for i in range(len(HOSTILE))]
    texts = {p.name: p.read_bytes().decode("utf-8") for p in paths if p.suffix == ".csv"}
    for name, text in [*texts.items(), *(("statement", t) for t in statements)]:
        assert not [c for r in _rows(text) for c in r if _formula_like(c)], name
    rows = _rows(texts["deferred-revenue.csv"])
    body = [r for r in rows[1:] if r[0] != "Total"]
    assert {len(r) for r in body} == {len(rows[0])}
    assert {r[0]: csv_uncell(r[1]) for r in body} == {f"c{i}": t for i, t in enumerate(HOSTILE)}
    assert {r[1] for r in body} == {_cell(t) for t in HOSTILE}
    for i, text in enumerate(statements):
        rows = _rows(text)
        described = [r for r in rows[1:] if len(r) > 2 and r[2] == "adjustment"]
        assert [r[4] for r in described] == [_cell(HOSTILE[i])], (i, rows)
