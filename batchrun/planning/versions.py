"""The versions file: `outputs/NAME/versions.jsonl`, which rows `batchrun redo` sent again, as what version.

Written by `batchrun redo`, read by every plan (`batchrun.planning.versioning` applies it to the
manifest), so a redo survives a re-plan: the same spec and the same versions file give the same
manifest and the same ids. One JSON object a line, appended and fsynced, never rewritten:

    {"row_id": BASE, "version": 2, "replaces": ROW_ID, "image_sha256": HEX | null, "note": "...",
     "at": "2026-11-27T16:40:00Z", "marks": "review/marks.json"}

`row_id` is the row's version-1 id (what the plan gives it without this file); `replaces` is the id of
the version rejected (version 1: the same id). A row's current version is the highest `version` its
lines name; a row with no line is at version 1. A last line cut short by a kill mid-append is ignored
(its redo never ran) and removed by the next append; any other unreadable line is an error
naming the file, the line and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batchrun.errors import UsageError
from batchrun.output.sink import fsync_dir

VERSIONS_NAME = "versions.jsonl"
_KEYS = ("row_id", "version", "replaces", "image_sha256", "note", "at", "marks")


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One line of the versions file: row `row_id` (its version-1 id) is sent again as `version`."""

    row_id: str
    version: int
    replaces: str
    image_sha256: str | None = None
    note: str = ""
    at: str = ""
    marks: str = ""


def versions_path(out_dir: Path) -> Path:
    return Path(out_dir) / VERSIONS_NAME


def read_versions(out_dir: Path) -> list[VersionEntry]:
    """Every entry of an output folder's versions file, in the order appended; [] without one."""
    path = versions_path(out_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if lines and not data.endswith(b"\n"):
        lines.pop()  # cut short by a kill mid-append: that redo never ran
    return [_entry(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]


def _entry(path: Path, number: int, line: bytes) -> VersionEntry:
    try:
        document = json.loads(line)
        return _parse(document)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{path}: line {number} is not a version entry ({exc}); restore the line "
                         "from a backup, or delete it to send that row's earlier version again") from None


def _parse(document: Any) -> VersionEntry:
    if not isinstance(document, dict) or set(document) - set(_KEYS):
        raise ValueError(f"an object with keys {', '.join(_KEYS)}")
    version = document["version"]
    row_id = document["row_id"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 2:
        raise ValueError("version must be a whole number from 2")
    if not isinstance(row_id, str) or not row_id:
        raise ValueError("row_id must be a row id")
    return VersionEntry(row_id, version, str(document.get("replaces") or row_id), document.get("image_sha256"),
                        str(document.get("note") or ""), str(document.get("at") or ""),
                        str(document.get("marks") or ""))


def current_versions(entries: Iterable[VersionEntry]) -> dict[str, int]:
    """Each redone row's current version, by its version-1 row id."""
    versions: dict[str, int] = {}
    for entry in entries:
        versions[entry.row_id] = max(entry.version, versions.get(entry.row_id, 1))
    return versions


def append_versions(out_dir: Path, entries: list[VersionEntry]) -> None:
    """Append entries and fsync them (and the folder, when the file is new) before returning."""
    if not entries:
        return
    path = versions_path(out_dir)
    created = not path.exists()
    if not created:
        _drop_cut_line(path)
    with open(path, "ab") as file:
        file.write(b"".join(_line(entry) for entry in entries))
        file.flush()
        os.fsync(file.fileno())
    if created:
        fsync_dir(path.parent)


def _line(entry: VersionEntry) -> bytes:
    return json.dumps(asdict(entry), ensure_ascii=False, sort_keys=False).encode() + b"\n"


def _drop_cut_line(path: Path) -> None:
    """Remove a last line a kill cut short (its redo never ran), so the next line starts afresh."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)
