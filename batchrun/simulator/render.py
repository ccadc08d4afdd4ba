"""Drawing the simulator's images: a colour field, a few shapes, and a band with the prompt written on it.

Inputs: the pixel size, the prompt text and a 32-byte digest of (request, seed). The background is one
of `HUES` colours picked by the digest, with shapes placed by that colour: that canvas is the same for
many requests, so its PNG rows are encoded once per (size, colour) and cached (`CanvasCache`, see
pngstrips.py). The band across the middle shows the prompt (and a label for interim images) and ends
with a reference taken from the digest, so one request always gives the same bytes and two requests
never give the same picture; only the band is drawn and compressed per request. JPEG and WebP are
encoded whole by Pillow. `ImageCache` keeps recent results so a retried request costs nothing. Both
caches are thread-safe.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageDraw

from .lettering import lettering
from .pngstrips import Canvas, aligned, canvas, png_with_band

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
HUES = 48
BAND_COLOUR = (250, 250, 245)
TEXT_COLOUR = (20, 20, 20)
_MAX_LINES = 8


def hue_index(digest: bytes) -> int:
    """Which of the HUES background colours a digest picks (its first two bytes)."""
    return (digest[0] << 8 | digest[1]) * HUES >> 16


def hue_colour(hue: int, *, shift: float = 0.0) -> tuple[int, int, int]:
    """The saturated colour of one of the HUES (shift 0.5: its opposite on the colour wheel)."""
    red, green, blue = colorsys.hsv_to_rgb((hue / HUES + shift) % 1.0, 0.55, 0.85)
    return int(red * 255), int(green * 255), int(blue * 255)


def digest_colour(digest: bytes, *, shift: float = 0.0) -> tuple[int, int, int]:
    """The background colour a digest picks (shift 0.5: the shapes' colour)."""
    return hue_colour(hue_index(digest), shift=shift)


def _draw_shapes(draw: ImageDraw.ImageDraw, width: int, height: int, hue: int) -> None:
    """Three shapes in the opposite colour, placed by the hue (so the canvas depends on it alone)."""
    place = hashlib.sha256(b"shapes/%d" % hue).digest()
    accent = hue_colour(hue, shift=0.5)
    for i in range(3):
        x = place[4 + i] / 255 * width
        y = place[8 + i] / 255 * height
        radius = (0.08 + place[12 + i] / 255 * 0.2) * min(width, height)
        box = (x - radius, y - radius, x + radius, y + radius)
        if place[16 + i] % 2:
            draw.ellipse(box, fill=accent)
        else:
            draw.rectangle(box, fill=accent)


def _font_size(width: int, height: int) -> int:
    return max(10, min(width, height) // 32)


def band_rows(width: int, height: int, lines: int) -> tuple[int, int]:
    """Rows [start, stop) of the band that holds `lines` lines of text, centred, on block boundaries."""
    size = _font_size(width, height)
    top = _text_top(height, size, lines)
    return aligned(max(0, top - size // 2), top + int(size * 1.3) * lines + size // 2, height)


def _text_top(height: int, size: int, lines: int) -> int:
    return max(0, (height - int(size * 1.3) * lines) // 2)


def draw_band(width: int, height: int, lines: list[str]) -> Image.Image:
    """The band of an image of this size: the text on its light ground, full width."""
    start, stop = band_rows(width, height, len(lines))
    size = _font_size(width, height)
    line_height = int(size * 1.3)
    top = _text_top(height, size, len(lines)) - start
    band = Image.new("RGB", (width, stop - start), BAND_COLOUR)
    letters = lettering(size)
    for i, line in enumerate(lines):
        letters.draw(band, (size, top + i * line_height), line, TEXT_COLOUR)
    return band


def draw_canvas(width: int, height: int, hue: int) -> Image.Image:
    """The background of every image of this size and hue: the colour field and its shapes."""
    image = Image.new("RGB", (width, height), hue_colour(hue))
    _draw_shapes(ImageDraw.Draw(image), width, height, hue)
    return image


def caption_lines(prompt: str, width: int, height: int, label: str = "") -> list[str]:
    """The prompt wrapped to the image's width, at most eight lines, with an optional label first."""
    size = _font_size(width, height)
    columns = max(8, int((width - 2 * size) / (size * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), width=columns)[:_MAX_LINES] or ["(no prompt)"]
    return ([label] if label else []) + lines


def band_lines(prompt: str, width: int, height: int, digest: bytes, label: str = "") -> list[str]:
    """The band's lines: the caption, then the reference that makes the picture the request's own."""
    return caption_lines(prompt, width, height, label) + [f"ref {digest.hex()[:16]}"]


def draw_image(width: int, height: int, prompt: str, digest: bytes, *, label: str = "") -> Image.Image:
    """The whole picture for one request, drawn in one piece."""
    lines = band_lines(prompt, width, height, digest, label)
    image = draw_canvas(width, height, hue_index(digest))
    image.paste(draw_band(width, height, lines), (0, band_rows(width, height, len(lines))[0]))
    return image


class CanvasCache:
    """Encoded canvases by (width, height, hue), least recently used dropped first past `max_bytes`."""

    def __init__(self, max_bytes: int = 128 << 20) -> None:
        self._items = _LRU(max_bytes, size=lambda canvas: canvas.size)

    def get(self, width: int, height: int, hue: int) -> Canvas:
        """The canvas, drawn and encoded on first use."""
        return self._items.get_or_make((width, height, hue), lambda: canvas(draw_canvas(width, height, hue)))


def render_image(
    width: int, height: int, prompt: str, digest: bytes, *, label: str = "", mime: str = "image/png",
    canvases: CanvasCache | None = None,
) -> bytes:
    """The encoded image for one request: same arguments, same bytes."""
    if mime != "image/png":
        out = io.BytesIO()
        draw_image(width, height, prompt, digest, label=label).save(out, FORMATS[mime], quality=85)
        return out.getvalue()
    lines = band_lines(prompt, width, height, digest, label)
    base = (canvases or CanvasCache()).get(width, height, hue_index(digest))
    return png_with_band(base, draw_band(width, height, lines), band_rows(width, height, len(lines))[0])


class _LRU:
    """A thread-safe LRU holding at most `capacity` by `size` (one a value unless told); a value made
    twice by two threads at once is harmless (the same value)."""

    def __init__(self, capacity: int, size: Callable[[Any], int] = lambda value: 1) -> None:
        self.capacity, self.size = capacity, size
        self._items: OrderedDict = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get_or_make(self, key, make: Callable):
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        value = make()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._held += self.size(value)
            while self._held > self.capacity and len(self._items) > 1:
                self._held -= self.size(self._items.popitem(last=False)[1])
        return value


class ImageCache:
    """A small LRU of encoded images keyed by whatever identifies them (request digest, size, label)."""

    def __init__(self, capacity: int = 64) -> None:
        self._items = _LRU(capacity)

    def get_or_render(self, key: tuple, render: Callable[[], bytes]) -> bytes:
        """The cached bytes for `key`, or `render()`'s result, remembered."""
        return self._items.get_or_make(key, render)
