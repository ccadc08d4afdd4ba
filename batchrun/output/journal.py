"""The append-only journal: every result, and every request about to be sent, as one line.

Input: `ResultRecord` field values and request ids, from the sink. Output: segment files
`journal/<run_id>-NNNN.jsonl`, each opened by a header line naming the run and the result fields,
then one JSON array per line: `["s", request_id]` before a request is sent, `["r", v1, v2, ...]`
(the values of `RESULT_FIELDS`, in order) when its result is known.

Invariants:
- Lines are buffered and handed to the OS in batches (`os.write`); a `kill -9` loses only the lines
  not yet handed over, since the page cache outlives a killed process. Only the periodic `fsync`
  protects against power loss.
- A reader ignores a torn line (a process killed mid-write) and never fails on one.
- A new segment repeats the `sent` marker of every request still in flight, so the old segments can
  be deleted once their results are in a Parquet part without losing the in-flight count.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from batchrun.records import ResultRecord

log = logging.getLogger(__name__)

RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ResultRecord))
result_values: Callable[[ResultRecord], tuple[Any, ...]] = operator.attrgetter(*RESULT_FIELDS)

JOURNAL_VERSION = 1
SENT = "s"
RESULT = "r"
SEGMENT_SUFFIX = ".jsonl"

# ASCII output: a lone surrogate in a reply's text still encodes, and encoding is a C fast path.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def segment_name(run_id: str, number: int) -> str:
    """File name of one journal segment of a run."""
    return f"{run_id}-{number:04d}{SEGMENT_SUFFIX}"


def list_segments(journal_dir: Path) -> list[Path]:
    """Every segment file in a journal folder, oldest first (by modification time, then name)."""
    if not journal_dir.is_dir():
        return []
    stamped = []
    for path in journal_dir.iterdir():
        try:
            if path.name.endswith(SEGMENT_SUFFIX):
                stamped.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # deleted by a live run meanwhile
            continue
    return [path for _, _, path in sorted(stamped)]


class JournalWriter:
    """Appends sent markers and result rows of one run to its current segment."""

    def __init__(
        self,
        journal_dir: Path,
        run_id: str,
        *,
        flush_every: int,
        fsync_interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal_dir = journal_dir
        self.run_id = run_id
        self.flush_every = max(1, flush_every)
        self.fsync_interval_s = fsync_interval_s
        self.clock = clock
        self.in_flight: set[str] = set()
        self.segments: list[Path] = []
        self._buffer: list[str] = []
        self._fd: int | None = None
        self._last_fsync = clock()

    def open_segment(self) -> list[Path]:
        """Start a new segment (repeating in-flight markers); return the segments it follows."""
        self.flush()
        previous, self.segments = self.segments, []
        if self._fd is not None:
            os.close(self._fd)
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        path = self.journal_dir / segment_name(self.run_id, self._next_number(previous))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.segments.append(path)
        header = {"batchrun_journal": JOURNAL_VERSION, "run_id": self.run_id, "fields": RESULT_FIELDS}
        self._buffer.append(json.dumps(header) + "\n")
        self._buffer.extend(_encode((SENT, request_id)) + "\n" for request_id in self.in_flight)
        self.flush()
        return previous

    def append_sent(self, request_id: str) -> None:
        """Note that a request is about to be sent."""
        self.in_flight.add(request_id)
        self._append(_encode((SENT, request_id)) + "\n")

    def append_result(self, values: tuple[Any, ...]) -> None:
        """Append one result row (the values of RESULT_FIELDS)."""
        self.in_flight.discard(values[0])
        self._append(_encode((RESULT, *values)) + "\n")

    def flush(self) -> None:
        """Hand buffered lines to the OS; fsync when the fsync interval has passed."""
        if self._buffer and self._fd is not None:
            data = "".join(self._buffer).encode("ascii")
            self._buffer.clear()
            _write_all(self._fd, data, keep_unwritten=self._buffer)
            if self.clock() - self._last_fsync >= self.fsync_interval_s:
                self.sync()

    def sync(self) -> None:
        """Flush to the disk itself (power-loss safety), not only to the OS."""
        if self._fd is not None:
            os.fsync(self._fd)
        self._last_fsync = self.clock()

    def close(self) -> None:
        """Flush and close the current segment; the files stay until deleted."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, line: str) -> None:
        self._buffer.append(line)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def _next_number(self, previous: list[Path]) -> int:
        if not previous:
            return 0
        return int(previous[-1].name[len(self.run_id) + 1 : -len(SEGMENT_SUFFIX)]) + 1


def _write_all(fd: int, data: bytes, keep_unwritten: list[str]) -> None:
    """Write all of `data`; when a write fails (disk full), what was not written goes back into
    `keep_unwritten`, so the next flush completes a torn line instead of gluing a new one to it."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    finally:
        if view:
            keep_unwritten.append(bytes(view).decode("ascii"))


def remove_segments(paths: Iterable[Path]) -> None:
    """Delete journal segments whose rows are safely in Parquet parts."""
    for path in paths:
        path.unlink(missing_ok=True)


@dataclass
class RunJournal:
    """What one run's segments hold: result rows (values of RESULT_FIELDS) and sent ids."""

    run_id: str
    segments: list[Path] = field(default_factory=list)
    results: list[tuple[Any, ...]] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)
    skipped_lines: int = 0

    @property
    def in_flight(self) -> set[str]:
        """Requests sent but with no result in this run's journal."""
        return self.sent - {row[0] for row in self.results}


def read_journal(journal_dir: Path) -> dict[str, RunJournal]:
    """Every run's journal in a folder, in the order the runs wrote it; torn lines are skipped."""
    runs: dict[str, RunJournal] = {}
    for path in list_segments(journal_dir):
        header, lines = _read_segment(path)
        if header is None:
            log.warning("journal segment %s is gone or has no header; skipped", path)
            continue
        run = runs.setdefault(header["run_id"], RunJournal(header["run_id"]))
        run.segments.append(path)
        _decode_lines(lines, tuple(header["fields"]), run)
    return runs


def _read_segment(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        lines = path.read_bytes().decode("utf-8", "replace").split("\n")
    except FileNotFoundError:  # compacted and deleted by a live run since the folder was listed
        return None, []
    try:
        header = json.loads(lines[0])
    except ValueError:
        return None, []
    if not isinstance(header, dict) or "run_id" not in header or "fields" not in header:
        return None, []
    return header, lines[1:]


def _decode_lines(lines: list[str], written_fields: tuple[str, ...], run: RunJournal) -> None:
    to_current = _field_mapper(written_fields)
    for line in lines:
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:  # a torn last line from a killed process
            run.skipped_lines += 1
            continue
        if not isinstance(entry, list) or not entry:
            run.skipped_lines += 1
        elif entry[0] == SENT and len(entry) == 2:
            run.sent.add(entry[1])
        elif entry[0] == RESULT and len(entry) == len(written_fields) + 1:
            run.results.append(to_current(entry[1:]))
        else:
            run.skipped_lines += 1


def _field_mapper(written_fields: tuple[str, ...]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """Reorder values written under another field list into RESULT_FIELDS order (None if absent)."""
    if written_fields == RESULT_FIELDS:
        return tuple
    position = {name: i for i, name in enumerate(written_fields)}
    picks = [position.get(name) for name in RESULT_FIELDS]
    return lambda values: tuple(None if i is None else values[i] for i in picks)
