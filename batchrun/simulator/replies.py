"""The JSON bodies the simulator answers with, shaped like Google's (reference §3, §4.1, §5.1).

Pure functions of their arguments: replies, usage, stream chunks, Google error bodies and a
gateway-style error envelope. Nothing here draws a random number or reads a clock.
"""

from __future__ import annotations

import base64
import math
from typing import Any

_TYPE = "type.googleapis.com/google.rpc."
_SERVICE = "generativelanguage.googleapis.com"


def format_delay(seconds: float) -> str:
    """A protobuf Duration as Google writes it in RetryInfo: '7s', '1.5s', '0.25s'."""
    rounded = round(max(0.0, seconds), 3)
    if rounded == int(rounded):
        return f"{int(rounded)}s"
    return f"{rounded:.3f}".rstrip("0") + "s"


def modality_counts(text: int, image: int) -> list[dict[str, Any]]:
    """A `*TokensDetails` list: one entry per modality that has tokens (TEXT always)."""
    counts = [{"modality": "TEXT", "tokenCount": text}]
    if image:
        counts.append({"modality": "IMAGE", "tokenCount": image})
    return counts


def usage_metadata(
    prompt_text: int, prompt_image: int, out_text: int, out_image: int, thoughts: int
) -> dict[str, Any]:
    """usageMetadata split by modality; total = prompt + candidates + thoughts."""
    prompt, candidates = prompt_text + prompt_image, out_text + out_image
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": modality_counts(prompt_text, prompt_image),
    }
    if candidates:
        usage["candidatesTokensDetails"] = [
            c for c in modality_counts(out_text, out_image) if c["tokenCount"]
        ]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def image_part(data: bytes, mime: str, *, thought: bool = False, signature: str = "") -> dict:
    """An inlineData part; interim images carry `thought: true`, final Gemini 3 ones a signature."""
    part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
    if thought:
        part["thought"] = True
    elif signature:
        part["thoughtSignature"] = signature
    return part


def generate_reply(
    parts: list[dict[str, Any]],
    finish_reason: str,
    usage: dict[str, Any],
    model: str,
    response_id: str,
    model_stage: str | None = None,
) -> dict[str, Any]:
    """A GenerateContentResponse with one candidate."""
    candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
    if parts:
        candidate = {"content": {"parts": parts, "role": "model"}, **candidate}
    if finish_reason == "SAFETY":
        candidate["safetyRatings"] = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ]
    reply = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}
    if model_stage:
        reply["modelStatus"] = {"modelStage": model_stage}
    return reply


def blocked_reply(usage: dict[str, Any], model: str, response_id: str) -> dict[str, Any]:
    """A blocked prompt: promptFeedback.blockReason and no candidates at all."""
    return {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
            ],
        },
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id,
    }


def stream_chunks(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A reply cut into stream chunks: text in up to three pieces, each image whole.

    Early chunks report the prompt's usage only; the last carries the full usage and finishReason,
    as Google's stream does.
    """
    candidates = reply.get("candidates")
    if not candidates or "content" not in candidates[0]:
        return [reply]
    pieces = [piece for part in candidates[0]["content"]["parts"] for piece in _split_part(part)]
    head: dict[str, Any] = {k: reply[k] for k in ("modelVersion", "responseId") if k in reply}
    usage = reply["usageMetadata"]
    early_usage = {k: usage[k] for k in ("promptTokenCount", "totalTokenCount", "promptTokensDetails")}
    early_usage["totalTokenCount"] = usage["promptTokenCount"]
    chunks: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        candidate: dict[str, Any] = {"content": {"parts": [piece], "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = candidates[0]["finishReason"]
        chunks.append({"candidates": [candidate], "usageMetadata": usage if last else early_usage, **head})
    return chunks


def _split_part(part: dict[str, Any]) -> list[dict[str, Any]]:
    text = part.get("text")
    if not isinstance(text, str) or len(text) < 24:
        return [part]
    third = math.ceil(len(text) / 3)
    return [{**part, "text": text[i : i + third]} for i in range(0, len(text), third)]


def count_tokens_reply(prompt_text: int, prompt_image: int) -> dict[str, Any]:
    """A countTokens response."""
    return {
        "totalTokens": prompt_text + prompt_image,
        "promptTokensDetails": modality_counts(prompt_text, prompt_image),
    }


def google_error(code: int, status: str, message: str, details: list | None = None) -> dict:
    """Google's error body: {"error": {code, message, status, details?}}."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def quota_error(quota_id: str, model: str, retry_after_s: float, per_day: bool) -> dict:
    """429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo, as Google sends it."""
    delay = format_delay(retry_after_s)
    metric = "generate_requests_per_day" if per_day else "generate_requests_per_minute"
    if "InputTokens" in quota_id:
        metric = "generate_content_paid_tier_input_token_count"
    violation = {
        "quotaMetric": f"{_SERVICE}/{metric}",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model},
    }
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"Quota exceeded for metric: {_SERVICE}/{metric}, model: {model}. Please retry in {delay}."
    )
    details = [
        {"@type": _TYPE + "Help", "links": [{"description": "Learn more about Gemini API quotas",
                                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": _TYPE + "QuotaFailure", "violations": [violation]},
        {"@type": _TYPE + "RetryInfo", "retryDelay": delay},
    ]
    return google_error(429, "RESOURCE_EXHAUSTED", message, details)


def server_error() -> dict:
    """Google's 500 INTERNAL body."""
    return google_error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )


def unavailable_error() -> dict:
    """Google's 503 UNAVAILABLE body."""
    return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def prepayment_depleted_error(code: int) -> dict:
    """A spent prepaid balance: RESOURCE_EXHAUSTED, ErrorInfo PREPAYMENT_CREDITS_DEPLETED (as HTTP 402 or 429)."""
    message = (
        "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects "
        "to manage your project and billing."
    )
    details = [{"@type": _TYPE + "ErrorInfo", "reason": "PREPAYMENT_CREDITS_DEPLETED", "domain": "googleapis.com",
                "metadata": {"service": _SERVICE}}]
    return google_error(code, "RESOURCE_EXHAUSTED", message, details)


def bad_key_error() -> dict:
    """Google's answer to a bad API key: 400 INVALID_ARGUMENT, ErrorInfo reason API_KEY_INVALID."""
    message = "API key not valid. Please pass a valid API key."
    details = [
        {"@type": _TYPE + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": _SERVICE}},
        {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
    ]
    return google_error(400, "INVALID_ARGUMENT", message, details)


def missing_key_error() -> dict:
    """403 PERMISSION_DENIED for a request with no key where one is required."""
    message = (
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."
    )
    return google_error(403, "PERMISSION_DENIED", message)


def invalid_argument(message: str) -> dict:
    """400 INVALID_ARGUMENT with the given message."""
    return google_error(400, "INVALID_ARGUMENT", message)


def not_found(path: str) -> dict:
    """404 NOT_FOUND for a path the simulator does not serve."""
    return google_error(404, "NOT_FOUND", f"Method not found: {path}")


def gateway_envelope(request_ref: str) -> dict:
    """A gateway's error inside an HTTP 200, in CometAPI's shape (string `code`, `type`)."""
    return {
        "error": {
            "message": f"upstream service error, please retry (request id: {request_ref})",
            "type": "comet_api_error",
            "param": "",
            "code": "upstream_error",
        }
    }
