"""The JSON bodies and headers of the OpenAI-compatible chat route (reference §4.3, §8, §9.1, §9.2).

Pure functions of their arguments, like `replies.py` for the native route: a `ChatAnswer` rendered
as a `chat.completion` or as `chat.completion.chunk` events, with its image in one of the gateway
shapes; the error envelope `{"error": {message, type, param, code}}`; the `x-ratelimit-*` headers.

Image shapes: `images` (OpenRouter: `message.images`, text in `content`), `markdown` (the text, then
`\\n![image](data:...)` in `content`), `parts` (`content` is an array of text and image_url parts),
`url` (markdown whose URL the simulator serves by GET). A stream carries images in `delta.images`
for the `images` shape and as markdown content deltas for the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

REFUSAL_TEXT = "I'm sorry, I can't help with that."
_SPLIT_CHARS = 24  # texts this long or longer stream in three pieces, as on the native route


@dataclass(slots=True)
class ChatAnswer:
    """What one chat reply says, before it is shaped: text, image URLs, refusal, finish and token counts."""

    text: str | None
    image_urls: list[str] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str = "stop"
    prompt_text: int = 0
    prompt_image: int = 0
    out_text: int = 0
    out_image: int = 0
    reasoning: int = 0


def chat_usage(answer: ChatAnswer) -> dict[str, Any]:
    """OpenAI usage: completion tokens are text, reasoning and image tokens together."""
    prompt = answer.prompt_text + answer.prompt_image
    completion = answer.out_text + answer.reasoning + answer.out_image
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": answer.prompt_image},
        "completion_tokens_details": {"reasoning_tokens": answer.reasoning, "image_tokens": answer.out_image},
    }


def _image_url_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def markdown_image(url: str) -> str:
    """An image as New-API-style gateways embed it in `content`."""
    return f"![image]({url})"


def _markdown_content(text: str | None, urls: list[str]) -> str | None:
    pieces = ([text] if text else []) + [markdown_image(url) for url in urls]
    return "\n".join(pieces) if pieces else text


def chat_message(answer: ChatAnswer, shape: str) -> dict[str, Any]:
    """The assistant message of a completion, its image in `shape`."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": answer.refusal}
    if not answer.image_urls:
        return message
    if shape == "images":
        message["images"] = [_image_url_part(url) for url in answer.image_urls]
    elif shape == "parts":
        text_parts = [{"type": "text", "text": answer.text}] if answer.text else []
        message["content"] = text_parts + [_image_url_part(url) for url in answer.image_urls]
    else:  # markdown, url
        message["content"] = _markdown_content(answer.text, answer.image_urls)
    return message


def completion(answer: ChatAnswer, shape: str, completion_id: str, created: int, model: str) -> dict[str, Any]:
    """A `chat.completion` with one choice."""
    choice = {"index": 0, "message": chat_message(answer, shape), "logprobs": None,
              "finish_reason": answer.finish_reason}
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": chat_usage(answer)}


def _text_pieces(text: str | None) -> list[str]:
    if not text:
        return []
    if len(text) < _SPLIT_CHARS:
        return [text]
    third = math.ceil(len(text) / 3)
    return [text[i : i + third] for i in range(0, len(text), third)]


def _deltas(answer: ChatAnswer, shape: str) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in _text_pieces(answer.text)]
    if answer.refusal is not None:
        deltas.append({"refusal": answer.refusal})
    if answer.image_urls and shape == "images":
        deltas.append({"images": [_image_url_part(url) for url in answer.image_urls]})
    elif answer.image_urls:
        markdown = "\n".join(markdown_image(url) for url in answer.image_urls)
        deltas.append({"content": ("\n" if answer.text else "") + markdown})
    return deltas


def completion_chunks(answer: ChatAnswer, shape: str, completion_id: str, created: int, model: str,
                      include_usage: bool) -> list[dict[str, Any]]:
    """A reply as `chat.completion.chunk`s: role first, content deltas, the finish, then usage if asked."""
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    tail = {"usage": None} if include_usage else {}
    chunks = [{**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}], **tail}
              for delta in _deltas(answer, shape)]
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": answer.finish_reason}
    chunks.append({**head, "choices": [finish], **tail})
    if include_usage:
        chunks.append({**head, "choices": [], "usage": chat_usage(answer)})
    return chunks


def openai_error(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def invalid_param(param: str | None, message: str) -> dict:
    """400 invalid_request_error naming the offending key."""
    return openai_error(message, "invalid_request_error", param, None)


def bad_key() -> dict:
    """401 for a missing or bad key; the key itself is never echoed."""
    return openai_error(
        "Incorrect API key provided. You can find your API key in your account settings.",
        "invalid_request_error", None, "invalid_api_key",
    )


def rate_limit_error(model: str, what: str, limit: int, retry_after_s: float) -> dict:
    """429 for a per-minute limit on `what` (requests, images, tokens; also the error type): retryable."""
    message = (f"Rate limit reached for {model} on {what} per minute: Limit {limit}. "
               f"Please try again in {format_duration(retry_after_s)}.")
    return openai_error(message, what, None, "rate_limit_exceeded")


def insufficient_quota(code: str = "insufficient_quota") -> dict:
    """429 for a spent quota or balance: not retryable."""
    message = "You exceeded your current quota, please check your plan and billing details."
    return openai_error(message, "insufficient_quota", None, code)


def server_error() -> dict:
    """500 server_error."""
    return openai_error("The server had an error while processing your request. Sorry about that!",
                        "server_error", None, None)


def overloaded_error() -> dict:
    """503 for an overloaded model."""
    return openai_error("The model is overloaded. Please try again later.", "server_error", None, "model_overloaded")


def not_found_error(path: str) -> dict:
    """404 for an image URL the simulator no longer (or never) served."""
    return openai_error(f"No image at {path}: the simulator keeps the most recent images only.",
                        "invalid_request_error", None, "not_found")


def image_url_unavailable() -> dict:
    """503 for the image_url_fault: retry the GET."""
    return openai_error("The image is temporarily unavailable. Please retry.", "server_error", None, None)


def format_duration(seconds: float) -> str:
    """A wait as OpenAI writes it in x-ratelimit-reset-*: '250ms', '1s', '1.5s', '6m0s' (rounded up to 1 ms)."""
    ms = max(0, math.ceil(round(seconds * 1000, 6)))
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def ratelimit_headers(kind: str, limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """x-ratelimit-{limit,remaining,reset}-KIND for one limit (requests or tokens)."""
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": format_duration(reset_s),
    }


def retry_after_headers(seconds: float) -> dict[str, str]:
    """retry-after-ms and retry-after (whole seconds, rounded up), as openai-python reads them."""
    return {"retry-after-ms": str(max(0, math.ceil(seconds * 1000))), "retry-after": str(max(0, math.ceil(seconds)))}
