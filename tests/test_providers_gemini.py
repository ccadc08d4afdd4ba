"""The Gemini-native adapter: exact bytes sent, recorded-shape replies parsed, the key kept secret."""

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

from batchrun.providers.gemini import (
    GeminiProvider,
    gemini_estimate_inputs,
    parse_reply,
    parse_sse,
    read_parts,
)
from batchrun.records import EstimateInputs, ImageRef, Outcome, RequestRecord, Usage
from batchrun.rendered import rendered_request
from batchrun.tiers import Tier

FIXTURES = Path(__file__).parent / "fixtures" / "replies"
KEY = "test-key-123"
GOOGLE = "https://generativelanguage.googleapis.com"
COMET = "https://api.cometapi.com"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def record(body, *, model="gemini-3-flash-preview", images=()) -> RequestRecord:
    return RequestRecord(request_id="r1", seq=0, model=model, body=body, variables={}, images=list(images))


def exchange(provider, rec, status=200, content=b"{}", headers=None, raises=None):
    """Send one record through a MockTransport; return the reply and the requests seen."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if raises is not None:
            raise raises
        return httpx.Response(status, content=content, headers=headers or {})

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await provider.send(client, rec)

    return anyio.run(main), seen


def png_bytes(color=(255, 0, 0), size=(4, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def photo(tmp_path: Path, name="photo.png", color=(0, 128, 0)) -> ImageRef:
    data = png_bytes(color)
    (tmp_path / name).write_bytes(data)
    return ImageRef(name, hashlib.sha256(data).hexdigest(), "image/png", len(data), 4, 3)


def neutral(*parts, system=None, options=None, tools=None, extras=None) -> dict:
    """A rendered request as `expand` makes it: text parts as strings, image parts as dicts."""
    made = [{"text": part} if isinstance(part, str) else part for part in parts]
    return rendered_request(system, made, options, tools, extras or {})


def image_ref(ref: ImageRef) -> dict:
    return {"image": f"sha256:{ref.sha256}", "mime": ref.mime}


TEXT_BODY = neutral(
    "Describe a blue mug in one line.", system="You are a copywriter.",
    options={"temperature": 1.0, "maxOutputTokens": 256},
    extras={"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]},
)


# --- what is sent -------------------------------------------------------------------------------


def test_text_job_sends_exact_json_with_the_google_key_header(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path)
    reply, seen = exchange(provider, record(TEXT_BODY), content=fixture("text_stop.json"))
    (sent,) = seen
    assert sent.method == "POST"
    assert str(sent.url) == f"{GOOGLE}/v1beta/models/gemini-3-flash-preview:generateContent"
    assert sent.content == (
        b'{"contents":[{"role":"user","parts":[{"text":"Describe a blue mug in one line."}]}],'
        b'"systemInstruction":{"parts":[{"text":"You are a copywriter."}]},'
        b'"generationConfig":{"temperature":1.0,"maxOutputTokens":256},'
        b'"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_ONLY_HIGH"}]}'
    )
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert (reply.outcome, reply.text) == (Outcome.OK, "A bright mug on a kitchen counter.")


def test_image_job_inlines_the_photo_and_sends_a_bearer_key(tmp_path):
    ref = photo(tmp_path)
    body = neutral("Photograph the mug on a picnic table.", image_ref(ref),
                   options={"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "4:5", "imageSize": "2K"}})
    provider = GeminiProvider(COMET, KEY, auth="bearer", spec_dir=tmp_path)
    rec = record(body, model="gemini-3.1-flash-image", images=[ref])
    reply, seen = exchange(provider, rec, content=fixture("image_stop.json"))
    (sent,) = seen
    b64 = base64.b64encode((tmp_path / "photo.png").read_bytes())
    assert str(sent.url) == f"{COMET}/v1beta/models/gemini-3.1-flash-image:generateContent"
    assert sent.content == (
        b'{"contents":[{"role":"user","parts":[{"text":"Photograph the mug on a picnic table."},'
        b'{"inlineData":{"mimeType":"image/png","data":"' + b64 + b'"}}]}],'
        b'"generationConfig":{"responseModalities":["IMAGE"],'
        b'"imageConfig":{"aspectRatio":"4:5","imageSize":"2K"}}}'
    )
    assert b"sha256:" not in sent.content
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in sent.headers
    assert rec.body["parts"][1]["image"] == f"sha256:{ref.sha256}"
    assert reply.outcome is Outcome.OK


def test_json_schema_job_sends_exact_json_and_reads_the_text(tmp_path):
    schema = {"type": "OBJECT", "properties": {"title": {"type": "STRING"},
                                                "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
              "required": ["title"]}
    body = neutral("Title and tags for: blue mug, 350 ml",
                   options={"responseMimeType": "application/json", "responseSchema": schema})
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path)
    reply, seen = exchange(provider, record(body), content=fixture("text_json_stop.json"))
    assert seen[0].content == (
        b'{"contents":[{"role":"user","parts":[{"text":"Title and tags for: blue mug, 350 ml"}]}],'
        b'"generationConfig":{"responseMimeType":"application/json","responseSchema":'
        b'{"type":"OBJECT","properties":{"title":{"type":"STRING"},'
        b'"tags":{"type":"ARRAY","items":{"type":"STRING"}}},"required":["title"]}}}'
    )
    assert json.loads(reply.text) == {"title": "Blue mug", "tags": ["mug"]}


def test_tools_and_safety_settings_follow_the_config_as_before(tmp_path):
    body = neutral("Latest price of a blue mug?", options={"temperature": 0.2},
                   tools=[{"googleSearch": {}}],
                   extras={"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]})
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path).encode_body(record(body))
    assert sent == (
        b'{"contents":[{"role":"user","parts":[{"text":"Latest price of a blue mug?"}]}],'
        b'"generationConfig":{"temperature":0.2},'
        b'"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}],'
        b'"tools":[{"googleSearch":{}}]}'
    )


def test_a_json_schema_in_the_json_schema_dialect_is_sent_as_response_json_schema(tmp_path):
    body = neutral("Tags", options={"responseJsonSchema": {"type": "array"}, "responseMimeType": "application/json"})
    assert body["options"] == {"responseMimeType": "application/json"}
    assert body["response_schema"] == {"dialect": "json_schema", "schema": {"type": "array"}}
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path).encode_body(record(body))
    assert sent.endswith(b'"generationConfig":{"responseMimeType":"application/json",'
                         b'"responseJsonSchema":{"type":"array"}}}')


def test_estimate_inputs_are_read_from_named_options_in_either_case():
    camel = neutral("x", options={"maxOutputTokens": 300, "responseModalities": ["text", "IMAGE"],
                                  "imageConfig": {"imageSize": "2K"}, "mediaResolution": "media_resolution_low",
                                  "thinkingConfig": {"thinkingLevel": "high"}})
    assert gemini_estimate_inputs(camel) == EstimateInputs(
        max_output_tokens=300, modalities=("TEXT", "IMAGE"), image_size="2K",
        media_resolution="MEDIA_RESOLUTION_LOW", thinking_level="high")
    snake = neutral("x", options={"thinking_config": {"thinking_budget": 64}}, extras={"serviceTier": "flex"})
    got = gemini_estimate_inputs(snake)
    assert (got.thinking_budget, got.service_tier, got.text_allowed) == (64, "flex", True)
    assert gemini_estimate_inputs(neutral("x")) == EstimateInputs()


def test_the_same_photo_twice_is_inlined_at_both_places(tmp_path):
    ref = photo(tmp_path)
    rec = record(neutral(image_ref(ref), image_ref(ref)), images=[ref, ref])
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path).encode_body(rec)
    b64 = base64.b64encode((tmp_path / "photo.png").read_bytes())
    assert sent.count(b64) == 2


def test_non_ascii_text_is_sent_as_utf8(tmp_path):
    rec = record(neutral("Tasse bleue, café"))
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path).encode_body(rec)
    assert sent == '{"contents":[{"role":"user","parts":[{"text":"Tasse bleue, café"}]}]}'.encode()


def test_a_changed_photo_is_invalid_and_nothing_is_sent(tmp_path):
    ref = photo(tmp_path)
    (tmp_path / "photo.png").write_bytes(png_bytes((1, 2, 3)))
    body = neutral(image_ref(ref))
    reply, seen = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(body, images=[ref]))
    assert seen == []
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "input_changed")
    assert "photo.png" in reply.error_message


def test_a_missing_photo_is_invalid(tmp_path):
    ref = photo(tmp_path)
    (tmp_path / "photo.png").unlink()
    body = neutral(image_ref(ref))
    reply, seen = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(body, images=[ref]))
    assert (reply.outcome, reply.error_kind, seen) == (Outcome.INVALID, "input_changed", [])


def test_a_placeholder_without_its_image_is_invalid(tmp_path):
    body = neutral({"image": "sha256:" + "ab" * 32, "mime": "image/png"})
    reply, seen = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(body))
    assert (reply.outcome, reply.error_kind, seen) == (Outcome.INVALID, "input_changed", [])


def test_no_key_sends_no_auth_header(tmp_path):
    provider = GeminiProvider("http://127.0.0.1:8765/", None, spec_dir=tmp_path)
    _, seen = exchange(provider, record(TEXT_BODY), content=fixture("text_stop.json"))
    assert str(seen[0].url) == "http://127.0.0.1:8765/v1beta/models/gemini-3-flash-preview:generateContent"
    assert "x-goog-api-key" not in seen[0].headers and "authorization" not in seen[0].headers


def test_build_request_carries_the_timeout(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, timeout_s=42.0)
    rec = record(TEXT_BODY, model="models/gemini-3-flash-preview")
    request = provider.build_request(httpx.AsyncClient(), rec)
    assert request.extensions["timeout"]["read"] == 42.0
    assert request.url.path == "/v1beta/models/gemini-3-flash-preview:generateContent"


def test_an_unknown_auth_scheme_is_refused(tmp_path):
    with pytest.raises(ValueError, match="auth must be one of"):
        GeminiProvider(GOOGLE, KEY, auth="basic", spec_dir=tmp_path)


# --- every class of reply -----------------------------------------------------------------------

REPLIES = [
    # fixture, wants_image, outcome, error_kind, finish_reason
    ("text_stop.json", False, Outcome.OK, None, "STOP"),
    ("text_max_tokens.json", False, Outcome.OK, None, "MAX_TOKENS"),
    ("text_max_tokens_empty.json", False, Outcome.RETRY, "no_text", "MAX_TOKENS"),
    ("image_stop.json", True, Outcome.OK, None, "STOP"),
    ("image_thoughts.json", True, Outcome.OK, None, "STOP"),
    ("image_thoughts_only.json", True, Outcome.RETRY, "no_image", "STOP"),
    ("image_text_only_stop.json", True, Outcome.RETRY, "no_image", "STOP"),
    ("image_finish_no_image.json", True, Outcome.RETRY, "no_image", "NO_IMAGE"),
    ("image_finish_image_other.json", True, Outcome.RETRY, "no_image", "IMAGE_OTHER"),
    ("image_finish_other.json", True, Outcome.RETRY, "no_image", "OTHER"),
    ("image_finish_max_tokens.json", True, Outcome.RETRY, "no_image", "MAX_TOKENS"),
    ("finish_safety.json", True, Outcome.BLOCKED, "safety_block", "SAFETY"),
    ("finish_prohibited_content.json", False, Outcome.BLOCKED, "safety_block", "PROHIBITED_CONTENT"),
    ("finish_blocklist.json", False, Outcome.BLOCKED, "safety_block", "BLOCKLIST"),
    ("finish_spii.json", False, Outcome.BLOCKED, "safety_block", "SPII"),
    ("finish_image_safety.json", True, Outcome.BLOCKED, "safety_block", "IMAGE_SAFETY"),
    ("finish_image_prohibited_content.json", True, Outcome.BLOCKED, "safety_block", "IMAGE_PROHIBITED_CONTENT"),
    ("finish_recitation.json", False, Outcome.RETRY, "recitation", "RECITATION"),
    ("finish_image_recitation.json", True, Outcome.RETRY, "recitation", "IMAGE_RECITATION"),
    ("finish_language.json", False, Outcome.INVALID, "unsupported_language", "LANGUAGE"),
    ("finish_malformed_function_call.json", False, Outcome.RETRY, "tool_call", "MALFORMED_FUNCTION_CALL"),
    ("finish_new_reason_2027.json", True, Outcome.RETRY, "unknown_finish", "NEW_REASON_2027"),
    ("prompt_blocked.json", True, Outcome.BLOCKED, "prompt_blocked", None),
    ("no_candidates.json", True, Outcome.RETRY, "no_candidates", None),
]


@pytest.mark.parametrize(("name", "wants_image", "outcome", "kind", "finish"), REPLIES, ids=[r[0] for r in REPLIES])
def test_recorded_replies_are_classified(name, wants_image, outcome, kind, finish):
    reply = parse_reply(200, fixture(name), wants_image=wants_image)
    assert (reply.outcome, reply.error_kind, reply.finish_reason) == (outcome, kind, finish)
    assert reply.http_status == 200
    assert (reply.image is not None) == (outcome is Outcome.OK and wants_image)
    if outcome is not Outcome.OK:
        assert reply.error_message


def test_the_last_non_thought_image_is_the_deliverable():
    reply = parse_reply(200, fixture("image_thoughts.json"), wants_image=True)
    image = Image.open(io.BytesIO(reply.image))
    assert image.getpixel((0, 0)) == (255, 0, 0)  # the thoughts were grey and blue
    assert reply.image_mime == "image/png"
    assert reply.text is None  # the only text part was a thought


def test_read_parts_skips_thought_text_and_keeps_the_last_image():
    first = {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    last = {"inlineData": {"mimeType": "image/jpeg", "data": "BBBB"}}
    candidate = {"content": {"parts": [{"text": "plan", "thought": True}, {"text": "a"}, first,
                                       {"text": "b"}, last, {"inlineData": {"mimeType": "image/png",
                                                                           "data": "CCCC"}, "thought": True}]}}
    assert read_parts(candidate) == ("ab", last["inlineData"])


def test_image_reply_usage_is_split_by_modality():
    reply = parse_reply(200, fixture("image_stop.json"), wants_image=True)
    assert reply.usage == Usage(prompt=1140, prompt_image=1120, cached=None, output_text=10,
                                output_image=1120, thoughts=210, total=2480)
    assert (reply.model_version, reply.response_id) == ("gemini-3.1-flash-image", "rEsP0nSeId-image-1")
    assert reply.text == "Here is the mug."


def test_image_usage_without_details_counts_all_output_as_image():
    usage = parse_reply(200, fixture("image_thoughts.json"), wants_image=True).usage
    assert (usage.output_text, usage.output_image, usage.thoughts, usage.prompt_image) == (0, 1120, 402, None)


def test_text_usage_without_details_counts_all_output_as_text():
    usage = parse_reply(200, fixture("text_max_tokens.json"), wants_image=False).usage
    assert (usage.prompt, usage.prompt_image, usage.output_text, usage.output_image) == (24, 0, 8, 0)


def test_a_blocked_prompt_keeps_its_reason_and_usage():
    reply = parse_reply(200, fixture("prompt_blocked.json"), wants_image=True)
    assert reply.error_message == "prompt blocked: PROHIBITED_CONTENT"
    assert reply.usage.prompt == 31


def test_model_status_is_read():
    reply = parse_reply(200, fixture("image_thoughts.json"), wants_image=True)
    assert (reply.model_stage, reply.retirement_time) == ("DEPRECATED", "2026-10-02T00:00:00Z")


# --- error envelopes, through a real exchange -----------------------------------------------------

ERRORS = [
    # fixture, status, outcome, kind, retry_after_s
    ("google_400_api_key_invalid.json", 400, Outcome.STOP_AUTH, "auth", None),
    ("google_400_invalid_argument.json", 400, Outcome.INVALID, "invalid_request", None),
    ("google_400_failed_precondition.json", 400, Outcome.STOP_AUTH, "precondition", None),
    ("google_403_permission_denied.json", 403, Outcome.STOP_AUTH, "permission", None),
    ("google_404_not_found.json", 404, Outcome.INVALID, "not_found", None),
    ("google_429_per_minute.json", 429, Outcome.RETRY, "rate_limited", 53.0),
    ("google_429_list_wrapped.json", 429, Outcome.RETRY, "rate_limited", None),
    ("google_500_internal.json", 500, Outcome.RETRY, "server_error", None),
    ("google_503_unavailable.json", 503, Outcome.RETRY, "unavailable", None),
    ("google_504_deadline.json", 504, Outcome.RETRY, "timeout", None),
    ("comet_401_invalid_token.json", 401, Outcome.STOP_AUTH, "auth", None),
    ("comet_500_invalid_request.json", 500, Outcome.INVALID, "invalid_request", None),
    ("comet_500_upstream.json", 500, Outcome.RETRY, "server_error", None),
    ("comet_429_insufficient_quota.json", 429, Outcome.STOP_QUOTA, "insufficient_quota", None),
    ("comet_200_envelope_no_code.json", 200, Outcome.RETRY, "envelope_in_200", None),
    ("comet_200_envelope_google_code.json", 200, Outcome.RETRY, "unavailable", None),
    ("google_429_list_wrapped.json", 200, Outcome.RETRY, "rate_limited", None),
]


@pytest.mark.parametrize(("name", "status", "outcome", "kind", "delay"), ERRORS,
                         ids=[f"{e[0]}-{e[1]}" for e in ERRORS])
def test_error_envelopes_are_classified(tmp_path, name, status, outcome, kind, delay):
    provider = GeminiProvider(COMET, KEY, auth="bearer", spec_dir=tmp_path)
    reply, _ = exchange(provider, record(TEXT_BODY), status=status, content=fixture(name))
    assert (reply.outcome, reply.error_kind, reply.retry_after_s) == (outcome, kind, delay)
    assert reply.http_status == status
    payload = json.loads(fixture(name))
    error = payload[0]["error"] if isinstance(payload, list) else payload["error"]
    assert reply.error_message == " ".join(error["message"].split())[:300]


def test_a_daily_quota_stops_and_says_when_it_resets(tmp_path):
    reply, _ = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(TEXT_BODY),
                        status=429, content=fixture("google_429_per_day.json"))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_QUOTA, "daily_quota")
    assert "resets at midnight Pacific time" in reply.error_message
    assert 0 < reply.retry_after_s <= 25 * 3600


def test_retry_after_header_is_honoured(tmp_path):
    reply, _ = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(TEXT_BODY),
                        status=503, content=b"", headers={"Retry-After": "12"})
    assert (reply.outcome, reply.error_kind, reply.retry_after_s) == (Outcome.RETRY, "unavailable", 12.0)


@pytest.mark.parametrize("content", [b"<html>502 Bad Gateway</html>", b"", b'{"candidates": ', b"[1, 2]", b"\xff\xfe"])
def test_a_200_that_is_not_a_reply_is_malformed(content):
    reply = parse_reply(200, content, wants_image=False)
    assert (reply.outcome, reply.error_kind, reply.http_status) == (Outcome.RETRY, "malformed", 200)


def test_a_reply_of_the_wrong_shape_is_malformed():
    reply = parse_reply(200, b'{"candidates": ["oops"]}', wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "malformed")


def test_an_html_404_is_invalid():
    reply = parse_reply(404, b"<html>Not Found</html>", wants_image=False)
    assert (reply.outcome, reply.error_kind, reply.error_message) == (Outcome.INVALID, "not_found", "HTTP 404")


def test_bad_base64_in_the_image_is_malformed():
    payload = {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "A"}}]},
                               "finishReason": "STOP"}]}
    reply = parse_reply(200, json.dumps(payload).encode(), wants_image=True)
    assert (reply.outcome, reply.error_kind, reply.image) == (Outcome.RETRY, "malformed", None)


@pytest.mark.parametrize(
    ("exc", "kind"), [(httpx.ReadTimeout("timed out"), "timeout"), (httpx.ConnectError("refused"), "connection"),
                      (httpx.RemoteProtocolError("peer closed"), "connection")])
def test_transport_failures_become_retry_replies(tmp_path, exc, kind):
    reply, seen = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(TEXT_BODY), raises=exc)
    assert (reply.outcome, reply.error_kind, reply.http_status, len(seen)) == (Outcome.RETRY, kind, None, 1)


# --- streaming ---------------------------------------------------------------------------------


def test_sse_text_is_joined_and_usage_comes_from_the_last_chunk():
    reply = parse_sse(fixture("stream_text.sse"), wants_image=False)
    assert (reply.outcome, reply.finish_reason) == (Outcome.OK, "STOP")
    assert reply.text == "A bright mug on a kitchen counter."
    assert reply.usage == Usage(prompt=24, prompt_image=0, output_text=12, output_image=0, thoughts=16, total=52)
    assert reply.response_id == "rEsP0nSeId-text-1"


def test_sse_split_at_any_byte_gives_the_same_reply():
    data = fixture("stream_text.sse")
    whole = parse_sse(data, wants_image=False)
    for size in (1, 7, 64):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert parse_sse(iter(chunks), wants_image=False) == whole


def test_sse_blocked_prompt():
    reply = parse_sse(fixture("stream_blocked.sse"), wants_image=False)
    assert (reply.outcome, reply.error_kind, reply.usage.prompt) == (Outcome.BLOCKED, "prompt_blocked", 9)


def test_sse_error_midway_is_classified():
    reply = parse_sse(fixture("stream_error_midway.sse"), wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "unavailable")


def test_sse_error_as_plain_json_is_classified():
    reply = parse_sse(fixture("google_429_list_wrapped.json"), wants_image=False)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "rate_limited")


@pytest.mark.parametrize("data", [b"", b"data: {not json\n\n", b"data: [1]\n\n"])
def test_sse_garbage_is_malformed(data):
    assert parse_sse(data, wants_image=False).error_kind == "malformed"


def test_streaming_text_job_uses_the_sse_endpoint(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, stream=True)
    reply, seen = exchange(provider, record(TEXT_BODY), content=fixture("stream_text.sse"),
                           headers={"content-type": "text/event-stream"})
    assert str(seen[0].url) == f"{GOOGLE}/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse"
    assert (reply.outcome, reply.text, reply.usage.total) == (Outcome.OK, "A bright mug on a kitchen counter.", 52)


def test_streaming_an_error_status_reads_the_json_error(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, stream=True)
    reply, _ = exchange(provider, record(TEXT_BODY), status=429, content=fixture("google_429_list_wrapped.json"))
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "rate_limited")


def test_streaming_is_not_used_for_image_jobs(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, stream=True)
    body = neutral("mug", options={"responseModalities": ["IMAGE"]})
    reply, seen = exchange(provider, record(body, model="gemini-3.1-flash-image"), content=fixture("image_stop.json"))
    assert str(seen[0].url).endswith(":generateContent")
    assert reply.outcome is Outcome.OK


# --- the key stays secret -------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["x-goog-api-key", "bearer"])
def test_the_key_is_not_in_the_provider_repr_or_str(tmp_path, auth):
    provider = GeminiProvider(GOOGLE, KEY, auth=auth, spec_dir=tmp_path)
    assert KEY not in repr(provider) and KEY not in str(provider)
    assert "key=set" in repr(provider)


def test_the_key_is_scrubbed_from_a_transport_error(tmp_path):
    exc = httpx.ConnectError(f"proxy refused header x-goog-api-key: {KEY}")
    reply, _ = exchange(GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path), record(TEXT_BODY), raises=exc)
    assert KEY not in repr(reply) and KEY not in str(reply)
    assert "[redacted]" in reply.error_message


def test_the_key_is_scrubbed_from_an_echoing_gateway(tmp_path):
    echo = json.dumps({"error": {"message": f"Invalid token: Bearer {KEY}", "type": "comet_api_error", "code": ""}})
    provider = GeminiProvider(COMET, KEY, auth="bearer", spec_dir=tmp_path)
    reply, _ = exchange(provider, record(TEXT_BODY), status=401, content=echo.encode())
    assert reply.outcome is Outcome.STOP_AUTH
    assert KEY not in repr(reply) and reply.error_message == "Invalid token: Bearer [redacted]"


GOOGLE_KEY = "AIzaSyD-4fakeKeyForLeakTests_0123456789"  # a key's shape: 39 characters


def key_pieces(text: str, key: str = GOOGLE_KEY) -> list[str]:
    """Every run of 8 or more of the key's first characters found in `text`."""
    return [key[:n] for n in range(8, len(key) + 1) if key[:n] in text]


def echoing(at: int, tail: str = " is not a valid API key.") -> str:
    """A message that holds the key after `at` characters of text."""
    return "The request was refused because " + "x" * (at - 32) + GOOGLE_KEY + tail


@pytest.mark.parametrize(
    ("at", "tail"), [*((at, " is not a valid API key.") for at in range(280, 321)), (5000, "")]
)
def test_a_key_echoed_around_the_cut_leaves_no_piece_of_itself(tmp_path, at, tail):
    envelope = {"error": {"code": 400, "message": echoing(at, tail), "status": "INVALID_ARGUMENT"}}
    provider = GeminiProvider(GOOGLE, GOOGLE_KEY, spec_dir=tmp_path)
    reply, _ = exchange(provider, record(TEXT_BODY), status=400, content=json.dumps(envelope).encode())
    assert reply.error_message.startswith("The request was refused because xxx")
    assert len(reply.error_message) <= 300
    assert key_pieces(reply.error_message) == [] and key_pieces(repr(reply)) == []


@pytest.mark.parametrize("at", [262, 270, 277, 5000])  # "ConnectError: " moves the key 14 characters on
def test_a_key_in_a_transport_error_around_the_cut_leaves_no_piece_of_itself(tmp_path, at):
    exc = httpx.ConnectError(echoing(at))
    reply, _ = exchange(GeminiProvider(GOOGLE, GOOGLE_KEY, spec_dir=tmp_path), record(TEXT_BODY), raises=exc)
    assert reply.error_message.startswith("ConnectError: The request was refused")
    assert key_pieces(reply.error_message) == []


@pytest.mark.parametrize("at", [290, 5000])
def test_a_key_in_a_block_message_around_the_cut_leaves_no_piece_of_itself(tmp_path, at):
    payload = {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": echoing(at)}}
    provider = GeminiProvider(COMET, GOOGLE_KEY, auth="bearer", spec_dir=tmp_path)
    reply, _ = exchange(provider, record(TEXT_BODY), content=json.dumps(payload).encode())
    assert reply.outcome is Outcome.BLOCKED and key_pieces(reply.error_message) == []


def test_a_key_the_gateway_cut_itself_is_scrubbed(tmp_path):
    echo = json.dumps({"error": {"message": f"Invalid token: Bearer {GOOGLE_KEY[:20]}", "type": "comet_api_error"}})
    provider = GeminiProvider(COMET, GOOGLE_KEY, auth="bearer", spec_dir=tmp_path)
    reply, _ = exchange(provider, record(TEXT_BODY), status=401, content=echo.encode())
    assert reply.error_message == "Invalid token: Bearer [redacted]"


def test_the_key_is_in_no_reply_of_any_fixture(tmp_path):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path)
    for path in sorted(FIXTURES.iterdir()):
        assert KEY.encode() not in path.read_bytes()
        reply, _ = exchange(provider, record(TEXT_BODY), status=200, content=path.read_bytes())
        assert KEY not in repr(reply)


def test_a_refused_auth_scheme_does_not_echo_the_key(tmp_path):
    with pytest.raises(ValueError) as raised:
        GeminiProvider(GOOGLE, KEY, auth=KEY, spec_dir=tmp_path)
    assert KEY not in str(raised.value)


# --- service tiers ------------------------------------------------------------------------------


TIER_BODY_START = b'{"contents":[{"role":"user","parts":[{"text":"Describe a blue mug in one line."}]}],'


@pytest.mark.parametrize("tier", [Tier.FLEX, Tier.PRIORITY])
def test_a_run_at_flex_or_priority_sends_service_tier_last_at_top_level(tmp_path, tier):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=tier)
    _, seen = exchange(provider, record(TEXT_BODY), content=fixture("text_stop.json"))
    standard = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path).encode_body(record(TEXT_BODY))
    assert seen[0].content == standard[:-1] + b',"serviceTier":"' + tier.value.encode() + b'"}'
    assert json.loads(seen[0].content)["serviceTier"] == tier.value


def test_a_run_at_standard_sends_no_service_tier(tmp_path):
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=Tier.STANDARD).encode_body(record(TEXT_BODY))
    assert sent.startswith(TIER_BODY_START) and b"serviceTier" not in sent


def test_a_body_naming_its_own_service_tier_keeps_it_and_gets_no_second_one(tmp_path):
    body = neutral("Hi", extras={"serviceTier": "flex"})
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=Tier.PRIORITY).encode_body(record(body))
    assert sent.count(b"serviceTier") == 1 and json.loads(sent)["serviceTier"] == "flex"


def test_a_schema_property_named_service_tier_does_not_stop_the_run_s_tier_being_sent(tmp_path):
    schema = {"dialect": "json_schema", "schema": {"type": "object", "properties": {"serviceTier": {"type": "string"}}}}
    body = {**neutral("Hi"), "response_schema": schema}
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=Tier.FLEX).encode_body(record(body))
    assert json.loads(sent)["serviceTier"] == "flex"


def test_the_tier_is_added_after_the_photo_is_inlined(tmp_path):
    ref = photo(tmp_path)
    body = neutral("Describe", image_ref(ref))
    sent = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=Tier.FLEX).encode_body(record(body, images=[ref]))
    parsed = json.loads(sent)
    assert parsed["serviceTier"] == "flex"
    assert base64.b64decode(parsed["contents"][0]["parts"][1]["inlineData"]["data"]) == (tmp_path / ref.path).read_bytes()


def text_reply(**extra) -> bytes:
    reply = json.loads(fixture("text_stop.json"))
    usage_tier = extra.pop("usage_tier", None)
    if usage_tier is not None:
        reply["usageMetadata"]["serviceTier"] = usage_tier
    return json.dumps({**reply, **extra}).encode()


@pytest.mark.parametrize(("content", "headers", "served"), [
    (text_reply(usage_tier="flex"), {}, "flex"),
    (text_reply(serviceTier="priority"), {}, "priority"),
    (text_reply(usage_tier="SERVICE_TIER_STANDARD"), {"x-gemini-service-tier": "priority"}, "standard"),
    (text_reply(), {"x-gemini-service-tier": "standard"}, "standard"),
    (text_reply(), {}, None),
    (text_reply(usage_tier="turbo"), {}, None),
])
def test_the_tier_that_served_a_reply_is_read_from_usage_then_the_reply_then_the_header(
        tmp_path, content, headers, served):
    provider = GeminiProvider(GOOGLE, KEY, spec_dir=tmp_path, tier=Tier.PRIORITY)
    reply, _ = exchange(provider, record(TEXT_BODY), content=content, headers=headers)
    assert (reply.outcome, reply.service_tier) == (Outcome.OK, served)


def test_a_streamed_reply_reports_its_served_tier_from_the_last_usage():
    events = (b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\r\n\r\n'
              b'data: {"candidates":[{"content":{"parts":[{"text":"!"}]},"finishReason":"STOP"}],'
              b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"serviceTier":"flex"}}\r\n\r\n')
    reply = parse_sse(events, wants_image=False)
    assert (reply.text, reply.service_tier) == ("Hi!", "flex")


@pytest.mark.parametrize("status", [429, 503])
def test_a_flex_capacity_error_is_retried_like_any_429_or_503_and_stops_nothing(status):
    from batchrun.simulator.tiers import capacity_error

    shed = parse_reply(status, json.dumps(capacity_error(status)).encode(), wants_image=False)
    bare = parse_reply(status, json.dumps({"error": {"code": status, "message": "try again",
                                                     "status": capacity_error(status)["error"]["status"]}}).encode(),
                       wants_image=False)
    assert (shed.outcome, shed.error_kind, shed.retry_after_s) == (bare.outcome, bare.error_kind, None)
    assert shed.outcome is Outcome.RETRY and shed.rate_limited is (status == 429)
