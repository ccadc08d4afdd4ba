"""Estimate against actual, per stratum, over the requests a job has done: how far to trust the next estimate.

Inputs: the job's strata (`batchrun.cost.strata.stratum_table`: request_id, stratum, model, the prior
`expected_usd` of each request at the standard tier), the answered requests (`projected.answered_requests`:
one row per request with a final result that paid for its reply: request_id, service_tier, cost_usd), a
tier factor per (model, tier) from the price catalog, and optionally the pilot's ratio per stratum
(`projection.json`: observed / prior cost). Output: an `EstimateCheck`: per stratum the requests done, what
the estimate said of them at the tier that served each one, what the pilot's projection said of the same
requests (its ratio times that estimate), what they cost, and actual / expected.

The requests counted are those the projection counts, so the two ratios agree on a job a pilot began. An
estimate has no cached tokens, so a tier's factor on every rate is exact for it. `compact` keeps the
strata that cost most and sums the rest into one line, so `status` stays short on a job of many strata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.cost.estimate import MANIFEST_COLUMNS
from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.projected import RESULT_COLUMNS, answered_requests, tier_multiplier
from batchrun.cost.projectioncap import current_projection, projected_ratios
from batchrun.cost.strata import stratum_table
from batchrun.output.spend import latest_results

TOP_STRATA = 5
LABEL_CHARS = 60  # a longer stratum label is cut in the text table (JSON has it whole)
STANDARD = "standard"

TierFactor = Callable[[str, str], float | None]  # (model, tier) -> multiplier of the standard price; None: unknown


@dataclass(frozen=True, slots=True)
class StratumCheck:
    """One stratum's done requests: expected (before the run, at their served tiers), projected, actual."""

    stratum: str
    requests: int
    expected_usd: float | None  # None: a request's model has no price
    actual_usd: float
    projected_usd: float | None = None  # the pilot's projection of the same requests, when there is one

    @property
    def ratio(self) -> float | None:
        """actual / expected; None when expected is unknown or 0."""
        return _ratio(self.actual_usd, self.expected_usd)

    @property
    def projected_ratio(self) -> float | None:
        return _ratio(self.actual_usd, self.projected_usd)

    def to_json(self) -> dict[str, Any]:
        return {"stratum": self.stratum, "requests": self.requests, "expected_usd": _money(self.expected_usd),
                "projected_usd": _money(self.projected_usd), "actual_usd": _money(self.actual_usd),
                "ratio": _round(self.ratio), "projected_ratio": _round(self.projected_ratio)}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> StratumCheck:
        return cls(row["stratum"], row["requests"], row["expected_usd"], row["actual_usd"], row["projected_usd"])


@dataclass(frozen=True, slots=True)
class EstimateCheck:
    """The strata shown (largest actual cost first), the rest summed, and the total of all done requests."""

    strata: list[StratumCheck]
    other: StratumCheck | None  # the strata past the top ones, summed; None when none are left out
    total: StratumCheck

    def to_json(self) -> dict[str, Any]:
        return {"scope": "requests answered so far (a final result that paid for its reply), each expected at "
                         "the tier that served it",
                "strata": [s.to_json() for s in self.strata],
                "other": None if self.other is None else self.other.to_json(),
                "total": self.total.to_json()}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> EstimateCheck:
        other = document.get("other")
        return cls([StratumCheck.from_json(row) for row in document["strata"]],
                   None if other is None else StratumCheck.from_json(other), StratumCheck.from_json(document["total"]))

    def lines(self) -> list[str]:
        """The text `batchrun status` prints: a header and one line per stratum, other and total."""
        projected = self.total.projected_usd is not None
        rows = [*self.strata, *([self.other] if self.other else []), self.total]
        width = min(max(len(row.stratum) for row in rows), LABEL_CHARS) + 2
        head = f"  {'stratum':<{width}}{'done':>6}{'expected':>12}" + (f"{'projected':>12}" if projected else "")
        lines = ["estimate vs actual (answered requests, each at the tier that served it)",
                 head + f"{'actual':>12}{'ratio':>8}"]
        return lines + [_line(row, projected, width) for row in rows]


def estimate_check(manifest_path: Path, out_dir: Path, catalog: PriceCatalog | None = None, *,
                   latest: pa.Table | None = None, top: int = TOP_STRATA) -> EstimateCheck | None:
    """Estimate against actual per stratum of a job's output folder; None before any request is answered.

    `latest`: the folder's latest result per row with `RESULT_COLUMNS`, when the caller has read them.
    """
    latest = latest_results(Path(out_dir), RESULT_COLUMNS) if latest is None else latest
    answered = answered_requests(latest)
    if not len(answered) or not _has_estimate_columns(Path(manifest_path)):
        return None
    catalog = catalog or PriceCatalog.load()
    projection = current_projection(out_dir, manifest_path)
    ratios = None if projection is None else projected_ratios(projection)
    return compare_strata(stratum_table(manifest_path, catalog), answered, tier_multiplier(catalog), ratios, top=top)


def _has_estimate_columns(manifest_path: Path) -> bool:
    """Whether the manifest says what each request was estimated at (a hand-made one may not)."""
    return {*MANIFEST_COLUMNS, "variables"} <= set(pq.read_schema(manifest_path).names)


def compare_strata(strata: pa.Table, done: pa.Table, factor: TierFactor,
                   projected: dict[str, float] | None = None, *, top: int = TOP_STRATA) -> EstimateCheck | None:
    """Per stratum, the expected, projected and actual cost of the done requests; None when none are done.

    `projected`: stratum -> the pilot projection's ratio of observed to prior cost (a stratum it does not
    name has no projected figure).
    """
    joined = done.select(["request_id", "service_tier", "cost_usd"]).join(
        strata.select(["request_id", "stratum", "model", "expected_usd"]), "request_id", join_type="inner")
    if not len(joined):
        return None
    joined = joined.append_column("factor", _factors(joined, factor))
    rows = [_stratum(group, projected) for group in _sums(joined)]
    return compact(rows, top)


def compact(rows: list[StratumCheck], top: int = TOP_STRATA) -> EstimateCheck:
    """The `top` strata by actual cost, the rest summed into one, and the total."""
    ordered = sorted(rows, key=lambda row: (-row.actual_usd, row.stratum))
    shown, rest = ordered[:top], ordered[top:]
    other = _summed(f"({len(rest)} other {'stratum' if len(rest) == 1 else 'strata'})", rest) if rest else None
    return EstimateCheck(shown, other, _summed("total", rows))


def _factors(joined: pa.Table, factor: TierFactor) -> pa.Array:
    """Each request's tier factor (the served tier, else standard), looked up once per (model, tier)."""
    tiers = pc.fill_null(joined["service_tier"], STANDARD)
    keys = pc.binary_join_element_wise(pc.fill_null(joined["model"], ""), tiers, "\x1f")
    distinct = pc.unique(keys)
    known = pa.array([factor(*key.split("\x1f")) for key in distinct.to_pylist()], pa.float64())
    return known.take(pc.index_in(keys, value_set=distinct))


def _sums(joined: pa.Table) -> list[dict[str, Any]]:
    served = pc.multiply(joined["expected_usd"], joined["factor"])
    table = pa.table({"stratum": joined["stratum"], "served": served, "cost": pc.fill_null(joined["cost_usd"], 0.0)})
    aggregations = [("served", "sum"), ("served", "count"), ("cost", "sum"), ([], "count_all")]
    return table.group_by("stratum", use_threads=False).aggregate(aggregations).to_pylist()


def _stratum(group: dict[str, Any], projected: dict[str, float] | None) -> StratumCheck:
    n = group["count_all"]
    expected = group["served_sum"] if group["served_count"] == n else None  # a null: a model without a price
    ratio = None if projected is None else projected.get(group["stratum"])
    projection = None if ratio is None or expected is None else ratio * expected
    return StratumCheck(group["stratum"], n, expected, group["cost_sum"], projection)


def _summed(label: str, rows: list[StratumCheck]) -> StratumCheck:
    expected = [r.expected_usd for r in rows]
    projected = [r.projected_usd for r in rows]
    return StratumCheck(label, sum(r.requests for r in rows),
                        None if None in expected else sum(expected),  # type: ignore[arg-type]
                        sum(r.actual_usd for r in rows),
                        None if None in projected or not rows else sum(projected))  # type: ignore[arg-type]


def _line(row: StratumCheck, projected: bool, width: int) -> str:
    middle = f"{_usd(row.projected_usd):>12}" if projected else ""
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
    return (f"  {_cut(row.stratum, width - 2):<{width}}{row.requests:>6,}{_usd(row.expected_usd):>12}{middle}"
            f"{_usd(row.actual_usd):>12}{ratio:>8}")


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}"


def _ratio(actual: float, expected: float | None) -> float | None:
    return None if not expected else actual / expected


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
