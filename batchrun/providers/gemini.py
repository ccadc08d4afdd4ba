"""The Gemini-native provider: one `generateContent` exchange, at Google or through CometAPI.

In:  a RequestRecord whose body is a provider-neutral RenderedRequest (input images as "sha256:<hex>"
     references), and an `httpx.AsyncClient` owned by the run.
Out: a ProviderReply (provider-neutral), never an exception for an HTTP or transport failure.

Invariants: one exchange per `send` (no sleeping, retrying or file writing); the API key goes only
into the auth header and never into a repr, a reply or an error message; every reply body is
parsed with one `json.loads`, and the deliverable image is base64-decoded once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..errors import InputImageChanged
from ..outcomes import ErrorKind
from ..records import (
    IMAGE_PLACEHOLDER_PREFIX,
    EstimateInputs,
    ImageRef,
    Outcome,
    ProviderReply,
    RequestRecord,
    Usage,
)
from ..rendered import RenderedRequest, option
from ..tiers import SERVED_TIER_HEADER, Tier, served_tier
from .classify import (
    classify_error,
    classify_finish,
    classify_transport,
    error_envelope,
)
from .messages import one_line, safe_message
from .sse import sse_events
from .uploads import ImageUploads, UploadedImage, UploadFailed, images_by_file
from .wire import encoded, image_hex, loads, malformed, read_input_image

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
INLINE_LIMIT = 100 * 1024 * 1024  # bytes of one generateContent body (reference §1.2); provider.inline_limit_mb
AUTH_SCHEMES = ("x-goog-api-key", "bearer")

_PLACEHOLDER = re.compile(rb'"data":"' + IMAGE_PLACEHOLDER_PREFIX.encode() + rb'([0-9A-Fa-f]{64})"')
_SCHEMA_KEY = {"openapi": "responseSchema", "json_schema": "responseJsonSchema"}


def gemini_body(request: RenderedRequest, provider: Any = None) -> dict[str, Any]:
    """The generateContent body of a rendered request, input images still as "sha256:<hex>" data."""
    parts = [{"inlineData": {"mimeType": part["mime"], "data": part["image"]}} if "image" in part
             else {"text": part["text"]} for part in request["parts"]]
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if request["system"] is not None:
        body["systemInstruction"] = {"parts": [{"text": request["system"]}]}
    config = request["options"]
    schema = request["response_schema"]
    if schema is not None:  # after the other options, as a spec usually lists it
        config = {**config, _SCHEMA_KEY[schema["dialect"]]: schema["schema"]}
    if config:
        body["generationConfig"] = config
    extras = request["extras"]
    if extras:
        body.update({key: value for key, value in extras.items() if value})
    if request["tools"]:
        body["tools"] = request["tools"]
    return body


def gemini_estimate_inputs(request: RenderedRequest) -> EstimateInputs:
    """The generation options the token estimate reads, by their generationConfig names."""
    options = request["options"]
    thinking = option(options, "thinkingConfig", "thinking_config") or {}
    level = option(thinking, "thinkingLevel", "thinking_level")
    budget = option(thinking, "thinkingBudget", "thinking_budget")
    image = option(options, "imageConfig", "image_config") or {}
    size = option(image, "imageSize", "image_size")
    ratio = option(image, "aspectRatio", "aspect_ratio")
    tier = option(options, "serviceTier", "service_tier") or request["extras"].get("serviceTier")
    limit = option(options, "maxOutputTokens", "max_output_tokens")
    return EstimateInputs(
        max_output_tokens=int(limit) if limit else None,
        modalities=tuple(str(m).upper() for m in option(options, "responseModalities", "response_modalities") or ()),
        image_size=str(size) if size is not None else None,
        aspect_ratio=str(ratio) if ratio is not None else None,
        media_resolution=str(option(options, "mediaResolution", "media_resolution") or "").upper() or None,
        thinking_level=str(level) if level is not None else None,
        thinking_budget=int(budget) if budget is not None else None,
        service_tier=str(tier) if tier else None,
    )


class GeminiProvider:
    """Builds generateContent requests and turns each exchange into a ProviderReply."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        auth: str = "x-goog-api-key",
        spec_dir: Path,
        image_cache: Path | None = None,
        stream: bool = False,
        timeout_s: float = 180.0,
        tier: Tier = Tier.STANDARD,
        inline_limit: int = INLINE_LIMIT,
        uploads: ImageUploads | None = None,
    ) -> None:
        if auth not in AUTH_SCHEMES:
            # the value is not echoed: a misplaced argument may be the key itself
            raise ValueError(f"auth must be one of {', '.join(AUTH_SCHEMES)}")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.auth = auth
        self.spec_dir = Path(spec_dir)
        self.image_cache = image_cache  # fetched and prepared input photos, found by sha256
        self.stream = stream
        self.timeout_s = timeout_s
        self.tier = tier
        self.inline_limit = inline_limit  # a larger body sends its largest images by file (`uploads`)
        self.uploads = uploads
        # appended at send time like the stream flag: the request id hashes the body without it
        self._tier_suffix = b"" if tier is Tier.STANDARD else f',"serviceTier":"{tier.value}"}}'.encode()
        self._api_key = api_key or None
        self._headers = {"content-type": "application/json", **_auth_header(auth, api_key)}
        self._timeout = httpx.Timeout(timeout_s, connect=min(30.0, timeout_s))
        self._extensions = {"timeout": self._timeout.as_dict()}
        self._urls: dict[tuple[str, bool], httpx.URL] = {}  # parsing a URL costs more than the rest

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return (
            f"GeminiProvider(base_url={self.base_url!r}, auth={self.auth!r}, key={key}, "
            f"stream={self.stream})"
        )

    def endpoint(self, model: str, stream: bool = False) -> httpx.URL:
        """The URL of generateContent (or its SSE stream) for a model."""
        url = self._urls.get((model, stream))
        if url is None:
            method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
            url = httpx.URL(f"{self.base_url}/v1beta/models/{model.removeprefix('models/')}{method}")
            self._urls[(model, stream)] = url
        return url

    def encode_body(self, record: RequestRecord, files: Mapping[str, UploadedImage] | None = None) -> bytes:
        """The exact bytes sent: compact JSON with every image placeholder replaced by base64, or by a
        `fileData` reference for the images in `files` (by hex digest)."""
        return self._inlined(record, self._json(record, files), files)

    def _json(self, record: RequestRecord, files: Mapping[str, UploadedImage] | None) -> bytes:
        """The body before its photos are inlined: their data still "sha256:<hex>" placeholders."""
        wire = gemini_body(record.body)
        if files:
            refer_to_files(wire, files)
        body = json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode()
        return self._with_tier(body, record.body)

    def _inlined(self, record: RequestRecord, body: bytes, files: Mapping[str, UploadedImage] | None) -> bytes:
        if not record.images and IMAGE_PLACEHOLDER_PREFIX.encode() not in body:
            return body
        inline = {digest: self._read_base64(ref) for ref in record.images
                  if (digest := image_hex(ref.sha256).lower()) not in (files or {})}

        def substitute(match: re.Match[bytes]) -> bytes:
            digest = match.group(1).decode().lower()
            if digest not in inline:
                raise InputImageChanged(f"input image sha256:{digest} is not among the request's images")
            return b'"data":"' + inline[digest] + b'"'

        return _PLACEHOLDER.sub(substitute, body)

    def _with_tier(self, body: bytes, request: RenderedRequest) -> bytes:
        """The body with the run's serviceTier last; a body that names its own at top level keeps it."""
        if not self._tier_suffix or request["extras"].get("serviceTier"):
            return body
        return body[:-1] + self._tier_suffix

    def _read_base64(self, ref: ImageRef) -> bytes:
        data = read_input_image(self.spec_dir, ref, self.image_cache)
        return base64.b64encode(data)

    def by_file(self, record: RequestRecord, body: bytes | None = None) -> list[ImageRef]:
        """The record's images that would push its body past the inline limit (none for most); `body`,
        if given, is its `_json` without files."""
        if not record.images:
            return []
        size = len(body if body is not None else self._json(record, None))
        return images_by_file(record.images, size, self.inline_limit)

    async def _upload_large(self, client: httpx.AsyncClient, record: RequestRecord,
                            body: bytes) -> dict[str, UploadedImage] | ProviderReply:
        """The Files API file of each image too large to inline, uploaded if need be (see `uploads`)."""
        large = self.by_file(record, body)
        if not large:
            return {}
        if self.uploads is None:
            return ProviderReply(Outcome.INVALID, error_kind=ErrorKind.INVALID_REQUEST,
                                 error_message=f"the request is over the {self.inline_limit}-byte inline limit "
                                               "and this provider has no Files API to send its images by")
        files: dict[str, UploadedImage] = {}
        try:
            for ref in large:
                files[image_hex(ref.sha256).lower()] = await self.uploads.file_for(
                    client, ref, functools.partial(read_input_image, self.spec_dir, ref, self.image_cache))
        except InputImageChanged as exc:
            return ProviderReply(Outcome.INVALID, error_kind=ErrorKind.INPUT_CHANGED, error_message=str(exc))
        except UploadFailed as exc:
            return exc.reply
        return files

    def _files_gone(self, reply: ProviderReply, files: Mapping[str, UploadedImage]) -> ProviderReply:
        """A 403 or 404 to a request that referred to uploaded files: they are uploaded again on retry."""
        assert self.uploads is not None
        for upload in files.values():
            self.uploads.forget(upload)
        reply.outcome, reply.error_kind = Outcome.RETRY, ErrorKind.INPUT_FILE_GONE
        return reply

    def build_request(self, client: httpx.AsyncClient, record: RequestRecord) -> httpx.Request:
        """The POST for one record, body encoded and images inlined."""
        return self._request(client, record, self.encode_body(record))

    def _request(
        self, client: httpx.AsyncClient, record: RequestRecord, body: bytes
    ) -> httpx.Request:
        url = self.endpoint(record.model, self._streams(record))
        # httpx.Request directly, not client.build_request: a run's client has no default headers,
        # cookies or params to merge, and the merge was a tenth of the runner's time per request
        return httpx.Request("POST", url, content=body, headers=self._headers, extensions=self._extensions)

    def _streams(self, record: RequestRecord) -> bool:
        return self.stream and not record.wants_image  # image parts arrive whole: nothing to stream

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        """One exchange: encode, post, parse. HTTP and transport failures come back as replies.

        Before it, an image too large to inline is uploaded (once per content hash, see `uploads`)."""
        text = self._json(record, None)
        files = await self._upload_large(client, record, text)
        if isinstance(files, ProviderReply):
            return self._redact(files)
        with_files = self._json(record, files) if files else text  # most requests: the one JSON dump
        body = await encoded(lambda r: self._inlined(r, with_files, files), record)
        if isinstance(body, ProviderReply):
            return self._redact(body)
        request = self._request(client, record, body)
        try:
            response = await client.send(request)
        except httpx.RequestError as exc:
            return self._redact(classify_transport(exc))
        now = datetime.now(UTC)
        status, wants_image = response.status_code, record.wants_image
        if status == 200 and self._streams(record):
            reply = parse_sse(
                response.content, wants_image=wants_image, headers=response.headers, now=now
            )
        else:
            reply = parse_reply(
                status, response.content, wants_image=wants_image, headers=response.headers, now=now
            )
        if reply.service_tier is None:
            reply.service_tier = served_tier(response.headers.get(SERVED_TIER_HEADER))
        if files and status in (403, 404):
            reply = self._files_gone(reply, files)
        return self._redact(reply)

    def _redact(self, reply: ProviderReply) -> ProviderReply:
        """Scrub the key from all of an error message (a gateway or a transport may echo it), then cut it."""
        reply.error_message = safe_message(reply.error_message, self._api_key)
        return reply


def refer_to_files(body: dict[str, Any], files: Mapping[str, UploadedImage]) -> None:
    """Turn the inline image parts of `body` whose digest is in `files` into `fileData` references."""
    for content in body["contents"]:
        for index, part in enumerate(content["parts"]):
            data = (part.get("inlineData") or {}).get("data", "")
            upload = files.get(data.removeprefix(IMAGE_PLACEHOLDER_PREFIX).lower()) if data else None
            if upload is not None:
                content["parts"][index] = {"fileData": {"mimeType": upload.mime, "fileUri": upload.uri}}


def _auth_header(auth: str, api_key: str | None) -> dict[str, str]:
    if not api_key:
        return {}
    if auth == "bearer":
        return {"authorization": f"Bearer {api_key}"}
    return {"x-goog-api-key": api_key}





def parse_reply(
    status: int,
    content: bytes,
    *,
    wants_image: bool,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ProviderReply:
    """The ProviderReply for one non-streamed HTTP reply (status and body)."""
    payload = loads(content)
    if not 200 <= status < 300 or error_envelope(payload) is not None:
        return classify_error(status, payload, headers, now=now)
    if not isinstance(payload, dict):
        return malformed(status, "reply is not a JSON object" if content else "empty reply")
    return reply_from_response(payload, status, wants_image)


def reply_from_response(payload: dict[str, Any], status: int, wants_image: bool) -> ProviderReply:
    """Read a generateContent reply: candidate 0's parts, finishReason, usage and model facts."""
    try:
        return _read_response(payload, status, wants_image)
    except (AttributeError, TypeError, IndexError):
        return malformed(status, "reply does not have the generateContent shape")


def _read_response(payload: dict[str, Any], status: int, wants_image: bool) -> ProviderReply:
    model_status = payload.get("modelStatus") or {}
    reply = ProviderReply(
        Outcome.OK,
        http_status=status,
        model_version=payload.get("modelVersion"),
        response_id=payload.get("responseId"),
        model_stage=model_status.get("modelStage"),
        retirement_time=model_status.get("retirementTime"),
        service_tier=served_tier((payload.get("usageMetadata") or {}).get("serviceTier") or payload.get("serviceTier")),
    )
    candidates = payload.get("candidates")
    if not candidates:
        reply.usage = parse_usage(payload.get("usageMetadata"), has_image=False)
        return _no_candidates(reply, payload.get("promptFeedback") or {})
    candidate = candidates[0]
    text, blob = read_parts(candidate)
    reply.finish_reason = candidate.get("finishReason")
    reply.text = text
    reply.usage = parse_usage(payload.get("usageMetadata"), has_image=blob is not None)
    reply.outcome, reply.error_kind = classify_finish(
        reply.finish_reason, blob is not None, wants_image, bool(text)
    )
    if reply.outcome is not Outcome.OK:
        reply.error_message = one_line(candidate.get("finishMessage")) or (
            f"finishReason {reply.finish_reason}"
        )
    elif blob is not None:
        _attach_image(reply, blob)
    return reply


def _no_candidates(reply: ProviderReply, feedback: Mapping[str, Any]) -> ProviderReply:
    reason = feedback.get("blockReason")
    if reason:
        reply.outcome, reply.error_kind = Outcome.BLOCKED, "prompt_blocked"
        reply.error_message = one_line(feedback.get("blockReasonMessage")) or (
            f"prompt blocked: {reason}"
        )
    else:
        reply.outcome, reply.error_kind = Outcome.RETRY, "no_candidates"
        reply.error_message = "reply has no candidates and no blockReason"
    return reply


def read_parts(candidate: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """Joined non-thought text (None if none) and the last non-thought image blob of a candidate."""
    texts: list[str] = []
    image = None
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought") is True:
            continue  # interim thoughts: text and images alike are not the deliverable
        text = part.get("text")
        if text is not None:
            texts.append(text)
            continue
        blob = part.get("inlineData") or part.get("inline_data")
        if blob and str(blob.get("mimeType") or blob.get("mime_type") or "").startswith("image/"):
            image = blob
    return ("".join(texts) if texts else None), image


def _attach_image(reply: ProviderReply, blob: Mapping[str, Any]) -> None:
    try:
        reply.image = binascii.a2b_base64(blob.get("data") or "")
    except (binascii.Error, ValueError):
        reply.outcome, reply.error_kind = Outcome.RETRY, "malformed"
        reply.error_message = "image part is not valid base64"
        return
    if not reply.image:
        reply.outcome, reply.error_kind, reply.image = Outcome.RETRY, "no_image", None
        reply.error_message = "image part is empty"
        return
    reply.image_mime = blob.get("mimeType") or blob.get("mime_type")


def _modality_tokens(details: Any, modality: str) -> int:
    return sum(d.get("tokenCount") or 0 for d in details if d.get("modality") == modality)


def parse_usage(meta: Mapping[str, Any] | None, *, has_image: bool) -> Usage | None:
    """Token counts from usageMetadata, output split into text and image by modality."""
    if not meta:
        return None
    candidates = meta.get("candidatesTokenCount")
    details = meta.get("candidatesTokensDetails")
    out_text: int | None
    out_image: int | None
    if details:
        out_text, out_image = _modality_tokens(details, "TEXT"), _modality_tokens(details, "IMAGE")
    elif candidates is None:
        out_text = out_image = None
    elif has_image:  # no split reported: an image reply's output is the image
        out_text, out_image = 0, candidates
    else:
        out_text, out_image = candidates, 0
    prompt_details = meta.get("promptTokensDetails")
    return Usage(
        prompt=meta.get("promptTokenCount"),
        prompt_image=_modality_tokens(prompt_details, "IMAGE") if prompt_details else None,
        cached=meta.get("cachedContentTokenCount"),
        output_text=out_text,
        output_image=out_image,
        thoughts=meta.get("thoughtsTokenCount"),
        total=meta.get("totalTokenCount"),
    )


def parse_sse(
    chunks: Iterable[bytes] | bytes,
    *,
    wants_image: bool,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ProviderReply:
    """The ProviderReply of a `streamGenerateContent?alt=sse` body: parts joined, last usage kept."""
    data = bytes(chunks) if isinstance(chunks, (bytes, bytearray)) else b"".join(chunks)
    events = sse_events(data)
    if not events:  # an error may come back as plain JSON instead of events
        return parse_reply(200, data, wants_image=wants_image, headers=headers, now=now)
    payloads = []
    for event in events:
        payload = loads(event)
        if error_envelope(payload) is not None:
            return classify_error(200, payload, headers, now=now)
        if not isinstance(payload, dict):
            return malformed(200, "stream event is not a JSON object")
        payloads.append(payload)
    try:
        merged = merge_stream(payloads)
    except (AttributeError, TypeError, IndexError):
        return malformed(200, "stream event does not have the generateContent shape")
    return reply_from_response(merged, 200, wants_image)


def merge_stream(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One reply from stream chunks: candidate 0's parts in order, the last finishReason and usage."""
    merged: dict[str, Any] = {}
    parts: list[Any] = []
    candidate: dict[str, Any] | None = None
    for payload in payloads:
        for field in ("usageMetadata", "modelVersion", "responseId", "modelStatus", "serviceTier"):
            if payload.get(field):
                merged[field] = payload[field]  # usage is cumulative: the last chunk holds the total
        if "promptFeedback" in payload and "promptFeedback" not in merged:
            merged["promptFeedback"] = payload["promptFeedback"]
        chunk_candidates = payload.get("candidates")
        if not chunk_candidates:
            continue
        first = chunk_candidates[0]
        candidate = candidate or {"content": {"parts": parts}}
        parts.extend((first.get("content") or {}).get("parts") or ())
        for field in ("finishReason", "finishMessage"):
            if first.get(field):
                candidate[field] = first[field]
    if candidate is not None:
        merged["candidates"] = [candidate]
    return merged
