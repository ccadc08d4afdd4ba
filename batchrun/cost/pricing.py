"""The price catalog and the cost of a request, from its usage or from its estimate.

Inputs: the catalog shipped in `batchrun/data/prices.json`, an optional `--prices FILE` and the spec's
`pricing:` key (later sources win, field by field). Outputs: a `PriceEntry` per model and costs in USD.
Invariant: a model without a price is never costed as $0; every cost function returns None for it.

Rates are USD per million tokens. The formula (reference "Cost formula from usageMetadata"):
    fresh input = prompt - cached; image input at `input_image` (else `input`); cached at `cached_input`;
    text and thinking output at `output`; image output at `output_image`;
    a prompt over 200,000 tokens switches every rate to its `*_above_200k` value where one exists;
    batch and flex multiply every rate except cached input (cached tokens are priced as non-batch);
    priority multiplies every rate but cached input by `priority_multiplier` (75-100% surcharge, reference §1).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
import yaml

from batchrun.errors import UsageError
from batchrun.records import TokenEstimate, Usage

log = logging.getLogger(__name__)

LONG_CONTEXT_TOKENS = 200_000
PER_MILLION = 1_000_000
TIERS = ("standard", "flex", "batch", "priority")


class PriceEntry(pydantic.BaseModel, extra="forbid"):
    """One model's rates in USD per million tokens; also one model under `pricing:` or in --prices."""

    input: float | None = pydantic.Field(None, ge=0)
    input_image: float | None = pydantic.Field(None, ge=0)
    input_above_200k: float | None = pydantic.Field(None, ge=0)
    output: float | None = pydantic.Field(None, ge=0)
    output_above_200k: float | None = pydantic.Field(None, ge=0)
    output_image: float | None = pydantic.Field(None, ge=0)
    cached_input: float | None = pydantic.Field(None, ge=0)
    cached_input_above_200k: float | None = pydantic.Field(None, ge=0)
    batch_multiplier: float = pydantic.Field(0.5, ge=0)
    flex_multiplier: float = pydantic.Field(0.5, ge=0)
    # 75-100% surcharge (reference §1): 1.8 until a model's own rate is known
    priority_multiplier: float = pydantic.Field(1.8, ge=0)
    output_image_tokens: dict[str, int] | None = None
    verified_at: str | None = None
    source: str | None = None
    notes: str | None = None

    @pydantic.field_validator("output_image_tokens", mode="before")
    @classmethod
    def _size_keys_as_text(cls, value: Any) -> Any:
        # YAML reads `512: 747` with an int key; imageSize values are strings on the wire.
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    def multiplier(self, tier: str) -> float:
        """The factor a tier applies to every rate but cached input."""
        if tier == "standard":
            return 1.0
        if tier == "flex":
            return self.flex_multiplier
        if tier == "batch":
            return self.batch_multiplier
        if tier == "priority":
            return self.priority_multiplier
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Tokens to price, by billing class; floats so that sums and expected fractions fit too."""

    input_text: float = 0
    input_image: float = 0
    cached: float = 0
    output_text: float = 0  # text and thinking: one rate
    output_image: float = 0


def price_tokens(
    counts: TokenCounts, price: PriceEntry | None, *, tier: str = "standard", long_context: bool = False
) -> float | None:
    """USD for these tokens at this price and tier; None when the price or a needed rate is unknown."""
    if price is None:
        return None
    in_rate = _pick(price.input, price.input_above_200k, long_context)
    out_rate = _pick(price.output, price.output_above_200k, long_context)
    image_in_rate = price.input_image if price.input_image is not None else in_rate
    cached_rate = _pick(price.cached_input, price.cached_input_above_200k, long_context)
    discounted = _bill(
        (counts.input_text, in_rate),
        (counts.input_image, image_in_rate),
        (counts.output_text, out_rate),
        (counts.output_image, price.output_image),
    )
    # A cached rate we do not know is charged as fresh input: never below the truth.
    cached = _bill((counts.cached, cached_rate if cached_rate is not None else in_rate))
    if discounted is None or cached is None:
        return None
    return round((discounted * price.multiplier(tier) + cached) / PER_MILLION, 10)


def _pick(base: float | None, above: float | None, long_context: bool) -> float | None:
    return above if (long_context and above is not None) else base


def _bill(*parts: tuple[float, float | None]) -> float | None:
    total = 0.0
    for tokens, rate in parts:
        if tokens <= 0:
            continue
        if rate is None:
            return None
        total += tokens * rate
    return total


def cost_usd(usage: Usage, price: PriceEntry | None, *, tier: str = "standard") -> float | None:
    """What one reply cost, from its own usageMetadata; None when the price or the usage is unknown."""
    reported = (usage.prompt, usage.output_text, usage.output_image, usage.thoughts)
    if price is None or all(count is None for count in reported):
        return None
    prompt = usage.prompt or 0
    cached = min(usage.cached or 0, prompt)
    fresh = prompt - cached
    fresh_image = min(usage.prompt_image or 0, fresh)
    counts = TokenCounts(
        input_text=fresh - fresh_image,
        input_image=fresh_image,
        cached=cached,
        output_text=(usage.output_text or 0) + (usage.thoughts or 0),
        output_image=usage.output_image or 0,
    )
    return price_tokens(counts, price, tier=tier, long_context=prompt > LONG_CONTEXT_TOKENS)


def worst_case_cost(
    estimate: TokenEstimate, price: PriceEntry | None, *, tier: str = "standard"
) -> float | None:
    """The most one request can cost: input, the most text and thinking its reply may spend (its
    `maxOutputTokens`, else the model's own limit: never the estimate's practical ceiling, which a reply
    may pass), image output. The budget reserves this, so no reply takes spending past the cap."""
    return _estimate_cost(estimate, price, max(estimate.output_text_limit, estimate.output_text_max), tier)


def expected_cost(
    estimate: TokenEstimate,
    price: PriceEntry | None,
    *,
    output_fraction: float,
    thinking_tokens: int,
    tier: str = "standard",
) -> float | None:
    """What one request is expected to cost: a fraction of its text ceiling plus expected thinking."""
    output_text = output_fraction * estimate.output_text_max + thinking_tokens
    return _estimate_cost(estimate, price, output_text, tier)


def _estimate_cost(
    estimate: TokenEstimate, price: PriceEntry | None, output_text: float, tier: str
) -> float | None:
    counts = TokenCounts(
        input_text=estimate.input_text,
        input_image=estimate.input_image,
        output_text=output_text,
        output_image=estimate.output_image,
    )
    prompt = estimate.input_text + estimate.input_image
    return price_tokens(counts, price, tier=tier, long_context=prompt > LONG_CONTEXT_TOKENS)


class PriceCatalog:
    """Prices by model id: the shipped catalog, then a --prices file, then the spec's `pricing:`."""

    def __init__(self, models: Mapping[str, PriceEntry], aliases: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.aliases = dict(aliases)
        self._warned: set[str] = set()

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, PriceEntry | Mapping[str, Any]] | None = None,
        prices_file: Path | None = None,
    ) -> PriceCatalog:
        """The shipped catalog with the file's and then the spec's entries merged over it."""
        models, aliases = _read_shipped()
        catalog = cls(models, aliases)
        if prices_file is not None:
            catalog._merge(read_prices_file(prices_file), origin=f"--prices {prices_file}")
        if overrides:
            catalog._merge(_validated(overrides, "pricing"), origin="spec pricing:")
        return catalog

    def _merge(self, entries: Mapping[str, PriceEntry], *, origin: str) -> None:
        for name, entry in entries.items():
            name = name.removeprefix("models/")
            given = entry.model_dump(include=entry.model_fields_set)
            given.setdefault("source", origin)
            given.setdefault("verified_at", None)
            base = self.lookup(name) or PriceEntry()
            self.models[name] = base.model_copy(update=given)

    def lookup(self, model: str) -> PriceEntry | None:
        """The entry for a model id or its alias, without warning."""
        name = model.removeprefix("models/")
        if name in self.models:
            return self.models[name]
        target = self.aliases.get(name)
        return self.models.get(target) if target is not None else None

    def price_for(self, model: str) -> PriceEntry | None:
        """The entry for a model id ('models/' ignored, aliases resolved); logs once when there is none."""
        entry = self.lookup(model)
        if entry is None and model not in self._warned:
            self._warned.add(model)
            log.warning("%s", missing_price_message([model]))
        return entry


def _read_shipped() -> tuple[dict[str, PriceEntry], dict[str, str]]:
    raw = json.loads(resources.files("batchrun").joinpath("data/prices.json").read_text("utf-8"))
    models = {name: PriceEntry.model_validate(entry) for name, entry in raw["models"].items()}
    return models, dict(raw.get("aliases", {}))


def read_prices_file(path: Path) -> dict[str, PriceEntry]:
    """A --prices file (YAML or JSON): `{model: entry}`, or the shipped layout `{models: {...}}`."""
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problem = exc.__class__.__name__
        raise UsageError(f"--prices {path}: cannot read it ({problem}); give a YAML or JSON file") from None
    if isinstance(raw, dict) and isinstance(raw.get("models"), dict):
        raw = raw["models"]
    if not isinstance(raw, dict):
        raise UsageError(
            f"--prices {path}: expected a mapping of model id to rates, "
            "e.g. gemini-3.1-flash-image: {output_image: 60}"
        )
    return _validated(raw, f"--prices {path}")


def _validated(entries: Mapping[str, Any], where: str) -> dict[str, PriceEntry]:
    out: dict[str, PriceEntry] = {}
    for model, entry in entries.items():
        if isinstance(entry, PriceEntry):
            out[str(model)] = entry
            continue
        try:
            out[str(model)] = PriceEntry.model_validate(entry)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise UsageError(f"{where}: {model}.{field}: {first['msg']}") from None
    return out


def missing_price_message(models: Iterable[str]) -> str:
    """The fix for models without a price, naming them."""
    names = sorted(set(models))
    example = names[0] if names else "MODEL"
    return (
        f"no price known for {', '.join(names)}: give one under `pricing:` in the job spec "
        f"(pricing: {{{example}: {{input: 0.5, output: 3.0, output_image: 60}}}}, "
        "USD per million tokens) "
        "or in a file passed with --prices FILE; batchrun never counts an unknown price as $0"
    )


def require_prices(models: Iterable[str], catalog: PriceCatalog) -> None:
    """Raise UsageError (exit 2) naming every model without a price; a run with a budget calls this."""
    missing = [model for model in sorted(set(models)) if catalog.lookup(model) is None]
    if missing:
        raise UsageError("a budget is set but " + missing_price_message(missing))
