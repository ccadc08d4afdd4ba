"""The simulator's Batch Mode through SimulatorCore on a fake clock: create (file or inline), the batch
clock, results, list, cancel, delete, each batch fault, per-line faults and the request log; and the
results download streamed by the in-process transport."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from test_simulator_files import FakeClock, send, upload

from batchrun.errors import SpecError
from batchrun.simulator.batchlines import request_sha256
from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig, load_faults_file
from batchrun.simulator.requestlog import RequestLog, read_request_log
from batchrun.simulator.transport import SimulatorTransport

MODEL = "gemini-2.5-flash"
T0 = 1_800_000_000.0
CLOCK = {"pending_s": 10, "running_s": 20}


def make_core(tmp_path=None, batch=None, **config) -> SimulatorCore:
    log = RequestLog(tmp_path / "requests.jsonl") if tmp_path is not None else None
    settings = FaultConfig.model_validate({"batch": {**CLOCK, **(batch or {})}, **config})
    return SimulatorCore(settings, 0, clock=FakeClock(T0), request_log=log)


def request(i: int) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": f"Describe mug number {i}."}]}]}


def jsonl(n: int) -> bytes:
    return b"".join(json.dumps({"key": f"k{i}", "request": request(i)}).encode() + b"\n" for i in range(n))


def create(core, n: int = 4, name: str = "chunk-0") -> dict:
    file_name = upload(core, jsonl(n))["name"]
    body = {"batch": {"displayName": name, "inputConfig": {"fileName": file_name}}}
    reply = send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json.dumps(body).encode())
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def create_inline(core, n: int = 3) -> dict:
    requests = [{"request": request(i), "metadata": {"key": f"k{i}"}} for i in range(n)]
    body = {"batch": {"display_name": "inline", "input_config": {"requests": {"requests": requests}}}}
    reply = send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json.dumps(body).encode())
    return json.loads(reply.body)


def get(core, name: str, at: float) -> dict:
    core.clock.now = T0 + at
    reply = send(core, "GET", f"/v1beta/{name}")
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def results(core, operation: dict) -> list[dict]:
    reply = send(core, "GET", f"/download/v1beta/{operation['response']['responsesFile']}:download?alt=media")
    assert (reply.status, reply.content_type) == (200, "application/jsonl")
    return [json.loads(line) for line in reply.file.read_bytes().splitlines()]


def finished(core, n: int = 4, **batch) -> tuple[dict, list[dict]]:
    operation = get(core, create(core, n)["name"], 30)
    return operation, results(core, operation) if "response" in operation else []


def test_create_answers_a_pending_operation_with_the_batch_metadata():
    operation = create(make_core(), 4, "catalog-chunk-7")
    assert operation["name"].startswith("batches/")
    assert "done" not in operation
    metadata = operation["metadata"]
    assert metadata["@type"] == "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    assert (metadata["model"], metadata["displayName"]) == (f"models/{MODEL}", "catalog-chunk-7")
    assert metadata["state"] == "BATCH_STATE_PENDING"
    assert metadata["createTime"] == metadata["updateTime"] == "2027-01-15T08:00:00Z"
    assert metadata["batchStats"] == {"requestCount": "4", "pendingRequestCount": "4"}


@pytest.mark.parametrize("at,state", [(9.999, "PENDING"), (10, "RUNNING"), (29.999, "RUNNING"), (30, "SUCCEEDED")])
def test_the_batch_clock_moves_pending_running_succeeded_on_the_configured_schedule(at, state):
    core = make_core()
    assert get(core, create(core)["name"], at)["metadata"]["state"] == f"BATCH_STATE_{state}"


def test_a_succeeded_batch_is_done_with_a_results_file_in_input_order():
    core = make_core()
    operation, lines = finished(core)
    assert operation["done"] is True
    assert operation["metadata"]["endTime"] == "2027-01-15T08:00:30Z"
    assert operation["metadata"]["output"] == {"responsesFile": operation["response"]["responsesFile"]}
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "4", "successfulRequestCount": "4", "failedRequestCount": "0"}
    assert [line["key"] for line in lines] == ["k0", "k1", "k2", "k3"]
    assert all(line["response"]["usageMetadata"]["totalTokenCount"] > 0 for line in lines)


def test_a_line_is_answered_with_the_content_of_a_synchronous_generate_content():
    core = make_core()
    _, lines = finished(core, 1)
    sync = send(core, "POST", f"/v1beta/models/{MODEL}:generateContent", json.dumps(request(0)).encode())
    assert lines[0]["response"]["candidates"] == json.loads(sync.body)["candidates"]


def test_the_results_file_is_a_generated_file_with_a_download_uri():
    core = make_core()
    operation, _ = finished(core)
    file = json.loads(send(core, "GET", f"/v1beta/{operation['response']['responsesFile']}").body)
    assert (file["source"], file["mimeType"]) == ("GENERATED", "application/jsonl")
    assert file["downloadUri"].endswith(":download?alt=media")


def test_inline_requests_come_back_as_inlined_responses_with_their_keys():
    core = make_core()
    operation = get(core, create_inline(core)["name"], 30)
    responses = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert [r["metadata"]["key"] for r in responses] == ["k0", "k1", "k2"]
    assert operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"] == responses


def test_list_is_newest_first_with_display_names_and_pages():
    core = make_core()
    for i in range(3):
        core.clock.now = T0 + i
        create(core, 1, f"chunk-{i}")
    page = json.loads(send(core, "GET", "/v1beta/batches?pageSize=2").body)
    assert [op["metadata"]["displayName"] for op in page["operations"]] == ["chunk-2", "chunk-1"]
    rest = json.loads(send(core, "GET", f"/v1beta/batches?pageSize=2&pageToken={page['nextPageToken']}").body)
    assert [op["metadata"]["displayName"] for op in rest["operations"]] == ["chunk-0"]
    assert "nextPageToken" not in rest


def test_cancel_ends_a_running_batch_cancelled_with_no_results():
    core = make_core()
    name = create(core)["name"]
    core.clock.now = T0 + 15
    assert json.loads(send(core, "POST", f"/v1beta/{name}:cancel").body) == {}
    operation = get(core, name, 40)
    assert (operation["metadata"]["state"], operation["done"]) == ("BATCH_STATE_CANCELLED", True)
    assert "response" not in operation


def test_cancel_after_success_leaves_the_batch_succeeded():
    core = make_core()
    name = create(core)["name"]
    get(core, name, 30)
    send(core, "POST", f"/v1beta/{name}:cancel")
    assert get(core, name, 31)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_a_deleted_batch_is_gone_from_get_and_list():
    core = make_core()
    name = create(core)["name"]
    assert json.loads(send(core, "DELETE", f"/v1beta/{name}").body) == {}
    assert send(core, "GET", f"/v1beta/{name}").status == 404
    assert json.loads(send(core, "GET", "/v1beta/batches").body)["operations"] == []


def test_a_batch_keeps_its_input_when_the_input_file_is_deleted():
    core = make_core()
    file_name = upload(core, jsonl(2))["name"]
    body = {"batch": {"inputConfig": {"fileName": file_name}}}
    name = json.loads(send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent",
                           json.dumps(body).encode()).body)["name"]
    send(core, "DELETE", f"/v1beta/{file_name}")
    assert [line["key"] for line in results(core, get(core, name, 30))] == ["k0", "k1"]


@pytest.mark.parametrize("batch,message", [
    ({}, "exactly one of fileName"),
    ({"inputConfig": {"fileName": "files/nothere"}}, "files/nothere does not exist"),
    ({"inputConfig": {"fileName": "nothere"}}, "must look like files/ID"),
])
def test_a_create_the_api_would_refuse_is_400_or_404_saying_what_to_fix(batch, message):
    reply = send(make_core(), "POST", f"/v1beta/models/{MODEL}:batchGenerateContent",
                 json.dumps({"batch": batch}).encode())
    assert reply.status in (400, 404)
    assert message in json.loads(reply.body)["error"]["message"]


def test_an_input_file_with_a_line_that_is_not_a_request_is_refused_at_create_naming_the_line():
    core = make_core()
    file_name = upload(core, jsonl(2) + b'{"key":"k2"}\n')["name"]
    body = {"batch": {"inputConfig": {"fileName": file_name}}}
    reply = send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json.dumps(body).encode())
    assert reply.status == 400
    assert "line 3 of the input file" in json.loads(reply.body)["error"]["message"]


def test_stuck_pending_never_leaves_pending():
    core = make_core(batch={"stuck_pending": {"first": 1}})
    assert get(core, create(core)["name"], 1e6)["metadata"]["state"] == "BATCH_STATE_PENDING"


def test_expired_ends_expired_with_no_results():
    core = make_core(batch={"expired": {"first": 1}})
    operation = get(core, create(core)["name"], 30)
    assert (operation["metadata"]["state"], operation["done"]) == ("BATCH_STATE_EXPIRED", True)
    assert "response" not in operation and "output" not in operation["metadata"]


def test_failed_ends_failed_with_an_error():
    core = make_core(batch={"failed": {"first": 1}})
    operation = get(core, create(core)["name"], 30)
    assert operation["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert operation["error"]["code"] == 13
    assert "response" not in operation


def test_batch_faults_hit_batches_in_creation_order():
    core = make_core(batch={"failed": {"every": 2}})
    names = [create(core, 1)["name"] for _ in range(4)]
    states = [get(core, name, 30)["metadata"]["state"][12:] for name in names]
    assert states == ["SUCCEEDED", "FAILED", "SUCCEEDED", "FAILED"]


def test_partial_results_hold_only_the_first_half_of_the_lines():
    _, lines = finished(make_core(batch={"partial_results": {"first": 1}}), 6)
    assert [line["key"] for line in lines] == ["k0", "k1", "k2"]


def test_missing_key_leaves_lines_out_of_the_results():
    _, lines = finished(make_core(batch={"missing_key": {"every": 2}}), 6)
    assert [line["key"] for line in lines] == ["k0", "k2", "k4"]


def test_repeated_key_writes_a_line_twice():
    _, lines = finished(make_core(batch={"repeated_key": {"first": 1}}), 3)
    assert [line["key"] for line in lines] == ["k0", "k0", "k1", "k2"]
    assert lines[0] == lines[1]


def test_download_unavailable_answers_the_first_downloads_503_then_the_file():
    core = make_core(batch={"download_unavailable": {"first": 2}})
    operation = get(core, create(core)["name"], 30)
    url = f"/download/v1beta/{operation['response']['responsesFile']}:download?alt=media"
    statuses = [send(core, "GET", url).status for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_line_padding_makes_each_line_larger_by_whitespace_only():
    core = make_core(batch={"line_padding_bytes": 10_000})
    operation = get(core, create(core, 2)["name"], 30)
    url = f"/download/v1beta/{operation['response']['responsesFile']}:download?alt=media"
    raw = send(core, "GET", url).file.read_bytes().splitlines()
    assert all(len(line) > 10_000 for line in raw)
    assert [json.loads(line)["key"] for line in raw] == ["k0", "k1"]


def test_generate_faults_become_per_line_replies_and_errors():
    core = make_core(blocked={"every": 3}, unavailable={"first": 1})
    operation, lines = finished(core, 3)
    assert lines[0]["error"] == {"code": 503, "message": "The model is overloaded. Please try again later.",
                                 "status": "UNAVAILABLE"}
    assert "candidates" in lines[1]["response"]
    assert lines[2]["response"]["promptFeedback"]["blockReason"]
    assert operation["metadata"]["batchStats"]["failedRequestCount"] == "1"


def test_a_line_whose_request_is_invalid_is_answered_with_a_400_error():
    core = make_core()
    bad = {"key": "bad", "request": {"contents": "not a list"}}
    file_name = upload(core, jsonl(1) + json.dumps(bad).encode() + b"\n")["name"]
    body = {"batch": {"inputConfig": {"fileName": file_name}}}
    name = json.loads(send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent",
                           json.dumps(body).encode()).body)["name"]
    lines = results(core, get(core, name, 30))
    assert lines[1]["key"] == "bad"
    assert lines[1]["error"]["status"] == "INVALID_ARGUMENT"


def test_each_line_is_logged_once_with_its_request_sha256_however_often_the_batch_is_read(tmp_path):
    core = make_core(tmp_path)
    name = create(core, 3)["name"]
    for at in (5, 15, 30, 31):
        get(core, name, at)
    send(core, "GET", "/v1beta/batches")
    core.close()
    log = read_request_log(tmp_path / "requests.jsonl")
    lines = [entry for entry in log if entry["rpc"] == "batch.line"]
    assert [entry["body_sha256"] for entry in lines] == [request_sha256(request(i)) for i in range(3)]
    assert {(entry["batch"], entry["model"], entry["status"]) for entry in lines} == {(name, MODEL, 200)}
    assert [entry["rpc"] for entry in log if entry["rpc"] != "batch.line"] == [
        "files.upload.start", "files.upload", "batches.create",
        "batches.get", "batches.get", "batches.get", "batches.get", "batches.list"]


def test_request_sha256_is_the_sha256_of_the_request_as_compact_json():
    sent = {"contents": [{"parts": [{"text": "é"}]}]}
    compact = json.dumps(sent, separators=(",", ":"), ensure_ascii=False).encode()
    assert request_sha256(sent) == hashlib.sha256(compact).hexdigest()


def test_an_unknown_key_under_batch_in_a_faults_file_names_the_path(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("batch:\n  pending_s: 0.2\n  stuck: 1\n")
    with pytest.raises(SpecError) as caught:
        load_faults_file(path)
    assert "batch.stuck" in str(caught.value)


def test_a_faults_file_sets_the_batch_clock(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("batch: {pending_s: 0.2, running_s: 0.5, expired: {every: 3}}\n")
    settings = load_faults_file(path).batch
    assert (settings.pending_s, settings.running_s, settings.expired.every) == (0.2, 0.5, 3)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_transport_streams_a_results_download_chunk_by_chunk():
    transport = SimulatorTransport("clean")
    core = transport.core
    core.clock = FakeClock(T0)
    core.config = core.config.model_copy(update={"batch": core.config.batch.model_copy(
        update={"pending_s": 0, "running_s": 0, "line_padding_bytes": 300_000})})
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        operation = create(core, 3)
        file_name = get(core, operation["name"], 1)["response"]["responsesFile"]
        async with client.stream("GET", f"/v1beta/{file_name}:download", params={"alt": "media"}) as response:
            chunks = [chunk async for chunk in response.aiter_raw()]
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 256 * 1024
    assert [json.loads(line)["key"] for line in b"".join(chunks).splitlines()] == ["k0", "k1", "k2"]
