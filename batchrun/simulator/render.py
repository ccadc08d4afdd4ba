"""Drawing the simulator's images: a flat colour field, a few shapes and the prompt written on it.

Inputs: the pixel size, the prompt text and a 32-byte digest of (request, seed). The colour and the
shapes come from the digest, so one request always gives the same bytes and two different requests
are told apart at a glance. Encoding is the slow part: PNGs use zlib level 1, and `ImageCache`
keeps recent results so a retried request costs nothing.
"""

from __future__ import annotations

import colorsys
import io
import textwrap
from collections import OrderedDict
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_MAX_LINES = 8


def digest_colour(digest: bytes, *, shift: float = 0.0) -> tuple[int, int, int]:
    """A saturated colour picked by the digest's first two bytes."""
    hue = ((digest[0] << 8 | digest[1]) / 65536.0 + shift) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.55, 0.85)
    return int(red * 255), int(green * 255), int(blue * 255)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_shapes(draw: ImageDraw.ImageDraw, width: int, height: int, digest: bytes) -> None:
    accent = digest_colour(digest, shift=0.5)
    for i in range(3):
        x = digest[4 + i] / 255 * width
        y = digest[8 + i] / 255 * height
        radius = (0.08 + digest[12 + i] / 255 * 0.2) * min(width, height)
        box = (x - radius, y - radius, x + radius, y + radius)
        if digest[16 + i] % 2:
            draw.ellipse(box, fill=accent)
        else:
            draw.rectangle(box, fill=accent)


def _draw_caption(draw: ImageDraw.ImageDraw, width: int, height: int, lines: list[str]) -> None:
    size = max(10, min(width, height) // 18)
    font = _font(size)
    line_height = int(size * 1.3)
    top = max(0, (height - line_height * len(lines)) // 2)
    band = (0, top - size // 2, width, top + line_height * len(lines) + size // 2)
    draw.rectangle(band, fill=(250, 250, 245))
    for i, line in enumerate(lines):
        draw.text((size, top + i * line_height), line, fill=(20, 20, 20), font=font)


def caption_lines(prompt: str, width: int, height: int, label: str = "") -> list[str]:
    """The prompt wrapped to the image's width, at most eight lines, with an optional label first."""
    size = max(10, min(width, height) // 18)
    columns = max(8, int((width - 2 * size) / (size * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), width=columns)[:_MAX_LINES] or ["(no prompt)"]
    return ([label] if label else []) + lines


def render_image(
    width: int, height: int, prompt: str, digest: bytes, *, label: str = "", mime: str = "image/png"
) -> bytes:
    """The encoded image for one request: same arguments, same bytes."""
    image = Image.new("RGB", (width, height), digest_colour(digest))
    draw = ImageDraw.Draw(image)
    _draw_shapes(draw, width, height, digest)
    _draw_caption(draw, width, height, caption_lines(prompt, width, height, label))
    out = io.BytesIO()
    if mime == "image/png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, FORMATS[mime], quality=85)
    return out.getvalue()


class ImageCache:
    """A small LRU of encoded images keyed by whatever identifies them (request digest, size, label)."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, bytes] = OrderedDict()

    def get_or_render(self, key: tuple, render) -> bytes:
        """The cached bytes for `key`, or `render()`'s result, remembered."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        data = render()
        self._items[key] = data
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return data
