"""End to end: `batchrun status` reads an output folder alone (no network, no key) and tells it right.

A run against the simulator with blocked replies and 5xx answers (one attempt each) is stopped by
--max-duration, leaving ok, blocked, failed and never-sent requests. The simulator is then stopped
and `status` is compared with the result rows read straight from Parquet.

After a prompt edit, `status`, `estimate` and the run's budget (in-process simulator) agree on what the
results cost, though none of them is in the manifest any more; before a new plan, `status` says the
spec changed and leaves the manifest alone.
"""

from __future__ import annotations

import collections
import json
import re

import pytest
from e2e_helpers import (
    E2E_JOBS,
    assert_no_key,
    batchrun,
    image_job,
    outputs,
    run_job,
    start_simulator,
    text_job,
    write_spec,
)

REQUESTS = 300
IN_PROCESS = {"kind": "simulator", "base_url": None, "api_key_env": None}


@pytest.fixture(scope="module")
def stopped_part_way(tmp_path_factory):
    """A job left with every kind of row, and the simulator it ran against stopped: (folder, spec, rows).

    Made once for the tests of this module, which only read the folder (`status` writes nothing)."""
    folder = tmp_path_factory.mktemp("stopped")
    simulator = start_simulator(folder, faults=E2E_JOBS / "mixed.yaml")
    try:
        spec = write_spec(folder, text_job("mixed", simulator.url, REQUESTS, limits={"concurrency": 2},
                                           retry={"max_attempts": 1}))
        run = run_job(folder, spec, "--max-duration", "1.5s")
    finally:
        simulator.stop()
    assert run.returncode == 5, run.stderr
    return folder, spec, outputs(folder, "mixed").rows()


def test_status_json_counts_done_pending_failed_blocked_and_spend_from_the_folder_alone(stopped_part_way):
    folder, spec, rows = stopped_part_way

    result = batchrun(folder, "status", str(spec), "--json", key=None)

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
    assert status["spend_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in rows), abs=1e-6)  # 6 decimals
    assert status["live_pid"] is None


def test_status_text_shows_the_same_figures(stopped_part_way):
    folder, spec, rows = stopped_part_way

    result = batchrun(folder, "status", str(spec), key=None)

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
    assert_no_key(folder, result.stdout, result.stderr)


def test_after_a_prompt_edit_status_estimate_and_the_budget_agree_on_what_was_spent(tmp_path):
    job = image_job("edited", "", tmp_path, photos=3, scenes=2, provider=IN_PROCESS)
    spec = write_spec(tmp_path, job)
    assert run_job(tmp_path, spec, key=None).returncode == 0
    first = outputs(tmp_path, "edited").rows()
    spent = sum(r["cost_usd"] for r in first)

    job["request"]["prompt"] = "Photograph the product {{ sku }} shown in the photo on a {{ scene }}, at dusk."
    write_spec(tmp_path, job)
    capped = run_job(tmp_path, spec, "--max-cost", f"{spent / 2:.4f}", key=None)  # plans again, then stops
    status = json.loads(batchrun(tmp_path, "status", str(spec), "--json", key=None).stdout)
    estimate = json.loads(batchrun(tmp_path, "estimate", str(spec), "--json", "--max-cost", f"{spent / 2:.4f}",
                                   key=None).stdout)

    assert capped.returncode == 4, capped.stderr
    budget_spent = float(re.search(r"run stopped: spent \$([\d.]+) of the", capped.stderr)[1])
    assert status["spend_usd"] == estimate["spend_usd"] == pytest.approx(spent, abs=1e-6)
    assert spent > 0
    assert budget_spent == pytest.approx(status["spend_usd"], abs=5e-5)  # the stop line shows 4 decimals
    assert status["not_in_manifest"] == len(first) == 6
    assert status["not_in_manifest_spend_usd"] == estimate["not_in_manifest_spend_usd"] == status["spend_usd"]
    assert (status["final"], status["pending"], status["spec_changed"]) == (0, 6, False)
    assert estimate["budget"]["verdict"] == "spent"


def test_status_says_the_spec_changed_since_the_plan_without_planning(tmp_path):
    job = image_job("unplanned", "", tmp_path, photos=2, scenes=1, provider=IN_PROCESS)
    spec = write_spec(tmp_path, job)
    assert run_job(tmp_path, spec, key=None).returncode == 0
    manifest = tmp_path / "outputs" / "unplanned" / "manifest.parquet"
    planned = manifest.read_bytes()
    spent = sum(r["cost_usd"] for r in outputs(tmp_path, "unplanned").rows())

    job["request"]["prompt"] = "Photograph the product {{ sku }} on a {{ scene }}, at dawn."
    write_spec(tmp_path, job)
    result = batchrun(tmp_path, "status", str(spec), key=None)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == ("the spec changed since the last plan: counts are for the old manifest; "
                        "`batchrun plan` refreshes it")
    spend = next(line for line in lines if line.startswith("spend "))
    assert spend.split()[1] == f"${spent:,.4f}"
    assert "results no longer in the manifest" not in spend  # the old manifest still holds them
    assert manifest.read_bytes() == planned  # status read the old manifest and left it alone
