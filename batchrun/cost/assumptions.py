"""What an estimate without a pilot assumes of each request, and why: the rules made readable.

Input: the manifest's estimate columns with the per-row rules applied (`estimate._with_row_rules`:
`exp_text`, `level`, `budget`, `image_size`). Output: per model, one `Assumption` for each kind of
request it holds (alike in thinking setting, image size, modalities and output ceiling): the text
and thinking tokens expected of each request and the rule that gave them, the ceiling the high
bound takes (the request's `maxOutputTokens`, else the model's practical ceiling,
`modeltable.practical_output_tokens`), and the setting that would narrow it. The figures are the
ones `estimate.py` prices; this module only says where they come from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.cost import tokens
from batchrun.cost.modeltable import (
    IMAGE_CAPTION_CEILING,
    ModelInfo,
    lookup_model,
    practical_output_tokens,
)

_KEYS = ["model", "level", "budget", "image_size", "est_text_allowed", "image", "est_output_text_tokens_max", "exp_text"]
MIN_SUGGESTED_CEILING = 1024
GEMINI3_IMAGE_THINKING_WHY = ("Gemini 3 image models think by default: a 1K image was reported at about 2,000 "
                              "output tokens against 1,120 for the image alone")


@dataclass(frozen=True, slots=True)
class Assumption:
    """What one kind of request of a model is taken to spend, per request, and why."""

    requests: int
    output_text_tokens: int
    output_text_rule: str
    thinking_tokens: int
    thinking_rule: str
    ceiling_tokens: int  # text and thinking together: what the high bound takes
    ceiling_rule: str
    narrow: str | None  # the setting that would narrow the high bound, when one would

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def assumptions_by_model(table: pa.Table) -> dict[str, list[Assumption]]:
    """Each model's assumptions, one for each kind of request, the most requests first."""
    table = table.append_column("image", pc.greater(table["est_images_out"], 0))
    groups = table.group_by(_KEYS, use_threads=False).aggregate([([], "count_all")]).to_pylist()
    out: dict[str, list[Assumption]] = {}
    for group in sorted(groups, key=lambda g: (g["model"], -g["count_all"])):
        out.setdefault(group["model"], []).append(_assumption(group))
    return out


def _assumption(group: dict[str, Any]) -> Assumption:
    model, ceiling, text = group["model"], group["est_output_text_tokens_max"], group["exp_text"]
    budget = int(group["budget"]) if group["budget"] is not None else None
    thinking = min(tokens.expected_thinking_tokens(model, group["level"], budget), max(ceiling - text, 0))
    info = lookup_model(model)
    ceiling_rule, narrow = _ceiling_why(info, group, text + thinking)
    return Assumption(
        requests=group["count_all"],
        output_text_tokens=text,
        output_text_rule=_text_why(group["image"], group["est_text_allowed"], ceiling, text),
        thinking_tokens=thinking,
        thinking_rule=_thinking_why(model, info, group["level"], budget),
        ceiling_tokens=ceiling,
        ceiling_rule=ceiling_rule,
        narrow=narrow,
    )


def _text_why(image: bool, text_allowed: bool, ceiling: int, text: int) -> str:
    if image and not text_allowed:
        return "none: responseModalities is IMAGE only"
    if image:
        return f"a short caption beside the image ({tokens.IMAGE_CAPTION_TOKENS} tokens; TEXT is allowed)"
    if text == tokens.TYPICAL_TEXT_OUTPUT_TOKENS:
        return f"a typical answer of {tokens.TYPICAL_TEXT_OUTPUT_TOKENS:,} tokens (at most that, whatever the ceiling)"
    return f"{tokens.EXPECTED_OUTPUT_FRACTION:g} of the {ceiling:,}-token ceiling"


def _thinking_why(model: str, info: ModelInfo | None, level: str | None, budget: int | None) -> str:
    if info is not None and info.family in tokens.IMAGE_THINKING_BY_LEVEL:
        setting = f"thinkingLevel {level}" if level else f"its default ({info.default_thinking})"
        return f"{info.family} at {setting}; {GEMINI3_IMAGE_THINKING_WHY}"
    if budget == 0:
        return "thinkingBudget 0 turns thinking off"
    if budget is not None and budget > 0:
        return f"thinkingBudget {budget:,}, of which a typical request spends this much"
    if level:
        return f"thinkingLevel {level}"
    if info is None:
        return f"an unknown model: {tokens.UNKNOWN_MODEL_THINKING:,} assumed"
    if info.default_thinking in tokens.THINKING_BY_LEVEL:
        return f"the model's default thinkingLevel ({info.default_thinking})"
    if info.default_thinking == "dynamic":
        return "the model's default dynamic thinking: what a typical request spends"
    return "the model does not think unless asked"


def _ceiling_why(info: ModelInfo | None, group: dict[str, Any], expected: int) -> tuple[str, str | None]:
    """Where the ceiling comes from, and the setting that would narrow it (None when it is already set)."""
    ceiling = group["est_output_text_tokens_max"]
    if info is None:
        if ceiling == tokens.DEFAULT_MAX_OUTPUT_TOKENS:
            return f"an unknown model: {ceiling:,} assumed", _narrow(expected)
        return "the request's maxOutputTokens", None
    practical = practical_output_tokens(info, group["image_size"], group["est_text_allowed"])
    if ceiling == practical and info.thinking_ceiling is not None:
        return _image_ceiling_words(info, group["image_size"], group["est_text_allowed"]), _narrow(ceiling, image=True)
    if ceiling == info.max_output_tokens:
        return "no maxOutputTokens: the model's own output limit, which bounds text and thinking together", _narrow(expected)
    return "the request's maxOutputTokens", None


def _image_ceiling_words(info: ModelInfo, image_size: str | None, text_allowed: bool) -> str:
    parts = [f"{info.thinking_ceiling:,} thinking"]
    if info.interim_images:
        parts.append(f"{info.interim_images} interim images x {info.tokens_for_image_size(image_size):,}")
    if text_allowed:
        parts.append(f"{IMAGE_CAPTION_CEILING} caption")
    return f"no maxOutputTokens: the model's practical ceiling ({' + '.join(parts)}; batchrun.cost.modeltable)"


def _narrow(spend: int, *, image: bool = False) -> str:
    """The one line naming the setting: an image model's practical ceiling, else twice the expected spend."""
    if image:
        return (f"set generationConfig.maxOutputTokens to {spend:,} to bound it "
                "(a reply that would spend more is cut short, without its image)")
    suggested = max(MIN_SUGGESTED_CEILING, 1 << (2 * spend - 1).bit_length())
    return (f"set generationConfig.maxOutputTokens to {suggested:,} to bound it "
            "(twice what a request is expected to spend; a longer reply is cut short)")


def assumption_lines(assumptions: list[Assumption]) -> list[str]:
    """The text report's Assumptions block of one model."""
    lines = ["  assumptions (a request)" if len(assumptions) == 1 else "  assumptions (a request, by kind)"]
    for a in assumptions:
        indent = "    "
        if len(assumptions) > 1:
            lines.append(f"    {a.requests:,} request{'s' if a.requests != 1 else ''}:")
            indent = "      "
        lines += [
            f"{indent}text {a.output_text_tokens:,}: {a.output_text_rule}",
            f"{indent}thinking {a.thinking_tokens:,}: {a.thinking_rule}",
            f"{indent}high {a.ceiling_tokens:,} text and thinking: {a.ceiling_rule}",
        ]
        if a.narrow:
            lines.append(f"{indent}  {a.narrow}")
    return lines
