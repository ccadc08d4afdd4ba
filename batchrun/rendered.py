"""The provider-neutral rendered request: what `expand` makes of one row, and what a provider sends.

A RenderedRequest is plain JSON (it is stored as such in the manifest's `body` column, and its
canonical JSON is what the request id hashes):

    system           the system text, or None
    parts            the user turn, in order: {"text": str} or {"image": "sha256:<hex>", "mime": str}
    options          generation options, named as the spec names them (temperature, maxOutputTokens,
                     responseModalities, imageConfig, thinkingConfig, seed ...), response schema excluded
    response_schema  None, or {"dialect": "openapi" | "json_schema", "schema": {...}}
    tools            the spec's tools, or None
    extras           what the spec passes through to one provider as is (Gemini: safetySettings)

An image is referenced by its content hash; its bytes are read when the provider sends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

from .records import IMAGE_PLACEHOLDER_PREFIX, ImageRef

# generation_config keys that hold a response schema, and the dialect each names
SCHEMA_KEYS = {
    "responseSchema": "openapi",
    "response_schema": "openapi",
    "responseJsonSchema": "json_schema",
    "response_json_schema": "json_schema",
}


class ResponseSchema(TypedDict):
    dialect: str
    schema: Any


class RenderedRequest(TypedDict):
    system: str | None
    parts: list[dict[str, str]]
    options: dict[str, Any]
    response_schema: ResponseSchema | None
    tools: list[dict[str, Any]] | None
    extras: dict[str, Any]


def image_part(ref: ImageRef) -> dict[str, str]:
    """The part of a user turn that references an input image by its content hash."""
    return {"image": IMAGE_PLACEHOLDER_PREFIX + ref.sha256, "mime": ref.mime}


def split_schema(options: dict[str, Any]) -> tuple[dict[str, Any], ResponseSchema | None]:
    """Generation options without their response schema, and the schema with its dialect."""
    if not options or SCHEMA_KEYS.keys().isdisjoint(options):
        return options, None
    rest = {k: v for k, v in options.items() if k not in SCHEMA_KEYS}
    key = next(k for k in options if k in SCHEMA_KEYS)
    return rest, {"dialect": SCHEMA_KEYS[key], "schema": options[key]}


def rendered_request(system: str | None, parts: list[dict[str, str]], options: dict[str, Any] | None,
                     tools: list[dict[str, Any]] | None, extras: dict[str, Any]) -> RenderedRequest:
    """A RenderedRequest, the response schema taken out of the options; no tools is None."""
    options, schema = split_schema(options or {})
    return {"system": system, "parts": parts, "options": options, "response_schema": schema,
            "tools": tools or None, "extras": extras}


def option(options: dict[str, Any], camel: str, snake: str) -> Any:
    """A generation option given under its camelCase or snake_case name."""
    return options.get(camel, options.get(snake))


def texts(request: RenderedRequest) -> Iterator[str]:
    """Every text the request sends: the user turn's texts, then the system text."""
    for part in request["parts"]:
        if "text" in part:
            yield part["text"]
    if request["system"] is not None:
        yield request["system"]
