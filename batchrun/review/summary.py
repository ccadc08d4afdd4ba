"""The run summary a report shows, from an output folder alone (no spec, no network).

Inputs: `manifest.parquet` (row_id), the latest result of each row (`results/part-*.parquet` and any
`journal/`, as `batchrun.output.spend.latest_results` keeps them), `runs/*.json` (each run's start, end,
stop reason, counts, retries and 429s; records written before 0.5 lack the last four) and
`calibration.json` (the estimate before the run against the actual, per model; per stratum from
`batchrun.cost.versus`, with the pilot's `projection.json` when there is one). Output: a `RunSummary`
and its `to_json()`.

Counts are per manifest row (`pending`: no result yet); spend, tokens, latency and the time series are
over every latest result, in the manifest or not, as `batchrun status` counts spend. A result's tier is
the one that served it, else the one its run asked for. Percentiles are nearest-rank: the smallest
value with at least that share of values at or below it. The series are buckets of `bucket_s` seconds
by each result's finish time, only the buckets that hold a result, with the spend so far at each.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.cost.estimate import CALIBRATION_FILE  # written after each run
from batchrun.errors import UsageError
from batchrun.outcomes import STATUSES
from batchrun.output.live import LIVE_SUFFIX
from batchrun.output.mirror import shown_output
from batchrun.output.spend import latest_results
from batchrun.planning.manifest import MANIFEST_NAME, read_columns
from batchrun.review.columns import PENDING

TOKEN_COLUMNS = ("prompt_tokens", "cached_tokens", "output_text_tokens", "output_image_tokens",
                 "thoughts_tokens", "total_tokens")
COLUMNS = ("row_id", "request_id", "status", "finished_at", "error_kind", "cost_usd", "model", "service_tier",
           "run_id", "latency_ms", "attempts", *TOKEN_COLUMNS)
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
UNKNOWN = "(unknown)"
NONE = "(none)"


@dataclass
class RunSummary:
    """Counts, cost, tokens, latency, retries, runs and series of one output folder."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # ok, blocked, invalid, failed, pending
    by_error_kind: dict[str, int] = field(default_factory=dict)  # rows whose latest result names one
    cost_usd: float = 0.0
    cost_by_model: dict[str, float] = field(default_factory=dict)
    cost_by_tier: dict[str, float] = field(default_factory=dict)
    estimate: list[dict[str, Any]] = field(default_factory=list)  # per model: expected_usd, actual_usd, ratio
    estimate_strata: dict[str, Any] | None = None  # per stratum: batchrun.cost.versus.EstimateCheck.to_json()
    tokens: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, int | None] = field(default_factory=dict)  # p50, p95, p99
    retries: int = 0  # attempts past the first, over the latest results
    rate_limited: int | None = None  # 429 replies, from the run records (None: no record counts them)
    runs: list[dict[str, Any]] = field(default_factory=list)
    throughput: list[dict[str, Any]] = field(default_factory=list)  # {t, results}
    spend: list[dict[str, Any]] = field(default_factory=list)  # {t, cost_usd, cumulative_usd}
    bucket_s: int = 60

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (`json.dumps` takes it as is), money rounded to 6 decimals."""
        document = asdict(self)
        document["cost_usd"] = _money(self.cost_usd)
        document["cost_by_model"] = {k: _money(v) for k, v in self.cost_by_model.items()}
        document["cost_by_tier"] = {k: _money(v) for k, v in self.cost_by_tier.items()}
        return document


def summarize_run(out_dir: Path, *, bucket_s: int = 60) -> RunSummary:
    """Read an output folder and sum up what its runs did; UsageError when nothing was planned there."""
    out_dir = Path(out_dir)
    manifest_ids = _manifest_ids(out_dir)
    latest = latest_results(out_dir, COLUMNS)
    runs = read_run_records(out_dir / "runs")
    summary = RunSummary(rows=len(manifest_ids), bucket_s=bucket_s)
    in_manifest = latest.filter(pc.is_in(latest["row_id"], value_set=manifest_ids))
    summary.by_status = status_counts(in_manifest, len(manifest_ids))
    summary.by_error_kind = _value_counts(in_manifest["error_kind"].drop_null())
    summary.cost_usd = _sum(latest["cost_usd"])
    summary.cost_by_model = _cost_by(latest, latest["model"])
    summary.cost_by_tier = _cost_by(latest, _tiers(latest, runs))
    summary.estimate = read_estimate(out_dir)
    summary.estimate_strata = estimate_strata(out_dir)
    summary.tokens = {name: int(_sum(latest[name])) for name in TOKEN_COLUMNS}
    summary.latency_ms = percentiles(latest["latency_ms"])
    summary.retries = int(_sum(pc.subtract(latest["attempts"].cast(pa.int64()), 1)))
    summary.rate_limited = _sum_known(runs, "rate_limited")
    summary.runs = [run_line(record) for record in runs]
    summary.throughput, summary.spend = time_series(latest, bucket_s)
    return summary


def _manifest_ids(out_dir: Path) -> pa.Array:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        raise UsageError(f"{shown_output(out_dir)} has no {MANIFEST_NAME}: nothing was planned yet; run `batchrun plan` on the job first")
    return read_columns(path, ["row_id"])["row_id"].combine_chunks()


# ---------------------------------------------------------------- counts and sums


def status_counts(latest: pa.Table, rows: int) -> dict[str, int]:
    """Rows per status, every status named (0 when none); `pending` for rows with no result."""
    counts = dict.fromkeys([*STATUSES, PENDING], 0)
    counts.update(_value_counts(latest["status"]))
    counts[PENDING] = rows - len(latest)
    return {str(status): count for status, count in counts.items()}


def _value_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    counts = pc.value_counts(column).to_pylist() if len(column) else []
    pairs = sorted(((row["values"], row["counts"]) for row in counts), key=lambda pair: (-pair[1], pair[0]))
    return dict(pairs)


def _cost_by(latest: pa.Table, keys: pa.ChunkedArray | pa.Array) -> dict[str, float]:
    """Summed cost per key (a missing key: `(unknown)`), largest first; results without a cost add 0."""
    table = pa.table({"key": pc.fill_null(keys, UNKNOWN), "cost": latest["cost_usd"].fill_null(0.0)})
    rows = table.group_by("key", use_threads=False).aggregate([("cost", "sum")]).to_pylist()
    return dict(sorted(((row["key"], row["cost_sum"]) for row in rows), key=lambda pair: (-pair[1], pair[0])))


def _tiers(latest: pa.Table, runs: list[dict[str, Any]]) -> pa.Array:
    """The tier that served each result, else the one its run asked for."""
    asked = {record.get("run_id"): record.get("tier") for record in runs}
    run_tiers = pa.array([asked.get(run_id) for run_id in latest["run_id"].to_pylist()], pa.string())
    return pc.coalesce(latest["service_tier"].combine_chunks(), run_tiers)


def _sum(column: pa.ChunkedArray | pa.Array) -> float:
    return float(pc.sum(column).as_py() or 0)


def _sum_known(records: list[dict[str, Any]], key: str) -> int | None:
    known = [record[key] for record in records if isinstance(record.get(key), int)]
    return sum(known) if known else None


def _money(value: float) -> float:
    return round(value, 6)


def percentiles(column: pa.ChunkedArray) -> dict[str, int | None]:
    """p50, p95 and p99 by nearest rank (None when there are no values)."""
    values = pc.sort_indices(column.drop_null())
    ordered = column.drop_null().take(values)
    if not len(ordered):
        return {name: None for name, _ in PERCENTILES}
    return {name: ordered[max(0, math.ceil(share * len(ordered)) - 1)].as_py() for name, share in PERCENTILES}


# ---------------------------------------------------------------- estimate, runs


def read_estimate(out_dir: Path) -> list[dict[str, Any]]:
    """Per model, the expected cost before the run of the requests that came back ok, and their actual cost."""
    path = out_dir / CALIBRATION_FILE
    try:
        models = json.loads(path.read_text("utf-8")).get("models", {})
    except (OSError, ValueError):
        return []
    return [{"model": model, "requests": row.get("requests"), "expected_usd": row.get("expected_usd"),
             "actual_usd": row.get("actual_usd"), "ratio": row.get("ratio")} for model, row in sorted(models.items())]


def estimate_strata(out_dir: Path) -> dict[str, Any] | None:
    """Estimate against actual per stratum of the answered requests, or None before any is answered."""
    from batchrun.cost.versus import estimate_check

    check = estimate_check(out_dir / MANIFEST_NAME, out_dir)
    return None if check is None else check.to_json()


def read_run_records(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run's record in `runs/`, oldest first (a live run's state file left out)."""
    records = []
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else ():
        if path.name.endswith(LIVE_SUFFIX):
            continue
        try:
            records.append(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError):  # a record being replaced right now
            continue
    return sorted(records, key=lambda record: (record.get("started_at") or record.get("written_at") or 0))


def run_line(record: dict[str, Any]) -> dict[str, Any]:
    """One run: its id, start and end (ISO 8601, UTC), why it ended, its counts, retries and 429s."""
    counts = {str(status): record.get(status) for status in STATUSES}
    return {"run_id": record.get("run_id"), "started_at": _iso(record.get("started_at")),
            "ended_at": _iso(record.get("written_at")), "exit_reason": exit_reason(record),
            "tier": record.get("tier"), "endpoint": record.get("endpoint"),
            "rows_written": record.get("rows_written"), **counts,
            "retries": record.get("retries"), "rate_limited": record.get("rate_limited")}


def exit_reason(record: dict[str, Any]) -> str:
    """`crashed`, the stop reason (budget, deadline, auth, quota, interrupted, write, config, billing),
    `finished`, or `(unknown)` for a record written before runs said why they ended."""
    if record.get("crashed"):
        return "crashed"
    if "stop_reason" not in record:
        return UNKNOWN
    return record["stop_reason"] or "finished"


def _iso(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


# ---------------------------------------------------------------- series


def time_series(latest: pa.Table, bucket_s: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Results and spend per bucket of `bucket_s` seconds of finish time (non-empty buckets, in order)."""
    done = latest.filter(pc.is_valid(latest["finished_at"]))
    if not len(done):
        return [], []
    seconds = pc.divide(done["finished_at"].cast(pa.int64()), 1_000_000)
    buckets = pc.multiply(pc.divide(seconds, bucket_s), bucket_s)
    table = pa.table({"bucket": buckets, "cost": done["cost_usd"].fill_null(0.0)})
    grouped = table.group_by("bucket", use_threads=False).aggregate([("cost", "sum"), ([], "count_all")])
    rows = sorted(grouped.to_pylist(), key=lambda row: row["bucket"])
    throughput, spend, cumulative = [], [], 0.0
    for row in rows:
        cumulative += row["cost_sum"]
        at = _iso(row["bucket"])
        throughput.append({"t": at, "results": row["count_all"]})
        spend.append({"t": at, "cost_usd": _money(row["cost_sum"]), "cumulative_usd": _money(cumulative)})
    return throughput, spend
