"""What an output folder says about its job, read from the folder alone (no network, no spec).

Inputs: `manifest.parquet` (row_id, model), `results/part-*.parquet`, any `journal/` segments (a run
in progress, or a crash not yet recovered), `runs/*.json`, `.lock`, and the live run's
`runs/<run_id>.live.json` (whether it is paused, see `batchrun.output.live`). Output: a `StatusSummary`.

One row per expanded row (row_id) counts: the latest by finished_at, a final status beating `failed`,
as the sink keeps them. Results whose row is no longer in the manifest are counted apart, never as
done, but their cost is in the spend: it is `batchrun.output.spend`'s, the figure the run's budget and
`estimate` use. Every non-ok status is broken down by error kind (blocked: by finish reason and error
kind), each with a count and one result's error message as an example.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.cost.pricing import PriceCatalog
from batchrun.errors import UsageError, duration_text
from batchrun.outcomes import FINAL_STATUSES, STATUSES, Status
from batchrun.output.journal import RunJournal, read_journal
from batchrun.output.live import LIVE_SUFFIX, read_live_pause
from batchrun.output.lock import lock_holder
from batchrun.output.mirror import shown_output
from batchrun.output.progress import parked_text, paused_text
from batchrun.output.spend import latest_results, spend_of
from batchrun.planning.manifest import MANIFEST_NAME, read_columns
from batchrun.planning.versioning import earlier_row_ids
from batchrun.planning.versions import read_versions

TOKEN_COLUMNS = ("prompt_tokens", "output_text_tokens", "output_image_tokens", "thoughts_tokens",
                 "total_tokens")
RESULT_COLUMNS = ("row_id", "request_id", "status", "finished_at", "finish_reason", "error_kind", "error_message",
                  "cost_usd", "model", *TOKEN_COLUMNS, "service_tier", "shared_from")
# What each non-ok status is broken down by, in the order `status` shows them.
PROBLEM_KEYS = {Status.FAILED: ("error_kind",), Status.INVALID: ("error_kind",),
                Status.BLOCKED: ("finish_reason", "error_kind")}
NONE = "(none)"
EXAMPLE_CHARS = 120  # of an example message in the text output; JSON has it whole


@dataclass
class StatusSummary:
    """Counts, spend and run state of one output folder."""

    out_dir: str
    total: int = 0
    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    pending: int = 0  # manifest requests without a final result (failed ones included)
    failed_by_error_kind: dict[str, int] = field(default_factory=dict)
    blocked_by_finish_reason: dict[str, int] = field(default_factory=dict)
    # status -> [{error_kind (blocked: and finish_reason), count, example}], most frequent first
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    spend_usd: float = 0.0  # every result's, in the manifest or not: what the run's budget counts
    spend: list[dict[str, Any]] = field(default_factory=list)  # per model and status, manifest results only
    unpriced_results: int = 0  # results that report usage but have no cost (no price for their model)
    tokens: dict[str, int] = field(default_factory=dict)
    not_in_manifest: int = 0
    not_in_manifest_spend_usd: float = 0.0
    earlier_versions: int = 0  # results of rejected versions `batchrun redo` replaced (kept, not in the counts)
    earlier_versions_spend_usd: float = 0.0
    spec_changed: bool = False  # the spec or its inputs changed since the manifest was planned
    live_pid: int | None = None
    in_flight: int | None = None  # now (live run) or at the last crash
    crashed_run_id: str | None = None
    pause: dict[str, Any] | None = None  # the live run's pause now: until (epoch s), left_s, reason
    batches: list[dict[str, Any]] = field(default_factory=list)  # --tier batch: one per chunk of the ledger
    # per stratum: done requests, expected before the run, the pilot's projection, actual (batchrun.cost.versus)
    estimate_vs_actual: dict[str, Any] | None = None

    @property
    def final(self) -> int:
        return sum(self.done[status] for status in FINAL_STATUSES)

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (`json.dumps` takes it as is), money rounded to 6 decimals."""
        document = {**asdict(self), "final": self.final}
        document["spend_usd"] = round(self.spend_usd, 6)
        document["not_in_manifest_spend_usd"] = round(self.not_in_manifest_spend_usd, 6)
        document["earlier_versions_spend_usd"] = round(self.earlier_versions_spend_usd, 6)
        document["spend"] = [{**row, "cost_usd": round(row["cost_usd"], 6)} for row in self.spend]
        return document


def summarize(out_dir: Path, *, spec_changed: bool = False, now: float | None = None,
              catalog: PriceCatalog | None = None) -> StatusSummary:
    """Read an output folder and count what is done, pending, failed, blocked and spent.

    `now`: the wall clock (seconds since the epoch) a live run's pause is measured against; `catalog`: the
    prices the estimate against actual is worked out with (None: the shipped ones).
    """
    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    summary = StatusSummary(shown_output(out_dir), total=len(manifest), live_pid=lock_holder(out_dir),
                            spec_changed=spec_changed)
    runs = read_journal(out_dir / "journal")
    latest = latest_results(out_dir, RESULT_COLUMNS, runs)
    _count_all_spend(summary, latest, manifest["row_id"])
    _count_earlier_versions(summary, latest, out_dir)
    _read_estimate_check(summary, out_dir, latest, catalog)
    latest = _with_model(latest.filter(pc.is_in(latest["row_id"], manifest["row_id"])), manifest)
    _count_statuses(summary, latest)
    _count_spend(summary, latest)
    _read_in_flight(summary, out_dir, runs)
    _read_pause(summary, out_dir, time.time() if now is None else now)
    _read_batches(summary, out_dir, time.time() if now is None else now)
    return summary


def _read_estimate_check(summary: StatusSummary, out_dir: Path, latest: pa.Table,
                         catalog: PriceCatalog | None) -> None:
    from batchrun.cost.versus import estimate_check

    check = estimate_check(out_dir / MANIFEST_NAME, out_dir, catalog, latest=latest)
    summary.estimate_vs_actual = None if check is None else check.to_json()


def _read_batches(summary: StatusSummary, out_dir: Path, now: float) -> None:
    from batchrun.batching.listing import batch_lines

    summary.batches = [asdict(line) for line in batch_lines(out_dir, now)]


def _read_pause(summary: StatusSummary, out_dir: Path, now: float) -> None:
    """Whether the live run is holding back every request now, until when and why."""
    if not summary.live_pid:
        return
    pause = read_live_pause(out_dir, summary.live_pid, now)
    if pause is not None:
        summary.pause = {"until": pause.until, "left_s": round(pause.left_s(now), 1), "reason": pause.reason,
                         "parked": pause.parked}


def _read_manifest(out_dir: Path) -> pa.Table:
    path = out_dir / "manifest.parquet"
    if not path.exists():
        raise UsageError(f"{shown_output(out_dir)} has no manifest.parquet: run `batchrun plan` on the job first")
    return read_columns(path, ["row_id", "model"])


def _count_all_spend(summary: StatusSummary, latest: pa.Table, manifest_ids: pa.ChunkedArray) -> None:
    """Spend of every result and of those no longer in the manifest, and how many results lack a price."""
    spend = spend_of(latest, manifest_ids)
    summary.spend_usd = spend.usd
    summary.not_in_manifest, summary.not_in_manifest_spend_usd = (spend.not_in_manifest_results,
                                                                  spend.not_in_manifest_usd)
    has_usage = pc.or_(pc.is_valid(latest["prompt_tokens"]), pc.is_valid(latest["total_tokens"]))
    unpriced = pc.and_(has_usage, pc.is_null(latest["cost_usd"]))
    summary.unpriced_results = pc.sum(unpriced.cast(pa.int64())).as_py() or 0


def _count_earlier_versions(summary: StatusSummary, latest: pa.Table, out_dir: Path) -> None:
    """Results of versions `batchrun redo` replaced: counted apart from results no longer in the manifest."""
    earlier = earlier_row_ids(read_versions(out_dir))
    if not earlier:
        return
    rows = latest.filter(pc.is_in(latest["row_id"], value_set=pa.array(sorted(earlier), pa.string())))
    summary.earlier_versions = len(rows)
    summary.earlier_versions_spend_usd = float(pc.sum(rows["cost_usd"]).as_py() or 0.0)
    summary.not_in_manifest = max(summary.not_in_manifest - summary.earlier_versions, 0)
    summary.not_in_manifest_spend_usd = max(summary.not_in_manifest_spend_usd - summary.earlier_versions_spend_usd, 0.0)


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
    failed = latest.filter(pc.equal(latest["status"], Status.FAILED))
    summary.failed_by_error_kind = _value_counts(failed["error_kind"])
    blocked = latest.filter(pc.equal(latest["status"], Status.BLOCKED))
    summary.blocked_by_finish_reason = _value_counts(blocked["finish_reason"])
    summary.problems = {status: _problems(latest, status, keys) for status, keys in PROBLEM_KEYS.items()}


def _problems(latest: pa.Table, status: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Results of one status grouped by `keys`: each group's count and one error message as an example."""
    rows = latest.filter(pc.equal(latest["status"], status))
    rows = pa.table({**{key: rows[key].fill_null(NONE) for key in keys}, "message": rows["error_message"]})
    grouped = rows.group_by(list(keys), use_threads=False).aggregate([("message", "first"), ([], "count_all")])
    groups = [{**{key: group[key] for key in keys}, "count": group["count_all"], "example": group["message_first"]}
              for group in grouped.to_pylist()]
    return sorted(groups, key=lambda group: (-group["count"], *(group[key] for key in keys)))


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column.fill_null("(none)"))
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())
    return dict(sorted(pairs, key=lambda pair: (-pair[1], pair[0])))


def _count_spend(summary: StatusSummary, latest: pa.Table) -> None:
    """Tokens, and spend per model and status, of the manifest's results."""
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
        if path.name.endswith(LIVE_SUFFIX):  # a live run's state, not a run's summary
            continue
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # a summary being replaced right now
            continue
    return max(records, key=lambda record: record.get("written_at") or 0, default=None)


def format_status(summary: StatusSummary) -> str:
    """The summary as a plain-text table."""
    live = f"  (run in progress, pid {summary.live_pid})" if summary.live_pid else ""
    failed = summary.done[Status.FAILED]
    lines = [summary.out_dir + live]
    if summary.spec_changed:
        lines.append("the spec changed since the last plan: counts are for the old manifest; "
                     "`batchrun plan` refreshes it")
    lines += [
        _row("rows", summary.total),
        _row("done", summary.final, ", ".join(f"{s} {summary.done[s]:,}" for s in FINAL_STATUSES)),
        _row("pending", summary.pending, f"failed {failed:,}, never sent {summary.pending - failed:,}"),
    ]
    for status, groups in summary.problems.items():
        lines += [line for group in groups for line in _problem_lines(status, group)]
    lines.append(_spend_line(summary))
    lines += [f"  {row['model'] + ' ' + row['status']:<22}{'$' + format(row['cost_usd'], ',.4f'):>16}"
              f"   {row['results']:,} results" for row in summary.spend]
    tokens = (f"{name.removesuffix('_tokens')} {count:,}" for name, count in summary.tokens.items())
    lines.append("tokens  " + ", ".join(tokens))
    lines += _estimate_lines(summary.estimate_vs_actual)
    lines += _batch_lines(summary.batches)
    return "\n".join(lines + _notes(summary))


def _estimate_lines(check: dict[str, Any] | None) -> list[str]:
    """Estimate against actual per stratum, as `batchrun.cost.versus` words it."""
    from batchrun.cost.versus import EstimateCheck

    return [] if check is None else EstimateCheck.from_json(check).lines()


def _batch_lines(batches: list[dict[str, Any]]) -> list[str]:
    """One line per batch of a `--tier batch` run: chunk, batch, state, requests, age, results collected,
    the time left before the server expires a batch still running, and the variable of its key."""
    if not batches:
        return []
    lines = [f"batches {len(batches):,}"]
    for batch in batches:
        age = "" if batch["age_s"] is None else f", age {duration_text(batch['age_s'])}"
        collected = "" if batch["collected"] is None else f", {batch['collected']:,} results collected"
        expires = batch.get("expires_in_s")
        collected += "" if expires is None else f", expires in {duration_text(expires)}"
        collected += f", key in {batch['key']}" if batch.get("key") else ""
        lines.append(f"  {batch['chunk']}  {batch['batch'] or '(not created)'}  {batch['state']}, "
                     f"{batch['requests']:,} request{'' if batch['requests'] == 1 else 's'}{age}{collected}")
    return lines


def _row(label: str, count: int, detail: str = "") -> str:
    return f"{label:<24}{count:>16,}" + (f"   {detail}" if detail else "")


def _problem_lines(status: str, group: dict[str, Any]) -> list[str]:
    """`  failed: timeout   3`, and under it one example message cut to EXAMPLE_CHARS."""
    label = group.get("finish_reason", NONE)
    if label == NONE:
        label = group["error_kind"]
    lines = [_row(f"  {status}: {label}", group["count"])]
    if group["example"]:
        lines.append(f"      e.g. {_cut(group['example'], EXAMPLE_CHARS)}")
    return lines


def _cut(message: str, chars: int) -> str:
    one_line = " ".join(message.split())
    return one_line if len(one_line) <= chars else one_line[: chars - 1] + "…"


def _spend_line(summary: StatusSummary) -> str:
    details = []
    if summary.earlier_versions:
        details.append(f"(${summary.earlier_versions_spend_usd:,.4f} on {summary.earlier_versions:,} rejected "
                       "earlier versions, kept beside the redone rows)")
    if summary.not_in_manifest_spend_usd or summary.not_in_manifest:
        details.append(f"(${summary.not_in_manifest_spend_usd:,.4f} on {summary.not_in_manifest:,} results no "
                       f"longer in the manifest: the spec changed since they ran)")
    if summary.unpriced_results:
        details.append(f"{summary.unpriced_results:,} results without a price")
    detail = "   " + "; ".join(details) if details else ""
    return f"{'spend':<24}{'$' + format(summary.spend_usd, ',.4f'):>16}{detail}"


def _notes(summary: StatusSummary) -> list[str]:
    notes = []
    if summary.pause is not None and summary.pause.get("parked"):
        notes.append(f"{parked_text(summary.pause['until'])}: {duration_text(summary.pause['left_s'])} left")
    elif summary.pause is not None:
        notes.append(paused_text(summary.pause["left_s"], summary.pause["reason"]))
    if summary.in_flight is not None and summary.live_pid:
        notes.append(f"in flight now: {summary.in_flight:,}")
    elif summary.in_flight is not None:
        notes.append(f"in flight at the crash of run {summary.crashed_run_id}: {summary.in_flight:,} "
                     f"(sent again on resume; they may have been billed twice)")
    return notes
