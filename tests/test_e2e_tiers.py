"""End to end: runs at the flex and priority tiers, the real CLI against the simulator as a real server.

Each row's cost is worked out here from its own token counts and the shipped rates of
gemini-3-flash-preview ($0.50 in, $3.00 out per million tokens): half at flex, 1.8x at priority,
standard for a priority request the server served at standard. The request log shows what was sent:
the simulator logs the sha256 of each body, and the tier is part of the body but not of the request id.
"""

from __future__ import annotations

import json

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    batchrun,
    outputs,
    run_job,
    sends_by_id,
    serve,
    text_job,
    write_faults,
    write_spec,
)

from batchrun.tiers import Tier

INPUT_RATE, OUTPUT_RATE = 0.50, 3.00  # gemini-3-flash-preview, batchrun/data/prices.json
MULTIPLIER = {"standard": 1.0, "flex": 0.5, "priority": 1.8}


def by_hand(row: dict, tier: str) -> float:
    """One text result's cost at `tier` from its token counts."""
    output = (row["output_text_tokens"] or 0) + (row["thoughts_tokens"] or 0)
    return (row["prompt_tokens"] * INPUT_RATE + output * OUTPUT_RATE) * MULTIPLIER[tier] / 1e6


def test_a_flex_run_sends_service_tier_flex_and_every_row_costs_the_flex_price(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("flexjob", simulator.url, 12))

    result = run_job(tmp_path, spec, "--tier", "flex")

    assert result.returncode == 0, result.stderr
    job = outputs(tmp_path, "flexjob")
    rows = job.rows()
    assert len(rows) == 12 and {(r["status"], r["service_tier"]) for r in rows} == {("ok", "flex")}
    for row in rows:
        assert row["cost_usd"] == pytest.approx(by_hand(row, "flex"), rel=1e-9)
    assert sends_by_id(simulator.requests(), job.body_hashes(tier=Tier.FLEX)) == dict.fromkeys(job.ids, 1)
    (run,) = (json.loads(path.read_text()) for path in (tmp_path / "outputs" / "flexjob" / "runs").glob("*.json"))
    assert run["tier"] == "flex"


@pytest.mark.parametrize("shed", [{"capacity": 0.3, "capacity_status": 429}, {"capacity": {"first": 6}}])
def test_a_flex_run_whose_requests_are_shed_retries_them_and_completes(tmp_path, serve, shed):
    simulator = serve(faults=write_faults(tmp_path, "shed", {"flex": shed}))
    spec = write_spec(tmp_path, text_job("shed", simulator.url, 16, tier="flex"))

    result = run_job(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "shed").rows()
    assert len(rows) == 16 and {(r["status"], r["service_tier"]) for r in rows} == {("ok", "flex")}
    log = simulator.requests()
    assert sum(line["outcome"] == "flex_shed" for line in log) >= 3
    assert sum(line["outcome"] == "ok" for line in log) == 16


def test_a_priority_run_costs_downgraded_rows_at_standard_and_the_rest_at_priority(tmp_path, serve):
    simulator = serve(faults=write_faults(tmp_path, "downgrade", {"priority_downgrade": 0.4}))
    spec = write_spec(tmp_path, text_job("prio", simulator.url, 20, tier="priority"))
    estimate = json.loads(batchrun(tmp_path, "estimate", str(spec), "--json", key=None).stdout)
    assert estimate["tier"] == "priority" and "priority" in estimate["total"]

    result = run_job(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "prio").rows()
    served = [r["service_tier"] for r in rows]
    assert len(rows) == 20 and 0 < served.count("standard") < 20 and set(served) == {"standard", "priority"}
    for row in rows:
        assert row["cost_usd"] == pytest.approx(by_hand(row, row["service_tier"]), rel=1e-9)


def test_a_job_half_run_at_standard_and_continued_at_flex_sends_no_answered_row_again(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("halves", simulator.url, 40))
    # a worst case is 15 + 1024 tokens: about $0.0031; the cap lets a few requests through, not all 40
    first = run_job(tmp_path, spec, "--max-cost", "0.02")
    assert first.returncode == 4, first.stderr
    job = outputs(tmp_path, "halves")
    at_standard = {r["request_id"] for r in job.rows()}
    assert 0 < len(at_standard) < 40

    second = run_job(tmp_path, spec, "--tier", "flex")

    assert second.returncode == 0, second.stderr
    rows = outputs(tmp_path, "halves").rows()
    assert {r["request_id"] for r in rows} == set(job.ids)
    assert {r["service_tier"] for r in rows if r["request_id"] not in at_standard} == {"flex"}
    hashes = {**job.body_hashes(), **job.body_hashes(tier=Tier.FLEX)}
    assert sends_by_id(simulator.requests(), hashes) == dict.fromkeys(job.ids, 1)


@pytest.mark.parametrize("where", ["flag", "spec"])
def test_the_batch_tier_of_an_openai_provider_is_refused_in_one_line_and_nothing_is_written(tmp_path, where):
    extra = {"tier": "batch"} if where == "spec" else {}
    openai = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "BATCHRUN_E2E_KEY"}
    spec = write_spec(tmp_path, text_job("batchjob", "http://127.0.0.1:9", 3, provider=openai, **extra))
    result = run_job(tmp_path, spec, *(["--tier", "batch"] if where == "flag" else []))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.endswith("the batch tier is Gemini-only for now (provider.kind gemini or simulator, not openai); "
                         "use --tier flex, also half price")
    assert not (tmp_path / "outputs").exists()
