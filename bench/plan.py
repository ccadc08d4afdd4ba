"""Plan benchmark: a large CSV catalog × a 2-value matrix → manifest; wall time and peak RSS.

    python bench/plan.py              # 1,000,000 rows x 2 = 2,000,000 requests
    python bench/plan.py --rows 2000  # a smoke run

Runs `batchrun plan` as a child process and reads its peak RSS from getrusage(RUSAGE_CHILDREN).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import write_catalog

SPEC = """name: bench-plan
provider: {{kind: simulator}}
model: gemini-3-flash-preview
inputs: {{path: {csv}, id_column: sku}}
matrix:
  tone: [playful, formal]
request:
  system: You write concise product copy.
  prompt: "Write a {{{{ tone }}}} description of the {{{{ title }}}} in {{{{ color }}}} (SKU {{{{ sku }}}})."
  generation_config: {{maxOutputTokens: 512, responseMimeType: text/plain}}
output:
  dir: {out}
"""


def run(rows: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / f"catalog-{rows}.csv"
    if not catalog.exists():
        write_catalog(catalog, rows)
    spec = work / f"plan-{rows}.yaml"
    spec.write_text(SPEC.format(csv=catalog.name, out=(work / f"out-{rows}").as_posix()))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchrun", "-q", "plan", str(spec), "--json"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rows": rows, "requests": summary["requests"], "seconds": round(elapsed, 2),
            "requests_per_s": round(summary["requests"] / elapsed), "peak_rss_mb": round(peak_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    print(json.dumps(run(args.rows, args.work)))


if __name__ == "__main__":
    main()
