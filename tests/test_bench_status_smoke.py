"""bench/status_strata.py runs through its real code path with a tiny job and prints well-formed figures (no time asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_status_benchmark_reports_both_timings_and_their_ratio(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "status_strata.py"), "--rows", "400", "--rounds", "1",
                           "--folder", str(tmp_path / "job")], capture_output=True, text=True, timeout=120, cwd=BENCH)

    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 400 and figures["strata_done"] == 400
    assert len(figures["with_s"]) == len(figures["without_s"]) == 1 and figures["ratio"] > 0
