"""Input rows of a job, streamed in batches: a csv, parquet or jsonl file, or inline rows.

CSV cells are read as strings (a SKU like 00123 keeps its zeros). Rows come out as dicts of column to
value, in file order, in batches, so a million-row catalog never sits in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batchrun.errors import BadInputLine
from batchrun.planning.spec import INPUT_FORMATS, LoadedSpec

BATCH_ROWS = 8192


def input_file(loaded: LoadedSpec) -> Path | None:
    path = loaded.spec.inputs.path
    return None if path is None else loaded.folder / path


def iter_row_batches(loaded: LoadedSpec, batch_rows: int = BATCH_ROWS) -> Iterator[list[dict[str, Any]]]:
    """Yield lists of row dicts; raises SpecError for a missing, unreadable or empty input."""
    inputs = loaded.spec.inputs
    if inputs.rows is not None:
        rows = inputs.rows
        if not rows:
            raise loaded.error("inputs.rows", "no rows; add at least one row")
        for start in range(0, len(rows), batch_rows):
            yield rows[start : start + batch_rows]
        return
    path = input_file(loaded)
    assert path is not None  # a spec's inputs hold rows or a path (the spec model checks it)
    if not path.is_file():
        raise loaded.error("inputs.path", f"file not found: {inputs.path} (paths are relative to the spec's folder)")
    reader = _READERS[INPUT_FORMATS[path.suffix.lower()]]
    empty = True
    try:
        for batch in reader(path, batch_rows):
            if batch:
                empty = False
                yield batch
    except (pa.ArrowInvalid, BadInputLine, UnicodeDecodeError) as exc:
        raise loaded.error("inputs.path", f"cannot read {inputs.path}: {_first_line(exc)}") from None
    if empty:
        raise loaded.error("inputs.path", f"{inputs.path} has no rows; add at least one row")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__


def _csv_batches(path: Path, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header}, strings_can_be_null=False
    )
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20), convert_options=options)
    for batch in reader:
        rows = batch.to_pylist()
        for start in range(0, len(rows), batch_rows):
            yield rows[start : start + batch_rows]


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield batch.to_pylist()


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInputLine(f"line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise BadInputLine(f"line {number} is not a JSON object; write one object per line")
            batch.append(row)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
    if batch:
        yield batch


_READERS = {"csv": _csv_batches, "parquet": _parquet_batches, "jsonl": _jsonl_batches}
