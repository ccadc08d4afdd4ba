"""The marks file: which images a reviewer rejected, saved from the report and read by `batchrun redo`.

Format (JSON, UTF-8), version 1:

    {"version": 1,
     "job": "demo",                       # the spec's output folder name (outputs/NAME)
     "rejected": [
       {"row_id": "9f2c...",              # the manifest's row_id (required)
        "image_sha256": "ab12..." | null, # the rejected image; null: whatever the row holds now
        "note": "logo cut off"}           # optional, free text ("" when absent)
     ]}

Invariants: `version` is 1; `job` is a non-empty string; a row_id appears at most once (a later entry
for the same row replaces the earlier, so a file appended to by hand still reads); unknown keys are
refused, so a typo (`rowid`) is an error, not a silently ignored mark. The report downloads this file as
`NAME-marks.json`; marks can also be written by any other tool that follows this format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrun.errors import UsageError

MARKS_VERSION = 1
_TOP_KEYS = {"version", "job", "rejected"}
_MARK_KEYS = {"row_id", "image_sha256", "note"}


@dataclass(frozen=True, slots=True)
class RejectMark:
    """One rejected image: its row, the image's sha256 (None: the row's current image), a note."""

    row_id: str
    image_sha256: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Marks:
    """A reviewer's marks for one job."""

    job: str
    rejected: tuple[RejectMark, ...] = ()

    def row_ids(self) -> set[str]:
        """The row ids of every rejected image."""
        return {mark.row_id for mark in self.rejected}


class MarksInvalid(ValueError):
    """A marks document breaks the format; the message names the entry and the key."""


def parse_marks(document: Any) -> Marks:
    """Marks from a decoded JSON document; raises MarksInvalid saying what is wrong."""
    if not isinstance(document, dict):
        raise MarksInvalid("the file must hold a JSON object with version, job and rejected")
    _refuse_unknown(document, _TOP_KEYS, "the top level")
    if document.get("version") != MARKS_VERSION:
        raise MarksInvalid(f"version must be {MARKS_VERSION}, not {document.get('version')!r}")
    job = document.get("job")
    if not isinstance(job, str) or not job:
        raise MarksInvalid("job must be the job's name (its output folder name)")
    entries = document.get("rejected", [])
    if not isinstance(entries, list):
        raise MarksInvalid("rejected must be a list of {row_id, image_sha256, note}")
    by_row = {mark.row_id: mark for mark in (_parse_mark(entry, i) for i, entry in enumerate(entries))}
    return Marks(job=job, rejected=tuple(by_row.values()))


def _parse_mark(entry: Any, index: int) -> RejectMark:
    where = f"rejected[{index}]"
    if not isinstance(entry, dict):
        raise MarksInvalid(f"{where} must be an object with row_id, image_sha256 and note")
    _refuse_unknown(entry, _MARK_KEYS, where)
    row_id, sha, note = entry.get("row_id"), entry.get("image_sha256"), entry.get("note", "")
    if not isinstance(row_id, str) or not row_id:
        raise MarksInvalid(f"{where}.row_id must be a row_id from the manifest (a non-empty string)")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise MarksInvalid(f"{where}.image_sha256 must be a 64-character hex sha256, or null")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise MarksInvalid(f"{where}.note must be a string")
    return RejectMark(row_id=row_id, image_sha256=sha.lower() if sha else None, note=note)


def _refuse_unknown(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise MarksInvalid(f"{where} has unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def marks_document(marks: Marks) -> dict[str, Any]:
    """The JSON-ready document of some marks (what `write_marks` writes and the report downloads)."""
    rejected = [{"row_id": m.row_id, "image_sha256": m.image_sha256, "note": m.note} for m in marks.rejected]
    return {"version": MARKS_VERSION, "job": marks.job, "rejected": rejected}


def read_marks(path: Path, *, job: str | None = None) -> Marks:
    """The marks in a file; with `job`, also checks the file was saved for that job."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"marks file {path} not found: save it from the report's Save marks button") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"marks file {path} is not JSON ({exc}): save it again from the report") from exc
    try:
        marks = parse_marks(document)
    except MarksInvalid as exc:
        raise UsageError(f"marks file {path}: {exc}; see the marks format in the README") from exc
    if job is not None and marks.job != job:
        raise UsageError(f"marks file {path} is for job {marks.job!r}, not {job!r}: pass the marks saved from this job's report")
    return marks


def write_marks(path: Path, marks: Marks) -> None:
    """Write marks atomically (temp file, then rename), so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(marks_document(marks), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
