"""PNGs put together from cached canvas blocks and a per-request band: valid files, the right pixels."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from batchrun.simulator.pngstrips import (
    BLOCK_ROWS,
    adler32_combine,
    aligned,
    canvas,
    png_with_band,
)


def noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, each CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        out.append((kind, data))
        at += 12 + length
    return out


@pytest.mark.parametrize("first,second", [(0, 0), (1, 0), (0, 70000), (65521, 3), (100000, 200000)])
def test_adler32_combine_agrees_with_zlib(first, second):
    rng = random.Random(first + second)
    a, b = rng.randbytes(first), rng.randbytes(second)
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.parametrize("width,height,band", [(64, 100, (16, 48)), (33, 48, (0, 48)), (7, 37, (32, 37)),
                                               (50, 16, (0, 16)), (20, 90, (0, 16))])
def test_the_file_is_valid_and_holds_the_canvas_with_the_band_in_it(width, height, band):
    base, stripe = noise(width, height, 1), noise(width, band[1] - band[0], 2)
    png = png_with_band(canvas(base), stripe, band[0])

    parts = chunks(png)
    assert [kind for kind, _ in parts][0] == b"IHDR" and parts[-1] == (b"IEND", b"")
    raw = zlib.decompress(b"".join(data for kind, data in parts if kind == b"IDAT"))  # checks the Adler-32
    assert len(raw) == height * (1 + width * 3)
    expected = base.copy()
    expected.paste(stripe, (0, band[0]))
    decoded = Image.open(io.BytesIO(png))
    assert decoded.size == (width, height) and decoded.convert("RGB").tobytes() == expected.tobytes()


def test_one_canvas_serves_bands_at_any_aligned_rows():
    base = canvas(noise(40, 80, 3))
    for start, stop in [(0, 16), (16, 64), (64, 80)]:
        stripe = noise(40, stop - start, start)
        decoded = Image.open(io.BytesIO(png_with_band(base, stripe, start))).convert("RGB")
        assert decoded.crop((0, start, 40, stop)).tobytes() == stripe.tobytes()


def test_a_band_off_the_block_boundaries_is_refused():
    with pytest.raises(ValueError, match="boundaries"):
        png_with_band(canvas(noise(8, 64, 4)), noise(8, 10, 5), 3)


def test_aligned_widens_to_blocks_and_stops_at_the_last_row():
    assert aligned(5, 20, 100) == (0, 2 * BLOCK_ROWS)
    assert aligned(17, 99, 100) == (BLOCK_ROWS, 100)
