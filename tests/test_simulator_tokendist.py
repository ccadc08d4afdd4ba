"""Seeded token distributions: the faults file's `tokens:` section, log-normal draws per request and seed,
per-model overrides, and maxOutputTokens still cutting what a draw wants.

Sample means are checked over N requests against a stated tolerance: for a log-normal of log-sd s the
relative standard deviation is sqrt(exp(s²) - 1); 4.5 standard errors of the mean say how close a mean
is promised to be, for any seed. Draws are seeded, so these figures are the same on every run.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest

from batchrun.errors import SpecError
from batchrun.simulator.content import ContentMaker, plan_for
from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig, load_faults_file
from batchrun.simulator.inbound import read_generate_request
from batchrun.simulator.tokendist import LogNormal, TokenDistributions, draw_tokens, standard_score

N = 1000
TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3-pro-image-preview"
SHAPE = {"thinking": {"mean": 2000, "spread": 0.5}, "text": {"mean": 300, "spread": 0.5}}


def tolerance(spread: float, n: int = N) -> float:
    """A relative tolerance on a sample mean of n log-normal draws: 4.5 standard errors."""
    return 4.5 * math.sqrt(math.exp(spread**2) - 1) / math.sqrt(n)


def request(text: str, **config):
    body: dict = {"contents": [{"parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    return read_generate_request(body)


def content(model: str, text: str, tokens: dict | None, seed: int = 0, **config):
    req = request(text, **config)
    distributions = TokenDistributions.model_validate(tokens) if tokens is not None else None
    return ContentMaker(seed, tokens=distributions).make(model, req, plan_for(model, req), thought_images=0)


def test_a_faults_file_reads_a_tokens_section_for_all_models_and_per_model(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("tokens:\n  thinking: {mean: 2000, spread: 0.5}\n  text: {mean: 300}\n"
                    "  models:\n    gemini-3-pro-image-preview: {thinking: {mean: 900, spread: 0.2}}\n")
    tokens = load_faults_file(path).tokens
    assert tokens.thinking_for("gemini-2.5-flash") == LogNormal(mean=2000, spread=0.5)
    assert tokens.thinking_for(IMAGE_MODEL) == LogNormal(mean=900, spread=0.2)
    assert tokens.text_for(IMAGE_MODEL) == LogNormal(mean=300, spread=0.0)  # not overridden: the section's


@pytest.mark.parametrize("text,where", [
    ("tokens: {thinking: {mean: 0}}\n", "tokens.thinking.mean"),
    ("tokens: {text: {mean: 10, sd: 2}}\n", "tokens.text.sd"),
    ("tokens: {thinking: {mean: 10, spread: -1}}\n", "tokens.thinking.spread"),
])
def test_a_bad_tokens_section_names_its_yaml_path(tmp_path, text, where):
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=where.replace(".", r"\.")):
        load_faults_file(path)


def test_no_tokens_section_keeps_the_fixed_lengths():
    assert FaultConfig().tokens is None
    assert content(TEXT_MODEL, "a mug", None).text == content(TEXT_MODEL, "a mug", None).text
    assert 16 <= content(TEXT_MODEL, "a mug", None).out_text_tokens <= 111


def test_a_spread_of_zero_gives_the_mean_every_time():
    flat = {"thinking": {"mean": 700}, "text": {"mean": 250}}
    for i in range(20):
        c = content(TEXT_MODEL, f"mug {i}", flat)
        assert c.thoughts_tokens == 700 and abs(c.out_text_tokens - 250) <= 1


def test_the_same_request_and_seed_draw_the_same_counts_and_another_seed_others():
    first = [content(TEXT_MODEL, f"mug {i}", SHAPE, seed=1) for i in range(30)]
    again = [content(TEXT_MODEL, f"mug {i}", SHAPE, seed=1) for i in range(30)]
    other = [content(TEXT_MODEL, f"mug {i}", SHAPE, seed=2) for i in range(30)]
    assert [c.thoughts_tokens for c in first] == [c.thoughts_tokens for c in again]
    assert [c.thoughts_tokens for c in first] != [c.thoughts_tokens for c in other]
    assert sum(c.out_text_tokens for c in first) != sum(c.out_text_tokens for c in other)


def test_draws_have_the_configured_mean_and_spread():
    counts = [content(TEXT_MODEL, f"product {i}", SHAPE) for i in range(N)]
    thinking = [c.thoughts_tokens for c in counts]
    text = [c.out_text_tokens for c in counts]
    assert abs(statistics.fmean(thinking) / 2000 - 1) < tolerance(0.5)
    assert abs(statistics.fmean(text) / 300 - 1) < tolerance(0.5) + 0.01  # a sentence ends on a word
    assert abs(statistics.stdev(math.log(t) for t in thinking) - 0.5) < 0.05


def test_thinking_and_text_draws_of_one_reply_are_independent():
    digests = [bytes([i % 256, i // 256]) * 16 for i in range(N)]
    pairs = [(standard_score(d, "thinking"), standard_score(d, "text")) for d in digests]
    assert abs(statistics.correlation(*zip(*pairs))) < 4.5 / math.sqrt(N)


def test_a_models_own_distribution_wins_over_the_sections():
    tokens = {**SHAPE, "models": {IMAGE_MODEL: {"thinking": {"mean": 900}}}}
    assert content(IMAGE_MODEL, "a mug", tokens).thoughts_tokens == 900
    assert content(TEXT_MODEL, "a mug", {**tokens, "thinking": {"mean": 1234}}).thoughts_tokens == 1234


def test_an_image_caption_takes_the_drawn_length():
    c = content(IMAGE_MODEL, "a red mug", {"text": {"mean": 200}})
    assert c.text.startswith("Here is the image: a red mug.") and abs(c.out_text_tokens - 200) <= 1
    assert c.image is not None and c.out_image_tokens == 1120


def test_a_json_answer_without_a_schema_takes_the_drawn_length_and_stays_json():
    c = content(TEXT_MODEL, "a mug", {"text": {"mean": 400}}, responseMimeType="application/json")
    assert json.loads(c.text)["prompt"] == "a mug" and abs(c.out_text_tokens - 400) <= 2


def test_a_model_that_does_not_think_draws_no_thinking_and_budget_zero_turns_it_off():
    assert content("gemini-2.5-flash-image", "a mug", SHAPE).thoughts_tokens == 0
    assert content(TEXT_MODEL, "a mug", SHAPE, thinkingConfig={"thinkingBudget": 0}).thoughts_tokens == 0


def test_thinking_budget_caps_a_draw():
    flat = {"thinking": {"mean": 2000}}
    assert content(TEXT_MODEL, "a mug", flat, thinkingConfig={"thinkingBudget": 500}).thoughts_tokens == 500


def test_max_output_tokens_still_cuts_a_draw():
    c = content(TEXT_MODEL, "a mug", {"thinking": {"mean": 2000}, "text": {"mean": 300}}, maxOutputTokens=2100)
    assert c.truncated and c.thoughts_tokens == 2000 and c.out_text_tokens == 100
    image = content(IMAGE_MODEL, "a mug", {"thinking": {"mean": 5000}}, maxOutputTokens=4000)
    assert image.truncated and image.image is None and image.thoughts_tokens == 4000


def test_the_server_core_reports_drawn_counts_in_usage_metadata():
    core = SimulatorCore(FaultConfig.model_validate({"tokens": {"thinking": {"mean": 1500}}}), 0)
    body = json.dumps({"contents": [{"parts": [{"text": "a mug"}]}]}).encode()
    reply = core.handle("POST", f"/v1beta/models/{TEXT_MODEL}:generateContent", {}, {}, body)
    assert json.loads(reply.body)["usageMetadata"]["thoughtsTokenCount"] == 1500


def test_draw_tokens_is_at_least_one_token():
    assert draw_tokens(LogNormal(mean=0.01, spread=0.1), b"x" * 32, "text") == 1
