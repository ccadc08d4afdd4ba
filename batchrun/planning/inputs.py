"""Input rows of a job, streamed in batches: a csv, parquet, jsonl or xlsx file, or inline rows.

CSV and xlsx cells are read as strings (a SKU like 00123 keeps its zeros). Rows come out as dicts of
column to value, in file order, in batches, so a million-row catalog never sits in memory at once.
Then, when the spec asks: rows grouped by a key (`inputs.group`, `grouping`), and only the columns
`inputs.columns` names kept, renamed (`columns`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batchrun.errors import BadInputLine, InputProblem
from batchrun.planning.columns import pick_columns
from batchrun.planning.grouping import group_rows
from batchrun.planning.spec import INPUT_FORMATS, InputsSpec, LoadedSpec
from batchrun.planning.spreadsheet import xlsx_rows

BATCH_ROWS = 8192


def input_file(loaded: LoadedSpec) -> Path | None:
    path = loaded.spec.inputs.path
    return None if path is None else loaded.folder / path


def iter_row_batches(loaded: LoadedSpec, batch_rows: int = BATCH_ROWS) -> Iterator[list[dict[str, Any]]]:
    """Yield lists of row dicts; raises SpecError for a missing, unreadable or empty input."""
    inputs = loaded.spec.inputs
    if inputs.rows is not None:
        if not inputs.rows:
            raise loaded.error("inputs.rows", "no rows; add at least one row")
        try:
            yield from _shaped(_inline_batches(inputs.rows, batch_rows), inputs, batch_rows)
        except InputProblem as problem:
            raise loaded.error(problem.where, problem.message) from None
        return
    path = input_file(loaded)
    assert path is not None  # a spec's inputs hold rows or a path (the spec model checks it)
    if not path.is_file():
        raise loaded.error("inputs.path", f"file not found: {inputs.path} (paths are relative to the spec's folder)")
    empty = True
    try:
        for batch in _shaped(_file_batches(path, inputs, batch_rows), inputs, batch_rows):
            if batch:
                empty = False
                yield batch
    except (pa.ArrowInvalid, BadInputLine, UnicodeDecodeError) as exc:
        raise loaded.error("inputs.path", f"cannot read {inputs.path}: {_first_line(exc)}") from None
    except InputProblem as problem:
        raise loaded.error(problem.where, problem.message) from None
    if empty:
        raise loaded.error("inputs.path", f"{inputs.path} has no rows; add at least one row")


def _inline_batches(rows: list[dict[str, Any]], batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), batch_rows):
        yield rows[start : start + batch_rows]


def _file_batches(path: Path, inputs: InputsSpec, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    kind = INPUT_FORMATS[path.suffix.lower()]
    if kind == "xlsx":
        return _batched(xlsx_rows(path, inputs.sheet), batch_rows)
    return _READERS[kind](path, batch_rows)


def _shaped(batches: Iterator[list[dict[str, Any]]], inputs: InputsSpec, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    """The batches grouped (`inputs.group`) and their columns picked (`inputs.columns`), when asked."""
    if inputs.group is None and inputs.columns is None:
        return batches
    rows: Iterable[dict[str, Any]] = itertools.chain.from_iterable(batches)
    if inputs.group is not None:
        rows = group_rows(rows, inputs.group)
    if inputs.columns is not None:
        rows = pick_columns(rows, inputs.columns)
    return _batched(rows, batch_rows)


def _batched(rows: Iterable[dict[str, Any]], batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, batch_rows)):
        yield batch


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
    return _batched(_jsonl_rows(path), batch_rows)


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
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
            yield row


_READERS = {"csv": _csv_batches, "parquet": _parquet_batches, "jsonl": _jsonl_batches}
