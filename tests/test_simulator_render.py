"""Drawn images: the requested size, deterministic bytes, colours told apart, a small LRU."""

from __future__ import annotations

import hashlib
import io

from PIL import Image

from batchrun.simulator.render import ImageCache, caption_lines, digest_colour, render_image

PROMPT = "Photograph the Classic Mug in red on a kitchen counter, soft morning light."


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def test_image_has_the_size_and_format_asked_for():
    png = Image.open(io.BytesIO(render_image(848, 1264, PROMPT, digest("a"))))
    jpeg = Image.open(io.BytesIO(render_image(300, 200, PROMPT, digest("a"), mime="image/jpeg")))
    assert (png.size, png.format) == ((848, 1264), "PNG")
    assert (jpeg.size, jpeg.format) == ((300, 200), "JPEG")


def test_same_inputs_same_bytes_and_the_background_is_the_digest_colour():
    first = render_image(256, 256, PROMPT, digest("a"))
    assert first == render_image(256, 256, PROMPT, digest("a"))
    corner = Image.open(io.BytesIO(first)).convert("RGB").getpixel((0, 255))
    other = Image.open(io.BytesIO(render_image(256, 256, PROMPT, digest("b")))).convert("RGB").getpixel((0, 255))
    assert corner in (digest_colour(digest("a")), digest_colour(digest("a"), shift=0.5))
    assert corner != other


def test_caption_wraps_the_prompt_and_puts_the_label_first():
    lines = caption_lines(PROMPT, 512, 512, label="thinking draft 1")
    assert lines[0] == "thinking draft 1"
    assert " ".join(lines[1:]) == PROMPT


def test_cache_renders_once_and_evicts_the_least_recent():
    cache, calls = ImageCache(capacity=2), []

    def render(name):
        return lambda: calls.append(name) or name.encode()

    cache.get_or_render(("a",), render("a"))
    cache.get_or_render(("b",), render("b"))
    cache.get_or_render(("a",), render("a"))
    cache.get_or_render(("c",), render("c"))  # evicts b, the least recently used
    cache.get_or_render(("b",), render("b"))
    assert calls == ["a", "b", "c", "b"]
