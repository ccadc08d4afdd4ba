"""End to end: jobs that ask for JSON by schema, and a limit thinking eats, against `batchrun simulate`.

Product descriptions as JSON with a few fields and an enum, once as Gemini's `responseSchema` (OpenAPI
subset, uppercase types) and once as `responseJsonSchema` (JSON Schema): every reply the CLI saved
validates against the spec's own schema (checked with jsonschema), and a second simulator with the
same seed gives the same replies. A text job whose maxOutputTokens the model's thinking uses up gets
MAX_TOKENS replies with no text, which the runner retries and finally reports as failed.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from e2e_helpers import outputs, run_job, serve, text_job, write_spec  # noqa: F401 (serve is a fixture)
from openapi_schema import as_json_schema

PRODUCTS = [
    {"sku": "MUG-001", "title": "Classic Mug", "color": "sage", "material": "stoneware"},
    {"sku": "BWL-014", "title": "Ramen Bowl", "color": "ivory", "material": "porcelain"},
    {"sku": "VAS-007", "title": "Bud Vase", "color": "red", "material": "glass"},
    {"sku": "PLT-102", "title": "Dinner Plate", "color": "black", "material": "earthenware"},
    {"sku": "JUG-033", "title": "Milk Jug", "color": "blue", "material": "enamel"},
]
TONES = ["playful", "formal", "minimal"]

RESPONSE_SCHEMA = {  # as a Gemini user writes it in a job spec
    "type": "OBJECT",
    "properties": {
        "headline": {"type": "STRING", "description": "At most 8 words", "maxLength": 60},
        "description": {"type": "STRING", "description": "Two or three sentences"},
        "category": {"type": "STRING", "format": "enum", "enum": ["drinkware", "tableware", "decor"]},
        "price_usd": {"type": "NUMBER", "minimum": 5, "maximum": 80},
        "bullets": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2, "maxItems": 4},
        "dishwasher_safe": {"type": "BOOLEAN", "nullable": True},
    },
    "required": ["headline", "description", "category", "bullets"],
    "propertyOrdering": ["headline", "category", "description", "bullets"],
}

RESPONSE_JSON_SCHEMA = {
    "$defs": {"Category": {"type": "string", "enum": ["drinkware", "tableware", "decor"]}},
    "type": "object",
    "properties": {
        "headline": {"type": "string", "maxLength": 60},
        "description": {"type": "string", "minLength": 40},
        "category": {"$ref": "#/$defs/Category"},
        "sku_code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
        "stock": {"type": "integer", "minimum": 0},
        "bullets": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4,
                    "uniqueItems": True},
    },
    "required": ["headline", "description", "category", "bullets"],
    "additionalProperties": False,
}

CASES = {
    "responseSchema": (RESPONSE_SCHEMA, as_json_schema(RESPONSE_SCHEMA)),
    "responseJsonSchema": (RESPONSE_JSON_SCHEMA, RESPONSE_JSON_SCHEMA),
}


def descriptions_job(name: str, url: str, key: str, schema: dict) -> dict:
    """Product descriptions as JSON: 5 products x 3 tones, with `schema` under generationConfig[key]."""
    return text_job(name, url, 0, inputs={"rows": PRODUCTS}, matrix={"tone": TONES}, request={
        "system": "You write concise, factual product copy for an online homeware catalog.",
        "prompt": "Write a {{ tone }} catalog entry for {{ sku }}: the {{ title }} in {{ color }} {{ material }}.",
        "generation_config": {"maxOutputTokens": 2048, "responseMimeType": "application/json",
                              key: copy.deepcopy(schema)},
    })


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_reply_of_a_json_schema_job_validates_against_the_specs_schema(tmp_path, serve, key):
    schema, checker = CASES[key]
    simulator = serve(profile="clean", seed=11)
    spec = write_spec(tmp_path, descriptions_job("listings", simulator.url, key, schema))

    result = run_job(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "listings").rows()
    assert len(rows) == len(PRODUCTS) * len(TONES) and {r["status"] for r in rows} == {"ok"}
    replies = [json.loads(r["text"]) for r in rows]
    validator = jsonschema.Draft202012Validator(checker, format_checker=jsonschema.FormatChecker())
    for reply in replies:
        validator.validate(reply)
    assert len({json.dumps(r, sort_keys=True) for r in replies}) == len(replies)  # each request its own
    assert {r["category"] for r in replies} == {"drinkware", "tableware", "decor"}

    again = serve(profile="clean", seed=11)
    spec = write_spec(tmp_path, descriptions_job("listings-again", again.url, key, schema))
    assert run_job(tmp_path, spec).returncode == 0
    by_id = {r["request_id"]: r["text"] for r in rows}
    assert {r["request_id"]: r["text"] for r in outputs(tmp_path, "listings-again").rows()} == by_id


def test_a_limit_that_thinking_uses_up_gives_max_tokens_with_no_text_and_failed_rows(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("starved", simulator.url, 4, retry={"max_attempts": 2},
                                         request={"generation_config": {"maxOutputTokens": 48}}))

    result = run_job(tmp_path, spec)

    assert result.returncode == 3, result.stderr
    assert [line["outcome"] for line in simulator.requests()] == ["max_tokens"] * 8
    rows = outputs(tmp_path, "starved").rows()
    assert {(r["status"], r["finish_reason"], r["error_kind"], r["thoughts_tokens"]) for r in rows} == {
        ("failed", "MAX_TOKENS", "no_text", 48)}
