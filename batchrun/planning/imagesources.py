"""Where a plan's input photos come from: local files, URLs fetched into the input cache, image_prep.

Input: a LoadedSpec, the Expander's compiled `request.images` templates and matrix combinations.
Output: the ImageInspector expansion uses (URLs already fetched, the cache and image_prep set), and,
with `--skip-bad-inputs`, `skipped_inputs.csv` listing the rows left out.
Invariant: every URL is fetched before expansion starts (all at once, concurrently), so expansion
itself stays free of network; a URL that fails becomes an ImageProblem of each row that uses it.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchrun.errors import TemplateProblem
from batchrun.planning.imageproblems import SkippedRow
from batchrun.planning.inputcache import InputCache, cache_folder
from batchrun.planning.inputimages import ImageInspector
from batchrun.planning.inputs import iter_row_batches
from batchrun.planning.spec import LoadedSpec
from batchrun.planning.templates import CompiledTemplate
from batchrun.planning.urlfetch import FetchSettings, fetch_all
from batchrun.records import cached_image_name, is_url

log = logging.getLogger(__name__)

SKIPPED_NAME = "skipped_inputs.csv"


def input_inspector(loaded: LoadedSpec, images: list[CompiledTemplate], combos: list[dict[str, Any]], *,
                    refresh: bool = False, settings: FetchSettings | None = None,
                    inline_limit: int | None = None) -> ImageInspector:
    """The inspector of one plan: its URLs fetched (or reused from the cache) and image_prep applied;
    `inline_limit` as the Expander's (set for a provider without a Files API)."""
    prep = loaded.spec.request.image_prep
    urls = gather_urls(loaded, images, combos) if images else []
    if not urls and prep is None:
        return ImageInspector(loaded.folder, inline_limit=inline_limit)
    cache = InputCache(cache_folder(loaded.output_dir))
    fetched = fetch_all(urls, cache, settings or FetchSettings(), refresh=refresh) if urls else {}
    if urls:
        failed = sum(1 for entry in fetched.values() if isinstance(entry, Exception))
        log.info("input photos by URL: %s, of which %s could not be fetched", f"{len(urls):,}", f"{failed:,}")
    return ImageInspector(loaded.folder, fetched=fetched, cache=cache, prep=prep, inline_limit=inline_limit)


def save_input_cache(inspector: ImageInspector) -> None:
    """Keep what this plan prepared in the cache's index, so the next plan reuses it."""
    if inspector.cache is not None:
        inspector.cache.save_index()


def gather_urls(loaded: LoadedSpec, images: list[CompiledTemplate], combos: list[dict[str, Any]]) -> list[str]:
    """The distinct URLs `request.images` renders to, in the order rows first name them."""
    constant = [t.constant for t in images if t.constant is not None]
    if len(constant) == len(images):
        return [c for c in dict.fromkeys(constant) if is_url(c)]
    found: dict[str, None] = {}
    matrix_used = any(key in t.source for t in images for key in (combos[0] if combos else {}))
    needed = combos if matrix_used else combos[:1]  # a template that names no matrix key renders once a row
    for batch in iter_row_batches(loaded):
        for row in batch:
            for combo in needed or [{}]:
                found.update(dict.fromkeys(_urls_of(images, {**row, **combo} if combo else row)))
    return list(found)


def _urls_of(images: list[CompiledTemplate], variables: dict[str, Any]) -> Iterable[str]:
    for template in images:
        try:
            path = template.render(variables)
        except TemplateProblem:
            continue  # expansion reports it, naming the row
        if is_url(path):
            yield path


def write_skipped(output_dir: Path, skipped: list[SkippedRow], id_column: str | None) -> Path | None:
    """`skipped_inputs.csv` listing the rows left out; an old one is removed when none were."""
    path = Path(output_dir) / SKIPPED_NAME
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["row", id_column or "id", "image", "reason"])
        for row in skipped:
            writer.writerow([row.row, row.ident, row.image, row.reason])
    return path


def missing_cached_images(loaded: LoadedSpec, manifest: Path) -> int:
    """How many distinct images the manifest needs from the input cache (photos by URL, or every photo
    when `request.image_prep` is set) that the cache no longer holds: a plan fetches or prepares them again."""
    if not loaded.spec.request.images or not manifest.is_file():
        return 0
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    refs = pc.list_flatten(pq.read_table(manifest, columns=["images"])["images"])
    prepared = loaded.spec.request.image_prep is not None
    seen: set[str] = set()
    missing = 0
    cache = cache_folder(loaded.output_dir)
    for ref in refs.to_pylist():
        if ref["sha256"] in seen or not (prepared or is_url(ref["path"])):
            continue
        seen.add(ref["sha256"])
        if not (cache / cached_image_name(ref["sha256"], ref["mime"])).is_file():
            missing += 1
    return missing
