"""The faults file's `batch.delays`: each batch route slowed before and after it acts, each delayed call
logged as it arrives, a download paused after its first lines; through the core on a fake clock and
through the in-process transport with a recording sleep."""

from __future__ import annotations

import json

import httpx
import pytest
from test_simulator_batches import MODEL, T0, create, get, jsonl
from test_simulator_files import FakeClock, send, upload

from batchrun.errors import SpecError
from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig, load_faults_file
from batchrun.simulator.requestlog import RequestLog, read_request_log
from batchrun.simulator.server import file_stream
from batchrun.simulator.transport import SimulatorTransport

CREATE_PATH = f"/v1beta/models/{MODEL}:batchGenerateContent"


def make_core(tmp_path, delays: dict, **batch) -> SimulatorCore:
    settings = FaultConfig.model_validate({"batch": {"pending_s": 0, "running_s": 0, "delays": delays, **batch}})
    return SimulatorCore(settings, 0, clock=FakeClock(T0), request_log=RequestLog(tmp_path / "requests.jsonl"))


def logged(tmp_path) -> list[tuple[str, str, int | None]]:
    return [(e["rpc"], e["outcome"], e["status"]) for e in read_request_log(tmp_path / "requests.jsonl")
            if e["rpc"] != "batch.line"]


def create_body(file_name: str, name: str = "chunk-0") -> bytes:
    return json.dumps({"batch": {"displayName": name, "inputConfig": {"fileName": file_name}}}).encode()


# ---------------------------------------------------------------- the faults file


def test_a_faults_file_sets_each_route_s_delays_and_a_bare_number_is_the_wait_after(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("batch:\n  delays:\n    upload: 0.5\n    create: {before_s: 1, after_s: 2}\n"
                    "    download: {pause_after_lines: 3, pause_s: 4}\n")
    delays = load_faults_file(path).batch.delays
    assert (delays.upload.before_s, delays.upload.after_s) == (0.0, 0.5)
    assert (delays.create.before_s, delays.create.after_s) == (1.0, 2.0)
    assert delays.download.pause() == (3, 4.0)
    assert delays.get is None and delays.of("batches.get") is None
    assert delays.of("files.upload.start") is delays.of("files.upload") is delays.upload


def test_an_unknown_route_under_batch_delays_names_the_path(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("batch:\n  delays:\n    poll: 1\n")
    with pytest.raises(SpecError) as caught:
        load_faults_file(path)
    assert "batch.delays.poll" in str(caught.value)


def test_a_download_without_a_pause_time_has_no_pause():
    settings = FaultConfig.model_validate({"batch": {"delays": {"download": {"pause_after_lines": 2}}}})
    assert settings.batch.delays.download.pause() is None


# ---------------------------------------------------------------- the core


def test_a_call_to_a_delayed_route_is_logged_as_it_arrives_and_waits_before_s_before_it_is_acted_on(tmp_path):
    core = make_core(tmp_path, {"create": {"before_s": 1.5, "after_s": 2.5}})
    file_name = upload(core, jsonl(2))["name"]

    assert core.arrive("POST", CREATE_PATH, {}, create_body(file_name)) == 1.5
    assert core.batches.book.newest_first() == []  # arrived, not yet created
    reply = send(core, "POST", CREATE_PATH, create_body(file_name))
    assert (reply.status, reply.delay_s) == (200, 2.5)  # created, its answer held 2.5 s
    core.close()
    assert logged(tmp_path) == [("files.upload.start", "ok", 200), ("files.upload", "ok", 200),
                                ("batches.create", "arrived", None), ("batches.create", "ok", 200)]


def test_calls_to_routes_not_delayed_are_not_logged_on_arrival_and_wait_nothing(tmp_path):
    core = make_core(tmp_path, {"get": 0.5})
    assert core.arrive("POST", CREATE_PATH, {}, b"{}") == 0.0
    assert core.arrive("POST", f"/v1beta/models/{MODEL}:generateContent", {}, b"{}") == 0.0
    assert core.arrive("GET", "/v1beta/batches/abc", {}, b"") == 0.0  # delayed after, not before
    core.close()
    assert logged(tmp_path) == [("batches.get", "arrived", None)]


def test_with_no_delays_nothing_is_logged_on_arrival(tmp_path):
    core = make_core(tmp_path, {})
    assert core.arrive("GET", "/v1beta/batches/abc", {}, b"") == 0.0
    core.close()
    assert logged(tmp_path) == []


def test_the_upload_delay_holds_the_start_and_every_piece(tmp_path):
    core = make_core(tmp_path, {"upload": 0.25})
    start = send(core, "POST", "/upload/v1beta/files", b"{}", x_goog_upload_protocol="resumable",
                 x_goog_upload_command="start", x_goog_upload_header_content_length="4")
    url = httpx.URL(start.headers["x-goog-upload-url"])
    piece = send(core, "POST", str(url), b"ab", x_goog_upload_command="upload", x_goog_upload_offset="0")
    core.close()
    assert (start.delay_s, piece.delay_s) == (0.25, 0.25)


def test_a_download_reply_carries_the_pause_and_the_stream_sends_the_first_lines_then_the_pause(tmp_path):
    core = make_core(tmp_path, {"download": {"pause_after_lines": 2, "pause_s": 3.0}})
    file_name = get(core, create(core, 4)["name"], 1)["response"]["responsesFile"]
    reply = send(core, "GET", f"/download/v1beta/{file_name}:download?alt=media")
    assert reply.pause == (2, 3.0)

    pieces = list(file_stream(reply.file, reply.pause, size=64))
    lines = reply.file.read_bytes().splitlines(keepends=True)
    assert pieces[0] == b"".join(lines[:2]) and pieces[1] == 3.0
    assert b"".join(pieces[2:]) == b"".join(lines[2:]) and not any(isinstance(p, float) for p in pieces[2:])
    core.close()


def test_a_stream_without_a_pause_is_the_file_in_chunks(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"x" * 100)
    assert list(file_stream(path, None, size=40)) == [b"x" * 40, b"x" * 40, b"x" * 20]


# ---------------------------------------------------------------- the in-process transport


@pytest.fixture
def anyio_backend():
    return "asyncio"


class RecordingSleep:
    """Records each wait with what the simulator had done by then (batches created, lines logged)."""

    def __init__(self, core_of, log_path) -> None:
        self.core_of, self.log_path = core_of, log_path
        self.waits: list[tuple[float, int, list[str]]] = []

    async def __call__(self, seconds: float) -> None:
        core = self.core_of()
        outcomes = [e["outcome"] for e in read_request_log(self.log_path) if e["rpc"] == "batches.create"]
        self.waits.append((seconds, len(core.batches.book.newest_first()), outcomes))


@pytest.mark.anyio
async def test_the_transport_waits_before_the_create_is_made_and_after_before_it_answers(tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("batch: {delays: {create: {before_s: 1.5, after_s: 2.5}}}\n")
    log_path = tmp_path / "requests.jsonl"
    transport: SimulatorTransport | None = None
    sleep = RecordingSleep(lambda: transport.core, log_path)
    transport = SimulatorTransport(None, faults_file=str(faults), request_log=str(log_path), sleep=sleep)
    file_name = upload(transport.core, jsonl(2))["name"]
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        response = await client.post(CREATE_PATH, content=create_body(file_name))
    assert response.status_code == 200
    assert sleep.waits == [(1.5, 0, ["arrived"]), (2.5, 1, ["arrived", "ok"])]


@pytest.mark.anyio
async def test_the_transport_pauses_a_download_after_its_first_lines(tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("batch: {pending_s: 0, running_s: 0, delays: {download: {pause_after_lines: 1, "
                      "pause_s: 4}}}\n")
    received: list[str] = []
    waits: list[tuple[float, list[str]]] = []

    async def sleep(seconds: float) -> None:
        waits.append((seconds, list(received)))

    transport = SimulatorTransport(None, faults_file=str(faults), sleep=sleep)
    transport.core.clock = FakeClock(T0)
    operation = create(transport.core, 3)
    file_name = get(transport.core, operation["name"], 1)["response"]["responsesFile"]
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
        async with client.stream("GET", f"/download/v1beta/{file_name}:download?alt=media") as response:
            async for line in response.aiter_lines():
                received.append(json.loads(line)["key"])
    assert waits == [(4.0, ["k0"])]
    assert received == ["k0", "k1", "k2"]


# ---------------------------------------------------------------- min_gets


def test_with_min_gets_a_batch_the_clock_has_ended_runs_until_it_is_got_that_many_times(tmp_path):
    core = make_core(tmp_path, {}, min_gets=2)
    name = create(core, 2)["name"]
    send(core, "GET", "/v1beta/batches")  # a listing is not a get
    first, second = get(core, name, 100), get(core, name, 100)
    core.close()
    assert first["metadata"]["state"] == "BATCH_STATE_RUNNING" and "done" not in first
    assert second["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and second["done"]


def test_min_gets_does_not_hold_a_cancelled_batch(tmp_path):
    core = make_core(tmp_path, {}, min_gets=5, pending_s=10)
    name = create(core, 2)["name"]
    send(core, "POST", f"/v1beta/{name}:cancel", b"{}")
    state = get(core, name, 100)["metadata"]["state"]
    core.close()
    assert state == "BATCH_STATE_CANCELLED"
