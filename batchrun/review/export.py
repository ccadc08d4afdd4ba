"""`batchrun export`: the review table written to one file, Parquet, CSV or JSON lines, streamed.

Input: a `ReviewTable` (`batchrun.review.table`). Output: one file, written batch by batch to a temporary
file beside it and renamed into place, so a reader never sees half an export and memory holds one
batch at a time. Returns the path and the number of rows written.
"""

from __future__ import annotations

import enum
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batchrun.errors import WriteFailed
from batchrun.review.table import ReviewTable
from batchrun.running.writeerrors import write_error_message

JSONL_ROWS = 1024  # rows turned into Python dicts at once: a whole batch of them costs ~70 MB more at peak


class ExportFormat(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Exported:
    """What `export_table` wrote."""

    path: Path
    rows: int


def default_export_path(out_dir: Path, export_format: ExportFormat) -> Path:
    """`outputs/NAME/export.FORMAT`."""
    return Path(out_dir) / f"export.{export_format.value}"


def export_table(table: ReviewTable, path: Path, export_format: ExportFormat) -> Exported:
    """Write every row of `table` to `path` in `export_format`; WriteFailed when the file can't be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _replacing(path) as stream:
            rows = _WRITERS[export_format](table, stream)
    except OSError as exc:
        exc.filename = str(path)  # the file asked for, not its temporary twin
        raise WriteFailed(f"export not written: {write_error_message(exc, path.parent)}; or write it elsewhere "
                          "with --out FILE") from None
    return Exported(path, rows)


@contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside `path`, renamed onto it when the block ends without an error."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as stream:
            yield stream
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(table: ReviewTable, stream: BinaryIO) -> int:
    rows = 0
    with pq.ParquetWriter(stream, table.schema, compression="zstd") as writer:
        for batch in table.batches():
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _write_csv(table: ReviewTable, stream: BinaryIO) -> int:
    rows = 0
    with pacsv.CSVWriter(stream, table.schema) as writer:
        for batch in table.batches():
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _write_jsonl(table: ReviewTable, stream: BinaryIO) -> int:
    """One JSON object a line, keys in the table's column order, times as ISO 8601 with +00:00."""
    rows = 0
    for batch in table.batches():
        for offset in range(0, batch.num_rows, JSONL_ROWS):  # Python objects for a slice at a time
            dicts = batch.slice(offset, JSONL_ROWS).to_pylist()
            stream.write(b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in dicts))
        rows += batch.num_rows
    return rows


_WRITERS: dict[ExportFormat, Callable[[ReviewTable, BinaryIO], int]] = {
    ExportFormat.PARQUET: _write_parquet,
    ExportFormat.CSV: _write_csv,
    ExportFormat.JSONL: _write_jsonl,
}
