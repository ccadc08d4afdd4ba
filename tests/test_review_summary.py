"""The run summary, against a folder made by hand whose every figure is worked out below."""

from __future__ import annotations

import json

import pytest

from batchrun.errors import UsageError
from batchrun.output.sink import Sink
from batchrun.planning.manifest import ManifestWriter
from batchrun.records import RequestRecord, ResultRecord
from batchrun.review.summary import exit_reason, percentiles, summarize_run

T = 1_800_000_000  # a whole minute: 30,000,000 x 60


def record(row_id: str) -> RequestRecord:
    body = {"system": None, "parts": [{"text": row_id}], "options": {}, "response_schema": None, "tools": None,
            "extras": {}}
    return RequestRecord(request_id=row_id, seq=0, model="A", body=body, variables={})


def result(row_id: str, status: str, offset_s: float, latency_ms: int, attempts: int, **fields) -> ResultRecord:
    return ResultRecord(request_id=row_id, status=status, attempts=attempts, started_at=T + offset_s - 1,
                        finished_at=T + offset_s, latency_ms=latency_ms, **fields)


RESULTS = [
    #       row      status     t    latency attempts
    result("req0", "ok", 5, 100, 1, model="A", cost_usd=0.10, prompt_tokens=10, output_text_tokens=5,
           thoughts_tokens=2, total_tokens=17),
    result("req1", "ok", 30, 200, 3, model="A", cost_usd=0.20, service_tier="flex", prompt_tokens=20,
           output_image_tokens=1290, total_tokens=1310),
    result("req2", "failed", 70, 300, 6, model="A", error_kind="rate_limited"),
    result("req3", "blocked", 130, 400, 1, model="B", cost_usd=0.05, error_kind="safety_block", run_id="r2"),
    result("req4", "invalid", 135, 500, 1, model="B", cost_usd=0.0, error_kind="invalid_request", run_id="r2"),
    result("gone", "ok", 200, 600, 1, model="A", cost_usd=1.0, run_id="r2"),  # its row left the manifest
]
RUNS = {
    "r0": {"run_id": "r0", "written_at": T - 100, "crashed": True, "recovered_by": "r1"},
    "r1": {"run_id": "r1", "started_at": T - 10, "written_at": T + 80, "tier": "standard", "stop_reason": None,
           "rows_written": 3, "ok": 2, "blocked": 0, "invalid": 0, "failed": 1, "retries": 7, "rate_limited": 4},
    "r2": {"run_id": "r2", "written_at": T + 210, "tier": "batch", "rows_written": 3},  # before runs said more
}


@pytest.fixture
def folder(tmp_path):
    writer = ManifestWriter(tmp_path / "manifest.parquet", "fp")
    writer.write([record(f"req{n}") for n in range(6)])  # req5 never ran
    writer.commit()
    sink = Sink(tmp_path, run_id="r1")
    sink.open()
    for row in RESULTS:
        sink.write_result(row)
    sink.close()
    for run_id, facts in RUNS.items():
        (tmp_path / "runs" / f"{run_id}.json").write_text(json.dumps(facts))
    (tmp_path / "calibration.json").write_text(json.dumps({"models": {"A": {
        "ratio": 0.25, "requests": 2, "actual_usd": 0.3, "expected_usd": 1.2}}}))
    return tmp_path


def test_counts_are_per_manifest_row_and_pending_is_a_row_without_a_result(folder):
    summary = summarize_run(folder)

    assert summary.rows == 6
    assert summary.by_status == {"ok": 2, "blocked": 1, "invalid": 1, "failed": 1, "pending": 1}
    assert summary.by_error_kind == {"invalid_request": 1, "rate_limited": 1, "safety_block": 1}


def test_cost_is_every_result_s_by_model_and_by_the_tier_that_served_it_else_its_run_s(folder):
    summary = summarize_run(folder)

    assert summary.cost_usd == pytest.approx(1.35)
    assert summary.cost_by_model == pytest.approx({"A": 1.30, "B": 0.05})
    assert list(summary.cost_by_tier) == ["batch", "flex", "standard"]
    assert summary.cost_by_tier == pytest.approx({"batch": 1.05, "flex": 0.20, "standard": 0.10})


def test_tokens_latency_retries_and_429s(folder):
    summary = summarize_run(folder)

    assert summary.tokens == {"prompt_tokens": 30, "cached_tokens": 0, "output_text_tokens": 5,
                              "output_image_tokens": 1290, "thoughts_tokens": 2, "total_tokens": 1327}
    assert summary.latency_ms == {"p50": 300, "p95": 600, "p99": 600}
    assert summary.retries == 7  # 2 + 5 attempts past the first
    assert summary.rate_limited == 4  # only r1's record counts them


def test_the_estimate_against_the_actual_comes_from_the_calibration(folder):
    assert summarize_run(folder).estimate == [
        {"model": "A", "requests": 2, "expected_usd": 1.2, "actual_usd": 0.3, "ratio": 0.25}]


def test_the_estimate_against_the_actual_per_stratum_counts_every_answered_request_of_the_manifest(folder):
    check = summarize_run(folder).estimate_strata

    assert [(s["stratum"], s["requests"]) for s in check["strata"]] == [("A short", 4)]  # req0, 1, 3, 4
    assert check["total"]["actual_usd"] == pytest.approx(0.35)  # not the 1.0 of a row gone from the manifest


def test_each_run_s_start_end_and_why_it_ended(folder):
    runs = summarize_run(folder).runs

    assert [(r["run_id"], r["exit_reason"]) for r in runs] == [("r0", "crashed"), ("r1", "finished"),
                                                               ("r2", "(unknown)")]
    assert runs[1]["started_at"] == "2027-01-15T07:59:50+00:00"
    assert runs[1]["ended_at"] == "2027-01-15T08:01:20+00:00"
    assert (runs[1]["failed"], runs[1]["retries"], runs[1]["rate_limited"]) == (1, 7, 4)


def test_throughput_and_cumulative_spend_per_minute_of_finish_time(folder):
    summary = summarize_run(folder)

    minute = ["2027-01-15T08:00:00+00:00", "2027-01-15T08:01:00+00:00", "2027-01-15T08:02:00+00:00",
              "2027-01-15T08:03:00+00:00"]
    assert summary.throughput == [{"t": t, "results": n} for t, n in zip(minute, [2, 1, 2, 1], strict=True)]
    assert [(s["t"], s["cost_usd"], s["cumulative_usd"]) for s in summary.spend] == [
        (minute[0], 0.3, 0.3), (minute[1], 0.0, 0.3), (minute[2], 0.05, 0.35), (minute[3], 1.0, 1.35)]


def test_to_json_is_plain_json_with_money_rounded(folder):
    document = summarize_run(folder, bucket_s=3600).to_json()

    assert json.loads(json.dumps(document)) == document
    assert document["cost_usd"] == 1.35 and document["bucket_s"] == 3600
    assert [point["results"] for point in document["throughput"]] == [6]


def test_an_empty_folder_names_the_fix(tmp_path):
    with pytest.raises(UsageError, match="nothing was planned yet; run `batchrun plan`"):
        summarize_run(tmp_path)


def test_a_planned_job_not_yet_run_is_all_pending(tmp_path):
    writer = ManifestWriter(tmp_path / "manifest.parquet", "fp")
    writer.write([record("a"), record("b")])
    writer.commit()

    summary = summarize_run(tmp_path)

    assert summary.by_status["pending"] == 2
    assert summary.latency_ms == {"p50": None, "p95": None, "p99": None}
    assert (summary.throughput, summary.runs, summary.rate_limited) == ([], [], None)


@pytest.mark.parametrize("values, expected", [
    ([5], {"p50": 5, "p95": 5, "p99": 5}),
    (list(range(1, 101)), {"p50": 50, "p95": 95, "p99": 99}),
    ([None, 30, 10, 20], {"p50": 20, "p95": 30, "p99": 30}),
])
def test_percentiles_are_nearest_rank(values, expected):
    import pyarrow as pa

    assert percentiles(pa.chunked_array([pa.array(values, pa.int64())])) == expected


def test_a_run_stopped_by_its_budget_says_so():
    assert exit_reason({"stop_reason": "budget"}) == "budget"
