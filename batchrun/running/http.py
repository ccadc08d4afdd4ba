"""The one `httpx.AsyncClient` of a run, and the transport under it.

Chosen by measurement on a 2-core machine against a canned server on loopback, 64 requests in flight
(DESIGN.md, "HTTP"; bench/RESULTS.md): httpx 0.28's own pool scans every connection per request
(340 req/s); httpx over httpx-aiohttp's transport gave 1,840; a bare aiohttp loop 5,000. Most of
the gap left is httpx's client around the transport: merging default headers and cookies into every
request, extracting cookies from every reply (a urllib round trip per response), auth and redirect
hooks, and a chunked body stream. A run needs none of these, so:

- `AiohttpTransport` sends over one aiohttp session sized to the concurrency and reads the whole body
  before it returns (a reply is parsed whole anyway); aiohttp's failures become httpx's, once, here.
  A request sent with `stream=True` (a batch's results file, hundreds of MB) is the exception: its
  body comes in pieces of at most 64 KiB as it is read, so memory holds one piece, not the file;
- `RunClient.send` hands a request straight to the transport: no cookies kept (a gateway's
  Set-Cookie is not state a batch job carries), no auth hook (the provider sets its header), no
  redirects (a gateway's 301 is an error, not a detour).

Which transport a provider kind sends through is the provider registry's choice
(`batchrun.providers.registry`). Tests pass an `httpx.MockTransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx

MAX_BODY_EXTENSION = "batchrun.max_body_bytes"  # a request's cap on the body read (an image fetched by URL)
STREAM_EXTENSION = "batchrun.stream_body"  # set by RunClient.send(stream=True): the body is not read up front
STREAM_PIECE_BYTES = 1 << 16
_SKIPPED_HEADERS = frozenset({b"host", b"content-length", b"accept-encoding"})  # aiohttp writes its own


class BodyTooLarge(httpx.ReadError):
    """A body longer than the request's MAX_BODY_EXTENSION: not worth another attempt."""


def make_client(transport: httpx.AsyncBaseTransport, timeout_s: float) -> httpx.AsyncClient:
    """One client per run, sending straight through `transport` (see the module docstring)."""
    timeout = httpx.Timeout(timeout_s, connect=min(30.0, timeout_s))
    return RunClient(transport=transport, timeout=timeout, follow_redirects=False)


class RunClient(httpx.AsyncClient):
    """An httpx client whose `send` skips cookies, auth and redirects: a run uses none of them."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._run_transport = transport

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """The response to `request`, body read unless `stream`; httpx's own path if asked for more."""
        if stream:
            request.extensions[STREAM_EXTENSION] = True
        if kwargs or self.is_closed:
            return await super().send(request, stream=stream, **kwargs)
        response = await self._run_transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests over one aiohttp session; each response arrives with its body read, unless streamed."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        # created on first use: a session belongs to the event loop that runs the requests
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open_session()
        timeout = request.extensions.get("timeout") or {}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw
                   if k.lower() not in _SKIPPED_HEADERS}
        sent = session.request(request.method, str(request.url), headers=headers, data=request.content or None,
                               allow_redirects=False, timeout=_client_timeout(timeout))
        if request.extensions.get(STREAM_EXTENSION):
            with _httpx_errors():
                reply = await sent
            return httpx.Response(reply.status, headers=_reply_headers(reply), stream=_ReplyStream(reply),
                                  request=request)
        with _httpx_errors():
            async with sent as reply:
                body = await _read(reply, request.extensions.get(MAX_BODY_EXTENSION))
        return httpx.Response(reply.status, headers=_reply_headers(reply), content=body, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _ReplyStream(httpx.AsyncByteStream):
    """A streamed reply's body, piece by piece as it arrives; closing it releases the connection."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        self._reply = reply

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for piece in self._reply.content.iter_chunked(STREAM_PIECE_BYTES):
                yield piece

    async def aclose(self) -> None:
        self._reply.release()  # back to the pool when read to the end, else the connection is closed


async def _read(reply: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The whole body, or, with a limit, a ReadError as soon as it is known to be longer."""
    if limit is None:
        return await reply.read()
    if reply.content_length is not None and reply.content_length > limit:
        raise BodyTooLarge(f"the body is {reply.content_length} bytes, more than the {limit} allowed")
    chunks, size = [], 0
    async for chunk in reply.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is longer than the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's per-phase timeouts as aiohttp's: connect, and the longest silence while reading."""
    return aiohttp.ClientTimeout(total=None, sock_connect=timeout.get("connect"),
                                 sock_read=timeout.get("read"), connect=timeout.get("pool"))


def _reply_headers(reply: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    # the body is already decompressed: its encoding and length headers would mislead httpx
    return [(k, v) for k, v in reply.raw_headers if k.lower() not in (b"content-encoding", b"content-length")]


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """aiohttp's and asyncio's transport failures raised as the httpx errors providers classify."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc)) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
