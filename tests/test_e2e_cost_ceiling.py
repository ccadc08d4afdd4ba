"""End to end: the high bound of an image request without maxOutputTokens is its model's practical ceiling;
a reply that thinks past it is recorded at its true cost and the capped run stops at the cap.

The simulator's faults file makes every reply think 9,000 tokens (`tokens:`), past the 5,590-token
practical ceiling of gemini-3.1-flash-image at 512 (4,096 thinking + 2 interim images x 747).
"""

from __future__ import annotations

import json

import pytest
from e2e_helpers import (
    assert_no_key,
    batchrun,
    image_job,
    outputs,
    run_job,
    start_simulator,
    write_faults,
    write_spec,
)

# Shipped rates of gemini-3.1-flash-image, USD per million tokens (batchrun/data/prices.json).
INPUT_RATE, OUTPUT_RATE, IMAGE_RATE = 0.5, 3.0, 60.0
CEILING_512 = 4096 + 2 * 747
THINKING = 9000


def by_hand(row: dict) -> float:
    text = (row["output_text_tokens"] or 0) + (row["thoughts_tokens"] or 0)
    return (row["prompt_tokens"] * INPUT_RATE + text * OUTPUT_RATE + row["output_image_tokens"] * IMAGE_RATE) / 1e6


@pytest.fixture
def thinker(tmp_path):
    faults = write_faults(tmp_path, "thinker", {"tokens": {"thinking": {"mean": THINKING}}})
    simulator = start_simulator(tmp_path, faults=faults)
    yield simulator
    simulator.stop()


def test_the_estimate_states_the_practical_ceiling_and_the_setting_that_bounds_it(tmp_path, thinker):
    spec = write_spec(tmp_path, image_job("ceiling", thinker.url, tmp_path))
    result = batchrun(tmp_path, "estimate", str(spec), "--json", key=None)
    assert result.returncode == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    (stated,) = model["assumptions"]
    assert (stated["requests"], stated["thinking_tokens"], stated["ceiling_tokens"]) == (8, 850, CEILING_512)
    assert stated["narrow"].startswith(f"set generationConfig.maxOutputTokens to {CEILING_512:,} to bound it")
    text = batchrun(tmp_path, "estimate", str(spec), key=None).stdout
    assert "  assumptions (a request)" in text


def test_replies_past_the_practical_ceiling_are_recorded_at_their_true_cost_and_the_run_stops_at_the_cap(
        tmp_path, thinker):
    # each request reserves about $0.062 (5,590 text and thinking + a 747-token image); each reply costs about
    # $0.072 (9,000 thinking). Under a $0.20 cap three fit in flight at once, together $0.217: past the cap.
    spec = write_spec(tmp_path, image_job("ceiling", thinker.url, tmp_path, limits={"concurrency": 3}))

    result = run_job(tmp_path, spec, "--max-cost", "0.2")

    assert result.returncode == 4, result.stderr
    rows = outputs(tmp_path, "ceiling").rows()
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert row["thoughts_tokens"] == THINKING > CEILING_512
        assert row["cost_usd"] == pytest.approx(by_hand(row), rel=1e-9)
    assert sum(r["cost_usd"] for r in rows) > 0.2
    assert "set generationConfig.maxOutputTokens to keep spending within the cap" in result.stderr
    assert_no_key(tmp_path, result.stderr)
