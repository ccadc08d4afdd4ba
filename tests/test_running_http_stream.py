"""running/http.py: a response sent with `stream=True` over aiohttp arrives piece by piece, never whole.

A batch's results file can be hundreds of MB; read whole, it would sit in memory twice (aiohttp's
bytes and httpx's). Against a real server on 127.0.0.1 (aiohttp's, or a raw socket cutting a body short).
"""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest
from aiohttp import web

from batchrun.running.http import STREAM_PIECE_BYTES, AiohttpTransport, make_client

BODY = bytes(range(256)) * 4096  # 1 MiB


async def body_server() -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/body", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def with_client(use) -> object:
    async def main():
        runner, url = await body_server()
        try:
            async with make_client(AiohttpTransport(max_connections=2), 10.0) as client:
                return await use(client, url)
        finally:
            await runner.cleanup()
    return anyio.run(main)


def test_a_streamed_body_comes_in_pieces_no_larger_than_64_kib():
    async def use(client, url):
        response = await client.send(httpx.Request("GET", f"{url}/body"), stream=True)
        try:
            assert not response.is_stream_consumed
            return [piece async for piece in response.aiter_raw()]
        finally:
            await response.aclose()

    pieces = with_client(use)
    assert b"".join(pieces) == BODY
    assert len(pieces) > 1 and max(len(p) for p in pieces) <= STREAM_PIECE_BYTES


def test_a_body_sent_without_stream_is_read_whole_before_send_returns():
    async def use(client, url):
        response = await client.send(httpx.Request("GET", f"{url}/body"))
        return response.is_stream_consumed, response.content

    consumed, content = with_client(use)
    assert consumed and content == BODY


def test_a_stream_closed_halfway_leaves_the_client_able_to_send_again():
    async def use(client, url):
        response = await client.send(httpx.Request("GET", f"{url}/body"), stream=True)
        async for _ in response.aiter_raw():
            break
        await response.aclose()
        return (await client.send(httpx.Request("GET", f"{url}/body"))).content

    assert with_client(use) == BODY


def test_a_connection_cut_in_the_middle_of_a_streamed_body_is_httpx_remote_protocol_error():
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with make_client(AiohttpTransport(max_connections=1), 10.0) as client:
                response = await client.send(httpx.Request("GET", f"http://127.0.0.1:{port}/"), stream=True)
                try:
                    with pytest.raises(httpx.RemoteProtocolError):
                        async for _ in response.aiter_raw():
                            pass
                finally:
                    await response.aclose()
        finally:
            server.close()
            await server.wait_closed()

    anyio.run(main)
