"""What a planned job will cost, from its manifest alone (no network, no key), and calibration.

Inputs: `manifest.parquet` (its estimate columns, named fields the provider read from each rendered
request at plan time: never its body), a PriceCatalog, optional calibration
ratios from an earlier run (`calibration.json` in the output folder), and what the folder's results
already cost (`batchrun.output.spend`, the figure the run's budget starts from). Output: a JobEstimate per
model and tier (standard, flex, batch, and priority when the run asks for it), expected and high, and whether the job fits its budget: the
cap less what results no longer in the manifest cost, since those were paid for all the same.
The work is vectorised with pyarrow: rows are grouped by what prices them alike (model, thinking
setting, >200k prompt, tier named in the body, image size), and only the few groups reach Python.

expected = input + expected text (tokens.expected_text_tokens) + expected thinking
           (tokens.expected_thinking_tokens) + output image tokens, times the model's calibration ratio;
high     = input + the whole text ceiling (maxOutputTokens, else the model's practical ceiling,
           `modeltable.practical_output_tokens`; it bounds text and thinking together) + output image tokens.
Each model also states its assumptions (`assumptions.py`): the text and thinking it expects of a
request and why, the ceiling its high bound takes, and the setting that would narrow it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.cost import tokens
from batchrun.cost.assumptions import Assumption, assumption_lines, assumptions_by_model
from batchrun.cost.lifecycle import lifecycle_warning
from batchrun.cost.pricing import (
    LONG_CONTEXT_TOKENS,
    TIERS,
    PriceCatalog,
    TokenCounts,
    missing_price_message,
    price_tokens,
)
from batchrun.cost.remaining import RemainingCost, pending_requests
from batchrun.output.spend import JobSpend, latest_results, spend_of
from batchrun.planning.manifest import read_columns

CALIBRATION_FILE = "calibration.json"
MANIFEST_COLUMNS = [
    "request_id", "model", "est_input_text_tokens", "est_input_image_tokens",
    "est_output_text_tokens_max", "est_output_image_tokens", "est_images_out",
    "est_thinking_level", "est_thinking_budget", "est_service_tier", "est_image_size", "est_text_allowed",
]
_SUMMED = [
    "est_input_text_tokens", "est_input_image_tokens", "est_output_text_tokens_max",
    "est_output_image_tokens", "est_images_out", "exp_text",
]
_KEYS = ["model", "level", "budget", "long", "tier", "image_size"]
_NAMED = {"level": "est_thinking_level", "budget": "est_thinking_budget", "tier": "est_service_tier",
          "image_size": "est_image_size"}


@dataclass(slots=True)
class ModelEstimate:
    """One model's share of a job: its tokens and its cost per tier, expected and high."""

    model: str
    requests: int = 0
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_text_tokens_expected: int = 0
    output_text_tokens_max: int = 0
    output_image_tokens: int = 0
    images_out: int = 0
    thinking_tokens_expected: int = 0
    cost: dict[str, dict[str, float | None]] = field(default_factory=dict)  # tier -> expected/high
    price_known: bool = True
    price_source: str | None = None
    price_verified_at: str | None = None
    calibration: float | None = None
    warnings: list[str] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)  # what a request is taken to spend, and why


@dataclass(slots=True)
class JobEstimate:
    """The cost of a whole job before it runs; `to_json()` is what `batchrun estimate --json` prints."""

    manifest: str
    models: list[ModelEstimate]
    budget_usd: float | None = None
    budget_tier: str = "standard"
    spent: JobSpend = field(default_factory=JobSpend)  # what the folder's results already cost
    remaining: RemainingCost | None = None  # once some rows are done: what is left, at budget_tier
    projection: Any = None  # once some requests are answered: projected.Projection, per stratum

    @property
    def requests(self) -> int:
        return sum(m.requests for m in self.models)

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tiers the report shows: priority only when the run asks for it."""
        return tuple(t for t in TIERS if t != "priority" or self.budget_tier == "priority")

    def total(self, tier: str, kind: str) -> float | None:
        """The job's cost at a tier ('expected' or 'high'); None when any model's price is unknown."""
        costs = [m.cost[tier][kind] for m in self.models]
        known = [c for c in costs if c is not None]
        return None if len(known) < len(costs) else round(sum(known), 6)

    @property
    def headroom_usd(self) -> float | None:
        """What the budget leaves for sending, after every result's cost (as the run's budget counts it)."""
        return None if self.budget_usd is None else self.budget_usd - self.spent.usd

    def budget_verdict(self) -> tuple[str, str] | None:
        """('fits' | 'expected_fits' | 'over' | 'spent' | 'unknown', one line), or None without a budget."""
        if self.budget_usd is None:
            return None
        if self.spent.usd > 0 and self.spent.usd >= self.budget_usd:
            return "spent", (
                f"the budget is spent: results in the folder already cost {_usd(self.spent.usd)} of the "
                f"{_usd(self.budget_usd)} cap, so a run stops at once; raise --max-cost or budget.max_cost_usd to go on"
            )
        # Results no longer in the manifest were paid for; the manifest's own results are in its estimate.
        cap, tier = self.budget_usd - self.spent.not_in_manifest_usd, self.budget_tier
        expected, high = self.total(tier, "expected"), self.total(tier, "high")
        if expected is None or high is None:
            unknown = [m.model for m in self.models if not m.price_known]
            return "unknown", "cannot check the budget: " + missing_price_message(unknown)
        budget = self._budget_words(cap)
        if high <= cap:
            return "fits", f"fits: even the high bound {_usd(high)} is within the {budget}"
        if expected <= cap:
            return "expected_fits", (
                f"expected {_usd(expected)} fits the {budget}; the high bound {_usd(high)} "
                "does not, and the run stops at the cap if spending goes that way"
            )
        return "over", (
            f"does not fit: expected {_usd(expected)} is over the {budget}; "
            "the run will stop at the cap (exit 4) and a later run with a higher cap goes on"
        )

    def _budget_words(self, cap: float) -> str:
        if not self.spent.not_in_manifest_usd:
            return f"{_usd(cap)} budget"
        return (f"{_usd(cap)} left of the {_usd(self.budget_usd)} budget after {_usd(self.spent.not_in_manifest_usd)} "
                f"spent on results no longer in the manifest")

    def to_json(self) -> dict[str, Any]:
        """A plain dict with every figure of the text report."""
        verdict, headroom = self.budget_verdict(), self.headroom_usd
        return {
            "manifest": self.manifest,
            "requests": self.requests,
            "tier": self.budget_tier,
            "models": [_model_json(m, self.tiers) for m in self.models],
            "total": {t: {k: self.total(t, k) for k in ("expected", "high")} for t in self.tiers},
            "spend_usd": round(self.spent.usd, 6),
            "not_in_manifest_spend_usd": round(self.spent.not_in_manifest_usd, 6),
            "budget": None if verdict is None or headroom is None else {
                "max_cost_usd": self.budget_usd, "tier": self.budget_tier,
                "headroom_usd": round(headroom, 6),
                "verdict": verdict[0], "message": verdict[1],
            },
            "remaining": None if self.remaining is None else self.remaining.to_json(),
            "projection": None if self.projection is None else self.projection.to_json(),
            "rules": RULES,
        }


RULES = {
    "input_text": f"{tokens.CHARS_PER_TOKEN} characters a token",
    "input_image": "Gemini 3: 1120 an image (560 on gemini-3-pro-image, or by mediaResolution); "
    "Gemini 2: 258 per 768-px tile",
    "output_image": "the model's tokens for the requested imageSize",
    "output_text_expected": f"image replies: {tokens.IMAGE_CAPTION_TOKENS} tokens when TEXT is allowed, "
    f"else 0; text replies: {tokens.EXPECTED_OUTPUT_FRACTION} of maxOutputTokens, "
    f"at most {tokens.TYPICAL_TEXT_OUTPUT_TOKENS}",
    "thinking_expected": "by thinking setting or model default (batchrun.cost.tokens tables)",
    "high": "input + the whole text ceiling (maxOutputTokens, else the model's practical ceiling; bounds text "
    "and thinking) + output image tokens",
    "calibration": "expected is multiplied by actual/expected cost from the last run, when there is one",
    "projection": "once requests are answered: per stratum, observed/estimated cost applied to what remains, "
    "with a 90% interval (batchrun.cost.projection)",
}


def _model_json(m: ModelEstimate, tiers: tuple[str, ...]) -> dict[str, Any]:
    out = {name: getattr(m, name) for name in ModelEstimate.__slots__}
    out["cost"] = {tier: costs for tier, costs in m.cost.items() if tier in tiers}
    out["assumptions"] = [a.to_json() for a in m.assumptions]
    return out


def read_manifest_columns(manifest_path: Path) -> pa.Table:
    """The manifest columns the estimate needs, one row per request (rows sharing one are paid once)."""
    table = pq.read_table(manifest_path, columns=MANIFEST_COLUMNS)
    if pc.count_distinct(table["request_id"]).as_py() == len(table):
        return table
    numbered = table.append_column("_i", pa.array(range(len(table)), pa.int64()))
    firsts = numbered.group_by("request_id", use_threads=False).aggregate([("_i", "min")])["_i_min"]
    return table.take(firsts.take(pc.sort_indices(firsts)))


def _with_row_rules(table: pa.Table) -> pa.Table:
    """Adds the per-row keys and the expected text tokens, all vectorised."""
    for name, column in _NAMED.items():
        table = table.append_column(name, table[column])
    text_allowed = table["est_text_allowed"]
    ceiling = table["est_output_text_tokens_max"]
    image_text = pc.if_else(text_allowed, pc.min_element_wise(ceiling, tokens.IMAGE_CAPTION_TOKENS), 0)
    share = pc.multiply(pc.cast(ceiling, pa.float64()), tokens.EXPECTED_OUTPUT_FRACTION)
    share = pc.cast(pc.floor(share), pa.int64())
    text_text = pc.min_element_wise(share, tokens.TYPICAL_TEXT_OUTPUT_TOKENS)
    exp_text = pc.if_else(pc.greater(table["est_images_out"], 0), image_text, text_text)
    prompt = pc.add(table["est_input_text_tokens"], table["est_input_image_tokens"])
    table = table.append_column("exp_text", pc.cast(exp_text, pa.int64()))
    table = table.append_column("headroom", pc.subtract(ceiling, table["exp_text"]))
    return table.append_column("long", pc.greater(prompt, LONG_CONTEXT_TOKENS))


def _groups(table: pa.Table) -> list[dict[str, Any]]:
    aggregations = [(c, "sum") for c in _SUMMED] + [("headroom", "min"), ([], "count_all")]
    return table.group_by(_KEYS, use_threads=False).aggregate(aggregations).to_pylist()


def _body_tier(raw: str | None) -> str:
    tier = (raw or "standard").lower().removeprefix("service_tier_")
    return tier if tier in TIERS else "standard"


def _group_counts(group: dict[str, Any], catalog: PriceCatalog) -> tuple[TokenCounts, TokenCounts, int]:
    """(expected counts, high counts, expected thinking tokens) of one group of alike requests."""
    n = group["count_all"]
    budget = int(group["budget"]) if group["budget"] is not None else None
    each = tokens.expected_thinking_tokens(group["model"], group["level"], budget)
    thinking = min(each, max(group["headroom_min"], 0)) * n
    image_out = group["est_output_image_tokens_sum"]
    price = catalog.lookup(group["model"])
    if image_out == 0 and group["est_images_out_sum"] and price and price.output_image_tokens:
        per_image = price.output_image_tokens
        each_image = per_image.get(group["image_size"] or "1K", max(per_image.values()))
        image_out = each_image * group["est_images_out_sum"]
    inputs = {"input_text": group["est_input_text_tokens_sum"], "input_image": group["est_input_image_tokens_sum"]}
    expected = TokenCounts(**inputs, output_text=group["exp_text_sum"] + thinking, output_image=image_out)
    high = TokenCounts(**inputs, output_text=group["est_output_text_tokens_max_sum"], output_image=image_out)
    return expected, high, thinking


def _add_group(m: ModelEstimate, group: dict[str, Any], catalog: PriceCatalog, ratio: float) -> None:
    expected, high, thinking = _group_counts(group, catalog)
    m.requests += group["count_all"]
    m.input_text_tokens += group["est_input_text_tokens_sum"]
    m.input_image_tokens += group["est_input_image_tokens_sum"]
    m.output_text_tokens_expected += group["exp_text_sum"]
    m.output_text_tokens_max += group["est_output_text_tokens_max_sum"]
    m.output_image_tokens += int(expected.output_image)
    m.images_out += group["est_images_out_sum"]
    m.thinking_tokens_expected += thinking
    price = catalog.lookup(m.model)
    for tier in TIERS:
        costs = m.cost.setdefault(tier, {"expected": 0.0, "high": 0.0})
        exp = price_tokens(expected, price, tier=tier, long_context=group["long"])
        top = price_tokens(high, price, tier=tier, long_context=group["long"])
        exp = None if exp is None else exp * ratio
        costs["expected"] = _plus(costs["expected"], exp)
        costs["high"] = _plus(costs["high"], None if top is None or exp is None else max(top, exp))


def _plus(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


def estimate_manifest(
    manifest_path: Path,
    catalog: PriceCatalog,
    *,
    calibration: dict[str, float] | None = None,
    budget_usd: float | None = None,
    budget_tier: str = "standard",
    today: dt.date | None = None,
    request_ids: pa.Array | None = None,
) -> JobEstimate:
    """Tokens and cost of every request in a manifest (or of those in `request_ids`), per model and tier,
    expected and high."""
    table = read_manifest_columns(Path(manifest_path))
    if request_ids is not None:
        table = table.filter(pc.is_in(table["request_id"], value_set=request_ids))
    table = _with_row_rules(table)
    calibration = calibration or {}
    today = today or dt.date.today()
    models: dict[str, ModelEstimate] = {}
    for group in sorted(_groups(table), key=lambda g: g["model"]):
        model = group["model"]
        if model not in models:
            models[model] = _new_model(model, catalog, calibration.get(model), today)
        _add_group(models[model], group, catalog, calibration.get(model, 1.0))
    _state_assumptions(models, table)
    for m in models.values():
        for costs in m.cost.values():
            costs.update({k: round(v, 6) for k, v in costs.items() if v is not None})
    return JobEstimate(str(manifest_path), list(models.values()), budget_usd, budget_tier)


def _state_assumptions(models: dict[str, ModelEstimate], table: pa.Table) -> None:
    for model, stated in assumptions_by_model(table).items():
        models[model].assumptions = stated


def _new_model(model: str, catalog: PriceCatalog, ratio: float | None, today: dt.date) -> ModelEstimate:
    price = catalog.lookup(model)  # the report says it; no log line as well
    m = ModelEstimate(model=model, calibration=ratio, price_known=price is not None)
    if price is None:
        m.warnings.append(missing_price_message([model]))
    else:
        m.price_source, m.price_verified_at = price.source, price.verified_at
    retiring = lifecycle_warning(model, today)
    if retiring:
        m.warnings.append(retiring)
    return m


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def format_estimate(est: JobEstimate) -> str:
    """The text report of `batchrun estimate`."""
    lines = [f"Estimate for {est.manifest}: {est.requests:,} requests, {len(est.models)} model(s)", ""]
    lines += [f"Tier: {est.budget_tier} (the run's --tier or tier:; the budget is checked at it)", ""]
    for m in est.models:
        lines += _model_lines(m, est.tiers)
    lines += [f"{'Total':<18}" + "".join(f"{t:>14}" for t in est.tiers)]
    for kind in ("expected", "high"):
        lines.append(f"  {kind:<16}" + "".join(f"{_usd(est.total(t, kind)):>14}" for t in est.tiers))
    if est.spent.results:
        lines += ["", _spent_line(est.spent)]
    if est.remaining is not None:
        lines += ["", *est.remaining.lines(_usd)]
    if est.projection is not None:
        from batchrun.cost.projected import projection_lines

        lines += ["", *projection_lines(est.projection, _usd)]
    verdict = est.budget_verdict()
    if verdict is not None:
        lines += ["", f"Budget {_usd(est.budget_usd)} ({est.budget_tier}): {verdict[1]}"]
    lines += ["", "Rules:"] + [f"  {k.replace('_', ' ')}: {v}" for k, v in RULES.items()]
    return "\n".join(lines)


def _spent_line(spent: JobSpend) -> str:
    line = f"Spent so far: ${spent.usd:,.4f} on {spent.results:,} results"  # as `status` shows it
    if spent.not_in_manifest_results:
        line += (f" (${spent.not_in_manifest_usd:,.4f} on {spent.not_in_manifest_results:,} results no longer "
                 "in the manifest: the spec changed since they ran)")
    return line


def _model_lines(m: ModelEstimate, tiers: tuple[str, ...]) -> list[str]:
    lines = [
        f"{m.model}: {m.requests:,} requests",
        f"  input tokens    text {m.input_text_tokens:,}  image {m.input_image_tokens:,}",
        f"  output tokens   text {m.output_text_tokens_expected:,} expected,"
        f" {m.output_text_tokens_max:,} ceiling"
        f"  image {m.output_image_tokens:,} ({m.images_out:,} images)"
        f"  thinking {m.thinking_tokens_expected:,} expected",
        f"  {'cost (USD)':<16}" + "".join(f"{t:>14}" for t in tiers),
    ]
    for kind in ("expected", "high"):
        lines.append(f"    {kind:<14}" + "".join(f"{_usd(m.cost[t][kind]):>14}" for t in tiers))
    if m.price_known:
        verified = f"verified {m.price_verified_at}" if m.price_verified_at else "unverified"
        lines.append(f"  price: {m.price_source or 'shipped catalog'} ({verified})")
    if m.calibration is not None:
        lines.append(f"  calibrated: expected x {m.calibration:.3f}, the actual/expected cost of the last run")
    lines += assumption_lines(m.assumptions) if m.assumptions else []
    lines += [f"  warning: {w}" for w in m.warnings]
    return lines + [""]


def read_calibration(out_dir: Path) -> dict[str, float]:
    """The actual/expected ratio per model from an earlier run, or {} when there is none."""
    path = Path(out_dir) / CALIBRATION_FILE
    if not path.exists():
        return {}
    raw = json.loads(path.read_text("utf-8"))
    return {model: float(row["ratio"]) for model, row in raw.get("models", {}).items()}


def write_calibration(
    out_dir: Path,
    manifest_path: Path,
    results: pa.Table,
    catalog: PriceCatalog,
    *,
    today: dt.date | None = None,
    run_tier: str = "standard",
) -> dict[str, float]:
    """Stores sum(actual cost_usd of ok rows) / sum(their expected cost) per model; returns them.

    Each request is expected at the tier that served it (the results' `service_tier`), else the tier its
    body names, else `run_tier`: a flex run's actual cost is not mistaken for a standard one's half.
    """
    ok = results.filter(pc.and_(pc.equal(results["status"], "ok"), pc.is_valid(results["cost_usd"])))
    if "shared_from" in results.column_names:  # a row that copied another's reply paid nothing
        ok = ok.filter(pc.is_null(ok["shared_from"]))
    served = _served_tiers(ok)
    ok = ok.group_by("request_id", use_threads=False).aggregate([("cost_usd", "first")])  # a row per id
    manifest = read_manifest_columns(Path(manifest_path))
    manifest = manifest.filter(pc.is_in(manifest["request_id"], value_set=ok["request_id"]))
    manifest = _at_served_tier(manifest, served, run_tier)
    actual = _actual_by_model(manifest, ok)
    expected = _expected_at_body_tier(_with_row_rules(manifest), catalog)
    rows = {
        model: {"ratio": round(spent / expected[model], 6), "requests": count,
                "actual_usd": round(spent, 6), "expected_usd": round(expected[model], 6)}
        for model, (spent, count) in actual.items()
        if expected.get(model)
    }
    stamp = (today or dt.date.today()).isoformat()
    document = {"written_at": stamp, "manifest": Path(manifest_path).name, "models": rows}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / CALIBRATION_FILE).write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    return {model: row["ratio"] for model, row in rows.items()}


def _served_tiers(ok: pa.Table) -> dict[str, str]:
    """request_id -> the tier that served it, for ok rows whose reply said."""
    if "service_tier" not in ok.column_names:
        return {}
    known = ok.filter(pc.is_valid(ok["service_tier"]))
    return dict(zip(known["request_id"].to_pylist(), known["service_tier"].to_pylist()))


def _at_served_tier(manifest: pa.Table, served: dict[str, str], run_tier: str) -> pa.Table:
    """The manifest with est_service_tier set to each request's served tier (else its own, else the run's)."""
    tiers = [served.get(request_id) or own or run_tier for request_id, own in
             zip(manifest["request_id"].to_pylist(), manifest["est_service_tier"].to_pylist())]
    position = manifest.column_names.index("est_service_tier")
    return manifest.set_column(position, "est_service_tier", pa.array(tiers, pa.string()))


def _actual_by_model(manifest: pa.Table, ok: pa.Table) -> dict[str, tuple[float, int]]:
    joined = manifest.select(["request_id", "model"]).join(ok, "request_id", join_type="inner")
    sums = joined.group_by("model", use_threads=False).aggregate(
        [("cost_usd_first", "sum"), ([], "count_all")]
    )
    return {r["model"]: (r["cost_usd_first_sum"], r["count_all"]) for r in sums.to_pylist()}


def _expected_at_body_tier(table: pa.Table, catalog: PriceCatalog) -> dict[str, float]:
    """Uncalibrated expected cost per model, each request at the tier its body names."""
    out: dict[str, float] = {}
    for group in _groups(table):
        expected, _, _ = _group_counts(group, catalog)
        price = catalog.lookup(group["model"])
        cost = price_tokens(expected, price, tier=_body_tier(group["tier"]), long_context=group["long"])
        if cost is not None:
            out[group["model"]] = out.get(group["model"], 0.0) + cost
    return out


def estimate_report(
    manifest_path: Path, out_dir: Path, catalog: PriceCatalog, *, json_out: bool = False,
    budget_usd: float | None = None, today: dt.date | None = None, tier: str = "standard",
) -> str:
    """What `batchrun estimate` prints: the calibrated estimate of a planned job and its spend, as text or JSON."""
    est = estimate_manifest(
        manifest_path, catalog, calibration=read_calibration(out_dir), budget_usd=budget_usd, today=today,
        budget_tier=str(tier),
    )
    latest = latest_results(Path(out_dir))
    est.spent = spend_of(latest, read_columns(manifest_path, ["row_id"])["row_id"])
    if est.spent.results:
        est.remaining = remaining_cost(manifest_path, latest, est, catalog, today)
        est.projection = _projection(manifest_path, out_dir, catalog, str(tier))
        if est.projection is not None:  # observed per-stratum costs supersede the per-model calibration
            p = est.projection
            est.remaining = est.remaining.with_projection(p.remaining_usd, p.low_usd, p.high_usd)
    return json.dumps(est.to_json(), indent=2) if json_out else format_estimate(est)


def _projection(manifest_path: Path, out_dir: Path, catalog: PriceCatalog, tier: str):
    """The per-stratum projection from the answered requests (it supersedes the per-model calibration), or None
    when none of the manifest's requests is answered."""
    from batchrun.cost.projected import project_job  # it builds on this module

    projection = project_job(manifest_path, out_dir, catalog, tier)
    return projection if projection.done else None


def remaining_cost(manifest_path: Path, latest: pa.Table, whole: JobEstimate, catalog: PriceCatalog,
                   today: dt.date | None) -> RemainingCost:
    """What the rows without a final result will cost at the job's tier, beside what the folder has spent."""
    pending = pending_requests(manifest_path, latest)
    calibration = {m.model: m.calibration for m in whole.models if m.calibration is not None}
    left = estimate_manifest(manifest_path, catalog, calibration=calibration, today=today,
                             request_ids=pending.request_ids)
    tier = whole.budget_tier
    expected = left.total(tier, "expected") if left.models else 0.0
    high = left.total(tier, "high") if left.models else 0.0
    return RemainingCost(tier, pending.rows, len(pending.request_ids), whole.spent.usd, expected, high)
