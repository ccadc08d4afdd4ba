"""`batchrun report` on large synthetic jobs: generation time, first paint in chromium, cached thumbnails.

Two synthetic output folders, written straight as Parquet (no run, no server):
- paint: ROWS rows (input rows x 2 scenes x 2 aspect ratios), DISTINCT small JPEGs reused across them,
  2% blocked and 1% failed. Timed: `write_report` (first and second), then the page opened from
  file:// in headless chromium (Playwright, /usr/bin/chromium), PAINTS times on fresh pages: the time
  from navigation start to the first contact sheet drawn (`BR.firstSheetMs`, taken in the frame after
  the first render) and to Playwright's `load` event.
- cache: CACHE_IMAGES rows, each with an image of its own (copies of DISTINCT pictures made distinct
  by a unique JPEG comment, so every one is decoded), reported twice: the second report finds every
  thumbnail and its facts cached. Figure: second / first, measured side by side in one run.

Prints its figures, last, as one JSON line. Usage:
    python bench/report_paint.py [--rows 50000] [--distinct 300] [--cache-images 20000] [--paints 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from batchrun.output.results import RESULT_SCHEMA
from batchrun.output.sink import write_part
from batchrun.planning.manifest import MANIFEST_NAME, MANIFEST_SCHEMA
from batchrun.review.report import write_report

SCENES = ("kitchen counter", "picnic table")
RATIOS = ("1:1", "4:5")
CHROMIUM = "/usr/bin/chromium"


def make_pictures(folder: Path, count: int, side: int = 512) -> list[bytes]:
    """`count` distinct small JPEGs (bytes), drawn from the index."""
    pictures = []
    for n in range(count):
        image = Image.new("RGB", (side, side), ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256))
        draw = ImageDraw.Draw(image)
        draw.ellipse((n % 200, (n * 7) % 200, side - (n % 150), side - (n * 3) % 150), fill=((n * 11) % 256, 200, 90))
        path = folder / f"p{n}.jpg"
        image.save(path, quality=80)
        pictures.append(path.read_bytes())
        path.unlink()
    return pictures


def write_job(out_dir: Path, rows: int, pictures: list[bytes], *, distinct_per_row: bool) -> None:
    """A manifest and one results part of `rows` rows; images under images/."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "results").mkdir(exist_ok=True)
    manifest, results, written = [], [], {}
    start = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    combos = [(s, r) for s in SCENES for r in RATIOS]
    for n in range(rows):
        input_row, (scene, ratio) = n // len(combos) + 1, combos[n % len(combos)]
        row_id = hashlib.sha256(f"row {n}".encode()).hexdigest()[:32]
        variables = {"sku": f"SKU-{input_row:06d}", "title": f"Product {input_row}", "scene": scene, "aspect_ratio": ratio}
        body = {"system": None, "parts": [{"text": f"Photograph {variables['title']} on a {scene}."}],
                "options": {"imageConfig": {"aspectRatio": ratio, "imageSize": "1K"}}}
        manifest.append({"request_id": row_id, "row_id": row_id, "seq": n, "input_row": input_row, "model": "m",
                         "body": orjson.dumps(body).decode(), "variables": orjson.dumps(variables).decode()})
        status = "blocked" if n % 50 == 7 else "failed" if n % 100 == 13 else "ok"
        image = _image(out_dir, n, pictures, written, distinct_per_row) if status == "ok" else (None, None)
        results.append({"request_id": row_id, "row_id": row_id, "status": status, "attempts": 1,
                        "started_at": start + dt.timedelta(seconds=n * 0.05),
                        "finished_at": start + dt.timedelta(seconds=n * 0.05 + 2), "image_path": image[0],
                        "image_sha256": image[1], "image_width": 512 if image[0] else None,
                        "image_height": 512 if image[0] else None, "cost_usd": 0.067 if status == "ok" else 0.0,
                        "finish_reason": "IMAGE_SAFETY" if status == "blocked" else "STOP",
                        "error_kind": "server_error" if status == "failed" else None,
                        "error_message": "503 UNAVAILABLE" if status == "failed" else None,
                        "model": "gemini-3.1-flash-image", "latency_ms": 900 + n % 400, "prompt_tokens": 1300,
                        "output_image_tokens": 1120})
    pq.write_table(pa.Table.from_pylist(manifest, schema=MANIFEST_SCHEMA), out_dir / MANIFEST_NAME)
    write_part(pa.Table.from_pylist(results, schema=RESULT_SCHEMA), out_dir / "results" / "part-000000.parquet")


def _image(out_dir: Path, n: int, pictures: list[bytes], written: dict[int, tuple[str, str]],
           distinct: bool) -> tuple[str, str]:
    key = n if distinct else n % len(pictures)
    if key not in written:
        data = pictures[key % len(pictures)]
        if distinct:  # a unique comment segment after SOI: a distinct file every decoder still reads
            comment = f"row {n}".encode()
            data = data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
        relative = f"images/i{key}.jpg"
        (out_dir / relative).write_bytes(data)
        written[key] = (relative, hashlib.sha256(data).hexdigest())
    return written[key]


def timed_report(out_dir: Path) -> tuple[float, object]:
    started = time.perf_counter()
    written = write_report(out_dir, "bench")
    return time.perf_counter() - started, written


def first_paints(index: Path, paints: int) -> list[dict[str, float]]:
    """Milliseconds from navigation start to the first contact sheet drawn, and to `load`, on fresh pages."""
    from playwright.sync_api import sync_playwright

    figures = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for _ in range(paints):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(index.as_uri(), wait_until="load")
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            sheet_ms = page.evaluate("BR.firstSheetMs")
            load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            cells = page.locator(".cell").count()
            figures.append({"first_sheet_ms": round(sheet_ms, 1), "load_ms": round(load_ms, 1), "cells_drawn": cells})
            page.close()
        browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--distinct", type=int, default=300)
    parser.add_argument("--cache-images", type=int, default=20_000)
    parser.add_argument("--paints", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        root = Path(tmp)
        pictures = make_pictures(root, args.distinct)
        paint_dir, cache_dir = root / "paint", root / "cache"
        write_job(paint_dir, args.rows, pictures, distinct_per_row=False)
        first_s, written = timed_report(paint_dir)
        second_s, _ = timed_report(paint_dir)
        paints = first_paints(written.path, args.paints) if Path(CHROMIUM).exists() else []
        write_job(cache_dir, args.cache_images, pictures, distinct_per_row=True)
        cold_s, cold = timed_report(cache_dir)
        warm_s, warm = timed_report(cache_dir)
    figures = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, nproc {os.cpu_count()}",
        "python": sys.version.split()[0], "rows": args.rows, "distinct_images": args.distinct,
        "report_s": round(first_s, 2), "report_again_s": round(second_s, 2),
        "first_sheet_ms": [p["first_sheet_ms"] for p in paints],
        "first_sheet_ms_median": statistics.median(p["first_sheet_ms"] for p in paints) if paints else None,
        "load_ms": [p["load_ms"] for p in paints], "cells_drawn": paints[0]["cells_drawn"] if paints else None,
        "cache_images": args.cache_images, "cache_first_s": round(cold_s, 2), "cache_second_s": round(warm_s, 2),
        "cache_thumbs_made": [cold.thumbs.made, warm.thumbs.made], "cache_second_over_first": round(warm_s / cold_s, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
