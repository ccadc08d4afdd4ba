"""Rendering: the spec's request templates, compiled once, and a row's variables → a RenderedRequest.

Pure: no files, no network, no clock. A template that refers to a missing variable raises
TemplateProblem; the expander adds which row and which variables there are. Numeric generation
options rendered from a template (`seed: "{{ n }}"`) become numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchrun.errors import SpecError
from batchrun.planning.spec import RequestSpec, is_template
from batchrun.planning.templates import CompiledTemplate, TemplateProblem
from batchrun.records import ImageRef
from batchrun.rendered import RenderedRequest, image_part, rendered_request

NUMERIC_KEYS = frozenset(
    "temperature topP topK candidateCount maxOutputTokens seed presencePenalty frequencyPenalty "
    "thinkingBudget logprobs".split()
)
VARIANT = "variant"

Render = Callable[[dict[str, Any]], Any]


def compile_tree(env, value: Any, path: str, shown: str) -> tuple[Render, bool]:
    """A renderer for a nested value whose string leaves may be templates, and whether any is."""
    if isinstance(value, dict):
        items = [(k, *compile_tree(env, v, f"{path}.{k}", shown)) for k, v in value.items()]
        if not any(t for _, _, t in items):
            return (lambda _v, c=value: c), False
        return (lambda v: {k: r(v) for k, r, _ in items}), True
    if isinstance(value, list):
        elements = [compile_tree(env, v, f"{path}[{i}]", shown) for i, v in enumerate(value)]
        if not any(t for _, t in elements):
            return (lambda _v, c=value: c), False
        return (lambda v: [r(v) for r, _ in elements]), True
    if is_template(value):
        template = compile_template(env, value, path, shown)
        numeric = path.rsplit(".", 1)[-1] in NUMERIC_KEYS
        return (lambda v: _number(template.render(v)) if numeric else template.render(v)), True
    return (lambda _v, c=value: c), False


def compile_template(env, source: str, path: str, shown: str) -> CompiledTemplate:
    """A compiled template; SpecError at `path` when its syntax is wrong."""
    try:
        return CompiledTemplate(env, source)
    except TemplateProblem as problem:
        raise SpecError(shown, path, str(problem)) from None


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class RequestTemplates:
    """The spec's `request` section compiled: renders the parts of one row's RenderedRequest."""

    def __init__(self, env, request: RequestSpec, shown: str) -> None:
        self.prompt = compile_template(env, request.prompt, "request.prompt", shown)
        self.system = compile_template(env, request.system, "request.system", shown) if request.system else None
        self.system_text = self.system.constant if self.system is not None else None
        self.images = [compile_template(env, s, f"request.images[{i}]", shown) for i, s in enumerate(request.images)]
        self.config, self.config_templated = compile_tree(
            env, request.generation_config, "request.generation_config", shown
        )
        # Parts without templates are the same for every request: worked out once, here.
        self.constant_config = None if self.config_templated else self.config({})
        self.seed_base = _seed_base(request.generation_config)
        self.variants = request.variants
        self.extras = [(key, *compile_tree(env, value, path, shown), path)
                       for key, value, path in (("safetySettings", request.safety_settings, "request.safety_settings"),
                                                ("extra_body", request.extra_body, "request.extra_body"))]
        self.tools = (*compile_tree(env, request.tools, "request.tools", shown), "request.tools")

    def options(self, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The generation options of a row (TemplateProblem when a variable is missing)."""
        config = self.config(variables) if self.config_templated else self.constant_config
        if self.variants > 1 and self.seed_base is not None:
            config = {**(config or {}), "seed": self.seed_base + variables[VARIANT]}
        return config

    def request(self, system: str | None, prompt: str, refs: list[ImageRef], options: dict[str, Any] | None,
                extras: dict[str, Any], tools: Any) -> RenderedRequest:
        """The RenderedRequest of rendered parts."""
        parts = [{"text": prompt}, *(image_part(ref) for ref in refs)]
        return rendered_request(system, parts, options, tools, extras)


def _seed_base(config: dict[str, Any]) -> int | None:
    """The seed variant 0 gets (the spec's own, or 0), or None when the spec sets it from a template."""
    seed = config.get("seed", 0)
    if is_template(seed):
        return None
    return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else 0
