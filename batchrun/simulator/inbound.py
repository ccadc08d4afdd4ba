"""What one generateContent or countTokens request asks for, read from its JSON body.

Accepts camelCase and snake_case field names, as Google's REST front end does, and image data in
standard or URL-safe base64, with or without padding (proto3 JSON accepts both; the google-genai SDK
sends URL-safe). Input images are measured from their header only (a base64 prefix is decoded, never
the whole image) so that token counts stay cheap; a part whose bytes are not an image makes the
request invalid. A response schema is read as given (`responseSchema`, Gemini's OpenAPI subset, or
`responseJsonSchema`, JSON Schema); the two are mutually exclusive.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from batchrun.cost.tokens import text_tokens

from ..errors import InvalidRequest
from .tiers import read_service_tier

_HEADER_CHARS = 1 << 16  # base64 characters decoded to find an image's size (48 KiB of bytes)
_URL_SAFE_TO_STANDARD = str.maketrans("-_", "+/")


@dataclass(frozen=True, slots=True)
class InputImage:
    mime: str
    width: int
    height: int


@dataclass(slots=True)
class GenerateRequest:
    """The parts of a request body the simulator's replies depend on."""

    digest: bytes  # sha256 of the canonical JSON body: same request, same reply
    prompt: str
    system: str
    prompt_text_tokens: int = 0
    images: list[InputImage] = field(default_factory=list)
    modalities: tuple[str, ...] = ()
    aspect_ratio: str | None = None
    image_size: str | None = None
    max_output_tokens: int | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None  # minimal | low | medium | high (the chat route's reasoning_effort)
    response_mime: str = "text/plain"
    response_schema: dict[str, Any] | None = None  # responseSchema or responseJsonSchema, as sent
    service_tier: str | None = None  # serviceTier as asked (simulator/tiers.py reads it)
    served_tier: str | None = None  # the tier that serves it, once the core has decided


def _get(mapping: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    if camel in mapping:
        return mapping[camel]
    return mapping.get(snake, default)


def _object(mapping: dict[str, Any], camel: str, snake: str) -> dict[str, Any]:
    """A nested JSON object field, {} when absent; InvalidRequest when it is not an object."""
    value = _get(mapping, camel, snake) or {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid JSON payload received. '{camel}' must be an object.")
    return value


def decode_base64(text: str) -> bytes:
    """Bytes from standard or URL-safe base64, padded or not; binascii.Error if it is neither."""
    standard = text.strip().translate(_URL_SAFE_TO_STANDARD)
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


def image_size(data: str) -> tuple[int, int]:
    """The (width, height) of a base64 image, read from its header; InvalidRequest if it is no image."""
    prefix = data[:_HEADER_CHARS]
    for chunk in (prefix[: len(prefix) - len(prefix) % 4], data):
        try:
            with Image.open(io.BytesIO(decode_base64(chunk))) as image:
                return image.size
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
            continue
    raise InvalidRequest("Unable to process input image. Please retry or report in Google AI Studio.")


FileImage = Callable[[str, str], InputImage]  # (fileUri, mimeType) -> the stored image (simulator/filerefs.py)


def _no_files(uri: str, mime: str) -> InputImage:
    raise InvalidRequest(f"fileData is not accepted here: send the image inline (file {uri})")


def _read_parts(parts: list[Any], texts: list[str], images: list[InputImage], file_image: FileImage) -> None:
    for part in parts:
        if not isinstance(part, dict):
            raise InvalidRequest("Invalid JSON payload received. A part must be an object.")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        blob = _get(part, "inlineData", "inline_data")
        if isinstance(blob, dict):
            mime = str(_get(blob, "mimeType", "mime_type", ""))
            width, height = image_size(str(blob.get("data", "")))
            images.append(InputImage(mime, width, height))
        file = _get(part, "fileData", "file_data")
        if isinstance(file, dict):
            images.append(file_image(str(_get(file, "fileUri", "file_uri", "")), str(_get(file, "mimeType", "mime_type", ""))))


def _contents_parts(contents: Any) -> list[Any]:
    if not isinstance(contents, list):
        raise InvalidRequest("Invalid JSON payload received. 'contents' must be a list.")
    parts: list[Any] = []
    for content in contents:
        if not isinstance(content, dict) or not isinstance(content.get("parts", []), list):
            raise InvalidRequest("Invalid JSON payload received. Each content needs a list of parts.")
        parts.extend(content.get("parts", []))
    return parts


def _typed(value: Any, kind: type, name: str) -> Any:
    """A scalar field of the expected JSON type, or None when absent."""
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise InvalidRequest(f"Invalid value at '{name}': expected {kind.__name__}.")


def load_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or InvalidRequest."""
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON payload received. {exc.msg}.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidRequest("Invalid JSON payload received. The body is not UTF-8.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid JSON payload received. The body must be an object.")
    return body


def body_digest(body: dict[str, Any]) -> bytes:
    """sha256 of the body's canonical JSON, so key order and spacing do not change the reply."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).digest()


def _response_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    openapi = _get(config, "responseSchema", "response_schema")
    json_schema = _get(config, "responseJsonSchema", "response_json_schema")
    if openapi is not None and json_schema is not None:
        raise InvalidRequest("responseSchema and responseJsonSchema are mutually exclusive: send one of them.")
    schema = openapi if openapi is not None else json_schema
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest("Invalid JSON payload received. The response schema must be an object.")
    return schema


def read_generate_request(body: dict[str, Any], file_image: FileImage = _no_files) -> GenerateRequest:
    """What a generateContent body asks for; `file_image` resolves its `fileData` parts."""
    texts: list[str] = []
    images: list[InputImage] = []
    _read_parts(_contents_parts(body.get("contents", [])), texts, images, file_image)
    system_texts: list[str] = []
    system = _object(body, "systemInstruction", "system_instruction")
    _read_parts(_contents_parts([system]) if system else [], system_texts, images, file_image)
    config = _object(body, "generationConfig", "generation_config")
    image_config = _object(config, "imageConfig", "image_config")
    thinking = _object(config, "thinkingConfig", "thinking_config")
    modalities = _get(config, "responseModalities", "response_modalities") or []
    if not isinstance(modalities, list):
        raise InvalidRequest("Invalid JSON payload received. 'responseModalities' must be a list.")
    return GenerateRequest(
        digest=body_digest(body),
        prompt="\n".join(texts),
        system="\n".join(system_texts),
        prompt_text_tokens=sum(text_tokens(t) for t in texts + system_texts),
        images=images,
        modalities=tuple(str(m).upper() for m in modalities),
        aspect_ratio=_typed(_get(image_config, "aspectRatio", "aspect_ratio"), str, "aspectRatio"),
        image_size=_typed(_get(image_config, "imageSize", "image_size"), str, "imageSize"),
        max_output_tokens=_typed(_get(config, "maxOutputTokens", "max_output_tokens"), int, "maxOutputTokens"),
        thinking_budget=_typed(_get(thinking, "thinkingBudget", "thinking_budget"), int, "thinkingBudget"),
        response_mime=_get(config, "responseMimeType", "response_mime_type") or "text/plain",
        response_schema=_response_schema(config),
        service_tier=read_service_tier(body),
    )


def read_count_tokens_request(body: dict[str, Any], file_image: FileImage = _no_files) -> GenerateRequest:
    """countTokens takes either bare `contents` or a whole `generateContentRequest`."""
    inner = _get(body, "generateContentRequest", "generate_content_request")
    return read_generate_request(inner if isinstance(inner, dict) else body, file_image)
