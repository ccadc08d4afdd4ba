"""End to end: `--wait-quota` parks a run on a spent daily quota until it resets, against the simulator.

The simulator's `limits.day_s` makes its "day" a few seconds long and says when it resets in a
Retry-After header, so a test can wait out a real reset. With `--wait-quota` the run parks, says
"parked until HH:MM (quota)" in its progress line and in `batchrun status`, then finishes (exit 0);
without it, or when the reset comes after the deadline, it stops with exit 7 as before.
"""

from __future__ import annotations

import json
import re

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    LineReader,
    assert_no_key,
    batchrun,
    outputs,
    run_job,
    serve,
    start_batchrun,
    text_job,
    write_faults,
    write_spec,
)

PARKED = re.compile(r"parked until \d\d:\d\d \(quota\)")


def short_day(folder, *, per_day: int, day_s: float) -> str:
    """A faults file of `per_day` requests a day, a day being `day_s` seconds; its name for `serve`."""
    return str(write_faults(folder, f"day{day_s:g}", {"limits": {"requests_per_day": per_day, "day_s": day_s}}))


def test_wait_quota_parks_until_the_quota_resets_then_finishes_with_exit_0(tmp_path, serve):
    simulator = serve(faults=short_day(tmp_path, per_day=6, day_s=4))
    spec = write_spec(tmp_path, text_job("parked", simulator.url, 14, limits={"concurrency": 2}))

    result = run_job(tmp_path, spec, "--wait-quota", "--status-every", "0.5")

    assert result.returncode == 0, result.stderr
    assert re.search(r"daily quota spent: parked until \d\d:\d\d, when it resets", result.stderr)
    assert PARKED.search(result.stderr)  # the progress line while parked
    rows = outputs(tmp_path, "parked").rows()
    assert len(rows) == 14 and {r["status"] for r in rows} == {"ok"}
    refused = [line for line in simulator.requests() if line["outcome"] == "quota"]
    assert 1 <= len(refused)
    assert_no_key(tmp_path, result.stderr)


def test_status_shows_the_live_run_parked_until_the_reset_set_by_the_specs_run_wait_quota(tmp_path, serve):
    simulator = serve(faults=short_day(tmp_path, per_day=4, day_s=12))
    spec = write_spec(tmp_path, text_job("parkstatus", simulator.url, 6, limits={"concurrency": 1},
                                         run={"wait_quota": True}))
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain",
                             "--status-every", "0.5")
    stderr = LineReader(process.stderr)
    try:
        stderr.wait_for(PARKED, RUN_TIMEOUT_S)
        status = batchrun(tmp_path, "status", str(spec), key=None)
        code = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)
    assert status.returncode == 0, status.stderr
    assert re.search(r"parked until \d\d:\d\d \(quota\): [\d.]+s left", status.stdout), status.stdout
    assert code == 0, stderr.text()


def test_without_wait_quota_a_spent_quota_stops_with_exit_7_and_the_estimate_prices_what_remains(tmp_path, serve):
    simulator = serve(faults=short_day(tmp_path, per_day=3, day_s=30))
    spec = write_spec(tmp_path, text_job("stopped", simulator.url, 8, limits={"concurrency": 1}))

    result = run_job(tmp_path, spec)

    assert result.returncode == 7, result.stderr
    assert "the server's Retry-After" in result.stderr and not PARKED.search(result.stderr)
    assert "--wait-quota" in result.stderr.strip().splitlines()[-1]  # the stop line says how to wait instead
    rows = outputs(tmp_path, "stopped").rows()
    assert len(rows) == 3
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "outputs" / "stopped" / "runs").glob("*.json")]
    assert (record["exit_code"], record["exit_reason"], record["stop_reason"], record["ok"]) == (7, "quota", "quota", 3)
    assert record["message"].startswith("run stopped: daily quota GenerateRequestsPerDayPerProjectPerModel is spent")

    # the job is half done: the estimate prices what is left beside what was spent
    estimate = batchrun(tmp_path, "estimate", str(spec), "--json", key=None)
    assert estimate.returncode == 0, estimate.stderr
    remaining = json.loads(estimate.stdout)["remaining"]
    spent = sum(row["cost_usd"] for row in rows)
    assert (remaining["rows"], remaining["requests"]) == (5, 5)
    assert remaining["spent_usd"] == pytest.approx(spent)
    assert 0 < remaining["remaining"]["expected"] <= remaining["remaining"]["high"]
    assert remaining["total"]["high"] == pytest.approx(spent + remaining["remaining"]["high"])
    text = batchrun(tmp_path, "estimate", str(spec), key=None).stdout
    assert "Remaining: 5 rows without a final result (5 requests to send), at the standard tier" in text


def test_wait_quota_stops_with_exit_7_when_the_reset_comes_after_the_deadline(tmp_path, serve):
    simulator = serve(faults=short_day(tmp_path, per_day=3, day_s=60))
    spec = write_spec(tmp_path, text_job("late", simulator.url, 8, limits={"concurrency": 1}))

    result = run_job(tmp_path, spec, "--wait-quota", "--max-duration", "45s")

    assert result.returncode == 7, result.stderr
    assert "parked until" not in result.stderr
    assert len(outputs(tmp_path, "late").rows()) == 3
