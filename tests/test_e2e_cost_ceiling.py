"""End to end: the high bound of an image request without maxOutputTokens is its model's practical ceiling;
a reply that thinks past it is recorded at its true cost, and the budget, which reserves the model's own
output limit, still never lets spending pass the cap.

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


def test_replies_past_the_practical_ceiling_never_take_spending_past_the_cap(tmp_path, thinker):
    # The estimate's high bound takes 5,590 text and thinking tokens a request; each reply thinks 9,000
    # (about $0.072). The budget reserves the model's own limit (32,768: about $0.144 a request), so
    # under a $0.30 cap two fit in flight, and the run stops before the next could pass the cap.
    spec = write_spec(tmp_path, image_job("ceiling", thinker.url, tmp_path, limits={"concurrency": 3}))

    result = run_job(tmp_path, spec, "--max-cost", "0.3")

    assert result.returncode == 4, result.stderr
    rows = outputs(tmp_path, "ceiling").rows()
    assert 2 <= len(rows) < 8 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert row["thoughts_tokens"] == THINKING > CEILING_512
        assert row["cost_usd"] == pytest.approx(by_hand(row), rel=1e-9)
    assert sum(r["cost_usd"] for r in rows) <= 0.3
    assert "replies cost more than the worst case" not in result.stderr
    assert_no_key(tmp_path, result.stderr)
