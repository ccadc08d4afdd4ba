"""Input images checked at plan time: the file exists, Pillow can open it as PNG, JPEG or WebP, and it
can be sent: within the Files API's size, and, for a provider without a Files API (`inline_limit`
given), inline within the request limit. Each distinct path is read once per plan.

An entry that is an `http(s)` URL is looked up among the photos `urlfetch` fetched into the input cache;
its ImageRef keeps the URL as `path` (the send path finds the bytes in the cache by sha256). With
`request.image_prep`, every photo is prepared (`imageprep`) into the cache and its ImageRef describes
the prepared bytes, which are what is hashed, estimated and sent.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from batchrun.errors import ImageProblem
from batchrun.records import ImageRef, shown_source

if TYPE_CHECKING:
    from batchrun.planning.inputcache import CachedUrl, InputCache

MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
INLINE_REQUEST_LIMIT = 100 * 1024 * 1024  # bytes of one request body; base64 adds a third
MAX_IMAGE_BYTES = 2 * 1024 * 1024 * 1024  # one Files API file (reference §1.2): a larger image can't be sent


class ImageInspector:
    """Inspects input images relative to the spec's folder, caching by path."""

    def __init__(self, folder: Path, *, fetched: Mapping[str, CachedUrl | ImageProblem] | None = None,
                 cache: InputCache | None = None, prep: Any = None, inline_limit: int | None = None) -> None:
        self.folder = folder
        self.fetched = fetched or {}  # URL -> its cached photo, or why it could not be fetched
        self.cache, self.prep = cache, prep  # prep (request.image_prep) needs the cache
        self.inline_limit = inline_limit  # bytes of a request body, for a provider with no Files API
        self._seen: dict[str, ImageRef | ImageProblem] = {}

    def inspect(self, path: str) -> ImageRef:
        found = self._seen.get(path)
        if found is None:
            try:
                found = self._look(path)
            except ImageProblem as problem:
                found = problem
            self._seen[path] = found
        if isinstance(found, ImageProblem):
            raise found
        if self.inline_limit is not None and 4 * ((found.bytes + 2) // 3) > self.inline_limit:
            raise ImageProblem(_over_inline_limit(found, self.inline_limit))
        return found

    def _look(self, path: str) -> ImageRef:
        if path in self.fetched:
            entry = self.fetched[path]
            if isinstance(entry, ImageProblem):
                raise entry
            data = self._cache().read(entry.sha256, entry.mime)
            ref = _describe(path, data)
        else:
            ref = _inspect(self.folder, path)
            data = (self.folder / path).read_bytes() if self.prep is not None else b""
        return ref if self.prep is None else self._prepared(ref, data)

    def _prepared(self, ref: ImageRef, data: bytes) -> ImageRef:
        from batchrun.planning.imageprep import FORMAT_BY_NAME, prep_key, prepare_image

        cache, key = self._cache(), prep_key(ref.sha256, self.prep)
        mime = MIME_BY_FORMAT[FORMAT_BY_NAME[self.prep.format]] if self.prep.format else ref.mime
        digest = cache.prepared(key)
        if digest is None or not cache.has(digest, mime):
            prepared = prepare_image(data, self.prep)
            digest = cache.store(prepared.data, prepared.mime)
            cache.remember_prepared(key, digest)
        return _describe(ref.path, cache.read(digest, mime))

    def _cache(self) -> InputCache:
        if self.cache is None:
            raise ValueError("photos by URL and request.image_prep need an InputCache")
        return self.cache

    @property
    def distinct(self) -> list[ImageRef]:
        return [ref for ref in self._seen.values() if isinstance(ref, ImageRef)]


def _inspect(folder: Path, path: str) -> ImageRef:
    file = folder / path
    if not path.strip():
        raise ImageProblem("the image path is empty; fill the column or drop it from request.images")
    if not file.is_file():
        raise ImageProblem(f"image not found: {path} (relative to the spec's folder)")
    return _describe(path, file.read_bytes())


def _describe(path: str, data: bytes) -> ImageRef:
    """The ImageRef of an image's bytes; `path` names it (a file relative to the spec, or a URL)."""
    shown = shown_source(path)
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(f"{shown} is {len(data)} bytes, over the Files API's {MAX_IMAGE_BYTES} bytes; "
                           "make it smaller (request.image_prep can shrink it)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ImageProblem(f"{shown} is not an image Pillow can read; use a PNG, JPEG or WebP") from None
    mime = MIME_BY_FORMAT.get(kind or "")
    if mime is None:
        raise ImageProblem(f"{shown} is {kind}, not PNG, JPEG or WebP; convert it")
    digest = hashlib.sha256(data).hexdigest()
    return ImageRef(path=path, sha256=digest, mime=mime, bytes=len(data), width=width, height=height)


def _over_inline_limit(ref: ImageRef, limit: int) -> str:
    encoded = 4 * ((ref.bytes + 2) // 3)
    return (f"{ref.path} is {_mb(ref.bytes)} ({_mb(encoded)} in base64), over the {_mb(limit)} inline request "
            "limit (provider.inline_limit_mb), and this provider has no Files API to upload it to; shrink it with "
            "request.image_prep (a smaller max side or JPEG), use a smaller photo, or send through provider.kind gemini")


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"
