"""End to end: `batchrun status` reads an output folder alone (no network, no key) and tells it right.

A run against the simulator with blocked replies and 5xx answers (one attempt each) is stopped by
--max-duration, leaving ok, blocked, failed and never-sent requests. The simulator is then stopped
and `status` is compared with the result rows read straight from Parquet.
"""

from __future__ import annotations

import collections
import json

import pytest

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    assert_no_key,
    batchrun,
    outputs,
    run_job,
    serve,
    text_job,
    write_spec,
)

REQUESTS = 300


@pytest.fixture
def stopped_part_way(tmp_path, serve):
    """A job left with every kind of row, and the simulator it ran against stopped."""
    simulator = serve(faults="mixed.yaml")
    spec = write_spec(tmp_path, text_job("mixed", simulator.url, REQUESTS, limits={"concurrency": 2},
                                         retry={"max_attempts": 1}))
    run = run_job(tmp_path, spec, "--max-duration", "1.5s")
    assert run.returncode == 5, run.stderr
    simulator.stop()
    return spec, outputs(tmp_path, "mixed").rows()


def test_status_json_counts_done_pending_failed_blocked_and_spend_from_the_folder_alone(tmp_path, stopped_part_way):
    spec, rows = stopped_part_way

    result = batchrun(tmp_path, "status", str(spec), "--json", key=None)

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    by_status = collections.Counter(r["status"] for r in rows)
    assert {"ok", "blocked", "failed"} <= set(by_status)  # the run left every kind of row
    assert status["total"] == REQUESTS
    assert status["done"] == {s: by_status.get(s, 0) for s in ("ok", "blocked", "invalid", "failed")}
    assert status["pending"] == REQUESTS - by_status["ok"] - by_status["blocked"] - by_status["invalid"]
    failed_kinds = collections.Counter(r["error_kind"] for r in rows if r["status"] == "failed")
    assert status["failed_by_error_kind"] == dict(failed_kinds)
    blocked = collections.Counter(r["finish_reason"] or "(none)" for r in rows if r["status"] == "blocked")
    assert status["blocked_by_finish_reason"] == dict(blocked)
    assert status["spend_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in rows), abs=1e-9)
    assert status["live_pid"] is None


def test_status_text_shows_the_same_figures(tmp_path, stopped_part_way):
    spec, rows = stopped_part_way

    result = batchrun(tmp_path, "status", str(spec), key=None)

    assert result.returncode == 0, result.stderr
    lines = {line[:24].strip(): line[24:] for line in result.stdout.splitlines()}  # label, then figures
    ok = sum(1 for r in rows if r["status"] == "ok")
    failed = collections.Counter(r["error_kind"] for r in rows if r["status"] == "failed")
    assert f"ok {ok:,}" in lines["done"]
    assert lines["pending"].split()[0] == f"{REQUESTS - len(rows) + sum(failed.values()):,}"
    for kind, count in failed.items():
        assert lines[f"failed: {kind}"].split() == [f"{count:,}"]
    spend = sum(r["cost_usd"] or 0 for r in rows)
    assert lines["spend"].split()[0] == f"${spend:,.4f}"
    assert_no_key(tmp_path, result.stdout, result.stderr)
