"""The simulator in process: an httpx transport that answers with the server's logic, no sockets.

Used for `provider: {kind: simulator}`. Images are drawn on a worker thread (`anyio.to_thread`), so
the run's event loop is not held while they are. Latency and batch delays are awaited with the
`sleep` given (`anyio.sleep`). Faults that need a socket become the httpx exceptions a client would
see: a dropped connection yields the first part of the body and then raises
`httpx.RemoteProtocolError`; a request that never gets an answer waits for the request's read
timeout (or the fault's `seconds`, whichever is shorter) and then raises `httpx.ReadTimeout` (or
`RemoteProtocolError` if the server side gave up first).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread
import httpx

from .core import SimReply, SimulatorCore
from .server import build_core, file_stream

Sleep = Callable[[float], Awaitable[None]]


class _CutStream(httpx.AsyncByteStream):
    """A body that stops part way and raises, as a connection closed by the peer does."""

    def __init__(self, head: bytes, request: httpx.Request) -> None:
        self.head = head
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body", request=self.request
        )


class _FileStream(httpx.AsyncByteStream):
    """A file's bytes, read chunk by chunk as the client reads the body."""

    def __init__(self, path: Path, pause: tuple[int, float] | None, sleep: Sleep) -> None:
        self.path = path
        self.pause = pause
        self.sleep = sleep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in file_stream(self.path, self.pause):
            if isinstance(piece, float):
                await self.sleep(piece)
            else:
                yield piece


class SimulatorTransport(httpx.AsyncBaseTransport):
    """An httpx transport backed by the simulator core (no network, no key needed)."""

    def __init__(
        self,
        profile: str | None = "clean",
        seed: int = 0,
        faults_file: str | None = None,
        *,
        request_log: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep | None = None,
    ) -> None:
        self._sleep = sleep or _anyio_sleep  # latency and batch delays are waited on it
        if faults_file is not None and profile == "clean":
            profile = None  # the default profile gives way to a faults file
        self.core: SimulatorCore = build_core(profile, faults_file, seed, request_log, clock)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request in process."""
        body = await request.aread()
        query = dict(request.url.params)
        wait_s = self.core.arrive(request.method, request.url.path, query, body)
        if wait_s:
            await self._sleep(wait_s)
        reply = self.core.receive(request.method, request.url.path, query, request.headers, body)
        if reply.draws:
            await anyio.to_thread.run_sync(reply.complete)
        reply.complete()
        if reply.delay_s:
            await self._sleep(reply.delay_s)
        if reply.action == "hang":
            await _hang(request, reply)
        headers = {"Content-Type": reply.content_type, **reply.headers}
        if reply.action == "drop":
            payload = reply.payload()
            headers["Content-Length"] = str(len(payload))
            stream = _CutStream(payload[: reply.cut_at], request)
            return httpx.Response(reply.status or 200, headers=headers, stream=stream, request=request)
        if reply.file is not None:
            headers["Content-Length"] = str(reply.file.stat().st_size)
            body_file = _FileStream(reply.file, reply.pause, self._sleep)
            return httpx.Response(reply.status or 200, headers=headers, stream=body_file, request=request)
        return httpx.Response(reply.status or 200, headers=headers, content=reply.payload(), request=request)

    async def aclose(self) -> None:
        self.core.close()


async def _anyio_sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


async def _hang(request: httpx.Request, reply: SimReply) -> None:
    read_timeout = (request.extensions.get("timeout") or {}).get("read")
    server_gives_up = reply.hang_s if reply.hang_s is not None else math.inf
    client_gives_up = read_timeout if read_timeout is not None else math.inf
    wait = min(server_gives_up, client_gives_up)
    if math.isinf(wait):
        await anyio.sleep_forever()
    await anyio.sleep(wait)
    if client_gives_up <= server_gives_up:
        raise httpx.ReadTimeout("timed out waiting for the simulator's reply", request=request)
    raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
