"""The in-process transport: the core's answers through httpx, and socket faults as httpx errors."""

from __future__ import annotations

import json

import httpx
import pytest

import batchrun.simulator.transport as transport_module
from batchrun.simulator.server import build_core
from batchrun.simulator.transport import SimulatorTransport

pytestmark = pytest.mark.anyio
URL = "http://simulator.invalid/v1beta/models/gemini-2.5-flash:generateContent"
BODY = {"contents": [{"parts": [{"text": "in process"}]}]}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def recorded_sleeps(monkeypatch):
    """anyio.sleep as the transport calls it, recorded and returning at once."""
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(transport_module.anyio, "sleep", fake_sleep)
    return sleeps


def faults_file(tmp_path, text: str) -> str:
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    return str(path)


async def test_answers_like_the_core_with_no_key_and_no_network():
    async with httpx.AsyncClient(transport=SimulatorTransport()) as client:
        response = await client.post(URL, json=BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["candidates"][0]["finishReason"] == "STOP"


async def test_sse_stream_arrives_as_events():
    async with httpx.AsyncClient(transport=SimulatorTransport()) as client:
        url = URL.replace(":generateContent", ":streamGenerateContent")
        response = await client.post(url, params={"alt": "sse"}, json=BODY)
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.headers["content-type"] == "text/event-stream"
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_latency_is_awaited_in_process(tmp_path, recorded_sleeps):
    transport = SimulatorTransport(faults_file=faults_file(tmp_path, "latency: {ms: 250}\n"))
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.post(URL, json=BODY)).status_code == 200
    assert recorded_sleeps == [0.25]


async def test_a_dropped_connection_raises_remote_protocol_error_mid_body(tmp_path):
    transport = SimulatorTransport(faults_file=faults_file(tmp_path, "drop: {every: 1}\n"))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(URL, json=BODY)


async def test_a_hang_times_out_at_the_clients_read_timeout(tmp_path, recorded_sleeps):
    transport = SimulatorTransport(faults_file=faults_file(tmp_path, "hang: {every: 1}\n"))
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(URL, json=BODY)
    assert recorded_sleeps == [30]


async def test_a_hang_shorter_than_the_timeout_ends_with_the_server_closing(tmp_path, recorded_sleeps):
    transport = SimulatorTransport(faults_file=faults_file(tmp_path, "hang: {every: 1, seconds: 2}\n"))
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(URL, json=BODY)
    assert recorded_sleeps == [2]


async def test_a_profile_and_seed_give_the_same_outcomes_as_the_servers_core(recorded_sleeps):
    async with httpx.AsyncClient(transport=SimulatorTransport("overloaded", seed=5)) as client:
        statuses = [(await client.post(URL, json=BODY)).status_code for _ in range(100)]
    server_core = build_core("overloaded", seed=5)
    body = json.dumps(BODY).encode()
    expected = [server_core.handle("POST", httpx.URL(URL).path, {}, {}, body).status for _ in range(100)]
    assert statuses == expected
    assert 20 <= statuses.count(503) <= 40  # overloaded: 30 % of 100, ± 2.2 standard deviations
    assert len(recorded_sleeps) == 100  # overloaded delays every request, errors included
