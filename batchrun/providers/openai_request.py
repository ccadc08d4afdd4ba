"""The chat-completions request of a rendered request, and what a spec may ask of `kind: openai`.

In:  a provider-neutral RenderedRequest (the spec's generation options under their generationConfig
     names, input images as "sha256:<hex>" references), and the spec's provider section.
Out: the body of `POST {base_url}/chat/completions`, its `model` first when the adapter passes one
     (the adapter also inlines the images), and, at load, the first spec key that means nothing to
     chat completions with what to use instead.

The same spec runs on either kind: generation options keep their Gemini names and are mapped here.

    generationConfig                chat completions
    ------------------------------  ---------------------------------------------------------
    temperature, topP, seed         temperature, top_p, seed
    maxOutputTokens                 max_tokens (or max_completion_tokens: provider.max_tokens_field)
    stopSequences                   stop
    presencePenalty, frequencyPenalty  presence_penalty, frequency_penalty
    thinkingConfig.thinkingLevel    reasoning_effort
    responseMimeType json, no schema   response_format {"type": "json_object"}
    responseSchema (OpenAPI subset) response_format {"type": "json_schema", ...}, as JSON Schema
    responseJsonSchema              response_format {"type": "json_schema", ...}, as given
    responseModalities with IMAGE   modalities ["image", "text"] (lower case, as gateways take them)
    imageConfig {aspectRatio, imageSize}  image_config {aspect_ratio, image_size}
    request.extra_body              merged into the body's top level, after everything else
"""

from __future__ import annotations

from typing import Any

from ..rendered import RenderedRequest, option

EXTRA_BODY = "extra_body"  # the key of the spec's pass-through mapping in RenderedRequest.extras
SCHEMA_NAME = "response"  # json_schema.name: required by the API, not otherwise used
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")

_SAME_VALUE = {
    "temperature": "temperature",
    "topP": "top_p",
    "seed": "seed",
    "stopSequences": "stop",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}

# generationConfig keys chat completions has no counterpart for, and what to do instead
NO_COUNTERPART = {
    "topK": "chat completions has no top_k; remove it, or put top_k in request.extra_body if your gateway takes it",
    "candidateCount": "batchrun keeps one reply per request; remove it and use request.variants for more",
    "mediaResolution": "chat completions has no media resolution; remove it",
    "responseLogprobs": "batchrun does not record log probabilities; remove it",
    "logprobs": "batchrun does not record log probabilities; remove it",
    "speechConfig": "chat completions through batchrun makes text and images only; remove it",
    "enableEnhancedCivicAnswers": "a Gemini-only option; remove it",
}
_THINKING_FIX = "chat completions takes a reasoning effort only; use thinkingConfig.thinkingLevel (sent as reasoning_effort)"

# keys batchrun writes itself: request.extra_body may not set them
_WRITTEN = {
    "model": "the spec's model",
    "messages": "request.system, request.prompt and request.images",
    "stream": "provider.stream",
    "stream_options": "provider.stream",
    "n": "request.variants (batchrun keeps one reply per request)",
    "max_tokens": "request.generation_config.maxOutputTokens",
    "max_completion_tokens": "request.generation_config.maxOutputTokens with provider.max_tokens_field",
    "temperature": "request.generation_config.temperature",
    "top_p": "request.generation_config.topP",
    "seed": "request.generation_config.seed",
    "stop": "request.generation_config.stopSequences",
    "presence_penalty": "request.generation_config.presencePenalty",
    "frequency_penalty": "request.generation_config.frequencyPenalty",
    "reasoning_effort": "request.generation_config.thinkingConfig.thinkingLevel",
    "response_format": "request.generation_config.responseJsonSchema (or responseSchema)",
    "modalities": "request.generation_config.responseModalities",
    "image_config": "request.generation_config.imageConfig",
}

_OPENAPI_ONLY = {"propertyOrdering", "property_ordering", "nullable", "example"}
_SNAKE = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
          "max_length": "maxLength", "min_properties": "minProperties", "max_properties": "maxProperties"}


def chat_body(request: RenderedRequest, provider: Any = None, *, model: str | None = None) -> dict[str, Any]:
    """The chat-completions body of a rendered request, `model` first if given; images stay "sha256:<hex>"."""
    body: dict[str, Any] = {} if model is None else {"model": model}  # built in order: no copy to put it first
    body["messages"] = _messages(request)
    options = request["options"]
    for key, value in options.items():
        name = _SAME_VALUE.get(key)
        if name is not None:
            body[name] = value
    limit = option(options, "maxOutputTokens", "max_output_tokens")
    if limit is not None:
        body[getattr(provider, "max_tokens_field", None) or "max_tokens"] = limit
    effort = option(option(options, "thinkingConfig", "thinking_config") or {}, "thinkingLevel", "thinking_level")
    if effort is not None:
        body["reasoning_effort"] = str(effort).lower()
    _response_format(body, request)
    _image_options(body, options)
    extra = request["extras"].get(EXTRA_BODY)
    if extra:
        body.update(extra)
    return body


def _messages(request: RenderedRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request["system"] is not None:
        messages.append({"role": "system", "content": request["system"]})
    parts = request["parts"]
    if len(parts) == 1 and "text" in parts[0]:
        messages.append({"role": "user", "content": parts[0]["text"]})
    else:
        messages.append({"role": "user", "content": [_content_part(part) for part in parts]})
    return messages


def _content_part(part: dict[str, str]) -> dict[str, Any]:
    if "image" in part:  # the adapter replaces the reference with a data URL of the image's bytes
        return {"type": "image_url", "image_url": {"url": part["image"]}}
    return {"type": "text", "text": part["text"]}


def _response_format(body: dict[str, Any], request: RenderedRequest) -> None:
    schema = request["response_schema"]
    if schema is not None:
        json_schema = schema["schema"] if schema["dialect"] == "json_schema" else openapi_to_json_schema(schema["schema"])
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": json_schema}}
        return
    mime = option(request["options"], "responseMimeType", "response_mime_type")
    if isinstance(mime, str) and mime.lower() == "application/json":
        body["response_format"] = {"type": "json_object"}


def _image_options(body: dict[str, Any], options: dict[str, Any]) -> None:
    modalities = option(options, "responseModalities", "response_modalities") or ()
    if any(str(m).upper() == "IMAGE" for m in modalities):
        body["modalities"] = [str(m).lower() for m in modalities]
    image = option(options, "imageConfig", "image_config")
    if isinstance(image, dict) and image:
        config = {}
        ratio = option(image, "aspectRatio", "aspect_ratio")
        size = option(image, "imageSize", "image_size")
        if ratio is not None:
            config["aspect_ratio"] = ratio
        if size is not None:
            config["image_size"] = size
        body["image_config"] = config


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset schema (upper-case types, `nullable`) as the JSON Schema it stands for."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        key = str(_SNAKE.get(name, name))
        if key in _OPENAPI_ONLY:
            continue
        if key == "type" and isinstance(value, str):
            out["type"] = [value.lower(), "null"] if schema.get("nullable") is True else value.lower()
        elif key == "format" and value == "enum":
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {prop: openapi_to_json_schema(sub) for prop, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    return out


def chat_spec_problem(spec: Any) -> tuple[str, str] | None:
    """The first (yaml path, message) of a spec key that means nothing to chat completions, or None."""
    request = spec.request
    if request.safety_settings is not None:
        return ("request.safety_settings", "safety settings are Gemini's and chat completions has none; "
                "remove them, or use provider.kind gemini")
    if request.tools is not None:
        return ("request.tools", "these are Gemini tools, which chat completions does not take; "
                "remove them, or use provider.kind gemini")
    if "auth" in spec.provider.model_fields_set and spec.provider.auth != "bearer":
        return ("provider.auth", "chat completions sends the key as 'Authorization: Bearer'; remove provider.auth")
    return _config_problem(request.generation_config) or _extra_body_problem(request.extra_body)


def _config_problem(config: dict[str, Any]) -> tuple[str, str] | None:
    where = "request.generation_config"
    for key in config:
        if key in NO_COUNTERPART:
            return f"{where}.{key}", f"means nothing to provider.kind openai: {NO_COUNTERPART[key]}"
    thinking = config.get("thinkingConfig")
    if isinstance(thinking, dict):
        for key in thinking:
            if key not in ("thinkingLevel", "thinking_level"):
                return f"{where}.thinkingConfig.{key}", f"means nothing to provider.kind openai: {_THINKING_FIX}"
    mime = config.get("responseMimeType")
    if isinstance(mime, str) and "{{" not in mime and mime.lower() not in ("application/json", "text/plain"):
        return (f"{where}.responseMimeType",
                f"{mime!r} means nothing to chat completions; use application/json or text/plain")
    return None


def _extra_body_problem(extra: dict[str, Any] | None) -> tuple[str, str] | None:
    for key in extra or {}:
        if key in _WRITTEN:
            return f"request.extra_body.{key}", f"batchrun writes '{key}' itself; set it with {_WRITTEN[key]}"
    return None


def gemini_spec_problem(spec: Any) -> tuple[str, str] | None:
    """The first (yaml path, message) of a spec key that only chat completions uses, for a Gemini kind."""
    if spec.request.extra_body is not None:
        return ("request.extra_body", "extra_body is sent by provider.kind openai only; "
                "Gemini options go in request.generation_config")
    if spec.provider.max_tokens_field is not None:
        return ("provider.max_tokens_field", "only provider.kind openai sends max_tokens; "
                "remove it (Gemini takes generation_config.maxOutputTokens)")
    return None
