"""Thumbnails and image facts for the report, cached so a second report opens no unchanged image.

Inputs: result images (path under the output folder, sha256). Outputs, under `report/thumbs/`:
`<sha256>.webp` (at most THUMB_SIDE px on the long side) and `facts.json`, sha256 -> {w, h, dhash}
(the pixel size as decoded, and the 64-bit dHash of `batchrun.review.checks` as 16 hex digits).

Invariants: an image is opened only when its thumbnail or its facts are missing, so facts and
thumbnail are made from the same decode; keyed by content hash, a thumbnail never goes stale. An image
that can't be decoded gets facts {"error": ...} and no thumbnail, and is not tried again. From
PARALLEL_MIN missing images on, they are made in worker processes, one per core.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from batchrun.review.checks import dhash_bits

log = logging.getLogger(__name__)

THUMB_SIDE = 256
THUMB_QUALITY = 70
FACTS_NAME = "facts.json"
PARALLEL_MIN = 64  # fewer images are made in this process: starting workers would cost more
PARALLEL_CHUNK = 16
MAX_WORKERS = 8


def default_workers() -> int:
    """One worker per core this process may use, at most MAX_WORKERS."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


@dataclass(frozen=True, slots=True)
class ThumbStats:
    """What one pass made: thumbnails written, images reused from the cache, images that failed."""

    made: int
    cached: int
    failed: int


def thumb_name(sha256: str) -> str:
    """The thumbnail's file name, relative to the thumbs folder."""
    return f"{sha256}.webp"


def image_facts(image: Image.Image, width: int, height: int) -> dict[str, Any]:
    """Pixel size (as decoded from the file's header) and dHash of an image, from any size of it."""
    gray = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    return {"w": width, "h": height, "dhash": f"{dhash_bits(gray.tobytes()):016x}"}


def make_thumbnail(source: Path, target: Path) -> dict[str, Any]:
    """Decode one image, write its thumbnail (temp file, then rename) and return its facts."""
    with Image.open(source) as image:
        width, height = image.size
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a fraction of the size, far quicker
        image.load()
        small = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGBA")
        small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    facts = image_facts(small, width, height)  # the dHash of 9x8 pixels is the same from the thumbnail
    tmp = target.with_name(target.name + ".tmp")
    small.save(tmp, "WEBP", quality=THUMB_QUALITY, method=0)
    os.replace(tmp, target)
    return facts


class ThumbCache:
    """The thumbs folder of one report: thumbnails by content hash and their facts."""

    def __init__(self, folder: Path, *, workers: int | None = None) -> None:
        self.folder = Path(folder)
        self.workers = default_workers() if workers is None else workers
        self.facts: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        """Read the facts of earlier reports (none when absent or unreadable)."""
        path = self.folder / FACTS_NAME
        try:
            self.facts = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            self.facts = {}

    def save(self) -> None:
        """Write the facts (temp file, then rename)."""
        path = self.folder / FACTS_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.facts, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)

    def update(self, images: Iterable[tuple[str, Path]]) -> ThumbStats:
        """Make what is missing for each (sha256, image file); each distinct sha256 once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        wanted = dict(images)
        present = {entry.name for entry in os.scandir(self.folder)}  # one listing, not a stat per image
        missing = [(sha, source) for sha, source in wanted.items() if not self._is_cached(sha, present)]
        for (sha, source), facts in zip(missing, self._make_all(missing)):
            if "error" in facts:
                log.warning("no thumbnail for %s: %s", source, facts["error"])
            self.facts[sha] = facts
        failed = sum("error" in self.facts[sha] for sha, _ in missing)
        return ThumbStats(made=len(missing) - failed, cached=len(wanted) - len(missing), failed=failed)

    def _is_cached(self, sha: str, present: set[str]) -> bool:
        facts = self.facts.get(sha)
        return facts is not None and ("error" in facts or thumb_name(sha) in present)

    def _make_all(self, missing: list[tuple[str, Path]]) -> Iterable[dict[str, Any]]:
        """The facts of each missing image, made in worker processes when there are enough of them."""
        jobs = [(source, self.folder / thumb_name(sha)) for sha, source in missing]
        if self.workers < 2 or len(jobs) < PARALLEL_MIN:
            return [make_one(job) for job in jobs]
        # spawn, not fork: the caller may hold threads (a fork copies their locks mid-use)
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            return list(pool.map(make_one, jobs, chunksize=PARALLEL_CHUNK))


def make_one(job: tuple[Path, Path]) -> dict[str, Any]:
    """`make_thumbnail` of (source, target), an error as facts {"error": ...} (a worker process's unit)."""
    source, target = job
    try:
        return make_thumbnail(source, target)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
