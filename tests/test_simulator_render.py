"""Drawn images: the requested size, deterministic bytes, colours told apart, canvases reused, LRUs."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

import batchrun.simulator.render as render
from batchrun.simulator.render import (
    BAND_COLOUR,
    CanvasCache,
    ImageCache,
    band_lines,
    band_rows,
    caption_lines,
    digest_colour,
    draw_image,
    hue_index,
    render_image,
)

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


@pytest.mark.parametrize("size", [(1024, 1024), (848, 1264), (1536, 192), (192, 1536), (31, 17)])
def test_a_png_holds_exactly_the_picture_drawn_in_one_piece(size):
    png = render_image(*size, PROMPT, digest("a"), canvases=CanvasCache())
    assert Image.open(io.BytesIO(png)).convert("RGB").tobytes() == draw_image(*size, PROMPT, digest("a")).tobytes()


def test_the_band_shows_the_prompt_and_the_requests_reference():
    lines = band_lines(PROMPT, 1024, 1024, digest("a"), label="thinking draft 1")
    assert lines[0] == "thinking draft 1" and lines[-1] == "ref " + digest("a").hex()[:16]
    start, stop = band_rows(1024, 1024, len(lines))
    band = draw_image(1024, 1024, PROMPT, digest("a")).crop((0, start, 1024, stop))
    colours = {colour for _, colour in band.getcolors(maxcolors=1 << 16)}
    assert BAND_COLOUR in colours and any(sum(c) < 100 for c in colours)  # dark text on the light band


def test_two_requests_with_the_same_prompt_and_colour_still_differ():
    same_hue = [d for d in (digest(str(i)) for i in range(400)) if hue_index(d) == hue_index(digest("a"))]
    first, second = (render_image(256, 256, PROMPT, d) for d in same_hue[:2])
    assert first != second


def test_a_canvas_is_drawn_once_per_size_and_colour(monkeypatch):
    drawn = []
    original = render.draw_canvas
    monkeypatch.setattr(render, "draw_canvas", lambda *args: drawn.append(args) or original(*args))
    cache = CanvasCache()
    same_hue = [d for d in (digest(str(i)) for i in range(400)) if hue_index(d) == 0]
    for d in same_hue[:3]:
        render_image(128, 128, PROMPT + d.hex(), d, canvases=cache)
    render_image(64, 128, PROMPT, same_hue[0], canvases=cache)
    assert drawn == [(128, 128, 0), (64, 128, 0)]


def test_the_canvas_cache_drops_the_least_recent_past_its_bytes(monkeypatch):
    drawn = []
    original = render.draw_canvas
    monkeypatch.setattr(render, "draw_canvas", lambda *args: drawn.append(args[2]) or original(*args))
    cache = CanvasCache(max_bytes=1)  # holds one canvas, whatever its size
    for hue in (0, 1, 0):
        cache.get(32, 32, hue)
    assert drawn == [0, 1, 0]
