"""The simulator as a real HTTP server on 127.0.0.1, for end-to-end tests, benchmarks and SDKs.

aiohttp's low-level server hands each request to `SimulatorCore.receive`, has a reply that draws
images built on a worker thread (so the event loop keeps answering while images are drawn; Pillow
and zlib release the GIL for much of it), and carries out the reply: wait the injected latency,
then answer, stream SSE events (or a results file, chunk by chunk) one by one, cut the connection part way through the body (drop), or
hold the request and close without answering (hang). A call to a batch route slowed by `batch.delays`
waits its `before_s` before the core acts on it; a client that disconnects meanwhile cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from ..errors import UsageError
from .core import SimReply, SimulatorCore
from .faults import FaultConfig, load_faults_file, profile_config
from .requestlog import RequestLog

log = logging.getLogger(__name__)

FILE_CHUNK_BYTES = 256 * 1024  # a streamed file's chunks
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # Google's limit on an inline request (reference §1.2); aiohttp's is 1 MiB


def load_config(profile: str | None, faults_file: str | None) -> FaultConfig:
    """The fault config named on the command line: a profile, a faults file, or clean."""
    if profile and faults_file:
        raise UsageError("give either --profile or --faults, not both")
    if faults_file:
        return load_faults_file(faults_file)
    return profile_config(profile or "clean")


def build_core(
    profile: str | None = None,
    faults_file: str | None = None,
    seed: int = 0,
    request_log: str | None = None,
    clock: Callable[[], float] = time.time,
) -> SimulatorCore:
    """A SimulatorCore from command-line choices; the file's `seed` applies when `seed` is 0."""
    config = load_config(profile, faults_file)
    effective_seed = seed or (config.seed or 0)
    return SimulatorCore(config, effective_seed, clock=clock, request_log=RequestLog(request_log))


def drawing_threads() -> int:
    """Worker threads that draw images: one per core, at least two."""
    return max(2, os.cpu_count() or 1)


class SimulatorServer:
    """Serves one SimulatorCore over HTTP/1.1, drawing images on `pool`."""

    def __init__(self, core: SimulatorCore, pool: ThreadPoolExecutor) -> None:
        self.core = core
        self.pool = pool

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """aiohttp's request handler: ask the core, build the body, then carry out its reply."""
        body = await request.read()
        wait_s = self.core.arrive(request.method, request.path, request.query, body)
        if wait_s:
            await asyncio.sleep(wait_s)  # a client that goes away meanwhile cancels the call: never acted on
        reply = self.core.receive(request.method, request.path, request.query, request.headers, body)
        if reply.draws:
            await asyncio.get_running_loop().run_in_executor(self.pool, reply.complete)
        reply.complete()  # a body with no image is quicker to build here than to hand to a thread
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.action == "hang":
            return await self._hang(request, reply)
        if reply.action == "drop":
            return await self._drop(request, reply)
        if reply.events:
            return await self._stream(request, reply)
        if reply.file is not None:
            return await self._send_file(request, reply)
        return web.Response(status=_status(reply), body=reply.body, headers=_headers(reply))

    async def _stream(self, request: web.BaseRequest, reply: SimReply) -> web.StreamResponse:
        response = web.StreamResponse(status=_status(reply), headers=_headers(reply))
        await response.prepare(request)
        for event in reply.events:
            await response.write(event)
        await response.write_eof()
        return response

    async def _send_file(self, request: web.BaseRequest, reply: SimReply) -> web.StreamResponse:
        assert reply.file is not None
        response = web.StreamResponse(status=_status(reply), headers=_headers(reply))
        response.content_length = reply.file.stat().st_size
        await response.prepare(request)
        for piece in file_stream(reply.file, reply.pause):
            if isinstance(piece, float):
                await asyncio.sleep(piece)
            else:
                await response.write(piece)
        await response.write_eof()
        return response

    async def _drop(self, request: web.BaseRequest, reply: SimReply) -> web.StreamResponse:
        payload = reply.payload()
        response = web.StreamResponse(status=_status(reply), headers=_headers(reply))
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: reply.cut_at])
        _abort(request)  # closing flushes what was written, then the peer sees EOF mid-body
        raise asyncio.CancelledError  # the connection is gone: nothing more to send

    async def _hang(self, request: web.BaseRequest, reply: SimReply) -> web.StreamResponse:
        if reply.hang_s is None:
            await asyncio.Event().wait()  # until the client gives up or the server stops
        else:
            await asyncio.sleep(reply.hang_s)
        _abort(request)
        raise asyncio.CancelledError


def file_stream(path: Path, pause: tuple[int, float] | None = None,
                size: int = FILE_CHUNK_BYTES) -> Iterator[bytes | float]:
    """A file's bytes in chunks, read as they are sent (a results file is never held whole); with a
    `pause` of (lines, seconds), its first lines, then the seconds to wait (a float), then the rest."""
    with open(path, "rb") as data:
        if pause is not None:
            head = b"".join(data.readline() for _ in range(pause[0]))
            if head:
                yield head
            yield float(pause[1])
        while chunk := data.read(size):
            yield chunk


def _large_requests(loop: asyncio.AbstractEventLoop) -> Callable[..., web.BaseRequest]:
    """aiohttp's request factory, taking bodies up to MAX_REQUEST_BYTES (product photos sent inline)."""

    def make(message, payload, protocol, writer, task) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_REQUEST_BYTES)

    return make


def _status(reply: SimReply) -> int:
    """The HTTP status of a reply that is answered (only a hang has none)."""
    assert reply.status is not None
    return reply.status


def _headers(reply: SimReply) -> dict[str, str]:
    if not reply.headers:  # the native route's replies: no dict merge on the hot path
        return {"Content-Type": reply.content_type}
    return {"Content-Type": reply.content_type, **reply.headers}


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


async def run_server(
    core: SimulatorCore,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until `stop` is set; `on_ready(actual_port)` once listening."""
    pool = ThreadPoolExecutor(drawing_threads(), thread_name_prefix="simulator-draw")
    loop = asyncio.get_running_loop()
    low_level = web.Server(
        SimulatorServer(core, pool).handle, request_factory=_large_requests(loop), handler_cancellation=True,
        access_log=None,
    )
    listener = await loop.create_server(low_level, host, port, backlog=1024)
    actual_port = listener.sockets[0].getsockname()[1]
    log.debug("simulator listening on http://%s:%d", host, actual_port)
    if on_ready is not None:
        on_ready(actual_port)
    try:
        await stop.wait()
    finally:
        listener.close()
        await low_level.shutdown(0.25)  # hanging requests would otherwise hold the exit
        await listener.wait_closed()
        pool.shutdown(wait=True, cancel_futures=True)
        core.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8089,
    *,
    profile: str | None = None,
    faults_file: str | None = None,
    seed: int = 0,
    request_log: str | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the simulator until SIGINT or SIGTERM; port 0 picks a free port."""
    core = build_core(profile, faults_file, seed, request_log)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_server(core, host, port, stop, on_ready)

    asyncio.run(main())
