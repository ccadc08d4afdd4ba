"""Reply content: modalities per model, text lengths, answers to a schema, maxOutputTokens spent on
thinking first and then on text, as Gemini spends it."""

from __future__ import annotations

import json

import jsonschema
import pytest

from batchrun.errors import SchemaError
from batchrun.simulator.content import (
    MAX_TEXT_TOKENS,
    MIN_TEXT_TOKENS,
    ContentMaker,
    OutputSpend,
    plan_for,
    spend_output,
)
from batchrun.simulator.inbound import read_generate_request


def make(model: str, config: dict | None = None, text: str = "a mug"):
    body = {"contents": [{"parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    request = read_generate_request(body)
    plan = plan_for(model, request)
    return plan, ContentMaker(seed=0).make(model, request, plan, thought_images=0)


def test_image_models_answer_text_and_image_by_default():
    plan, content = make("gemini-2.5-flash-image")
    assert plan.wants_text and plan.wants_image and content.image and content.text.startswith("Here is the image")


def test_unknown_models_answer_images_only_when_asked():
    assert make("mystery-model")[1].image is None
    plan, content = make("mystery-model", {"responseModalities": ["IMAGE"]})
    assert content.image and content.out_image_tokens == 1290 and content.text is None


def test_max_output_tokens_truncates_the_text_of_a_model_that_does_not_think():
    _, content = make("gemini-2.5-flash", {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 0}})
    assert content.truncated and content.out_text_tokens == 5 and len(content.text) == 20


def test_thinking_that_uses_all_of_max_output_tokens_leaves_no_text():
    _, content = make("gemini-2.5-flash", {"maxOutputTokens": 50})
    assert content.truncated and content.text is None
    assert (content.thoughts_tokens, content.out_text_tokens) == (50, 0)


BUDGET_40 = {"thinkingConfig": {"thinkingBudget": 40}}  # thinking is 64 tokens or more: the budget caps it


def test_thinking_budget_caps_thinking():
    assert make("gemini-2.5-flash", BUDGET_40)[1].thoughts_tokens == 40


def test_text_gets_what_thinking_leaves_of_max_output_tokens():
    _, content = make("gemini-2.5-flash", {**BUDGET_40, "maxOutputTokens": 43})
    assert content.truncated and content.thoughts_tokens == 40 and content.out_text_tokens == 3


def test_a_limit_above_thinking_and_the_longest_text_cuts_nothing():
    _, content = make("gemini-2.5-flash", {**BUDGET_40, "maxOutputTokens": 40 + MAX_TEXT_TOKENS})
    assert not content.truncated and content.thoughts_tokens == 40 and content.text.endswith(".")


def test_an_image_model_whose_thinking_uses_the_limit_draws_no_image():
    _, content = make("gemini-3.1-flash-image", {"responseModalities": ["IMAGE"], "maxOutputTokens": 40})
    assert content.truncated and content.image is None and content.thoughts_tokens == 40
    _, unlimited = make("gemini-3.1-flash-image", {"responseModalities": ["IMAGE"]})
    assert not unlimited.truncated and unlimited.image is not None


@pytest.mark.parametrize(
    "limit,thinking,drafts,text,spent",
    [
        (None, 100, 2, 30, OutputSpend(100 + 2 * 1120, 2, None, False)),
        (1000, 100, 0, 30, OutputSpend(100, 0, 900, False)),
        (120, 100, 0, 30, OutputSpend(100, 0, 20, True)),
        (80, 100, 0, 30, OutputSpend(80, 0, 0, True)),
        (1500, 100, 2, 0, OutputSpend(1500, 1, 0, True)),  # room for one interim image, not two
        (0, 0, 0, 5, OutputSpend(0, 0, 0, True)),
    ],
)
def test_spend_output_pays_thinking_first_then_text(limit, thinking, drafts, text, spent):
    assert spend_output(limit, thinking, drafts, 1120, text) == spent


def test_text_answers_are_16_to_111_tokens_long_and_quote_the_prompt():
    lengths = set()
    for i in range(600):
        _, content = make("gemini-2.5-flash", text=f"describe mug {i}")
        assert f"to: describe mug {i}." in content.text
        lengths.add(content.out_text_tokens)
    assert min(lengths) == MIN_TEXT_TOKENS and max(lengths) == MAX_TEXT_TOKENS


def test_thinking_tokens_follow_the_model_and_budget_zero_turns_them_off():
    assert make("gemini-2.5-flash")[1].thoughts_tokens > 0
    assert make("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 0}})[1].thoughts_tokens == 0
    assert make("gemini-2.5-flash-image")[1].thoughts_tokens == 0


def test_json_mime_gives_json_text():
    _, content = make("gemini-2.5-flash", {"responseMimeType": "application/json"})
    assert json.loads(content.text)["prompt"] == "a mug"


SCHEMA = {"type": "OBJECT", "properties": {"name": {"type": "STRING"},
                                           "tone": {"type": "STRING", "enum": ["playful", "formal"]}},
          "required": ["name", "tone"]}


@pytest.mark.parametrize("key", ["responseSchema", "responseJsonSchema"])
def test_a_schema_gets_json_that_follows_it_the_same_for_the_same_request(key):
    config = {"responseMimeType": "application/json", key: SCHEMA}
    answers = [json.loads(make("gemini-2.5-flash", config, text=f"mug {i}")[1].text) for i in range(20)]
    for answer in answers:
        jsonschema.validate(answer, {"type": "object", "properties": {"tone": {"enum": ["playful", "formal"]}},
                                     "required": ["name", "tone"]})
    assert answers[0] == json.loads(make("gemini-2.5-flash", config, text="mug 0")[1].text)
    assert len({json.dumps(a) for a in answers}) > 1


def test_enum_mime_answers_one_bare_enum_value():
    config = {"responseMimeType": "text/x.enum", "responseSchema": {"type": "STRING", "enum": ["red", "blue"]}}
    assert make("gemini-2.5-flash", config)[1].text in ("red", "blue")


def test_a_schema_no_value_fits_fails_the_plan():
    request = read_generate_request({"contents": [{"parts": [{"text": "x"}]}],
                                     "generationConfig": {"responseSchema": {"type": "TUPLE"}}})
    with pytest.raises(SchemaError):
        plan_for("gemini-2.5-flash", request)
