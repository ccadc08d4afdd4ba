"""What batchrun knows about each Gemini model family: image options, thinking controls, token counts.

Facts from shared reference `gemini-protocol.md` (§1.3 thinking, §1.4 media resolution, §2.2 aspect
ratios, §2.3 output sizes and tokens, §5 input image tokens). A model not listed here is allowed: the
spec loader warns and skips the checks.

The practical output ceiling (`practical_output_tokens`) is what one request realistically spends of
text and thinking when it sets no `maxOutputTokens`; the estimate's high bound and the run's budget
reservation use it. A text model's is its own output limit: nothing else bounds a text answer, and
thinking at a high level may take tens of thousands of tokens (§1.3). An image model's is its
`thinking_ceiling`, plus its interim "thought" images, billed as thinking (§0.4, §6: up to two on
Gemini 3, each the size of the final image, §2.3), plus a caption of at most `IMAGE_CAPTION_CEILING`
tokens when TEXT is allowed, within the model's limit. The thinking ceilings are about twice the
most an image model was seen to think at its highest level (`tokens.IMAGE_THINKING_BY_LEVEL`); a
reply past one is recorded at its true cost, and `maxOutputTokens` makes the bound exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RATIOS_10 = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
RATIOS_14 = RATIOS_10 + ("1:4", "4:1", "1:8", "8:1")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    family: str
    image_output: bool = False
    aspect_ratios: tuple[str, ...] = ()
    image_sizes: tuple[str, ...] = ()
    default_image_size: str | None = None
    output_image_tokens: tuple[tuple[str, int], ...] = ()
    input_image_tokens: int | None = None  # fixed per image (Gemini 3); None: Gemini 2 tiling rule
    thinking_levels: tuple[str, ...] = ()  # accepted thinkingLevel values ("" = no thinkingConfig at all)
    thinking_budget: tuple[int, int] | None = None  # accepted thinkingBudget range besides 0 / -1
    budget_can_disable: bool = False
    default_thinking: str = ""
    max_output_tokens: int = 65536
    thinking_ceiling: int | None = None  # image models: the most thinking a request realistically spends
    interim_images: int = 0  # interim "thought" images a reply may carry before its final one


    def tokens_for_image_size(self, size: str | None) -> int:
        table = dict(self.output_image_tokens)
        return table.get(size or self.default_image_size or "1K", max(table.values(), default=0))


_FLASH_IMAGE_25 = ModelInfo(
    family="gemini-2.5-flash-image",
    image_output=True,
    aspect_ratios=RATIOS_10,
    image_sizes=("1K",),
    default_image_size="1K",
    output_image_tokens=(("1K", 1290),),
    input_image_tokens=None,
    max_output_tokens=32768,
    thinking_ceiling=0,  # does not think (§1.3)
)
_PRO_IMAGE_3 = ModelInfo(
    family="gemini-3-pro-image",
    image_output=True,
    aspect_ratios=RATIOS_10,
    image_sizes=("1K", "2K", "4K"),
    default_image_size="1K",
    output_image_tokens=(("1K", 1120), ("2K", 1120), ("4K", 2000)),
    input_image_tokens=560,
    default_thinking="always on",
    max_output_tokens=32768,
    thinking_ceiling=4096,
    interim_images=2,
)
_FLASH_IMAGE_31 = ModelInfo(
    family="gemini-3.1-flash-image",
    image_output=True,
    aspect_ratios=RATIOS_14,
    image_sizes=("512", "1K", "2K", "4K"),
    default_image_size="1K",
    output_image_tokens=(("512", 747), ("1K", 1120), ("2K", 1680), ("4K", 2520)),
    input_image_tokens=1120,
    thinking_levels=("minimal", "high"),
    default_thinking="minimal",
    max_output_tokens=32768,
    thinking_ceiling=4096,
    interim_images=2,
)
_FLASH_LITE_IMAGE_31 = ModelInfo(
    family="gemini-3.1-flash-lite-image",
    image_output=True,
    aspect_ratios=RATIOS_14,
    image_sizes=("1K",),
    default_image_size="1K",
    output_image_tokens=(("1K", 1120),),
    input_image_tokens=1120,
    thinking_levels=("minimal", "high"),
    default_thinking="minimal",
    max_output_tokens=4096,
    thinking_ceiling=2048,
    interim_images=2,
)


def _text(family: str, *, levels=(), budget=None, disable=False, default="", gemini3=True) -> ModelInfo:
    return ModelInfo(
        family=family,
        input_image_tokens=1120 if gemini3 else None,
        thinking_levels=levels,
        thinking_budget=budget,
        budget_can_disable=disable,
        default_thinking=default,
    )


_G3_FLASH = _text("gemini-3-flash", levels=("minimal", "low", "medium", "high"), default="high")
_G3_PRO = _text("gemini-3.1-pro", levels=("low", "medium", "high"), default="high")
_G31_FLASH_LITE = _text(
    "gemini-3.1-flash-lite", levels=("minimal", "low", "medium", "high"), default="minimal"
)

MODELS: dict[str, ModelInfo] = {
    "gemini-2.5-flash-image": _FLASH_IMAGE_25,
    "gemini-2.5-flash-image-preview": _FLASH_IMAGE_25,
    "gemini-3-pro-image": _PRO_IMAGE_3,
    "gemini-3-pro-image-preview": _PRO_IMAGE_3,
    "gemini-3.1-flash-image": _FLASH_IMAGE_31,
    "gemini-3.1-flash-image-preview": _FLASH_IMAGE_31,
    "gemini-3.1-flash-lite-image": _FLASH_LITE_IMAGE_31,
    "gemini-3.1-flash-lite-image-preview": _FLASH_LITE_IMAGE_31,
    "gemini-2.5-pro": _text("gemini-2.5-pro", budget=(128, 32768), default="dynamic", gemini3=False),
    "gemini-2.5-flash": _text(
        "gemini-2.5-flash", budget=(1, 24576), disable=True, default="dynamic", gemini3=False
    ),
    "gemini-2.5-flash-lite": _text(
        "gemini-2.5-flash-lite", budget=(512, 24576), disable=True, gemini3=False
    ),
    "gemini-3-flash-preview": _G3_FLASH,
    "gemini-3-pro-preview": _G3_PRO,
    "gemini-3.1-pro-preview": _G3_PRO,
    "gemini-3.1-flash-lite": _G31_FLASH_LITE,
    "gemini-3.1-flash-lite-preview": _G31_FLASH_LITE,
}


IMAGE_CAPTION_CEILING = 256  # the longest caption an image reply is taken to carry


def practical_output_tokens(info: ModelInfo, image_size: str | None, text_allowed: bool) -> int:
    """Text and thinking one request realistically spends without `maxOutputTokens` (see the docstring)."""
    if info.thinking_ceiling is None:
        return info.max_output_tokens
    interim = info.interim_images * info.tokens_for_image_size(image_size)
    caption = IMAGE_CAPTION_CEILING if text_allowed else 0
    return min(info.thinking_ceiling + interim + caption, info.max_output_tokens)


def lookup_model(name: str) -> ModelInfo | None:
    """The facts for a model id (a leading 'models/' is ignored), or None for an unknown model."""
    return MODELS.get(name.removeprefix("models/"))


def input_image_tokens(model: str, width: int, height: int) -> int:
    """Tokens one input image costs: Gemini 3 counts a fixed number, Gemini 2 counts 768-px tiles."""
    info = lookup_model(model)
    if info is not None and info.input_image_tokens is not None:
        return info.input_image_tokens
    if info is None and not model.removeprefix("models/").startswith("gemini-2"):
        return 1120  # newer families follow Gemini 3's media-resolution default
    if width <= 384 and height <= 384:
        return 258
    return math.ceil(width / 768) * math.ceil(height / 768) * 258
