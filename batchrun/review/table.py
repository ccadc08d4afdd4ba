"""The review table: one row per expanded manifest row, joined with its latest result, in record batches.

Inputs: an output folder's `manifest.parquet`, `results/part-*.parquet` and any `journal/` segments (no
spec, no network). Output: a `ReviewTable`, whose Arrow schema is known before the first row (see
`batchrun.review.columns` for every column) and whose `batches()` yields the rows in manifest order.

Invariants: every manifest row appears exactly once; a row with no result has status `pending`;
memory stays bounded by a batch of rows, at most two result parts and an index of about 100 bytes a
row (`batchrun.review.latest`), so a million-row job is read in the same memory as a thousand-row one.
Opening reads the manifest's `variables` and `body` columns once, to learn the variable columns, their
types, which vary within an input row (matrix keys) and the response schema's fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.errors import UsageError
from batchrun.output.mirror import shown_output
from batchrun.planning.manifest import MANIFEST_NAME, read_columns
from batchrun.review.columns import (
    PENDING,
    VARIANT,
    JsonColumn,
    VariableColumn,
    VariableTypes,
    cell,
    json_columns,
    merge_json_columns,
    reply_fields,
    review_schema,
    variable_column_name,
)
from batchrun.review.latest import LatestResults

BATCH_ROWS = 8192
MANIFEST_COLUMNS = ("row_id", "request_id", "input_row", "seq", "model", "body", "variables")
RESULT_COLUMNS = ("status", "error_kind", "error_message", "finish_reason", "image_path", "image_sha256",
                  "image_width", "image_height", "cost_usd", "prompt_tokens", "output_text_tokens",
                  "output_image_tokens", "thoughts_tokens", "service_tier", "latency_ms", "attempts",
                  "finished_at", "text", "shared_from", "model")


@dataclass(frozen=True)
class ReviewTable:
    """The review table of one output folder: its schema now, its rows by `batches()`.

    `input_columns`, `matrix_columns` and `json_columns` name columns of `schema`; `variant_column` is
    `variant` when the job asks for variants, else None. `rows` is the manifest's row count.
    """

    out_dir: Path
    schema: pa.Schema
    rows: int
    input_columns: tuple[str, ...]
    matrix_columns: tuple[str, ...]
    variant_column: str | None
    json_columns: tuple[str, ...]
    relative_paths: bool = False
    batch_rows: int = BATCH_ROWS
    _variables: tuple[VariableColumn, ...] = field(default=(), repr=False)
    _json: tuple[JsonColumn, ...] = field(default=(), repr=False)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows in manifest order, `batch_rows` at a time, each batch with `schema`."""
        path = self.out_dir / MANIFEST_NAME
        results = LatestResults(self.out_dir, RESULT_COLUMNS, read_columns(path, ["row_id"])["row_id"])
        image_root = self.out_dir.resolve()
        offset = 0
        for manifest in _manifest_batches(path, self.batch_rows):
            latest = results.for_slice(offset, manifest.num_rows)
            offset += manifest.num_rows
            yield self._batch(manifest, latest, image_root)

    def _batch(self, manifest: pa.RecordBatch, latest: pa.Table, image_root: Path) -> pa.RecordBatch:
        bodies = [_request_facts(body) for body in manifest.column("body").to_pylist()]
        variables = [orjson.loads(text) for text in manifest.column("variables").to_pylist()]
        columns: dict[str, Any] = {name: manifest.column(name) for name in ("row_id", "request_id", "input_row", "seq")}
        for v in self._variables:
            columns[v.name] = pa.array([cell(row.get(v.key), v.type) for row in variables], v.type)
        columns.update(_result_columns(manifest, latest, self.relative_paths, image_root))
        columns["prompt"] = pa.array([b[0] for b in bodies], pa.string())
        columns["aspect_ratio_requested"] = pa.array([b[1] for b in bodies], pa.string())
        columns["image_size_requested"] = pa.array([b[2] for b in bodies], pa.string())
        columns["shared_from"] = latest["shared_from"]
        if self._json:
            replies = [reply_fields(text) or {} for text in latest["text"].to_pylist()]
            for j in self._json:
                columns[j.name] = pa.array([cell(reply.get(j.key), j.type) for reply in replies], j.type)
        arrays = [_array(columns[f.name], f.type) for f in self.schema]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def open_review_table(out_dir: Path, *, relative_paths: bool = False, batch_rows: int = BATCH_ROWS) -> ReviewTable:
    """The review table of an output folder; UsageError when nothing was planned there yet."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        raise UsageError(f"{shown_output(out_dir)} has no {MANIFEST_NAME}: nothing was planned yet; run `batchrun plan` on the job first")
    scan = _scan_manifest(path, batch_rows)
    variables = tuple(_variable_columns(scan))
    json_fields = tuple(scan.json_fields)
    by_role = {role: tuple(v.name for v in variables if v.role == role) for role in ("input", "matrix", "variant")}
    return ReviewTable(
        out_dir=out_dir, schema=review_schema(variables, json_fields), rows=scan.rows,
        input_columns=by_role["input"], matrix_columns=by_role["matrix"],
        variant_column=by_role["variant"][0] if by_role["variant"] else None,
        json_columns=tuple(j.name for j in json_fields), relative_paths=relative_paths, batch_rows=batch_rows,
        _variables=variables, _json=json_fields,
    )


# ---------------------------------------------------------------- the manifest


def _manifest_batches(path: Path, batch_rows: int, columns: tuple[str, ...] = MANIFEST_COLUMNS
                      ) -> Iterator[pa.RecordBatch]:
    """Manifest batches; one planned before rows had ids of their own gives row_id = request_id."""
    names = pq.read_schema(path).names
    present = [c for c in columns if c in names]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=present):
        if "row_id" in columns and "row_id" not in names:
            batch = batch.append_column("row_id", batch.column("request_id"))
        if "input_row" in columns and "input_row" not in names:
            batch = batch.append_column("input_row", pa.nulls(batch.num_rows, pa.int64()))
        yield batch


@dataclass
class _Scan:
    """What one pass over the manifest's variables and bodies learns."""

    rows: int = 0
    keys: dict[str, None] = field(default_factory=dict)  # in first-seen order
    types: VariableTypes = field(default_factory=VariableTypes)
    varying: set[str] = field(default_factory=set)  # keys whose value changes within one input row
    json_fields: list[JsonColumn] = field(default_factory=list)
    _last: tuple[Any, dict[str, Any]] | None = None
    _schemas: set[bytes] = field(default_factory=set)

    def add(self, input_row: Any, variables: dict[str, Any], body: dict[str, Any]) -> None:
        self.rows += 1
        self.keys.update(dict.fromkeys(variables))
        self.types.add(variables)
        if self._last is not None and self._last[0] == input_row and input_row is not None:
            before = self._last[1]
            self.varying.update(k for k in variables.keys() | before.keys() if variables.get(k) != before.get(k))
        self._last = (input_row, variables)
        self._add_schema(body.get("response_schema"))

    def _add_schema(self, response_schema: Any) -> None:
        if not isinstance(response_schema, dict):
            return
        key = orjson.dumps(response_schema, option=orjson.OPT_SORT_KEYS)
        if key not in self._schemas:
            self._schemas.add(key)
            self.json_fields = merge_json_columns(self.json_fields, json_columns(response_schema.get("schema")))


def _scan_manifest(path: Path, batch_rows: int) -> _Scan:
    scan = _Scan()
    for batch in _manifest_batches(path, batch_rows, ("input_row", "body", "variables")):
        rows = zip(batch.column("input_row").to_pylist(), batch.column("variables").to_pylist(),
                   batch.column("body").to_pylist(), strict=True)
        for input_row, variables, body in rows:
            scan.add(input_row, orjson.loads(variables), orjson.loads(body))
    return scan


def _variable_columns(scan: _Scan) -> Iterator[VariableColumn]:
    for key in scan.keys:
        role = VARIANT if key == VARIANT else ("matrix" if key in scan.varying else "input")
        yield VariableColumn(key, variable_column_name(key), scan.types.type_of(key), role)


def _request_facts(body_json: str) -> tuple[str | None, str | None, str | None]:
    """A rendered request's prompt (its texts, one per line), and the aspect ratio and image size it asks for."""
    body = orjson.loads(body_json)
    texts = [part["text"] for part in body.get("parts") or () if "text" in part]
    options = body.get("options") or {}
    image = options.get("imageConfig") or options.get("image_config") or {}
    aspect = image.get("aspectRatio", image.get("aspect_ratio")) if isinstance(image, dict) else None
    size = image.get("imageSize", image.get("image_size")) if isinstance(image, dict) else None
    return ("\n".join(texts) if texts else None, _text_or_none(aspect), _text_or_none(size))


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------- the results


def _result_columns(manifest: pa.RecordBatch, latest: pa.Table, relative: bool, root: Path) -> dict[str, Any]:
    """The result columns of a batch: pending where no result is, tokens summed as the table names them."""
    return {
        "model": pc.coalesce(latest["model"], manifest.column("model")),
        "status": latest["status"].fill_null(PENDING),
        **{name: latest[name] for name in ("error_kind", "error_message", "finish_reason", "image_sha256",
                                            "image_width", "image_height", "cost_usd", "service_tier",
                                            "latency_ms", "attempts", "finished_at", "text")},
        "image_path": latest["image_path"] if relative else _absolute(latest["image_path"], root),
        "input_tokens": latest["prompt_tokens"],
        "output_tokens": _sum_or_null(latest["output_text_tokens"], latest["output_image_tokens"]),
        "thinking_tokens": latest["thoughts_tokens"],
    }


def _absolute(paths: pa.ChunkedArray, root: Path) -> pa.Array:
    return pa.array([None if p is None else str(root.joinpath(*p.split("/"))) for p in paths.to_pylist()],
                    pa.string())


def _sum_or_null(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """a + b, a missing count taken as 0 unless both are missing."""
    both_missing = pc.and_(pc.is_null(a), pc.is_null(b))
    total = pc.add(a.fill_null(0), b.fill_null(0))
    return pc.if_else(both_missing, pa.scalar(None, pa.int64()), total)


def _array(values: Any, kind: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == kind else values.cast(kind)
