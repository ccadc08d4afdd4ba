"""Request ids, and which expanded rows make a request an earlier row already makes.

A request id is the first 32 hex digits of the sha256 of the canonical JSON of
`{"model": ..., "provider": kind, "request": RenderedRequest, "variant": n}` (variant only with
`request.variants` > 1); input images are in the request as their content hash. Same request, same id,
in any run, on any machine. Since 0.3 the id hashes the provider-neutral request (0.2 hashed the Gemini
body), so every request id differs from 0.2's.

Rows whose ids are equal share one paid request (`batchrun.identity` gives each its own row id).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

ID_BYTES = 16  # the request id is these many bytes of the digest, in hex


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same value always gives the same bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value orjson refuses (a non-string key, a huge int): same rule, slower
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_id(provider_kind: str, model: str, request: dict[str, Any], variant: int | None = None) -> str:
    """A stable id of what would be sent; images are in the request as their content hash."""
    identity: dict[str, Any] = {"provider": provider_kind, "model": model, "request": request}
    if variant is not None:
        identity["variant"] = variant
    return hashlib.sha256(canonical_json(identity)).hexdigest()[: 2 * ID_BYTES]


class RequestIds:
    """Gives each rendered request its id (as bytes) and counts the ones seen before."""

    def __init__(self, provider_kind: str) -> None:
        self.kind = provider_kind
        self._kind_json = orjson.dumps(provider_kind)
        self._heads: dict[str, bytes] = {}
        # A dict of bytes keys is not tracked by the garbage collector; a set is walked by every full collection.
        self._seen: dict[bytes, None] = {}
        self.duplicates = 0  # requests an earlier one makes too

    def add(self, request: dict[str, Any], model: str, variant: int | None) -> bytes:
        """The id of this request (`ID_BYTES` bytes), counted as a duplicate when seen before."""
        key = self.digest(request, model, variant)[:ID_BYTES]
        if key in self._seen:
            self.duplicates += 1
        else:
            self._seen[key] = None
        return key

    def forget(self) -> None:
        """Drop the ids seen so far (memory), once every row is expanded."""
        self._seen = {}

    def digest(self, request: dict[str, Any], model: str, variant: int | None) -> bytes:
        """The sha256 whose first bytes, in hex, are `request_id(kind, model, request, variant)`."""
        head = self._heads.get(model)
        if head is None:  # the canonical JSON's keys sorted: model, provider, request, variant
            head = b'{"model":' + orjson.dumps(model) + b',"provider":' + self._kind_json + b',"request":'
            self._heads[model] = head
        tail = b"}" if variant is None else b',"variant":' + orjson.dumps(variant) + b"}"
        try:
            payload = head + orjson.dumps(request, option=orjson.OPT_SORT_KEYS) + tail
        except TypeError:
            return bytes.fromhex(request_id(self.kind, model, request, variant))
        return hashlib.sha256(payload).digest()
