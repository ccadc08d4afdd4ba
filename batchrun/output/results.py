"""The results Parquet: its schema, and reading it back. It knows files and Arrow, not the run.

Inputs: `results/part-NNNNNN.parquet` files (every part with `RESULT_SCHEMA`, written by the sink) or
rows of `journal.RESULT_FIELDS` values. Outputs: Arrow tables of some columns, the one row kept per
row_id (a final status beats failed, then the latest finished_at), and which row ids are final or
only failed. Rows written before rows had ids of their own take their request_id as row_id.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.outcomes import FINAL_STATUSES, Status
from batchrun.output.journal import RESULT_FIELDS
from batchrun.records import ResultRecord

PART_PREFIX = "part-"
INDEX_COLUMNS = ("row_id", "request_id", "status", "finished_at")

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPE_BY_NAME = {
    "started_at": _TIMESTAMP,
    "finished_at": _TIMESTAMP,
    "attempts": pa.int32(),
    "http_status": pa.int32(),
    "image_width": pa.int32(),
    "image_height": pa.int32(),
}
_TYPE_BY_ANNOTATION = {"str": pa.string(), "str | None": pa.string(), "int": pa.int64(),
                       "int | None": pa.int64(), "float": pa.float64(), "float | None": pa.float64()}


def _result_schema() -> pa.Schema:
    """Arrow types of ResultRecord's fields; a field of an unknown type fails here, at import."""
    columns = []
    for f in fields(ResultRecord):
        arrow_type = _TYPE_BY_NAME.get(f.name) or _TYPE_BY_ANNOTATION[str(f.type)]
        columns.append(pa.field(f.name, arrow_type))
    return pa.schema(columns)


RESULT_SCHEMA: pa.Schema = _result_schema()


def rows_to_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """A RESULT_SCHEMA table from rows of RESULT_FIELDS values (times as unix seconds)."""
    columns = list(zip(*rows)) if rows else [()] * len(RESULT_FIELDS)
    arrays = [_column(values, field.type) for values, field in zip(columns, RESULT_SCHEMA)]
    return _with_row_ids(pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA))


def _column(values: tuple[Any, ...], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == _TIMESTAMP:
        micros = pc.round(pc.multiply(pa.array(values, pa.float64()), 1e6))
        return micros.cast(pa.int64()).cast(_TIMESTAMP)
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, UnicodeEncodeError):  # a lone surrogate in a reply's text
        return pa.array([_clean_text(v) for v in values], arrow_type)


def _clean_text(value: Any) -> Any:
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


def list_parts(results_dir: Path) -> list[Path]:
    """The result parts of a folder, in the order they were written."""
    if not results_dir.is_dir():
        return []
    return sorted(p for p in results_dir.glob(f"{PART_PREFIX}*.parquet"))


def read_parts(parts: list[Path], columns: tuple[str, ...] = INDEX_COLUMNS, *,
               with_positions: bool = False) -> pa.Table:
    """Some columns of every part; with `part` (position in `parts`) and `row` if asked."""
    tables = [_with_row_ids(pq.read_table(path, columns=list(columns), schema=RESULT_SCHEMA)) for path in parts]
    if not tables:
        tables = [RESULT_SCHEMA.empty_table().select(list(columns))]
    table = pa.concat_tables(tables)
    if with_positions:
        numbers = [number for number, part in enumerate(tables) for _ in range(len(part))]
        rows = [row for part in tables for row in range(len(part))]
        table = table.append_column("part", pa.array(numbers, pa.int32()))
        table = table.append_column("row", pa.array(rows, pa.int64()))
    return table


def _with_row_ids(table: pa.Table) -> pa.Table:
    """Rows written before rows had ids of their own (or with none set) take their request_id."""
    names = table.column_names
    if "row_id" not in names or "request_id" not in names or table["row_id"].null_count == 0:
        return table
    position = names.index("row_id")
    filled = pc.coalesce(table["row_id"], table["request_id"])
    return table.set_column(position, table.schema.field(position), filled)


def has_repeated_ids(table: pa.Table) -> bool:
    """Whether some row_id has more than one row."""
    return pc.count_distinct(table["row_id"]).as_py() != len(table)


def latest_row_indices(table: pa.Table) -> pa.Array:
    """Index of the one row kept per row_id: a final status beats failed, then latest finished_at."""
    if not has_repeated_ids(table):
        return pa.array(range(len(table)), pa.int64())
    keys = pa.table({
        "id": table["row_id"],
        "final": pc.not_equal(table["status"], Status.FAILED).cast(pa.int8()),
        "t": table["finished_at"],
        "i": pa.array(range(len(table)), pa.int64()),
    })
    order = pc.sort_indices(keys, [("id", "ascending"), ("final", "descending"),
                                   ("t", "descending"), ("i", "descending")])
    ids = keys["id"].take(order).combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    is_first = pa.concat_arrays([pa.array([True]), first.fill_null(True)])
    winners = order.filter(is_first)
    return winners.take(pc.array_sort_indices(winners))


def final_and_failed_ids(index: pa.Table, *, one_row_per_id: bool = False) -> tuple[pa.Array, pa.Array]:
    """Row ids with a final row, and ids whose only rows are `failed`."""
    ids, status = index["row_id"], index["status"]
    final = ids.filter(pc.is_in(status, pa.array(FINAL_STATUSES))).combine_chunks()
    failed = ids.filter(pc.equal(status, Status.FAILED)).combine_chunks()
    if one_row_per_id:  # skip hashing a million ids when the parts are known to be deduplicated
        return final, failed
    final = pc.unique(final)
    failed = pc.unique(failed)
    return final, failed.filter(pc.invert(pc.is_in(failed, final)))


def pending_ids(manifest_ids: pa.Array, final_ids: pa.Array) -> pa.Array:
    """Manifest row ids without a final result, in manifest order."""
    return manifest_ids.filter(pc.invert(pc.is_in(manifest_ids, final_ids)))
