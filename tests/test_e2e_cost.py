"""End to end: what a run costs against what `batchrun estimate` said, and the budget cap, on the simulator.

The demo job (jobs/demo.yaml, its catalog and photos) is copied into tmp_path and pointed at the
simulator as a real server. Each result's cost is checked against the shipped rates worked out here
by hand; the job's total against the estimate before the run (within 15%) and the calibrated
estimate after it (within 5%).
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    KEY_ENV,
    REPO,
    assert_no_key,
    batchrun,
    outputs,
    run_job,
    sends_by_id,
    serve,
    text_job,
    write_spec,
)

DEMO_REQUESTS = 12 * 2 * 2  # products x scenes x aspect ratios
# Shipped rates of gemini-3.1-flash-image, USD per million tokens (batchrun/data/prices.json).
INPUT_RATE, OUTPUT_RATE, IMAGE_RATE = 0.5, 3.0, 60.0
IMAGE_TOKENS_1K = 1120


def demo_job(folder, url: str):
    """jobs/demo.yaml and its data under `folder`, sent to the simulator at `url` with the fake key."""
    shutil.copytree(REPO / "jobs" / "data", folder / "jobs" / "data", ignore=shutil.ignore_patterns("*.py"))
    spec = yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text())
    spec["provider"] = {"kind": "gemini", "base_url": url, "api_key_env": KEY_ENV}
    return write_spec(folder, spec)


def estimated(folder, spec) -> dict:
    result = batchrun(folder, "estimate", str(spec), "--json", key=None)  # no key needed: no network
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_hand(row: dict) -> float:
    """One demo result's cost from its own token counts and the shipped rates."""
    text = (row["output_text_tokens"] or 0) + (row["thoughts_tokens"] or 0)
    return (row["prompt_tokens"] * INPUT_RATE + text * OUTPUT_RATE + row["output_image_tokens"] * IMAGE_RATE) / 1e6


def test_demo_job_costs_what_each_reply_says_and_lands_within_the_estimate(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = demo_job(tmp_path, simulator.url)
    before = estimated(tmp_path, spec)["total"]["standard"]["expected"]

    result = run_job(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "demo").rows()
    assert len(rows) == DEMO_REQUESTS and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert row["output_image_tokens"] == IMAGE_TOKENS_1K  # $0.0672 an image at 1K
        assert row["cost_usd"] == pytest.approx(by_hand(row), rel=1e-9, abs=1e-12)
    actual = sum(r["cost_usd"] for r in rows)
    assert actual == pytest.approx(before, rel=0.15)
    after = estimated(tmp_path, spec)["total"]["standard"]["expected"]
    assert actual == pytest.approx(after, rel=0.05)
    assert_no_key(tmp_path, result.stderr)


def test_a_cap_below_the_cost_stops_with_exit_4_within_it_and_a_higher_cap_finishes_without_resending(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = demo_job(tmp_path, simulator.url)
    cap = 1.0  # the demo's 48 images cost about $3.30

    capped = run_job(tmp_path, spec, "--max-cost", str(cap))

    assert capped.returncode == 4, capped.stderr
    job = outputs(tmp_path, "demo")
    spent = sum(r["cost_usd"] for r in job.rows())
    assert 0 < spent <= cap
    assert 0 < len(job.rows()) < DEMO_REQUESTS
    rest = run_job(tmp_path, spec, "--max-cost", "20")
    assert rest.returncode == 0, rest.stderr
    assert sorted(r["request_id"] for r in job.rows()) == sorted(job.ids)
    assert sends_by_id(simulator.requests(), job.body_hashes()) == dict.fromkeys(job.ids, 1)
    assert_no_key(tmp_path, capped.stderr, rest.stderr)


UNPRICED = "gemini-9.9-mystery"


def test_a_model_without_a_price_is_costed_null_with_one_warning(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("unpriced", simulator.url, 30, model=UNPRICED))

    result = run_job(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "unpriced").rows()
    assert len(rows) == 30 and all(r["total_tokens"] for r in rows)
    assert {r["cost_usd"] for r in rows} == {None}
    assert result.stderr.count(f"no price known for {UNPRICED}") == 1


def test_a_model_without_a_price_and_a_budget_refuses_to_start_naming_the_model_and_the_fix(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("unpriced", simulator.url, 30, model=UNPRICED,
                                         budget={"max_cost_usd": 5}))

    result = run_job(tmp_path, spec)

    assert result.returncode == 2, result.stderr
    assert UNPRICED in result.stderr and "pricing:" in result.stderr and "--prices" in result.stderr
    assert simulator.requests() == []
