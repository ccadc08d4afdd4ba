"""bench/export.py runs through its real code path with a tiny job and prints well-formed figures (no time asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_export_benchmark_reports_rows_per_second_and_peak_memory_for_each_format(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "export.py"), "--rows", "400", "--rounds", "1",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=100, cwd=BENCH)

    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["rows"], figures["small_rows"]) == (400, 100)
    for fmt in ("parquet", "csv", "jsonl"):
        assert figures[fmt]["median_rows_per_s"] > 0 and figures[fmt]["median_peak_mb"] > 0
        assert (tmp_path / "job-400" / f"export.{fmt}").is_file()
