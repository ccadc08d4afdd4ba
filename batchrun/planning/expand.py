"""Expansion: input rows × matrix × variants × templates → RequestRecords. Pure: no network, no clock.

Same spec and same inputs give the same records, in the same order, with the same request ids.
Order: for each input row (file order), each matrix combination (product of the values in the order
the spec lists keys and values), each variant (`request.variants`, innermost). A missing template
variable, a value the model refuses or an image name no file system holds stops the plan at once;
bad input images are collected (up to ten are named) and reported together.

Every expanded row becomes a record, even when its rendered request is identical to an earlier
row's: such rows share one paid request (`batchrun.planning.identity` gives each its own row id). With
`variants: N`, each variant is a distinct request: the variant number is part of the request id and,
unless the spec sets `seed` from a template itself, the seed is the spec's seed (or 0) plus the variant.

Each row's request is provider-neutral (`batchrun.rendered`); what it is made of lives beside this
module: templates and rendering in `rendering`, request ids and de-duplication in `sharing`, bad
input images in `imageproblems`. The provider's registry entry reads the estimate's inputs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batchrun.cost.modeltable import lookup_model
from batchrun.cost.tokens import ConfigTokens, config_tokens, estimate_with, text_tokens
from batchrun.errors import SpecError
from batchrun.planning.checks import config_problem
from batchrun.planning.imagenames import name_max, name_problem
from batchrun.planning.imageproblems import ImageProblems
from batchrun.planning.inputimages import ImageInspector, ImageProblem
from batchrun.planning.rendering import (
    VARIANT,
    Render,
    RequestTemplates,
    compile_template,
)
from batchrun.planning.sharing import RequestIds, canonical_json, request_id
from batchrun.planning.spec import LoadedSpec, is_template
from batchrun.planning.templates import (
    CompiledTemplate,
    TemplateProblem,
    make_environment,
)
from batchrun.providers.registry import provider_entry
from batchrun.records import ImageRef, RequestRecord, TokenEstimate, body_wants_image
from batchrun.rendered import RenderedRequest

ID_COLUMNS = ("id", "sku")
ESTIMATES_KEPT = 4096  # text-only requests: distinct input text token counts whose TokenEstimate is shared
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$")

__all__ = ["Expander", "PlanCounts", "canonical_json", "request_id"]


@dataclass
class PlanCounts:
    input_rows: int = 0
    requests: int = 0  # records (expanded rows), shared requests included
    duplicates: int = 0  # records whose request an earlier record makes too
    named: bool = False  # some record has an image name
    models: set[str] = field(default_factory=set)


@dataclass
class _ModelFacts:
    """What expansion works out once per model: its table entry and its config's tokens."""

    info: Any
    config_tokens: ConfigTokens | None = None


class Expander:
    """Turns batches of input rows into RequestRecords for one loaded spec."""

    def __init__(self, loaded: LoadedSpec, *, skip_bad_inputs: bool = False) -> None:
        self.loaded = loaded
        spec, shown = loaded.spec, loaded.shown
        env = make_environment()
        self.combos = [dict(zip(spec.matrix, values)) for values in itertools.product(*spec.matrix.values())]
        self.variants = spec.request.variants
        if self.variants > 1:
            self.combos = [{**combo, VARIANT: k} for combo in self.combos for k in range(self.variants)]
        self.templates = RequestTemplates(env, spec.request, shown)
        self.provider = provider_entry(spec.provider.kind)
        self.ids = RequestIds(spec.provider.kind)
        wire_body, provider = self.provider.wire_body, spec.provider
        self.wire_body = lambda request: wire_body(request, provider)  # the id hashes what is sent
        self.model_template = compile_template(env, spec.model, "model", shown) if is_template(spec.model) else None
        self._models: dict[str, _ModelFacts] = {}
        self._estimates: dict[tuple[str, int], TokenEstimate] = {}
        name = spec.output.image_name
        self.image_name = compile_template(env, name, "output.image_name", shown) if name else None
        self.name_max = name_max(loaded.output_dir)
        self.warnings: list[str] = []  # found while expanding: a rendered model not in the model table
        inline_limit = None if self.provider.files_api else spec.provider.inline_limit
        # the plan swaps in an inspector that knows URLs and image_prep, with the same inline limit
        self.inspector = ImageInspector(loaded.folder, inline_limit=inline_limit)
        self.image_problems = ImageProblems(shown, skip=skip_bad_inputs)
        self.counts = PlanCounts()
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
        self.ids.forget()

    def finish(self) -> None:
        """Raise the collected image problems, if any."""
        self.image_problems.raise_collected()

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

    def _ident(self, row: dict[str, Any]) -> str:
        return str(row.get(self.id_column, "")) if self.id_column else ""

    def _render(self, template: CompiledTemplate, variables, path: str, number: int, row) -> str:
        return self._rendered(template.render, variables, path, number, row)

    def _rendered(self, render: Render, variables, path: str, number: int, row) -> Any:
        try:
            return render(variables)
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
        prompt = self._render(self.templates.prompt, variables, "request.prompt", number, row)
        refs = self._image_refs(variables, number, row) if self.templates.images else []
        if refs is None:
            return None
        request = self._request(prompt, refs, variables, number, row, model, facts)
        key = self.ids.add(self.wire_body(request), model, variables[VARIANT] if self.variants > 1 else None)
        self.counts.duplicates = self.ids.duplicates
        output_name = self._output_name(variables, number, row) if body_wants_image(request) else None
        self.counts.named = self.counts.named or output_name is not None
        seq = self.counts.requests
        self.counts.requests += 1
        return RequestRecord(
            request_id=key.hex(),
            seq=seq,
            model=model,
            body=request,
            variables=variables,
            images=refs,
            output_name=output_name,
            estimate=self._estimate(request, prompt, refs, model, facts),
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
            facts = _ModelFacts(lookup_model(model))
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

    def _estimate(self, request: RenderedRequest, prompt: str, refs: list[ImageRef], model: str,
                  facts: _ModelFacts) -> TokenEstimate:
        """`tokens.estimate_tokens` of this request; a constant config's part is worked out once."""
        fixed = facts.config_tokens
        if fixed is None:
            fixed = config_tokens(model, self.provider.estimate_inputs(request))
            if not self.templates.config_templated and self.variants == 1:
                facts.config_tokens = fixed
        input_text = text_tokens(prompt)
        if request["system"] is not None:
            input_text += text_tokens(request["system"])
        if refs or self.templates.config_templated or self.variants > 1:
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
        for index, template in enumerate(self.templates.images):
            key = f"request.images[{index}]"
            path = self._render(template, variables, key, number, row)
            try:
                refs.append(self.inspector.inspect(path))
            except ImageProblem as problem:
                self.image_problems.add(key, number, f"{self._where(number, row)}: {problem}",
                                        image=path, ident=self._ident(row), reason=str(problem))
                return None
        return refs

    def _request(self, prompt: str, refs: list[ImageRef], variables, number: int, row, model: str,
                 facts: _ModelFacts) -> RenderedRequest:
        templates = self.templates
        system = templates.system_text
        if templates.system is not None and system is None:
            system = self._render(templates.system, variables, "request.system", number, row)
        options = self._rendered(templates.options, variables, "request.generation_config", number, row)
        if options and templates.config_templated and facts.info is not None:
            self._check_config(options, number, row, model, facts)
        extras = {}
        for key, render, templated, path in templates.extras:
            value = self._rendered(render, variables, path, number, row) if templated else render(variables)
            if value:
                extras[key] = value
        render, templated, path = templates.tools
        tools = self._rendered(render, variables, path, number, row) if templated else render(variables)
        return templates.request(system, prompt, refs, options, extras, tools)

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
