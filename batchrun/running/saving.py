"""Saving a finished exchange: its reply fanned out to every row that shares the request.

Input: a `Finished` exchange (the record, the reply, attempts, times, cost) and the sink. For the
record's own row and each row in `record.shares`, the image (if any) is written under that row's
name, then its result row. The paying row carries the cost and the tokens; a sharing row carries
cost 0, no tokens and `shared_from` = the paying row's id, so summing `cost_usd` gives what was spent.

A name the file system refuses at write time although the plan accepted it (another file system
under the output folder, say) is not a reason to pay for the image again: it is written under the
row's id instead, with a warning. Any other `OSError` propagates: the pool stops and holds the reply.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypedDict

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.outcomes import Status
from batchrun.output.images import ImageFile
from batchrun.output.journal import RESULT_FIELDS
from batchrun.output.results import latest_row_indices, list_parts, read_parts
from batchrun.records import (
    ProviderReply,
    RequestRecord,
    ResultRecord,
    RowTarget,
    Usage,
)

log = logging.getLogger(__name__)

NAME_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


class ResultWriter(Protocol):
    """What saving a reply needs of the sink: result rows and images to write."""

    def write_result(self, result: ResultRecord) -> None: ...

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile: ...


class SavedResults(ResultWriter, Protocol):
    """What copying saved replies needs of the sink: also the output folder and its results."""

    out_dir: Path
    results_dir: Path


@dataclass(slots=True)
class Finished:
    """An exchange that ended for good, waiting to be saved; `saved` rows of it are already saved."""

    record: RequestRecord
    reply: ProviderReply
    status: Status
    attempts: int
    started: float
    finished: float
    cost: float | None
    saved: int = 0

    @property
    def rows(self) -> int:
        return 1 + len(self.record.shares)


def save_finished(sink: ResultWriter, done: Finished) -> None:
    """Write every row of a finished exchange not yet saved (its image first, then its row)."""
    record = done.record
    own = RowTarget(record.row_id, record.output_name)
    targets = (own, *record.shares)
    while done.saved < len(targets):
        target = targets[done.saved]
        image = _reply_image(sink, done, target)
        result = finished_result(done, image)
        if target is not own:
            result = shared_result(result, target.row_id, record.row_id)
        sink.write_result(result)
        done.saved += 1


def _reply_image(sink: ResultWriter, done: Finished, target: RowTarget) -> ImageFile | None:
    reply = done.reply
    if reply.image is None or done.status != Status.OK:
        return None
    return _write_image(sink, reply.image, reply.image_mime or "image/png", target)


def _write_image(sink: ResultWriter, data: bytes, mime: str, target: RowTarget) -> ImageFile:
    try:
        return sink.write_image(data, mime, target.output_name, target.row_id)
    except OSError as exc:
        if exc.errno not in NAME_ERRORS or target.output_name is None:
            raise
        log.warning("the file system refused the image name %r (%s); saved as images/%s instead",
                    target.output_name, exc.strerror, target.row_id)
        return sink.write_image(data, mime, None, target.row_id)


def shared_result(result: ResultRecord, row_id: str, paid_by: str) -> ResultRecord:
    """The result of a row that reuses another row's paid reply: its own id, no cost, no tokens."""
    return replace(
        result, row_id=row_id, shared_from=paid_by, cost_usd=0.0 if result.cost_usd is not None else None,
        prompt_tokens=None, prompt_image_tokens=None, cached_tokens=None, output_text_tokens=None,
        output_image_tokens=None, thoughts_tokens=None, total_tokens=None,
    )


def finished_result(done: Finished, image: ImageFile | None) -> ResultRecord:
    """The result row of the paying row of an exchange."""
    record, reply, status = done.record, done.reply, done.status
    usage = reply.usage or Usage()
    return ResultRecord(
        request_id=record.request_id,
        row_id=record.row_id,
        status=status,
        attempts=done.attempts,
        started_at=done.started,
        finished_at=done.finished,
        finish_reason=reply.finish_reason,
        text=reply.text,
        image_path=image.path if image else None,
        image_sha256=image.sha256 if image else None,
        image_mime=reply.image_mime if image else None,
        image_width=image.width if image else None,
        image_height=image.height if image else None,
        image_bytes=image.bytes if image else None,
        prompt_tokens=usage.prompt,
        prompt_image_tokens=usage.prompt_image,
        cached_tokens=usage.cached,
        output_text_tokens=usage.output_text,
        output_image_tokens=usage.output_image,
        thoughts_tokens=usage.thoughts,
        total_tokens=usage.total,
        cost_usd=done.cost,
        latency_ms=int(math.ceil((done.finished - done.started) * 1000)),
        http_status=reply.http_status,
        error_kind=reply.error_kind if status != Status.OK else None,
        error_message=reply.error_message if status != Status.OK else None,
        model=record.model,
        model_version=reply.model_version,
        response_id=reply.response_id,
        service_tier=reply.service_tier,
    )



def copy_replies(sink: SavedResults, reusable: pa.Table) -> list[str]:
    """Give each reusable row a copy of its request's saved reply; return the rows that could not be.

    A row cannot take a copy when the source row's image file is gone or changed since it was
    written: that row must be sent again.
    """
    sources = _source_results(sink, reusable["source_row_id"])
    missing: list[str] = []
    for row_id, name, source_id in zip(*(reusable[c].to_pylist() for c in ("row_id", "output_name", "source_row_id"))):
        source = sources[source_id]
        image = _copy_image(sink, source, RowTarget(row_id, name)) if source.image_path else None
        if source.image_path and image is None:
            missing.append(row_id)
            continue
        copied = shared_result(source, row_id, source.shared_from or source.row_id or source.request_id)
        sink.write_result(replace(copied, finished_at=time.time(), run_id=None, **_image_fields(image)))
    return missing


def _source_results(sink: SavedResults, row_ids: pa.ChunkedArray) -> dict[str, ResultRecord]:
    table = read_parts(list_parts(sink.results_dir), RESULT_FIELDS)
    table = table.filter(pc.is_in(table["row_id"], value_set=pc.unique(row_ids.combine_chunks())))
    table = table.take(latest_row_indices(table))
    results: dict[str, ResultRecord] = {}
    for row in table.to_pylist():
        row["started_at"] = row["started_at"].timestamp()
        row["finished_at"] = row["finished_at"].timestamp()
        results[row["row_id"]] = ResultRecord(**row)
    return results


def _copy_image(sink: SavedResults, source: ResultRecord, target: RowTarget) -> ImageFile | None:
    assert source.image_path is not None  # only rows with an image are copied this way
    try:
        data = (sink.out_dir / source.image_path).read_bytes()
    except FileNotFoundError:
        log.warning("%s is gone; row %s, which shares its request, is sent again", source.image_path, target.row_id)
        return None
    if hashlib.sha256(data).hexdigest() != source.image_sha256:
        log.warning("%s changed since it was written; row %s, which shares its request, is sent again",
                    source.image_path, target.row_id)
        return None
    return _write_image(sink, data, source.image_mime or "image/png", target)


class _ImageFields(TypedDict, total=False):
    image_path: str | None
    image_sha256: str | None
    image_bytes: int | None
    image_width: int | None
    image_height: int | None


def _image_fields(image: ImageFile | None) -> _ImageFields:
    if image is None:
        return {}
    return {"image_path": image.path, "image_sha256": image.sha256, "image_bytes": image.bytes,
            "image_width": image.width, "image_height": image.height}
