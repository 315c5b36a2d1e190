"""The tie-out of a CSV export written by the server: a writer that counts what goes through
it, and the read-back of the file's rows (pyarrow's streaming CSV reader over the memory-mapped
file, memory bounded; the regions of the file read side by side)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ledger.export.model import CSV_COLUMNS
from ledger.export.text import csv_uncell


def _import_reader() -> None:
    try:
        import pyarrow.acero
        import pyarrow.compute
        import pyarrow.csv  # noqa: F401
    except ImportError:  # the read-back raises it in its own thread
        pass


def start_reader_import() -> threading.Thread:
    """Start importing what `read_csv_movements` uses (pyarrow's CSV reader, compute functions and
    group-by: about 0.2 s of work) in a thread of its own, to overlap it with the wait for the
    server's rows; join the thread returned before leaving (it ends with the imports)."""
    thread = threading.Thread(target=_import_reader, name="ledger-export-import")
    thread.start()
    return thread


class CountingWriter:
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


def _read_region(data, start: int, stop: int) -> _Movements:
    """The `_Movements` of the rows in bytes [start, stop) of ``data`` (a pyarrow Buffer)."""
    import pyarrow as pa

    totals = _Movements()
    reader = _csv_stream(pa.BufferReader(data.slice(start, stop - start)))
    try:
        for batch in reader:
            totals.add(batch)
    finally:
        reader.close()
    return totals


def read_csv_movements(path: Path, offset: int, splits: Sequence[int] = ()) -> tuple[dict[tuple[str, str], int], int, int]:
    """Read back the rows of a CSV export from byte ``offset`` on (past its header and opening
    entry): ({(account code, commodity): net int minor units, debit positive}, entries, rows),
    as `_Movements` counts them. ``splits``: byte offsets ascending, after ``offset``, where
    further regions of the file begin, each at the first row of an entry (`copy_csv_rows`
    gives the bytes of its parts); the regions are read side by side, in threads (pyarrow
    parses without the interpreter lock). A value that is not a number raises
    pyarrow.ArrowInvalid. The file is memory-mapped; it and the readers are closed on every
    path, so no pyarrow thread outlives the call."""
    import pyarrow as pa

    size = os.path.getsize(path)
    bounds = [offset, *splits, size]
    regions = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]  # (pyarrow refuses an empty input)
    nets: dict[tuple[str, str], int] = defaultdict(int)
    entries = rows = 0
    if not regions:
        return dict(nets), entries, rows
    with pa.memory_map(str(path)) as mapped:
        data = mapped.read_buffer()
        if len(regions) == 1:
            parts = [_read_region(data, *regions[0])]
        else:
            with ThreadPoolExecutor(len(regions), thread_name_prefix="ledger-export-readback") as pool:
                parts = [f.result() for f in [pool.submit(_read_region, data, a, b) for a, b in regions]]
        del data
    for part in parts:
        for key, net in part.nets.items():
            nets[key] += net
        entries += part.entries
        rows += part.rows
    return dict(nets), entries, rows
