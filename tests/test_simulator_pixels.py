"""Output pixel sizes by model family, aspect ratio and imageSize (reference §2.3)."""

from __future__ import annotations

import pytest

from batchrun.cost.modeltable import RATIOS_10, RATIOS_14, lookup_model
from batchrun.errors import UnsupportedImageConfig
from batchrun.simulator.pixels import image_pixels


def pixels(model: str, ratio: str | None, size: str | None) -> tuple[int, int]:
    info = lookup_model(model)
    return image_pixels(info.family, ratio, size, allowed_ratios=info.aspect_ratios, allowed_sizes=info.image_sizes)


@pytest.mark.parametrize(
    "model,ratio,size,expected",
    [
        ("gemini-2.5-flash-image", "2:3", "1K", (832, 1248)),
        ("gemini-2.5-flash-image", "16:9", None, (1344, 768)),
        ("gemini-3-pro-image", "2:3", "2K", (1696, 2528)),
        ("gemini-3-pro-image", "21:9", "4K", (6336, 2688)),
        ("gemini-3.1-flash-image", "9:16", "512", (384, 688)),
        ("gemini-3.1-flash-image", "1:4", "1K", (512, 2048)),
        ("gemini-3.1-flash-image", "8:1", "4K", (12288, 1536)),
        ("gemini-3.1-flash-image", None, None, (1024, 1024)),
    ],
)
def test_reference_table_sizes(model, ratio, size, expected):
    assert pixels(model, ratio, size) == expected


@pytest.mark.parametrize("ratio", RATIOS_14)
def test_every_ratio_of_a_gemini_3_image_model_keeps_its_shape(ratio):
    width, height = pixels("gemini-3.1-flash-image", ratio, "1K")
    wanted_w, wanted_h = (int(x) for x in ratio.split(":"))
    assert abs(width / height - wanted_w / wanted_h) / (wanted_w / wanted_h) < 0.06


@pytest.mark.parametrize(
    "model,ratio,size",
    [("gemini-3-pro-image", "1:8", "1K"), ("gemini-3-pro-image", "1:1", "512"),
     ("gemini-2.5-flash-image", "1:1", "2K"), ("gemini-3.1-flash-image", "1:1", "1k"),
     ("gemini-3.1-flash-image", "7:5", "1K")],
)
def test_options_a_model_lacks_are_refused(model, ratio, size):
    with pytest.raises(UnsupportedImageConfig):
        pixels(model, ratio, size)


def test_unknown_models_get_1k_whatever_they_ask():
    assert image_pixels(None, "16:9", "4K") == (1376, 768)
    assert all(image_pixels(None, r, None) for r in RATIOS_10)
