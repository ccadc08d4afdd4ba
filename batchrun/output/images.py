"""Output images: written whole (temp file, then rename) under `images/`, described by hash and size."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from batchrun.errors import UsageError


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image written under the output folder; `path` is relative to it, in posix form."""

    path: str
    sha256: str
    mime: str
    bytes: int
    width: int | None
    height: int | None



_EXTENSION_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp"}
_EXTENSION_BY_FORMAT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def image_extension(mime: str, data: bytes) -> str:
    """File extension for an image: from its mime type, else from its header."""
    extension = _EXTENSION_BY_MIME.get(mime.lower().split(";")[0].strip())
    if extension:
        return extension
    size_and_format = _image_header(data)
    return _EXTENSION_BY_FORMAT.get(size_and_format[2] or "", "bin")


def _image_header(data: bytes) -> tuple[int | None, int | None, str | None]:
    """Width, height and format read from the header alone (no pixel decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height, image.format
    except (UnidentifiedImageError, OSError, ValueError):
        return None, None, None


def image_relative_path(output_name: str | None, request_id: str, extension: str) -> PurePosixPath:
    """`images/<output_name or request_id>.<ext>`, refusing names that leave the images folder."""
    name = PurePosixPath(f"{output_name or request_id}.{extension}")
    if name.is_absolute() or ".." in name.parts:
        raise UsageError(f"output.image_name gives {str(name)!r}, which leaves the images folder; "
                         f"use a relative name without '..'")
    return PurePosixPath("images") / name


def write_image_file(out_dir: Path, data: bytes, mime: str, relative: PurePosixPath) -> ImageFile:
    """Write image bytes completely (temp file, then rename) and describe the file."""
    path = out_dir.joinpath(*relative.parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")  # short: the name itself may be as long as allowed
    try:
        with open(tmp, "wb") as image_file:
            image_file.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    width, height, _ = _image_header(data)
    return ImageFile(str(relative), hashlib.sha256(data).hexdigest(), mime, len(data), width, height)


def _remove_temp_images(images_dir: Path) -> None:
    for tmp in images_dir.rglob(".*.tmp") if images_dir.is_dir() else ():
        tmp.unlink(missing_ok=True)
