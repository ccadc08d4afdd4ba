"""Reply content: modalities per model, truncation at maxOutputTokens, thinking tokens."""

from __future__ import annotations

import json

from batchrun.simulator.content import ContentMaker, plan_for
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


def test_max_output_tokens_truncates_the_text():
    _, content = make("gemini-2.5-flash", {"maxOutputTokens": 5})
    assert content.truncated and content.out_text_tokens == 5 and len(content.text) == 20


def test_thinking_tokens_follow_the_model_and_budget_zero_turns_them_off():
    assert make("gemini-2.5-flash")[1].thoughts_tokens > 0
    assert make("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 0}})[1].thoughts_tokens == 0
    assert make("gemini-2.5-flash-image")[1].thoughts_tokens == 0


def test_json_mime_gives_json_text():
    _, content = make("gemini-2.5-flash", {"responseMimeType": "application/json"})
    assert json.loads(content.text)["prompt"] == "a mug"
