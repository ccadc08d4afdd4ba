"""Gemini's OpenAPI-subset `responseSchema` as standard JSON Schema, so that `jsonschema` can check replies.

Written for the tests from Gemini's Schema fields (uppercase `type`, `nullable`, camelCase or
snake_case keywords), independently of the simulator's own reader.
"""

from __future__ import annotations

from typing import Any

_RENAMED = {
    "any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
    "max_length": "maxLength", "min_properties": "minProperties", "max_properties": "maxProperties",
}
_ANNOTATIONS = {"propertyOrdering", "property_ordering", "nullable", "example", "title", "description", "default"}


def as_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema that accepts what `schema` (Gemini's responseSchema) describes."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = _RENAMED.get(key, key)
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            value = [value.lower(), "null"] if schema.get("nullable") else value.lower()
        elif key == "format" and value == "enum":
            continue
        elif key == "properties":
            value = {name: as_json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            value = as_json_schema(value)
        elif key == "anyOf":
            value = [as_json_schema(sub) for sub in value]
        out[key] = value
    return out
