"""Export benchmark: `batchrun export` of a finished JSON job, rows/s and peak RSS per format.

    python bench/export.py                 # 100,000 rows, and 25,000 alongside for the memory ratio
    python bench/export.py --rows 2000     # a smoke run

The job is made directly (no run): a manifest of `rows` rows (sku x tone x 2 variants, a prompt, a
response schema) and results parts of 50,000 rows in manifest order, each reply a JSON object of about
300 bytes. Each export runs in a child process of its own, which reports its wall time and its peak RSS
(VmHWM); a child that only imports the same modules gives the baseline. The small job alongside
shows whether memory grows with the job: peak(rows) / peak(rows / 4).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCHEMA = {"dialect": "openapi", "schema": {"type": "OBJECT", "properties": {
    "headline": {"type": "STRING"}, "stars": {"type": "INTEGER"}, "tags": {"type": "ARRAY"}}}}
PART_ROWS = 50_000

CHILD = """
import json, sys, time
from pathlib import Path
from batchrun.review.export import ExportFormat, export_table
from batchrun.review.table import open_review_table
folder, fmt = Path(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
rows = 0
if fmt != "none":
    rows = export_table(open_review_table(folder), folder / f"export.{fmt}", ExportFormat(fmt)).rows
seconds = time.perf_counter() - started
# VmHWM, not getrusage: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "s": seconds, "peak_mb": peak_kb / 1024}))
"""


def make_job(folder: Path, rows: int) -> Path:
    """A planned and answered job of `rows` rows in `folder` (made once, reused)."""
    if (folder / "manifest.parquet").exists():
        return folder
    from batchrun.output.journal import result_values
    from batchrun.output.sink import rows_to_table, write_part
    from batchrun.planning.manifest import ManifestWriter

    (folder / "results").mkdir(parents=True, exist_ok=True)
    writer = ManifestWriter(folder / "manifest.parquet", "bench")
    records, results = [], []
    for n in range(rows):
        records.append(_record(n))
        results.append(result_values(_result(records[-1].request_id, n)))
        if len(records) == 4096 or n == rows - 1:
            writer.write(records)
            records = []
        if len(results) == PART_ROWS or n == rows - 1:
            write_part(rows_to_table(results), folder / "results" / f"part-{n // PART_ROWS + 1:06d}.parquet")
            results = []
    writer.commit()
    return folder


def _record(n: int):
    from batchrun.records import RequestRecord

    sku, tone, variant = f"SKU-{n // 4:06d}", ("warm", "crisp")[(n // 2) % 2], n % 2
    body = {"system": "You write product copy.", "parts": [{"text": f"Write a {tone} card for {sku}."}],
            "options": {"temperature": 1.0, "seed": variant}, "response_schema": SCHEMA, "tools": None, "extras": {}}
    return RequestRecord(request_id=f"{n:032x}", seq=n, model="gemini-3-flash-preview", body=body,
                         variables={"sku": sku, "title": f"Product {n // 4}", "tone": tone, "variant": variant},
                         input_row=n // 4 + 1)


def _result(request_id: str, n: int):
    from batchrun.records import ResultRecord

    text = json.dumps({"headline": f"A fine product, number {n}", "stars": n % 5,
                       "tags": ["kitchen", "gift", "stoneware", "handmade"],
                       "body": "Made by hand in small batches; each piece differs a little. " * 3})
    return ResultRecord(request_id=request_id, status="ok", attempts=1, started_at=1.8e9 + n / 100,
                       finished_at=1.8e9 + n / 100 + 1, finish_reason="STOP", text=text, prompt_tokens=12,
                       output_text_tokens=80, thoughts_tokens=200, total_tokens=292, cost_usd=0.0007,
                       latency_ms=900, model="gemini-3-flash-preview", run_id="bench")


def measure(folder: Path, fmt: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), fmt], capture_output=True, text=True,
                          cwd=REPO, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--formats", default="parquet,csv,jsonl")
    parser.add_argument("--work", type=Path, default=Path("/tmp/batchrun-bench-export"))
    args = parser.parse_args()
    small_rows = max(args.rows // 4, 4)
    big = make_job(_fresh(args.work / f"job-{args.rows}"), args.rows)
    small = make_job(_fresh(args.work / f"job-{small_rows}"), small_rows)
    figures: dict = {"rows": args.rows, "small_rows": small_rows,
                     "baseline_peak_mb": round(measure(big, "none")["peak_mb"], 1)}
    for fmt in args.formats.split(","):
        rounds = [(measure(big, fmt), measure(small, fmt)) for _ in range(args.rounds)]
        assert all(r[0]["rows"] == args.rows and r[1]["rows"] == small_rows for r in rounds)
        figures[fmt] = {
            "rows_per_s": [round(args.rows / r[0]["s"]) for r in rounds],
            "peak_mb": [round(r[0]["peak_mb"], 1) for r in rounds],
            "small_peak_mb": [round(r[1]["peak_mb"], 1) for r in rounds],
            "peak_ratio": [round(r[0]["peak_mb"] / r[1]["peak_mb"], 2) for r in rounds],
        }
        figures[fmt]["median_rows_per_s"] = statistics.median(figures[fmt]["rows_per_s"])
        figures[fmt]["median_peak_mb"] = statistics.median(figures[fmt]["peak_mb"])
        figures[fmt]["median_peak_ratio"] = statistics.median(figures[fmt]["peak_ratio"])
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


if __name__ == "__main__":
    main()
