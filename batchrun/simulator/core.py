"""The simulator's protocol core: one request in (method, path, query, headers, body), one SimReply out.

Shared by the HTTP server and the in-process transport, so both answer identically. The core is
synchronous and does no I/O except appending to the request log; what to do with the reply (wait,
send, cut the connection, never answer) is written in the SimReply and carried out by the caller.

Two steps: `receive` decides everything (status, outcome, fault, token counts) in arrival order and
logs the request; a reply that carries generated content leaves its body to `SimReply.complete`,
which draws the images and encodes the JSON and may run on a worker thread. `handle` does both.

Order of checks for a generate request: route, API key, body, then (with the request's arrival
number n) the per-day quota, per-minute limits, and the seeded fault decision for n. The
OpenAI-compatible chat route (`chatroute.py`) takes the same steps through `admit`, sharing the
arrival count, the limits and the fault decisions with the native route. The Files and Batch API
(`batchroute.py`) answers batch lines through `batch_answer`, outside the arrival count and limits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from batchrun.cost.modeltable import input_image_tokens

from ..errors import InvalidRequest, SchemaError, UnsupportedImageConfig
from .content import Content, ContentMaker, ModelPlan, plan_for
from .faults import BatchDelays, Decision, FaultConfig, decide
from .filerefs import file_image_reader
from .files import FileApiError
from .inbound import (
    GenerateRequest,
    load_body,
    read_count_tokens_request,
    read_generate_request,
)
from .limits import KeyedLimits, Refusal
from .replies import (
    bad_key_error,
    blocked_reply,
    count_tokens_reply,
    gateway_envelope,
    generate_reply,
    google_error,
    image_part,
    invalid_argument,
    missing_key_error,
    not_found,
    prepayment_depleted_error,
    quota_error,
    server_error,
    stream_chunks,
    unavailable_error,
    usage_metadata,
)
from .requestlog import RequestLog
from .tiers import SERVED_TIER_HEADER, capacity_error, decide_tier, report_served

JSON_TYPE = "application/json; charset=UTF-8"
ARRIVED = "arrived"  # the outcome of a delayed batch call's first log line, written as it arrives
SSE_TYPE = "text/event-stream"
_ROUTE = re.compile(r"^/(?:v1beta|v1|v1alpha)/(?:models|tunedModels)/([^/:]+):([A-Za-z]+)$")
_GENERATE = ("generateContent", "streamGenerateContent")
BATCH_CREATE = "batchGenerateContent"
BATCH_PREFIXES = tuple(f"/{v}/{r}" for v in ("v1beta", "v1", "v1alpha") for r in ("files", "batches")) + (
    "/upload/", "/download/")
_THOUGHT_SIGNATURE = base64.b64encode(b"simulated-thought-signature").decode()
_ERROR_FAULTS = {  # faults answered with a Google error body: (HTTP status, body)
    "server_error": (500, server_error),
    "unavailable": (503, unavailable_error),
    "billing_402": (402, lambda: prepayment_depleted_error(402)),
    "prepaid_429": (429, lambda: prepayment_depleted_error(429)),
}
_CONTENTLESS = ("blocked", "safety", "no_image", "refusal")


@dataclass(slots=True)
class SimReply:
    """What to send back, and how: reply normally, cut the body at `cut_at`, or never answer."""

    status: int | None
    outcome: str
    body: bytes = b""
    content_type: str = JSON_TYPE
    events: tuple[bytes, ...] = ()  # a stream's SSE events, sent one by one (then body is empty)
    delay_s: float = 0.0
    action: Literal["reply", "drop", "hang"] = "reply"
    cut_at: int = 0  # drop: bytes of the payload sent before the connection closes
    hang_s: float | None = None  # hang: seconds before the connection closes (None: never)
    build: Callable[[SimReply], None] | None = None  # fills in body/events: see complete
    draws: bool = False  # building the body draws images: worth a worker thread
    headers: dict[str, str] = field(default_factory=dict)  # sent besides Content-Type
    file: Path | None = None  # the body is this file's bytes, streamed (a batch's results)
    pause: tuple[int, float] | None = None  # a file sent: (lines, seconds) of a pause after its first lines

    def complete(self) -> None:
        """Build the body if it is still to be built; may run on a worker thread, once per reply."""
        build, self.build = self.build, None
        if build is not None:
            build(self)

    def payload(self) -> bytes:
        """The whole body as bytes, events joined."""
        return b"".join(self.events) if self.events else self.body


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json_reply(status: int, outcome: str, obj: Any) -> SimReply:
    return SimReply(status, outcome, _dumps(obj))


def response_id(digest: bytes, n: int) -> str:
    """The id of the reply to the n-th request (20 URL-safe characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(digest + n.to_bytes(8, "big")).digest()[:15]).decode()


def api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The API key from x-goog-api-key, Authorization: Bearer, or ?key= (in that order)."""
    key = headers.get("x-goog-api-key")
    if key:
        return key
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return query.get("key") or None


class SimulatorCore:
    """The Gemini-compatible answers of one simulator, with its faults, limits and request log."""

    def __init__(
        self,
        config: FaultConfig,
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        request_log: RequestLog | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.clock = clock
        self.log = request_log or RequestLog(None)
        self.keyed_limits = KeyedLimits(config)
        self.limits = self.keyed_limits.shared  # the book of requests counted for no key of their own
        self.content = ContentMaker(seed, config.image_mime, tokens=config.tokens)
        self.arrivals = 0
        self._bad_keys = frozenset(config.bad_keys)
        self._delayed = config.batch.delays != BatchDelays()
        from .batchroute import BatchRoute  # both routes build on this module
        from .chatroute import ChatRoute

        self.chat = ChatRoute(self)
        self.batches = BatchRoute(self)
        self.file_image = file_image_reader(self.batches.files, clock)

    def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> SimReply:
        """Answer one request, body built; `headers` must be a case-insensitive mapping."""
        reply = self.receive(method, path, query, headers, body)
        reply.complete()
        return reply

    def receive(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> SimReply:
        """Decide and log the answer to one request; its body may still need `complete()`."""
        now = self.clock()
        route = _ROUTE.match(path)
        model = route.group(1) if route else None
        rpc = route.group(2) if route else None
        if route is None:
            model, rpc, reply = self._unrouted(method, path, query, headers, body, now)
        elif rpc == BATCH_CREATE and model is not None:
            rpc, reply = "batches.create", self.batches.create(model, method, query, headers, body, now)
        elif method != "POST":
            reply = _json_reply(404, "not_found", not_found(path))
        else:
            reply = self._serve(model, route.group(2), query, headers, body, now)
        self.log.write(now, model, hashlib.sha256(body).hexdigest(), reply.outcome, reply.status, rpc,
                       key=self.keyed_limits.number(api_key(headers, query)))
        delay = self.config.batch.delays.of(rpc)
        if delay is not None:
            reply.delay_s += delay.after_s
        return reply

    def arrive(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> float:
        """Log a call to a delayed batch route as it arrives (outcome `arrived`); the seconds to wait
        before `receive`. Other calls are not logged here and wait nothing."""
        if not self._delayed:
            return 0.0
        model, rpc = self._batch_rpc(method, path, query)
        delay = self.config.batch.delays.of(rpc)
        if delay is None:
            return 0.0
        self.log.write(self.clock(), model, hashlib.sha256(body).hexdigest(), ARRIVED, None, rpc)
        return delay.before_s

    def _batch_rpc(self, method: str, path: str, query: Mapping[str, str]) -> tuple[str | None, str | None]:
        route = _ROUTE.match(path)
        if route is not None:
            return route.group(1), "batches.create" if route.group(2) == BATCH_CREATE else None
        if path.startswith(BATCH_PREFIXES):
            return None, self.batches.rpc_of(method, path, query)
        return None, None

    def _unrouted(self, method, path, query, headers, body, now) -> tuple[str | None, str | None, SimReply]:
        if path.startswith(BATCH_PREFIXES):
            return self.batches.receive(method, path, query, headers, body, now)
        return self.chat.receive(method, path, query, headers, body, now)

    def close(self) -> None:
        """Close the request log and remove the stored files."""
        self.batches.close()
        self.log.close()

    def key_refused(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """'bad_key' for a key listed in bad_keys, 'no_key' for none where one is required, else None."""
        key = api_key(headers, query)
        if key is not None and key in self._bad_keys:
            return "bad_key"
        if key is None and self.config.require_key:
            return "no_key"
        return None

    def admit(self, model: str, request: GenerateRequest, plan: ModelPlan,
              now: float, key: str | None = None) -> tuple[int, Decision, Refusal | None]:
        """Number a generate request in arrival order, draw its fault decision and apply the counted limits
        (those of the key it was sent with, when counted per key)."""
        n = self.arrivals
        self.arrivals += 1
        decision = decide(self.config, self.seed, n)
        prompt_tokens = lambda: request.prompt_text_tokens + _image_in(model, request)  # noqa: E731
        return n, decision, self.keyed_limits.book(key).check(now, 1 if plan.wants_image else 0, prompt_tokens)

    def batch_answer(self, model: str, request: GenerateRequest, plan: ModelPlan, fault: str | None,
                     thought_images: int, n: int) -> dict:
        """The reply object to one batch line: plain, or blocked, safety, refusal, no_image or max_tokens."""
        content = None if fault in _CONTENTLESS else self.content.make(model, request, plan, thought_images)
        if fault == "max_tokens" and content is not None:
            content = cut_short(content)
        return self._reply_object(model, request, plan, fault, response_id(request.digest, n), content)

    def _serve(self, model, rpc, query, headers, body, now) -> SimReply:
        refused = self.key_refused(headers, query)
        if refused == "bad_key":
            return _json_reply(400, "bad_key", bad_key_error())
        if refused == "no_key":
            return _json_reply(403, "no_key", missing_key_error())
        if len(body) > self.config.max_request_bytes:
            message = f"Request payload size exceeds the limit: {self.config.max_request_bytes} bytes."
            return _json_reply(400, "too_large", invalid_argument(message))
        try:
            parsed = load_body(body)
            if rpc == "countTokens":
                return self._count_tokens(model, parsed)
            if rpc not in _GENERATE:
                return _json_reply(404, "not_found", not_found(f"models/{model}:{rpc}"))
            request = read_generate_request(parsed, self.file_image)
            plan = plan_for(model, request)
        except (InvalidRequest, UnsupportedImageConfig, SchemaError) as exc:
            return _json_reply(400, "invalid", invalid_argument(str(exc)))
        except FileApiError as exc:
            return _json_reply(exc.code, exc.status.lower(), google_error(exc.code, exc.status, exc.message))
        streaming = rpc == "streamGenerateContent"
        key = api_key(headers, query)
        return self._generate(model, request, plan, streaming, query.get("alt") == "sse", now, key)

    def _count_tokens(self, model: str, body: dict) -> SimReply:
        request = read_count_tokens_request(body, self.file_image)
        reply = count_tokens_reply(request.prompt_text_tokens, _image_in(model, request))
        return _json_reply(200, "ok", reply)

    def _generate(self, model, request, plan: ModelPlan, streaming: bool, sse: bool, now: float,
                  key: str | None = None) -> SimReply:
        n, decision, refusal = self.admit(model, request, plan, now, key)
        if refusal is not None:
            outcome = "quota" if refusal.per_day else "rate_limited"
            body = quota_error(refusal.quota_id, model, refusal.retry_after_s, refusal.per_day)
            reply = _json_reply(429, outcome, body)
            if refusal.per_day and self.keyed_limits.book(key).short_day:  # a short day's reset, which midnight won't predict
                reply.headers["Retry-After"] = str(math.ceil(refusal.retry_after_s))
            return reply
        tier = decide_tier(self.config, self.seed, n, request.service_tier)
        if tier.shed_status is not None:
            return _json_reply(tier.shed_status, "flex_shed", capacity_error(tier.shed_status))
        request.served_tier = tier.served
        reply = self._faulted(model, request, plan, decision, n, streaming, sse)
        reply.delay_s = decision.delay_s + tier.delay_s if reply.action != "hang" else 0.0
        if tier.served is not None:
            reply.headers[SERVED_TIER_HEADER] = tier.served
        return reply

    def _faulted(self, model, request, plan, decision: Decision, n, streaming, sse) -> SimReply:
        fault = decision.fault
        if fault == "no_image" and not plan.wants_image:
            fault = None  # documented: NO_IMAGE only hits requests that ask for an image
        if fault in _ERROR_FAULTS:
            status, error_body = _ERROR_FAULTS[fault]
            return _json_reply(status, fault, error_body())
        if fault == "hang":
            assert self.config.hang is not None  # drawn only when the config schedules hangs
            return SimReply(None, "hang", action="hang", hang_s=self.config.hang.seconds)
        reply_id = response_id(request.digest, n)
        if fault == "envelope200":
            return _json_reply(200, "envelope200", gateway_envelope(reply_id))
        content = None if fault in _CONTENTLESS else self.content.make(model, request, plan, decision.thought_images)
        if fault == "max_tokens" and content is not None:  # max_tokens is not contentless
            content = cut_short(content)
        return self._content_reply(model, request, plan, fault, reply_id, content, streaming, sse)

    def _content_reply(self, model, request, plan, fault, response_id, content, streaming, sse) -> SimReply:
        """A 200 whose body (drawn images, JSON, then a drop or malformed fault) is built by complete()."""
        outcome = fault if fault in (*_CONTENTLESS, "drop", "malformed") else None
        outcome = outcome or ("max_tokens" if content.truncated else "ok")

        def build(reply: SimReply) -> None:
            obj = self._reply_object(model, request, plan, fault, response_id, content)
            report_served(obj, request.served_tier)
            self._encode(reply, obj, streaming, sse)
            if fault == "drop":
                reply.action = "drop"
                reply.cut_at = drop_point(reply)
            elif fault == "malformed":
                break_json(reply)

        draws = content is not None and (content.image is not None or bool(content.thought_images))
        return SimReply(200, outcome, build=build, draws=draws)

    def _reply_object(self, model, request, plan, fault, response_id, content: Content | None) -> dict:
        stage = "PREVIEW" if model.endswith("-preview") else None
        if content is None:  # blocked, safety, refusal, no_image
            usage = usage_metadata(request.prompt_text_tokens, _image_in(model, request), 0, 0, 0)
            if fault == "blocked":
                return blocked_reply(usage, model, response_id)
            reason = "NO_IMAGE" if fault == "no_image" else "SAFETY"  # the native route refuses as safety
            return generate_reply([], reason, usage, model, response_id, stage)
        parts = self._parts(content, plan.gemini3_image)
        usage = usage_metadata(
            content.prompt_text_tokens, content.prompt_image_tokens,
            content.out_text_tokens, content.out_image_tokens, content.thoughts_tokens,
        )
        finish = "MAX_TOKENS" if content.truncated else "STOP"
        return generate_reply(parts, finish, usage, model, response_id, stage)

    def _parts(self, content: Content, signed: bool) -> list[dict]:
        mime, draw = self.config.image_mime, self.content.draw
        parts: list[dict] = [image_part(draw(spec), mime, thought=True) for spec in content.thought_images]
        if content.text is not None:
            parts.append({"text": content.text})
        if content.image is not None:
            parts.append(image_part(draw(content.image), mime, signature=_THOUGHT_SIGNATURE if signed else ""))
        return parts

    @staticmethod
    def _encode(reply: SimReply, obj: dict, streaming: bool, sse: bool) -> None:
        if not streaming:
            reply.body = _dumps(obj)
            return
        chunks = stream_chunks(obj)
        if not sse:
            reply.body = _dumps(chunks)
            return
        reply.content_type = SSE_TYPE
        reply.events = tuple(b"data: " + _dumps(chunk) + b"\r\n\r\n" for chunk in chunks)


def _image_in(model: str, request: GenerateRequest) -> int:
    return sum(input_image_tokens(model, i.width, i.height) for i in request.images)


def cut_short(content: Content) -> Content:
    """The max_tokens fault: half the text, no image."""
    text = content.text or ""
    half = text[: max(1, len(text) // 2)] if text else None
    content.text, content.image, content.thought_images = half, None, []
    content.out_text_tokens = -(-len(half) // 4) if half else 0
    content.out_image_tokens, content.truncated = 0, True
    return content


def drop_point(reply: SimReply) -> int:
    """The drop fault: bytes sent before the connection closes (a stream's first event, else half)."""
    return len(reply.events[0]) if len(reply.events) > 1 else len(reply.payload()) // 2


def break_json(reply: SimReply) -> None:
    """The malformed fault: a complete HTTP reply whose JSON stops half way."""
    reply.outcome = "malformed"
    if reply.events:
        last = reply.events[-1]
        broken = last[: max(7, len(last) // 2)] + b"\r\n\r\n"
        reply.events = reply.events[:-1] + (broken,)
    else:
        reply.body = reply.body[: len(reply.body) // 2]
