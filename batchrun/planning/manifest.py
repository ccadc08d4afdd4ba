"""The manifest: `outputs/NAME/manifest.parquet`, one row per request in expansion order.

Written in batches to a temporary file of the writer's own and renamed into place, so a reader never sees
half a manifest and two writers never share a file.
Holds no image bytes: input images are references (path, sha256, mime, size, width, height). The
`body` column holds each row's provider-neutral RenderedRequest (`batchrun.rendered`) as JSON. The
schema metadata carries the fingerprint of the spec and inputs it was planned from, so `run` can tell
whether it must plan again, and the request format: a manifest without it was planned by 0.2, whose
`body` was a Gemini generateContent body, and `run` plans it again (`planned_by_an_earlier_version`).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.records import ImageRef, RequestRecord, TokenEstimate

MANIFEST_NAME = "manifest.parquet"
FINGERPRINT_KEY = b"batchrun.fingerprint"
FORMAT_KEY = b"batchrun.request_format"
REQUEST_FORMAT = b"rendered-1"  # the `body` column holds RenderedRequests
# Part of every fingerprint: a manifest planned before a column was added (est_aspect_ratio) no longer
# matches its spec, so it is planned again; request ids hash what is sent, never these columns.
COLUMNS_LAYOUT = b"columns:est_aspect_ratio"

IMAGE_TYPE = pa.struct(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("mime", pa.string()),
        ("bytes", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row_id", pa.string()),
        ("seq", pa.int64()),
        ("input_row", pa.int64()),
        ("model", pa.string()),
        ("body", pa.string()),
        ("variables", pa.string()),
        ("images", pa.list_(IMAGE_TYPE)),
        ("output_name", pa.string()),
        ("est_input_text_tokens", pa.int64()),
        ("est_input_image_tokens", pa.int64()),
        ("est_output_text_tokens_max", pa.int64()),
        ("est_output_image_tokens", pa.int64()),
        ("est_images_out", pa.int32()),
        ("est_thinking_level", pa.string()),
        ("est_thinking_budget", pa.int64()),
        ("est_service_tier", pa.string()),
        ("est_image_size", pa.string()),
        ("est_text_allowed", pa.bool_()),
        ("est_aspect_ratio", pa.string()),
    ]
)


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _compact_column(values: list[Any]) -> list[Any]:
    """`_compact` of each value, without a call per value where orjson takes them all."""
    dumps = orjson.dumps
    try:
        return [dumps(value).decode() for value in values]
    except TypeError:
        return [_compact(value) for value in values]


def records_to_batch(records: list[RequestRecord]) -> pa.RecordBatch:
    """A RecordBatch of manifest rows (columns built directly: this is the plan's hot path)."""
    estimates = [r.estimate for r in records]
    columns = [
        [r.request_id for r in records],
        [r.row_id for r in records],
        [r.seq for r in records],
        [r.input_row for r in records],
        [r.model for r in records],
        _compact_column([r.body for r in records]),
        _compact_column([r.variables for r in records]),
        [[_image_dict(i) for i in r.images] if r.images else [] for r in records],
        [r.output_name for r in records],
        [e.input_text for e in estimates],
        [e.input_image for e in estimates],
        [e.output_text_max for e in estimates],
        [e.output_image for e in estimates],
        [e.images_out for e in estimates],
        [e.thinking_level for e in estimates],
        [e.thinking_budget for e in estimates],
        [e.service_tier for e in estimates],
        [e.image_size for e in estimates],
        [e.text_allowed for e in estimates],
        [e.aspect_ratio for e in estimates],
    ]
    return pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, MANIFEST_SCHEMA)], schema=MANIFEST_SCHEMA
    )


def _image_dict(ref: ImageRef) -> dict[str, Any]:
    return {"path": ref.path, "sha256": ref.sha256, "mime": ref.mime, "bytes": ref.bytes, "width": ref.width, "height": ref.height}


class ManifestWriter:
    """Streams batches of RequestRecords into a manifest; `commit()` renames it into place.

    Its temporary file has a name of its own (pid and a random part), so two writers never share one.
    """

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self._tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = MANIFEST_SCHEMA.with_metadata({FINGERPRINT_KEY: fingerprint.encode(), FORMAT_KEY: REQUEST_FORMAT})
        try:
            self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._closed = False
        self.rows = 0

    def write(self, records: list[RequestRecord]) -> None:
        if records:
            self._writer.write_batch(records_to_batch(records))
            self.rows += len(records)

    def close(self) -> Path:
        """Finish writing; the manifest is complete in the returned temporary file, not yet in place."""
        if not self._closed:
            self._writer.close()
            self._closed = True
        return self._tmp

    def commit(self) -> None:
        try:
            self.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        try:
            self.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def remove_stale_temps(path: Path) -> int:
    """Remove the temporary manifests a killed plan left beside `path`; call it holding the folder's lock."""
    stale = list(path.parent.glob(f"{glob.escape(path.name)}*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def read_fingerprint(path: Path) -> str | None:
    """The fingerprint a manifest was planned from, or None when there is no readable manifest."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def planned_by_an_earlier_version(path: Path) -> bool:
    """Whether an existing manifest holds 0.2's Gemini bodies instead of RenderedRequests (plan it again:
    request ids are the same, so nothing already answered is sent again)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False  # none, or unreadable: planned anew anyway
    return FINGERPRINT_KEY in metadata and metadata.get(FORMAT_KEY) != REQUEST_FORMAT


def read_columns(path: Path, columns: list[str]) -> pa.Table:
    """Some columns of a manifest; one planned before rows had their own ids gives row_id = request_id."""
    names = pq.read_schema(path).names
    if "row_id" in columns and "row_id" not in names:
        wanted = [c if c != "row_id" else "request_id" for c in columns]
        table = pq.read_table(path, columns=list(dict.fromkeys(wanted)))
        return pa.table({c: table[c if c != "row_id" else "request_id"] for c in columns})
    return pq.read_table(path, columns=columns)


def iter_records(path: Path, *, row_ids: pa.Array | None = None, batch_rows: int = 4096) -> Iterator[RequestRecord]:
    """RequestRecords from a manifest, in order; only the rows in `row_ids` when it is given."""
    if row_ids is not None and len(row_ids) == 0:
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        if row_ids is not None:
            batch = batch.filter(pc.is_in(batch.column("row_id"), value_set=row_ids))
            if batch.num_rows == 0:
                continue
        yield from batch_to_records(batch)


def batch_to_records(batch: pa.RecordBatch) -> Iterator[RequestRecord]:
    rows = batch.to_pydict()
    for i in range(batch.num_rows):
        yield RequestRecord(
            request_id=rows["request_id"][i],
            row_id=rows["row_id"][i],
            seq=rows["seq"][i],
            input_row=rows["input_row"][i],
            model=rows["model"][i],
            body=json.loads(rows["body"][i]),
            variables=json.loads(rows["variables"][i]),
            images=[ImageRef(**image) for image in rows["images"][i]],
            output_name=rows["output_name"][i],
            estimate=TokenEstimate(
                input_text=rows["est_input_text_tokens"][i],
                input_image=rows["est_input_image_tokens"][i],
                output_text_max=rows["est_output_text_tokens_max"][i],
                output_image=rows["est_output_image_tokens"][i],
                images_out=rows["est_images_out"][i],
                thinking_level=rows["est_thinking_level"][i],
                thinking_budget=rows["est_thinking_budget"][i],
                service_tier=rows["est_service_tier"][i],
                image_size=rows["est_image_size"][i],
                text_allowed=rows["est_text_allowed"][i],
                aspect_ratio=rows["est_aspect_ratio"][i] if "est_aspect_ratio" in rows else None,
            ),
        )
