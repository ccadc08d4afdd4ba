"""The sink: where results become durable. It knows files, not HTTP.

Inputs: `ResultRecord`s and image bytes from the runner. Outputs, under an output folder:
`images/<output_name>.<ext>`, `journal/*.jsonl` (see `batchrun.output.journal`), `results/part-NNNNNN.parquet`
(every part with `RESULT_SCHEMA`; `batchrun.output.results` reads them), `runs/<run_id>.json` (what each run did, and what a crash left
in flight), and `.lock` (the pid of the one run writing the folder).

Invariants:
- An image file is complete on disk (temp file, then `os.replace`) before its row is written.
- A row is in the journal, handed to the OS, within `flush_every` rows or at `flush()`; it reaches a
  Parquet part (temp file, fsync, `os.replace`) before its journal segment is deleted. A crash between
  the two leaves a row twice; recovery keeps one (same row_id and finished_at).
- After `open()` and after `close()` the parts hold exactly one row per row_id: the latest by
  finished_at, a final status (ok, blocked, invalid) always beating `failed`.
- In a folder mirrored to a bucket (`batchrun.output.mirror`), a push starts in the background at
  `open()`, and every `upload_every_s` pending rows are compacted into a part and another push starts:
  what a lost machine loses is what arrived since the last one.
- Power loss is covered only up to the last fsync: journal segments every `fsync_interval_s`, parts
  when written. Image files are not fsynced one by one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.outcomes import FINAL_STATUSES, Status
from batchrun.output.images import (
    ImageFile,
    _remove_temp_images,
    image_extension,
    image_relative_path,
    write_image_file,
)
from batchrun.output.journal import (
    RESULT_FIELDS,
    JournalWriter,
    list_segments,
    read_journal,
    remove_segments,
    result_values,
)
from batchrun.output.lock import acquire_lock, release_lock
from batchrun.output.mirror import Mirror, UploadSchedule
from batchrun.output.results import (  # the reader's names stay importable from here
    INDEX_COLUMNS,
    PART_PREFIX,
    RESULT_SCHEMA,
    final_and_failed_ids,
    has_repeated_ids,
    latest_row_indices,
    list_parts,
    pending_ids,
    read_parts,
    rows_to_table,
)
from batchrun.records import ResultRecord

log = logging.getLogger(__name__)

FAILED = Status.FAILED  # FINAL_STATUSES and FAILED stay importable from here
__all__ = ["FAILED", "FINAL_STATUSES", "INDEX_COLUMNS", "PART_PREFIX", "RESULT_SCHEMA", "ImageFile", "Recovery",
           "Sink", "final_and_failed_ids", "latest_row_indices", "list_parts", "pending_ids", "read_parts",
           "rows_to_table", "supersede", "write_part"]
_RUN_ID_POS = RESULT_FIELDS.index("run_id")


@dataclass(frozen=True, slots=True)
class Recovery:
    """What `Sink.open` found of a crashed run."""

    recovered_rows: int
    in_flight_at_crash: int
    crashed_run_id: str | None


# ---------------------------------------------------------------- writing parts


def write_part(table: pa.Table, path: Path) -> None:
    """Write a part atomically and durably: temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as sink_file:
        pq.write_table(table, sink_file)
        sink_file.flush()
        os.fsync(sink_file.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a file just renamed or created in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def supersede(results_dir: Path) -> int:
    """Rewrite only the parts holding superseded rows, so one row per row_id is left."""
    parts = list_parts(results_dir)
    index = read_parts(parts, with_positions=True)
    keep = latest_row_indices(index)
    if len(keep) == len(index):
        return 0
    losers = index.filter(pc.invert(pc.is_in(pa.array(range(len(index)), pa.int64()), keep)))
    for number in pc.unique(losers["part"]).to_pylist():
        drop = losers.filter(pc.equal(losers["part"], number))["row"]
        _rewrite_without(parts[number], drop)
    log.info("superseded %d older rows in %s", len(losers), results_dir)
    return len(losers)


def _rewrite_without(path: Path, drop_rows: pa.ChunkedArray) -> None:
    table = pq.read_table(path, schema=RESULT_SCHEMA)
    kept = table.filter(pc.invert(pc.is_in(pa.array(range(len(table)), pa.int64()), drop_rows)))
    if len(kept):
        write_part(kept, path)
    else:
        path.unlink()


# ---------------------------------------------------------------- the sink


class Sink:
    """Durable home of one run's results in an output folder; used from one thread."""

    def __init__(self, out_dir: Path, *, run_id: str, part_rows: int = 50_000, flush_every: int = 256,
                 fsync_interval_s: float = 5.0, clock=time.time, mirror: Mirror | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.run_id = run_id
        self.part_rows = part_rows
        self.clock = clock
        self.results_dir = self.out_dir / "results"
        self.journal_dir = self.out_dir / "journal"
        self._journal = JournalWriter(self.journal_dir, run_id, flush_every=flush_every,
                                      fsync_interval_s=fsync_interval_s, clock=clock)
        self._prior_index = read_parts([])  # rows in parts when the run opened: one per row_id
        self._run_index: list[pa.Table] = []  # rows this run compacted into parts
        self._pending: list[tuple[Any, ...]] = []  # rows this run journaled, not yet in a part
        self._next_part = 0
        self._recovery = Recovery(0, 0, None)
        self._lock: Path | None = None
        self.run_facts: dict[str, Any] = {}  # added to this run's summary in runs/ (endpoint, models)
        self._owns_lock = True
        self._uploads = UploadSchedule(mirror, clock, mirror.upload_every_s) if mirror is not None else None

    def open(self, held_lock: Path | None = None) -> Recovery:
        """Lock the folder (or use the caller's `held_lock`), recover a crashed run's journal, start this run's."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._owns_lock = held_lock is None  # a lock the caller holds is the caller's to release
        self._lock = held_lock or acquire_lock(self.out_dir)
        try:
            recovery = self._open_locked()
        except BaseException:
            self._release_lock()
            raise
        if self._uploads is not None:  # the manifest (and a recovered part) start going up as the run starts
            self._uploads.mirror.push_soon()
        return recovery

    def _open_locked(self) -> Recovery:
        self.results_dir.mkdir(exist_ok=True)
        for tmp in self.results_dir.glob("*.tmp"):
            tmp.unlink()
        index = read_parts(list_parts(self.results_dir))
        self._recovery, index = self._recover(index)
        # A clean close leaves one row per row_id and no journal; only a crash can leave more.
        # The journal goes only after superseding, so a crash in between brings both back here.
        if self._recovery.crashed_run_id is not None and has_repeated_ids(index):
            supersede(self.results_dir)
            index = read_parts(list_parts(self.results_dir))
        remove_segments(list_segments(self.journal_dir))
        self._prior_index = index
        self._journal.open_segment()
        return self._recovery

    def final_ids(self) -> pa.Array:
        """Request ids whose latest row is final (ok, blocked, invalid)."""
        return self._final_and_failed()[0]

    def spent_usd(self) -> float:
        """What every result of the folder cost: after `open()` the parts hold one row per row_id, so a
        plain sum over them is `spend.job_spend` without the work of finding the latest rows."""
        parts = read_parts(list_parts(self.results_dir), ("cost_usd",))
        return float(pc.sum(parts["cost_usd"]).as_py() or 0.0)

    def latest_rows(self) -> pa.Table:
        """The latest row of each row_id (row_id, request_id, status, finished_at)."""
        if not self._run_index and not self._pending:
            return self._prior_index
        rows = pa.concat_tables([self._prior_index, self._run_rows()])
        return rows.take(latest_row_indices(rows))

    def failed_ids(self) -> pa.Array:
        """Request ids whose latest row is `failed` (sent again by the next run unless told not to)."""
        return self._final_and_failed()[1]

    def record_sent(self, request_id: str) -> None:
        """Note in the journal that a request is about to be sent (buffered)."""
        self._journal.append_sent(request_id)

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile:
        """Write a reply's image before its row; safe to call from a worker thread."""
        relative = image_relative_path(output_name, row_id, image_extension(mime, data))
        return write_image_file(self.out_dir, data, mime, relative)

    def write_result(self, result: ResultRecord) -> None:
        """Append a result to the journal; compact into a part once `part_rows` rows are pending."""
        values = result_values(result)
        if values[_RUN_ID_POS] is None:
            values = (*values[:_RUN_ID_POS], self.run_id, *values[_RUN_ID_POS + 1:])
        self._journal.append_result(values)
        self._pending.append(values)
        if len(self._pending) >= self.part_rows or self._upload_due():
            self._compact()
            if self._uploads is not None:
                self._uploads.mirror.push_soon()

    def flush(self) -> None:
        """Hand buffered journal lines to the OS; fsync if `fsync_interval_s` has passed."""
        self._journal.flush()

    def close(self) -> None:
        """Compact what is pending, supersede older rows, remove the journal, release the lock it took.

        The lock is released even when a write fails (an OSError propagates): the journal then
        stays, and the next run recovers its rows.
        """
        if self._lock is None:
            return
        if self._uploads is not None:
            self._uploads.mirror.wait()  # a part is superseded only once no push is reading it
        try:
            self._compact()
            in_flight = len(self._journal.in_flight)
            self._journal.close()
            if self._run_repeats_ids():
                supersede(self.results_dir)
            remove_segments(self._journal.segments)
            rows_written = sum(len(table) for table in self._run_index)
            self._write_run_summary(self.run_id, {"rows_written": rows_written, "in_flight_at_close": in_flight,
                                                  "recovered": asdict(self._recovery), **self.run_facts})
        finally:
            with contextlib.suppress(OSError):  # already reported by the write that failed
                self._journal.close()
            self._release_lock()

    def _upload_due(self) -> bool:
        return self._uploads is not None and self._uploads.due()

    def _release_lock(self) -> None:
        if self._owns_lock and self._lock is not None:
            release_lock(self._lock)
        self._lock = None

    # -- internals

    def _run_rows(self) -> pa.Table:
        pending = rows_to_table(self._pending).select(list(INDEX_COLUMNS))
        return pa.concat_tables([*self._run_index, pending])

    def _final_and_failed(self) -> tuple[pa.Array, pa.Array]:
        if not self._run_index and not self._pending:
            return final_and_failed_ids(self._prior_index, one_row_per_id=True)
        return final_and_failed_ids(pa.concat_tables([self._prior_index, self._run_rows()]))

    def _run_repeats_ids(self) -> bool:
        """Whether a row of this run has the row_id of an older row (which it then supersedes)."""
        run_rows = self._run_rows()
        if has_repeated_ids(run_rows):
            return True
        run_ids = run_rows["row_id"].combine_chunks()
        return pc.any(pc.is_in(self._prior_index["row_id"], value_set=run_ids)).as_py() or False

    def _compact(self) -> None:
        if not self._pending:
            return
        table = rows_to_table(self._pending)
        compacted = self._journal.open_segment()
        path = self._write_new_part(table)
        remove_segments(compacted)
        self._run_index.append(table.select(list(INDEX_COLUMNS)))
        self._pending = []
        log.info("wrote %s (%d rows)", path.name, len(table))

    def _write_new_part(self, table: pa.Table) -> Path:
        if not self._next_part:
            self._next_part = self._part_number_after(list_parts(self.results_dir))
        path = self.results_dir / f"{PART_PREFIX}{self._next_part:06d}.parquet"
        write_part(table, path)
        self._next_part += 1
        return path

    @staticmethod
    def _part_number_after(parts: list[Path]) -> int:
        if not parts:
            return 1
        return int(parts[-1].stem[len(PART_PREFIX):]) + 1

    def _recover(self, index: pa.Table) -> tuple[Recovery, pa.Table]:
        """Put a crashed run's journaled rows into a part; return what was found and the new index."""
        runs = read_journal(self.journal_dir)
        if not runs:  # no journal, or only segments killed before their header was written
            return Recovery(0, 0, None), index
        _remove_temp_images(self.out_dir / "images")
        rows = [row for run in runs.values() for row in run.results]
        fresh = _rows_not_in_parts(rows, index)
        if fresh:
            table = rows_to_table(fresh)
            self._write_new_part(table)
            index = pa.concat_tables([index, table.select(list(INDEX_COLUMNS))])
        answered = {row[0] for row in rows}
        in_flight = set().union(*(run.sent for run in runs.values())) - answered
        crashed = list(runs)[-1]
        self._write_run_summary(crashed, {"crashed": True, "recovered_by": self.run_id,
                                          "recovered_rows": len(fresh), "in_flight_at_crash": len(in_flight)})
        log.warning("recovered %d rows of crashed run %s; %d requests were in flight and are sent again",
                    len(fresh), crashed, len(in_flight))
        return Recovery(len(fresh), len(in_flight), crashed), index

    def _write_run_summary(self, run_id: str, facts: dict[str, Any]) -> None:
        runs_dir = self.out_dir / "runs"
        runs_dir.mkdir(exist_ok=True)
        path = runs_dir / f"{run_id}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"run_id": run_id, "written_at": self.clock(), **facts}, indent=2) + "\n")
        os.replace(tmp, path)


def _rows_not_in_parts(rows: list[tuple[Any, ...]], index: pa.Table) -> list[tuple[Any, ...]]:
    """Journal rows not already in a part (same row_id and finished_at), each kept once."""
    if not rows:
        return []
    table = rows_to_table(rows)
    keys = list(zip(table["row_id"].to_pylist(), table["finished_at"].cast(pa.int64()).to_pylist()))
    ids = pa.array({key[0] for key in keys}, pa.string())
    known = index.filter(pc.is_in(index["row_id"], ids))
    seen = set(zip(known["row_id"].to_pylist(), known["finished_at"].cast(pa.int64()).to_pylist()))
    fresh = []
    for key, row in zip(keys, rows):
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    return fresh
