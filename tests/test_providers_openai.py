"""The chat-completions adapter: exact bytes sent, recorded-shape replies parsed, the key kept secret."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image

from batchrun.outcomes import ErrorKind
from batchrun.providers.openai import (
    OpenAIProvider,
    chat_usage,
    merge_chunks,
    parse_chat_reply,
    parse_chat_sse,
    read_message,
)
from batchrun.providers.openai_request import chat_body, openapi_to_json_schema
from batchrun.records import Headroom, ImageRef, Outcome, RequestRecord, Usage
from batchrun.rendered import rendered_request
from batchrun.tiers import Tier

KEY = "sk-test-key-123456789"
COMET = "https://api.cometapi.com/v1"


def record(body, *, model="gpt-5-mini", images=()) -> RequestRecord:
    return RequestRecord(request_id="r1", seq=0, model=model, body=body, variables={}, images=list(images))


def png_bytes(color=(255, 0, 0), size=(4, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


PNG = png_bytes()
PNG_B64 = base64.b64encode(PNG).decode()


def photo(tmp_path: Path, name="photo.png", color=(0, 128, 0)) -> tuple[ImageRef, bytes]:
    data = png_bytes(color)
    (tmp_path / name).write_bytes(data)
    return ImageRef(name, hashlib.sha256(data).hexdigest(), "image/png", len(data), 4, 3), data


def neutral(*parts, system=None, options=None, extras=None) -> dict:
    made = [{"text": part} if isinstance(part, str) else part for part in parts]
    return rendered_request(system, made, options, None, extras or {})


def provider(tmp_path: Path = Path("."), **kwargs) -> OpenAIProvider:
    return OpenAIProvider(COMET, KEY, spec_dir=tmp_path, **kwargs)


def exchange(prov, rec, handler):
    """Send one record through a MockTransport whose handler answers; return the reply and the requests."""
    seen: list[httpx.Request] = []

    def recorded(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorded)) as client:
            return await prov.send(client, rec)

    return anyio.run(main), seen


def answer(status=200, payload=None, headers=None, content=None):
    body = content if content is not None else json.dumps(payload).encode()
    return lambda request: httpx.Response(status, content=body, headers=headers or {})


def completion(content="A blue mug.", *, finish="stop", usage=None, **message) -> dict:
    """A chat completion in the shape OpenAI documents (openai-python types/chat/chat_completion.py)."""
    return {
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1764230400, "model": "gpt-5-mini-2025-08-07",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None, **message},
                     "logprobs": None, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                           "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                           "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                         "accepted_prediction_tokens": 0,
                                                         "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": None,
    }


# ---- what is sent -------------------------------------------------------------------------------------


def test_a_text_job_sends_model_messages_and_mapped_options_exactly():
    body = neutral("Describe a blue mug in one line.", system="You are a copywriter.",
                   options={"temperature": 0.4, "topP": 0.9, "seed": 7, "maxOutputTokens": 200,
                            "stopSequences": ["\n\n"], "thinkingConfig": {"thinkingLevel": "LOW"}})
    reply, seen = exchange(provider(), record(body), answer(payload=completion()))
    assert reply.outcome is Outcome.OK and reply.text == "A blue mug."
    sent = seen[0]
    assert str(sent.url) == "https://api.cometapi.com/v1/chat/completions" and sent.method == "POST"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in sent.headers
    assert sent.content == json.dumps({
        "model": "gpt-5-mini",
        "messages": [{"role": "system", "content": "You are a copywriter."},
                     {"role": "user", "content": "Describe a blue mug in one line."}],
        "temperature": 0.4, "top_p": 0.9, "seed": 7, "stop": ["\n\n"], "max_tokens": 200,
        "reasoning_effort": "low",
    }, separators=(",", ":")).encode()


def test_max_completion_tokens_when_the_provider_says_so():
    body = neutral("Hi", options={"maxOutputTokens": 50})
    sent = json.loads(provider(max_tokens_field="max_completion_tokens").encode_body(record(body)))
    assert sent == {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hi"}],
                    "max_completion_tokens": 50}


def test_an_input_image_job_sends_the_image_as_a_data_url(tmp_path):
    ref, data = photo(tmp_path)
    body = neutral("What is this?", {"image": f"sha256:{ref.sha256}", "mime": "image/png"})
    reply, seen = exchange(provider(tmp_path), record(body, images=[ref]), answer(payload=completion("A box.")))
    assert reply.outcome is Outcome.OK
    sent = json.loads(seen[0].content)
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}},
    ]}]


def test_a_changed_input_image_is_invalid_and_sends_nothing(tmp_path):
    ref, _ = photo(tmp_path)
    (tmp_path / ref.path).write_bytes(png_bytes((1, 2, 3)))
    body = neutral("What is this?", {"image": f"sha256:{ref.sha256}", "mime": "image/png"})
    reply, seen = exchange(provider(tmp_path), record(body, images=[ref]), answer(payload=completion()))
    assert (reply.outcome, reply.error_kind, seen) == (Outcome.INVALID, "input_changed", [])


def test_a_json_schema_job_sends_response_format_with_the_schema_as_json_schema():
    openapi = {"type": "OBJECT", "properties": {"headline": {"type": "STRING", "nullable": True},
                                                "bullets": {"type": "ARRAY", "items": {"type": "STRING"}}},
               "required": ["headline"], "propertyOrdering": ["headline", "bullets"]}
    body = neutral("Describe SKU 1", options={"responseMimeType": "application/json", "responseSchema": openapi})
    assert chat_body(body)["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": {
        "type": "object", "properties": {"headline": {"type": ["string", "null"]},
                                         "bullets": {"type": "array", "items": {"type": "string"}}},
        "required": ["headline"]}}}
    given = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    body = neutral("x", options={"responseJsonSchema": given})
    assert chat_body(body)["response_format"]["json_schema"]["schema"] == given
    assert chat_body(neutral("x", options={"responseMimeType": "application/json"}))["response_format"] == {
        "type": "json_object"}


def test_openapi_schema_conversion_handles_any_of_snake_case_and_enum_format():
    assert openapi_to_json_schema({"any_of": [{"type": "STRING", "format": "enum", "enum": ["a"]},
                                              {"type": "INTEGER"}], "min_items": 1}) == {
        "anyOf": [{"type": "string", "enum": ["a"]}, {"type": "integer"}], "minItems": 1}


def test_an_image_output_job_sends_modalities_and_image_config_and_no_stream():
    body = neutral("A mug on a table", options={"responseModalities": ["TEXT", "IMAGE"],
                                                "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}})
    sent = json.loads(provider(stream=True).encode_body(record(body, model="gemini-3.1-flash-image")))
    assert sent == {"model": "gemini-3.1-flash-image", "messages": [{"role": "user", "content": "A mug on a table"}],
                    "modalities": ["text", "image"], "image_config": {"aspect_ratio": "16:9", "image_size": "2K"}}


def test_extra_body_is_merged_last_and_streaming_asks_for_usage():
    body = neutral("Hi", options={"temperature": 1}, extras={"extra_body": {"user": "sku-1", "top_k": 5}})
    sent = json.loads(provider(stream=True).encode_body(record(body)))
    assert list(sent) == ["model", "messages", "temperature", "user", "top_k", "stream", "stream_options"]
    assert sent["stream_options"] == {"include_usage": True}


# ---- replies --------------------------------------------------------------------------------------------


def test_a_text_reply_gives_text_usage_ids_and_finish_reason():
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 1024, "image_tokens": 85},
             "completion_tokens_details": {"reasoning_tokens": 192}}
    reply, _ = parse_chat_reply(200, json.dumps(completion("Hello", usage=usage)).encode(), wants_image=False)
    assert (reply.outcome, reply.text, reply.finish_reason) == (Outcome.OK, "Hello", "stop")
    assert (reply.response_id, reply.model_version) == ("chatcmpl-abc123", "gpt-5-mini-2025-08-07")
    assert reply.usage == Usage(prompt=1200, prompt_image=85, cached=1024, output_text=108, output_image=0,
                                thoughts=192, total=1500)


def test_length_with_text_is_ok_and_length_without_text_is_retried():
    cut, _ = parse_chat_reply(200, json.dumps(completion("Half a sen", finish="length")).encode(), wants_image=False)
    assert (cut.outcome, cut.finish_reason) == (Outcome.OK, "length")
    empty, _ = parse_chat_reply(200, json.dumps(completion("", finish="length")).encode(), wants_image=False)
    assert (empty.outcome, empty.error_kind) == (Outcome.RETRY, "no_text")


def test_content_filter_is_blocked_and_a_refusal_is_blocked_with_its_words():
    filtered, _ = parse_chat_reply(200, json.dumps(completion(None, finish="content_filter")).encode(),
                                   wants_image=False)
    assert (filtered.outcome, filtered.error_kind) == (Outcome.BLOCKED, "safety_block")
    assert filtered.error_message == "finish_reason content_filter"
    refused = completion(None, refusal="I'm sorry, I can't help with that.")
    reply, _ = parse_chat_reply(200, json.dumps(refused).encode(), wants_image=False)
    assert (reply.outcome, reply.error_kind, reply.error_message) == (
        Outcome.BLOCKED, ErrorKind.REFUSAL, "I'm sorry, I can't help with that.")


def test_a_tool_call_finish_is_retried():
    reply, _ = parse_chat_reply(200, json.dumps(completion(None, finish="tool_calls")).encode(), wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "tool_call")


def test_no_choices_is_retried_and_not_json_is_malformed():
    reply, _ = parse_chat_reply(200, json.dumps({"id": "x", "choices": []}).encode(), wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "no_candidates")
    reply, _ = parse_chat_reply(200, b"<html>502</html>", wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "malformed")
    reply, _ = parse_chat_reply(200, json.dumps({"choices": "nope"}).encode(), wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "malformed")


IMAGE_USAGE = {"prompt_tokens": 12, "completion_tokens": 1298, "total_tokens": 1310}


@pytest.mark.parametrize("shape", ["images", "markdown", "parts"])
def test_each_image_reply_shape_gives_the_same_image(shape):
    url = f"data:image/png;base64,{PNG_B64}"
    if shape == "images":  # OpenRouter / Vercel
        payload = completion("Here is the mug.", usage=IMAGE_USAGE,
                             images=[{"type": "image_url", "image_url": {"url": url}}])
    elif shape == "markdown":  # new-api style gateways
        payload = completion(f"Here is the mug. \n![image]({url})", usage=IMAGE_USAGE)
    else:
        payload = completion([{"type": "text", "text": "Here is the mug."},
                              {"type": "image_url", "image_url": {"url": url}}], usage=IMAGE_USAGE)
    reply, fetch = parse_chat_reply(200, json.dumps(payload).encode(), wants_image=True)
    assert (reply.outcome, reply.image, reply.image_mime, fetch) == (Outcome.OK, PNG, "image/png", None)
    assert reply.text == "Here is the mug."
    assert reply.usage == Usage(prompt=12, output_text=0, output_image=1298, total=1310)


def test_the_last_image_is_the_deliverable_and_image_tokens_split_when_given():
    first, last = base64.b64encode(png_bytes((0, 0, 1))).decode(), PNG_B64
    text = f"draft ![a](data:image/png;base64,{first}) final ![b](data:image/png;base64,{last})"
    usage = {"prompt_tokens": 5, "completion_tokens": 1500, "total_tokens": 1505,
             "completion_tokens_details": {"reasoning_tokens": 300, "image_tokens": 1120}}
    reply, _ = parse_chat_reply(200, json.dumps(completion(text, usage=usage)).encode(), wants_image=True)
    assert reply.image == PNG and reply.text == "draft  final"
    assert (reply.usage.thoughts, reply.usage.output_image, reply.usage.output_text) == (300, 1120, 80)


def test_an_image_job_without_an_image_is_retried_as_no_image():
    reply, _ = parse_chat_reply(200, json.dumps(completion("I drew nothing")).encode(), wants_image=True)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "no_image")


def test_a_bad_data_url_is_malformed():
    payload = completion("![x](data:image/png;base64,@@@@)")
    reply, _ = parse_chat_reply(200, json.dumps(payload).encode(), wants_image=True)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "malformed")


def test_a_data_url_wrapped_over_lines_gives_the_whole_image():
    wrapped = "\n".join(PNG_B64[i:i + 76] for i in range(0, len(PNG_B64), 76))
    assert "\n" in wrapped
    payload = completion(f"Here.\n![image](data:image/png;base64,{wrapped})\nDone.", usage=IMAGE_USAGE)
    reply, _ = parse_chat_reply(200, json.dumps(payload).encode(), wants_image=True)
    assert (reply.outcome, reply.image, reply.text) == (Outcome.OK, PNG, "Here.\n\nDone.")


def test_read_message_finds_markdown_url_images_and_strips_them_from_text():
    text, image = read_message({"content": "Done: ![image](https://cdn.example.com/a.png)"})
    assert (text, image) == ("Done:", "https://cdn.example.com/a.png")


# ---- images by URL ------------------------------------------------------------------------------------------


def url_reply_then(image_response):
    """A handler: the chat reply names its image by URL; the GET of that URL gets `image_response`."""
    payload = completion("![image](https://cdn.example.com/img/1.png)", usage=IMAGE_USAGE)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=payload)
        return image_response(request)

    return handler


def image_job():
    return record(neutral("draw", options={"responseModalities": ["IMAGE"]}), model="gemini-3.1-flash-image")


def test_an_image_served_without_an_image_type_is_known_by_its_bytes():
    served = lambda request: httpx.Response(200, content=PNG, headers={"content-type": "application/octet-stream"})  # noqa: E731
    reply, _ = exchange(provider(), image_job(), url_reply_then(served))
    assert (reply.outcome, reply.image, reply.image_mime) == (Outcome.OK, PNG, "image/png")


def test_an_image_url_is_downloaded_without_the_api_key():
    served = lambda request: httpx.Response(200, content=PNG, headers={"content-type": "image/png"})  # noqa: E731
    reply, seen = exchange(provider(), image_job(), url_reply_then(served))
    assert (reply.outcome, reply.image, reply.image_mime) == (Outcome.OK, PNG, "image/png")
    get = seen[1]
    assert (get.method, str(get.url)) == ("GET", "https://cdn.example.com/img/1.png")
    assert "authorization" not in get.headers and KEY not in str(get.headers)


@pytest.mark.parametrize("served, why", [
    (lambda request: httpx.Response(503, content=b"busy"), "HTTP 503"),
    (lambda request: httpx.Response(200, content=b""), "the image is empty"),
    (lambda request: httpx.Response(200, content=b"x" * 2048), "larger than"),
    (lambda request: httpx.Response(200, content=b"<html>sign in</html>", headers={"content-type": "text/html"}),
     "the URL gave text/html, not an image"),
])
def test_a_failed_download_is_a_retryable_image_download_error(served, why):
    reply, _ = exchange(provider(max_image_bytes=1024), image_job(), url_reply_then(served))
    assert (reply.outcome, reply.error_kind, reply.image) == (Outcome.RETRY, "image_download", None)
    assert why in reply.error_message and reply.usage is not None  # the reply was still paid for
    assert reply.error_message.endswith("(https://cdn.example.com/img/1.png)")  # to fetch it by hand


def test_a_download_that_times_out_is_retryable():
    def served(request):
        raise httpx.ReadTimeout("timed out", request=request)

    reply, _ = exchange(provider(), image_job(), url_reply_then(served))
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "image_download")
    assert "ReadTimeout" in reply.error_message


# ---- errors ---------------------------------------------------------------------------------------------


def envelope(message, type_, code=None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def test_a_rate_limit_429_is_retried_with_the_delay_from_retry_after_ms():
    payload = envelope("Rate limit reached for gpt-5-mini on requests per min (RPM): Limit 500, Used 500.",
                       "requests", "rate_limit_exceeded")
    reply, _ = exchange(provider(), record(neutral("x")), answer(429, payload, {"retry-after-ms": "1500"}))
    assert (reply.outcome, reply.error_kind, reply.retry_after_s) == (Outcome.RETRY, "rate_limited", 1.5)
    assert reply.rate_limited


@pytest.mark.parametrize("type_, code", [
    ("insufficient_quota", "insufficient_quota"),
    ("insufficient_quota", "credit_balance_exhausted"),
    ("invalid_request_error", "organization_spend_limit_exceeded"),
    ("invalid_request_error", "project_spend_limit_exceeded"),
])
def test_a_billing_429_stops_the_run_like_a_spent_quota(type_, code):
    payload = envelope("You exceeded your current quota, please check your plan and billing details.", type_, code)
    reply, _ = exchange(provider(), record(neutral("x")), answer(429, payload))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_QUOTA, "insufficient_quota")
    assert not reply.rate_limited


def test_a_bad_key_stops_the_run_and_the_message_never_holds_the_key():
    payload = envelope(f"Incorrect API key provided: {KEY}. You can find your API key at ...", "invalid_request_error",
                       "invalid_api_key")
    reply, _ = exchange(provider(), record(neutral("x")), answer(401, payload))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_AUTH, "auth")
    assert KEY not in reply.error_message and KEY[:12] not in reply.error_message


def test_an_error_envelope_inside_a_200_is_classified_by_its_code():
    payload = envelope("The server had an error while processing your request.", "server_error", "500")
    reply, _ = exchange(provider(), record(neutral("x")), answer(200, payload))
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "server_error")
    comet = envelope("bad request (request id: 2026)", "comet_api_error", "invalid_request")
    reply, _ = exchange(provider(), record(neutral("x")), answer(200, comet))
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "invalid_request")


@pytest.mark.parametrize("status, outcome, kind", [
    (400, Outcome.INVALID, "invalid_request"), (404, Outcome.INVALID, "not_found"),
    (500, Outcome.RETRY, "server_error"), (503, Outcome.RETRY, "unavailable"),
])
def test_error_envelopes_in_4xx_and_5xx(status, outcome, kind):
    payload = envelope("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found", "model")
    reply, _ = exchange(provider(), record(neutral("x")), answer(status, payload))
    assert (reply.outcome, reply.error_kind, reply.http_status) == (outcome, kind, status)


def test_a_transport_failure_is_retryable():
    def handler(request):
        raise httpx.ConnectError("connection refused")

    reply, _ = exchange(provider(), record(neutral("x")), handler)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "connection")


def test_rate_limit_headers_come_back_as_headroom():
    headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
               "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "200000",
               "x-ratelimit-remaining-tokens": "199950", "x-ratelimit-reset-tokens": "6m0s"}
    reply, _ = exchange(provider(), record(neutral("x")), answer(200, completion(), headers))
    assert reply.headroom == Headroom(requests=499, requests_limit=500, requests_reset_s=0.12, tokens=199950,
                                      tokens_limit=200000, tokens_reset_s=360.0)
    plain, _ = exchange(provider(), record(neutral("x")), answer(200, completion()))
    assert plain.headroom is None


def test_the_repr_never_shows_the_key():
    assert KEY not in repr(provider()) and "key=set" in repr(provider())


# ---- streaming ----------------------------------------------------------------------------------------------


def sse(*events) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events)


def chunk(delta=None, finish=None, usage=None, choices=True):
    out = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "gpt-5-mini",
           "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []}
    if usage is not None:
        out["usage"] = usage
    return out


def test_a_stream_gives_the_same_reply_as_a_plain_call():
    usage = completion()["usage"]
    stream = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "A blue"}), chunk({"content": " mug."}),
                 chunk(finish="stop"), chunk(choices=False, usage=usage), b"[DONE]")
    streamed, _ = parse_chat_sse(stream, wants_image=False)
    plain, _ = parse_chat_reply(200, json.dumps(completion()).encode(), wants_image=False)
    assert (streamed.outcome, streamed.text, streamed.finish_reason, streamed.usage) == (
        plain.outcome, plain.text, plain.finish_reason, plain.usage)
    assert streamed.response_id == "chatcmpl-s1"


def test_a_streamed_request_is_sent_with_stream_and_parsed_as_events():
    stream = sse(chunk({"content": "Hi"}), chunk(finish="stop"), b"[DONE]")
    reply, seen = exchange(provider(stream=True), record(neutral("x")),
                           answer(200, content=stream, headers={"content-type": "text/event-stream"}))
    assert json.loads(seen[0].content)["stream"] is True
    assert (reply.outcome, reply.text, reply.usage) == (Outcome.OK, "Hi", None)


def test_an_error_event_in_a_stream_is_classified():
    stream = sse(chunk({"content": "Hi"}), envelope("overloaded", "server_error", "503"))
    reply, _ = parse_chat_sse(stream, wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "unavailable")


def test_streamed_refusal_and_images_are_joined():
    merged = merge_chunks([chunk({"refusal": "I'm sorry"}), chunk({"refusal": ", no."}, finish="stop")])
    assert merged["choices"][0]["message"]["refusal"] == "I'm sorry, no."
    url = f"data:image/png;base64,{PNG_B64}"
    stream = sse(chunk({"content": "Here", "images": [{"type": "image_url", "image_url": {"url": url}}]}),
                 chunk(finish="stop"))
    reply, _ = parse_chat_sse(stream, wants_image=True)
    assert (reply.outcome, reply.image) == (Outcome.OK, PNG)


def test_usage_without_counts_is_none_where_not_reported():
    assert chat_usage(None, has_image=False) is None
    assert chat_usage({"prompt_tokens": 3}, has_image=False) == Usage(prompt=3)


# ---- service tiers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", [Tier.FLEX, Tier.PRIORITY])
def test_a_run_at_flex_or_priority_sends_openai_s_service_tier(tier):
    body = neutral("Hi")
    sent = provider(tier=tier).encode_body(record(body))
    assert sent == json.dumps({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hi"}],
                               "service_tier": tier.value}, separators=(",", ":")).encode()


def test_a_run_at_standard_sends_no_service_tier():
    assert b"service_tier" not in provider(tier=Tier.STANDARD).encode_body(record(neutral("Hi")))


@pytest.mark.parametrize(("said", "served"), [("flex", "flex"), ("priority", "priority"), ("default", "standard"),
                                              ("scale", None), (None, None)])
def test_the_tier_that_served_a_completion_is_read_from_its_service_tier(said, served):
    payload = {**completion(), "service_tier": said}
    reply, _ = exchange(provider(tier=Tier.FLEX), record(neutral("Hi")), answer(payload=payload))
    assert (reply.outcome, reply.service_tier) == (Outcome.OK, served)


def test_a_streamed_completion_keeps_its_service_tier():
    chunks = [{"id": "c1", "model": "m", "service_tier": "flex",
               "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}]
    data = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
    reply, _ = parse_chat_sse(data, wants_image=False)
    assert (reply.text, reply.service_tier) == ("Hi", "flex")
