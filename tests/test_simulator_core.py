"""The simulator core: each fault at its configured rate, with Google's statuses and bodies.

Rates are checked over N requests against a stated tolerance. Decisions are seeded, so these counts
are the same on every run; the tolerance (about 4.5 binomial standard deviations) says how close a
rate is promised to be, for any seed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math

import pytest
from PIL import Image

from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig
from batchrun.simulator.requestlog import RequestLog, read_request_log

N = 2000
RATE = 0.1
TOLERANCE = 4.5 * math.sqrt(N * RATE * (1 - RATE))  # ≈ 60 requests, 3 percentage points

TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3.1-flash-image"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def text_body(text: str = "Describe a blue mug.", **config) -> bytes:
    body: dict = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if config:
        body["generationConfig"] = config
    return json.dumps(body).encode()


def image_body(text: str = "A red mug on a kitchen counter", ratio: str = "1:1", size: str = "512") -> bytes:
    return text_body(text, responseModalities=["IMAGE"], imageConfig={"aspectRatio": ratio, "imageSize": size})


def call(core: SimulatorCore, body: bytes, model: str = TEXT_MODEL, rpc: str = "generateContent",
         headers: dict | None = None, query: dict | None = None):
    return core.handle("POST", f"/v1beta/models/{model}:{rpc}", query or {}, headers or {}, body)


def make_core(seed: int = 0, clock=None, **config) -> SimulatorCore:
    return SimulatorCore(FaultConfig.model_validate(config), seed, clock=clock or FakeClock())


def outcomes(core: SimulatorCore, body: bytes, model: str = TEXT_MODEL, n: int = N) -> list:
    return [call(core, body, model) for _ in range(n)]


def decoded_image(part: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"])))


# --- clean replies ------------------------------------------------------------------------------


def test_text_reply_has_the_real_apis_shape_and_usage():
    reply = call(make_core(), text_body("x" * 40))
    obj = json.loads(reply.body)
    assert (reply.status, reply.outcome) == (200, "ok")
    candidate = obj["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    text = candidate["content"]["parts"][0]["text"]
    usage = obj["usageMetadata"]
    assert usage["promptTokenCount"] == 10
    assert usage["candidatesTokenCount"] == math.ceil(len(text) / 4)
    assert usage["totalTokenCount"] == 10 + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert obj["modelVersion"] == TEXT_MODEL and obj["responseId"]


@pytest.mark.parametrize(
    "model,ratio,size,pixels,tokens",
    [
        ("gemini-3.1-flash-image", "16:9", "2K", (2752, 1536), 1680),
        ("gemini-3.1-flash-image", "1:8", "512", (192, 1536), 747),
        ("gemini-3-pro-image", "4:5", "1K", (928, 1152), 1120),
        ("gemini-2.5-flash-image", "21:9", "1K", (1536, 672), 1290),
        ("some-future-image-model", "9:16", "4K", (768, 1376), 1290),
    ],
)
def test_image_reply_has_the_requested_pixels_and_image_tokens(model, ratio, size, pixels, tokens):
    reply = call(make_core(), image_body(ratio=ratio, size=size), model)
    obj = json.loads(reply.body)
    parts = obj["candidates"][0]["content"]["parts"]
    assert decoded_image(parts[-1]).size == pixels
    assert decoded_image(parts[-1]).format == "PNG"
    details = {d["modality"]: d["tokenCount"] for d in obj["usageMetadata"]["candidatesTokensDetails"]}
    assert details == {"IMAGE": tokens}


def test_an_image_option_the_model_lacks_is_a_400():
    reply = call(make_core(), image_body(ratio="1:8", size="1K"), "gemini-3-pro-image")
    error = json.loads(reply.body)["error"]
    assert (reply.status, reply.outcome, error["status"]) == (400, "invalid", "INVALID_ARGUMENT")


def test_input_images_are_counted_by_model_family():
    png = io.BytesIO()
    Image.new("RGB", (1000, 800)).save(png, "PNG")
    part = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png.getvalue()).decode()}}
    body = json.dumps({"contents": [{"parts": [{"text": "abcd"}, part]}]}).encode()
    gemini2 = json.loads(call(make_core(), body, "gemini-2.5-flash").body)["usageMetadata"]
    gemini3 = json.loads(call(make_core(), body, "gemini-3-flash-preview").body)["usageMetadata"]
    assert gemini2["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 1}, {"modality": "IMAGE", "tokenCount": 4 * 258}]
    assert gemini3["promptTokenCount"] == 1 + 1120


def test_replies_are_deterministic_for_a_body_and_seed_and_differ_across_seeds():
    body = image_body(size="1K")
    first, again = call(make_core(seed=3), body, IMAGE_MODEL), call(make_core(seed=3), body, IMAGE_MODEL)
    other_seed = call(make_core(seed=4), body, IMAGE_MODEL)
    parts = lambda r: json.loads(r.body)["candidates"][0]["content"]["parts"]  # noqa: E731
    assert parts(first) == parts(again)
    assert parts(first)[-1]["inlineData"]["data"] != parts(other_seed)[-1]["inlineData"]["data"]


def test_fault_sequence_is_reproducible_for_a_seed():
    def sequence(seed: int) -> list[str]:
        core = make_core(seed=seed, server_error=0.2, unavailable=0.2, blocked=0.2)
        return [r.outcome for r in outcomes(core, text_body(), n=200)]

    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)


def test_count_tokens_counts_like_generate():
    reply = call(make_core(), text_body("x" * 41), rpc="countTokens")
    assert json.loads(reply.body) == {
        "totalTokens": 11, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}]}


def test_stream_without_alt_sse_is_one_json_array_and_with_it_sse_events():
    as_array = json.loads(call(make_core(), text_body(), rpc="streamGenerateContent").body)
    sse = call(make_core(), text_body(), rpc="streamGenerateContent", query={"alt": "sse"})
    events = [json.loads(e.removeprefix(b"data: ")) for e in sse.events]
    assert events == as_array and len(events) == 3
    assert "finishReason" in events[-1]["candidates"][0] and "finishReason" not in events[0]["candidates"][0]


# --- one test per fault, at its rate, with its status and body -----------------------------------


def _google_error(status: int, google_status: str):
    def check(reply):
        error = json.loads(reply.body)["error"]
        assert (reply.status, error["code"], error["status"]) == (status, status, google_status)
    return check


def _reply_check(predicate):
    def check(reply):
        assert reply.status == 200
        assert predicate(json.loads(reply.body))
    return check


# The bodies Google sends for a spent prepaid balance (HTTP 402 since about August 2026; some accounts
# get a 429 with the same details), byte for byte what a runner classifies on.
DEPLETED_MESSAGE = ("Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects "
                    "to manage your project and billing.")


def depleted_body(code: int) -> dict:
    return {"error": {"code": code, "message": DEPLETED_MESSAGE, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "PREPAYMENT_CREDITS_DEPLETED",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}


def _exact_error(status: int, body: dict):
    def check(reply):
        assert (reply.status, json.loads(reply.body)) == (status, body)
        assert reply.content_type.startswith("application/json")
    return check


def _malformed(reply):
    assert reply.status == 200 and reply.content_type.startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.body)


FAULTS = {
    "server_error": (TEXT_MODEL, text_body(), _google_error(500, "INTERNAL")),
    "unavailable": (TEXT_MODEL, text_body(), _google_error(503, "UNAVAILABLE")),
    "hang": (TEXT_MODEL, text_body(), lambda r: (r.status, r.action) == (None, "hang") or pytest.fail()),
    "drop": (TEXT_MODEL, text_body(), lambda r: (r.action == "drop" and 0 < r.cut_at < len(r.body))
             or pytest.fail()),
    "malformed": (TEXT_MODEL, text_body(), _malformed),
    "envelope200": (TEXT_MODEL, text_body(), _reply_check(
        lambda o: o["error"]["type"] == "comet_api_error" and isinstance(o["error"]["code"], str))),
    "blocked": (TEXT_MODEL, text_body(), _reply_check(
        lambda o: o["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in o)),
    "safety": (TEXT_MODEL, text_body(), _reply_check(
        lambda o: o["candidates"][0]["finishReason"] == "SAFETY" and "content" not in o["candidates"][0])),
    "no_image": (IMAGE_MODEL, image_body(), _reply_check(
        lambda o: o["candidates"][0]["finishReason"] == "NO_IMAGE" and "content" not in o["candidates"][0])),
    "max_tokens": (TEXT_MODEL, text_body(), _reply_check(
        lambda o: o["candidates"][0]["finishReason"] == "MAX_TOKENS"
        and o["usageMetadata"]["candidatesTokenCount"] > 0)),
    "billing_402": (TEXT_MODEL, text_body(), _exact_error(402, depleted_body(402))),
    "prepaid_429": (IMAGE_MODEL, image_body(), _exact_error(429, depleted_body(429))),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_emitted_at_its_rate_with_its_documented_reply(fault):
    model, body, check = FAULTS[fault]
    core = make_core(seed=7, **{fault: RATE})
    replies = outcomes(core, body, model)
    hit = [r for r in replies if r.outcome == fault]
    assert abs(len(hit) - RATE * N) <= TOLERANCE
    assert all(r.outcome == "ok" for r in replies if r not in hit)
    for reply in hit[:5]:
        check(reply)


def test_schedules_every_and_first():
    core = make_core(unavailable={"every": 5}, server_error={"first": 2})
    got = [r.outcome for r in outcomes(core, text_body(), n=10)]
    assert got == ["server_error", "server_error", "ok", "ok", "unavailable",
                   "ok", "ok", "ok", "ok", "unavailable"]


def test_billing_faults_follow_their_schedules_too():
    core = make_core(billing_402={"every": 3}, prepaid_429={"first": 1})
    assert [r.outcome for r in outcomes(core, text_body(), n=6)] == [
        "prepaid_429", "ok", "billing_402", "ok", "ok", "billing_402"]


def test_thinking_that_spends_max_output_tokens_ends_max_tokens_with_no_content():
    reply = call(make_core(), text_body(maxOutputTokens=30))
    obj = json.loads(reply.body)
    assert (reply.status, reply.outcome) == (200, "max_tokens")
    assert obj["candidates"][0] == {"finishReason": "MAX_TOKENS", "index": 0}  # no content, as Google sends it
    usage = obj["usageMetadata"]
    assert (usage["thoughtsTokenCount"], usage["candidatesTokenCount"]) == (30, 0)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 30


def test_thinking_that_leaves_a_little_gives_cut_text_with_max_tokens():
    reply = call(make_core(), text_body(maxOutputTokens=44, thinkingConfig={"thinkingBudget": 40}))
    obj = json.loads(reply.body)
    assert reply.outcome == "max_tokens" and obj["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert len(obj["candidates"][0]["content"]["parts"][0]["text"]) == 16
    assert (obj["usageMetadata"]["thoughtsTokenCount"], obj["usageMetadata"]["candidatesTokenCount"]) == (40, 4)


def test_a_schema_no_value_fits_is_a_400():
    reply = call(make_core(), text_body(responseMimeType="application/json",
                                        responseJsonSchema={"$ref": "#/$defs/Nowhere"}))
    error = json.loads(reply.body)["error"]
    assert (reply.status, reply.outcome, error["status"]) == (400, "invalid", "INVALID_ARGUMENT")
    assert "nothing is there" in error["message"]


def test_receive_decides_and_logs_and_leaves_drawing_to_complete(tmp_path):
    path = tmp_path / "requests.jsonl"
    core = SimulatorCore(FaultConfig(), clock=FakeClock(), request_log=RequestLog(path))
    image, text = core.receive("POST", f"/v1beta/models/{IMAGE_MODEL}:generateContent", {}, {}, image_body()), \
        core.receive("POST", f"/v1beta/models/{TEXT_MODEL}:generateContent", {}, {}, text_body())
    assert [(line["outcome"], line["status"]) for line in read_request_log(path)] == [("ok", 200), ("ok", 200)]
    assert (image.draws, image.body, text.draws) == (True, b"", False)
    image.complete()
    image.complete()  # once built, a body is not built again
    assert decoded_image(json.loads(image.body)["candidates"][0]["content"]["parts"][-1]).size == (512, 512)
    core.close()


def test_no_image_leaves_text_requests_alone():
    core = make_core(no_image={"every": 1})
    assert call(core, text_body()).outcome == "ok"


def test_latency_delays_its_rate_of_requests_by_its_distribution():
    core = make_core(latency={"distribution": "uniform", "min_ms": 100, "max_ms": 300, "rate": RATE})
    delays = [r.delay_s for r in outcomes(core, text_body())]
    delayed = [d for d in delays if d > 0]
    assert abs(len(delayed) - RATE * N) <= TOLERANCE
    assert all(0.1 <= d <= 0.3 for d in delayed)


def test_long_tail_latency_has_its_median_and_p99():
    core = make_core(latency={"distribution": "long_tail", "median_ms": 50, "p99_ms": 1000})
    delays = sorted(r.delay_s for r in outcomes(core, text_body()))
    assert 0.045 <= delays[N // 2] <= 0.055  # median within 10 %
    assert 0.7 <= delays[int(N * 0.99)] <= 1.4  # p99 within ~40 % (few samples in the tail)


def test_thought_images_come_first_and_at_their_rate():
    core = make_core(thought_images=0.3)
    replies = [json.loads(r.body) for r in outcomes(core, image_body(), IMAGE_MODEL, n=400)]
    parts = [o["candidates"][0]["content"]["parts"] for o in replies]
    with_thoughts = [p for p in parts if any(x.get("thought") for x in p)]
    assert abs(len(with_thoughts) - 0.3 * 400) <= 4.5 * math.sqrt(400 * 0.3 * 0.7)
    for p in with_thoughts:
        assert 1 <= sum(1 for x in p if x.get("thought")) <= 2
        assert "thought" not in p[-1] and "inlineData" in p[-1] and p[-1]["thoughtSignature"]


def test_requests_per_minute_admits_the_limit_in_any_minute_and_says_when_to_retry():
    clock = FakeClock()
    core = make_core(clock=clock, limits={"requests_per_minute": 100})
    admitted = 0
    for _ in range(1200):  # ten requests a second for two minutes
        reply = call(core, text_body())
        admitted += reply.outcome == "ok"
        clock.now += 0.1
    assert admitted == 200
    clock.now = 1_800_000_000.0 + 1000  # a fresh minute: fill it at once, ask again 58.5 s later
    assert [call(core, text_body()).outcome for _ in range(101)] == ["ok"] * 100 + ["rate_limited"]
    clock.now += 58.5
    error = json.loads(call(core, text_body()).body)["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    violation = next(d for d in error["details"] if d["@type"].endswith("QuotaFailure"))["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    retry = next(d for d in error["details"] if d["@type"].endswith("RetryInfo"))
    assert retry["retryDelay"] == "1.5s"


def test_images_per_minute_counts_only_image_requests():
    clock = FakeClock()
    core = make_core(clock=clock, limits={"images_per_minute": 3})
    got = [call(core, image_body(), IMAGE_MODEL).outcome for _ in range(5)]
    assert got == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
    assert call(core, text_body()).outcome == "ok"
    clock.now += 60
    assert call(core, image_body(), IMAGE_MODEL).outcome == "ok"


def test_tokens_per_minute_counts_prompt_tokens_and_names_the_input_token_quota():
    core = make_core(limits={"tokens_per_minute": 10})
    assert call(core, text_body("x" * 32)).outcome == "ok"  # 8 prompt tokens
    refused = call(core, text_body("y" * 32))
    assert refused.outcome == "rate_limited"
    violation = next(d for d in json.loads(refused.body)["error"]["details"] if d["@type"].endswith("QuotaFailure"))
    assert violation["violations"][0]["quotaId"] == "GenerateContentInputTokensPerModelPerMinute"


def test_per_day_quota_refuses_every_request_after_the_limit_until_midnight_pacific():
    clock = FakeClock(1_800_057_600.0)  # 2027-01-16 00:00 UTC: 16:00 the day before, Pacific (UTC-8)
    core = make_core(clock=clock, limits={"requests_per_day": 20})
    got = [call(core, text_body()).outcome for _ in range(50)]
    assert got == ["ok"] * 20 + ["quota"] * 30
    error = json.loads(call(core, text_body()).body)["error"]
    violation = next(d for d in error["details"] if d["@type"].endswith("QuotaFailure"))["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel"
    assert next(d for d in error["details"] if d["@type"].endswith("RetryInfo"))["retryDelay"] == "28800s"
    clock.now += 8 * 3600
    assert call(core, text_body()).outcome == "ok"


# --- keys, routes and the request log ------------------------------------------------------------


@pytest.mark.parametrize(
    "headers,query",
    [({"x-goog-api-key": "bad-key-1"}, {}), ({"authorization": "Bearer bad-key-1"}, {}), ({}, {"key": "bad-key-1"})],
)
def test_a_configured_bad_key_gets_400_api_key_invalid(headers, query):
    core = make_core(bad_keys=["bad-key-1"])
    reply = call(core, text_body(), headers=headers, query=query)
    error = json.loads(reply.body)["error"]
    assert (reply.status, reply.outcome, error["status"]) == (400, "bad_key", "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert call(core, text_body(), headers={"x-goog-api-key": "test-key-123"}).outcome == "ok"


def test_no_key_is_accepted_unless_required():
    assert call(make_core(), text_body()).outcome == "ok"
    reply = call(make_core(require_key=True), text_body())
    assert (reply.status, reply.outcome) == (403, "no_key")


def test_unknown_paths_are_404_and_bad_json_is_400():
    core = make_core()
    assert core.handle("POST", "/v1beta/files", {}, {}, b"{}").status == 404
    assert call(core, b"{not json").status == 400


def test_request_log_has_one_flushed_line_per_request(tmp_path):
    path = tmp_path / "requests.jsonl"
    core = SimulatorCore(FaultConfig(server_error={"every": 2}), clock=FakeClock(), request_log=RequestLog(path))
    bodies = [text_body("a"), text_body("b"), text_body("a")]
    for body in bodies:
        call(core, body)
    lines = read_request_log(path)  # read while the log is still open: lines are flushed
    core.close()
    assert [(line["body_sha256"], line["outcome"], line["status"]) for line in lines] == [
        (hashlib.sha256(bodies[0]).hexdigest(), "ok", 200),
        (hashlib.sha256(bodies[1]).hexdigest(), "server_error", 500),
        (hashlib.sha256(bodies[2]).hexdigest(), "ok", 200),
    ]
    assert lines[0]["model"] == TEXT_MODEL and lines[0]["t"] == 1_800_000_000.0


def test_a_short_day_resets_the_per_day_quota_after_day_s_and_says_when_in_retry_after():
    clock = FakeClock(1_800_057_600.0)
    core = make_core(clock=clock, limits={"requests_per_day": 2, "day_s": 5})
    assert [call(core, text_body()).outcome for _ in range(3)] == ["ok", "ok", "quota"]
    clock.now += 2
    refused = call(core, text_body())
    assert (refused.outcome, refused.headers["Retry-After"]) == ("quota", "3")
    clock.now += 3
    assert call(core, text_body()).outcome == "ok"


def test_a_per_day_refusal_at_midnight_pacific_sends_no_retry_after():
    core = make_core(limits={"requests_per_day": 0})
    assert "Retry-After" not in call(core, text_body()).headers


# --- limits per key --------------------------------------------------------------------------------


def key(value: str) -> dict:
    return {"x-goog-api-key": value}


def test_limits_per_key_count_each_key_on_its_own():
    core = make_core(limits={"requests_per_minute": 2, "per_key": True})
    by_key = {k: [call(core, text_body(), headers=key(k)).outcome for _ in range(3)] for k in ("k1", "k2")}
    assert by_key == {"k1": ["ok", "ok", "rate_limited"], "k2": ["ok", "ok", "rate_limited"]}
    bearer = {"authorization": "Bearer k3"}  # the same key, however it is sent
    assert [call(core, text_body(), headers=bearer).outcome for _ in range(3)] == ["ok", "ok", "rate_limited"]


def test_without_per_key_every_key_shares_the_limits():
    core = make_core(limits={"requests_per_minute": 2})
    outcomes_ = [call(core, text_body(), headers=key(k)).outcome for k in ("k1", "k2", "k3")]
    assert outcomes_ == ["ok", "ok", "rate_limited"]


def test_a_key_may_have_limits_of_its_own():
    core = make_core(limits={"requests_per_minute": 1}, key_limits={"k2": {"requests_per_day": 1}})
    assert [call(core, text_body(), headers=key("k2")).outcome for _ in range(2)] == ["ok", "quota"]
    # the other keys share `limits`, which k2's requests never counted against
    assert [call(core, text_body(), headers=key(k)).outcome for k in ("k1", "k3")] == ["ok", "rate_limited"]


def test_with_limits_per_key_the_request_log_numbers_each_key_and_never_holds_it(tmp_path):
    path = tmp_path / "requests.jsonl"
    core = SimulatorCore(FaultConfig.model_validate({"limits": {"per_key": True}}), 0, clock=FakeClock(),
                         request_log=RequestLog(path))
    for k in ("k-secret-1", "k-secret-2", "k-secret-1"):
        call(core, text_body(), headers=key(k))
    call(core, text_body())
    core.close()
    assert [line.get("key") for line in read_request_log(path)] == [1, 2, 1, None]
    assert "k-secret" not in path.read_text()
