"""The PostgreSQL CSV export copied in parts side by side (`ledger.store.journal.copy_csv_rows`
with cut dates): every part on a connection of its own in the session's snapshot, the file the
bytes of one part, the read-back by regions, and the server's text cells against `csv_cell`.

The books are test_export's awkward PostgreSQL books (customers named with line breaks,
quotes, \\x01 and formulas; KWD amounts; the largest amount a line holds).
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_export import _AWKWARD_MOVEMENTS, _awkward_export, awkward_pg_books, usage

from ledger import export as X
from ledger.export import csv_cell, export_journal, read_csv_movements, split_dates
from ledger.export.text import CSV_BLANKS, CSV_TRIGGERS, csv_field
from ledger.store import journal as J

RANGES = [(None, None), (date(2026, 1, 6), date(2026, 2, 28)), (None, date(2026, 1, 31))]


def _export(books, path, start=None, end=None):
    with books.session() as s:
        return export_journal(s, path, "csv", start=start, end=end)


def post_while_copying(monkeypatch, books) -> None:
    """Make the export post and commit a usage event of acme on 2026-02-27 just before it
    copies the rows (after its snapshot began)."""
    copy = X.copy_csv_rows

    def meanwhile(source, out, start, end, commodities, **kw):
        books.post(usage("u-meanwhile", "2026-02-27T12:00:00Z", "acme", 7))
        return copy(source, out, start, end, commodities, **kw)

    monkeypatch.setattr(X, "copy_csv_rows", meanwhile)


def _spy_cuts(monkeypatch) -> list:
    """Record the cuts, part sizes and whether each other part had its own connection, of every
    copy_csv_rows call the export makes."""
    calls, copy, drain, connected = [], X.copy_csv_rows, J._Part.drain, []

    def spy(*args, **kw):
        sizes = copy(*args, **kw)
        calls.append((list(kw.get("cuts", ())), sizes, connected[:]))
        connected.clear()
        return sizes

    def spy_drain(self, out):
        connected.append(self.connected)
        return drain(self, out)

    monkeypatch.setattr(X, "copy_csv_rows", spy)
    monkeypatch.setattr(J._Part, "drain", spy_drain)
    return calls


def test_split_dates_makes_runs_of_about_as_many_entries():
    days = [date(2026, 1, d) for d in range(1, 11)]
    assert split_dates([(d, 10) for d in days], 2) == [days[4]]
    assert split_dates([(d, 10) for d in days], 3) == [days[3], days[6]]
    assert split_dates([(d, 10) for d in days], 1) == []
    assert split_dates([(days[0], 1_000)], 2) == []  # a date is never split
    assert split_dates([(days[0], 1_000), (days[1], 1)], 2) == [days[0]]
    assert split_dates([(days[0], 1_000), (days[1], 1)], 4) == [days[0]]  # a date holds one cut: no empty run
    assert split_dates([], 2) == []


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(1, 50), max_size=40), parts=st.integers(1, 6))
def test_split_dates_cuts_ascend_inside_the_dates_and_leave_no_run_empty(counts, parts):
    days = [date(2026, 1, 1).fromordinal(date(2026, 1, 1).toordinal() + i) for i in range(len(counts))]
    cuts = split_dates(list(zip(days, counts, strict=True)), parts)
    assert len(cuts) <= max(parts - 1, 0) and cuts == sorted(set(cuts))
    assert all(c in days[:-1] for c in cuts)


def test_the_read_back_by_regions_equals_the_whole_read_back(tmp_path):
    """Regions starting at an entry's first row read back (side by side) to the movements,
    entries and rows of the whole file."""
    path, head, body = _awkward_export(tmp_path)
    second = body.index(b"\r\n3,2026-01-01,") + 2  # the first row of entry 3
    assert read_csv_movements(path, len(head), [len(head) + second]) == _AWKWARD_MOVEMENTS
    assert read_csv_movements(path, len(head), [len(head) + second, len(head) + len(body)]) == _AWKWARD_MOVEMENTS


def test_no_character_a_cell_neutralises_has_a_safe_lead():
    lo, hi = J.SAFE_LEAD
    assert not [c for c in "".join(CSV_TRIGGERS) + CSV_BLANKS if lo <= ord(c) <= hi]


@pytest.fixture
def awkward(pg_url, plans_catalog, tmp_path):
    (tmp_path / "books").mkdir()
    b = awkward_pg_books(pg_url, plans_catalog, tmp_path / "books")
    yield b
    b.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("parts", [2, 3])
def test_parts_give_the_bytes_of_one_part(awkward, tmp_path, monkeypatch, parts):
    """Copied in ``parts`` parts side by side, the export is the one-part export byte for byte
    (the Python writer's, test_export checks), with the same counts and balances."""
    for i, (start, end) in enumerate(RANGES):
        monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 10**9)
        whole = _export(awkward, tmp_path / f"one-{i}" / "journal.csv", start, end)
        monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
        monkeypatch.setattr(X, "COPY_PARTS", parts)
        calls = _spy_cuts(monkeypatch)
        split = _export(awkward, tmp_path / f"parts-{i}" / "journal.csv", start, end)
        (cuts, sizes, connected), = calls
        assert len(cuts) >= 1 and len(sizes) == len(cuts) + 1 and all(sizes) and connected == [True] * len(cuts)
        assert split.path.read_bytes() == whole.path.read_bytes()
        assert (split.entries, split.postings, split.lines, split.balances, split.opening) == (
            whole.entries, whole.postings, whole.lines, whole.balances, whole.opening)
        manifest = split.manifest_path.read_text(encoding="utf-8").replace(f"parts-{i}", f"one-{i}")
        assert manifest == whole.manifest_path.read_text(encoding="utf-8")
        monkeypatch.undo()


@pytest.mark.postgres
def test_a_part_without_a_connection_is_copied_on_the_session(awkward, tmp_path, monkeypatch):
    whole = _export(awkward, tmp_path / "one.csv")
    monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
    monkeypatch.setattr(J._Part, "run", lambda self: setattr(self, "error", OSError("too many clients")))
    calls = _spy_cuts(monkeypatch)
    split = _export(awkward, tmp_path / "split.csv")
    assert calls[0][0] and calls[0][2] == [] and split.path.read_bytes() == whole.path.read_bytes()


@pytest.mark.postgres
def test_a_part_that_fails_fails_the_export_and_leaves_no_file(awkward, tmp_path, monkeypatch):
    def broken(self):
        self.connected, self.error = True, RuntimeError("connection lost")

    monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
    monkeypatch.setattr(J._Part, "run", broken)
    out = tmp_path / "out" / "journal.csv"
    with pytest.raises(RuntimeError, match="connection lost"):
        _export(awkward, out)
    assert not list(out.parent.iterdir())


@pytest.mark.postgres
def test_a_row_lost_from_a_part_fails_the_tie_out(awkward, tmp_path, monkeypatch):
    """The read-back ties out every part: a row dropped from the last part on its way into the
    file (by a wrapped drain, which writes the other rows again as valid CSV) makes the export
    refuse, leaving no file."""
    import csv
    import io

    drain = J._Part.drain

    def lossy(self, out):
        buffer = io.BytesIO()
        drain(self, buffer)
        rows = list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8"), newline="")))
        text = io.StringIO(newline="")
        csv.writer(text, lineterminator="\r\n").writerows(rows[:-1])
        kept = text.getvalue().encode("utf-8")
        out.write(kept)
        return len(kept)

    monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
    monkeypatch.setattr(J._Part, "drain", lossy)
    out = tmp_path / "out" / "journal.csv"
    with pytest.raises(X.ExportError, match="does not tie to the journal"):
        _export(awkward, out)
    assert not list(out.parent.iterdir())


@pytest.mark.postgres
def test_every_part_reads_the_sessions_snapshot(awkward, tmp_path, monkeypatch):
    """A usage event posted and committed after the export's snapshot began (here just before
    the rows are copied, into the last part's dates) is in no part: the parts' connections
    import the session's snapshot. The next export has it."""
    before = _export(awkward, tmp_path / "before.csv")
    monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
    calls = _spy_cuts(monkeypatch)
    post_while_copying(monkeypatch, awkward)
    during = _export(awkward, tmp_path / "during.csv")
    (cuts, _, connected), = calls
    assert cuts[-1] < date(2026, 2, 27) and connected == [True]
    assert (during.entries, during.postings, during.balances) == (before.entries, before.postings, before.balances)
    assert during.path.read_bytes() == before.path.read_bytes()
    monkeypatch.undo()
    after = _export(awkward, tmp_path / "after.csv")
    assert after.entries == before.entries + 1 and b"Usage of acme on 2026-02-27" in after.path.read_bytes()


_TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)  # UTF-8 text: no surrogates


@pytest.mark.postgres
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXTS, min_size=1, max_size=60))
@example(texts=["", "=1", "A,b", "Z\"q\"", "a\r\nb", "\x7f=", "@x", "é=1", "\u3000+1", " -2", "'x", "\x01\x01", "~ok"])
def test_the_servers_text_cells_are_csv_cell_then_csv_field(pg_url, texts):
    """`_sql_text`, run by PostgreSQL on any text, gives ``csv_field(csv_cell(text))``; NULL
    gives an empty field."""
    from ledger.store.db import make_engine

    engine = make_engine(pg_url)
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT {J._sql_text('v')} FROM unnest(CAST(:v AS text[])) WITH ORDINALITY t(v, i) "
                                   "ORDER BY i"), {"v": [*texts, None]}).scalars().all()
    engine.dispose()
    assert got == [csv_field(csv_cell(t)) for t in texts] + [""]
