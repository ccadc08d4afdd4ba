"""Each expanded row's latest result, fetched batch by batch, without reading every result at once.

Inputs: `results/part-*.parquet` and any `journal/` segments of an output folder, and the manifest's row
ids in order. Output: for a slice of the manifest's rows, a table of their latest results' columns, in
order, with nulls for rows that have none. The latest result is the sink's
(`output.results.latest_row_indices`: a final status beats `failed`, then the latest finished_at).

Memory: a part number and a position per manifest row (12 bytes a row; the one lookup that finds them
holds the row ids at the start) and at most `CACHED_PARTS` parts' columns at once. Parts are written in
roughly the manifest's order, so a batch of manifest rows mostly touches one or two parts, and each
part is read about once.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.output.journal import read_journal
from batchrun.output.results import RESULT_SCHEMA, has_repeated_ids, latest_row_indices, list_parts, rows_to_table

CACHED_PARTS = 2
_INDEX = ("row_id", "status", "finished_at")  # what latest_row_indices needs


class LatestResults:
    """The latest result of each of a manifest's rows, fetched by slices of the manifest's order.

    Built from the manifest's row ids (in order): each row's part and position are found once, by one
    join, and kept as two integer arrays (12 bytes a row); the row id strings are not kept.
    """

    def __init__(self, out_dir: Path, columns: tuple[str, ...], row_ids: pa.ChunkedArray) -> None:
        self.columns = columns
        self._parts = list_parts(Path(out_dir) / "results")
        runs = read_journal(Path(out_dir) / "journal")
        journal_rows = [row for run in runs.values() for row in run.results]
        self._journal = rows_to_table(journal_rows) if journal_rows else None
        self._part_of, self._row_of = _locate(row_ids, self._index())
        self._cache: OrderedDict[int, pa.Table] = OrderedDict()

    def _index(self) -> pa.Table:
        """row_id, part and position of each row_id's latest result (the journal is part len(parts))."""
        tables = [_positions(_part_index(path), number) for number, path in enumerate(self._parts)]
        if self._journal is not None:
            tables.append(_positions(self._journal.select(list(_INDEX)), len(self._parts)))
        if not tables:
            return pa.table({"row_id": pa.array([], pa.string()), "part": pa.array([], pa.int32()),
                             "row": pa.array([], pa.int64())})
        index = pa.concat_tables(tables)
        if has_repeated_ids(index):  # only after a crash, or while a run writes: parts hold one row per id
            index = index.take(latest_row_indices(index))
        return index.select(["row_id", "part", "row"])

    def for_slice(self, offset: int, length: int) -> pa.Table:
        """The latest results of the manifest's rows offset..offset+length, in order; all null where none."""
        parts, rows = self._part_of.slice(offset, length), self._row_of.slice(offset, length)
        positions = pa.array(range(length), pa.int64())
        pieces = [self._taken(part, pc.equal(parts, part), rows, positions)
                  for part in pc.unique(parts.drop_null()).to_pylist()]
        pieces.append(self._nulls(positions.filter(pc.is_null(parts))))
        table = pa.concat_tables(pieces)
        return table.take(pc.sort_indices(table["_pos"])).drop_columns(["_pos"])

    def _taken(self, part: int, mine: pa.Array, rows: pa.Array, positions: pa.Array) -> pa.Table:
        mine = mine.fill_null(False)
        taken = self._part(part).take(rows.filter(mine))
        return taken.append_column("_pos", positions.filter(mine))

    def _nulls(self, positions: pa.Array) -> pa.Table:
        arrays = [pa.nulls(len(positions), RESULT_SCHEMA.field(name).type) for name in self.columns]
        return pa.table([*arrays, positions], names=[*self.columns, "_pos"])

    def _part(self, number: int) -> pa.Table:
        if number in self._cache:
            self._cache.move_to_end(number)
            return self._cache[number]
        table = self._read(number)
        self._cache[number] = table
        if len(self._cache) > CACHED_PARTS:
            self._cache.popitem(last=False)
        return table

    def _read(self, number: int) -> pa.Table:
        if number == len(self._parts):
            assert self._journal is not None
            return self._journal.select(list(self.columns))
        table = pq.read_table(self._parts[number], columns=list(self.columns), schema=RESULT_SCHEMA)
        return table.combine_chunks()


def _part_index(path: Path) -> pa.Table:
    """A part's row ids (its request ids where a row has none), statuses and finish times."""
    table = pq.read_table(path, columns=list(_INDEX), schema=RESULT_SCHEMA)
    if table["row_id"].null_count == 0:
        return table
    request_ids = pq.read_table(path, columns=["request_id"], schema=RESULT_SCHEMA)["request_id"]
    return table.set_column(0, "row_id", pc.coalesce(table["row_id"], request_ids))


def _positions(table: pa.Table, part: int) -> pa.Table:
    """`table` with its part number and each row's position in it (built in Arrow: a million rows stay small)."""
    rows = len(table)
    ones = pa.repeat(pa.scalar(1, pa.int64()), rows)
    position = pc.subtract(pc.cumulative_sum(ones), 1) if rows else pa.array([], pa.int64())
    return table.append_column("part", pa.repeat(pa.scalar(part, pa.int32()), rows)).append_column("row", position)


def _locate(row_ids: pa.ChunkedArray, winners: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each manifest row's part and position in it (null: no result), in the manifest's order."""
    found = pc.index_in(row_ids, value_set=winners["row_id"].combine_chunks())
    return winners["part"].take(found).combine_chunks(), winners["row"].take(found).combine_chunks()
