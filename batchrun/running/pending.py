"""What a run has to do, from the manifest and the results so far.

Input: the manifest (one row per expanded row: row_id, request_id, output_name) and the latest result
of every row (`Sink.latest_rows`). Output: a `Work`:
- rows without a final result (a `failed` one is pending unless told otherwise; statuses named in
  `retry` count as pending too) — in manifest order;
- of those, rows whose request already has a final reply in the results (another row's, or one a
  crash left half fanned out) are `reusable`: they take a copy of that reply, nothing is sent;
- the rest are grouped by request: the first row of each request in manifest order is sent, the
  others ride along as its `shares` and get a copy of its reply.
Columnar (pyarrow) where the manifest is large; the Python dict holds only rows that share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.outcomes import FINAL_STATUSES, Status
from batchrun.outcomes import RETRYABLE_FINAL as RETRYABLE_FINAL  # importable here
from batchrun.planning.manifest import iter_records, read_columns
from batchrun.records import RequestRecord, RowTarget


@dataclass
class Work:
    """Rows to send (their first row per request), rows riding along, rows filled from a reply."""

    send: pa.Array  # row ids, manifest order: one per request
    shares: dict[str, tuple[RowTarget, ...]] = field(default_factory=dict)  # sent row id -> other rows
    reusable: pa.Table | None = None  # row_id, output_name, source_row_id
    rows: int = 0  # pending rows in all (sent, riding along and reusable)
    kept_failed: int = 0  # failed rows not sent again (--no-retry-failed)

    @property
    def reusable_rows(self) -> int:
        return 0 if self.reusable is None else len(self.reusable)


def plan_work(manifest: Path, latest: pa.Table, *, retry_failed: bool = True,
              retry: frozenset[str] = frozenset(), only_requests: frozenset[str] | None = None) -> Work:
    """The rows of a manifest this run must finish, and how; with `only_requests` (a pilot), of those only."""
    rows = read_columns(manifest, ["row_id", "request_id"])
    if only_requests is not None:
        rows = rows.filter(pc.is_in(rows["request_id"], value_set=pa.array(sorted(only_requests), pa.string())))
    kept = (set(FINAL_STATUSES) - retry) | (set() if retry_failed else {Status.FAILED})
    done = pc.is_in(latest["status"], pa.array(sorted(kept), pa.string()))
    done_ids = latest["row_id"].filter(done).combine_chunks()  # one column: a resumed job has many
    pending = rows.filter(pc.invert(pc.is_in(rows["row_id"], value_set=done_ids)))
    kept_failed = 0 if retry_failed else int(pc.sum(pc.and_(done, pc.equal(latest["status"], Status.FAILED))).as_py() or 0)
    replies = _reusable_replies(latest, pending["request_id"], retry)
    reusable_mask = pc.is_in(pending["request_id"], value_set=replies["request_id"])
    reusable = _with_sources(_with_names(manifest, pending.filter(reusable_mask)), replies)
    send, shares = _group_by_request(manifest, pending.filter(pc.invert(reusable_mask)))
    return Work(send, shares, reusable, len(pending), kept_failed)


def _with_names(manifest: Path, rows: pa.Table) -> pa.Table:
    """`rows` with their output_name column, read only for these rows (usually none or a few)."""
    if not len(rows):
        return rows.append_column("output_name", pa.array([], pa.string()))
    names = read_columns(manifest, ["row_id", "output_name"])
    names = names.filter(pc.is_in(names["row_id"], value_set=rows["row_id"].combine_chunks()))
    return rows.join(names, "row_id", join_type="left outer", use_threads=False)


def _reusable_replies(latest: pa.Table, wanted: pa.ChunkedArray, retry: frozenset[str]) -> pa.Table:
    """One final row per wanted request_id whose reply other rows may copy (request_id, source_row_id)."""
    usable = sorted(set(FINAL_STATUSES) - retry)
    # the pending requests are few beside the results of a resumed job: filter by them first
    final = latest.filter(pc.is_in(latest["request_id"], value_set=pc.unique(wanted.combine_chunks())))
    final = final.filter(pc.is_in(final["status"], pa.array(usable, pa.string())))
    firsts = final.group_by("request_id", use_threads=False).aggregate([("row_id", "first")])
    return firsts.rename_columns(["request_id", "source_row_id"])


def _with_sources(rows: pa.Table, replies: pa.Table) -> pa.Table:
    joined = rows.join(replies, "request_id", join_type="left outer", use_threads=False)
    return joined.select(["row_id", "output_name", "source_row_id"])


def _group_by_request(manifest: Path, rows: pa.Table) -> tuple[pa.Array, dict[str, tuple[RowTarget, ...]]]:
    """The first row of each request (manifest order) and the other rows of requests made twice."""
    ids = rows["request_id"].combine_chunks()
    if pc.count_distinct(ids).as_py() == len(ids):
        return rows["row_id"].combine_chunks(), {}
    numbered = rows.append_column("i", pa.array(range(len(rows)), pa.int64()))
    firsts = numbered.group_by("request_id", use_threads=False).aggregate([("i", "min")])["i_min"]
    first_mask = pc.is_in(numbered["i"], value_set=firsts)
    send = rows.filter(first_mask)
    riders = _with_names(manifest, rows.filter(pc.invert(first_mask))).to_pydict()
    by_request = dict(zip(send["request_id"].to_pylist(), send["row_id"].to_pylist()))
    shares: dict[str, list[RowTarget]] = {}
    for request, row, name in zip(riders["request_id"], riders["row_id"], riders["output_name"]):
        shares.setdefault(by_request[request], []).append(RowTarget(row, name))
    return send["row_id"].combine_chunks(), {k: tuple(v) for k, v in shares.items()}


def iter_work(manifest: Path, work: Work, *, batch_rows: int = 2048) -> Iterator[RequestRecord]:
    """The records to send, in manifest order, each with the rows that share its reply."""
    for record in iter_records(manifest, row_ids=work.send, batch_rows=batch_rows):
        record.shares = work.shares.get(record.row_id, ())
        yield record
