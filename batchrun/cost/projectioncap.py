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

import json
from pathlib import Path
from typing import Any

from batchrun.errors import UsageError, projection_needed_message
from batchrun.planning.manifest import read_fingerprint

PROJECTION_FILE = "projection.json"
CAP_KINDS = ("expected", "high")


def read_projection(out_dir: Path) -> dict[str, Any] | None:
    """The saved projection of an output folder, or None when there is none (or it can't be read)."""
    try:
        document = json.loads((Path(out_dir) / PROJECTION_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def current_projection(out_dir: Path, manifest_path: Path) -> dict[str, Any] | None:
    """The saved projection when it was made for the manifest as it is now, else None."""
    projection = read_projection(out_dir)
    if projection is None or projection_fingerprint(projection) != read_fingerprint(Path(manifest_path)):
        return None
    return projection


def projection_fingerprint(projection: dict[str, Any]) -> str | None:
    return projection.get("manifest_fingerprint")


def projected_total(projection: dict[str, Any], kind: str) -> float | None:
    """The whole job's projected cost ('expected' or 'high'), spent included."""
    value = (projection.get("total") or {}).get(kind)
    return float(value) if isinstance(value, int | float) else None


def projected_per_request(projection: dict[str, Any]) -> dict[str, float]:
    """stratum -> the projected cost of one of its requests at the standard tier."""
    out = {}
    for row in projection.get("strata") or []:
        each = row.get("per_request_usd")
        if isinstance(row.get("stratum"), str) and isinstance(each, int | float):
            out[row["stratum"]] = float(each)
    return out


def budget_cap(hard_cap: float | None, kind: str | None, out_dir: Path, manifest_path: Path) -> float | None:
    """The run's cap: the projection's `kind` figure, or the hard cap when that is lower (or no kind is asked)."""
    if kind is None:
        return hard_cap
    projection = current_projection(out_dir, manifest_path)
    projected = None if projection is None else projected_total(projection, kind)
    if projected is None:
        stale = read_projection(out_dir) is not None
        raise UsageError(projection_needed_message(Path(out_dir) / PROJECTION_FILE, stale))
    return projected if hard_cap is None else min(hard_cap, projected)
