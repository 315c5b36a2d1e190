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

    Reads the journal in batches of entries, so memory stays bounded by the batch size.
    """
    d0, d1 = first_day(period), last_day(period)
    entry_cols = [getattr(JournalEntry, k) for k in _ENTRY_FIELDS]
    line_cols = [JournalLine.entry_id] + [getattr(JournalLine, k) for k in _LINE_FIELDS]
    h, seq, after = chain_start(previous, period), 0, -1
    while True:
        rows = session.execute(sa.select(*entry_cols).where(JournalEntry.entry_date >= d0, JournalEntry.entry_date <= d1,
                                                            JournalEntry.id > after)
                               .order_by(JournalEntry.id).limit(_BATCH)).mappings().all()
        if not rows:
            return
        ids = [r["id"] for r in rows]
        lines: dict[int, list[dict]] = {}
        for ln in session.execute(sa.select(*line_cols).where(JournalLine.entry_id.in_(ids))).mappings():
            lines.setdefault(ln["entry_id"], []).append(dict(ln))
        for r in rows:
            seq += 1
            h = hashlib.sha256(h.encode("ascii") + b"\n" + entry_digest_input(dict(r), lines.get(r["id"], []))).hexdigest()
            yield Link(seq, r["id"], h)
        after = ids[-1]


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
        session.execute(sa.insert(EntrySeal), [{"close_id": record.id, "seq": x.seq, "entry_id": x.entry_id,
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
