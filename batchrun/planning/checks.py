"""Checks of a request's generation config against what its model family accepts.

Used twice: on the spec's literal values at load, and on each rendered body during expansion (a
templated `aspectRatio` is only known per row). Unknown models skip the checks with a warning.
"""

from __future__ import annotations

import difflib
from typing import Any

from batchrun.cost.modeltable import ModelInfo, lookup_model
from batchrun.errors import SpecError
from batchrun.planning.templatesyntax import is_template

GC = "request.generation_config"
GENERATION_CONFIG_KEYS = (
    "temperature topP topK candidateCount maxOutputTokens stopSequences seed presencePenalty "
    "frequencyPenalty responseMimeType responseSchema responseJsonSchema responseModalities "
    "imageConfig thinkingConfig mediaResolution responseLogprobs logprobs speechConfig "
    "enableEnhancedCivicAnswers"
).split()


def check_spec(spec: Any, shown: str) -> list[str]:
    """Validate the spec's literal generation config; return warnings (an unknown model)."""
    warnings: list[str] = []
    config = spec.request.generation_config
    for key in config:
        if key in ("serviceTier", "service_tier"):
            raise SpecError(shown, f"{GC}.{key}", "the service tier is not a generationConfig key; write "
                            "`tier: flex` (or priority) at the top of the spec, or run with --tier flex")
        if key not in GENERATION_CONFIG_KEYS:
            hint = difflib.get_close_matches(key, GENERATION_CONFIG_KEYS, n=1) or _camel_hint(key)
            fix = f"did you mean '{hint[0]}'?" if hint else "see the generationConfig reference"
            raise SpecError(shown, f"{GC}.{key}", f"unknown generationConfig key; {fix}")
    if is_template(spec.model):  # each rendered model is checked during expansion
        return warnings
    info = lookup_model(spec.model)
    if info is None:
        warnings.append(
            f"{shown}: model: '{spec.model}' is not in batchrun's model table; "
            "its image sizes and thinking options are not checked"
        )
        return warnings
    problem = config_problem(info, spec.model, config, skip=is_template)
    if problem:
        raise SpecError(shown, *problem)
    return warnings


def _camel_hint(key: str) -> list[str]:
    head, *rest = key.split("_")
    camel = head + "".join(word.title() for word in rest)
    return [camel] if camel in GENERATION_CONFIG_KEYS else []


def config_problem(info: ModelInfo, model: str, config: dict[str, Any], skip=lambda v: False):
    """The first (yaml path, message) problem of a generation config for this model, or None."""
    image = config.get("imageConfig")
    if image is not None:
        if not isinstance(image, dict):
            return f"{GC}.imageConfig", "expected a mapping with aspectRatio and/or imageSize"
        found = _image_problem(info, model, image, skip)
        if found:
            return found
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        return _thinking_problem(info, model, thinking, skip)
    return None


def _image_problem(info: ModelInfo, model: str, image: dict[str, Any], skip):
    where = f"{GC}.imageConfig"
    if not info.image_output:
        return where, f"{model} does not generate images; remove imageConfig or use an image model"
    ratio, size = image.get("aspectRatio"), image.get("imageSize")
    if ratio is not None and not skip(ratio) and str(ratio) not in info.aspect_ratios:
        return f"{where}.aspectRatio", f"{ratio!r} is not one of {', '.join(info.aspect_ratios)}"
    if size is not None and not skip(size) and str(size) not in info.image_sizes:
        fix = f"{size!r} is not one of {', '.join(info.image_sizes)} for {model}"
        if str(size).upper() in info.image_sizes:
            fix += f" (write '{str(size).upper()}': an uppercase K)"
        return f"{where}.imageSize", fix
    for key in image:
        if key not in ("aspectRatio", "imageSize"):
            return f"{where}.{key}", "not accepted by the Gemini API; use aspectRatio or imageSize"
    return None


def _thinking_problem(info: ModelInfo, model: str, thinking: Any, skip):
    where = f"{GC}.thinkingConfig"
    if not isinstance(thinking, dict):
        return where, "expected a mapping such as {thinkingLevel: high}"
    if info.default_thinking == "always on" or (
        not info.thinking_levels and info.thinking_budget is None
    ):
        return where, f"{model} has no thinking controls; remove thinkingConfig"
    level, budget = thinking.get("thinkingLevel"), thinking.get("thinkingBudget")
    if level is not None and not skip(level):
        if not info.thinking_levels:
            return f"{where}.thinkingLevel", f"{model} takes thinkingBudget, not thinkingLevel"
        if str(level).lower() not in info.thinking_levels:
            return f"{where}.thinkingLevel", f"{level!r} is not one of {', '.join(info.thinking_levels)}"
    if budget is not None and not skip(budget):
        return _budget_problem(info, model, budget, f"{where}.thinkingBudget")
    return None


def _budget_problem(info: ModelInfo, model: str, budget: Any, where: str):
    if info.thinking_budget is None:
        levels = ", ".join(info.thinking_levels)
        return where, f"{model} takes thinkingLevel ({levels}), not thinkingBudget"
    if not isinstance(budget, int) or isinstance(budget, bool):
        return where, f"expected a whole number, got {budget!r}"
    low, high = info.thinking_budget
    if budget == -1 or (budget == 0 and info.budget_can_disable) or low <= budget <= high:
        return None
    off = ", 0 to turn thinking off" if info.budget_can_disable else ""
    return where, f"{budget} is out of range for {model}: {low} to {high}, -1 for dynamic{off}"
