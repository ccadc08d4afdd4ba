"""The estimate's stated assumptions: per model and kind of request, what it expects and why, the ceiling
its high bound takes, and the setting that would narrow it."""

from __future__ import annotations

import json

import pytest
from test_estimate import IMAGE_1K, TODAY, body, write_manifest

from batchrun.cost.estimate import estimate_manifest, estimate_report, format_estimate
from batchrun.cost.modeltable import IMAGE_CAPTION_CEILING, lookup_model, practical_output_tokens
from batchrun.cost.pricing import PriceCatalog


@pytest.fixture()
def catalog() -> PriceCatalog:
    return PriceCatalog.load()


def stated(tmp_path, catalog, rows):
    est = estimate_manifest(write_manifest(tmp_path / "m.parquet", rows), catalog, today=TODAY)
    return {m.model: m.assumptions for m in est.models}


@pytest.mark.parametrize(("model", "size", "text_allowed", "ceiling"), [
    ("gemini-3.1-flash-image", "1K", True, 4096 + 2 * 1120 + IMAGE_CAPTION_CEILING),
    ("gemini-3.1-flash-image", "4K", False, 4096 + 2 * 2520),
    ("gemini-3-pro-image", None, True, 4096 + 2 * 1120 + IMAGE_CAPTION_CEILING),
    ("gemini-3.1-flash-lite-image", None, True, 4096),  # 2,048 + 2 x 1,120 + 256 passes its 4,096 limit
    ("gemini-2.5-flash-image", None, True, IMAGE_CAPTION_CEILING),  # does not think, no interim images
    ("gemini-2.5-flash", None, True, 65536),  # a text model: its own limit
])
def test_the_practical_ceiling_of_each_model(model, size, text_allowed, ceiling):
    assert practical_output_tokens(lookup_model(model), size, text_allowed) == ceiling


def test_an_image_request_without_max_output_tokens_takes_the_practical_ceiling_and_says_how_to_bound_it(
        tmp_path, catalog):
    (a,) = stated(tmp_path, catalog, [("gemini-3.1-flash-image", body(**IMAGE_1K))] * 3)["gemini-3.1-flash-image"]
    assert (a.requests, a.output_text_tokens, a.thinking_tokens, a.ceiling_tokens) == (3, 0, 850, 6336)
    assert a.output_text_rule == "none: responseModalities is IMAGE only"
    assert a.thinking_rule.startswith("gemini-3.1-flash-image at its default (minimal); Gemini 3 image models think")
    assert a.ceiling_rule == ("no maxOutputTokens: the model's practical ceiling (4,096 thinking + 2 interim images "
                              "x 1,120; batchrun.cost.modeltable)")
    assert a.narrow.startswith("set generationConfig.maxOutputTokens to 6,336 to bound it")


def test_a_request_s_own_max_output_tokens_is_its_ceiling_and_nothing_is_left_to_narrow(tmp_path, catalog):
    config = dict(IMAGE_1K, responseModalities=["TEXT", "IMAGE"], maxOutputTokens=3000,
                  thinkingConfig={"thinkingLevel": "high"})
    (a,) = stated(tmp_path, catalog, [("gemini-3.1-flash-image", body(**config))])["gemini-3.1-flash-image"]
    assert (a.output_text_tokens, a.thinking_tokens, a.ceiling_tokens) == (25, 2000, 3000)
    assert a.output_text_rule == "a short caption beside the image (25 tokens; TEXT is allowed)"
    assert a.thinking_rule.startswith("gemini-3.1-flash-image at thinkingLevel high;")
    assert (a.ceiling_rule, a.narrow) == ("the request's maxOutputTokens", None)


def test_a_text_model_without_max_output_tokens_keeps_its_limit_and_names_a_bound_twice_the_expected(
        tmp_path, catalog):
    (a,) = stated(tmp_path, catalog, [("gemini-2.5-flash", body())])["gemini-2.5-flash"]
    assert (a.output_text_tokens, a.thinking_tokens, a.ceiling_tokens) == (800, 1024, 65536)
    assert a.thinking_rule == "the model's default dynamic thinking: what a typical request spends"
    assert a.ceiling_rule.startswith("no maxOutputTokens: the model's own output limit")
    assert a.narrow.startswith("set generationConfig.maxOutputTokens to 4,096 to bound it")  # 2 x 1,824, rounded up


@pytest.mark.parametrize(("config", "thinking", "rule"), [
    ({"thinkingConfig": {"thinkingBudget": 0}}, 0, "thinkingBudget 0 turns thinking off"),
    ({"thinkingConfig": {"thinkingBudget": 300}}, 300, "thinkingBudget 300, of which a typical request spends this much"),
])
def test_a_thinking_budget_is_the_rule_given(tmp_path, catalog, config, thinking, rule):
    (a,) = stated(tmp_path, catalog, [("gemini-2.5-flash", body(**config))])["gemini-2.5-flash"]
    assert (a.thinking_tokens, a.thinking_rule) == (thinking, rule)


def test_a_text_ceiling_below_the_typical_answer_takes_a_quarter_of_it(tmp_path, catalog):
    (a,) = stated(tmp_path, catalog, [("gemini-3-flash-preview", body(maxOutputTokens=2000))])["gemini-3-flash-preview"]
    assert (a.output_text_tokens, a.output_text_rule) == (500, "0.25 of the 2,000-token ceiling")
    assert (a.thinking_tokens, a.thinking_rule) == (1500, "the model's default thinkingLevel (high)")  # what is left


def test_kinds_of_request_are_stated_apart_the_most_requests_first(tmp_path, catalog):
    rows = [("gemini-2.5-flash", body())] + [("gemini-2.5-flash", body(thinkingConfig={"thinkingBudget": 0}))] * 2
    kinds = stated(tmp_path, catalog, rows)["gemini-2.5-flash"]
    assert [(a.requests, a.thinking_tokens) for a in kinds] == [(2, 0), (1, 1024)]


def test_the_text_report_has_an_assumptions_block_per_model(tmp_path, catalog):
    rows = [("gemini-3.1-flash-image", body(**IMAGE_1K)), ("gemini-2.5-flash", body())]
    text = format_estimate(estimate_manifest(write_manifest(tmp_path / "m.parquet", rows), catalog, today=TODAY))
    block = text.split("gemini-3.1-flash-image: 1 requests")[1].split("\n\n")[0].splitlines()
    start = block.index("  assumptions (a request)")
    assert [line.split(":")[0].strip() for line in block[start + 1:start + 5]] == [
        "text 0", "thinking 850", "high 6,336 text and thinking",
        "set generationConfig.maxOutputTokens to 6,336 to bound it (a reply that would spend more is cut short, "
        "without its image)"]
    assert text.count("  assumptions (a request)") == 2


def test_json_carries_the_assumptions_under_each_model(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-3-pro-image", body())])
    data = json.loads(estimate_report(path, tmp_path, catalog, json_out=True, today=TODAY))
    (a,) = data["models"][0]["assumptions"]
    assert set(a) == {"requests", "output_text_tokens", "output_text_rule", "thinking_tokens", "thinking_rule",
                      "ceiling_tokens", "ceiling_rule", "narrow"}
    assert (a["output_text_tokens"], a["thinking_tokens"], a["ceiling_tokens"]) == (25, 850, 6592)


def test_an_unknown_model_says_what_it_assumed(tmp_path, catalog):
    (a,) = stated(tmp_path, catalog, [("acme-x", body())])["acme-x"]
    assert a.thinking_rule == "an unknown model: 1,024 assumed"
    assert a.ceiling_rule == "an unknown model: 8,192 assumed" and a.narrow is not None
