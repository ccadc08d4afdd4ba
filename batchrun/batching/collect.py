"""A batch's results file read line by line into (request_id, ProviderReply) pairs, and a summary.

In:  the lines of a results file (`{"key": .., "response": {GenerateContentResponse}}` or
     `{"key": .., "error": {code, status, message}}`), and the chunk's request ids with whether each
     asked for an image.
Out: a `CollectedReply` per line whose key is one of the chunk's requests, seen for the first time;
     `summary()` then counts the lines and lists the keys missing, unknown and repeated.

Invariants: one line in memory at a time, its image decoded once, when its reply is made; a reply is
only ever paired with the request id its own key names; an unknown key, a repeated key (the first
line wins) and a line without a key are errors in the summary, never replies; a key missing from the
file leaves its request pending. A `response` is read by `providers.gemini.reply_from_response` and an
`error` classified by `providers.classify`, exactly as in a synchronous run. The shape matches what
the pool hands the sink: a RequestRecord's id and its ProviderReply (see running/pool.py `_record`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..providers.classify import classify_error, envelope_status
from ..providers.gemini import reply_from_response
from ..records import ProviderReply


class CollectedReply(NamedTuple):
    request_id: str
    reply: ProviderReply


@dataclass(slots=True)
class CollectSummary:
    """What one results file held, against what its chunk asked for."""

    lines: int = 0
    replies: int = 0
    missing: list[str] = field(default_factory=list)  # back to pending
    unknown: list[str] = field(default_factory=list)  # keys of no request of the chunk
    repeated: list[str] = field(default_factory=list)  # keys seen before (the first line was kept)
    unreadable: int = 0  # lines that are not a JSON object with a key

    @property
    def errors(self) -> int:
        return len(self.unknown) + len(self.repeated) + self.unreadable


class ResultsCollector:
    """Pairs the lines of one results file with a chunk's requests, 1:1."""

    def __init__(self, wants_image: Mapping[str, bool]) -> None:
        self._wants_image = wants_image
        self._seen: set[str] = set()
        self._summary = CollectSummary()

    async def replies(self, lines: AsyncIterator[str]) -> AsyncIterator[CollectedReply]:
        """The reply of each line that names a request of the chunk for the first time."""
        async for line in lines:
            collected = self.read_line(line)
            if collected is not None:
                yield collected

    def read_line(self, line: str | bytes) -> CollectedReply | None:
        """One line: its reply, or None (and the summary says why)."""
        self._summary.lines += 1
        payload, key = _parse(line)
        if payload is None or key is None:
            self._summary.unreadable += 1
            return None
        if key not in self._wants_image:
            self._summary.unknown.append(key)
            return None
        if key in self._seen:
            self._summary.repeated.append(key)
            return None
        self._seen.add(key)
        self._summary.replies += 1
        return CollectedReply(key, reply_of_line(payload, self._wants_image[key]))

    def summary(self) -> CollectSummary:
        """The counts so far, with every request not yet seen listed as missing."""
        self._summary.missing = [rid for rid in self._wants_image if rid not in self._seen]
        return self._summary


def _parse(line: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        payload = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    key = payload.get("key")
    if key is None and isinstance(payload.get("metadata"), dict):
        key = payload["metadata"].get("key")  # the inline results' shape
    return payload, key if isinstance(key, str) else None


def reply_of_line(payload: Mapping[str, Any], wants_image: bool) -> ProviderReply:
    """The reply a results line stands for, as a synchronous exchange would have given it."""
    response = payload.get("response")
    if isinstance(response, dict) and not _error_of(payload):
        return reply_from_response(response, 200, wants_image)
    error = _error_of(payload) or {"message": "results line has neither a response nor an error"}
    reply = classify_error(200, {"error": error})
    reply.http_status = envelope_status(error)
    return reply


def _error_of(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    for name in ("error", "status"):
        value = payload.get(name)
        if isinstance(value, dict) and value.get("code") not in (None, 0, "0"):
            return value
        if isinstance(value, dict) and name == "error":
            return value
    return None
