"""The stratum of every request of a manifest, and its prior cost: what a pilot samples and a projection groups by.

Input: `manifest.parquet` (its estimate columns and `variables`) and a PriceCatalog. Output: one row per
distinct request_id (the first row of a request shared by several), with
    request_id, stratum (a short label such as `gemini-3.1-flash-image 1K 16:9 v0 short`),
    model, image_size, aspect_ratio, variant, tier, band, input_text_tokens,
    expected_usd, high_usd (the request's prior at the standard tier, by estimate.py's row rules;
    null when the model's price is unknown).
A stratum is what makes requests cost alike: the model, the image size and aspect ratio asked for, the
variant (`request.variants`), the tier named in the body, and a prompt-length band. The band is the tercile
of the request's input text tokens within its model: `short` up to the model's 1/3 quantile, `long` above
its 2/3 quantile, `mid` between (a model whose prompts are all alike has them all `short`). A part the
request does not name is left out of the label. Vectorised with pyarrow: only the few distinct price keys
and models reach Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.cost import tokens
from batchrun.cost.estimate import MANIFEST_COLUMNS, read_manifest_columns
from batchrun.cost.pricing import LONG_CONTEXT_TOKENS, PER_MILLION, PriceCatalog, PriceEntry
from batchrun.planning.rendering import VARIANT

BANDS = ("short", "mid", "long")
_KEY_PARTS = ["model", "est_thinking_level", "est_thinking_budget", "long", "est_image_size"]
_VARIANT_PATTERN = '(?:^\\{|,)"' + VARIANT + '":(?P<v>\\d+)'
_OPTIONAL = ["est_aspect_ratio"]  # a column older manifests lack (read as null)


@dataclass(frozen=True, slots=True)
class Stratum:
    """What makes requests cost alike; `label` is how reports name it."""

    model: str
    image_size: str | None = None
    aspect_ratio: str | None = None
    variant: int | None = None
    tier: str | None = None
    band: str = "short"

    @property
    def label(self) -> str:
        parts = [self.model, self.image_size, self.aspect_ratio,
                 None if self.variant is None else f"v{self.variant}", self.tier, self.band]
        return " ".join(p for p in parts if p)


def stratum_table(manifest_path: Path, catalog: PriceCatalog | None = None) -> pa.Table:
    """Every distinct request of a manifest with its stratum and its prior expected/high cost (standard tier)."""
    catalog = catalog or PriceCatalog.load()
    table = _read(Path(manifest_path))
    table = _with_bands(table)
    table = _with_prior(table, catalog)
    return pa.table({
        "request_id": table["request_id"], "stratum": _labels(table),
        "model": table["model"], "image_size": table["est_image_size"], "aspect_ratio": table["est_aspect_ratio"],
        "variant": table["variant"], "tier": table["tier"], "band": table["band"],
        "input_text_tokens": table["est_input_text_tokens"],
        "expected_usd": table["expected_usd"], "high_usd": table["high_usd"],
    })


def _labels(table: pa.Table) -> pa.ChunkedArray:
    """`Stratum.label` of every row, vectorised: the parts a request names, joined by spaces."""
    variant = pc.binary_join_element_wise("v", pc.cast(table["variant"], pa.string()), "")  # null stays null
    parts = [table["model"], table["est_image_size"], table["est_aspect_ratio"], variant, table["tier"], table["band"]]
    return pc.binary_join_element_wise(*parts, " ", null_handling="skip")


def _read(path: Path) -> pa.Table:
    """The estimate columns, variables and aspect ratio of the first row of each request, in manifest order."""
    names = set(pq.read_schema(path).names)
    table = read_manifest_columns(path)
    extra = pq.read_table(path, columns=["request_id", "variables", *[c for c in _OPTIONAL if c in names]])
    extra = extra.take(_first_rows(extra["request_id"]))
    for column in _OPTIONAL:
        if column not in names:
            extra = extra.append_column(column, pa.nulls(len(extra), pa.string()))
    table = table.append_column("est_aspect_ratio", extra["est_aspect_ratio"])
    found = pc.extract_regex(extra["variables"], _VARIANT_PATTERN)
    variant = pc.cast(pc.struct_field(found, "v"), pa.int64())
    table = table.append_column("variant", variant)
    return table.append_column("tier", _tiers(table["est_service_tier"]))


def _first_rows(ids: pa.ChunkedArray) -> pa.Array:
    """Positions of the first row of each request_id, in order (as `read_manifest_columns` keeps them)."""
    if pc.count_distinct(ids).as_py() == len(ids):
        return pa.array(range(len(ids)), pa.int64())
    numbered = pa.table({"id": ids, "_i": pa.array(range(len(ids)), pa.int64())})
    firsts = numbered.group_by("id", use_threads=False).aggregate([("_i", "min")])["_i_min"]
    return firsts.take(pc.sort_indices(firsts))


def _tiers(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """The tier a body names, lower case without SERVICE_TIER_; null when it names none."""
    lower = pc.utf8_lower(raw)
    return pc.replace_substring_regex(lower, "^service_tier_", "")


def _with_bands(table: pa.Table) -> pa.Table:
    """Adds `band`: the tercile of input text tokens within the request's model."""
    models = table["model"]
    counts = table["est_input_text_tokens"]
    band = pa.nulls(len(table), pa.string())
    for model in pc.unique(models).to_pylist():
        mine = pc.equal(models, model)
        low, high = pc.quantile(counts.filter(mine), q=[1 / 3, 2 / 3], interpolation="lower").to_pylist()
        named = pc.if_else(pc.less_equal(counts, low), "short", pc.if_else(pc.greater(counts, high), "long", "mid"))
        band = pc.if_else(mine, named, band)
    return table.append_column("band", band)


def _with_prior(table: pa.Table, catalog: PriceCatalog) -> pa.Table:
    """Adds `expected_usd` and `high_usd` per request at the standard tier (estimate.py's row rules)."""
    table = _row_rules(table)
    key = _price_key(table)
    distinct = table.select(_KEY_PARTS).append_column("key", key)
    distinct = distinct.group_by(["key", *_KEY_PARTS], use_threads=False).aggregate([])
    facts = pa.Table.from_pylist([_key_facts(row, catalog) for row in distinct.to_pylist()], schema=_FACTS)
    facts = facts.take(pc.index_in(key, value_set=facts["key"]))  # each row's facts, in row order
    for name in _FACTS.names[1:]:
        table = table.append_column(name, facts[name])
    return _priced(table)


_FACTS = pa.schema([("key", pa.string()), ("thinking_each", pa.int64()), ("image_each", pa.int64()),
                    ("in_rate", pa.float64()), ("image_in_rate", pa.float64()), ("out_rate", pa.float64()),
                    ("image_out_rate", pa.float64())])


def _row_rules(table: pa.Table) -> pa.Table:
    """Expected text per request and the room its ceiling leaves for thinking, as estimate.py reckons them."""
    allowed, ceiling = table["est_text_allowed"], table["est_output_text_tokens_max"]
    image_text = pc.if_else(allowed, pc.min_element_wise(ceiling, tokens.IMAGE_CAPTION_TOKENS), 0)
    share = pc.cast(pc.floor(pc.multiply(pc.cast(ceiling, pa.float64()), tokens.EXPECTED_OUTPUT_FRACTION)), pa.int64())
    text_text = pc.min_element_wise(share, tokens.TYPICAL_TEXT_OUTPUT_TOKENS)
    exp_text = pc.cast(pc.if_else(pc.greater(table["est_images_out"], 0), image_text, text_text), pa.int64())
    prompt = pc.add(table["est_input_text_tokens"], table["est_input_image_tokens"])
    table = table.append_column("exp_text", exp_text)
    table = table.append_column("headroom", pc.max_element_wise(pc.subtract(ceiling, exp_text), 0))
    return table.append_column("long", pc.greater(prompt, LONG_CONTEXT_TOKENS))


def _price_key(table: pa.Table) -> pa.ChunkedArray:
    """One string per distinct (model, thinking level, budget, >200k, image size): nulls written as '~'."""
    parts = [pc.fill_null(pc.cast(table[name], pa.string()), "~") for name in _KEY_PARTS]
    return pc.binary_join_element_wise(*parts, "|")


def _key_facts(row: dict[str, Any], catalog: PriceCatalog) -> dict[str, Any]:
    """Thinking tokens expected per request, image tokens per image and the rates of one price key."""
    budget = int(row["est_thinking_budget"]) if row["est_thinking_budget"] is not None else None
    thinking = tokens.expected_thinking_tokens(row["model"], row["est_thinking_level"], budget)
    price = catalog.lookup(row["model"])
    return {"key": row["key"], "thinking_each": thinking, "image_each": _image_each(price, row["est_image_size"]),
            **_rates(price, row["long"])}


def _image_each(price: PriceEntry | None, size: str | None) -> int:
    """Output image tokens of one image when the manifest has none for it (the price table's, by size)."""
    per_image = price.output_image_tokens if price is not None else None
    if not per_image:
        return 0
    return per_image.get(size or "1K", max(per_image.values()))


def _rates(price: PriceEntry | None, long: bool) -> dict[str, float | None]:
    if price is None:
        return {"in_rate": None, "image_in_rate": None, "out_rate": None, "image_out_rate": None}
    pick = lambda base, above: above if (long and above is not None) else base  # noqa: E731
    in_rate = pick(price.input, price.input_above_200k)
    return {"in_rate": in_rate, "image_in_rate": price.input_image if price.input_image is not None else in_rate,
            "out_rate": pick(price.output, price.output_above_200k), "image_out_rate": price.output_image}


def _priced(table: pa.Table) -> pa.Table:
    """Adds expected_usd and high_usd: the tokens of each request times its rates (a zero count needs no rate)."""
    thinking = pc.min_element_wise(table["thinking_each"], table["headroom"])
    image_out = pc.if_else(pc.and_(pc.equal(table["est_output_image_tokens"], 0), pc.greater(table["est_images_out"], 0)),
                           pc.multiply(pc.cast(table["est_images_out"], pa.int64()), table["image_each"]),
                           table["est_output_image_tokens"])
    fixed = _plus(_bill(table["est_input_text_tokens"], table["in_rate"]),
                  _bill(table["est_input_image_tokens"], table["image_in_rate"]),
                  _bill(image_out, table["image_out_rate"]))
    expected = _plus(fixed, _bill(pc.add(table["exp_text"], thinking), table["out_rate"]))
    high = _plus(fixed, _bill(table["est_output_text_tokens_max"], table["out_rate"]))
    expected = pc.divide(expected, float(PER_MILLION))
    high = pc.max_element_wise(pc.divide(high, float(PER_MILLION)), expected)
    return table.append_column("expected_usd", expected).append_column("high_usd", high)


def _bill(count: Any, rate: Any) -> Any:
    """count x rate; 0 where count is 0 whatever the rate, null where a needed rate is unknown."""
    cost = pc.multiply(pc.cast(count, pa.float64()), rate)
    return pc.if_else(pc.equal(count, 0), 0.0, cost)


def _plus(*parts: Any) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = pc.add(total, part)
    return total


__all__ = ["BANDS", "MANIFEST_COLUMNS", "Stratum", "stratum_table"]
