"""A job's projection from its output folder, its text lines, and `projection.json`, the file others read.

Inputs: the manifest, the folder's latest result per row (`output.spend.latest_results` with
`service_tier` and `shared_from`), a PriceCatalog and the run's tier. Output: a `Projection`
(`projection.project`), the lines `batchrun estimate` prints, and `outputs/NAME/projection.json`.
A request counts as answered once a row of it has a final result (ok, blocked, invalid) that paid for its
reply (no `shared_from`); its cost is that row's `cost_usd` at the tier that served it.

projection.json (written by `batchrun estimate --pilot`; `status` and `run` may read it):
    written_at      ISO 8601 UTC time it was written
    manifest        the manifest's file name
    fingerprint     the manifest's fingerprint (schema metadata): compare with the current one to tell
                    whether the spec or its inputs changed since
    pilot_requests  how many requests the pilot sent (0: the projection is from earlier results only)
    tier            the tier remaining requests are priced at
    requests, done  distinct requests of the manifest, and those answered
    spent_usd       what the answered requests cost
    remaining       {expected, low, high}: the cost of what remains, its 90% interval
    total           {expected, low, high}: spent_usd + remaining
    interval        "90%"
    strata          per stratum: stratum, model, requests, done, basis (observed | model | prior |
                    unpriced), ratio, spent_usd, remaining_usd, low_usd, high_usd, total {expected, low, high}
    dominant        [{stratum, variance_share}], largest share of the overall variance first
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.projection import Projection, project
from batchrun.cost.strata import stratum_table
from batchrun.outcomes import FINAL_STATUSES
from batchrun.output.spend import SPEND_COLUMNS, latest_results
from batchrun.planning.manifest import read_fingerprint

PROJECTION_FILE = "projection.json"
RESULT_COLUMNS = (*SPEND_COLUMNS, "service_tier", "shared_from")


def answered_requests(latest: pa.Table) -> pa.Table:
    """request_id, cost_usd, service_tier of each request with a final, paid result (one row per request)."""
    final = pa.array([str(s) for s in FINAL_STATUSES], pa.string())
    paid = latest.filter(pc.and_(pc.is_in(latest["status"], value_set=final), pc.is_null(latest["shared_from"])))
    firsts = paid.group_by("request_id", use_threads=False).aggregate(
        [("cost_usd", "first"), ("service_tier", "first")])
    return firsts.rename_columns(["request_id", "cost_usd", "service_tier"])


def tier_multiplier(catalog: PriceCatalog):
    """(model, tier) -> the factor the tier applies to the model's standard price (1 for an unknown model)."""
    def multiplier(model: str, tier: str) -> float:
        price = catalog.lookup(model)
        return 1.0 if price is None or tier not in ("standard", "flex", "batch", "priority") else price.multiplier(tier)
    return multiplier


def project_job(manifest_path: Path, out_dir: Path, catalog: PriceCatalog, tier: str,
                strata: pa.Table | None = None) -> Projection:
    """The projection of a job from its manifest and the results in its folder."""
    strata = stratum_table(manifest_path, catalog) if strata is None else strata
    answered = answered_requests(latest_results(Path(out_dir), RESULT_COLUMNS))
    return project(strata, answered, str(tier), tier_multiplier(catalog))


def save_projection(out_dir: Path, manifest_path: Path, projection: Projection, *, pilot_requests: int,
                    now: dt.datetime) -> Path:
    """Writes projection.json (keys in the module docstring) beside the results; returns its path."""
    document = {"written_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
                "manifest": Path(manifest_path).name, "fingerprint": read_fingerprint(Path(manifest_path)),
                "pilot_requests": pilot_requests, **projection.to_json()}
    path = Path(out_dir) / PROJECTION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    tmp.replace(path)
    return path


def read_projection(out_dir: Path) -> dict[str, Any] | None:
    """The saved projection.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / PROJECTION_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def projection_lines(p: Projection, usd) -> list[str]:
    """The report's lines: per stratum and overall, expected with the 90% interval; `usd` formats dollars."""
    lines = [f"Projection at the {p.tier} tier from {p.done:,} answered of {p.requests:,} requests "
             "(90% interval of the whole job's cost):",
             f"  {'stratum':<44}{'done':>7}{'basis':>10}{'expected':>14}{'90% interval':>28}"]
    for s in p.strata:
        low, high = _total(s.spent_usd, s.low_usd), _total(s.spent_usd, s.high_usd)
        lines.append(f"  {s.stratum:<44}{s.done:>3}/{s.requests:<3}{s.basis:>10}{usd(s.total_usd):>14}"
                     f"{usd(low):>13} to {usd(high)}")
    lines.append(f"  {'whole job':<44}{p.done:>3}/{p.requests:<3}{'':>10}{usd(p.total('expected')):>14}"
                 f"{usd(p.total('low')):>13} to {usd(p.total('high'))}")
    lines.append(f"  spent so far on answered requests {usd(p.spent_usd)}; remaining {usd(p.remaining_usd)} "
                 f"expected ({usd(p.low_usd)} to {usd(p.high_usd)})")
    if p.dominant:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in p.dominant[:3])
        lines.append(f"  most of the uncertainty: {shares} (a pilot with more of these narrows it most)")
    if any(s.basis == "prior" for s in p.strata):
        lines.append("  basis prior: no answers for that stratum or its model yet; expected is the estimate, and "
                     "its high bound tops the interval")
    return lines


def _total(spent: float, remaining: float | None) -> float | None:
    return None if remaining is None else spent + remaining
