"""Which requests a pilot sends: N across the job's strata, and what they will cost.

Input: the stratum table (`strata.stratum_table`), the request ids already answered, and N. Output: the
request ids to send, in manifest order. Rules:
- the job's target per stratum is its share of (answered + N) by its number of requests, at least one;
- each pick goes to the stratum furthest below its target, strata with no answer first (so every stratum
  is seen once when N allows); a stratum with nothing left to send is skipped; ties go to the larger
  stratum, then the label;
- within a stratum, the picks are spread over its prompt lengths (evenly spaced ranks of input text
  tokens among its requests not yet answered).
Answered requests count towards their stratum's target, so a pilot on a job with results adds requests
only where strata are still thin. Pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.projected import tier_multiplier


def choose_pilot(strata: pa.Table, answered: pa.Array, n: int) -> list[str]:
    """The request ids of an N-request pilot, in manifest order."""
    numbered = strata.append_column("_i", pa.array(range(len(strata)), pa.int64()))
    is_done = pc.is_in(numbered["request_id"], value_set=answered)
    have = _counts(numbered.filter(is_done))
    left = numbered.filter(pc.invert(is_done))
    sizes = _counts(numbered)
    free = _counts(left)
    picks = _allocate(sizes, have, free, n)
    chosen: list[int] = []
    for name, count in picks.items():
        mine = left.filter(pc.equal(left["stratum"], name))
        chosen += _spread(mine, count)
    return numbered["request_id"].take(pa.array(sorted(chosen), pa.int64())).to_pylist()


def _counts(table: pa.Table) -> dict[str, int]:
    counts = table.group_by("stratum", use_threads=False).aggregate([([], "count_all")])
    return dict(zip(counts["stratum"].to_pylist(), counts["count_all"].to_pylist()))


def _allocate(sizes: dict[str, int], have: dict[str, int], free: dict[str, int], n: int) -> dict[str, int]:
    """How many to pick from each stratum: greedily, the one furthest below its share first."""
    total = sum(sizes.values())
    target = sum(have.values()) + n
    held = {name: have.get(name, 0) for name in sizes}
    picks = {name: 0 for name in sizes}
    for _ in range(min(n, sum(free.values()))):
        open_ = [name for name in sizes if picks[name] < free.get(name, 0)]
        name = max(open_, key=lambda s: (held[s] == 0, target * sizes[s] / total - held[s], sizes[s], s))
        picks[name] += 1
        held[name] += 1
    return {name: count for name, count in picks.items() if count}


def _spread(rows: pa.Table, count: int) -> list[int]:
    """Manifest positions of `count` rows at evenly spaced ranks of their input text tokens."""
    order = pc.sort_indices(rows, sort_keys=[("input_text_tokens", "ascending"), ("_i", "ascending")])
    ranked = rows["_i"].take(order).to_pylist()
    m = len(ranked)
    return [ranked[min(int((k + 0.5) * m / count), m - 1)] for k in range(count)]


@dataclass(frozen=True, slots=True)
class PilotCost:
    """What a pilot's requests are expected to cost at the run's tier, and at most; None: a price unknown."""

    requests: int
    expected_usd: float | None
    high_usd: float | None


def pilot_cost(strata: pa.Table, request_ids: list[str], catalog: PriceCatalog, tier: str) -> PilotCost:
    """The prior expected and high cost of the chosen requests at `tier`."""
    chosen = strata.filter(pc.is_in(strata["request_id"], value_set=pa.array(request_ids, pa.string())))
    multiplier = tier_multiplier(catalog)
    expected, high = 0.0, 0.0
    for row in chosen.select(["model", "expected_usd", "high_usd"]).to_pylist():
        if row["expected_usd"] is None:
            return PilotCost(len(request_ids), None, None)
        f = multiplier(row["model"], tier)
        expected, high = expected + row["expected_usd"] * f, high + row["high_usd"] * f
    return PilotCost(len(request_ids), round(expected, 6), round(high, 6))
