"""End to end: estimate against actual per stratum after a run, and a budget cap from the pilot's projection.

A mixed image job (two models x two image sizes, so four strata) runs against the simulator as a real
server; `status --json` is checked stratum by stratum against the results Parquet and the manifest's
prior. The cap from the projection is checked with a projection written by `estimate --pilot`, and with
one written by hand (a tiny figure, so the cap that stops the run can only be the projection's).
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    batchrun,
    image_job,
    outputs,
    run_job,
    serve,
    write_spec,
)

from batchrun.cost.strata import stratum_table
from batchrun.planning.manifest import read_fingerprint

MODELS = ["gemini-3.1-flash-image", "gemini-3-pro-image"]
SIZES = ["1K", "2K"]


def mixed_job(folder, url: str, name: str = "mixed") -> dict:
    """2 photos x 2 models x 2 image sizes: 8 requests in 4 strata."""
    spec = image_job(name, url, folder, photos=2, scenes=1, matrix={"scene": ["kitchen counter"], "m": MODELS,
                                                                   "size": SIZES})
    spec["model"] = "{{ m }}"
    spec["request"]["generation_config"]["imageConfig"]["imageSize"] = "{{ size }}"
    spec["output"] = {"image_name": "{{ sku }}/{{ m }}-{{ size }}"}
    return spec


def status_json(folder, spec) -> dict:
    result = batchrun(folder, "status", str(spec), "--json", key=None)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_stratum(folder, name: str) -> dict[str, dict[str, float]]:
    """Per stratum, from the results Parquet and the manifest alone: requests, actual cost, prior expected."""
    out = outputs(folder, name)
    strata = stratum_table(out.folder / "manifest.parquet").to_pylist()
    label = {row["request_id"]: row["stratum"] for row in strata}
    prior = {row["request_id"]: row["expected_usd"] for row in strata}
    sums: dict[str, dict[str, float]] = defaultdict(lambda: {"requests": 0, "actual_usd": 0.0, "expected_usd": 0.0})
    for row in out.rows():
        assert row["status"] == "ok" and row["service_tier"] in (None, "standard")
        stratum = sums[label[row["request_id"]]]
        stratum["requests"] += 1
        stratum["actual_usd"] += row["cost_usd"]
        stratum["expected_usd"] += prior[row["request_id"]]
    return dict(sums)


def test_status_shows_estimate_against_actual_per_stratum_as_the_results_parquet_has_it(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, mixed_job(tmp_path, simulator.url))

    run = run_job(tmp_path, spec)

    assert run.returncode == 0, run.stderr
    check = status_json(tmp_path, spec)["estimate_vs_actual"]
    truth = by_stratum(tmp_path, "mixed")
    assert len(truth) == 4 and {s["stratum"] for s in check["strata"]} == set(truth)
    for shown in check["strata"]:
        want = truth[shown["stratum"]]
        assert shown["requests"] == want["requests"] == 2
        assert shown["actual_usd"] == pytest.approx(want["actual_usd"], abs=1e-6)
        assert shown["expected_usd"] == pytest.approx(want["expected_usd"], abs=1e-6)
        assert shown["ratio"] == pytest.approx(want["actual_usd"] / want["expected_usd"], abs=1e-3)
    total = check["total"]
    assert total["requests"] == 8 and check["other"] is None
    assert total["actual_usd"] == pytest.approx(sum(s["actual_usd"] for s in truth.values()), abs=1e-6)
    text = batchrun(tmp_path, "status", str(spec), key=None).stdout
    assert "estimate vs actual" in text and "gemini-3-pro-image 2K" in text
    [record] = (outputs(tmp_path, "mixed").folder / "runs").glob("*.json")
    assert json.loads(record.read_text())["estimate_vs_actual"]["strata"] == check


def test_a_spec_capped_by_the_projection_sends_its_pilot_then_runs_within_it_and_status_shows_it(tmp_path, serve):
    simulator = serve(profile="clean")
    job = mixed_job(tmp_path, simulator.url)
    spec = write_spec(tmp_path, {**job, "budget": {"max_cost_from_projection": "high"}})
    pilot = batchrun(tmp_path, "estimate", str(spec), "--pilot", "4", "--yes", "--json")
    assert pilot.returncode == 0, pilot.stderr  # the pilot is not capped by the projection it makes

    run = run_job(tmp_path, spec)

    assert run.returncode == 0, run.stderr
    assert "the projection's high figure for the whole job" in run.stderr
    check = status_json(tmp_path, spec)["estimate_vs_actual"]
    assert check["total"]["requests"] == 8
    assert all(s["projected_usd"] is not None for s in check["strata"])


def test_a_projection_below_the_hard_cap_stops_the_run_at_the_projection(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, mixed_job(tmp_path, simulator.url))
    assert batchrun(tmp_path, "plan", str(spec), key=None).returncode == 0
    folder = outputs(tmp_path, "mixed").folder
    fingerprint = read_fingerprint(folder / "manifest.parquet")
    (folder / "projection.json").write_text(json.dumps(
        {"fingerprint": fingerprint, "tier": "standard", "total": {"expected": 0.05, "low": 0.04, "high": 0.06},
         "strata": []}))

    run = run_job(tmp_path, spec, "--max-cost-from-projection", "expected", "--max-cost", "100")

    assert run.returncode == 4, run.stderr
    [error] = [line for line in run.stderr.splitlines() if line.startswith("batchrun: error:")]
    assert "of the $0.0500 cap" in error  # the projection's, not the $100 of --max-cost
    assert sum(row["cost_usd"] for row in outputs(tmp_path, "mixed").rows()) <= 0.05


@pytest.mark.parametrize("stale", [False, True])
def test_without_a_projection_of_this_plan_the_run_exits_2_saying_to_run_the_pilot_and_sends_nothing(
        tmp_path, serve, stale):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, mixed_job(tmp_path, simulator.url))
    if stale:
        assert batchrun(tmp_path, "plan", str(spec), key=None).returncode == 0
        (outputs(tmp_path, "mixed").folder / "projection.json").write_text(json.dumps(
            {"fingerprint": "an earlier plan", "total": {"expected": 1.0, "high": 2.0}}))

    run = run_job(tmp_path, spec, "--max-cost-from-projection", "expected")

    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("batchrun: error:")]
    assert len(errors) == 1 and "run `batchrun estimate SPEC --pilot N` first" in errors[0]
    assert ("earlier plan" in errors[0]) is stale
    assert simulator.requests() == []
