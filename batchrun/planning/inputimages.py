"""Input images checked at plan time: the file exists, Pillow can open it as PNG, JPEG or WebP, and it
can be sent: within the Files API's size, and, for a provider without a Files API (`inline_limit`
given), inline within the request limit. Each distinct path is read once per plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from batchrun.errors import ImageProblem
from batchrun.records import ImageRef

MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
INLINE_REQUEST_LIMIT = 100 * 1024 * 1024  # bytes of one request body; base64 adds a third
MAX_IMAGE_BYTES = 2 * 1024 * 1024 * 1024  # one Files API file (reference §1.2): a larger image can't be sent


class ImageInspector:
    """Inspects input images relative to the spec's folder, caching by path."""

    def __init__(self, folder: Path, *, inline_limit: int | None = None) -> None:
        self.folder = folder
        self.inline_limit = inline_limit  # bytes of a request body, for a provider with no Files API
        self._seen: dict[str, ImageRef | ImageProblem] = {}

    def inspect(self, path: str) -> ImageRef:
        found = self._seen.get(path)
        if found is None:
            try:
                found = _inspect(self.folder, path)
            except ImageProblem as problem:
                found = problem
            self._seen[path] = found
        if isinstance(found, ImageProblem):
            raise found
        if self.inline_limit is not None and 4 * ((found.bytes + 2) // 3) > self.inline_limit:
            raise ImageProblem(_over_inline_limit(found, self.inline_limit))
        return found

    @property
    def distinct(self) -> list[ImageRef]:
        return [ref for ref in self._seen.values() if isinstance(ref, ImageRef)]


def _inspect(folder: Path, path: str) -> ImageRef:
    file = folder / path
    if not path.strip():
        raise ImageProblem("the image path is empty; fill the column or drop it from request.images")
    if not file.is_file():
        raise ImageProblem(f"image not found: {path} (relative to the spec's folder)")
    data = file.read_bytes()
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(f"{path} is {len(data)} bytes, over the Files API's {MAX_IMAGE_BYTES} bytes; "
                           "make it smaller (request.image_prep can shrink it)")
    try:
        with Image.open(file) as image:
            kind, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ImageProblem(f"{path} is not an image Pillow can read; use a PNG, JPEG or WebP") from None
    mime = MIME_BY_FORMAT.get(kind or "")
    if mime is None:
        raise ImageProblem(f"{path} is {kind}, not PNG, JPEG or WebP; convert it")
    digest = hashlib.sha256(data).hexdigest()
    return ImageRef(path=path, sha256=digest, mime=mime, bytes=len(data), width=width, height=height)


def _over_inline_limit(ref: ImageRef, limit: int) -> str:
    encoded = 4 * ((ref.bytes + 2) // 3)
    return (f"{ref.path} is {_mb(ref.bytes)} ({_mb(encoded)} in base64), over the {_mb(limit)} inline request "
            "limit (provider.inline_limit_mb), and this provider has no Files API to upload it to; shrink it with "
            "request.image_prep (a smaller max side or JPEG), use a smaller photo, or send through provider.kind gemini")


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"
