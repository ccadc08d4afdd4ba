"""A run's budget cap from the pilot's projection, and the projection's per-stratum figures for `status`.

Inputs: `projection.json` in the output folder (written by `batchrun estimate --pilot N`: the manifest
fingerprint it was made for, the whole job's projected total, expected and high, and each stratum's
projected cost of one request), the manifest's fingerprint now, and the cap asked for
(`--max-cost-from-projection` / `budget.max_cost_from_projection`: `expected` or `high`).
Output: the run's cap in USD. The projection covers the whole job, spent included, which is the figure
a run's budget caps; `--max-cost` (or `budget.max_cost_usd`) stays the hard cap and wins when lower.

A projection made for another manifest (the spec or its inputs changed since the pilot) prices requests
that are no longer the job's: it is refused, as is a missing one, with a line saying to run the pilot.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from batchrun.cost.projected import PROJECTION_FILE, read_projection
from batchrun.errors import UsageError, projection_needed_message
from batchrun.output.mirror import shown_output
from batchrun.planning.manifest import read_fingerprint

log = logging.getLogger(__name__)

CAP_KINDS = ("expected", "high")


def current_projection(out_dir: Path, manifest_path: Path) -> dict[str, Any] | None:
    """The saved projection when it was made for the manifest as it is now, else None."""
    projection = read_projection(out_dir)
    if not isinstance(projection, dict) or projection.get("fingerprint") != read_fingerprint(Path(manifest_path)):
        return None
    return projection


def projected_total(projection: dict[str, Any], kind: str) -> float | None:
    """The whole job's projected cost ('expected', or 'high': the top of its 90% interval), spent included."""
    value = (projection.get("total") or {}).get(kind)
    return float(value) if isinstance(value, int | float) else None


def projected_ratios(projection: dict[str, Any]) -> dict[str, float]:
    """stratum -> what the projection multiplies its prior estimate by (1 where it kept the prior)."""
    ratios = {}
    for row in projection.get("strata") or []:
        ratio = 1.0 if row.get("basis") == "prior" else row.get("ratio")
        if isinstance(row.get("stratum"), str) and isinstance(ratio, int | float):
            ratios[row["stratum"]] = float(ratio)
    return ratios


def budget_cap(hard_cap: float | None, kind: str | None, out_dir: Path, manifest_path: Path, tier: str, *,
               setting: str = "--max-cost-from-projection") -> float | None:
    """The lower of the hard cap and the projection's `kind` figure (the hard cap alone when no kind is asked)."""
    caps = run_caps(hard_cap, kind, out_dir, manifest_path, tier, setting=setting)
    return caps[0] if caps[1] is None else caps[1]


def run_caps(hard_cap: float | None, kind: str | None, out_dir: Path, manifest_path: Path, tier: str, *,
             setting: str = "--max-cost-from-projection") -> tuple[float | None, float | None]:
    """(hard cap, soft cap): the soft cap is the projection's `kind` figure for the whole job, None when no
    kind is asked or the hard cap is lower. `setting`: what asked for it, as the error names it."""
    if kind is None:
        return hard_cap, None
    projection = current_projection(out_dir, manifest_path)
    projected = None if projection is None else projected_total(projection, kind)
    if projection is None or projected is None:
        stale = read_projection(out_dir) is not None
        raise UsageError(projection_needed_message(setting, shown_output(Path(out_dir) / PROJECTION_FILE), stale))
    if projection.get("tier") not in (None, tier):
        log.warning("the projection prices what remains at the %s tier and this run sends at the %s tier: "
                    "the cap is still the projection's figure", projection["tier"], tier)
    if hard_cap is not None and hard_cap <= projected:
        log.info("budget $%.4f: the hard cap, below the projection", hard_cap)
        return hard_cap, None
    log.info("budget $%.4f: the projection's %s figure for the whole job (a soft cap%s)", projected, kind,
             "" if hard_cap is None else f"; --max-cost ${hard_cap:.4f} stays the hard one")
    return hard_cap, projected
