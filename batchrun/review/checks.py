"""Automatic checks of returned images, so a reviewer looks at the suspicious ones first.

Inputs: what each request asked for (`imageConfig.aspectRatio`, `imageConfig.imageSize`), each image's
pixel size, and a 64-bit difference hash (dHash) of each image. Outputs: a list of flag strings per
cell; no flags means nothing looked wrong. Pure functions: no files, no Pillow objects.

- `aspect`: the image's width/height differs from the requested ratio by more than ASPECT_TOLERANCE
  (relative). The published pixel tables are not exact (1:8 came back 352x2928, not 384x3072), so
  ratios are compared with a tolerance, never pixel for pixel.
- `size`: the image's pixel count is off the requested imageSize's nominal area (512 -> 512², 1K ->
  1024², 2K -> 2048², 4K -> 4096²) by more than SIZE_TOLERANCE (relative). A request without imageSize
  is taken as 1K, the documented default.
- `duplicate`: two variants of one row whose dHashes differ in at most DUPLICATE_MAX_BITS of 64 bits:
  the same picture returned twice, where the variants were asked to differ. 6 of 64 bits tolerates
  re-encoding and slight crops while two distinct product photos differ in 20+ bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ASPECT_TOLERANCE = 0.04
SIZE_TOLERANCE = 0.35
DUPLICATE_MAX_BITS = 6
NOMINAL_SIDE = {"512": 512, "0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
DEFAULT_IMAGE_SIZE = "1K"


def requested_ratio(aspect_ratio: str | None) -> float | None:
    """Width over height of an aspectRatio like "16:9"; None when absent or not W:H."""
    if not aspect_ratio or ":" not in aspect_ratio:
        return None
    width, _, height = aspect_ratio.partition(":")
    try:
        w, h = float(width), float(height)
    except ValueError:
        return None
    return w / h if w > 0 and h > 0 else None


def aspect_flag(width: int, height: int, aspect_ratio: str | None) -> str | None:
    """A message when the image's shape is not the requested aspect ratio, else None."""
    wanted = requested_ratio(aspect_ratio)
    if wanted is None or width <= 0 or height <= 0:
        return None
    got = width / height
    if abs(got - wanted) / wanted <= ASPECT_TOLERANCE:
        return None
    return f"aspect {width}x{height} is {got:.2f}:1, asked {aspect_ratio}"


def size_flag(width: int, height: int, image_size: str | None) -> str | None:
    """A message when the image's pixel count is far from the requested imageSize, else None."""
    side = NOMINAL_SIDE.get(image_size or DEFAULT_IMAGE_SIZE)
    if side is None or width <= 0 or height <= 0:
        return None
    nominal = side * side
    if abs(width * height - nominal) / nominal <= SIZE_TOLERANCE:
        return None
    return f"size {width}x{height}, asked {image_size or DEFAULT_IMAGE_SIZE}"


def pixel_flags(width: int | None, height: int | None, aspect_ratio: str | None, image_size: str | None) -> list[str]:
    """The aspect and size flags of one image (none when its size is unknown)."""
    if not width or not height:
        return []
    found = (aspect_flag(width, height, aspect_ratio), size_flag(width, height, image_size))
    return [flag for flag in found if flag]


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes."""
    return (a ^ b).bit_count()


def dhash_bits(gray_9x8: Sequence[int]) -> int:
    """The 64-bit dHash of a 9x8 grayscale image given row by row: bit set where a pixel is brighter than its right neighbour."""
    bits = 0
    for row in range(8):
        line = gray_9x8[row * 9:(row + 1) * 9]
        for col in range(8):
            bits = (bits << 1) | (1 if line[col] > line[col + 1] else 0)
    return bits


def near_duplicates(hashes: Iterable[tuple[str, int]]) -> dict[str, str]:
    """Among one row's variants (key, dHash), each key that nearly repeats an earlier one -> that one's key."""
    seen: list[tuple[str, int]] = []
    repeats: dict[str, str] = {}
    for key, value in hashes:
        twin = next((earlier for earlier, h in seen if hamming(h, value) <= DUPLICATE_MAX_BITS), None)
        if twin is not None:
            repeats[key] = twin
            repeats.setdefault(twin, key)
        seen.append((key, value))
    return repeats
