"""`batchrun report`: the static HTML report of one output folder.

Inputs: an output folder (`manifest.parquet`, results, `images/`, `runs/`), read through the review
table (`batchrun.review.table`) and the run summary (`batchrun.review.summary`). Outputs:
`report/index.html` and its `data/`
(`batchrun.review.page`), `report/thumbs/` (`batchrun.review.thumbs`). A row redone by `batchrun redo`
shows its earlier versions (`batchrun.review.versions`) beside the current one in its detail view. No network, no spec needed
beyond the job's name.

Invariants: images are opened only for thumbnails or facts not yet cached, so a second report of an
unchanged job decodes nothing; the page opens from file:// with nothing else (no server, no CDN).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrun.review.page import write_page
from batchrun.review.sheet import Sheet
from batchrun.review.summary import summarize_run
from batchrun.review.summaryhtml import summary_html
from batchrun.review.table import ReviewTable, open_review_table
from batchrun.review.thumbs import ThumbCache, ThumbStats
from batchrun.review.versions import EarlierVersion, version_history

log = logging.getLogger(__name__)

REPORT_FOLDER = "report"
THUMBS_FOLDER = "thumbs"


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """Where the report is, how many rows it shows, and what the thumbnail pass did."""

    path: Path
    rows: int
    thumbs: ThumbStats
    flagged: int


def _rows(table: ReviewTable) -> Iterator[dict[str, Any]]:
    for batch in table.batches():
        yield from batch.to_pylist()


def _images(rows: list[dict[str, Any]], out_dir: Path) -> list[tuple[str, Path]]:
    """(sha256, file) of each distinct image the rows show."""
    paths: dict[str, str] = {}
    for row in rows:
        sha, path = row.get("image_sha256"), row.get("image_path")
        if sha and path and sha not in paths:
            paths[sha] = path
    return [(sha, out_dir / path) for sha, path in paths.items()]


def earlier_rows(history: dict[str, list[EarlierVersion]]) -> list[dict[str, Any]]:
    """The images of rows' earlier (rejected) versions, as rows `make_thumbnails` takes."""
    return [{"image_sha256": v.image_sha256, "image_path": v.image_path} for versions in history.values()
            for v in versions if v.image_sha256 and v.image_path]


def make_thumbnails(rows: list[dict[str, Any]], out_dir: Path, folder: Path) -> tuple[ThumbCache, ThumbStats]:
    """Thumbnails and facts of every image the rows show, made only where missing."""
    cache = ThumbCache(folder)
    cache.load()
    stats = cache.update(_images(rows, out_dir))
    cache.save()
    if stats.made or stats.failed:
        log.info("thumbnails: %d made, %d cached, %d unreadable", stats.made, stats.cached, stats.failed)
    return cache, stats


def write_report(out_dir: Path, job: str) -> WrittenReport:
    """Write `report/index.html` of an output folder and everything it loads."""
    out_dir = Path(out_dir)
    table = open_review_table(out_dir, relative_paths=True)
    rows = list(_rows(table))
    history = version_history(out_dir)
    folder = out_dir / REPORT_FOLDER
    cache, stats = make_thumbnails(rows + earlier_rows(history), out_dir, folder / THUMBS_FOLDER)
    sheet = Sheet(table.input_columns, table.matrix_columns, table.variant_column, cache.facts)
    sheet.add_all(rows)
    sheet.add_history(history)
    path = write_page(folder, sheet, summary_html(summarize_run(out_dir).to_json()), job)
    flagged = sum(1 for line in sheet.lines for cell in line["c"] if cell["f"])
    return WrittenReport(path=path, rows=len(rows), thumbs=stats, flagged=flagged)
