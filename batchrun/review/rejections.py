"""Which rows a marks file rejects, checked against the output folder the reviewer looked at.

Inputs: `Marks` (`batchrun.review.marks`), the manifest's rows, the latest result of each row, and the
versions file's entries. Output: one `Rejection` per mark, naming the row's version-1 id and the version
its redo makes — or a `UsageError` (exit 2) on the first mark that can't be redone, naming the marks
file, the entry and the fix, with how many other entries have problems. Nothing is written here.

A mark can be redone when its row is in the manifest at its current version, has a final result, and
(when the mark names one) that result's image is the one marked. A mark naming an earlier version of a
row, or an image the row no longer holds, is stale: the row was redone (or run again) since the marks
were saved. A row id neither in the manifest nor among its earlier versions is from another job or
another plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrun.errors import UsageError
from batchrun.outcomes import Status
from batchrun.output.mirror import shown_output
from batchrun.planning.versioning import row_versions, version_row_id
from batchrun.planning.versions import VersionEntry, current_versions
from batchrun.review.marks import Marks, RejectMark


@dataclass(frozen=True, slots=True)
class RowResult:
    """What a row's latest result says of it: its status and its image."""

    status: str
    image_path: str | None = None
    image_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row to send again: its version-1 id, the id of the rejected version, and the new version."""

    base_row_id: str
    rejected_row_id: str
    version: int
    note: str = ""
    image_path: str | None = None
    image_sha256: str | None = None

    @property
    def new_row_id(self) -> str:
        return version_row_id(self.base_row_id, self.version)


class MarksChecker:
    """Checks marks against one output folder: its manifest rows, latest results and versions."""

    def __init__(self, marks_file: Path, manifest_ids: Iterable[str], latest: dict[str, RowResult],
                 entries: list[VersionEntry], out_dir: Path) -> None:
        self.marks_file = marks_file
        self.manifest_ids = set(manifest_ids)
        self.latest = latest
        self.versions = row_versions(entries)
        self.current = current_versions(entries)
        self.out_dir = out_dir

    def rejections(self, marks: Marks) -> list[Rejection]:
        """A Rejection per mark, in the marks' order; UsageError naming the first mark that can't be redone."""
        found: list[Rejection] = []
        problems: list[str] = []
        for index, mark in enumerate(marks.rejected):
            outcome = self._check(mark)
            if isinstance(outcome, str):
                problems.append(f"rejected[{index}] (row {mark.row_id}): {outcome}")
            else:
                found.append(outcome)
        if problems:
            more = f" (and {len(problems) - 1} more entries with problems)" if len(problems) > 1 else ""
            raise UsageError(f"marks file {self.marks_file}: {problems[0]}{more}; nothing was sent")
        return found

    def _check(self, mark: RejectMark) -> Rejection | str:
        if mark.row_id not in self.manifest_ids:
            return self._not_current(mark)
        base, version = self.versions.get(mark.row_id, (mark.row_id, 1))
        if version < self.current.get(base, 1):
            return (f"the row was already redone as version {self.current[base]}, not yet sent: `batchrun run` "
                    "sends it; review that version, then save the marks again")
        result = self.latest.get(mark.row_id)
        if result is None:
            return "the row has no result yet: run the job, review what came back, then save the marks again"
        if result.status == Status.FAILED:
            return "the row failed and has no image to reject: `batchrun run` sends it again"
        if mark.image_sha256 is not None and mark.image_sha256 != (result.image_sha256 or "").lower():
            now = result.image_path or "no image"
            return (f"the marked image (sha256 {mark.image_sha256[:12]}…) is not the row's image now ({now}): the "
                    "marks are stale; review the job again and save new marks")
        return Rejection(base, mark.row_id, version + 1, mark.note, result.image_path, result.image_sha256)

    def _not_current(self, mark: RejectMark) -> str:
        earlier = self.versions.get(mark.row_id)
        if earlier is not None:
            base, version = earlier
            return (f"that is version {version} of a row now at version {self.current[base]} (redone since these "
                    "marks were saved): review the new version and save the marks again")
        return (f"no such row in {shown_output(self.out_dir / 'manifest.parquet')}: the marks are from another job or another "
                "plan; save them again from this job's report")


def row_results(table: Any) -> dict[str, RowResult]:
    """Latest results (a table of row_id, status, image_path, image_sha256) by row id."""
    columns = [table[name].to_pylist() for name in ("row_id", "status", "image_path", "image_sha256")]
    return {row_id: RowResult(status, path, sha) for row_id, status, path, sha in zip(*columns)}
