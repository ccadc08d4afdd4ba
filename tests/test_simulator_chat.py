"""The simulator's OpenAI-compatible chat route: a chat body read as a GenerateRequest, answered in the
chat shape with the native route's faults, limits, content and request log."""

from __future__ import annotations

import base64
import io
import json

import httpx
import jsonschema
import pytest
from PIL import Image

from batchrun.simulator.chatreplies import REFUSAL_TEXT, format_duration
from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FAULT_NAMES, FaultConfig
from batchrun.simulator.requestlog import RequestLog, read_request_log
from batchrun.simulator.transport import SimulatorTransport

TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3.1-flash-image"
CHAT = "/v1/chat/completions"
HOST = {"host": "127.0.0.1:8089"}


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_core(seed: int = 0, clock=None, log=None, **config) -> SimulatorCore:
    return SimulatorCore(FaultConfig.model_validate(config), seed, clock=clock or FakeClock(), request_log=log)


def chat_body(text: str = "Describe a blue mug.", model: str = TEXT_MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(core: SimulatorCore, body: dict, path: str = CHAT, headers: dict | None = None):
    return core.handle("POST", path, {}, {**HOST, **(headers or {})}, json.dumps(body).encode())


def answer(core: SimulatorCore, body: dict, path: str = CHAT) -> dict:
    reply = post(core, body, path)
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def error_of(reply) -> dict:
    return json.loads(reply.body)["error"]


def png_data_url(width: int = 64, height: int = 48) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def data_url_size(url: str) -> tuple[int, int]:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return image.size


def sse_chunks(payload: bytes) -> list:
    events = [e for e in payload.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


# --- the request read, and the completion -------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, "/v1beta/openai/chat/completions"])
def test_a_text_completion_has_the_chat_shape_and_usage_adds_up(path):
    reply = answer(make_core(), chat_body(), path)
    assert reply["id"].startswith("chatcmpl-") and reply["object"] == "chat.completion"
    assert (reply["created"], reply["model"]) == (1_800_000_000, TEXT_MODEL)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["refusal"] is None
    assert choice["message"]["content"].startswith(f"Simulated answer from {TEXT_MODEL} to: Describe a blue mug.")
    usage = reply["usage"]
    details = usage["completion_tokens_details"]
    text_tokens = -(-len(choice["message"]["content"]) // 4)
    assert details["reasoning_tokens"] > 0 and details["image_tokens"] == 0
    assert usage["completion_tokens"] == text_tokens + details["reasoning_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "image_tokens": 0}


def test_the_same_request_and_seed_give_the_same_answer_and_another_seed_another():
    body = chat_body(temperature=0.2, top_p=0.9, seed=3, stop=["\n\n"], some_gateway_extra={"x": 1})
    first, again = answer(make_core(seed=1), body), answer(make_core(seed=1), body)
    other = answer(make_core(seed=2), body)
    assert first["choices"] == again["choices"] and first["usage"] == again["usage"]
    assert first["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]


def test_system_text_and_input_images_count_as_prompt_tokens_like_inline_data():
    content = [{"type": "text", "text": "What is on this?"}, {"type": "image_url", "image_url": {"url": png_data_url()}}]
    body = {"model": TEXT_MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": content}]}
    usage = answer(make_core(), body)["usage"]
    assert usage["prompt_tokens_details"]["image_tokens"] == 258  # one Gemini 2 tile
    assert usage["prompt_tokens"] == 258 + 3 + 4  # "Be brief." 3 tokens, "What is on this?" 4


def test_max_tokens_and_max_completion_tokens_cut_the_answer_with_finish_length():
    for key in ("max_tokens", "max_completion_tokens"):
        body = chat_body(reasoning_effort="none", **{key: 5})
        choice = answer(make_core(), body)["choices"][0]
        assert choice["finish_reason"] == "length"
        assert len(choice["message"]["content"]) <= 20


def test_a_json_schema_response_format_is_answered_with_matching_json():
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
              "required": ["name", "count"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "Thing", "schema": schema, "strict": True}}
    value = json.loads(answer(make_core(), chat_body(response_format=fmt))["choices"][0]["message"]["content"])
    jsonschema.validate(value, schema)


def test_a_json_object_response_format_is_answered_with_a_json_object():
    reply = answer(make_core(), chat_body(response_format={"type": "json_object"}))
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), dict)


def test_reasoning_effort_orders_the_reasoning_tokens_and_none_turns_them_off():
    def reasoning(effort: str) -> int:
        reply = answer(make_core(), chat_body(reasoning_effort=effort))
        return reply["usage"]["completion_tokens_details"]["reasoning_tokens"]

    spent = [reasoning(e) for e in ("minimal", "low", "medium", "high")]
    assert spent == sorted(spent) and len(set(spent)) == 4
    assert reasoning("none") == 0


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": TEXT_MODEL, "messages": []}, "messages"),
    (chat_body(n=2), "n"),
    (chat_body(temperature="hot"), "temperature"),
    (chat_body(temperature=3), "temperature"),
    (chat_body(max_tokens=True), "max_tokens"),
    (chat_body(response_format={"type": "xml"}), "response_format.type"),
    (chat_body(reasoning_effort="extreme"), "reasoning_effort"),
    (chat_body(modalities=["audio"]), "modalities"),
    (chat_body(stream="yes"), "stream"),
    (chat_body(sim_image_shape="gif"), "sim_image_shape"),
    ({"model": TEXT_MODEL, "messages": [{"role": "user", "content": [{"type": "image_url",
                                          "image_url": {"url": "https://example.com/a.png"}}]}]},
     "messages[0].content[0].image_url.url"),
])
def test_a_malformed_known_key_is_a_400_that_names_it(body, param):
    reply = post(make_core(), body)
    assert reply.status == 400
    error = error_of(reply)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_a_bad_image_config_is_a_400_naming_image_config():
    reply = post(make_core(), chat_body(model=IMAGE_MODEL, image_config={"aspect_ratio": "7:3"}))
    assert reply.status == 400 and error_of(reply)["param"] == "image_config"


def test_a_bad_or_missing_key_is_a_401_that_does_not_echo_the_key():
    core = make_core(bad_keys=["sk-bad-123"], require_key=True)
    bad = post(core, chat_body(), headers={"authorization": "Bearer sk-bad-123"})
    missing = post(core, chat_body())
    assert (bad.status, missing.status) == (401, 401)
    assert error_of(bad)["code"] == "invalid_api_key" and b"sk-bad-123" not in bad.body
    assert post(core, chat_body(), headers={"authorization": "Bearer sk-good"}).status == 200


def test_other_paths_and_methods_stay_404():
    core = make_core()
    assert core.handle("GET", CHAT, {}, HOST, b"").status == 404
    assert post(core, chat_body(), "/v1/completions").status == 404
    assert core.handle("GET", "/v1/sim/images/nothing-here.png", {}, HOST, b"").status == 404


# --- images -------------------------------------------------------------------------------------------


def image_body(**extra) -> dict:
    return chat_body("A red mug", model=IMAGE_MODEL, modalities=["image", "text"], **extra)


def test_an_image_reply_in_the_images_shape_has_the_asked_size_and_its_tokens():
    reply = answer(make_core(), image_body(image_config={"aspect_ratio": "16:9", "image_size": "2K"}))
    message = reply["choices"][0]["message"]
    assert message["content"].startswith("Here is the image: A red mug")
    (image,) = message["images"]
    assert image["type"] == "image_url" and data_url_size(image["image_url"]["url"]) == (2752, 1536)
    assert reply["usage"]["completion_tokens_details"]["image_tokens"] == 1680


def test_an_image_model_without_modalities_answers_text_and_image_as_natively():
    message = answer(make_core(), chat_body("A mug", model=IMAGE_MODEL))["choices"][0]["message"]
    assert message["content"] and len(message["images"]) == 1
    only_image = answer(make_core(), chat_body("A mug", model=IMAGE_MODEL, modalities=["image"]))
    assert only_image["choices"][0]["message"]["content"] is None


def test_the_markdown_and_parts_shapes_carry_the_same_image():
    core = make_core(chat_image_shape="markdown")
    markdown = answer(core, image_body())["choices"][0]["message"]["content"]
    text, image_line = markdown.split("\n")
    assert text.startswith("Here is the image") and image_line.startswith("![image](data:image/png;base64,")
    parts = answer(core, image_body(sim_image_shape="parts"))["choices"][0]["message"]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"] == image_line[len("![image]("):-1]


def test_rotate_cycles_images_markdown_and_parts_by_arrival():
    core = make_core(chat_image_shape="rotate")
    messages = [answer(core, image_body())["choices"][0]["message"] for _ in range(4)]
    kinds = ["images" if "images" in m else type(m["content"]).__name__ for m in messages]
    assert kinds == ["images", "str", "list", "images"]


def test_the_url_shape_links_an_image_the_simulator_serves_until_pushed_out():
    core = make_core(chat_image_shape="url")
    markdown = answer(core, image_body())["choices"][0]["message"]["content"]
    url = markdown.split("![image](")[1].rstrip(")")
    assert url.startswith("http://127.0.0.1:8089/v1/sim/images/") and url.endswith(".png")
    path = url.removeprefix("http://127.0.0.1:8089")
    got = core.handle("GET", path, {}, HOST, b"")
    assert (got.status, got.content_type) == (200, "image/png")
    assert Image.open(io.BytesIO(got.body)).size == (1024, 1024)
    core.chat.images.capacity = 1
    answer(core, image_body(messages=[{"role": "user", "content": "another mug"}]))
    assert core.handle("GET", path, {}, HOST, b"").status == 404


def test_an_image_url_fault_answers_the_get_503_so_a_retry_gets_it():
    core = make_core(chat_image_shape="url", image_url_fault={"first": 1})
    url = answer(core, image_body())["choices"][0]["message"]["content"].split("![image](")[1].rstrip(")")
    path = url.removeprefix("http://127.0.0.1:8089")
    first, retry = core.handle("GET", path, {}, HOST, b""), core.handle("GET", path, {}, HOST, b"")
    assert (first.status, first.outcome, retry.status) == (503, "image_url_fault", 200)


# --- faults and limits --------------------------------------------------------------------------------


def test_refusal_is_the_last_fault_and_the_native_route_answers_it_as_safety():
    assert FAULT_NAMES[-1] == "refusal"
    core = make_core(refusal={"every": 1})
    message = answer(core, chat_body())["choices"][0]
    assert message["message"] == {"role": "assistant", "content": None, "refusal": REFUSAL_TEXT}
    assert message["finish_reason"] == "stop"
    native = core.handle("POST", f"/v1beta/models/{TEXT_MODEL}:generateContent", {}, {},
                         json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode())
    assert json.loads(native.body)["candidates"][0]["finishReason"] == "SAFETY"


@pytest.mark.parametrize("fault", ["blocked", "safety"])
def test_blocked_and_safety_end_in_content_filter_with_no_content(fault):
    choice = answer(make_core(**{fault: {"every": 1}}), chat_body())["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", None)


def test_max_tokens_fault_cuts_the_text_and_no_image_keeps_the_text():
    cut = answer(make_core(max_tokens={"every": 1}), chat_body())["choices"][0]
    assert cut["finish_reason"] == "length"
    reply = post(make_core(no_image={"every": 1}), image_body())
    message = json.loads(reply.body)["choices"][0]["message"]
    assert reply.outcome == "no_image" and message["content"] and "images" not in message


@pytest.mark.parametrize(("fault", "status", "error_type", "code"), [
    ("server_error", 500, "server_error", None),
    ("unavailable", 503, "server_error", "model_overloaded"),
    ("billing_402", 429, "insufficient_quota", "credit_balance_exhausted"),
    ("prepaid_429", 429, "insufficient_quota", "insufficient_quota"),
])
def test_error_faults_use_the_openai_envelope(fault, status, error_type, code):
    reply = post(make_core(**{fault: {"every": 1}}), chat_body())
    assert (reply.status, reply.outcome) == (status, fault)
    error = error_of(reply)
    assert (error["type"], error["code"]) == (error_type, code) and set(error) == {"message", "type", "param", "code"}


def test_envelope200_is_an_http_200_with_the_error_envelope():
    reply = post(make_core(envelope200={"every": 1}), chat_body())
    assert reply.status == 200 and "error" in json.loads(reply.body)


def test_the_per_minute_limit_is_a_429_rate_limit_exceeded_with_retry_after_headers():
    clock = FakeClock()
    core = make_core(clock=clock, limits={"requests_per_minute": 2})
    post(core, chat_body())
    clock.now += 15.5
    post(core, chat_body())
    refused = post(core, chat_body())
    assert refused.status == 429 and refused.outcome == "rate_limited"
    assert (error_of(refused)["type"], error_of(refused)["code"]) == ("requests", "rate_limit_exceeded")
    assert refused.headers["retry-after-ms"] == "44500" and refused.headers["retry-after"] == "45"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "44.5s"


def test_ratelimit_headers_count_down_and_a_client_that_obeys_them_meets_no_429():
    clock = FakeClock()
    core = make_core(clock=clock, limits={"requests_per_minute": 3})
    statuses, waits = [], []
    for _ in range(10):
        reply = post(core, chat_body())
        statuses.append(reply.status)
        assert reply.headers["x-ratelimit-limit-requests"] == "3"
        if reply.headers["x-ratelimit-remaining-requests"] == "0":
            wait = parse_duration(reply.headers["x-ratelimit-reset-requests"])
            waits.append(wait)
            clock.now += wait
        clock.now += 1.0
    assert statuses == [200] * 10 and waits[0] == 58.0


def parse_duration(text: str) -> float:
    if text.endswith("ms"):
        return int(text[:-2]) / 1000
    minutes, _, seconds = text.rpartition("m")
    return (int(minutes) * 60 if minutes else 0) + float(seconds.rstrip("s"))


def test_ratelimit_headers_false_turns_them_off_and_no_limit_sends_none():
    quiet = post(make_core(limits={"requests_per_minute": 3}, ratelimit_headers=False), chat_body())
    assert not any(h.startswith("x-ratelimit") for h in quiet.headers)
    assert post(make_core(), chat_body()).headers == {}


def test_the_per_day_quota_is_a_429_insufficient_quota():
    core = make_core(limits={"requests_per_day": 1})
    post(core, chat_body())
    refused = post(core, chat_body())
    assert (refused.status, refused.outcome, error_of(refused)["type"]) == (429, "quota", "insufficient_quota")


def test_both_routes_share_the_arrival_count_and_the_limit_book():
    core = make_core(limits={"requests_per_minute": 1})
    native = core.handle("POST", f"/v1beta/models/{TEXT_MODEL}:generateContent", {}, {},
                         json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode())
    assert native.status == 200 and post(core, chat_body()).status == 429
    assert core.arrivals == 2


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "250ms"), (0.0001, "1ms"), (0, "0ms"), (1, "1s"),
                                               (1.5, "1.5s"), (360, "6m0s"), (61.25, "1m1.25s")])
def test_reset_durations_are_written_as_openai_writes_them(seconds, text):
    assert format_duration(seconds) == text


# --- streaming ----------------------------------------------------------------------------------------


def joined(chunks: list) -> tuple[str, list, dict | None, str]:
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    images = [i for d in deltas for i in d.get("images", [])]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    usage = chunks[-1].get("usage")
    return text, images, usage, finish[0]


def test_a_stream_joins_to_the_plain_reply_with_usage_last():
    core = make_core()
    plain = answer(core, chat_body())
    reply = post(make_core(), chat_body(stream=True, stream_options={"include_usage": True}))
    assert reply.content_type == "text/event-stream"
    chunks = sse_chunks(reply.payload())
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and chunks[-1]["choices"] == []
    text, _, usage, finish = joined(chunks)
    assert (text, usage, finish) == (plain["choices"][0]["message"]["content"], plain["usage"], "stop")


def test_a_stream_without_include_usage_has_no_usage_chunk():
    chunks = sse_chunks(post(make_core(), chat_body(stream=True)).payload())
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1]


def test_a_streamed_image_is_in_delta_images_or_in_a_markdown_content_delta():
    plain = answer(make_core(), image_body())["choices"][0]["message"]
    _, images, _, _ = joined(sse_chunks(post(make_core(), image_body(stream=True)).payload()))
    assert images == plain["images"]
    markdown = answer(make_core(), image_body(sim_image_shape="markdown"))["choices"][0]["message"]["content"]
    text, _, _, _ = joined(sse_chunks(post(make_core(), image_body(stream=True, sim_image_shape="markdown")).payload()))
    assert text == markdown


def test_errors_before_a_stream_are_plain_json_and_malformed_cuts_its_last_chunk():
    refused = post(make_core(server_error={"every": 1}), chat_body(stream=True))
    assert (refused.status, refused.events) == (500, ())
    broken = post(make_core(malformed={"every": 1}), chat_body(stream=True)).payload()
    assert b"[DONE]" not in broken
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.decode().strip().split("\n\n")[-1].removeprefix("data: "))


# --- request log and the in-process transport ---------------------------------------------------------


def test_chat_requests_are_logged_like_native_ones_with_their_route(tmp_path):
    log = tmp_path / "requests.jsonl"
    core = make_core(log=RequestLog(log), chat_image_shape="url")
    reply = answer(core, image_body())
    path = reply["choices"][0]["message"]["content"].split("![image](")[1].rstrip(")").split("8089", 1)[1]
    core.handle("GET", path, {}, HOST, b"")
    post(core, chat_body(n=3))
    core.close()
    lines = read_request_log(log)
    assert [(line["model"], line["rpc"], line["outcome"], line["status"]) for line in lines] == [
        (IMAGE_MODEL, "chat.completions", "ok", 200), (None, "sim.image", "ok", 200),
        (None, "chat.completions", "invalid", 400),
    ]
    assert set(lines[0]) == {"t", "model", "rpc", "body_sha256", "outcome", "status"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_in_process_transport_serves_chat_headers_and_image_urls(tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("chat_image_shape: url\nlimits: {requests_per_minute: 5}\n")
    transport = SimulatorTransport(faults_file=str(faults))
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator.invalid") as client:
        response = await client.post("/v1/chat/completions", json=image_body())
        url = response.json()["choices"][0]["message"]["content"].split("![image](")[1].rstrip(")")
        image = await client.get(url)
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert url.startswith("http://simulator.invalid/v1/sim/images/")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_a_token_limit_adds_token_headers_and_refuses_with_type_tokens():
    clock = FakeClock()
    core = make_core(clock=clock, limits={"tokens_per_minute": 10})
    first = post(core, chat_body("x" * 24))  # 6 prompt tokens
    assert (first.headers["x-ratelimit-limit-tokens"], first.headers["x-ratelimit-remaining-tokens"]) == ("10", "4")
    assert "x-ratelimit-limit-requests" not in first.headers
    clock.now += 20
    refused = post(core, chat_body("y" * 24))
    assert refused.status == 429 and error_of(refused)["type"] == "tokens"
    assert refused.headers["retry-after-ms"] == "40000" and refused.headers["x-ratelimit-reset-tokens"] == "40s"
    clock.now += 40
    assert post(core, chat_body("y" * 24)).status == 200


def test_limits_per_key_count_and_report_each_bearer_key_on_its_own():
    core = make_core(limits={"requests_per_minute": 2, "per_key": True})
    first = post(core, chat_body(), headers={"authorization": "Bearer k1"})
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    post(core, chat_body(), headers={"authorization": "Bearer k1"})
    assert post(core, chat_body(), headers={"authorization": "Bearer k1"}).status == 429
    other = post(core, chat_body(), headers={"authorization": "Bearer k2"})
    assert (other.status, other.headers["x-ratelimit-remaining-requests"]) == (200, "1")
