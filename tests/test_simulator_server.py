"""The simulator as a real HTTP server: the official google-genai SDK against it (text, images in and
out, structured output, thinking past maxOutputTokens, billing errors), and the faults that only exist
on a socket (a dropped connection, no reply, a broken body), over 127.0.0.1."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image
from pydantic import BaseModel, Field

from batchrun.simulator.requestlog import read_request_log

FAKE_KEY = "test-key-123"


@contextlib.contextmanager
def running_simulator(tmp_path: Path, faults: str | None = None, *extra: str, module="batchrun.simulator"):
    """`python -m batchrun.simulator --port 0` in a subprocess; yields (base_url, request_log_path)."""
    log = tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", *module.split()]
    args = [*command, "--port", "0", "--request-log", str(log), *extra]
    if faults is not None:
        faults_file = tmp_path / "faults.yaml"
        faults_file.write_text(faults)
        args += ["--faults", str(faults_file)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("batchrun simulator listening on http://127.0.0.1:"), line
        yield line.strip().rsplit(" ", 1)[1], log
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()


@pytest.fixture(scope="module")
def clean_server(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("clean"), "bad_keys: [bad-key-1]\n") as server:
        yield server


def sdk_client(base_url: str, key: str = FAKE_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))


def test_sdk_parses_a_text_reply(clean_server):
    base_url, _ = clean_server
    client = sdk_client(base_url)  # kept in a name: a collected Client closes its connection pool
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Describe a ceramic mug in one sentence."
    )
    assert response.text.startswith("Simulated answer from gemini-2.5-flash")
    assert response.usage_metadata.prompt_token_count == 10
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash"


def test_sdk_parses_an_image_reply_of_the_requested_size(clean_server):
    base_url, _ = clean_server
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
    )
    client = sdk_client(base_url)
    response = client.models.generate_content(
        model="gemini-3.1-flash-image", contents="A red mug on a picnic table", config=config
    )
    images = [p.inline_data for p in response.candidates[0].content.parts if p.inline_data and not p.thought]
    assert Image.open(io.BytesIO(images[-1].data)).size == (2752, 1536)
    assert images[-1].mime_type == "image/png"
    modalities = {d.modality: d.token_count for d in response.usage_metadata.candidates_tokens_details}
    assert modalities == {types.MediaModality.IMAGE: 1680}


def noisy_png(width: int, height: int) -> bytes:
    """A PNG whose base64 is sure to hold '+' and '/' (so URL-safe base64 differs from standard)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(7).randbytes(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def test_sdk_sends_an_input_image_made_with_part_from_bytes(clean_server):
    base_url, log = clean_server
    photo = types.Part.from_bytes(data=noisy_png(1000, 800), mime_type="image/png")
    client = sdk_client(base_url)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents=[photo, "Describe the mug in this photo."],
    )
    assert response.candidates[0].finish_reason == types.FinishReason.STOP and response.text
    prompt = {d.modality: d.token_count for d in response.usage_metadata.prompt_tokens_details}
    assert prompt == {types.MediaModality.TEXT: 8, types.MediaModality.IMAGE: 4 * 258}  # 2 x 2 tiles of 768 px


def test_sdk_edits_an_image_it_sends_with_part_from_bytes(clean_server):
    base_url, _ = clean_server
    photo = types.Part.from_bytes(data=noisy_png(640, 480), mime_type="image/png")
    config = types.GenerateContentConfig(response_modalities=["IMAGE"],
                                         image_config=types.ImageConfig(aspect_ratio="4:5", image_size="512"))
    client = sdk_client(base_url)
    response = client.models.generate_content(
        model="gemini-3.1-flash-image", contents=[photo, "Put this mug on a picnic table."], config=config,
    )
    final = [p.inline_data for p in response.candidates[0].content.parts if p.inline_data and not p.thought][-1]
    assert Image.open(io.BytesIO(final.data)).size == (464, 576)
    assert response.usage_metadata.prompt_tokens_details[-1].token_count == 1120


class Tone(enum.Enum):
    PLAYFUL = "playful"
    FORMAL = "formal"


class Listing(BaseModel):
    headline: str = Field(max_length=60)
    tone: Tone
    price_usd: float = Field(ge=1, le=90)
    bullets: list[str] = Field(min_length=2, max_length=4)


@pytest.mark.parametrize("field", ["response_schema", "response_json_schema"])
def test_sdk_parses_structured_output_into_its_model(clean_server, field):
    base_url, _ = clean_server
    schema = Listing if field == "response_schema" else Listing.model_json_schema()
    config = types.GenerateContentConfig(response_mime_type="application/json", **{field: schema})
    client = sdk_client(base_url)
    for i in range(5):
        response = client.models.generate_content(model="gemini-2.5-flash", contents=f"Mug {i}", config=config)
        listing = Listing.model_validate_json(response.text)  # raises unless every constraint holds
        if field == "response_schema":
            assert response.parsed == listing


def test_sdk_sees_thinking_spend_max_output_tokens_as_max_tokens_and_no_text(clean_server):
    base_url, _ = clean_server
    client = sdk_client(base_url)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Describe a mug.",
        config=types.GenerateContentConfig(max_output_tokens=32),
    )
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.text is None and response.usage_metadata.thoughts_token_count == 32


def test_sdk_streams_the_same_text_as_the_plain_call(clean_server):
    base_url, _ = clean_server
    client = sdk_client(base_url)
    prompt = "Write a short note about batch jobs."
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))
    whole = client.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    assert len(chunks) == 3
    assert "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count


def test_sdk_counts_tokens(clean_server):
    base_url, _ = clean_server
    client = sdk_client(base_url)
    result = client.models.count_tokens(model="gemini-2.5-flash", contents="x" * 40)
    assert result.total_tokens == 10


def test_sdk_sees_a_bad_key_as_400_api_key_invalid(clean_server):
    base_url, _ = clean_server
    client = sdk_client(base_url, key="bad-key-1")
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_request_log_lets_a_client_count_what_was_received(clean_server):
    base_url, log = clean_server
    body = json.dumps({"contents": [{"parts": [{"text": "count me, log test"}]}]}).encode()
    url = f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    for _ in range(3):
        assert httpx.post(url, content=body, headers={"x-goog-api-key": FAKE_KEY}).status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    lines = [line for line in read_request_log(log) if line["body_sha256"] == digest]
    assert [(line["outcome"], line["status"]) for line in lines] == [("ok", 200)] * 3


def test_billing_faults_reach_the_sdk_as_402_and_429_with_their_error_info(tmp_path):
    faults = "billing_402: {first: 1}\nprepaid_429: {every: 2}\n"
    with running_simulator(tmp_path, faults) as (base_url, log):
        client = sdk_client(base_url)
        errors = []
        for _ in range(2):
            with pytest.raises(genai_errors.ClientError) as caught:
                client.models.generate_content(model="gemini-2.5-flash", contents="hi")
            errors.append(caught.value)
        outcomes = [(line["outcome"], line["status"]) for line in read_request_log(log)]
    assert [(e.code, e.status) for e in errors] == [(402, "RESOURCE_EXHAUSTED"), (429, "RESOURCE_EXHAUSTED")]
    for error in errors:
        info = error.details["error"]["details"][0]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert (info["reason"], info["domain"]) == ("PREPAYMENT_CREDITS_DEPLETED", "googleapis.com")
    assert outcomes == [("billing_402", 402), ("prepaid_429", 429)]


FAULTS_ON_THE_WIRE = """\
drop: {every: 3}
malformed: {every: 5}
hang: {first: 1, seconds: 0.2}
"""


def test_socket_faults_reach_the_client_as_transport_errors(tmp_path):
    with running_simulator(tmp_path, FAULTS_ON_THE_WIRE) as (base_url, log):
        url = f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent"
        body = {"contents": [{"parts": [{"text": "faults on the wire"}]}]}
        seen = []
        with httpx.Client(timeout=5) as client:
            for _ in range(6):
                try:
                    response = client.post(url, json=body)
                    json.loads(response.content)
                    seen.append(response.status_code)
                except httpx.RemoteProtocolError:
                    seen.append("closed")
                except json.JSONDecodeError:
                    seen.append("bad json")
        outcomes = [line["outcome"] for line in read_request_log(log)]
    # request 0 hangs, then the server closes it; every third is cut mid-body; the fifth is broken JSON
    assert seen == ["closed", 200, "closed", 200, "bad json", "closed"]
    assert outcomes == ["hang", "ok", "drop", "ok", "malformed", "drop"]


def test_a_stream_dropped_mid_body_ends_after_its_first_event(tmp_path):
    with running_simulator(tmp_path, "drop: {every: 1}\n") as (base_url, _):
        url = f"{base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        events = []
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("POST", url, json={"contents": [{"parts": [{"text": "stream"}]}]}) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
        assert len(events) == 1 and "finishReason" not in events[0]["candidates"][0]


def test_a_bad_profile_name_exits_with_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "batchrun.simulator", "--port", "0", "--profile", "nope"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2
    assert "unknown simulator profile 'nope'" in done.stderr


def test_batchrun_simulate_serves_a_profile_until_sigterm(tmp_path):
    body = {"contents": [{"parts": [{"text": "quota profile"}]}]}
    with running_simulator(tmp_path, None, "--profile", "quota", module="batchrun simulate") as (base_url, log):
        url = f"{base_url}/v1beta/models/gemini-2.5-flash:generateContent"
        with httpx.Client() as client:
            statuses = [client.post(url, json=body).status_code for _ in range(21)]
            error = client.post(url, json=body).json()["error"]
    assert statuses == [200] * 20 + [429]
    violation = next(d for d in error["details"] if d["@type"].endswith("QuotaFailure"))["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel"
    assert len(read_request_log(log)) == 22
