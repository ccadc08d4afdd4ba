"""`request.image_prep`: an input photo resized and/or converted before it is hashed, cached and sent.

Input: a photo's bytes (PNG, JPEG or WebP) and the spec's ImagePrepSpec (max_side, format, quality).
Output: a PreparedImage: new bytes, their mime and size in pixels.
Invariants: deterministic (the same bytes and settings give the same bytes: no metadata is written, no
time, no EXIF or ICC profile; the EXIF orientation is applied first so the photo looks the same); the
aspect ratio is kept; a photo is never made larger. Every photo is re-encoded when image_prep is set,
so the settings change the bytes, and with them the request ids.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps

from batchrun.planning.inputimages import MIME_BY_FORMAT

FORMAT_BY_NAME = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True, slots=True)
class PreparedImage:
    data: bytes
    mime: str
    width: int
    height: int


def prep_key(source_sha256: str, prep: Any) -> str:
    """The cache key of one photo under one preparation."""
    return f"{source_sha256}:max_side={prep.max_side}:format={prep.format}:quality={prep.quality}"


def fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size within `max_side` on the longer side, aspect kept, never larger than given."""
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_image(data: bytes, prep: Any) -> PreparedImage:
    """The photo resized to `prep.max_side` and encoded as `prep.format` (its own format when unset)."""
    with Image.open(io.BytesIO(data)) as source:
        target = FORMAT_BY_NAME[prep.format] if prep.format else (source.format or "PNG")
        image = ImageOps.exif_transpose(source)
        size = fitted_size(image.width, image.height, prep.max_side)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image = _mode_for(image, target)
        out = io.BytesIO()
        image.save(out, format=target, **_save_options(target, prep.quality))
    return PreparedImage(out.getvalue(), MIME_BY_FORMAT[target], size[0], size[1])


def _mode_for(image: Image.Image, target: str) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if target == "JPEG":
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L"):
        return image
    return image.convert("RGBA" if has_alpha else "RGB")


def _save_options(target: str, quality: int) -> dict[str, Any]:
    if target == "JPEG":
        return {"quality": quality, "optimize": False, "progressive": False}
    if target == "WEBP":
        return {"quality": quality, "method": 4}
    return {"compress_level": 6}
