"""PNG files put together from separately compressed blocks of rows, so that a canvas is encoded once.

An image is a canvas (the same for many requests) with one band of rows drawn per request. The
canvas's rows are filtered and deflated once, BLOCK_ROWS at a time (`Canvas`); each request deflates
only its band, which starts and ends on block boundaries, and takes the canvas's blocks above and
below it as they are. This works because a zlib stream may be cut into IDAT chunks anywhere, and
deflate data ended with a full flush is byte-aligned and refers to nothing before it, so blocks
deflated apart can follow one another in one stream. The stream's Adler-32 is combined from the
parts' own (`adler32_combine`, as zlib's), so canvas rows are never read again.

    signature, IHDR, IDAT(zlib header + canvas blocks above the band)
    IDAT(the band, deflated for this request)
    IDAT(canvas blocks below the band)
    IDAT(final empty block + Adler-32), IEND
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from itertools import accumulate

from PIL import Image

BLOCK_ROWS = 16
SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level
FINAL_EMPTY_BLOCK = b"\x03\x00"  # a last, empty, fixed-Huffman deflate block
LEVEL = 1
_ADLER_BASE = 65521


@dataclass(frozen=True, slots=True)
class Deflated:
    """Rows deflated on their own: the data, and the Adler-32 and length of the raw (filtered) rows."""

    data: bytes
    adler: int
    raw_length: int


@dataclass(frozen=True, slots=True)
class Canvas:
    """A whole image's rows, deflated BLOCK_ROWS at a time, with running checksums both ways."""

    width: int
    height: int
    blocks: tuple[bytes, ...]
    adler_before: tuple[int, ...]  # [k]: Adler-32 of the raw rows of blocks[:k]
    adler_after: tuple[int, ...]  # [k]: Adler-32 of the raw rows of blocks[k:]
    length_after: tuple[int, ...]  # [k]: raw length of blocks[k:]

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(len(b) for b in self.blocks)


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header(width: int, height: int) -> bytes:
    """The signature and IHDR of an 8-bit RGB, non-interlaced PNG."""
    return SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def deflate_rows(image: Image.Image, start: int, stop: int) -> Deflated:
    """Rows [start, stop) of an RGB image, each with filter byte 0 (none), deflated and fully flushed."""
    raw = image.crop((0, start, image.width, stop)).tobytes() if stop > start else b""
    stride = image.width * 3
    rows = b"".join(b"\x00" + raw[i : i + stride] for i in range(0, len(raw), stride))
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return Deflated(compressor.compress(rows) + compressor.flush(zlib.Z_FULL_FLUSH), zlib.adler32(rows), len(rows))


def canvas(image: Image.Image) -> Canvas:
    """A canvas from a whole RGB image."""
    parts = [deflate_rows(image, top, min(top + BLOCK_ROWS, image.height))
             for top in range(0, image.height, BLOCK_ROWS)]
    before = list(accumulate(parts, lambda adler, p: adler32_combine(adler, p.adler, p.raw_length), initial=1))
    after, lengths = [1], [0]
    for part in reversed(parts):
        after.append(adler32_combine(part.adler, after[-1], lengths[-1]))
        lengths.append(part.raw_length + lengths[-1])
    return Canvas(image.width, image.height, tuple(p.data for p in parts), tuple(before),
                  tuple(reversed(after)), tuple(reversed(lengths)))


def aligned(start: int, stop: int, height: int) -> tuple[int, int]:
    """Rows [start, stop) widened to block boundaries (or the image's last row)."""
    first = start // BLOCK_ROWS * BLOCK_ROWS
    return first, min(height, -(-stop // BLOCK_ROWS) * BLOCK_ROWS)


def png_with_band(base: Canvas, band: Image.Image, start: int) -> bytes:
    """The PNG of `base` with `band` (full width, aligned: see `aligned`) as its rows from `start`."""
    if (start, start + band.height) != aligned(start, start + band.height, base.height):
        raise ValueError(f"band rows {start}..{start + band.height} are not on {BLOCK_ROWS}-row boundaries")
    first, last = start // BLOCK_ROWS, -(-(start + band.height) // BLOCK_ROWS)
    middle = deflate_rows(band, 0, band.height)
    adler = adler32_combine(base.adler_before[first], middle.adler, middle.raw_length)
    adler = adler32_combine(adler, base.adler_after[last], base.length_after[last])
    below = b"".join(base.blocks[last:])
    return b"".join((
        header(base.width, base.height),
        chunk(b"IDAT", ZLIB_HEADER + b"".join(base.blocks[:first])),
        chunk(b"IDAT", middle.data),
        chunk(b"IDAT", below) if below else b"",
        chunk(b"IDAT", FINAL_EMPTY_BLOCK + struct.pack(">I", adler)),
        chunk(b"IEND", b""),
    ))


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of A + B from those of A and B and the length of B (zlib's adler32_combine)."""
    rem = second_length % _ADLER_BASE
    low = first & 0xFFFF
    total = (rem * low + (first >> 16) + (second >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    low = (low + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    return (total << 16) | low
