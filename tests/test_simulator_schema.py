"""Values made for a response schema: valid against it (checked by jsonschema), in order, deterministic."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from openapi_schema import as_json_schema

from batchrun.errors import SchemaError
from batchrun.simulator.schema import schema_instance

WORDS = ("mug", "glazed", "stoneware", "soft", "morning", "light", "sage", "by hand")
SEEDS = range(40)

PRODUCT_OPENAPI = {  # Gemini's responseSchema: uppercase types, camelCase keywords
    "type": "OBJECT",
    "properties": {
        "headline": {"type": "STRING", "maxLength": 40},
        "description": {"type": "STRING", "minLength": 60},
        "tone": {"type": "STRING", "format": "enum", "enum": ["playful", "formal", "warm"]},
        "price_usd": {"type": "NUMBER", "minimum": 4.5, "maximum": 60},
        "stock": {"type": "INTEGER", "minimum": 0, "maximum": 500},
        "dishwasher_safe": {"type": "BOOLEAN"},
        "bullets": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2, "maxItems": 4},
        "sku": {"type": "STRING", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "discontinued_on": {"type": "STRING", "format": "date-time", "nullable": True},
    },
    "required": ["headline", "description", "tone", "bullets"],
    "propertyOrdering": ["tone", "headline", "description"],
}

SDK_SNAKE_CASE = {  # what google-genai sends for a pydantic model: snake_case keywords inside the schema
    "type": "OBJECT",
    "properties": {"name": {"type": "STRING"}, "tags": {"type": "ARRAY", "items": {"type": "STRING"},
                                                        "min_items": 3, "max_items": 3}},
    "property_ordering": ["tags", "name"],
    "required": ["name", "tags"],
}

CATALOG_JSON_SCHEMA = {  # responseJsonSchema: lowercase types, $defs and $ref, the rest of JSON Schema
    "$defs": {
        "Colour": {"enum": ["red", "sage", "ivory"]},
        "Variant": {
            "type": "object",
            "properties": {"colour": {"$ref": "#/$defs/Colour"}, "size": {"type": "string", "const": "M"},
                           "weight_g": {"type": "integer", "exclusiveMinimum": 100, "exclusiveMaximum": 103}},
            "required": ["colour", "size"],
            "additionalProperties": False,
        },
    },
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "variants": {"type": "array", "items": {"$ref": "#/$defs/Variant"}, "minItems": 1, "uniqueItems": True},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": False},
        "note": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]},
        "codes": {"type": "array", "items": {"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 99}},
        "kind": {"type": ["string", "null"], "enum": ["mug", "bowl"]},
        "rating": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
        "contact": {"type": "string", "format": "email"},
        "extra": {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]},
        "any_map": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    },
    "required": ["id", "variants", "pair", "note", "codes", "kind"],
}

NODE = {"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
TREE = {"$defs": {"Node": NODE}, "$ref": "#/$defs/Node"}  # recursive: a node has children that are nodes


def made(schema: dict, seed: int = 0):
    return schema_instance(schema, random.Random(seed), WORDS)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_gemini_response_schema_gets_values_valid_against_it(seed):
    jsonschema.validate(made(PRODUCT_OPENAPI, seed), as_json_schema(PRODUCT_OPENAPI))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_json_schema_gets_values_valid_against_it(seed):
    value = made(CATALOG_JSON_SCHEMA, seed)
    jsonschema.Draft202012Validator(CATALOG_JSON_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(value)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_recursive_schema_ends_and_is_valid(seed):
    jsonschema.validate(made(TREE, seed), TREE)


def test_properties_come_in_property_ordering_then_as_declared():
    assert list(made(PRODUCT_OPENAPI)) == [
        "tone", "headline", "description", "price_usd", "stock", "dishwasher_safe", "bullets", "sku",
        "discontinued_on"]


def test_snake_case_keywords_as_the_sdk_sends_them_are_honoured():
    value = made(SDK_SNAKE_CASE)
    assert list(value) == ["tags", "name"] and len(value["tags"]) == 3


def test_the_same_random_state_gives_the_same_value_and_seeds_differ():
    assert made(PRODUCT_OPENAPI, 3) == made(PRODUCT_OPENAPI, 3)
    assert len({json.dumps(made(PRODUCT_OPENAPI, seed)) for seed in SEEDS}) == len(SEEDS)


def test_every_enum_value_turns_up():
    assert {made(PRODUCT_OPENAPI, seed)["tone"] for seed in SEEDS} == {"playful", "formal", "warm"}


def test_a_bare_scalar_schema_gives_a_scalar():
    assert isinstance(made({"type": "INTEGER", "minimum": 7, "maximum": 7}), int)
    assert made({"type": "INTEGER", "minimum": 7, "maximum": 7}) == 7
    assert made({"type": "STRING", "enum": ["only"]}) == "only"


@pytest.mark.parametrize(
    "schema,problem",
    [
        ({"type": "TUPLE"}, "unknown type 'tuple'"),
        ({"$ref": "#/$defs/Missing"}, "nothing is there"),
        ({"$ref": "https://example.com/schema.json"}, "only references within the schema"),
        ({"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}},
          "$ref": "#/$defs/A"}, "nests without end"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer lies between 5 and 4"),
        ({"type": "integer", "minimum": 1, "maximum": 4, "multipleOf": 5}, "no multiple of 5"),
    ],
)
def test_a_schema_no_value_fits_is_a_schema_error(schema, problem):
    with pytest.raises(SchemaError, match=problem):
        made(schema)
