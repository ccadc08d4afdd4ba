"""The google-genai SDK's Files and Batches calls against `batchrun simulate` as a real HTTP server.

The batch clock is set to zero (a batch has succeeded by the first read) or to an hour (it stays
pending), so no test waits for time to pass."""

from __future__ import annotations

import io
import json

import pytest
from google.genai import types
from PIL import Image
from test_simulator_server import running_simulator, sdk_client

from batchrun.simulator.requestlog import read_request_log

MODEL = "gemini-2.5-flash"
INSTANT = "batch: {pending_s: 0, running_s: 0}\n"
SLOW = "batch: {pending_s: 3600, running_s: 3600}\n"


def jsonl(n: int) -> bytes:
    lines = (json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"mug {i}"}]}]}})
             for i in range(n))
    return "".join(line + "\n" for line in lines).encode()


def upload(client, data: bytes, name: str = "chunk-0") -> types.File:
    config = {"mime_type": "application/jsonl", "display_name": name}
    return client.files.upload(file=io.BytesIO(data), config=config)


@pytest.fixture(scope="module")
def instant_server(tmp_path_factory):
    with running_simulator(tmp_path_factory.mktemp("batch"), INSTANT, module="batchrun simulate") as server:
        yield server


def test_sdk_uploads_a_file_and_reads_it_back(instant_server):
    client = sdk_client(instant_server[0])
    file = upload(client, jsonl(3), "requests-0")
    assert (file.display_name, file.size_bytes, file.state) == ("requests-0", len(jsonl(3)), types.FileState.ACTIVE)
    assert client.files.get(name=file.name).name == file.name
    assert file.name in [f.name for f in client.files.list()]


def test_sdk_creates_a_batch_from_a_file_and_downloads_its_results(instant_server):
    client = sdk_client(instant_server[0])
    file = upload(client, jsonl(3))
    batch = client.batches.create(model=MODEL, src=file.name, config={"display_name": "chunk-0"})
    done = client.batches.get(name=batch.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.display_name == "chunk-0"
    data = client.files.download(file=done.dest.file_name)
    lines = [json.loads(line) for line in data.splitlines()]
    assert [line["key"] for line in lines] == ["k0", "k1", "k2"]
    assert lines[0]["response"]["candidates"][0]["content"]["parts"][0]["text"]


def test_sdk_creates_a_batch_of_inline_requests(instant_server):
    client = sdk_client(instant_server[0])
    src = [{"contents": [{"parts": [{"text": "a blue mug"}], "role": "user"}]}]
    batch = client.batches.get(name=client.batches.create(model=MODEL, src=src).name)
    assert batch.state == types.JobState.JOB_STATE_SUCCEEDED
    assert batch.dest.inlined_responses[0].response.text


def test_request_log_shows_each_chunk_uploaded_and_each_line_answered_once(tmp_path):
    with running_simulator(tmp_path, INSTANT, module="batchrun simulate") as (base_url, log):
        client = sdk_client(base_url)
        batch = client.batches.create(model=MODEL, src=upload(client, jsonl(2)).name)
        for _ in range(3):
            client.batches.get(name=batch.name)
    rpcs = [(line["rpc"], line.get("batch")) for line in read_request_log(log)]
    # on a zero clock the batch has succeeded by the time create answers, so its lines come first
    assert rpcs == [("files.upload.start", None), ("files.upload", None),
                    ("batch.line", batch.name), ("batch.line", batch.name), ("batches.create", None),
                    ("batches.get", None), ("batches.get", None), ("batches.get", None)]


def test_sdk_lists_pending_batches_newest_first_and_cancels_one(tmp_path):
    with running_simulator(tmp_path, SLOW, module="batchrun simulate") as (base_url, _):
        client = sdk_client(base_url)
        names = [client.batches.create(model=MODEL, src=upload(client, jsonl(1)).name,
                                       config={"display_name": f"chunk-{i}"}).name for i in range(2)]
        listed = list(client.batches.list(config={"page_size": 1}))
        assert [b.display_name for b in listed] == ["chunk-1", "chunk-0"]
        assert {b.state for b in listed} == {types.JobState.JOB_STATE_PENDING}
        client.batches.cancel(name=names[0])
        assert client.batches.get(name=names[0]).state == types.JobState.JOB_STATE_CANCELLED
        client.batches.delete(name=names[1])
        assert [b.name for b in client.batches.list()] == [names[0]]


def test_sdk_uploads_a_photo_and_generates_from_it_as_from_the_same_photo_inline(instant_server):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buffer, format="PNG")
    client = sdk_client(instant_server[0])
    file = client.files.upload(file=io.BytesIO(buffer.getvalue()), config={"mime_type": "image/png"})
    by_file = client.models.generate_content(model=MODEL, contents=["Describe the photo.", file])
    inline = client.models.generate_content(
        model=MODEL, contents=["Describe the photo.", types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png")])
    assert by_file.usage_metadata.prompt_token_count == inline.usage_metadata.prompt_token_count > 10
