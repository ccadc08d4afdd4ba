"""Output image pixel sizes by model family, aspect ratio and `imageSize`.

From the shared reference `gemini-protocol.md` §2.3. Gemini 3 image models share one 1K table; their
512, 2K and 4K tiers are that table scaled by 1/2, 2 and 4 (the reference's 512 row is exactly half of
the 1K row, its 21:9 entry "792x168 (sic)" being a typo for 792x336). Gemini 2.5 Flash Image has one
tier of its own. A model the simulator does not know gets the Gemini 3 1K size whatever it asked for.
"""

from __future__ import annotations

from ..errors import UnsupportedImageConfig

DEFAULT_ASPECT_RATIO = "1:1"
DEFAULT_IMAGE_SIZE = "1K"

_FLASH_IMAGE_25_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

_GEMINI_3_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}

_SCALE: dict[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}


def _base_table(family: str | None) -> dict[str, tuple[int, int]]:
    if family == "gemini-2.5-flash-image":
        return _FLASH_IMAGE_25_1K
    return _GEMINI_3_1K


def image_pixels(
    family: str | None,
    aspect_ratio: str | None,
    image_size: str | None,
    *,
    allowed_ratios: tuple[str, ...] = (),
    allowed_sizes: tuple[str, ...] = (),
) -> tuple[int, int]:
    """(width, height) of the image a model draws; raises UnsupportedImageConfig for a bad option."""
    ratio = aspect_ratio or DEFAULT_ASPECT_RATIO
    table = _base_table(family)
    if ratio not in table or (allowed_ratios and ratio not in allowed_ratios):
        raise UnsupportedImageConfig(f"aspectRatio {ratio!r} is not supported by this model")
    if family is None:
        return table[ratio]  # unknown model: 1K whatever was asked
    size = image_size or DEFAULT_IMAGE_SIZE
    if size not in _SCALE or (allowed_sizes and size not in allowed_sizes):
        raise UnsupportedImageConfig(f"imageSize {size!r} is not supported by this model")
    width, height = table[ratio]
    scale = _SCALE[size]
    return int(width * scale), int(height * scale)
