"""The batch tier's wiring: the transport its exchanges go over and the upload's piece size."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from batchrun.batching.files import UPLOAD_CHUNK_BYTES
from batchrun.batchtier import UPLOAD_CHUNK_ENV, batch_transport, upload_chunk_bytes
from batchrun.errors import UsageError
from batchrun.planning.spec import ProviderSpec
from batchrun.providers.registry import ProviderSettings
from batchrun.simulator.transport import SimulatorTransport


def settings(**provider) -> ProviderSettings:
    return ProviderSettings(ProviderSpec(**provider), "k", Path("."), 42.0, 8)


def test_the_upload_piece_size_is_the_sdk_s_unless_the_environment_sets_one():
    assert upload_chunk_bytes({}) == UPLOAD_CHUNK_BYTES == 8 * 1024 * 1024
    assert upload_chunk_bytes({UPLOAD_CHUNK_ENV: " 262144 "}) == 262_144


@pytest.mark.parametrize("raw", ["8k", "0", "-5", "1.5"])
def test_an_upload_piece_size_that_is_not_a_whole_number_of_bytes_names_the_variable_and_an_example(raw):
    with pytest.raises(UsageError) as caught:
        upload_chunk_bytes({UPLOAD_CHUNK_ENV: raw})
    assert str(caught.value).startswith(f"{UPLOAD_CHUNK_ENV}={raw!r}: expected a whole number of bytes")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_gemini_batch_run_goes_over_httpx_s_streaming_transport_not_the_run_s_whole_body_one():
    transport = batch_transport(settings(kind="gemini"))
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    await transport.aclose()


@pytest.mark.anyio
async def test_the_in_process_simulator_keeps_its_own_transport():
    transport = batch_transport(settings(kind="simulator"))
    assert isinstance(transport, SimulatorTransport)
    await transport.aclose()
