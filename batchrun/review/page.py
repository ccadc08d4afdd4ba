"""The report's files: `index.html` with its CSS and script inline, and its data in `data/*.js` beside it.

Inputs: a `Sheet` (lines, combos, details), the summary's HTML, the job's name. Outputs, in the report
folder: `index.html`; `data/meta.js` (job, columns, combos, chunk count); `data/lines-NNNN.js`, the lines
CHUNK_LINES at a time; `data/detail-NNNN.js`, the details of the same lines, loaded only when a cell is
opened. Every data file is a script calling `BR.*` (a `<script src>` loads from file://, where fetch()
of a local file is refused). The page loads meta and the first lines chunk before it draws, so the
first screen waits for no more than that; it loads the other chunks after.

Invariants: every file is written whole (temp file, then rename); chunk files a larger earlier report
left behind are removed, so the folder holds one report.
"""

from __future__ import annotations

import os
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from batchrun.review.sheet import Sheet

CHUNK_LINES = 250
DATA_FOLDER = "data"
INDEX_NAME = "index.html"
_CHUNK_PREFIXES = ("lines-", "detail-")


def asset_text(name: str) -> str:
    """One of the page's assets (HTML template, CSS, script), from the package."""
    return resources.files("batchrun.review").joinpath("assets", name).read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _script_call(function: str, *args: Any) -> str:
    return f"BR.{function}(" + ",".join(orjson.dumps(a).decode() for a in args) + ");\n"


def page_meta(sheet: Sheet, job: str, chunks: int) -> dict[str, Any]:
    """What the page needs before any line: columns, combos, statuses, how many chunks to load."""
    return {
        "job": job,
        "kind": "images" if sheet.has_images else "text",
        "inputColumns": list(sheet.input_columns),
        "matrixColumns": list(sheet.matrix_columns),
        "combos": [list(combo) for combo in sheet.combos],
        "maxVariants": max((_variants_per_cell(line) for line in sheet.lines), default=1),
        "statuses": sorted(sheet.statuses),
        "lines": len(sheet.lines),
        "cells": sum(sheet.statuses.values()),
        "chunkCount": chunks,
    }


def _variants_per_cell(line: dict[str, Any]) -> int:
    per_combo: dict[int, int] = {}
    for cell in line["c"]:
        per_combo[cell["k"]] = per_combo.get(cell["k"], 0) + 1
    return max(per_combo.values(), default=1)


def write_data(folder: Path, sheet: Sheet, job: str) -> int:
    """Write meta, lines and details chunks; returns the number of chunks."""
    data = folder / DATA_FOLDER
    data.mkdir(parents=True, exist_ok=True)
    starts = range(0, max(len(sheet.lines), 1), CHUNK_LINES)
    for number, start in enumerate(starts):
        lines = sheet.lines[start:start + CHUNK_LINES]
        details = {cell["id"]: sheet.details[cell["id"]] for line in lines for cell in line["c"]}
        _write(data / f"lines-{number:04d}.js", _script_call("addLines", number, lines))
        _write(data / f"detail-{number:04d}.js", _script_call("addDetails", number, details))
    _remove_stale_chunks(data, len(starts))
    _write(data / "meta.js", _script_call("setMeta", page_meta(sheet, job, len(starts))))
    return len(starts)


def _remove_stale_chunks(data: Path, chunks: int) -> None:
    for path in data.glob("*.js"):
        prefix = next((p for p in _CHUNK_PREFIXES if path.name.startswith(p)), None)
        if prefix and int(path.stem[len(prefix):]) >= chunks:
            path.unlink()


def index_html(job: str, summary: str) -> str:
    """The page itself, with its CSS, script and summary inline."""
    fills = {"{{css}}": asset_text("report.css"), "{{js}}": asset_text("report.js"), "{{summary}}": summary,
             "{{title}}": escape(job), "{{job}}": escape(job)}
    html = asset_text("report.html")
    for placeholder, value in fills.items():
        html = html.replace(placeholder, value)
    return html


def write_page(folder: Path, sheet: Sheet, summary: str, job: str) -> Path:
    """Write the whole report into `folder`; returns the path of its index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    write_data(folder, sheet, job)
    path = folder / INDEX_NAME
    _write(path, index_html(job, summary))
    return path
