"""Token estimates for one request, worked out before it is sent (no network).

Rules, each a documented guess that `batchrun estimate` states and a calibrated run corrects:
- input text: 4 characters a token, rounded up, over every text part and the system instruction;
- input images: by model family (`models.input_image_tokens`); on Gemini 3 a media resolution
  option sets the count (LOW 280, MEDIUM 560, HIGH 1120 an image);
- output images: the model's table for the requested `imageSize`;
- text output ceiling: `maxOutputTokens`, else the model's practical ceiling
  (`modeltable.practical_output_tokens`: a text model's own limit; an image model's thinking
  ceiling, interim images and a caption); Gemini counts thinking against the same ceiling, so it
  bounds text and thinking together;
- expected text output: a reply that carries an image adds a short caption (`IMAGE_CAPTION_TOKENS`)
  when TEXT is among its modalities, none otherwise; a text reply is expected to use
  `EXPECTED_OUTPUT_FRACTION` of its ceiling, at most `TYPICAL_TEXT_OUTPUT_TOKENS`;
- expected thinking: by the request's thinking setting, else the model's default (tables below).

A request's options come as named fields (`EstimateInputs`), read from the rendered request by its
provider's registry entry, never from a wire body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from batchrun.cost.modeltable import input_image_tokens, lookup_model, practical_output_tokens
from batchrun.records import EstimateInputs, ImageRef, TokenEstimate
from batchrun.rendered import RenderedRequest, texts

CHARS_PER_TOKEN = 4
DEFAULT_MAX_OUTPUT_TOKENS = 8192

EXPECTED_OUTPUT_FRACTION = 0.25
TYPICAL_TEXT_OUTPUT_TOKENS = 800
IMAGE_CAPTION_TOKENS = 25

MEDIA_RESOLUTION_TOKENS = {
    "MEDIA_RESOLUTION_LOW": 280,
    "MEDIA_RESOLUTION_MEDIUM": 560,
    "MEDIA_RESOLUTION_HIGH": 1120,
}

# Expected thinking tokens for one request at a thinkingLevel (Gemini 3 text models).
THINKING_BY_LEVEL = {"minimal": 128, "low": 1024, "medium": 2048, "high": 4096}
# Image models think to plan the picture; far less than a text model reasoning at the same level.
# Gemini 3 image models think by default (§0.4): a 1K image was reported at about 2,000 output tokens
# against 1,120 for the image alone, so about 850 thinking at the default besides a short caption;
# `high` is taken as 2,000; Flash-Lite Image thinks two thirds of what Flash Image does.
IMAGE_THINKING_BY_LEVEL = {
    "gemini-3.1-flash-image": {"minimal": 850, "high": 2000},
    "gemini-3.1-flash-lite-image": {"minimal": 570, "high": 1330},
    "gemini-3-pro-image": {"": 850},  # always thinks; takes no thinking setting
}
# Gemini 2.5 with a dynamic budget (-1 or none given): what a typical request spends.
DYNAMIC_THINKING = {"gemini-2.5-pro": 2048, "gemini-2.5-flash": 1024}
UNKNOWN_MODEL_THINKING = 1024


def text_tokens(text: str) -> int:
    """Tokens of a text by the 4-characters rule, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class ConfigTokens:
    """The parts of an estimate that depend only on the model and the generation options.

    Planning works them out once per distinct config, not once per request.
    """

    model: str
    tokens_per_image: int | None  # fixed by mediaResolution; None: by each image's size
    output_text_max: int
    output_image: int
    images_out: int
    inputs: EstimateInputs = EstimateInputs()

    def input_image(self, images: list[ImageRef]) -> int:
        """Input image tokens of these images under this config."""
        if not images:
            return 0
        if self.tokens_per_image is not None:
            return self.tokens_per_image * len(images)
        return sum(input_image_tokens(self.model, im.width, im.height) for im in images)


def config_tokens(model: str, inputs: EstimateInputs) -> ConfigTokens:
    """What a request's generation options fix of its estimate."""
    info = lookup_model(model)
    wants_image = "IMAGE" in inputs.modalities or (info is not None and info.image_output and not inputs.modalities)
    limit = (practical_output_tokens(info, inputs.image_size, inputs.text_allowed) if info is not None
             else DEFAULT_MAX_OUTPUT_TOKENS)
    fixed = MEDIA_RESOLUTION_TOKENS.get(inputs.media_resolution or "")
    return ConfigTokens(
        model=model,
        tokens_per_image=fixed if (info is not None and info.input_image_tokens is not None) else None,
        output_text_max=inputs.max_output_tokens or limit,
        output_image=info.tokens_for_image_size(inputs.image_size) if (wants_image and info is not None) else 0,
        images_out=1 if wants_image else 0,
        inputs=inputs,
    )


def estimate_tokens(model: str, request: RenderedRequest, images: list[ImageRef], inputs: EstimateInputs) -> TokenEstimate:
    """Expected input tokens and the most output one request can use."""
    return estimate_with(config_tokens(model, inputs), sum(text_tokens(t) for t in texts(request)), images)


def estimate_with(fixed: ConfigTokens, input_text: int, images: list[ImageRef]) -> TokenEstimate:
    """A request's estimate from its config's parts, its input text tokens and its input images."""
    return TokenEstimate(
        input_text=input_text,
        input_image=fixed.input_image(images),
        output_text_max=fixed.output_text_max,
        output_image=fixed.output_image,
        images_out=fixed.images_out,
        thinking_level=fixed.inputs.thinking_level,
        thinking_budget=fixed.inputs.thinking_budget,
        service_tier=fixed.inputs.service_tier,
        image_size=fixed.inputs.image_size,
        text_allowed=fixed.inputs.text_allowed,
        aspect_ratio=fixed.inputs.aspect_ratio,
    )


def expected_text_tokens(output_text_max: int, *, wants_image: bool, text_allowed: bool) -> int:
    """Text output one request is expected to produce (thinking not included)."""
    if wants_image:
        return min(IMAGE_CAPTION_TOKENS, output_text_max) if text_allowed else 0
    return min(int(EXPECTED_OUTPUT_FRACTION * output_text_max), TYPICAL_TEXT_OUTPUT_TOKENS)


def expected_thinking_tokens(model: str, level: str | None, budget: int | None) -> int:
    """Thinking tokens one request is expected to use, from its thinking setting or the model default."""
    info = lookup_model(model)
    family = info.family if info is not None else None
    if info is not None and info.family in IMAGE_THINKING_BY_LEVEL:
        table = IMAGE_THINKING_BY_LEVEL[info.family]
        chosen = (level or info.default_thinking).lower() if info.thinking_levels else ""
        return table.get(chosen, max(table.values()))
    if budget is not None and budget >= 0:
        return min(budget, DYNAMIC_THINKING.get(family or "", budget))
    if level:
        return THINKING_BY_LEVEL.get(level.lower(), THINKING_BY_LEVEL["high"])
    if info is None:
        return UNKNOWN_MODEL_THINKING
    if info.default_thinking in THINKING_BY_LEVEL:
        return THINKING_BY_LEVEL[info.default_thinking]
    return DYNAMIC_THINKING.get(info.family, 0)


@dataclass(frozen=True, slots=True)
class ExpectedOutput:
    """The arguments `pricing.expected_cost` takes for one request."""

    output_fraction: float
    thinking_tokens: int


def expected_output(model: str, estimate: TokenEstimate) -> ExpectedOutput:
    """Expected text (as a fraction of the ceiling) and thinking for one request, by the rules above."""
    text = expected_text_tokens(
        estimate.output_text_max, wants_image=estimate.images_out > 0, text_allowed=estimate.text_allowed
    )
    thinking = expected_thinking_tokens(model, estimate.thinking_level, estimate.thinking_budget)
    thinking = min(thinking, max(estimate.output_text_max - text, 0))
    fraction = text / estimate.output_text_max if estimate.output_text_max else 0.0
    return ExpectedOutput(output_fraction=fraction, thinking_tokens=thinking)
