"""The official openai SDK against `batchrun simulate` as a real HTTP server: the chat route's text,
image input, structured output, streaming, and its 429s as the SDK's own exceptions."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from e2e_helpers import start_simulator, write_faults
from PIL import Image
from pydantic import BaseModel, Field

openai = pytest.importorskip("openai", reason="the openai SDK comes with the test extra: pip install -e '.[test]'")

pytestmark = pytest.mark.anyio
MODEL = "gemini-2.5-flash"
KEY = "sk-test-123"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def clean_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai-sdk")
    simulator = start_simulator(folder, faults=write_faults(folder, "clean", {}), seed=5)
    yield simulator
    simulator.stop()


def client_for(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def small_png_url() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 120, 220)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Mug(BaseModel):
    colour: str
    volume_ml: int = Field(ge=100, le=600)
    dishwasher_safe: bool


async def test_sdk_reads_a_text_completion(clean_server):
    async with client_for(clean_server.url) as client:
        reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content.startswith(f"Simulated answer from {MODEL} to: Hello")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0


async def test_sdk_sends_an_image_as_a_data_url_counted_as_image_tokens(clean_server):
    content = [{"type": "text", "text": "What colour is this?"},
               {"type": "image_url", "image_url": {"url": small_png_url()}}]
    async with client_for(clean_server.url) as client:
        reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert reply.usage.prompt_tokens_details.image_tokens == 258
    assert "What colour is this?" in reply.choices[0].message.content


async def test_sdk_parses_a_json_schema_answer_into_its_model(clean_server):
    async with client_for(clean_server.url) as client:
        reply = await client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "Describe a mug."}], response_format=Mug,
        )
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Mug) and 100 <= parsed.volume_ml <= 600


async def test_sdk_stream_joins_to_the_plain_reply_for_the_same_request_and_seed(clean_server):
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me about tea."}], "seed": 9}
    async with client_for(clean_server.url) as client:
        plain = await client.chat.completions.create(**request)
        stream = await client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == plain.choices[0].message.content and finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


async def test_sdk_raises_rate_limit_error_for_the_per_minute_limit(tmp_path):
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "rpm", {"limits": {"requests_per_minute": 1}}))
    try:
        async with client_for(simulator.url) as client:
            first = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "one"}])
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}])
    finally:
        simulator.stop()
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) > 0


async def test_sdk_sees_a_billing_429_with_code_insufficient_quota(tmp_path):
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "billing", {"prepaid_429": {"every": 1}}))
    try:
        async with client_for(simulator.url) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        simulator.stop()
    assert caught.value.status_code == 429
    assert (caught.value.code, caught.value.type) == ("insufficient_quota", "insufficient_quota")
    assert [(line["rpc"], line["outcome"]) for line in simulator.requests()] == [("chat.completions", "prepaid_429")]


async def test_an_image_url_from_extra_body_is_served_and_its_fault_is_a_503_a_retry_gets_past(tmp_path):
    faults = write_faults(tmp_path, "urls", {"image_url_fault": {"first": 1}})
    simulator = start_simulator(tmp_path, faults=faults)
    try:
        async with client_for(simulator.url) as client:
            reply = await client.chat.completions.create(
                model="gemini-2.5-flash-image", messages=[{"role": "user", "content": "A teapot"}],
                extra_body={"modalities": ["image", "text"], "sim_image_shape": "url"},
            )
        url = reply.choices[0].message.content.split("![image](")[1].rstrip(")")
        async with httpx.AsyncClient() as http:
            first, retry = await http.get(url), await http.get(url)
    finally:
        simulator.stop()
    assert url.startswith(f"{simulator.url}/v1/sim/images/")
    assert (first.status_code, retry.status_code, retry.headers["content-type"]) == (503, 200, "image/png")
    assert Image.open(io.BytesIO(retry.content)).size == (1024, 1024)
    assert [line["rpc"] for line in simulator.requests()] == ["chat.completions", "sim.image", "sim.image"]
