"""A job's projected cost, per stratum and overall, with a 90% interval, from the requests already answered.

Inputs: the stratum table (`strata.stratum_table`: request_id, stratum, model, expected_usd, high_usd at the
standard tier), the requests with a final result (request_id, cost_usd at the tier that served it,
service_tier), the run's tier and a `multiplier(model, tier)` (the price catalog's). Output: a `Projection`.
Pure: no files, no clock.

Per stratum s with n answered requests (observed cost y_i, prior expected x_i at the tier that served it):
    ratio r = sum(y) / sum(x)                                  (the ratio estimator)
    remaining expected = r * X, X = the remaining requests' prior expected at the run's tier
    c^2 = sum((y_i - r x_i)^2) / (n - 1) / mean(x)^2            (request-to-request spread, relative)
    variance = c^2 * X^2 * (1/n + 1/N)                          (N remaining: the mean's uncertainty + the spread)
    90% interval = expected -/+ t(0.95, n - 1) * sqrt(variance), never below 0
A stratum with one answered request has no spread of its own: it borrows the pooled c^2 (and degrees of
freedom) of its model's strata, else of every stratum, else the prior's. A stratum with none borrows its
model's pooled ratio and spread when the model has answers (`basis: model`); else it falls back to the
prior (`basis: prior`): expected as estimated, and a spread that puts the prior's high bound at the upper
end of the interval (sd = (high - expected) / 1.645). Overall: the means and the variances added, the t
quantile at the Welch-Satterthwaite degrees of freedom. `dominant` lists the strata by their share of the
overall variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

Multiplier = Callable[[str, str], float]  # (model, tier) -> what the tier multiplies a standard price by

Z_95 = 1.645
# One-sided 0.95 quantiles of Student's t (a two-sided 90% interval), by degrees of freedom.
_T_95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
         11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753, 16: 1.746, 17: 1.740, 18: 1.734, 19: 1.729,
         20: 1.725, 21: 1.721, 22: 1.717, 23: 1.714, 24: 1.711, 25: 1.708, 26: 1.706, 27: 1.703, 28: 1.701,
         29: 1.699, 30: 1.697, 40: 1.684, 60: 1.671, 120: 1.658}


def t_quantile(df: float) -> float:
    """t(0.95, df): from the table at the largest tabulated df not above `df` (never narrower); z for infinity."""
    if math.isinf(df):
        return Z_95
    below = [d for d in _T_95 if d <= max(df, 1)]
    return _T_95[max(below)] if max(below) < 120 or df < 1000 else Z_95


@dataclass(frozen=True, slots=True)
class Spread:
    """The relative request-to-request variance of a stratum (c^2) and its degrees of freedom."""

    c2: float
    df: float


@dataclass(frozen=True, slots=True)
class StratumProjection:
    """One stratum's answered and remaining requests, and its remaining cost: expected and 90% interval."""

    stratum: str
    model: str
    requests: int
    done: int
    spent_usd: float  # what its answered requests cost
    basis: str  # observed | model | prior | unpriced
    ratio: float | None  # observed / prior; None on the prior
    remaining_usd: float | None  # expected cost of what remains, at the run's tier
    low_usd: float | None  # 90% interval of the remaining cost
    high_usd: float | None
    variance: float
    df: float

    @property
    def total_usd(self) -> float | None:
        return None if self.remaining_usd is None else self.spent_usd + self.remaining_usd

    def to_json(self) -> dict[str, Any]:
        money = {k: _round(getattr(self, k)) for k in ("spent_usd", "remaining_usd", "low_usd", "high_usd")}
        total = None
        if self.remaining_usd is not None and self.low_usd is not None and self.high_usd is not None:
            total = {"expected": _round(self.spent_usd + self.remaining_usd),
                     "low": _round(self.spent_usd + self.low_usd), "high": _round(self.spent_usd + self.high_usd)}
        return {"stratum": self.stratum, "model": self.model, "requests": self.requests, "done": self.done,
                "basis": self.basis, "ratio": None if self.ratio is None else round(self.ratio, 6),
                **money, "total": total}


@dataclass(frozen=True, slots=True)
class Projection:
    """The whole job: spent on the answered requests, the remaining cost's expected and 90% interval."""

    tier: str
    strata: list[StratumProjection]
    spent_usd: float
    remaining_usd: float | None
    low_usd: float | None
    high_usd: float | None
    dominant: list[tuple[str, float]] = field(default_factory=list)  # (stratum, share of the variance)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.strata)

    @property
    def done(self) -> int:
        return sum(s.done for s in self.strata)

    def total(self, kind: str) -> float | None:
        """Spent plus the remaining 'expected', 'low' or 'high'."""
        value = {"expected": self.remaining_usd, "low": self.low_usd, "high": self.high_usd}[kind]
        return None if value is None else self.spent_usd + value

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "requests": self.requests, "done": self.done,
                "spent_usd": _round(self.spent_usd),
                "remaining": {"expected": _round(self.remaining_usd), "low": _round(self.low_usd),
                              "high": _round(self.high_usd)},
                "total": {k: _round(self.total(k)) for k in ("expected", "low", "high")},
                "interval": "90%", "strata": [s.to_json() for s in self.strata],
                "dominant": [{"stratum": name, "variance_share": round(share, 4)} for name, share in self.dominant]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(slots=True)
class _Sums:
    """What a stratum's answered requests add up to, at the standard tier."""

    n: int = 0
    y: float = 0.0
    x: float = 0.0
    yy: float = 0.0
    xx: float = 0.0
    xy: float = 0.0
    spent: float = 0.0

    def add(self, other: _Sums) -> None:
        for name in ("n", "y", "x", "yy", "xx", "xy", "spent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def ratio(self) -> float | None:
        return self.y / self.x if self.x > 0 else None

    def spread(self) -> Spread | None:
        """c^2 with n - 1 degrees of freedom, or None below two answered requests."""
        ratio = self.ratio
        if self.n < 2 or ratio is None:
            return None
        residual = max(self.yy - 2 * ratio * self.xy + ratio * ratio * self.xx, 0.0)
        mean_x = self.x / self.n
        return Spread(residual / (self.n - 1) / (mean_x * mean_x), self.n - 1)


def project(strata: pa.Table, done: pa.Table, tier: str, multiplier: Multiplier) -> Projection:
    """The projected cost of a job from its strata and the costs of its answered requests."""
    observed = _observed_sums(strata, done, multiplier)
    remaining = _remaining(strata, done, tier, multiplier)
    counts = _strata_counts(strata)
    pooled = _pooled_spreads(observed, {name: model for name, model, _ in counts})
    rows = [_stratum(name, model, count, observed.get(name), remaining.get(name), pooled)
            for name, model, count in counts]
    return _overall(tier, rows)


def _strata_counts(strata: pa.Table) -> list[tuple[str, str, int]]:
    counts = strata.group_by(["stratum", "model"], use_threads=False).aggregate([([], "count_all")])
    rows = sorted(counts.to_pylist(), key=lambda r: r["stratum"])
    return [(r["stratum"], r["model"], r["count_all"]) for r in rows]


def _observed_sums(strata: pa.Table, done: pa.Table, multiplier: Multiplier) -> dict[str, _Sums]:
    """Per stratum: y, x and their squares and products, each request's prior at the tier that served it."""
    joined = strata.select(["request_id", "stratum", "model", "expected_usd"]).join(
        done.select(["request_id", "cost_usd", "service_tier"]), "request_id", join_type="inner", use_threads=False)
    served = pc.fill_null(pc.utf8_lower(joined["service_tier"]), "standard")
    y = pc.fill_null(pc.cast(joined["cost_usd"], pa.float64()), 0.0)
    x = joined["expected_usd"]
    table = pa.table({"stratum": joined["stratum"], "model": joined["model"], "served": served, "y": y, "x": x,
                      "yy": pc.multiply(y, y), "xx": pc.multiply(x, x), "xy": pc.multiply(x, y)})
    sums = table.group_by(["stratum", "model", "served"], use_threads=False).aggregate(
        [(c, "sum") for c in ("y", "x", "yy", "xx", "xy")] + [([], "count_all")])
    out: dict[str, _Sums] = {}
    for row in sums.to_pylist():
        out.setdefault(row["stratum"], _Sums()).add(_at_standard(row, multiplier))
    return out


def _at_standard(row: dict[str, Any], multiplier: Multiplier) -> _Sums:
    """One (stratum, served tier) group's sums with the observed costs brought back to the standard tier."""
    f = multiplier(row["model"], row["served"]) or 1.0
    x = row["x_sum"]
    if x is None:  # the model's price is unknown: nothing to take a ratio against
        return _Sums(spent=row["y_sum"])
    return _Sums(row["count_all"], row["y_sum"] / f, x, row["yy_sum"] / (f * f), row["xx_sum"], row["xy_sum"] / f,
                 row["y_sum"])


def _remaining(strata: pa.Table, done: pa.Table, tier: str, multiplier: Multiplier) -> dict[str, tuple[int, float | None, float | None]]:
    """Per stratum: the remaining requests, and their prior expected and high at the run's tier."""
    left = strata.filter(pc.invert(pc.is_in(strata["request_id"], value_set=done["request_id"].combine_chunks()
                                            if isinstance(done["request_id"], pa.ChunkedArray) else done["request_id"])))
    sums = left.group_by(["stratum", "model"], use_threads=False).aggregate(
        [("expected_usd", "sum"), ("high_usd", "sum"), ("expected_usd", "count"), ([], "count_all")])
    out = {}
    for row in sums.to_pylist():
        priced = row["expected_usd_count"] == row["count_all"]
        f = multiplier(row["model"], tier)
        out[row["stratum"]] = (row["count_all"], row["expected_usd_sum"] * f if priced else None,
                               row["high_usd_sum"] * f if priced else None)
    return out


@dataclass(frozen=True, slots=True)
class _Pooled:
    """Ratios and spreads pooled over a model's strata, and the spread pooled over all of them."""

    models: dict[str, _Sums]
    spreads: dict[str, Spread]
    overall: Spread | None


def _pooled_spreads(observed: dict[str, _Sums], model_of: dict[str, str]) -> _Pooled:
    models: dict[str, _Sums] = {}
    by_model: dict[str, list[Spread]] = {}
    every: list[Spread] = []
    for name, sums in observed.items():
        model = model_of[name]
        models.setdefault(model, _Sums()).add(sums)
        spread = sums.spread()
        if spread is not None:
            by_model.setdefault(model, []).append(spread)
            every.append(spread)
    return _Pooled(models, {m: _pool(s) for m, s in by_model.items()}, _pool(every) if every else None)


def _pool(spreads: list[Spread]) -> Spread:
    """Spreads pooled by their degrees of freedom."""
    df = sum(s.df for s in spreads)
    return Spread(sum(s.c2 * s.df for s in spreads) / df, df)


def _stratum(name: str, model: str, count: int, sums: _Sums | None, left: tuple | None,
             pooled: _Pooled) -> StratumProjection:
    remaining_n, expected, high = left or (0, 0.0, 0.0)
    sums = sums or _Sums()
    head = dict(stratum=name, model=model, requests=count, done=count - remaining_n, spent_usd=sums.spent)
    if expected is None:
        return StratumProjection(**head, basis="unpriced", ratio=None, remaining_usd=None, low_usd=None,
                                 high_usd=None, variance=0.0, df=math.inf)
    basis, ratio, spread = _basis(model, sums, pooled)
    if ratio is None or spread is None:
        return _on_prior(head, expected, high)
    mean = ratio * expected
    n = sums.n if basis == "observed" else pooled.models[model].n
    variance = spread.c2 * expected * expected * (1 / n + (1 / remaining_n if remaining_n else 0.0))
    if remaining_n == 0:
        variance = 0.0
    half = t_quantile(spread.df) * math.sqrt(variance)
    return StratumProjection(**head, basis=basis, ratio=ratio, remaining_usd=mean, low_usd=max(mean - half, 0.0),
                             high_usd=mean + half, variance=variance, df=spread.df)


def _basis(model: str, sums: _Sums, pooled: _Pooled) -> tuple[str, float | None, Spread | None]:
    """Where a stratum's ratio and spread come from: its own answers, its model's, or (None) the prior."""
    fallback = pooled.spreads.get(model) or pooled.overall
    if sums.ratio is not None:
        return "observed", sums.ratio, sums.spread() or fallback
    mine = pooled.models.get(model)
    if mine is not None and mine.ratio is not None:
        return "model", mine.ratio, fallback
    return "prior", None, None


def _on_prior(head: dict[str, Any], expected: float, high: float | None) -> StratumProjection:
    """A stratum nothing was learned about: the prior's expected, its high bound as the interval's top."""
    high = max(high if high is not None else expected, expected)
    sd = (high - expected) / Z_95
    return StratumProjection(**head, basis="prior", ratio=None, remaining_usd=expected,
                             low_usd=max(expected - Z_95 * sd, 0.0), high_usd=high, variance=sd * sd, df=math.inf)


def _overall(tier: str, rows: list[StratumProjection]) -> Projection:
    spent = sum(r.spent_usd for r in rows)
    means = [r.remaining_usd for r in rows]
    if any(m is None for m in means):
        return Projection(tier, rows, spent, None, None, None)
    mean = sum(m for m in means if m is not None)
    variance = sum(r.variance for r in rows)
    half = t_quantile(_welch_df(rows)) * math.sqrt(variance)
    dominant = sorted(((r.stratum, r.variance / variance) for r in rows if r.variance > 0),
                      key=lambda pair: -pair[1]) if variance > 0 else []
    return Projection(tier, rows, spent, mean, max(mean - half, 0.0), mean + half, dominant)


def _welch_df(rows: list[StratumProjection]) -> float:
    """Welch-Satterthwaite: the degrees of freedom of a sum of variances estimated with their own."""
    parts = [(r.variance, r.df) for r in rows if r.variance > 0]
    if not parts:
        return math.inf
    denominator = sum(v * v / df for v, df in parts if not math.isinf(df))
    return math.inf if denominator == 0 else sum(v for v, _ in parts) ** 2 / denominator
