"""What estimate against actual per stratum adds to `batchrun status`: summarize() with and without it.

    python bench/status_strata.py               # 100,000 answered rows
    python bench/status_strata.py --rows 2000   # a smoke run

The job is bench/export.py's (made once under /tmp or --folder, reused): a manifest of `rows` text requests and
their results. Each round times `summarize(folder)` as status runs it, then the same with the per-stratum
check switched off, alternately in one process after one warm-up call, so the ratio is measured side by side on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def timed(summarize, folder: Path) -> float:
    started = time.perf_counter()
    summarize(folder)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", type=Path, help="where the job is made (default /tmp/bench-status-strata-ROWS)")
    args = parser.parse_args()
    from export import make_job

    from batchrun.output import status

    folder = args.folder or Path(f"/tmp/bench-status-strata-{args.rows}")
    folder.mkdir(parents=True, exist_ok=True)
    make_job(folder, args.rows)
    with_check, without = [], []
    checking = status._read_estimate_check
    status.summarize(folder)  # imports and the first read of the files: in neither figure
    for _ in range(args.rounds):
        status._read_estimate_check = checking
        with_check.append(timed(status.summarize, folder))
        status._read_estimate_check = lambda *_args: None
        without.append(timed(status.summarize, folder))
    status._read_estimate_check = checking
    strata = status.summarize(folder).estimate_vs_actual
    print(json.dumps({"rows": args.rows, "with_s": [round(s, 3) for s in with_check],
                      "without_s": [round(s, 3) for s in without],
                      "ratio": round(statistics.median(with_check) / statistics.median(without), 2),
                      "strata_done": None if strata is None else strata["total"]["requests"]}))


if __name__ == "__main__":
    main()
