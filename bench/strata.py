"""Strata benchmark: `stratum_table` beside `estimate_manifest` on the same manifest, in one process.

    python bench/strata.py                 # 1,000,000 requests
    python bench/strata.py --rows 20000    # a smoke run

The manifest is written directly with pyarrow: two image models at two sizes and a text model, prompts of
10 to 400 tokens, variants 0-3 in `variables`. Each figure is the median of --rounds rounds, the two
functions taking turns within a round, so the ratio is measured under the same load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchrun.cost.estimate import estimate_manifest
from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.strata import stratum_table

KINDS = [("gemini-3.1-flash-image", "1K", 1120, 1), ("gemini-3.1-flash-image", "512", 747, 1),
         ("gemini-3-flash-preview", None, 0, 0)]


def write_manifest(path: Path, rows: int) -> Path:
    kinds = [KINDS[i % 3] for i in range(rows)]
    pq.write_table(pa.table({
        "request_id": pa.array([f"r{i:08d}" for i in range(rows)], pa.string()),
        "row_id": pa.array([f"r{i:08d}" for i in range(rows)], pa.string()),
        "model": pa.array([k[0] for k in kinds], pa.string()),
        "variables": pa.array([f'{{"variant":{i % 4},"sku":"s{i}"}}' for i in range(rows)], pa.string()),
        "est_input_text_tokens": pa.array([10 + (i * 37) % 390 for i in range(rows)], pa.int64()),
        "est_input_image_tokens": pa.array([0] * rows, pa.int64()),
        "est_output_text_tokens_max": pa.array([4096] * rows, pa.int64()),
        "est_output_image_tokens": pa.array([k[2] for k in kinds], pa.int64()),
        "est_images_out": pa.array([k[3] for k in kinds], pa.int32()),
        "est_thinking_level": pa.array([None] * rows, pa.string()),
        "est_thinking_budget": pa.array([None] * rows, pa.int64()),
        "est_service_tier": pa.array([None] * rows, pa.string()),
        "est_image_size": pa.array([k[1] for k in kinds], pa.string()),
        "est_text_allowed": pa.array([True] * rows, pa.bool_()),
        "est_aspect_ratio": pa.array(["1:1" if k[3] else None for k in kinds], pa.string()),
    }), path)
    return path


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    catalog = PriceCatalog.load()
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_manifest(Path(folder) / "manifest.parquet", args.rows)
        strata, estimate = [], []
        for _ in range(args.rounds):
            strata.append(timed(lambda: stratum_table(manifest, catalog)))
            estimate.append(timed(lambda: estimate_manifest(manifest, catalog)))
    s, e = statistics.median(strata), statistics.median(estimate)
    print(f"{args.rows:,} requests: stratum_table {s:.2f} s ({args.rows / s:,.0f} requests/s), "
          f"estimate_manifest {e:.2f} s, ratio {s / e:.2f}")
    print("stratum_table rounds:", ", ".join(f"{t:.2f}" for t in strata))
    print("estimate_manifest rounds:", ", ".join(f"{t:.2f}" for t in estimate))


if __name__ == "__main__":
    main()
