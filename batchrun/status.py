"""What an output folder says about its job, read from the folder alone (no network, no spec).

Inputs: `manifest.parquet` (row_id, model), `results/part-*.parquet`, any `journal/` segments (a run
in progress, or a crash not yet recovered), `runs/*.json` and `.lock`. Output: a `StatusSummary`.

One row per expanded row (row_id) counts: the latest by finished_at, a final status beating `failed`, as the sink
keeps them. Results whose request is no longer in the manifest are counted apart, never as done.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.errors import UsageError
from batchrun.journal import RunJournal, read_journal
from batchrun.lock import lock_holder
from batchrun.manifest import read_columns
from batchrun.sink import (
    FAILED,
    FINAL_STATUSES,
    latest_row_indices,
    list_parts,
    read_parts,
    rows_to_table,
)

STATUSES = (*FINAL_STATUSES, FAILED)
TOKEN_COLUMNS = ("prompt_tokens", "output_text_tokens", "output_image_tokens", "thoughts_tokens",
                 "total_tokens")
RESULT_COLUMNS = ("row_id", "request_id", "status", "finished_at", "finish_reason", "error_kind", "cost_usd",
                  "model", *TOKEN_COLUMNS)


@dataclass
class StatusSummary:
    """Counts, spend and run state of one output folder."""

    out_dir: str
    total: int = 0
    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    pending: int = 0  # manifest requests without a final result (failed ones included)
    failed_by_error_kind: dict[str, int] = field(default_factory=dict)
    blocked_by_finish_reason: dict[str, int] = field(default_factory=dict)
    spend_usd: float = 0.0
    spend: list[dict[str, Any]] = field(default_factory=list)  # per model and status
    unpriced_results: int = 0  # results that report usage but have no cost (no price for their model)
    tokens: dict[str, int] = field(default_factory=dict)
    not_in_manifest: int = 0
    live_pid: int | None = None
    in_flight: int | None = None  # now (live run) or at the last crash
    crashed_run_id: str | None = None

    @property
    def final(self) -> int:
        return sum(self.done[status] for status in FINAL_STATUSES)

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (`json.dumps` takes it as is)."""
        return {**asdict(self), "final": self.final}


def summarize(out_dir: Path) -> StatusSummary:
    """Read an output folder and count what is done, pending, failed, blocked and spent."""
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    summary = StatusSummary(str(out_dir), total=len(manifest), live_pid=lock_holder(out_dir))
    # The journal before the parts: a row a live run moves from one to the other is seen twice, never missed.
    runs = read_journal(out_dir / "journal")
    latest = _latest_results(out_dir, runs)
    in_manifest = pc.is_in(latest["row_id"], manifest["row_id"])
    summary.not_in_manifest = len(latest) - pc.sum(in_manifest.cast(pa.int64())).as_py() if len(latest) else 0
    latest = _with_model(latest.filter(in_manifest), manifest)
    _count_statuses(summary, latest)
    _count_spend(summary, latest)
    _read_in_flight(summary, out_dir, runs)
    return summary


def _read_manifest(out_dir: Path) -> pa.Table:
    path = out_dir / "manifest.parquet"
    if not path.exists():
        raise UsageError(f"{out_dir} has no manifest.parquet: run `batchrun plan` on the job first")
    return read_columns(path, ["row_id", "model"])


def _latest_results(out_dir: Path, runs: dict[str, RunJournal]) -> pa.Table:
    """One row per row_id from the parts and any journal left by a live or crashed run."""
    tables = [read_parts(list_parts(out_dir / "results"), RESULT_COLUMNS)]
    journal_rows = [row for run in runs.values() for row in run.results]
    if journal_rows:
        tables.append(rows_to_table(journal_rows).select(list(RESULT_COLUMNS)))
    rows = pa.concat_tables(tables)
    return rows.take(latest_row_indices(rows))


def _with_model(latest: pa.Table, manifest: pa.Table) -> pa.Table:
    """Fill a result's missing model from its manifest row."""
    if latest["model"].null_count == 0:
        return latest
    planned = manifest.rename_columns(["row_id", "planned_model"])
    joined = latest.join(planned, "row_id", join_type="left outer")
    model = pc.coalesce(joined["model"], joined["planned_model"], pa.scalar("(unknown)"))
    return joined.set_column(joined.schema.get_field_index("model"), "model", model)


def _count_statuses(summary: StatusSummary, latest: pa.Table) -> None:
    for status, count in _value_counts(latest["status"]).items():
        summary.done[status] = count
    summary.pending = summary.total - summary.final
    failed = latest.filter(pc.equal(latest["status"], FAILED))
    summary.failed_by_error_kind = _value_counts(failed["error_kind"])
    blocked = latest.filter(pc.equal(latest["status"], "blocked"))
    summary.blocked_by_finish_reason = _value_counts(blocked["finish_reason"])


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column.fill_null("(none)"))
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())
    return dict(sorted(pairs, key=lambda pair: (-pair[1], pair[0])))


def _count_spend(summary: StatusSummary, latest: pa.Table) -> None:
    summary.spend_usd = pc.sum(latest["cost_usd"]).as_py() or 0.0
    has_usage = pc.or_(pc.is_valid(latest["prompt_tokens"]), pc.is_valid(latest["total_tokens"]))
    unpriced = pc.and_(has_usage, pc.is_null(latest["cost_usd"]))
    summary.unpriced_results = pc.sum(unpriced.cast(pa.int64())).as_py() or 0
    summary.tokens = {name: pc.sum(latest[name]).as_py() or 0 for name in TOKEN_COLUMNS}
    grouped = latest.group_by(["model", "status"]).aggregate([("cost_usd", "sum"), ("row_id", "count")])
    rows = grouped.rename_columns(["model", "status", "cost_usd", "results"]).to_pylist()
    for row in rows:
        row["cost_usd"] = row["cost_usd"] or 0.0
    summary.spend = sorted(rows, key=lambda row: (row["model"], row["status"]))


def _read_in_flight(summary: StatusSummary, out_dir: Path, runs: dict[str, RunJournal]) -> None:
    """Requests in flight now (live run), at a crash not yet recovered, or at the last run's crash."""
    if runs:
        answered = {row[0] for run in runs.values() for row in run.results}
        summary.in_flight = len(set().union(*(run.sent for run in runs.values())) - answered)
        summary.crashed_run_id = None if summary.live_pid else list(runs)[-1]
        return
    last = last_run_record(out_dir / "runs")
    if last and last.get("crashed"):
        summary.in_flight, summary.crashed_run_id = last.get("in_flight_at_crash"), last.get("run_id")
    elif last and (last.get("recovered") or {}).get("crashed_run_id"):
        summary.in_flight = last["recovered"]["in_flight_at_crash"]
        summary.crashed_run_id = last["recovered"]["crashed_run_id"]


def last_run_record(runs_dir: Path) -> dict[str, Any] | None:
    """The summary of the run that wrote `runs/` last, or None."""
    records = []
    for path in runs_dir.glob("*.json") if runs_dir.is_dir() else ():
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # a summary being replaced right now
            continue
    return max(records, key=lambda record: record.get("written_at") or 0, default=None)


def format_status(summary: StatusSummary) -> str:
    """The summary as a plain-text table."""
    live = f"  (run in progress, pid {summary.live_pid})" if summary.live_pid else ""
    failed = summary.done[FAILED]
    lines = [
        summary.out_dir + live,
        _row("requests", summary.total),
        _row("done", summary.final, ", ".join(f"{s} {summary.done[s]:,}" for s in FINAL_STATUSES)),
        _row("pending", summary.pending, f"failed {failed:,}, never sent {summary.pending - failed:,}"),
    ]
    lines += [_row(f"  failed: {kind}", count) for kind, count in summary.failed_by_error_kind.items()]
    lines += [_row(f"  blocked: {reason}", n) for reason, n in summary.blocked_by_finish_reason.items()]
    unpriced = f"   {summary.unpriced_results:,} results without a price" if summary.unpriced_results else ""
    lines.append(f"{'spend':<24}{'$' + format(summary.spend_usd, ',.4f'):>16}{unpriced}")
    lines += [f"  {row['model'] + ' ' + row['status']:<22}{'$' + format(row['cost_usd'], ',.4f'):>16}"
              f"   {row['results']:,} results" for row in summary.spend]
    tokens = (f"{name.removesuffix('_tokens')} {count:,}" for name, count in summary.tokens.items())
    lines.append("tokens  " + ", ".join(tokens))
    return "\n".join(lines + _notes(summary))


def _row(label: str, count: int, detail: str = "") -> str:
    return f"{label:<24}{count:>16,}" + (f"   {detail}" if detail else "")


def _notes(summary: StatusSummary) -> list[str]:
    notes = []
    if summary.not_in_manifest:
        notes.append(f"{summary.not_in_manifest:,} results belong to requests no longer in the manifest")
    if summary.in_flight is not None and summary.live_pid:
        notes.append(f"in flight now: {summary.in_flight:,}")
    elif summary.in_flight is not None:
        notes.append(f"in flight at the crash of run {summary.crashed_run_id}: {summary.in_flight:,} "
                     f"(sent again on resume; they may have been billed twice)")
    return notes
