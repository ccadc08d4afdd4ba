"""The ledger: the durable record of every chunk's phase, `outputs/NAME/batches/ledger.jsonl`.

In:  one call per phase change of a chunk (planned, uploading, uploaded, creating, created, state,
     cancel_requested, collected, returned_to_pending).
Out: one JSON line per call, appended, flushed and fsynced before the call returns; `read_ledger`
     folds the lines into each chunk's latest state.

Invariants: lines are only ever appended; `creating` is on disk before the create call is made, so a
crash between the two is seen on resume (see `reconcile`); `uploading` names the variable of the key
the chunk is sent with, never the key (a ledger of 0.6.0 names none: the pool's first key);
`cancel_requested` is on disk before the cancel call, so a resumed run finishes the switch to the
fallback (batching/fallback.py); a torn last line (a crash mid-write) is ignored on reading and cut
off before the next append; `planned` starts a chunk afresh (the same requests planned again after a
return to pending), while every batch name ever recorded stays known, so a batch once adopted or
abandoned is never adopted again.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chunks import BATCHES_DIR, Chunk, read_ids

LEDGER_NAME = "ledger.jsonl"


class Phase(enum.StrEnum):
    """Where a chunk is, as the ledger last recorded it."""

    PLANNED = "planned"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    CREATING = "creating"
    CREATED = "created"
    COLLECTED = "collected"
    RETURNED = "returned_to_pending"


@dataclass(slots=True)
class ChunkState:
    """One chunk's latest state, folded from its ledger lines."""

    chunk_id: str
    display_name: str
    model: str
    ids_file: str
    count: int
    bytes: int
    phase: Phase = Phase.PLANNED
    file_name: str | None = None
    batch_name: str | None = None
    batch_state: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    results_file: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    planned_at: float | None = None  # unix seconds of the ledger lines
    created_at: float | None = None
    cancel_reason: str | None = None  # set once a cancel for the fallback is recorded (before the call)
    key_env: str | None = None  # the variable of the key its file was uploaded with (None: the pool's first)


@dataclass(slots=True)
class LedgerView:
    """Every chunk's latest state, in planning order, and every batch name ever recorded."""

    chunks: dict[str, ChunkState] = field(default_factory=dict)
    known_batches: set[str] = field(default_factory=set)

    def in_phase(self, *phases: Phase) -> list[ChunkState]:
        return [chunk for chunk in self.chunks.values() if chunk.phase in phases]

    def in_flight_ids(self, folder: Path) -> set[str]:
        """Request ids of every chunk neither collected nor returned: not to be chunked again."""
        live = [chunk for chunk in self.chunks.values() if chunk.phase not in (Phase.COLLECTED, Phase.RETURNED)]
        return {rid for chunk in live for rid in read_ids(folder / chunk.ids_file)}


class Ledger:
    """Appends phase changes to `batches/ledger.jsonl`, each line fsynced before returning."""

    def __init__(self, out_dir: Path, *, now: Callable[[], float] = time.time) -> None:
        self.path = Path(out_dir) / BATCHES_DIR / LEDGER_NAME
        self._now = now
        self._tail_checked = False

    def read(self) -> LedgerView:
        """Each chunk's latest state."""
        return read_ledger(self.path)

    def planned(self, chunk: Chunk) -> None:
        self._append("planned", chunk.chunk_id, display_name=chunk.display_name, model=chunk.model,
                     ids_file=chunk.ids_path.name, count=chunk.count, bytes=chunk.bytes)

    def uploading(self, chunk_id: str, key_env: str | None = None) -> None:
        """The upload starts, with the key read from `key_env` (its name, never the key): every later call
        for this chunk's file and batch is made with that key."""
        facts = {} if key_env is None else {"key_env": key_env}
        self._append("uploading", chunk_id, **facts)

    def uploaded(self, chunk_id: str, file_name: str) -> None:
        self._append("uploaded", chunk_id, file_name=file_name)

    def creating(self, chunk_id: str) -> None:
        """Recorded (and fsynced) before the create call: creation is not idempotent."""
        self._append("creating", chunk_id)

    def created(self, chunk_id: str, batch_name: str) -> None:
        self._append("created", chunk_id, batch_name=batch_name)

    def state(self, chunk_id: str, state: str, stats: dict[str, Any], results_file: str | None) -> None:
        self._append("state", chunk_id, state=state, stats=stats, results_file=results_file)

    def cancel_requested(self, chunk_id: str, reason: str) -> None:
        """Recorded (and fsynced) before the cancel call: a crash after it still ends in the fallback."""
        self._append("cancel_requested", chunk_id, reason=reason)

    def collected(self, chunk_id: str, lines: int, missing: int, unknown: int) -> None:
        self._append("collected", chunk_id, lines=lines, missing=missing, unknown=unknown)

    def returned_to_pending(self, chunk_id: str, reason: str) -> None:
        self._append("returned_to_pending", chunk_id, reason=reason)

    def _append(self, event: str, chunk_id: str, **facts: Any) -> None:
        line = json.dumps({"event": event, "chunk_id": chunk_id, "at": self._now(), **facts},
                          separators=(",", ":")).encode() + b"\n"
        if not self._tail_checked:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_torn_tail(self.path)
            self._tail_checked = True
        with self.path.open("ab") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


def cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline (a crash mid-append), so the next line starts whole."""
    if not path.exists():
        return
    with path.open("r+b") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def read_ledger(path: Path) -> LedgerView:
    """Fold a ledger file into each chunk's latest state; no file is an empty ledger."""
    view = LedgerView()
    for entry in _entries(Path(path)):
        _apply(view, entry)
    return view


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as file:
        for line in file:
            if not line.endswith(b"\n"):
                return  # torn by a crash mid-append: never acted on
            yield json.loads(line)


def _apply(view: LedgerView, entry: dict[str, Any]) -> None:
    event, chunk_id = entry["event"], entry["chunk_id"]
    if event == "planned":
        view.chunks.pop(chunk_id, None)  # planned again: listed in its new place, fresh
        view.chunks[chunk_id] = ChunkState(chunk_id, entry["display_name"], entry["model"],
                                           entry["ids_file"], entry["count"], entry["bytes"],
                                           planned_at=entry.get("at"))
        return
    chunk = view.chunks.get(chunk_id)
    if chunk is None:
        return  # a line for a chunk planned in a torn line: nothing to act on
    _UPDATES[event](chunk, entry)
    if chunk.batch_name:
        view.known_batches.add(chunk.batch_name)


def _on_uploading(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.phase, chunk.key_env = Phase.UPLOADING, entry.get("key_env")


def _on_uploaded(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.phase, chunk.file_name = Phase.UPLOADED, entry["file_name"]


def _on_created(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.phase, chunk.batch_name, chunk.created_at = Phase.CREATED, entry["batch_name"], entry.get("at")


def _on_state(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.batch_state, chunk.stats = entry["state"], entry.get("stats") or {}
    chunk.results_file = entry.get("results_file")


def _on_cancel_requested(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.cancel_reason = entry["reason"]


def _on_collected(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.phase = Phase.COLLECTED
    chunk.summary = {key: entry[key] for key in ("lines", "missing", "unknown")}


def _on_returned(chunk: ChunkState, entry: dict[str, Any]) -> None:
    chunk.phase, chunk.reason = Phase.RETURNED, entry["reason"]


def _set_phase(phase: Phase) -> Callable[[ChunkState, dict[str, Any]], None]:
    def update(chunk: ChunkState, entry: dict[str, Any]) -> None:
        chunk.phase = phase
    return update


_UPDATES: dict[str, Callable[[ChunkState, dict[str, Any]], None]] = {
    "uploading": _on_uploading,
    "uploaded": _on_uploaded,
    "creating": _set_phase(Phase.CREATING),
    "created": _on_created,
    "state": _on_state,
    "cancel_requested": _on_cancel_requested,
    "collected": _on_collected,
    "returned_to_pending": _on_returned,
}
