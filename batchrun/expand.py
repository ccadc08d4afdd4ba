"""Expansion: input rows × matrix × variants × templates → RequestRecords. Pure: no network, no clock.

Same spec and same inputs give the same records, in the same order, with the same request ids.
Order: for each input row (file order), each matrix combination (product of the values in the order
the spec lists keys and values), each variant (`request.variants`, innermost). A missing template
variable, a value the model refuses or an image name no file system holds stops the plan at once;
bad input images are collected (up to ten are named) and reported together.

Every expanded row becomes a record, even when its rendered request is identical to an earlier
row's: such rows share one paid request (`batchrun.identity` gives each its own row id). With
`variants: N`, each variant is a distinct request: the variant number is part of the request id and,
unless the spec sets `seed` from a template itself, the seed is the spec's seed (or 0) plus the variant.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re

import orjson
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .checks import config_problem
from .errors import SpecError, SpecProblems
from .imagenames import name_max, name_problem
from .inputimages import ImageInspector, ImageProblem
from .modeltable import lookup_model
from .records import IMAGE_PLACEHOLDER_PREFIX, ImageRef, RequestRecord, TokenEstimate, body_wants_image
from .spec import LoadedSpec, is_template
from .templates import CompiledTemplate, TemplateProblem, make_environment
from .tokens import ConfigTokens, config_tokens, estimate_with, text_tokens

NUMERIC_KEYS = frozenset(
    "temperature topP topK candidateCount maxOutputTokens seed presencePenalty frequencyPenalty "
    "thinkingBudget logprobs".split()
)
ID_COLUMNS = ("id", "sku")
ESTIMATES_KEPT = 4096  # text-only requests: distinct input text token counts whose TokenEstimate is shared


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same value always gives the same bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value orjson refuses (a non-string key, a huge int): same rule, slower
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_id(provider_kind: str, model: str, body: dict[str, Any], variant: int | None = None) -> str:
    """A stable id of what would be sent; images are in the body as their content hash."""
    identity: dict[str, Any] = {"provider": provider_kind, "model": model, "body": body}
    if variant is not None:
        identity["variant"] = variant
    return hashlib.sha256(canonical_json(identity)).hexdigest()[:32]


Render = Callable[[dict[str, Any]], Any]


def compile_tree(env, value: Any, path: str, shown: str) -> tuple[Render, bool]:
    """A renderer for a nested value whose string leaves may be templates, and whether any is."""
    if isinstance(value, dict):
        items = [(k, *compile_tree(env, v, f"{path}.{k}", shown)) for k, v in value.items()]
        if not any(t for _, _, t in items):
            return (lambda _v, c=value: c), False
        return (lambda v: {k: r(v) for k, r, _ in items}), True
    if isinstance(value, list):
        items = [compile_tree(env, v, f"{path}[{i}]", shown) for i, v in enumerate(value)]
        if not any(t for _, t in items):
            return (lambda _v, c=value: c), False
        return (lambda v: [r(v) for r, _ in items]), True
    if is_template(value):
        template = _compile(env, value, path, shown)
        numeric = path.rsplit(".", 1)[-1] in NUMERIC_KEYS
        return (lambda v: _number(template.render(v)) if numeric else template.render(v)), True
    return (lambda _v, c=value: c), False


def _compile(env, source: str, path: str, shown: str) -> CompiledTemplate:
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


MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$")
VARIANT = "variant"


@dataclass
class PlanCounts:
    input_rows: int = 0
    requests: int = 0  # records (expanded rows), shared requests included
    duplicates: int = 0  # records whose request an earlier record makes too
    named: bool = False  # some record has an image name
    models: set[str] = field(default_factory=set)


@dataclass
class _ModelFacts:
    """What expansion works out once per model: its table entry, its id tail, its config's tokens."""

    info: Any
    id_tails: dict[int | None, bytes]
    config_tokens: ConfigTokens | None = None


class Expander:
    """Turns batches of input rows into RequestRecords for one loaded spec."""

    def __init__(self, loaded: LoadedSpec) -> None:
        self.loaded = loaded
        spec, shown = loaded.spec, loaded.shown
        env = make_environment()
        request = spec.request
        self.combos = [dict(zip(spec.matrix, values)) for values in itertools.product(*spec.matrix.values())]
        self.variants = request.variants
        if self.variants > 1:
            self.combos = [{**combo, VARIANT: k} for combo in self.combos for k in range(self.variants)]
        self._seed_base = _seed_base(request.generation_config)
        self.prompt = _compile(env, request.prompt, "request.prompt", shown)
        self.system = _compile(env, request.system, "request.system", shown) if request.system else None
        self._system_text = self.system.constant if self.system is not None else None
        self.images = [_compile(env, s, f"request.images[{i}]", shown) for i, s in enumerate(request.images)]
        self.config, self.config_templated = compile_tree(
            env, request.generation_config, "request.generation_config", shown
        )
        # Parts without templates are the same for every request: worked out once, here.
        self._constant_config = None if self.config_templated else self.config({})
        self._extras = [
            (key, *compile_tree(env, value, path, shown), path)
            for key, value, path in (
                ("safetySettings", request.safety_settings, "request.safety_settings"),
                ("tools", request.tools, "request.tools"),
            )
        ]
        self._kind_json = orjson.dumps(spec.provider.kind)
        self.model_template = _compile(env, spec.model, "model", shown) if is_template(spec.model) else None
        self._models: dict[str, _ModelFacts] = {}
        self._estimates: dict[tuple[str, int], TokenEstimate] = {}
        name = spec.output.image_name
        self.image_name = _compile(env, name, "output.image_name", shown) if name else None
        self.name_max = name_max(loaded.output_dir)
        self.warnings: list[str] = []  # found while expanding: a rendered model not in the model table
        self.inspector = ImageInspector(loaded.folder)
        self.image_problems: list[tuple[str, str]] = []  # the first ten; the rest are only counted
        self.image_problem_rows = 0
        self._last_problem_row = 0
        self.counts = PlanCounts()
        # A dict of bytes keys is not tracked by the garbage collector; a set is walked by every full collection.
        self._seen_ids: dict[bytes, None] = {}
        self.id_column: str | None = spec.inputs.id_column
        self._checked_columns = False

    def expand(self, rows: Iterable[dict[str, Any]]) -> Iterator[RequestRecord]:
        """RequestRecords for these rows (numbered on from the rows already seen)."""
        for row in rows:
            self.counts.input_rows += 1
            if not self._checked_columns:
                self._check_columns(row)
            for combo in self.combos:
                variables = {**row, **combo} if combo else row
                record = self._record(variables, self.counts.input_rows, row)
                if record is not None:
                    yield record

    def forget_ids(self) -> None:
        """Drop the request ids seen so far (memory), once every row is expanded."""
        self._seen_ids = {}

    def finish(self) -> None:
        """Raise the collected image problems, if any."""
        if self.image_problem_rows == 1:
            raise self.loaded.error(*self.image_problems[0])
        if self.image_problems:
            raise SpecProblems(self.loaded.shown, self.image_problems, self.image_problem_rows)

    def _check_columns(self, row: dict[str, Any]) -> None:
        self._checked_columns = True
        clash = [key for key in self.loaded.spec.matrix if key in row]
        if self.variants > 1 and VARIANT in row:
            raise self.loaded.error("request.variants", f"'{VARIANT}' is also an input column; rename the column")
        if clash:
            raise self.loaded.error(
                f"matrix.{clash[0]}", f"'{clash[0]}' is also an input column; rename the matrix key"
            )
        if self.id_column is None:
            self.id_column = next((c for c in ID_COLUMNS if c in row), None)
        elif self.id_column not in row:
            raise self.loaded.error("inputs.id_column", f"no column '{self.id_column}' in the input")

    def _where(self, number: int, row: dict[str, Any]) -> str:
        if self.id_column and self.id_column in row:
            return f"row {number} ({self.id_column} {row[self.id_column]!r})"
        return f"row {number}"

    def _render(self, template: CompiledTemplate, variables, path: str, number: int, row) -> str:
        try:
            return template.render(variables)
        except TemplateProblem as problem:
            raise SpecError(self.loaded.shown, path, f"{self._where(number, row)}: {problem}{self._names(problem, row)}") from None

    def _names(self, problem: TemplateProblem, row: dict[str, Any]) -> str:
        if problem.variable is None:
            return ""
        known = ", ".join([*row, *self.loaded.spec.matrix])
        return f"; known variables: {known}"

    def _record(self, variables: dict[str, Any], number: int, row: dict[str, Any]) -> RequestRecord | None:
        model = self._model(variables, number, row)
        facts = self._facts(model, number, row)
        prompt = self._render(self.prompt, variables, "request.prompt", number, row)
        refs = self._image_refs(variables, number, row) if self.images else []
        if refs is None:
            return None
        body = self._body(prompt, refs, variables, number, row, model, facts)
        variant = variables[VARIANT] if self.variants > 1 else None
        key = self._digest(body, model, facts, variant)[:16]
        if key in self._seen_ids:
            self.counts.duplicates += 1
        else:
            self._seen_ids[key] = None
        output_name = self._output_name(variables, number, row) if body_wants_image(body) else None
        self.counts.named = self.counts.named or output_name is not None
        seq = self.counts.requests
        self.counts.requests += 1
        return RequestRecord(
            request_id=key.hex(),
            seq=seq,
            model=model,
            body=body,
            variables=variables,
            images=refs,
            output_name=output_name,
            estimate=self._estimate(body, prompt, refs, model, facts),
            input_row=number,
        )

    def _model(self, variables: dict[str, Any], number: int, row: dict[str, Any]) -> str:
        if self.model_template is None:
            return self.loaded.spec.model
        model = self._render(self.model_template, variables, "model", number, row).strip()
        if not MODEL_NAME.match(model):
            raise self.loaded.error("model", f"{self._where(number, row)}: {model!r} is not a model id; "
                                    "render a name such as gemini-3.1-flash-image")
        return model

    def _facts(self, model: str, number: int, row: dict[str, Any]) -> _ModelFacts:
        """What is known of a model, worked out (and its constant config checked) when first met."""
        facts = self._models.get(model)
        if facts is None:
            facts = _ModelFacts(lookup_model(model), {})
            self._models[model] = facts
            self.counts.models.add(model)
            if self.model_template is not None:
                self._check_model(model, facts, number, row)
        return facts

    def _check_model(self, model: str, facts: _ModelFacts, number: int, row: dict[str, Any]) -> None:
        if facts.info is None:
            self.warnings.append(f"{self.loaded.shown}: model: '{model}' is not in batchrun's model table; "
                                 "its image sizes and thinking options are not checked")
            return
        config = self.loaded.spec.request.generation_config
        problem = config_problem(facts.info, model, config, skip=is_template)
        if problem:
            where, message = problem
            raise SpecError(self.loaded.shown, where, f"{self._where(number, row)}: model {model}: {message}")

    def _digest(self, body: dict[str, Any], model: str, facts: _ModelFacts, variant: int | None) -> bytes:
        """The sha256 whose first 16 bytes, in hex, are `request_id(kind, model, body, variant)`."""
        tail = facts.id_tails.get(variant)
        if tail is None:  # the canonical JSON's keys sorted: body, model, provider, variant
            tail = b',"model":' + orjson.dumps(model) + b',"provider":' + self._kind_json
            tail += (b',"variant":' + orjson.dumps(variant) if variant is not None else b"") + b"}"
            facts.id_tails[variant] = tail
        try:
            payload = b'{"body":' + orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + tail
        except TypeError:
            return bytes.fromhex(request_id(self.loaded.spec.provider.kind, model, body, variant))
        return hashlib.sha256(payload).digest()

    def _estimate(self, body: dict[str, Any], prompt: str, refs: list[ImageRef], model: str,
                  facts: _ModelFacts) -> TokenEstimate:
        """`tokens.estimate_tokens` of this request; a constant config's part is worked out once."""
        fixed = facts.config_tokens
        if fixed is None:
            fixed = config_tokens(model, body.get("generationConfig") or {})
            if not self.config_templated and self.variants == 1:
                facts.config_tokens = fixed
        input_text = text_tokens(prompt)
        if self.system is not None:
            input_text += text_tokens(body["systemInstruction"]["parts"][0]["text"])
        if refs or self.config_templated or self.variants > 1:
            return estimate_with(fixed, input_text, refs)
        key = (model, input_text)
        estimate = self._estimates.get(key)  # frozen, so requests alike can share one
        if estimate is None:
            estimate = estimate_with(fixed, input_text, refs)
            if len(self._estimates) < ESTIMATES_KEPT:
                self._estimates[key] = estimate
        return estimate

    def _image_refs(self, variables, number: int, row) -> list[ImageRef] | None:
        refs: list[ImageRef] = []
        for index, template in enumerate(self.images):
            path = self._render(template, variables, f"request.images[{index}]", number, row)
            try:
                refs.append(self.inspector.inspect(path))
            except ImageProblem as problem:
                if self._last_problem_row != number:  # once per row, not per matrix combination
                    self._last_problem_row = number
                    self.image_problem_rows += 1
                    if len(self.image_problems) < SpecProblems.LISTED:
                        self.image_problems.append((f"request.images[{index}]", f"{self._where(number, row)}: {problem}"))
                return None
        return refs

    def _body(self, prompt: str, refs: list[ImageRef], variables, number: int, row, model: str,
              facts: _ModelFacts) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": prompt}]
        for ref in refs:
            parts.append({"inlineData": {"mimeType": ref.mime, "data": IMAGE_PLACEHOLDER_PREFIX + ref.sha256}})
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
        if self.system is not None:
            system = self._system_text
            if system is None:
                system = self._render(self.system, variables, "request.system", number, row)
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config = self._constant_config
        if self.config_templated:
            config = self._rendered(self.config, variables, "request.generation_config", number, row)
        if self.variants > 1 and self._seed_base is not None:
            config = {**(config or {}), "seed": self._seed_base + variables[VARIANT]}
        if config:
            body["generationConfig"] = config
            if self.config_templated and facts.info is not None:
                self._check_config(config, number, row, model, facts)
        for key, render, templated, path in self._extras:
            value = self._rendered(render, variables, path, number, row) if templated else render(variables)
            if value:
                body[key] = value
        return body

    def _rendered(self, render: Render, variables, path: str, number: int, row) -> Any:
        try:
            return render(variables)
        except TemplateProblem as problem:
            raise SpecError(self.loaded.shown, path, f"{self._where(number, row)}: {problem}{self._names(problem, row)}") from None

    def _check_config(self, config: dict[str, Any], number: int, row, model: str, facts: _ModelFacts) -> None:
        problem = config_problem(facts.info, model, config)
        if problem:
            where, message = problem
            named = f"model {model}: " if self.model_template is not None else ""
            raise SpecError(self.loaded.shown, where, f"{self._where(number, row)}: {named}{message}")

    def _output_name(self, variables, number: int, row) -> str | None:
        if self.image_name is None:
            return None
        name = self._render(self.image_name, variables, "output.image_name", number, row).strip().strip("/")
        problem = name_problem(name, self.name_max)
        if problem:
            raise SpecError(self.loaded.shown, "output.image_name", f"{self._where(number, row)}: {problem}")
        return name


def _seed_base(config: dict[str, Any]) -> int | None:
    """The seed variant 0 gets (the spec's own, or 0), or None when the spec sets it from a template."""
    seed = config.get("seed", 0)
    if is_template(seed):
        return None
    return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else 0
