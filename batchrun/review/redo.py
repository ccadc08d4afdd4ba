"""`batchrun redo SPEC MARKS`: turn a reviewer's rejections into new versions of their rows.

Inputs: a loaded spec, a marks file, the output folder (manifest, results, versions file). Outputs:
- `record_redo`: under the folder's lock, the marks checked (`rejections.MarksChecker`) and one line
  per rejected row appended to `versions.jsonl` (fsynced). Nothing is sent here: the versions file is
  part of the manifest's fingerprint, so the next plan — the one `batchrun run` makes first — gives each
  row its new version (`batchrun.planning.versioning`), and the run sends exactly those requests (and any
  other row still without a final result, as every run does). A redo killed at any point is finished
  by `batchrun run`.
- `preview_redo`: the same checks, nothing written: each row's new version and image name, how many
  requests that is, and their estimated cost at the run's tier.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.errors import UsageError
from batchrun.outcomes import FINAL_STATUSES
from batchrun.output.lock import folder_lock
from batchrun.output.mirror import shown_output
from batchrun.output.spend import latest_results
from batchrun.planning.manifest import MANIFEST_NAME, read_columns
from batchrun.planning.spec import LoadedSpec
from batchrun.planning.versioning import Versioner
from batchrun.planning.versions import VersionEntry, append_versions, read_versions
from batchrun.providers.registry import provider_entry
from batchrun.review.marks import read_marks
from batchrun.review.rejections import MarksChecker, Rejection, row_results

RESULT_COLUMNS = ("row_id", "request_id", "status", "finished_at", "image_path", "image_sha256")
ID_COLUMNS = ("id", "sku")


def check_marks(loaded: LoadedSpec, marks_file: Path) -> list[Rejection]:
    """The rows a marks file rejects, checked against the job's output folder; UsageError if any can't be redone."""
    marks = read_marks(marks_file, job=loaded.spec.name)
    out_dir = loaded.output_dir
    manifest = _manifest_path(loaded)
    ids = read_columns(manifest, ["row_id"])["row_id"].to_pylist()
    latest = row_results(latest_results(out_dir, RESULT_COLUMNS))
    return MarksChecker(marks_file, ids, latest, read_versions(out_dir), out_dir).rejections(marks)


def _manifest_path(loaded: LoadedSpec) -> Path:
    path = loaded.output_dir / MANIFEST_NAME
    if not path.exists():
        raise UsageError(f"{shown_output(loaded.output_dir)} has no {MANIFEST_NAME}: run the job (`batchrun run "
                         f"{loaded.shown}`) and review what came back before a redo")
    return path


def record_redo(loaded: LoadedSpec, marks_file: Path, now: dt.datetime) -> list[Rejection]:
    """Check the marks and append each rejected row's new version to the versions file, under the folder's lock."""
    with folder_lock(loaded.output_dir):
        rejections = check_marks(loaded, marks_file)
        append_versions(loaded.output_dir, version_entries(rejections, marks_file, now))
    return rejections


def version_entries(rejections: list[Rejection], marks_file: Path, now: dt.datetime) -> list[VersionEntry]:
    """The versions-file lines recording `rejections`, stamped with `now` (UTC, to the second)."""
    at = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [VersionEntry(r.base_row_id, r.version, r.rejected_row_id, r.image_sha256, r.note, at, str(marks_file))
            for r in rejections]


@dataclass
class RedoPreview:
    """What a redo would send: one line per row, the requests, their estimated cost at `tier`."""

    lines: list[str] = field(default_factory=list)
    rows: int = 0
    requests: int = 0
    tier: str = "standard"
    expected_usd: float | None = None
    high_usd: float | None = None
    other_pending: int = 0  # rows still without a final result: the redo's run sends them too


def preview_redo(loaded: LoadedSpec, marks_file: Path, catalog: Any, tier: str) -> RedoPreview:
    """Check the marks and say what a redo would send and cost; writes nothing."""
    from batchrun.cost.estimate import estimate_manifest, read_calibration

    rejections = check_marks(loaded, marks_file)
    rows = _versioned_rows(loaded, rejections)
    preview = RedoPreview(tier=tier, rows=len(rows), other_pending=_pending_rows(loaded))
    preview.requests = len({row["request_id"] for row in rows})
    preview.lines = [_describe(loaded, row, rejection) for row, rejection in zip(rows, rejections)]
    if rows:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / MANIFEST_NAME
            pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(_manifest_path(loaded))), path)
            estimate = estimate_manifest(path, catalog, calibration=read_calibration(loaded.output_dir))
        preview.expected_usd, preview.high_usd = estimate.total(tier, "expected"), estimate.total(tier, "high")
    return preview


def _versioned_rows(loaded: LoadedSpec, rejections: list[Rejection]) -> list[dict[str, Any]]:
    """The manifest rows of the rejected rows as their new versions, in the rejections' order."""
    spec = loaded.spec
    entry = provider_entry(spec.provider.kind)
    versioner = Versioner({r.base_row_id: r.version for r in rejections}, kind=spec.provider.kind,
                          wire_body=lambda body: entry.wire_body(body, spec.provider), variants=spec.request.variants)
    table = pq.read_table(_manifest_path(loaded))
    wanted = pa.array([r.rejected_row_id for r in rejections], pa.string())
    by_id = {row["row_id"]: row for row in table.filter(pc.is_in(table["row_id"], value_set=wanted)).to_pylist()}
    return [versioner.row({**by_id[r.rejected_row_id], "row_id": r.base_row_id}, r.version, r.version - 1)
            for r in rejections]


def _pending_rows(loaded: LoadedSpec) -> int:
    """Manifest rows without a final result (a redo's run sends them too)."""
    ids = read_columns(_manifest_path(loaded), ["row_id"])["row_id"]
    latest = latest_results(loaded.output_dir, RESULT_COLUMNS)
    final = latest["row_id"].filter(pc.is_in(latest["status"], pa.array(FINAL_STATUSES, pa.string())))
    return int(pc.sum(pc.invert(pc.is_in(ids, value_set=final.combine_chunks())).cast(pa.int64())).as_py() or 0)


def _describe(loaded: LoadedSpec, row: dict[str, Any], rejection: Rejection) -> str:
    """`row 3 (sku 'p01', scene 'kitchen counter'): version 2 -> images/p01/kitchen.v2; rejected ... ("note")`."""
    variables = json.loads(row["variables"])
    keys = [*(k for k in (loaded.spec.inputs.id_column, *ID_COLUMNS) if k and k in variables)][:1]
    keys += [k for k in (*loaded.spec.matrix, "variant") if k in variables]
    named = ", ".join(f"{key} {variables[key]!r}" for key in keys)
    where = f"row {row['input_row']}" + (f" ({named})" if named else "")
    suffix = Path(rejection.image_path).suffix if rejection.image_path else ""
    target = f"images/{row['output_name']}{suffix}" if row["output_name"] else f"row id {row['row_id']}"
    old = rejection.image_path or f"row id {rejection.rejected_row_id}"
    note = f' ("{rejection.note}")' if rejection.note else ""
    return f"{where}: version {rejection.version} -> {target}; {old} is kept{note}"


def format_preview(preview: RedoPreview) -> str:
    """The dry run's text: each row, then the requests and their cost."""
    if not preview.rows:
        return "nothing to redo: the marks file rejects no image"
    cost = "unknown (no price for a model)" if preview.expected_usd is None else (
        f"${preview.expected_usd:.4f} expected, ${preview.high_usd or 0:.4f} high")
    lines = [f"would send {preview.requests:,} requests for {preview.rows:,} rejected rows as new versions "
             f"(--dry-run: nothing sent, nothing written); estimated cost at the {preview.tier} tier: {cost}",
             *(f"  {line}" for line in preview.lines)]
    if preview.other_pending:
        lines.append(f"also pending: {preview.other_pending:,} other rows without a final result; the redo's run "
                     "sends them too, as `batchrun run` does")
    return "\n".join(lines)

