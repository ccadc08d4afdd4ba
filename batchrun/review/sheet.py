"""The contact sheet's layout: what the page draws, built from the review table and the image facts.

Inputs: the review table's rows (dicts, in manifest order, with its input, matrix and variant columns),
the thumbnail cache's facts (sha256 -> {w, h, dhash} or {error}). Outputs: `Sheet`, holding

- `combos`: each distinct tuple of matrix values, in first-seen order: one column of the sheet each;
- `lines`: one per input row, in first-seen order: {"n": input_row, "in": [input values],
  "c": [cell, ...]}, a cell being {"id": row_id, "k": combo index, "v": variant, "s": status,
  "h": image sha256 or None, "t": 1 when a thumbnail exists, "r": why it is not ok, "f": [flags],
  "x": the start of a text reply, "e": how many earlier versions a redone row has (absent: none)};
- `details`: row_id -> what the detail view shows (prompt, variables, model, tokens, cost, finish reason,
  the full image's path relative to the report folder, the whole reply, and a redone row's earlier
  versions: version, status, the reviewer's note, their image and thumbnail).

A text job (no row has an image) gets the same lines; the page draws them as a table of replies.
Flags are `batchrun.review.checks`'s: pixel size and aspect ratio against the request, and near-duplicate
variants within one line's combo.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batchrun.review.checks import near_duplicates, pixel_flags

TEXT_PREVIEW_CHARS = 600
REASON_CHARS = 240
IMAGES_FOLDER_FROM_REPORT = "../"  # image paths are relative to the output folder; the page sits in report/


@dataclass
class Sheet:
    """Lines, combos and details of one report, filled row by row with `add`."""

    input_columns: tuple[str, ...]
    matrix_columns: tuple[str, ...]
    variant_column: str | None
    facts: dict[str, dict[str, Any]]
    combos: dict[tuple[str, ...], int] = field(default_factory=dict)
    lines: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    has_images: bool = False
    statuses: dict[str, int] = field(default_factory=dict)
    _line_of: dict[Any, int] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        """Place one review-table row: its line, its combo column, its cell and its details."""
        line = self._line(row)
        cell = self._cell(row)
        line["c"].append(cell)
        self.details[row["row_id"]] = detail_of(row, self.input_columns + self.matrix_columns, self.facts)
        self.statuses[cell["s"]] = self.statuses.get(cell["s"], 0) + 1
        self.has_images = self.has_images or cell["h"] is not None

    def add_all(self, rows: Iterable[dict[str, Any]]) -> None:
        """`add` each row, then flag near-duplicate variants."""
        for row in rows:
            self.add(row)
        flag_duplicates(self.lines, self.facts)

    def add_history(self, history: dict[str, list[Any]]) -> None:
        """Each redone row's earlier versions (`batchrun.review.versions.EarlierVersion`), oldest first: the
        cell counts them (`e`), the detail view shows their images, statuses and the reviewers' notes."""
        for line in self.lines:
            for cell in line["c"]:
                earlier = history.get(cell["id"])
                if earlier:
                    cell["e"] = len(earlier)
                    self.details[cell["id"]]["earlier"] = [_earlier(v, self.facts) for v in earlier]

    def _line(self, row: dict[str, Any]) -> dict[str, Any]:
        key = row.get("input_row")
        if key is None:  # a manifest without input rows: one line per expanded row
            key = ("row", row["row_id"])
        index = self._line_of.get(key)
        if index is None:
            index = self._line_of[key] = len(self.lines)
            self.lines.append({"n": row.get("input_row"), "in": [_text(row.get(c)) for c in self.input_columns], "c": []})
        return self.lines[index]

    def _cell(self, row: dict[str, Any]) -> dict[str, Any]:
        combo = tuple(_text(row.get(c)) for c in self.matrix_columns)
        sha = row.get("image_sha256")
        facts = self.facts.get(sha) if sha else None
        return {
            "id": row["row_id"],
            "k": self.combos.setdefault(combo, len(self.combos)),
            "v": row.get(self.variant_column) if self.variant_column else 0,
            "s": row.get("status") or "pending",
            "h": sha,
            "t": 1 if facts is not None and "error" not in facts else 0,
            "r": reason_of(row),
            "f": flags_of(row, facts),
            "x": (row.get("text") or "")[:TEXT_PREVIEW_CHARS] or None,
        }


def _earlier(version: Any, facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sha = version.image_sha256
    return {"version": version.version, "status": version.status, "note": version.note or None,
            "img": _image_href(version.image_path) if sha else None,
            "thumb": f"thumbs/{sha}.webp" if sha and "error" not in facts.get(sha, {"error": 1}) else None}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def reason_of(row: dict[str, Any]) -> str | None:
    """Why a cell is not ok, in a few words: finish reason, error kind and message."""
    if row.get("status") in (None, "ok", "pending"):
        return None
    parts = [str(p) for p in (row.get("finish_reason"), row.get("error_kind"), row.get("error_message")) if p]
    said = [_plain(p) for p in parts]
    kept = [p for i, p in enumerate(parts) if not any(said[i] in other for j, other in enumerate(said) if j > i)]
    text = ": ".join(dict.fromkeys(kept))
    return text[:REASON_CHARS] or row.get("status")


def _plain(text: str) -> str:
    """A reason part as words, to see one part repeat another (`prompt_blocked` in "prompt blocked: SAFETY")."""
    return text.lower().replace("_", " ")


def flags_of(row: dict[str, Any], facts: dict[str, Any] | None) -> list[str]:
    """The pixel checks of one image, on its decoded size when known, else the recorded one."""
    if row.get("image_sha256") is None:
        return []
    width = (facts or {}).get("w") or row.get("image_width")
    height = (facts or {}).get("h") or row.get("image_height")
    flags = pixel_flags(width, height, row.get("aspect_ratio_requested"), row.get("image_size_requested"))
    if facts is not None and "error" in facts:
        flags.append("image unreadable")
    return flags


def flag_duplicates(lines: list[dict[str, Any]], facts: dict[str, dict[str, Any]]) -> int:
    """Flag variants of one line and combo whose images nearly repeat; returns how many were flagged."""
    flagged = 0
    for line in lines:
        by_combo: dict[int, list[dict[str, Any]]] = {}
        for cell in line["c"]:
            by_combo.setdefault(cell["k"], []).append(cell)
        for cells in by_combo.values():
            flagged += _flag_twins(cells, facts)
    return flagged


def _flag_twins(cells: list[dict[str, Any]], facts: dict[str, dict[str, Any]]) -> int:
    hashes = [(i, int(facts[c["h"]]["dhash"], 16)) for i, c in enumerate(cells)
              if c["h"] and "dhash" in facts.get(c["h"], {})]
    if len(hashes) < 2:
        return 0
    twins = near_duplicates((str(i), h) for i, h in hashes)
    for key, twin in twins.items():
        cells[int(key)]["f"].append(f"near-duplicate of variant {cells[int(twin)]['v']}")
    return len(twins)


def detail_of(row: dict[str, Any], variable_columns: tuple[str, ...], facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the detail view shows of one row."""
    sha = row.get("image_sha256")
    width, height = row.get("image_width"), row.get("image_height")
    tokens = [f"{name} {row[key]:,}" for name, key in (("in", "input_tokens"), ("out", "output_tokens"),
                                                        ("thinking", "thinking_tokens")) if row.get(key) is not None]
    cost = row.get("cost_usd")
    return {
        "prompt": row.get("prompt"),
        "vars": {c: _text(row.get(c)) for c in variable_columns},
        "model": row.get("model"),
        "finish": row.get("finish_reason"),
        "tokens": ", ".join(tokens) or None,
        "cost": None if cost is None else f"${cost:.6f}",
        "tier": row.get("service_tier"),
        "latency": None if row.get("latency_ms") is None else f"{row['latency_ms']:,} ms",
        "attempts": row.get("attempts"),
        "size": f"{width}x{height}" if width and height else None,
        "img": _image_href(row.get("image_path")) if sha else None,
        "text": row.get("text"),
        "shared_from": row.get("shared_from"),
    }


def _image_href(path: str | None) -> str | None:
    if not path:
        return None
    return path if path.startswith(("/", "file:")) else IMAGES_FOLDER_FROM_REPORT + path
