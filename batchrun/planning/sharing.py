"""Request ids, and which expanded rows make a request an earlier row already makes.

A request id is the first 32 hex digits of the sha256 of the canonical JSON of
`{"body": WIRE BODY, "model": ..., "provider": kind, "variant": n}` (variant only with
`request.variants` > 1; `"version": n` too for a redone row's version n >= 2, see
`batchrun.planning.versioning`), where the wire body is what the provider kind sends for the rendered request
(`ProviderEntry.wire_body`), input images in it as their content hash. Same request, same id, in any
run, on any machine; and, the Gemini body being the one 0.2 hashed, the same ids as 0.2's.

Rows whose ids are equal share one paid request (`batchrun.planning.identity` gives each its own row id).
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


def request_id(provider_kind: str, model: str, body: dict[str, Any], variant: int | None = None,
               version: int | None = None) -> str:
    """A stable id of what would be sent (`body`: the wire body, images in it as their content hash)."""
    identity: dict[str, Any] = {"provider": provider_kind, "model": model, "body": body}
    if variant is not None:
        identity["variant"] = variant
    if version is not None and version > 1:
        identity["version"] = version
    return hashlib.sha256(canonical_json(identity)).hexdigest()[: 2 * ID_BYTES]


class RequestIds:
    """Gives each rendered request its id (as bytes) and counts the ones seen before."""

    def __init__(self, provider_kind: str) -> None:
        self.kind = provider_kind
        self._kind_json = orjson.dumps(provider_kind)
        self._tails: dict[tuple[str, int | None], bytes] = {}
        # A dict of bytes keys is not tracked by the garbage collector; a set is walked by every full collection.
        self._seen: dict[bytes, None] = {}
        self.duplicates = 0  # requests an earlier one makes too

    def add(self, body: dict[str, Any], model: str, variant: int | None) -> bytes:
        """The id of the request whose wire body is `body` (`ID_BYTES` bytes), counted as a duplicate
        when seen before."""
        key = self.digest(body, model, variant)[:ID_BYTES]
        if key in self._seen:
            self.duplicates += 1
        else:
            self._seen[key] = None
        return key

    def forget(self) -> None:
        """Drop the ids seen so far (memory), once every row is expanded."""
        self._seen = {}

    def digest(self, body: dict[str, Any], model: str, variant: int | None) -> bytes:
        """The sha256 whose first bytes, in hex, are `request_id(kind, model, body, variant)`."""
        tail = self._tails.get((model, variant))
        if tail is None:  # the canonical JSON's keys sorted: body, model, provider, variant
            tail = b',"model":' + orjson.dumps(model) + b',"provider":' + self._kind_json
            tail += (b',"variant":' + orjson.dumps(variant) if variant is not None else b"") + b"}"
            self._tails[(model, variant)] = tail
        try:
            payload = b'{"body":' + orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + tail
        except TypeError:
            return bytes.fromhex(request_id(self.kind, model, body, variant))
        return hashlib.sha256(payload).digest()
