"""The OpenAI-compatible chat route: `POST /v1/chat/completions` (and Google's `/v1beta/openai/...`).

A chat body is read into the native route's `GenerateRequest` (`chatinbound.py`), planned, numbered
and decided by the same core (`SimulatorCore.admit`: one arrival count, one limit book, one seeded
fault decision for both routes), made by the same content maker, and rendered in the chat shape
(`chatreplies.py`). Also serves `GET /v1/sim/images/<id>.<ext>`, the images of `url`-shaped replies.

Faults in the chat shape: server_error 500, unavailable 503, billing_402 and prepaid_429 429
insufficient_quota (codes credit_balance_exhausted and insufficient_quota, reference §4.3),
blocked and safety finish_reason content_filter with no content, refusal a `message.refusal`,
no_image text without the image, max_tokens finish_reason length; hang, drop, malformed and
envelope200 as on the native route. Every reply carries the `x-ratelimit-*-requests` headers when a
per-minute request limit is set (unless `ratelimit_headers: false`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from batchrun.cost.modeltable import input_image_tokens

from ..errors import InvalidRequest, SchemaError, UnsupportedImageConfig
from .chatinbound import IMAGE_SHAPES, BadParam, ChatRequest, read_chat_request
from .chatreplies import (
    REFUSAL_TEXT,
    ChatAnswer,
    bad_key,
    completion,
    completion_chunks,
    image_url_unavailable,
    insufficient_quota,
    invalid_param,
    not_found_error,
    overloaded_error,
    rate_limit_error,
    ratelimit_headers,
    retry_after_headers,
    server_error,
)
from .content import Content, ModelPlan, plan_for
from .core import SSE_TYPE, SimReply, api_key, break_json, cut_short, drop_point, response_id
from .faults import Decision, image_url_fails
from .imagestore import IMAGE_PATH, ImageStore, image_path
from .inbound import load_body
from .limits import (
    IMAGES_PER_MINUTE_QUOTA,
    INPUT_TOKENS_PER_MINUTE_QUOTA,
    REQUESTS_PER_MINUTE_QUOTA,
    LimitBook,
    Refusal,
)
from .replies import gateway_envelope, not_found

if TYPE_CHECKING:
    from .core import SimulatorCore

CHAT_PATHS = frozenset({"/v1/chat/completions", "/v1beta/openai/chat/completions"})
CHAT_RPC = "chat.completions"
IMAGE_RPC = "sim.image"
CHAT_JSON = "application/json"
_DONE = b"data: [DONE]\n\n"
_ERRORS: dict[str, tuple[int, Callable[[], dict]]] = {
    "server_error": (500, server_error),
    "unavailable": (503, overloaded_error),
    "billing_402": (429, lambda: insufficient_quota("credit_balance_exhausted")),
    "prepaid_429": (429, insufficient_quota),
}
_FILTERED = ("blocked", "safety")
_LIMIT_KINDS = {  # a per-minute quota id -> the LimitBook window and the OpenAI error type
    REQUESTS_PER_MINUTE_QUOTA: "requests",
    IMAGES_PER_MINUTE_QUOTA: "images",
    INPUT_TOKENS_PER_MINUTE_QUOTA: "tokens",
}
_TEXT_OUTCOMES = ("blocked", "safety", "refusal", "no_image", "drop", "malformed")


def _reply(status: int, outcome: str, obj: Any, headers: dict[str, str] | None = None) -> SimReply:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return SimReply(status, outcome, body, content_type=CHAT_JSON, headers=headers or {})


class ChatRoute:
    """The chat completions of one SimulatorCore, and the images its `url` replies link to."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core
        self.images = ImageStore()
        self.image_gets = 0

    def receive(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes,
                now: float) -> tuple[str | None, str | None, SimReply]:
        """(model, rpc, reply) for a path the native route does not serve; 404 for one nobody serves."""
        if method == "POST" and path in CHAT_PATHS:
            model, reply = self._serve(query, headers, body, now)
            return model, CHAT_RPC, reply
        if method == "GET" and IMAGE_PATH.match(path):
            return None, IMAGE_RPC, self._image(path)
        return None, None, SimReply(404, "not_found", _dumps(not_found(path)))

    def _serve(self, query, headers, body: bytes, now: float) -> tuple[str | None, SimReply]:
        refused = self.core.key_refused(headers, query)
        if refused is not None:
            return None, _reply(401, refused, bad_key())
        try:
            chat = read_chat_request(load_body(body))
        except BadParam as exc:
            return None, _reply(400, "invalid", invalid_param(exc.param, str(exc)))
        except InvalidRequest as exc:
            return None, _reply(400, "invalid", invalid_param(None, str(exc)))
        try:
            plan = plan_for(chat.model, chat.generate)
        except UnsupportedImageConfig as exc:
            return chat.model, _reply(400, "invalid", invalid_param("image_config", str(exc)))
        except SchemaError as exc:
            return chat.model, _reply(400, "invalid", invalid_param("response_format", str(exc)))
        host = headers.get("host") or "127.0.0.1"
        return chat.model, self._generate(chat, plan, host, now, api_key(headers, query))

    def _generate(self, chat: ChatRequest, plan: ModelPlan, host: str, now: float, key: str | None) -> SimReply:
        n, decision, refusal = self.core.admit(chat.model, chat.generate, plan, now, key)
        book = self.core.keyed_limits.book(key)
        limit_headers = self._limit_headers(now, book)
        if refusal is not None:
            return self._refused(chat.model, refusal, limit_headers, book)
        reply = self._faulted(chat, plan, decision, n, host, int(now))
        reply.headers.update(limit_headers)
        reply.delay_s = decision.delay_s if reply.action != "hang" else 0.0
        return reply

    def _limit_headers(self, now: float, book: LimitBook) -> dict[str, str]:
        if not self.core.config.ratelimit_headers:
            return {}
        headers: dict[str, str] = {}
        for kind, window in (("requests", book.requests), ("tokens", book.tokens)):
            if window is not None:
                headers.update(ratelimit_headers(kind, window.limit, *window.room(now)))
        return headers

    def _refused(self, model: str, refusal: Refusal, limit_headers: dict[str, str], book: LimitBook) -> SimReply:
        if refusal.per_day:
            return _reply(429, "quota", insufficient_quota(), limit_headers)
        kind = _LIMIT_KINDS[refusal.quota_id]
        window = getattr(book, kind)
        body = rate_limit_error(model, kind, window.limit, refusal.retry_after_s)
        return _reply(429, "rate_limited", body, {**limit_headers, **retry_after_headers(refusal.retry_after_s)})

    def _faulted(self, chat: ChatRequest, plan: ModelPlan, decision: Decision, n: int, host: str,
                 created: int) -> SimReply:
        fault = decision.fault
        if fault == "no_image" and not plan.wants_image:
            fault = None  # as on the native route: NO_IMAGE only hits requests that ask for an image
        if fault in _ERRORS:
            status, error_body = _ERRORS[fault]
            return _reply(status, fault, error_body())
        if fault == "hang":
            assert self.core.config.hang is not None  # drawn only when the config schedules hangs
            return SimReply(None, "hang", action="hang", hang_s=self.core.config.hang.seconds)
        reply_id = response_id(chat.generate.digest, n)
        if fault == "envelope200":
            return _reply(200, "envelope200", gateway_envelope(reply_id))
        content = self._content(chat, plan, fault)
        outcome = fault if fault in _TEXT_OUTCOMES else None
        outcome = outcome or ("max_tokens" if content is not None and content.truncated else "ok")
        shape = self._shape(chat, n)

        def build(reply: SimReply) -> None:
            answer = self._answer(chat, content, fault, shape, host, reply_id)
            self._encode(reply, chat, answer, shape, "chatcmpl-" + reply_id, created)
            if fault == "drop":
                reply.action, reply.cut_at = "drop", drop_point(reply)
            elif fault == "malformed":
                if reply.events:
                    reply.events = reply.events[:-1]  # the stream ends in the broken chunk, with no [DONE]
                break_json(reply)

        draws = content is not None and content.image is not None
        return SimReply(200, outcome, content_type=CHAT_JSON, build=build, draws=draws)

    def _content(self, chat: ChatRequest, plan: ModelPlan, fault: str | None) -> Content | None:
        if fault in _FILTERED or fault == "refusal":
            return None
        content = self.core.content.make(chat.model, chat.generate, plan, 0)  # chat replies show no interim images
        if fault == "max_tokens":
            content = cut_short(content)
        if fault == "no_image":
            content.image, content.out_image_tokens = None, 0
        return content

    def _shape(self, chat: ChatRequest, n: int) -> str:
        shape = chat.image_shape or self.core.config.chat_image_shape
        return IMAGE_SHAPES[n % 3] if shape == "rotate" else shape

    def _answer(self, chat: ChatRequest, content: Content | None, fault: str | None, shape: str, host: str,
                reply_id: str) -> ChatAnswer:
        prompt_image = sum(input_image_tokens(chat.model, i.width, i.height) for i in chat.generate.images)
        if content is None:
            refusal = REFUSAL_TEXT if fault == "refusal" else None
            finish = "stop" if fault == "refusal" else "content_filter"
            return ChatAnswer(None, refusal=refusal, finish_reason=finish,
                              prompt_text=chat.generate.prompt_text_tokens, prompt_image=prompt_image)
        urls = [self._image_url(content, shape, host, reply_id)] if content.image is not None else []
        return ChatAnswer(
            content.text, urls, None, "length" if content.truncated else "stop",
            content.prompt_text_tokens, content.prompt_image_tokens, content.out_text_tokens,
            content.out_image_tokens, content.thoughts_tokens,
        )

    def _image_url(self, content: Content, shape: str, host: str, reply_id: str) -> str:
        assert content.image is not None
        mime = self.core.config.image_mime
        data = self.core.content.draw(content.image)
        if shape != "url":
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        self.images.put(reply_id, data, mime)
        return f"http://{host}{image_path(reply_id, mime)}"

    @staticmethod
    def _encode(reply: SimReply, chat: ChatRequest, answer: ChatAnswer, shape: str, completion_id: str,
                created: int) -> None:
        if not chat.stream:
            reply.body = _dumps(completion(answer, shape, completion_id, created, chat.model))
            return
        chunks = completion_chunks(answer, shape, completion_id, created, chat.model, chat.include_usage)
        reply.content_type = SSE_TYPE
        reply.events = tuple(b"data: " + _dumps(chunk) + b"\n\n" for chunk in chunks) + (_DONE,)

    def _image(self, path: str) -> SimReply:
        n = self.image_gets
        self.image_gets += 1
        if image_url_fails(self.core.config, self.core.seed, n):
            return _reply(503, "image_url_fault", image_url_unavailable())
        match = IMAGE_PATH.match(path)
        stored = self.images.get(match.group(1)) if match else None
        if stored is None:
            return _reply(404, "not_found", not_found_error(path))
        data, mime = stored
        return SimReply(200, "ok", data, content_type=mime)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
