"""Pending requests packed into chunks, one Gemini batch each, and each chunk's JSONL request file.

In:  pending RequestRecords, a function that encodes one record's wire body (GeminiProvider.encode_body:
     input images inlined at write time), the job name and the limits.
Out: `batches/<chunk_id>.jsonl` (one `{"key": request_id, "request": <body>}` per line) and
     `batches/<chunk_id>.ids` (the request ids in line order), each written to a temp name, fsynced and
     renamed; a `Chunk` describing each.

Invariants: a chunk holds requests of one model only (a batch is created on one model's route); no
chunk exceeds `max_requests` lines or `max_bytes` bytes (a request larger than `max_bytes` alone
gets a chunk of its own); records are taken in (model, seq, request_id) order, so the same pending set
gives the same chunks, chunk ids and display names after a crash. A record whose input image
changed is left out and reported, never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InputImageChanged
from ..records import RequestRecord

DEFAULT_MAX_REQUESTS = 2_000
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
BATCHES_DIR = "batches"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Encode = Callable[[RequestRecord], bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkLimits:
    """How large one chunk (one batch) may grow."""

    max_requests: int = DEFAULT_MAX_REQUESTS
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.max_bytes < 1:
            raise ValueError("chunk limits must be at least 1 request and 1 byte")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk written to disk: what the ledger's `planned` entry records."""

    chunk_id: str
    display_name: str
    model: str
    jsonl_path: Path
    ids_path: Path
    count: int
    bytes: int


@dataclass(slots=True)
class ChunkPlan:
    """The chunks written, and the records left out because an input image changed."""

    chunks: list[Chunk] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (request_id, message)


def chunk_digest(request_ids: Iterable[str]) -> str:
    """16 hex of the sha256 of the sorted request ids: a chunk's id, the same for the same set."""
    joined = "\n".join(sorted(request_ids)).encode()
    return hashlib.sha256(joined).hexdigest()[:16]


def display_name(job_name: str, digest: str) -> str:
    """The batch's display name: `batchrun-<job name>-<digest>`, found again by listing after a crash."""
    safe = _NAME_UNSAFE.sub("-", job_name).strip("-") or "job"
    return f"batchrun-{safe}-{digest}"


def jsonl_line(request_id: str, body: bytes) -> bytes:
    """One line of a batch request file, the body spliced in as encoded (never parsed again)."""
    return b'{"key":' + json.dumps(request_id).encode() + b',"request":' + body + b"}\n"


def ordered(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """Records in the order chunks take them: by model, then manifest order."""
    return sorted(records, key=lambda r: (r.model, r.seq, r.request_id))


def write_chunks(records: Iterable[RequestRecord], encode: Encode, out_dir: Path, job_name: str,
                 limits: ChunkLimits = ChunkLimits()) -> ChunkPlan:
    """Split records into chunks and write each chunk's files under `out_dir/batches/`."""
    folder = Path(out_dir) / BATCHES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    plan = ChunkPlan()
    writer: _ChunkWriter | None = None
    for record, line in _encoded(ordered(records), encode, plan):
        if writer is not None and not writer.takes(record.model, len(line), limits):
            plan.chunks.append(writer.finish(job_name))
            writer = None
        writer = writer or _ChunkWriter(folder, record.model)
        writer.add(record.request_id, line)
    if writer is not None:
        plan.chunks.append(writer.finish(job_name))
    return plan


def _encoded(records: list[RequestRecord], encode: Encode, plan: ChunkPlan) -> Iterator[tuple[RequestRecord, bytes]]:
    for record in records:
        try:
            body = encode(record)
        except InputImageChanged as exc:
            plan.unreadable.append((record.request_id, str(exc)))
            continue
        yield record, jsonl_line(record.request_id, body)


class _ChunkWriter:
    """One chunk being written: lines go to a temp file; `finish` names it by its request ids."""

    def __init__(self, folder: Path, model: str) -> None:
        self.folder = folder
        self.model = model
        self.ids: list[str] = []
        self.bytes = 0
        self._temp = folder / f".chunk-{os.getpid()}.jsonl.tmp"
        self._file: BinaryIO = self._temp.open("wb")

    def takes(self, model: str, size: int, limits: ChunkLimits) -> bool:
        """Whether one more line of `size` bytes for `model` fits this chunk."""
        return (model == self.model and len(self.ids) < limits.max_requests
                and self.bytes + size <= limits.max_bytes)

    def add(self, request_id: str, line: bytes) -> None:
        self._file.write(line)
        self.ids.append(request_id)
        self.bytes += len(line)

    def finish(self, job_name: str) -> Chunk:
        """Fsync and rename the JSONL file, write the ids file; the chunk they make."""
        _close_synced(self._file)
        digest = chunk_digest(self.ids)
        jsonl_path = self.folder / f"{digest}.jsonl"
        os.replace(self._temp, jsonl_path)
        ids_path = self.folder / f"{digest}.ids"
        write_atomically(ids_path, "".join(f"{rid}\n" for rid in self.ids).encode())
        return Chunk(digest, display_name(job_name, digest), self.model, jsonl_path, ids_path,
                     len(self.ids), self.bytes)


def _close_synced(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temp name beside `path`, fsync, rename over `path`."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def read_ids(path: Path) -> list[str]:
    """The request ids of a chunk, in the order of its JSONL lines."""
    return [line for line in Path(path).read_text().splitlines() if line]
