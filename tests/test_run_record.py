"""A run's record in runs/ says when it started, why it ended, its counts, its retries and its 429s."""

from __future__ import annotations

import collections
import json

import pytest

from batchrun.cli import main
from batchrun.jobrun import run_end_facts
from batchrun.output.progress import Progress
from batchrun.running.pool import PoolStop, StopReason

SPEC = """name: t
provider: {kind: simulator, faults: faults.yaml}
model: gemini-3-flash-preview
inputs: {rows: [{n: 1}, {n: 2}, {n: 3}]}
request: {prompt: 'One line about {{ n }}'}
retry: {max_attempts: 4, initial_s: 0.01, max_wait_s: 0.02}
limits: {concurrency: 1}
output: {dir: out}
"""


def test_the_429s_are_the_retried_replies_that_were_rate_limited():
    progress = Progress(total=5, ok=3, failed=1, retries=6,
                        errors=collections.Counter({"rate_limited": 4, "unavailable": 2}), started=0.0,
                        clock=lambda: 30.0, spend_usd=0.5, prior_spend_usd=1.25)
    progress.pause(10.0, "quota")  # at 30 s: not yet over, so 0 s of it count against sending
    stop = PoolStop()
    stop.reason = StopReason.BUDGET

    assert run_end_facts(progress, stop) == {
        "stop_reason": "budget", "ok": 3, "blocked": 0, "invalid": 0, "failed": 1, "retries": 6, "rate_limited": 4,
        "errors_by_kind": {"rate_limited": 4, "unavailable": 2}, "spend_usd": 0.5, "job_spend_usd": 1.75,
        "sending_s": 30.0, "paused_s": 0.0, "throughput_rows_per_s": 0.133}


def test_the_throughput_leaves_out_the_time_paused():
    now = [0.0]
    progress = Progress(total=10, ok=10, started=0.0, clock=lambda: now[0])
    now[0] = 5.0
    progress.pause(15.0, "quota")
    now[0] = 25.0  # 5 s sending, 15 s parked, 5 s sending
    facts = run_end_facts(progress, PoolStop())
    assert (facts["sending_s"], facts["paused_s"], facts["throughput_rows_per_s"]) == (10.0, 15.0, 1.0)


def test_a_run_that_stopped_before_counting_still_says_why():
    assert run_end_facts(None, PoolStop()) == {"stop_reason": None}


def test_a_run_records_its_start_end_counts_and_retries(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faults.yaml").write_text("unavailable: {first: 2}\n")
    (tmp_path / "job.yaml").write_text(SPEC)

    assert main(["run", "job.yaml", "--progress", "none", "-q"]) == 0

    [record] = [json.loads(path.read_text()) for path in (tmp_path / "out" / "runs").glob("*.json")]
    assert record["started_at"] <= record["written_at"] <= record["ended_at"]
    assert (record["exit_code"], record["exit_reason"], record["message"]) == (0, "ok", None)
    assert record["errors_by_kind"] == {"unavailable": 2}
    assert record["spend_usd"] == record["job_spend_usd"] > 0
    assert record["throughput_rows_per_s"] > 0
    [model] = record["estimate_vs_actual"]["models"].values()
    assert set(model) == {"ratio", "requests", "actual_usd", "expected_usd"}
    strata = record["estimate_vs_actual"]["strata"]
    assert strata["total"]["requests"] == 3
    assert strata["total"]["actual_usd"] == round(record["job_spend_usd"], 6)
    assert strata["total"]["expected_usd"] == pytest.approx(model["expected_usd"], rel=1e-6)
    assert {key: record[key] for key in ("stop_reason", "ok", "failed", "retries", "rate_limited")} == {
        "stop_reason": None, "ok": 3, "failed": 0, "retries": 2, "rate_limited": 0}
