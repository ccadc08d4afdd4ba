"""Lines of text drawn from cached glyph masks: each character is rasterised once per font size.

FreeType rasterising every glyph of every caption was most of the time it took to draw an image.
Here a glyph is drawn once (Pillow's default font, anti-aliased) into a mask and pasted after that,
advanced by its own width (no kerning: the default font's basic layout has none worth keeping).
"""

from __future__ import annotations

import threading
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont


class Lettering:
    """Draws lines of text in Pillow's default font at one size."""

    def __init__(self, size: int) -> None:
        self.font = ImageFont.load_default(size=size)
        self._glyphs: dict[str, tuple[Image.Image | None, tuple[int, int], float]] = {}
        self._lock = threading.Lock()

    def draw(self, image: Image.Image, xy: tuple[int, int], text: str, colour: tuple[int, int, int]) -> None:
        """Write `text` on `image` with its top-left corner (ascender line) at `xy`."""
        x, y = xy
        position = float(x)
        for char in text:
            mask, (left, top), advance = self._glyph(char)
            if mask is not None:
                image.paste(colour, (round(position) + left, y + top), mask)
            position += advance

    def _glyph(self, char: str) -> tuple[Image.Image | None, tuple[int, int], float]:
        found = self._glyphs.get(char)
        if found is None:
            found = self._rasterise(char)
            with self._lock:
                self._glyphs[char] = found
        return found

    def _rasterise(self, char: str) -> tuple[Image.Image | None, tuple[int, int], float]:
        left, top, right, bottom = map(int, self.font.getbbox(char))  # whole pixels for a TrueType font
        advance = self.font.getlength(char)
        if right <= left or bottom <= top:
            return None, (0, 0), advance
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), char, fill=255, font=self.font)
        return mask, (left, top), advance


@lru_cache(maxsize=32)
def lettering(size: int) -> Lettering:
    """The shared Lettering of one font size."""
    return Lettering(size)
