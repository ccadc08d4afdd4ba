"""The simulator's request log: one JSON line per request received, flushed as it is written.

Line: {"t": arrival unix time, "model": ..., "rpc": "generateContent" | "streamGenerateContent" |
"countTokens" | "chat.completions" | "sim.image" (a GET of a served image) | "files.upload.start" |
"files.upload" | "files.get" | "files.list" | "files.delete" | "files.download" | "batches.create" |
"batches.get" | "batches.list" | "batches.cancel" | "batches.delete" | "batch.line" | null (no route),
"body_sha256": sha256 of the raw body bytes, "outcome": "ok" | "rate_limited" | "quota" | ...,
"status": HTTP status or null (hang)}. A `batch.line` line is one line of a batch answered: its
body_sha256 is that of the line's request as compact JSON, and it has one more key, "batch" (the
batch's name, batches/ID). With limits counted per key, a request that carried a key has "key": the
number of that key in the order the simulator first saw each (1, 2, ...), never the key. A call to a
batch route slowed by the faults file's `batch.delays` is logged twice: as it arrives (outcome
"arrived", status null), and when the server acts on it.
Tests hash the bytes they sent and count lines to prove how often each request was received.
"""

from __future__ import annotations

import json
from pathlib import Path


class RequestLog:
    """Appends request lines to a JSONL file; with no path, keeps nothing."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._file = open(self.path, "a", encoding="utf-8", buffering=1) if self.path else None

    def write(self, t: float, model: str | None, body_sha256: str, outcome: str, status: int | None,
              rpc: str | None = None, *, batch: str | None = None, key: int | None = None) -> None:
        """Append one line and flush it (line buffering flushes at the newline)."""
        if self._file is None:
            return
        line = {"t": t, "model": model, "rpc": rpc, "body_sha256": body_sha256, "outcome": outcome, "status": status}
        if batch is not None:
            line["batch"] = batch
        if key is not None:
            line["key"] = key
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Close the file; later writes are dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_request_log(path: str | Path) -> list[dict]:
    """Every line of a request log, parsed; a last line cut short by a kill is skipped."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines
