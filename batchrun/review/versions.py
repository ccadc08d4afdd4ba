"""A row's earlier versions, for the report: what each rejected version held and why it was rejected.

Inputs: an output folder's versions file (`batchrun.planning.versions`) and its results (the latest
result of every row id, from the parts and any journal). Output: for each row redone at least once,
keyed by its current row id (the manifest's), its earlier versions, oldest first: version, row id,
image path (under `images/`), sha256, status, and the note the reviewer gave when rejecting it.

Every version keeps its own result row and image file: the redo gives a new version a row id and an
image name of its own (`batchrun.planning.versioning`), so nothing of an earlier one is overwritten.
A version with no result (rejected before it was sent: not possible through `batchrun redo`, but a
hand-edited versions file may say so) is listed with status None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchrun.output.spend import latest_results
from batchrun.planning.versioning import row_versions, version_row_id
from batchrun.planning.versions import VersionEntry, current_versions, read_versions
from batchrun.review.rejections import row_results

RESULT_COLUMNS = ("row_id", "request_id", "status", "finished_at", "image_path", "image_sha256")


@dataclass(frozen=True, slots=True)
class EarlierVersion:
    """One rejected version of a row: its result's image and status, and the reviewer's note."""

    version: int
    row_id: str
    image_path: str | None
    image_sha256: str | None
    status: str | None
    note: str
    rejected_at: str


def version_history(out_dir: Path) -> dict[str, list[EarlierVersion]]:
    """Earlier versions of every redone row, by the row's current row id, oldest first; {} when none."""
    entries = read_versions(Path(out_dir))
    if not entries:
        return {}
    results = row_results(latest_results(Path(out_dir), RESULT_COLUMNS))
    rejected_by = _rejecting_entries(entries)
    history: dict[str, list[EarlierVersion]] = {}
    for base, current in current_versions(entries).items():
        earlier = []
        for version in range(1, current):
            row_id = version_row_id(base, version)
            result = results.get(row_id)
            entry = rejected_by.get((base, version + 1))
            earlier.append(EarlierVersion(
                version, row_id, result.image_path if result else None, result.image_sha256 if result else None,
                result.status if result else None, entry.note if entry else "", entry.at if entry else ""))
        history[version_row_id(base, current)] = earlier
    return history


def earlier_versions(out_dir: Path, row_id: str) -> list[EarlierVersion]:
    """Earlier versions of one row, oldest first, given the row id of any of its versions; [] when none."""
    entries = read_versions(Path(out_dir))
    base, _ = row_versions(entries).get(row_id, (row_id, 1))
    current = current_versions(entries).get(base, 1)
    return version_history(out_dir).get(version_row_id(base, current), [])


def current_version(out_dir: Path) -> dict[str, int]:
    """The version of every redone row, by its current row id (a row not in it is at version 1)."""
    return {version_row_id(base, n): n for base, n in current_versions(read_versions(Path(out_dir))).items()}


def _rejecting_entries(entries: list[VersionEntry]) -> dict[tuple[str, int], VersionEntry]:
    """The entry that made each version (its note says why the version before it was rejected)."""
    return {(entry.row_id, entry.version): entry for entry in entries}
