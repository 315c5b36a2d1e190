"""Tamper evidence for closed periods (DESIGN 9): a hash chain over each period's entries.

At the close, the entries dated in the period are taken in id order, and each link is

    h_0 = sha256(previous seal + "\\nperiod " + period), the previous seal being the previous
          closed period's (64 zeros for the first period), so even an empty period has its own seal
    h_i = sha256(h_(i-1) + "\\n" + canonical JSON of entry i with its lines in id order)

Every link is stored (table entry_seal) and the last one is the period's seal, kept in the
close record (table period_close) with the journal head. Nothing is locked while the month
runs: the chain is computed once, at the close. `verify_seals` recomputes every closed period
and names the first entry that breaks: an amount or date changed, a line deleted, an entry
inserted into or removed from a sealed period. It is invariant 6 of DESIGN section 7, together
with "no posting dated in a locked period" (an entry inserted behind the engine's back shows up
as one that is not in the seal).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from ledger.db import bulk_insert
from ledger.models import EntrySeal, JournalEntry, JournalLine, PeriodClose
from ledger.periods import first_day, last_day

GENESIS = "0" * 64
"""The link before the first closed period's first entry."""

_ENTRY_FIELDS = ("id", "entry_date", "occurred_at", "kind", "description", "customer_id", "event_id", "import_id")
_LINE_FIELDS = ("id", "account_code", "commodity", "debit", "credit", "customer_id", "grant_id", "invoice_number",
                "event_id")
_BATCH = 2000


@dataclass(frozen=True)
class Link:
    """One link of a period's chain: position (1-based), entry id, chain hash (sha256 hex)."""

    seq: int
    entry_id: int
    hash: str


def _value(v: object) -> object:
    return v.isoformat() if hasattr(v, "isoformat") else v


def entry_digest_input(entry: dict, lines: list[dict]) -> bytes:
    """The canonical bytes of one entry and its lines (sorted keys, no whitespace, UTF-8)."""
    body = {k: _value(entry[k]) for k in _ENTRY_FIELDS}
    body["lines"] = [{k: _value(ln[k]) for k in _LINE_FIELDS} for ln in sorted(lines, key=lambda x: x["id"])]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_start(previous: str, period: str) -> str:
    """h_0 of ``period``'s chain: sha256 hex of the previous seal and the period's name."""
    return hashlib.sha256(f"{previous}\nperiod {period}".encode("ascii")).hexdigest()


def chain(session: Session, period: str, previous: str) -> Iterator[Link]:
    """The chain over the entries dated in ``period`` (id order), starting from ``previous``.

    One query, entries joined to their lines in (entry id, line id) order, read in batches of
    rows (``yield_per``: a server-side cursor on PostgreSQL), so memory stays bounded; each
    entry's bytes are those of `entry_digest_input`.
    """
    d0, d1 = first_day(period), last_day(period)
    n = len(_ENTRY_FIELDS)
    query = (sa.select(*(getattr(JournalEntry, k) for k in _ENTRY_FIELDS), *(getattr(JournalLine, k) for k in _LINE_FIELDS))
             .select_from(JournalEntry).outerjoin(JournalLine, JournalLine.entry_id == JournalEntry.id)
             .where(JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1)
             .order_by(JournalEntry.id, JournalLine.id).execution_options(yield_per=_BATCH * 4))
    h, seq = chain_start(previous, period), 0
    entry: tuple | None = None
    lines: list[dict] = []
    for row in session.execute(query):
        if entry is None or row[0] != entry[0]:
            if entry is not None:
                seq += 1
                h = _link(h, entry, lines)
                yield Link(seq, entry[0], h)
            entry, lines = row[:n], []
        if row[n] is not None:  # an entry without lines (the outer join's NULLs) has none
            lines.append(dict(zip(_LINE_FIELDS, row[n:], strict=True)))
    if entry is not None:
        yield Link(seq + 1, entry[0], _link(h, entry, lines))


def _link(h: str, entry: tuple, lines: list[dict]) -> str:
    """The next chain hash after ``h`` for ``entry`` (values in the order of _ENTRY_FIELDS)."""
    body = dict(zip(_ENTRY_FIELDS, entry, strict=True))
    return hashlib.sha256(h.encode("ascii") + b"\n" + entry_digest_input(body, lines)).hexdigest()


def latest_closes(session: Session) -> dict[str, PeriodClose]:
    """period -> its latest close record, for periods whose last action is a close (not reopened)."""
    out: dict[str, PeriodClose] = {}
    for rec in session.execute(sa.select(PeriodClose).order_by(PeriodClose.id)).scalars():
        if rec.action == "close":
            out[rec.period] = rec
        else:
            out.pop(rec.period, None)
    return dict(sorted(out.items()))


def seal_period(session: Session, record: PeriodClose) -> PeriodClose:
    """Compute ``record.period``'s chain from the previous closed period's seal, store every link
    and fill the record's seal, previous_seal, entries and journal_head. ``record`` must be an
    unsaved close record; it is added to ``session`` (flushed, not committed)."""
    earlier = [p for p in latest_closes(session) if p < record.period]
    previous = latest_closes(session)[earlier[-1]].seal if earlier else GENESIS
    record.previous_seal = previous
    record.journal_head = session.execute(sa.select(sa.func.max(JournalEntry.id))).scalar_one()
    links = list(chain(session, record.period, previous))
    record.entries = len(links)
    record.seal = links[-1].hash if links else chain_start(previous, record.period)
    session.add(record)
    session.flush()  # the record is written once, complete: the audit trail is append-only
    for i in range(0, len(links), 5000):
        bulk_insert(session, EntrySeal.__table__, [{"close_id": record.id, "seq": x.seq, "entry_id": x.entry_id,
                                                    "hash": x.hash} for x in links[i:i + 5000]])
    return record


@dataclass(frozen=True)
class SealBreak:
    """Where a closed period's seal no longer holds: period, entry id (or None) and why."""

    period: str
    entry_id: int | None
    detail: str

    def __str__(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "the chain"
        return f"period {self.period}, {where}: {self.detail}"


def verify_seals(session: Session, through: str | None = None, only: set[str] | None = None) -> list[SealBreak]:
    """Recompute the chain of every closed period (through ``through``, 'YYYY-MM', if given;
    only the periods in ``only`` when given) and compare it link by link with the stored one;
    return the first break of each period (empty when every seal holds). Also checks, for every
    closed period, that its chain starts from the previous closed period's seal and that its
    head equals the close record's seal."""
    out: list[SealBreak] = []
    previous_seal = GENESIS
    for period, rec in latest_closes(session).items():
        if through is not None and period > through:
            break
        if rec.previous_seal != previous_seal:
            out.append(SealBreak(period, None, f"starts from {rec.previous_seal}, but the previous closed period's "
                                               f"seal is {previous_seal}"))
        if only is not None and period not in only:
            previous_seal = rec.seal or GENESIS
            continue
        stored = session.execute(sa.select(EntrySeal.seq, EntrySeal.entry_id, EntrySeal.hash)
                                 .where(EntrySeal.close_id == rec.id).order_by(EntrySeal.seq)).all()
        sealed_ids = {row.entry_id for row in stored}
        found = None
        last = None
        links = chain(session, period, rec.previous_seal or GENESIS)
        for row, link in _zip_longest(stored, links):
            if link is not None:
                last = link
            if row is None:
                found = SealBreak(period, link.entry_id, f"is dated in the closed period {period} but is not in its "
                                                         "seal (inserted after the close)")
            elif link is None:
                found = SealBreak(period, row.entry_id, f"was sealed at position {row.seq} and is no longer in the "
                                                        f"period (deleted, or its date changed)")
            elif row.entry_id != link.entry_id:
                if link.entry_id not in sealed_ids:
                    found = SealBreak(period, link.entry_id, f"is dated in the closed period {period} but is not "
                                                             "in its seal (inserted after the close)")
                else:
                    found = SealBreak(period, row.entry_id, f"was sealed at position {row.seq} and is no longer in "
                                                            "the period (deleted, or its date changed)")
            elif row.hash != link.hash:
                found = SealBreak(period, row.entry_id, f"was altered after the close: its chain hash is now "
                                                        f"{link.hash[:16]}..., sealed {row.hash[:16]}...")
            if found is not None:
                break
        if found is not None:
            out.append(found)
        else:
            head = last.hash if last else chain_start(rec.previous_seal or GENESIS, period)
            if head != rec.seal:
                out.append(SealBreak(period, None, f"the chain ends at {head[:16]}..., the close record says "
                                                   f"{str(rec.seal)[:16]}..."))
        previous_seal = rec.seal or GENESIS
    return out


def _zip_longest(stored, links):
    links = iter(links)
    for row in stored:
        yield row, next(links, None)
    for link in links:
        yield None, link
