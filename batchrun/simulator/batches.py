"""The simulator's batches: created, aged by the injected clock, answered once, listed, cancelled.

A batch's state is computed from the clock whenever it is read (no background task): PENDING for
`pending_s` after creation, RUNNING for `running_s` more, then its end (SUCCEEDED, or EXPIRED or
FAILED by a batch fault; `stuck_pending` never leaves PENDING). With `min_gets`, a batch the clock
has ended stays RUNNING until it has been got that many times, so a test can hold it running across a
client's restart whatever the machine's speed. A cancelled batch is CANCELLED from then on. The
first read that finds a batch SUCCEEDED answers its lines (batchlines.py) into a results file (file
input) or inline responses (inline input); later reads return the same output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batchlines import (
    LineAnswerer,
    inline_lines,
    inline_results,
    read_file_lines,
    write_results,
)
from .faults import batch_fault_hits
from .files import FileApiError, FileStore, rfc3339, short_id

if TYPE_CHECKING:
    from .core import SimulatorCore

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
FINAL_STATES = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED",
                          "BATCH_STATE_EXPIRED"})
_FATES = ("stuck_pending", "expired", "failed", "partial_results")  # precedence when several hit a batch
_ENDS = {"expired": "BATCH_STATE_EXPIRED", "failed": "BATCH_STATE_FAILED"}
DEFAULT_PAGE_SIZE = 50


@dataclass(slots=True)
class Batch:
    """One batch: what it asks, when it was made, and (once answered) its output."""

    batch_id: str
    model: str
    display_name: str
    created: float
    n: int  # creation number, for the batch faults
    fate: str | None
    request_count: int
    input_path: Path | None = None  # the batch's own link to its input file's bytes
    inline: list[tuple[Any, Any]] | None = None
    cancelled_at: float | None = None
    output: dict[str, Any] | None = None
    succeeded: int = 0
    failed: int = 0
    gets: int = 0  # batches.get calls answered, for `min_gets`

    @property
    def name(self) -> str:
        return f"batches/{self.batch_id}"


def batch_state(batch: Batch, now: float, pending_s: float, running_s: float) -> tuple[str, float]:
    """(state, time it was entered) of a batch at `now`."""
    if batch.cancelled_at is not None:
        return "BATCH_STATE_CANCELLED", batch.cancelled_at
    running_at = batch.created + pending_s
    if batch.fate == "stuck_pending" or now < running_at:
        return "BATCH_STATE_PENDING", batch.created
    ended_at = running_at + running_s
    if now < ended_at:
        return "BATCH_STATE_RUNNING", running_at
    return _ENDS.get(batch.fate or "", "BATCH_STATE_SUCCEEDED"), ended_at


def read_batch_body(body: dict[str, Any]) -> tuple[str, str | None, list[Any] | None]:
    """(display name, input file id, inline requests) of a batchGenerateContent body, camel or snake case."""
    batch = body.get("batch")
    if not isinstance(batch, dict):
        raise FileApiError(400, "INVALID_ARGUMENT", 'the body needs a "batch" object')
    config = _either(batch, "inputConfig", "input_config") or {}
    file_name = _either(config, "fileName", "file_name")
    requests = (_either(config, "requests", "requests") or {}).get("requests")
    if (file_name is None) == (requests is None):
        raise FileApiError(400, "INVALID_ARGUMENT",
                           "batch.inputConfig needs exactly one of fileName (files/ID) or requests.requests")
    if file_name is not None and not str(file_name).startswith("files/"):
        raise FileApiError(400, "INVALID_ARGUMENT", f"fileName {file_name!r} must look like files/ID")
    display = _either(batch, "displayName", "display_name") or ""
    return str(display), (str(file_name)[6:] if file_name is not None else None), requests


def _either(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping[camel] if camel in mapping else mapping.get(snake)


class BatchBook:
    """The batches of one simulator, newest last; they answer through `core`, their files go to `files`."""

    def __init__(self, core: SimulatorCore, files: FileStore) -> None:
        self.core = core
        self.files = files
        self.batches: dict[str, Batch] = {}
        self._made = 0

    def create(self, model: str, body: dict[str, Any], now: float) -> Batch:
        """Make a batch from a batchGenerateContent body; the input is checked line by line now."""
        display, file_id, requests = read_batch_body(body)
        n = self._made
        batch = Batch(short_id(self.core.seed, "batch", n), model, display, now, n, self._fate(n), 0)
        if file_id is not None:
            path = self.files.get(file_id).path
            batch.request_count = sum(1 for _ in read_file_lines(path))
            batch.input_path = self.files.new_path("input")[1]
            os.link(path, batch.input_path)  # the input file may be deleted while the batch runs
        else:
            batch.inline = inline_lines(requests if isinstance(requests, list) else [])
            batch.request_count = len(batch.inline)
        self._made += 1
        self.batches[batch.batch_id] = batch
        return batch

    def _fate(self, n: int) -> str | None:
        settings = self.core.config.batch
        for fate in _FATES:
            if batch_fault_hits(getattr(settings, fate), self.core.seed, fate, n):
                return fate
        return None

    def get(self, batch_id: str) -> Batch:
        """A batch, or FileApiError 404."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise FileApiError(404, "NOT_FOUND", f"batches/{batch_id} does not exist or was deleted")
        return batch

    def newest_first(self) -> list[Batch]:
        """Every batch, newest first."""
        return sorted(self.batches.values(), key=lambda b: (b.created, b.n), reverse=True)

    def cancel(self, batch_id: str, now: float) -> None:
        """Cancel a batch that has not ended; one that has ended stays as it is."""
        batch = self.get(batch_id)
        if self.state(batch, now)[0] not in FINAL_STATES:
            batch.cancelled_at = now

    def delete(self, batch_id: str) -> None:
        """Forget a batch (its results file stays until deleted)."""
        batch = self.get(batch_id)
        if batch.input_path is not None:
            batch.input_path.unlink(missing_ok=True)
        del self.batches[batch_id]

    def polled(self, batch_id: str, now: float) -> dict[str, Any]:
        """A batches.get: the Operation, the batch counted as got once more."""
        batch = self.get(batch_id)
        batch.gets += 1
        return self.operation(batch, now)

    def state(self, batch: Batch, now: float) -> tuple[str, float]:
        settings = self.core.config.batch
        state, since = batch_state(batch, now, settings.pending_s, settings.running_s)
        if batch.gets < settings.min_gets and batch.cancelled_at is None and state in FINAL_STATES:
            return "BATCH_STATE_RUNNING", batch.created + settings.pending_s
        return state, since

    def operation(self, batch: Batch, now: float) -> dict[str, Any]:
        """The batch as a long-running Operation, answering its lines first if it has just succeeded."""
        state, since = self.state(batch, now)
        if state == "BATCH_STATE_SUCCEEDED" and batch.output is None:
            self._answer(batch, now)
        metadata = self._metadata(batch, state, since)
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if state not in FINAL_STATES:
            return operation
        operation["done"] = True
        if state == "BATCH_STATE_FAILED":
            operation["error"] = {"code": 13, "message": "the batch failed (simulated): submit it again"}
        elif state == "BATCH_STATE_SUCCEEDED":
            assert batch.output is not None
            operation["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **batch.output}
        return operation

    def _metadata(self, batch: Batch, state: str, since: float) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "@type": _TYPE + "GenerateContentBatch",
            "name": batch.name,
            "model": f"models/{batch.model}",
            "displayName": batch.display_name,
            "createTime": rfc3339(batch.created),
            "updateTime": rfc3339(since),
            "state": state,
            "batchStats": self._stats(batch, state),
        }
        if state in FINAL_STATES:
            metadata["endTime"] = rfc3339(since)
        if batch.output is not None and state == "BATCH_STATE_SUCCEEDED":
            metadata["output"] = batch.output
        return metadata

    @staticmethod
    def _stats(batch: Batch, state: str) -> dict[str, str]:
        stats = {"requestCount": str(batch.request_count)}
        if state == "BATCH_STATE_SUCCEEDED":
            stats["successfulRequestCount"] = str(batch.succeeded)
            stats["failedRequestCount"] = str(batch.failed)
        else:
            stats["pendingRequestCount"] = str(batch.request_count)
        return stats

    def _answer(self, batch: Batch, now: float) -> None:
        answerer = LineAnswerer(self.core, batch.name, batch.model, batch.n, now)
        partial = batch.fate == "partial_results"
        if batch.inline is not None:
            answers = answerer.answers(batch.inline, batch.request_count, partial)
            batch.output = {"inlinedResponses": {"inlinedResponses": inline_results(answers)}}
        else:
            assert batch.input_path is not None
            lines = read_file_lines(batch.input_path)
            file_id, path = self.files.new_path("file")
            write_results(answerer.answers(lines, batch.request_count, partial), path,
                          self.core.config.batch.line_padding_bytes)
            self.files.add_generated(file_id, f"{batch.name}-results", "application/jsonl", now)
            batch.output = {"responsesFile": f"files/{file_id}"}
        batch.succeeded, batch.failed = answerer.counts.succeeded, answerer.counts.failed
