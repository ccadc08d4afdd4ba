"""What one OpenAI-style chat completion request asks for, translated into a GenerateRequest.

The chat route shares the native route's machinery (plans, content, schemas, faults, limits) by
reading a chat body into the same `GenerateRequest`: system and developer messages become the system
text, user and assistant messages the prompt, `image_url` data URLs input images, `max_tokens` (or
`max_completion_tokens`) `maxOutputTokens`, `response_format` the response MIME type and schema,
`reasoning_effort` the thinking level, `modalities` and `image_config` the response modalities and
image config. Unknown top-level keys are ignored, as gateways ignore extras; a known key of the
wrong shape raises `BadParam`, which names the key. The digest leaves out the keys that change only
how a reply is delivered (`stream`, `stream_options`, `sim_image_shape`), so that a streamed and a
plain request for the same thing get the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchrun.cost.tokens import text_tokens

from ..errors import InvalidRequest
from .inbound import GenerateRequest, InputImage, body_digest, image_size

IMAGE_SHAPES = ("images", "markdown", "parts", "url")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
_DELIVERY_KEYS = ("stream", "stream_options", "sim_image_shape")
_SYSTEM_ROLES = ("system", "developer")
_PROMPT_ROLES = ("user", "assistant", "tool")
_DATA_URL_PREFIX = "data:"


class BadParam(InvalidRequest):
    """A known chat key whose value the API would reject: HTTP 400 naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class ChatRequest:
    """A chat body: what to generate (as a GenerateRequest), and how to deliver it."""

    model: str
    generate: GenerateRequest
    stream: bool = False
    include_usage: bool = False
    image_shape: str | None = None  # sim_image_shape: overrides the faults file's chat_image_shape


def _typed(body: dict[str, Any], key: str, kinds: tuple[type, ...], what: str) -> Any:
    """body[key] if absent or of one of `kinds` (bools are not numbers), else BadParam."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise BadParam(key, f"Invalid type for '{key}': expected {what}, but got a boolean instead.")
    if not isinstance(value, kinds):
        raise BadParam(key, f"Invalid type for '{key}': expected {what}, but got {type(value).__name__} instead.")
    return value


def _in_range(body: dict[str, Any], key: str, low: float, high: float) -> None:
    value = _typed(body, key, (int, float), "a number")
    if value is not None and not low <= value <= high:
        raise BadParam(key, f"Invalid '{key}': {value} is out of range; it must be between {low:g} and {high:g}.")


def _data_url_image(url: Any, param: str) -> InputImage:
    if not isinstance(url, str) or not url.startswith(_DATA_URL_PREFIX) or ";base64," not in url:
        raise BadParam(param, f"Invalid '{param}': the simulator takes images as data URLs "
                              "(data:image/png;base64,...); it fetches no http(s) URL.")
    header, data = url[len(_DATA_URL_PREFIX):].split(";base64,", 1)
    try:
        width, height = image_size(data)
    except InvalidRequest as exc:
        raise BadParam(param, f"Invalid '{param}': the data URL holds no image the simulator can read.") from exc
    return InputImage(header, width, height)


def _content_texts(content: Any, param: str, images: list[InputImage]) -> list[str]:
    """The texts of one message's content (a string or a list of parts); its images go to `images`."""
    if content is None or isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise BadParam(param, f"Invalid type for '{param}': expected a string or an array of content parts.")
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            images.append(_data_url_image(part["image_url"].get("url"), f"{where}.image_url.url"))
        else:
            raise BadParam(where, f"Invalid content part at '{where}': use {{\"type\": \"text\", \"text\": ...}} "
                                  "or {\"type\": \"image_url\", \"image_url\": {\"url\": ...}}.")
    return texts


def _messages(body: dict[str, Any]) -> tuple[list[str], list[str], list[InputImage]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadParam("messages", "Invalid 'messages': expected a non-empty array of messages.")
    system: list[str] = []
    prompt: list[str] = []
    images: list[InputImage] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _SYSTEM_ROLES + _PROMPT_ROLES:
            raise BadParam(f"messages[{i}].role", f"Invalid 'messages[{i}].role': use system, developer, user, "
                                                  "assistant or tool.")
        texts = _content_texts(message.get("content"), f"messages[{i}].content", images)
        (system if role in _SYSTEM_ROLES else prompt).extend(texts)
    return system, prompt, images


def _response_format(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The response MIME type and schema a `response_format` asks for."""
    fmt = _typed(body, "response_format", (dict,), "an object")
    kind = (fmt or {}).get("type", "text")
    if kind == "text":
        return "text/plain", None
    if kind == "json_object":
        return "application/json", None
    if kind != "json_schema":
        raise BadParam("response_format.type", "Invalid 'response_format.type': use text, json_object or json_schema.")
    spec = fmt.get("json_schema") if fmt else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadParam("response_format.json_schema", "Invalid 'response_format.json_schema': expected an object "
                                                      "with a 'name' and a 'schema'.")
    schema = spec.get("schema", {"type": "object"})
    if not isinstance(schema, dict):
        raise BadParam("response_format.json_schema.schema", "Invalid 'response_format.json_schema.schema': "
                                                             "expected a JSON Schema object.")
    return "application/json", schema


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(key)
    if value is not None and value not in allowed:
        raise BadParam(key, f"Invalid value for '{key}': {value!r}; use one of {', '.join(allowed)}.")
    return value


def _modalities(body: dict[str, Any]) -> tuple[str, ...]:
    modalities = _typed(body, "modalities", (list,), "an array")
    if modalities is None:
        return ()
    if not all(m in ("text", "image") for m in modalities):
        raise BadParam("modalities", "Invalid 'modalities': each entry is \"text\" or \"image\".")
    return tuple(str(m).upper() for m in modalities)


def _image_config(body: dict[str, Any]) -> tuple[str | None, str | None]:
    config = _typed(body, "image_config", (dict,), "an object") or {}
    ratio = _typed(config, "aspect_ratio", (str,), "a string")
    size = _typed(config, "image_size", (str,), "a string")
    return ratio, size


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = _typed(body, key, (int,), "an integer")
        if value is not None and value < 1:
            raise BadParam(key, f"Invalid '{key}': {value}; it must be at least 1.")
        if value is not None:
            return value
    return None


def _delivery(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = bool(_typed(body, "stream", (bool,), "a boolean"))
    options = _typed(body, "stream_options", (dict,), "an object") or {}
    include_usage = _typed(options, "include_usage", (bool,), "a boolean")
    return stream, bool(include_usage)


def _check_sampling(body: dict[str, Any]) -> None:
    """Keys that change nothing in a simulated reply, checked for shape only."""
    _in_range(body, "temperature", 0.0, 2.0)
    _in_range(body, "top_p", 0.0, 1.0)
    _typed(body, "seed", (int,), "an integer")
    stop = _typed(body, "stop", (str, list), "a string or an array of strings")
    if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
        raise BadParam("stop", "Invalid 'stop': expected a string or an array of strings.")
    n = _typed(body, "n", (int,), "an integer")
    if n is not None and n != 1:
        raise BadParam("n", f"Invalid 'n': {n}; the simulator answers one choice a request (n: 1).")


def read_chat_request(body: dict[str, Any]) -> ChatRequest:
    """What a chat completion body asks for; BadParam names a known key of the wrong shape."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadParam("model", "you must provide a model parameter")
    system, prompt, images = _messages(body)
    _check_sampling(body)
    mime, schema = _response_format(body)
    effort = _choice(body, "reasoning_effort", REASONING_EFFORTS)
    ratio, size = _image_config(body)
    stream, include_usage = _delivery(body)
    generate = GenerateRequest(
        digest=body_digest({k: v for k, v in body.items() if k not in _DELIVERY_KEYS}),
        prompt="\n".join(prompt),
        system="\n".join(system),
        prompt_text_tokens=sum(text_tokens(t) for t in prompt + system),
        images=images,
        modalities=_modalities(body),
        aspect_ratio=ratio,
        image_size=size,
        max_output_tokens=_max_tokens(body),
        thinking_budget=0 if effort == "none" else None,
        thinking_level=effort if effort != "none" else None,
        response_mime=mime,
        response_schema=schema,
    )
    shape = _choice(body, "sim_image_shape", IMAGE_SHAPES)
    return ChatRequest(model, generate, stream, include_usage, shape)
