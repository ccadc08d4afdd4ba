"""What both adapters do the same way on the wire: read a checked input image, parse a body, name a
malformed reply.

An input image is read at send time and must still be the bytes the plan hashed: a file changed or gone
since the plan raises InputImageChanged (the request is recorded invalid, never sent with other bytes).
A photo the plan fetched by URL or prepared (`request.image_prep`) is read from the output folder's
input cache, found by its sha256; a local photo not in the cache is read from the spec's folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from ..errors import InputImageChanged
from ..outcomes import ErrorKind
from ..records import IMAGE_PLACEHOLDER_PREFIX, ImageRef, Outcome, ProviderReply, RequestRecord, cached_image_name, is_url, shown_source


def image_hex(sha256: str) -> str:
    """The hex digest of an image reference ("sha256:<hex>" or a bare digest)."""
    return sha256.removeprefix(IMAGE_PLACEHOLDER_PREFIX)


def read_input_image(spec_dir: Path, ref: ImageRef, cache: Path | None = None) -> bytes:
    """An input image's bytes (from the input cache when it is there), checked against the plan's hash."""
    digest = image_hex(ref.sha256).lower()
    cached = cache / cached_image_name(digest, ref.mime) if cache is not None else None
    shown = shown_source(ref.path)
    if cached is not None and cached.is_file():
        source = cached
    elif is_url(ref.path):
        raise InputImageChanged(f"input image {shown} is not in the input cache; run `batchrun plan` again")
    else:
        source = spec_dir / ref.path
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InputImageChanged(f"input image {shown} cannot be read: {exc.strerror}") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise InputImageChanged(f"input image {shown} changed since the plan; run `batchrun plan` again")
    return data


def loads(content: bytes) -> Any:
    """A reply body as JSON, or None when it is not JSON."""
    try:
        return json.loads(content)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None


def malformed(status: int, message: str) -> ProviderReply:
    """A reply whose body can't be read: retried."""
    return ProviderReply(Outcome.RETRY, http_status=status, error_kind=ErrorKind.MALFORMED, error_message=message)


async def encoded(encode: Callable[[RequestRecord], bytes], record: RequestRecord) -> bytes | ProviderReply:
    """The bytes to send (input images read and base64-encoded off the event loop), or, when an input
    image changed since the plan, the invalid reply that records it."""
    try:
        if record.images:
            return await anyio.to_thread.run_sync(encode, record)
        return encode(record)
    except InputImageChanged as exc:
        return ProviderReply(Outcome.INVALID, error_kind=ErrorKind.INPUT_CHANGED, error_message=str(exc))
