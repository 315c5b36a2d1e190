"""The PostgreSQL CSV export read on psycopg alone (`ledger.store.pg.Snapshot`, what ``ledger
export journal --format csv`` reads on PostgreSQL): the same reads, the same files byte for byte
as the export of a Session, in one part or several, in one snapshot; refused as `open_engine`
refuses a database that is not at head. The books are test_export's awkward PostgreSQL books.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from test_export_parts import RANGES, _spy_cuts, awkward, post_while_copying  # noqa: F401 (awkward: a fixture)

from ledger import export as X
from ledger.errors import NotInitialisedError
from ledger.export import export_journal
from ledger.store import journal as J
from ledger.store.pg import open_snapshot

pytestmark = pytest.mark.postgres


def _files(result) -> list[bytes]:
    """The export's file, manifest and sha256 file, its folder's name left out."""
    folder = result.path.parent.name.encode()
    return [p.read_bytes().replace(folder, b"DIR") for p in (result.path, result.manifest_path, result.sha256_path)]


def _counts(result) -> tuple:
    return (result.entries, result.postings, result.lines, result.bytes, result.sha256, result.balances, result.opening)


def test_a_snapshot_reads_what_a_session_reads(awkward):
    days = [None, date(2026, 1, 6), date(2026, 1, 31), date(2026, 2, 28)]
    with open_snapshot(awkward.url) as snap, awkward.session() as s:
        assert sorted(snap.chart()) == sorted(J.chart(s)) and snap.chart()
        assert snap.customer_names() == J.customer_names(s)
        for day in days:
            for zeros in (False, True):
                assert snap.journal_balances(before=day, zeros=zeros) == J.journal_balances(s, before=day, zeros=zeros)
                assert snap.journal_balances(through=day, zeros=zeros) == J.journal_balances(s, through=day, zeros=zeros)
        for start in days:
            for end in days:
                assert snap.used_accounts(start, end) == J.used_accounts(s, start, end)
                assert snap.entries_by_date(start, end) == J.entries_by_date(s, start, end)
        assert snap.used_accounts(None, None)[1] is not None and len(snap.entries_by_date(None, None)) > 1


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_a_snapshots_export_is_the_sessions_byte_for_byte(awkward, tmp_path, monkeypatch, parts):
    """In one part or several (each other part on a connection of its own importing the
    snapshot), the Snapshot's export gives the Session's files and counts."""
    for i, (start, end) in enumerate(RANGES):
        with awkward.session() as s:
            whole = export_journal(s, tmp_path / f"session-{i}" / "journal.csv", "csv", start=start, end=end)
        monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1 if parts > 1 else 10**9)
        monkeypatch.setattr(X, "COPY_PARTS", parts)
        calls = _spy_cuts(monkeypatch)
        with open_snapshot(awkward.url) as snap:
            fast = export_journal(snap, tmp_path / f"snapshot-{i}" / "journal.csv", "csv", start=start, end=end)
        (cuts, sizes, connected), = calls
        assert len(sizes) == len(cuts) + 1 and connected == [True] * len(cuts) and (len(cuts) >= 1) == (parts > 1)
        assert _files(fast) == _files(whole) and _counts(fast) == _counts(whole)
        monkeypatch.undo()


def test_every_part_of_a_snapshots_export_reads_its_snapshot(awkward, tmp_path, monkeypatch):
    """A usage event committed after the snapshot began (just before the rows are copied, into
    the last part's dates) is in no part, and the export ties."""
    with open_snapshot(awkward.url) as snap:
        before = export_journal(snap, tmp_path / "before" / "journal.csv", "csv")
    monkeypatch.setattr(X, "SPLIT_MIN_ENTRIES", 1)
    calls = _spy_cuts(monkeypatch)
    post_while_copying(monkeypatch, awkward)
    with open_snapshot(awkward.url) as snap:
        during = export_journal(snap, tmp_path / "during" / "journal.csv", "csv")
    (cuts, _, connected), = calls
    assert cuts and connected == [True] * len(cuts)
    assert _files(during) == _files(before) and _counts(during) == _counts(before)
    monkeypatch.undo()
    with open_snapshot(awkward.url) as snap:
        after = export_journal(snap, tmp_path / "after" / "journal.csv", "csv")
    assert after.entries == before.entries + 1 and b"Usage of acme on 2026-02-27" in after.path.read_bytes()


def test_a_snapshot_exports_csv_only(awkward, tmp_path):
    with open_snapshot(awkward.url) as snap, pytest.raises(X.ExportError, match="exported as csv, not jsonl"):
        export_journal(snap, tmp_path / "journal.jsonl", "jsonl")


def test_a_database_not_at_head_is_refused(pg_url, pg_admin_url):
    import sqlalchemy as sa

    from ledger.store.db import make_engine

    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database_for_export"
    with pytest.raises(NotInitialisedError, match="no_such_database_for_export") as caught, open_snapshot(missing):
        pass
    assert "not initialised" in str(caught.value)
    engine = make_engine(pg_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(NotInitialisedError, match="schema revision 0001, head is"), open_snapshot(pg_url):
        pass
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE alembic_version"))
    with pytest.raises(NotInitialisedError, match="schema revision none"), open_snapshot(pg_url):
        pass
    engine.dispose()


def test_the_cli_exports_csv_on_postgresql_without_sqlalchemy(awkward, tmp_path):
    """``ledger export journal --format csv`` on PostgreSQL imports neither SQLAlchemy, SQLModel
    nor the models, and writes the Session's export."""
    with awkward.session() as s:
        whole = export_journal(s, tmp_path / "session" / "journal.csv", "csv")
    out = tmp_path / "cli" / "journal.csv"
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "ledger", "--database-url", awkward.url,
                        "export", "journal", "--format", "csv", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "ledger.store.pg" in modules and "psycopg" in modules  # the trace is read correctly
    assert not {m for m in modules if m.split(".")[0] in ("sqlalchemy", "sqlmodel", "pydantic", "alembic")
                or m in ("ledger.store.models", "ledger.store.db", "ledger.store.journal")}
    assert [p.read_bytes() for p in (out, out.with_name("journal.csv.manifest.json"))] == [
        whole.path.read_bytes(), whole.manifest_path.read_bytes()]
