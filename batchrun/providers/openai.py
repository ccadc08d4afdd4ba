"""The OpenAI-compatible provider: one `POST {base_url}/chat/completions` exchange.

For OpenAI, CometAPI's `/v1` route, Google's compat route or any gateway that speaks chat completions.

In:  a RequestRecord whose body is a provider-neutral RenderedRequest (input images as "sha256:<hex>"
     references), and an `httpx.AsyncClient` owned by the run.
Out: a ProviderReply (provider-neutral), never an exception for an HTTP or transport failure.

A reply's image may come in any of three shapes (reference §9.2): `message.images[]`, a Markdown image
in `message.content`, or an image part of a content-parts array; each holds a data URL or an http(s)
URL. The last image is the deliverable. A URL is fetched with the same client, without the API key
(the image may live on another host), within `max_image_bytes` and `image_timeout_s`; a failed fetch
is a retryable `image_download` error, so the paid reply's image is asked for again, never lost.

Invariants: one chat exchange per `send` (plus the GET of an image the reply names by URL); no
sleeping, retrying or file writing; the API key goes only into the Authorization header and never
into a repr, a reply or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..errors import InputImageChanged
from ..outcomes import ErrorKind
from ..records import IMAGE_PLACEHOLDER_PREFIX, ImageRef, Outcome, ProviderReply, RequestRecord, Usage
from ..tiers import Tier, served_tier
from .classify import classify_error, classify_finish, classify_transport, error_envelope
from .messages import one_line, safe_message
from .openai_request import chat_body
from .ratelimits import parse_headroom
from .sse import sse_events
from .wire import encoded, image_hex, loads, malformed, read_input_image

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # an image reply's URL is not fetched past this
IMAGE_TIMEOUT_S = 60.0
MAX_BODY_EXTENSION = "batchrun.max_body_bytes"

_PLACEHOLDER = re.compile(rb'"url":"' + IMAGE_PLACEHOLDER_PREFIX.encode() + rb'([0-9A-Fa-f]{64})"')
# base64 in a data URL may be wrapped over lines (MIME style): everything up to the ")" is the image
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*((?:data:image/[^;,\s)]+;base64,[^)]+)|(?:https?://[^)\s]+))\s*\)")
_DATA_URL = re.compile(r"^data:(image/[^;,]+);base64,(.*)$", re.DOTALL)
# chat finish reasons as the Gemini finish reasons `classify_finish` judges
_FINISH = {None: "STOP", "stop": "STOP", "end_turn": "STOP", "length": "MAX_TOKENS", "max_tokens": "MAX_TOKENS",
           "content_filter": "SAFETY", "tool_calls": "UNEXPECTED_TOOL_CALL", "function_call": "UNEXPECTED_TOOL_CALL"}


class OpenAIProvider:
    """Builds chat-completions requests and turns each exchange into a ProviderReply."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        spec_dir: Path,
        image_cache: Path | None = None,
        stream: bool = False,
        timeout_s: float = 180.0,
        max_tokens_field: str | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        image_timeout_s: float = IMAGE_TIMEOUT_S,
        tier: Tier = Tier.STANDARD,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.spec_dir = Path(spec_dir)
        self.image_cache = image_cache  # fetched and prepared input photos, found by sha256
        self.stream = stream
        self.max_tokens_field = max_tokens_field  # read by chat_body
        self.max_image_bytes = max_image_bytes
        self.tier = tier
        self._api_key = api_key or None
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(timeout_s, connect=min(30.0, timeout_s))
        self._extensions = {"timeout": timeout.as_dict()}
        image_timeout = httpx.Timeout(image_timeout_s, connect=min(30.0, image_timeout_s))
        # the run's transport stops reading a body past MAX_BODY_EXTENSION bytes
        self._image_extensions = {"timeout": image_timeout.as_dict(), MAX_BODY_EXTENSION: max_image_bytes}
        self._url = httpx.URL(f"{self.base_url}/chat/completions")

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAIProvider(base_url={self.base_url!r}, key={key}, stream={self.stream})"

    def endpoint(self, model: str, stream: bool = False) -> httpx.URL:
        """The chat-completions URL (the model goes in the body, streamed or not)."""
        return self._url

    def encode_body(self, record: RequestRecord) -> bytes:
        """The exact bytes sent: the model first, then the chat body, every image a data URL."""
        body = chat_body(record.body, self, model=record.model)
        if self._streams(record):
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if self.tier is not Tier.STANDARD:  # at send time, like stream: the request id hashes the body without it
            body.setdefault("service_tier", self.tier.value)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        if not record.images:
            return data
        inline = {image_hex(ref.sha256).lower(): self._data_url(ref) for ref in record.images}

        def substitute(match: re.Match[bytes]) -> bytes:
            digest = match.group(1).decode().lower()
            if digest not in inline:
                raise InputImageChanged(f"input image sha256:{digest} is not among the request's images")
            return b'"url":"' + inline[digest] + b'"'

        return _PLACEHOLDER.sub(substitute, data)

    def _data_url(self, ref: ImageRef) -> bytes:
        data = read_input_image(self.spec_dir, ref, self.image_cache)
        return b"data:" + ref.mime.encode() + b";base64," + base64.b64encode(data)

    def _streams(self, record: RequestRecord) -> bool:
        return self.stream and not record.wants_image  # an image arrives whole: nothing to stream

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        """One exchange: encode, post, parse, fetch an image named by URL. Failures come back as replies."""
        body = await encoded(self.encode_body, record)
        if isinstance(body, ProviderReply):
            return self._redact(body)
        request = httpx.Request("POST", self._url, content=body, headers=self._headers, extensions=self._extensions)
        try:
            response = await client.send(request)
        except httpx.RequestError as exc:
            return self._redact(classify_transport(exc))
        now = datetime.now(UTC)
        if response.status_code == 200 and self._streams(record):
            reply, image_url = parse_chat_sse(response.content, wants_image=record.wants_image,
                                              headers=response.headers, now=now)
        else:
            reply, image_url = parse_chat_reply(response.status_code, response.content, wants_image=record.wants_image,
                                                headers=response.headers, now=now)
        reply.headroom = parse_headroom(response.headers)
        if image_url is not None and reply.outcome is Outcome.OK:
            await self._fetch_image(client, reply, image_url)
        return self._redact(reply)

    async def _fetch_image(self, client: httpx.AsyncClient, reply: ProviderReply, url: str) -> None:
        """Download the image a reply names by URL into it; a failure makes the reply a retryable error."""
        try:
            request = httpx.Request("GET", url, extensions=self._image_extensions)  # no API key: another host
            response = await client.send(request)
        except (httpx.RequestError, httpx.InvalidURL, ValueError) as exc:
            _download_failed(reply, url, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        mime = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if response.status_code != 200:
            _download_failed(reply, url, f"HTTP {response.status_code}")
        elif len(response.content) > self.max_image_bytes:
            _download_failed(reply, url, f"the image is larger than {self.max_image_bytes:,} bytes")
        elif not response.content:
            _download_failed(reply, url, "the image is empty")
        elif not mime.startswith("image/") and _sniff_mime(response.content) is None:
            _download_failed(reply, url, f"the URL gave {mime or 'a body with no content type'}, not an image")
        else:
            reply.image = response.content
            reply.image_mime = mime if mime.startswith("image/") else _sniff_mime(response.content)

    def _redact(self, reply: ProviderReply) -> ProviderReply:
        """Scrub the key from all of an error message (a gateway or a transport may echo it), then cut it."""
        reply.error_message = safe_message(reply.error_message, self._api_key)
        return reply


def _download_failed(reply: ProviderReply, url: str, why: str) -> None:
    reply.outcome, reply.error_kind, reply.image = Outcome.RETRY, ErrorKind.IMAGE_DOWNLOAD, None
    reply.error_message = f"the reply's image could not be downloaded: {why} ({url})"





def parse_chat_reply(
    status: int,
    content: bytes,
    *,
    wants_image: bool,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[ProviderReply, str | None]:
    """The ProviderReply of one non-streamed reply, and the http(s) URL of its image if it must be fetched."""
    payload = loads(content)
    if not 200 <= status < 300 or error_envelope(payload) is not None:
        return classify_error(status, payload, headers, now=now), None
    if not isinstance(payload, dict):
        return malformed(status, "reply is not a JSON object" if content else "empty reply"), None
    return reply_from_completion(payload, status, wants_image)


def reply_from_completion(payload: dict[str, Any], status: int, wants_image: bool) -> tuple[ProviderReply, str | None]:
    """Read a chat completion: choice 0's message and finish_reason, usage, id and model."""
    try:
        return _read_completion(payload, status, wants_image)
    except (AttributeError, TypeError, IndexError, KeyError):
        return malformed(status, "reply does not have the chat-completion shape"), None


def _read_completion(payload: dict[str, Any], status: int, wants_image: bool) -> tuple[ProviderReply, str | None]:
    reply = ProviderReply(Outcome.OK, http_status=status, model_version=_text(payload.get("model")),
                          response_id=_text(payload.get("id")), service_tier=served_tier(payload.get("service_tier")))
    choices = payload.get("choices")
    if not choices:
        reply.usage = chat_usage(payload.get("usage"), has_image=False)
        reply.outcome, reply.error_kind = Outcome.RETRY, ErrorKind.NO_CANDIDATES
        reply.error_message = "reply has no choices"
        return reply, None
    choice = choices[0]
    message = choice.get("message") or {}
    text, image = read_message(message)
    reply.finish_reason = choice.get("finish_reason")
    reply.text = text
    reply.usage = chat_usage(payload.get("usage"), has_image=image is not None)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        reply.outcome, reply.error_kind = Outcome.BLOCKED, ErrorKind.REFUSAL
        reply.error_message = one_line(refusal)
        return reply, None
    finish = _FINISH.get(reply.finish_reason, str(reply.finish_reason).upper())
    reply.outcome, reply.error_kind = classify_finish(finish, image is not None, wants_image, bool(text))
    if reply.outcome is not Outcome.OK:
        reply.error_message = f"finish_reason {reply.finish_reason}"
        return reply, None
    if image is None:
        return reply, None
    return _attach(reply, image)


def _attach(reply: ProviderReply, url: str) -> tuple[ProviderReply, str | None]:
    """Decode a data URL into the reply; an http(s) URL is returned for the adapter to fetch."""
    if url.startswith(("http://", "https://")):
        return reply, url
    match = _DATA_URL.match(url)
    if match is None:
        reply.outcome, reply.error_kind = Outcome.RETRY, ErrorKind.MALFORMED
        reply.error_message = "the reply's image is neither a base64 data URL nor an http(s) URL"
        return reply, None
    try:
        reply.image = binascii.a2b_base64(match.group(2))
        if not reply.image and match.group(2).strip():
            raise ValueError("no base64 characters")
    except (binascii.Error, ValueError):
        reply.outcome, reply.error_kind, reply.image = Outcome.RETRY, ErrorKind.MALFORMED, None
        reply.error_message = "the reply's image is not valid base64"
        return reply, None
    if not reply.image:
        reply.outcome, reply.error_kind, reply.image = Outcome.RETRY, ErrorKind.NO_IMAGE, None
        reply.error_message = "the reply's image is empty"
        return reply, None
    reply.image_mime = match.group(1)
    return reply, None


def read_message(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A message's text (Markdown images taken out; None if none) and the URL of its last image."""
    images: list[str] = []
    content = message.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):  # a content-parts array
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str) and part.get("type") in ("text", "output_text", None):
                texts.append(part["text"])
            else:
                url = _image_url(part)
                if url:
                    images.append(url)
    text = "".join(texts)
    found = _MARKDOWN_IMAGE.findall(text) if "![" in text else None  # most replies hold no image markup
    if found:
        images = found + images
        text = _MARKDOWN_IMAGE.sub("", text)
    for item in message.get("images") or ():  # OpenRouter's and Vercel's shape
        url = _image_url(item) if isinstance(item, dict) else None
        if url:
            images.append(url)
    text = text.strip()
    return (text or None), (images[-1] if images else None)


def _image_url(part: Mapping[str, Any]) -> str | None:
    value = part.get("image_url")
    if isinstance(value, dict):
        value = value.get("url")
    if value is None and part.get("type") in ("image", "output_image"):
        value = part.get("url") or part.get("image")
    return value if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def chat_usage(usage: Any, *, has_image: bool) -> Usage | None:
    """Token counts from a chat `usage`: completion tokens split into reasoning, image and text."""
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    details = usage.get("completion_tokens_details") or {}
    completion = _count(usage.get("completion_tokens"))
    reasoning = _count(details.get("reasoning_tokens"))
    out_image = _count(details.get("image_tokens"))
    out_text = None
    if completion is not None:
        if out_image is None:  # no split reported: an image reply's output is the image
            out_image = completion - (reasoning or 0) if has_image else 0
        out_text = max(0, completion - (reasoning or 0) - out_image)
    return Usage(
        prompt=_count(usage.get("prompt_tokens")),
        prompt_image=_count(prompt_details.get("image_tokens")),
        cached=_count(prompt_details.get("cached_tokens")),
        output_text=out_text,
        output_image=out_image,
        thoughts=reasoning,
        total=_count(usage.get("total_tokens")),
    )


def parse_chat_sse(
    chunks: Iterable[bytes] | bytes,
    *,
    wants_image: bool,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[ProviderReply, str | None]:
    """The ProviderReply of a streamed chat completion: deltas joined, the usage chunk kept."""
    data = bytes(chunks) if isinstance(chunks, (bytes, bytearray)) else b"".join(chunks)
    events = [event for event in sse_events(data) if event.strip() != b"[DONE]"]
    if not events:  # an error may come back as plain JSON instead of events
        return parse_chat_reply(200, data, wants_image=wants_image, headers=headers, now=now)
    payloads = []
    for event in events:
        payload = loads(event)
        if error_envelope(payload) is not None:
            return classify_error(200, payload, headers, now=now), None
        if not isinstance(payload, dict):
            return malformed(200, "stream event is not a JSON object"), None
        payloads.append(payload)
    try:
        merged = merge_chunks(payloads)
    except (AttributeError, TypeError, IndexError):
        return malformed(200, "stream event does not have the chat-completion-chunk shape"), None
    return reply_from_completion(merged, 200, wants_image)


def merge_chunks(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One chat completion from its chunks: choice 0's deltas in order, the last finish_reason and usage."""
    merged: dict[str, Any] = {}
    message = _MessageDeltas()
    for payload in payloads:
        for field in ("id", "model", "usage", "service_tier"):
            if payload.get(field):
                merged[field] = payload[field]
        chunk_choices = payload.get("choices")
        if chunk_choices:
            message.add(chunk_choices[0])
    if message.seen:
        merged["choices"] = [{"message": message.joined(), "finish_reason": message.finish_reason}]
    return merged


class _MessageDeltas:
    """Choice 0's deltas of a stream, added in order and joined into one message."""

    def __init__(self) -> None:
        self.seen = False
        self.finish_reason: str | None = None
        self._texts: list[str] = []
        self._parts: list[Any] = []
        self._refusals: list[str] = []
        self._images: list[Any] = []

    def add(self, choice: dict[str, Any]) -> None:
        self.seen = True
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            self._texts.append(content)
        elif isinstance(content, list):
            self._parts.extend(content)
        if isinstance(delta.get("refusal"), str):
            self._refusals.append(delta["refusal"])
        self._images.extend(delta.get("images") or ())
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def joined(self) -> dict[str, Any]:
        content: Any = "".join(self._texts)
        if self._parts:  # a content-parts array: the text deltas become one more text part
            content = self._parts + ([{"type": "text", "text": content}] if content else [])
        return {"content": content, "refusal": "".join(self._refusals) or None, "images": self._images}


def _sniff_mime(data: bytes) -> str | None:
    """The image type of downloaded bytes served without an image content type."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
