from __future__ import annotations

import pytest

from batchrun.cost.tokens import (
    estimate_tokens as estimate_with_inputs,
)
from batchrun.cost.tokens import (
    expected_output,
    expected_text_tokens,
    expected_thinking_tokens,
    text_tokens,
)
from batchrun.providers.gemini import gemini_estimate_inputs
from batchrun.records import EstimateInputs, ImageRef, TokenEstimate
from batchrun.rendered import rendered_request


def image(width: int, height: int) -> ImageRef:
    return ImageRef(path="a.png", sha256="0" * 64, mime="image/png", bytes=1, width=width, height=height)


def body(prompt: str = "x" * 40, system: str | None = None, **config) -> dict:
    return rendered_request(system, [{"text": prompt}], config, None, {})


def estimate_tokens(model: str, request: dict, images: list[ImageRef]) -> TokenEstimate:
    return estimate_with_inputs(model, request, images, gemini_estimate_inputs(request))


def test_text_tokens_are_four_characters_rounded_up():
    assert [text_tokens(t) for t in ("", "abc", "abcd", "abcde")] == [0, 1, 1, 2]


def test_image_request_on_31_flash():
    # no maxOutputTokens: the practical ceiling, 4,096 thinking + 2 interim 2K images x 1,680 (IMAGE only: no caption)
    request = body(system="y" * 8, responseModalities=["IMAGE"], imageConfig={"imageSize": "2K"})
    got = estimate_tokens("gemini-3.1-flash-image", request, [image(800, 600), image(100, 100)])
    assert got == TokenEstimate(input_text=12, input_image=2240, output_text_max=4096 + 2 * 1680, output_image=1680, images_out=1,
                                image_size="2K", text_allowed=False)


def test_image_model_defaults_to_an_image_at_1k():
    got = estimate_tokens("gemini-3-pro-image", body(), [image(800, 600)])
    assert (got.input_image, got.output_image, got.images_out) == (560, 1120, 1)


def test_gemini_2_input_images_count_768px_tiles():
    got = estimate_tokens("gemini-2.5-flash-image", body(), [image(1000, 1000), image(300, 300)])
    assert got.input_image == 4 * 258 + 258


def test_media_resolution_sets_gemini_3_input_image_tokens():
    request = body(mediaResolution="MEDIA_RESOLUTION_LOW")
    assert estimate_tokens("gemini-3.1-flash-image", request, [image(800, 600)] * 2).input_image == 560
    # Gemini 2 ignores it: tiles as before
    assert estimate_tokens("gemini-2.5-flash", request, [image(300, 300)]).input_image == 258


def test_text_request_uses_max_output_tokens():
    got = estimate_tokens("gemini-2.5-flash", body(maxOutputTokens=1000), [])
    assert (got.output_text_max, got.output_image, got.images_out) == (1000, 0, 0)


def test_expected_text_tokens():
    assert expected_text_tokens(32768, wants_image=True, text_allowed=False) == 0
    assert expected_text_tokens(32768, wants_image=True, text_allowed=True) == 25
    assert expected_text_tokens(1000, wants_image=False, text_allowed=True) == 250
    assert expected_text_tokens(65536, wants_image=False, text_allowed=True) == 800


@pytest.mark.parametrize(
    ("model", "level", "budget", "expected"),
    [
        ("gemini-3.1-flash-image", None, None, 850),  # default minimal: a 1K image reported ~2,000 output tokens
        ("gemini-3.1-flash-image", "high", None, 2000),
        ("gemini-3.1-flash-image-preview", "minimal", None, 850),
        ("gemini-3-pro-image", None, None, 850),  # always thinks
        ("gemini-3.1-flash-lite-image", None, None, 570),
        ("gemini-2.5-flash-image", None, None, 0),
        ("gemini-2.5-pro", None, None, 2048),  # dynamic
        ("gemini-2.5-pro", None, -1, 2048),
        ("gemini-2.5-flash", None, 0, 0),
        ("gemini-2.5-flash", None, 512, 512),
        ("gemini-2.5-flash-lite", None, None, 0),
        ("gemini-3-flash-preview", None, None, 4096),  # default high
        ("gemini-3-flash-preview", "low", None, 1024),
        ("gemini-3.1-flash-lite", None, None, 128),  # default minimal
        ("acme-x", None, None, 1024),
    ],
)
def test_expected_thinking_by_model_default(model, level, budget, expected):
    assert expected_thinking_tokens(model, level, budget) == expected


def test_the_estimate_carries_the_thinking_setting_it_was_given():
    inputs = EstimateInputs(thinking_level="high", thinking_budget=64, service_tier="flex")
    got = estimate_with_inputs("gemini-2.5-flash", body(), [], inputs)
    assert (got.thinking_level, got.thinking_budget, got.service_tier) == ("high", 64, "flex")


def test_expected_output_for_an_image_request():
    request = body(responseModalities=["TEXT", "IMAGE"])
    estimate = estimate_tokens("gemini-3.1-flash-image", request, [])
    got = expected_output("gemini-3.1-flash-image", estimate)
    assert got.output_fraction == pytest.approx(25 / (4096 + 2 * 1120 + 256))  # the practical ceiling
    assert got.thinking_tokens == 850


def test_expected_thinking_never_passes_the_ceiling():
    request = body(maxOutputTokens=1000)
    estimate = estimate_tokens("gemini-2.5-pro", request, [])
    got = expected_output("gemini-2.5-pro", estimate)
    # 250 text expected leaves 750 of the 1,000 ceiling for thinking (2,048 by default)
    assert (got.output_fraction, got.thinking_tokens) == (0.25, 750)
