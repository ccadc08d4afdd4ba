"""One HTTP exchange with the batch API, its failures translated once, here, into `BatchApiError`.

In:  an `httpx.AsyncClient` owned by the run (tests pass one over `httpx.MockTransport`), the base URL
     and the key.
Out: the `httpx.Response` of a 2xx reply; otherwise a `BatchApiError` carrying the ProviderReply that
     `providers.classify` makes of the same failure in a synchronous run (so a 429 is RETRY
     rate_limited with the server's delay, a 401 STOP_AUTH, a timeout RETRY timeout).

Invariants: one exchange per call, no retrying or sleeping (the caller decides, from the reply's
outcome); the key goes only into the auth header and is scrubbed from every error message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ..providers.classify import classify_error, classify_transport
from ..providers.gemini import DEFAULT_BASE_URL
from ..providers.gemini import _auth_header as auth_header
from ..providers.messages import safe_message
from ..records import Outcome, ProviderReply

BATCH_TIMEOUT = httpx.Timeout(300.0, connect=30.0)


class BatchApiError(Exception):
    """A batch API exchange that failed; `reply` says how, as a synchronous reply would."""

    def __init__(self, what: str, reply: ProviderReply) -> None:
        super().__init__(f"{what}: {reply.error_message or reply.error_kind}")
        self.what = what
        self.reply = reply

    @property
    def status(self) -> int | None:
        return self.reply.http_status


class BatchApi:
    """The batch API's endpoints at one base URL, with one key (`key_env`: its variable, named in errors
    when a run has several)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str | None, api_key: str | None,
                 *, auth: str = "x-goog-api-key", timeout: httpx.Timeout = BATCH_TIMEOUT,
                 key_env: str | None = None) -> None:
        self.client = client
        self.key_env = key_env
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = api_key or None
        self._headers = auth_header(auth, api_key)
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"BatchApi(base_url={self.base_url!r}, key={'set' if self._api_key else 'none'})"

    def url(self, path: str) -> str:
        """An absolute URL under the base URL (`path` starts with a slash)."""
        return self.base_url + path

    async def send(self, what: str, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   content: bytes | None = None, json_body: Any = None) -> httpx.Response:
        """One exchange; a 2xx response, else BatchApiError naming `what` failed."""
        request = self._request(method, url, headers, content, json_body)
        try:
            response = await self.client.send(request)
        except httpx.RequestError as exc:
            raise self._error(what, classify_transport(exc)) from exc
        if not response.is_success:
            raise self._error(what, classify_error(response.status_code, _json(response.content), response.headers))
        return response

    @asynccontextmanager
    async def stream(self, what: str, url: str) -> AsyncIterator[httpx.Response]:
        """A streamed GET: the 2xx response, body not yet read; else BatchApiError."""
        request = self._request("GET", url, None, None, None)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.RequestError as exc:
            raise self._error(what, classify_transport(exc)) from exc
        try:
            if not response.is_success:
                body = await response.aread()
                raise self._error(what, classify_error(response.status_code, _json(body), response.headers))
            yield response
        finally:
            await response.aclose()

    def translate(self, what: str, exc: httpx.RequestError) -> BatchApiError:
        """A transport failure met while reading a streamed body, as a BatchApiError."""
        return self._error(what, classify_transport(exc))

    def _request(self, method: str, url: str, headers: Mapping[str, str] | None, content: bytes | None,
                 json_body: Any) -> httpx.Request:
        all_headers = {**self._headers, **(headers or {})}
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers.setdefault("content-type", "application/json")
        return httpx.Request(method, url, content=content, headers=all_headers,
                             extensions={"timeout": self._timeout.as_dict()})

    def _error(self, what: str, reply: ProviderReply) -> BatchApiError:
        reply.error_message = safe_message(reply.error_message, self._api_key)
        return BatchApiError(what if self.key_env is None else f"{what} with the key in {self.key_env}", reply)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def response_json(what: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx reply; a malformed one is a BatchApiError worth retrying."""
    payload = _json(response.content)
    if not isinstance(payload, dict):
        raise protocol_error(what, response, "reply is not a JSON object")
    return payload


def protocol_error(what: str, response: httpx.Response, message: str) -> BatchApiError:
    """A 2xx reply that breaks the protocol (a missing header or field): worth retrying, as `malformed`."""
    reply = ProviderReply(Outcome.RETRY, http_status=response.status_code, error_kind="malformed",
                          error_message=message)
    return BatchApiError(what, reply)
