"""Expansion: input rows × matrix × templates → RequestRecords. Pure: no network, no clock.

Same spec and same inputs give the same records, in the same order, with the same request ids.
Order: for each input row (file order), each matrix combination (product of the values in the order
the spec lists keys and values). A missing template variable or a value the model refuses stops the
plan at once; bad input images are collected (up to ten are named) and reported together.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import orjson
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .checks import config_problem
from .errors import SpecError, SpecErrors
from .inputimages import ImageInspector, ImageProblem
from .models import lookup_model
from .records import IMAGE_PLACEHOLDER_PREFIX, ImageRef, RequestRecord, TokenEstimate
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


def request_id(provider_kind: str, model: str, body: dict[str, Any]) -> str:
    """A stable id of what would be sent; images are in the body as their content hash."""
    payload = canonical_json({"provider": provider_kind, "model": model, "body": body})
    return hashlib.sha256(payload).hexdigest()[:32]


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


@dataclass
class PlanCounts:
    input_rows: int = 0
    requests: int = 0
    duplicates: int = 0
    models: set[str] = field(default_factory=set)


class Expander:
    """Turns batches of input rows into RequestRecords for one loaded spec."""

    def __init__(self, loaded: LoadedSpec) -> None:
        self.loaded = loaded
        spec, shown = loaded.spec, loaded.shown
        env = make_environment()
        request = spec.request
        self.combos = [dict(zip(spec.matrix, values)) for values in itertools.product(*spec.matrix.values())]
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
        kind_json = orjson.dumps(spec.provider.kind)
        self._id_tail = b',"model":' + orjson.dumps(spec.model) + b',"provider":' + kind_json + b"}"
        self._config_tokens: ConfigTokens | None = None
        self._estimates: dict[int, TokenEstimate] = {}
        name = spec.output.image_name
        self.image_name = _compile(env, name, "output.image_name", shown) if name else None
        self.model_info = lookup_model(spec.model)
        self.inspector = ImageInspector(loaded.folder)
        self.image_problems: list[tuple[str, str]] = []  # the first ten; the rest are only counted
        self.image_problem_rows = 0
        self._last_problem_row = 0
        self.counts = PlanCounts(models={spec.model})
        # A dict of bytes keys is not tracked by the garbage collector; a set is walked by every full collection.
        self._seen_ids: dict[bytes, None] = {}
        self._id_column: str | None = spec.inputs.id_column
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

    def finish(self) -> None:
        """Raise the collected image problems, if any."""
        if self.image_problem_rows == 1:
            raise self.loaded.error(*self.image_problems[0])
        if self.image_problems:
            raise SpecErrors(self.loaded.shown, self.image_problems, self.image_problem_rows)

    def _check_columns(self, row: dict[str, Any]) -> None:
        self._checked_columns = True
        clash = [key for key in self.loaded.spec.matrix if key in row]
        if clash:
            raise self.loaded.error(
                f"matrix.{clash[0]}", f"'{clash[0]}' is also an input column; rename the matrix key"
            )
        if self._id_column is None:
            self._id_column = next((c for c in ID_COLUMNS if c in row), None)
        elif self._id_column not in row:
            raise self.loaded.error("inputs.id_column", f"no column '{self._id_column}' in the input")

    def _where(self, number: int, row: dict[str, Any]) -> str:
        if self._id_column and self._id_column in row:
            return f"row {number} ({self._id_column} {row[self._id_column]!r})"
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
        spec = self.loaded.spec
        prompt = self._render(self.prompt, variables, "request.prompt", number, row)
        refs = self._image_refs(variables, number, row) if self.images else []
        if refs is None:
            return None
        body = self._body(prompt, refs, variables, number, row)
        digest = self._digest(body)
        key = digest[:16]
        if key in self._seen_ids:
            self.counts.duplicates += 1
            return None
        self._seen_ids[key] = None
        output_name = self._output_name(variables, number, row)
        seq = self.counts.requests
        self.counts.requests += 1
        return RequestRecord(
            request_id=key.hex(),
            seq=seq,
            model=spec.model,
            body=body,
            variables=variables,
            images=refs,
            output_name=output_name,
            estimate=self._estimate(body, prompt, refs),
        )

    def _digest(self, body: dict[str, Any]) -> bytes:
        """The sha256 whose first 16 bytes, in hex, are `request_id(kind, model, body)`."""
        try:  # the canonical JSON of {"body", "model", "provider"}: sorted keys put the body first
            payload = b'{"body":' + orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + self._id_tail
        except TypeError:
            spec = self.loaded.spec
            return bytes.fromhex(request_id(spec.provider.kind, spec.model, body))
        return hashlib.sha256(payload).digest()

    def _estimate(self, body: dict[str, Any], prompt: str, refs: list[ImageRef]) -> TokenEstimate:
        """`tokens.estimate_tokens` of this request; a constant config's part is worked out once."""
        fixed = self._config_tokens
        if fixed is None:
            fixed = config_tokens(self.loaded.spec.model, body.get("generationConfig") or {})
            if not self.config_templated:
                self._config_tokens = fixed
        input_text = text_tokens(prompt)
        if self.system is not None:
            input_text += text_tokens(body["systemInstruction"]["parts"][0]["text"])
        if refs or self.config_templated:
            return estimate_with(fixed, input_text, refs)
        estimate = self._estimates.get(input_text)  # frozen, so requests alike can share one
        if estimate is None:
            estimate = estimate_with(fixed, input_text, refs)
            if len(self._estimates) < ESTIMATES_KEPT:
                self._estimates[input_text] = estimate
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
                    if len(self.image_problems) < SpecErrors.LISTED:
                        self.image_problems.append((f"request.images[{index}]", f"{self._where(number, row)}: {problem}"))
                return None
        return refs

    def _body(self, prompt: str, refs: list[ImageRef], variables, number: int, row) -> dict[str, Any]:
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
        if config:
            body["generationConfig"] = config
            if self.config_templated and self.model_info is not None:
                self._check_config(config, number, row)
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

    def _check_config(self, config: dict[str, Any], number: int, row) -> None:
        problem = config_problem(self.model_info, self.loaded.spec.model, config)
        if problem:
            where, message = problem
            raise SpecError(self.loaded.shown, where, f"{self._where(number, row)}: {message}")

    def _output_name(self, variables, number: int, row) -> str | None:
        if self.image_name is None:
            return None
        name = self._render(self.image_name, variables, "output.image_name", number, row).strip().strip("/")
        if not name or name.startswith(".") or ".." in name.split("/") or "\\" in name:
            raise SpecError(
                self.loaded.shown,
                "output.image_name",
                f"{self._where(number, row)}: {name!r} is not a safe relative file name; use letters, digits, '-', '/'",
            )
        return name
