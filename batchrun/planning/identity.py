"""Output identity, checked over a whole manifest once it is written and before it is committed.

Input: a freshly written manifest file. Output: the same file, in which
- every row has its own `row_id`: the `request_id` for a row whose request no other row makes; for
  rows that share a request, a hash of the request id and the row's image name (or, without one, its
  variables and how many identical rows came before it). Neither depends on the order of the rows,
  so a row keeps its id when rows are added or removed elsewhere;
- no two image names are the same, compared as a case-insensitive file system compares them
  (`PlanError` names the spec key and the first two colliding rows otherwise).
The file is rewritten only when some rows share a request; a job without sharing is read, not written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.errors import SpecError


def shared_row_id(request_id: str, output_name: str | None, variables: str, occurrence: int) -> str:
    """The row id of one of several rows that make the same request."""
    key = output_name if output_name is not None else f"{variables}\x00{occurrence}"
    return hashlib.sha256(f"{request_id}\x00{key}".encode()).hexdigest()[:32]


def settle_identity(path: Path, shown: str, keys: list[str], *, named: bool, shared: bool, hint: str = "") -> None:
    """Check image names are distinct (when rows are `named`) and give rows that share a request their own ids.

    `keys` are the variables that name a row in a message: the input's id column, the matrix keys.
    Each check reads only the column it needs, and only when the expansion says it is needed.
    """
    if named:
        names = pq.read_table(path, columns=["output_name"])["output_name"]
        _refuse_colliding_names(path, names, shown, keys, hint)
        del names
    if shared:
        requests = pq.read_table(path, columns=["request_id"])["request_id"]
        counts = pc.value_counts(requests)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        _rewrite_row_ids(path, pc.is_in(requests, value_set=repeated))


def _refuse_colliding_names(path: Path, names: pa.ChunkedArray, shown: str, keys: list[str], hint: str) -> None:
    folded = pc.utf8_lower(names)
    counts = pc.value_counts(folded.drop_null())
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if not len(repeated):
        return
    where = pc.indices_nonzero(pc.is_in(folded, value_set=repeated).fill_null(False)).to_pylist()
    first = where[0]
    second = next(i for i in where[1:] if folded[i].as_py() == folded[first].as_py())
    raise SpecError(shown, "output.image_name", _collision_message(path, [first, second], keys, hint))


def _collision_message(path: Path, positions: list[int], keys: list[str], hint: str) -> str:
    table = pq.read_table(path, columns=["request_id", "output_name", "input_row", "variables"]).take(positions)
    rows = table.to_pylist()
    a, b = (_describe_row(row, keys) for row in rows)
    names = " and ".join(dict.fromkeys(f"images/{row['output_name']}" for row in rows))
    same = rows[0]["request_id"] == rows[1]["request_id"]
    why = ("they make the same request: a variable the prompt does not use tells them apart; "
           "add it to output.image_name, or use request.variants for several images of one request"
           if same else "two different requests would overwrite one file; add a variable that tells "
           f"them apart to output.image_name{hint}")
    return f"{a} and {b} both write {names}: {why}"


def _describe_row(row: dict[str, Any], keys: list[str]) -> str:
    variables = json.loads(row["variables"])
    named = {key: variables[key] for key in keys if key in variables} or variables
    return f"row {row['input_row']} ({_short(named)})"


def _short(variables: dict[str, Any]) -> str:
    text = ", ".join(f"{k} {v!r}" for k, v in variables.items())
    return text if len(text) <= 80 else text[:77] + "..."


def _rewrite_row_ids(path: Path, shared: pa.ChunkedArray) -> None:
    """Replace the row_id of every row in `shared` by its own id; write the file anew in place."""
    table = pq.read_table(path)
    positions = pc.indices_nonzero(shared).to_pylist()
    picked = table.select(["request_id", "output_name", "variables"]).take(positions).to_pydict()
    seen: Counter[tuple[str, str]] = Counter()
    row_ids = table["row_id"].to_pylist()
    for position, request, name, variables in zip(positions, picked["request_id"], picked["output_name"],
                                                  picked["variables"]):
        occurrence = seen[(request, variables)]
        seen[(request, variables)] += 1
        row_ids[position] = shared_row_id(request, name, variables, occurrence)
    column = table.schema.get_field_index("row_id")
    table = table.set_column(column, table.schema.field(column), pa.array(row_ids, pa.string()))
    tmp = path.with_name(path.name + ".ids.tmp")  # a temporary name remove_stale_temps knows
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
