"""Input photos by URL, fetched at plan time into the input cache.

Input: the distinct `http(s)` URLs that `request.images` rendered to, the job's InputCache, FetchSettings.
Output: for each URL, its CachedUrl (sha256, mime, validators) or the ImageProblem that says why not.
Invariants: a URL the index knows is reused without a request, unless `refresh` asks the server again
with If-None-Match / If-Modified-Since (a 304 keeps the cached bytes); a body is read in chunks and
dropped past `max_bytes`; bytes are kept only when Pillow reads them as PNG, JPEG or WebP, whatever the
Content-Type said. Connect errors, timeouts, 408, 429 and 5xx are retried (full-jitter backoff,
tenacity, the sleep injected); any other status is final. Messages show a URL as scheme://host/path and
"?…" for its query, never its user, password or query values (they may be signed tokens).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio
import httpx
from PIL import Image, UnidentifiedImageError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from batchrun.errors import ImageProblem
from batchrun.planning.inputcache import CachedUrl, InputCache
from batchrun.planning.inputimages import MIME_BY_FORMAT
from batchrun.records import shown_source
from batchrun.running.http import MAX_BODY_EXTENSION, AiohttpTransport, BodyTooLarge

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
Fetched = CachedUrl | ImageProblem


@dataclass(frozen=True, kw_only=True)
class FetchSettings:
    """How photos are fetched: connections at once, each request's time and size, retries, redirects."""

    connections: int = 16
    timeout_s: float = 30.0
    max_bytes: int = 32 * 1024 * 1024
    attempts: int = 4
    max_redirects: int = 5
    wait_initial_s: float = 0.5
    wait_max_s: float = 8.0


class _Transient(Exception):
    """A failure worth another attempt; the message is the reason shown when attempts run out."""


def fetch_all(urls: Iterable[str], cache: InputCache, settings: FetchSettings, *,
              refresh: bool = False, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Fetched]:
    """Fetch (or reuse) every URL; the cache's index is saved before returning.

    The transport is the run's aiohttp one unless one is given: 2.3x httpx's own pool on 200 photos
    (bench/RESULTS.md, "Photos by URL").
    """
    fetcher = UrlFetcher(cache, settings, refresh=refresh)
    try:
        transport = transport or AiohttpTransport(max_connections=settings.connections)
        return anyio.run(fetcher.fetch_all, list(dict.fromkeys(urls)), transport)
    finally:
        cache.save_index()


class UrlFetcher:
    """Fetches URLs into one cache, a bounded number at a time."""

    def __init__(self, cache: InputCache, settings: FetchSettings, *, refresh: bool = False,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.cache, self.settings, self.refresh, self.sleep = cache, settings, refresh, sleep
        self.requests = 0  # HTTP requests sent, retries and revalidations included

    async def fetch_all(self, urls: list[str], transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Fetched]:
        found: dict[str, Fetched] = {}
        todo = [url for url in urls if not self._reused(url, found)]
        if not todo:
            return found
        async with self._client(transport) as client, anyio.create_task_group() as group:
            limiter = anyio.CapacityLimiter(self.settings.connections)
            for url in todo:
                group.start_soon(self._fetch_into, client, limiter, url, found)
        return {url: found[url] for url in urls}

    def _reused(self, url: str, found: dict[str, Fetched]) -> bool:
        cached = self.cache.url(url)
        if cached is not None and not self.refresh:
            found[url] = cached
            return True
        return False

    def _client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        s = self.settings
        limits = httpx.Limits(max_connections=s.connections, max_keepalive_connections=s.connections)
        # redirects are followed by `_get`: the run's aiohttp transport can't resend httpx's redirected request
        return httpx.AsyncClient(transport=transport, limits=limits, timeout=httpx.Timeout(s.timeout_s))

    async def _fetch_into(self, client: httpx.AsyncClient, limiter: anyio.CapacityLimiter, url: str,
                          found: dict[str, Fetched]) -> None:
        async with limiter:
            try:
                found[url] = await self.fetch(client, url)
            except ImageProblem as problem:
                found[url] = problem

    async def fetch(self, client: httpx.AsyncClient, url: str) -> CachedUrl:
        """One URL, retried on transient failures; raises ImageProblem naming the URL and the reason."""
        s = self.settings
        retrying = AsyncRetrying(stop=stop_after_attempt(s.attempts), reraise=True, sleep=self.sleep,
                                 wait=wait_random_exponential(multiplier=s.wait_initial_s, max=s.wait_max_s),
                                 retry=retry_if_exception_type(_Transient))
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(client, url)
        except _Transient as exc:
            raise ImageProblem(f"{shown_source(url)}: {exc} (after {s.attempts} attempts)") from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> CachedUrl:
        cached = self.cache.url(url)
        try:
            with anyio.fail_after(self.settings.timeout_s):
                response, data = await self._get(client, url, cached)
        except TimeoutError:
            raise _Transient(f"no answer within {self.settings.timeout_s:g} s") from None
        except BodyTooLarge:
            raise _too_large(url, self.settings.max_bytes) from None
        except httpx.TimeoutException:
            raise _Transient(f"no answer within {self.settings.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Transient(f"could not connect ({type(exc).__name__})") from None
        if data is None and cached is not None:
            return cached  # 304: not modified
        return self._keep(url, response, data or b"")

    async def _get(self, client: httpx.AsyncClient, url: str,
                   cached: CachedUrl | None) -> tuple[httpx.Response, bytes | None]:
        """The final response and its body (None for a 304), redirects followed here, bounded."""
        target = httpx.URL(url)
        for _ in range(self.settings.max_redirects + 1):
            self.requests += 1
            async with client.stream("GET", target, headers=_validators(cached),
                                     extensions={MAX_BODY_EXTENSION: self.settings.max_bytes}) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    target = response.url.join(response.headers["location"])
                    continue
                if response.status_code == 304 and cached is not None:
                    return response, None
                _check_status(url, response)
                return response, await self._body(url, response)
        raise ImageProblem(f"{shown_source(url)}: more than {self.settings.max_redirects} redirects; "
                           "link the photo's final address")

    async def _body(self, url: str, response: httpx.Response) -> bytes:
        cap, chunks, size = self.settings.max_bytes, [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise _too_large(url, cap)
            chunks.append(chunk)
        return b"".join(chunks)

    def _keep(self, url: str, response: httpx.Response, data: bytes) -> CachedUrl:
        mime = image_mime(url, data, response.headers.get("content-type"))
        entry = CachedUrl(self.cache.store(data, mime), mime, response.headers.get("etag"),
                          response.headers.get("last-modified"))
        self.cache.remember_url(url, entry)
        return entry


def _too_large(url: str, cap: int) -> ImageProblem:
    return ImageProblem(f"{shown_source(url)}: the body is over {cap:,} bytes, the size cap; link a smaller photo")


def _validators(cached: CachedUrl | None) -> dict[str, str]:
    if cached is None:
        return {}
    headers = {}
    if cached.etag:
        headers["if-none-match"] = cached.etag
    if cached.last_modified:
        headers["if-modified-since"] = cached.last_modified
    return headers


def _check_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status in RETRIED_STATUSES:
        raise _Transient(f"HTTP {status}")
    if status != 200:
        raise ImageProblem(f"{shown_source(url)}: HTTP {status}; check the URL (is the photo public?)")


def image_mime(url: str, data: bytes, content_type: str | None) -> str:
    """The mime of bytes Pillow reads as PNG, JPEG or WebP; ImageProblem naming what came back otherwise."""
    kind = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        kind = None
    mime = MIME_BY_FORMAT.get(kind or "")
    if mime is None:
        what = f"{kind} image" if kind else "not an image Pillow can read"
        raise ImageProblem(f"{shown_source(url)}: the server sent {content_type or 'no Content-Type'}, {len(data):,} "
                           f"bytes, {what}; link a PNG, JPEG or WebP photo itself, not a page")
    return mime
