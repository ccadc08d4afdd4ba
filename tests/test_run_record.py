"""A run's record in runs/ says when it started, why it ended, its counts, its retries and its 429s."""

from __future__ import annotations

import collections
import json

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
                        errors=collections.Counter({"rate_limited": 4, "unavailable": 2}))
    stop = PoolStop()
    stop.reason = StopReason.BUDGET

    assert run_end_facts(progress, stop) == {"stop_reason": "budget", "ok": 3, "blocked": 0, "invalid": 0,
                                             "failed": 1, "retries": 6, "rate_limited": 4}


def test_a_run_that_stopped_before_counting_still_says_why():
    assert run_end_facts(None, PoolStop()) == {"stop_reason": None}


def test_a_run_records_its_start_end_counts_and_retries(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faults.yaml").write_text("unavailable: {first: 2}\n")
    (tmp_path / "job.yaml").write_text(SPEC)

    assert main(["run", "job.yaml", "--progress", "none", "-q"]) == 0

    [record] = [json.loads(path.read_text()) for path in (tmp_path / "out" / "runs").glob("*.json")]
    assert record["started_at"] <= record["written_at"]
    assert {key: record[key] for key in ("stop_reason", "ok", "failed", "retries", "rate_limited")} == {
        "stop_reason": None, "ok": 3, "failed": 0, "retries": 2, "rate_limited": 0}
