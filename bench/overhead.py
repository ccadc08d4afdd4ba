"""Overhead: 20,000 text requests against a canned server with no latency, concurrency 64.

    python bench/overhead.py [--requests 20000] [--runs 3]

The canned server is nginx (Debian's package) when installed, else bench/canned_server.py. Each run
measures, against the same server: `batchrun run` end to end (manifest to results Parquet, process
start to exit, planned beforehand), a naive anyio + httpx loop and a bare aiohttp loop (both in bench/).
Prints the median of the runs of each and the runner's ratios to the loops, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import harness

CONCURRENCY = 64


def loop_rate(script: str, url: str, requests: int) -> float:
    done = subprocess.run([sys.executable, str(harness.BENCH_DIR / script), url, "--requests", str(requests),
                           "--concurrency", str(CONCURRENCY)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["requests_per_s"]


def checked_run(spec: Path, requests: int) -> harness.RunFigures:
    """One `batchrun run` from the manifest, every request answered ok."""
    harness.reset_results(spec)
    figures = harness.run_job(spec)
    harness.check_run(figures)
    counts = harness.result_counts(spec)
    if counts.get("ok") != requests:
        raise RuntimeError(f"expected {requests} ok results, got {counts}")
    return figures


def runner_rate(spec: Path, requests: int) -> float:
    return requests / checked_run(spec, requests).seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-nginx", action="store_true", help="use the aiohttp canned server")
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    rates: dict[str, list[float]] = {"runner": [], "naive_httpx": [], "bare_aiohttp": []}
    with harness.text_server(prefer_nginx=not args.no_nginx) as server:
        url = f"{server.url}/v1beta/models/{harness.TEXT_MODEL}:generateContent"
        spec = harness.write_job(work, "overhead", args.requests, server.url, limits={"concurrency": CONCURRENCY})
        harness.plan(spec)
        for run in range(args.runs):
            rates["runner"].append(runner_rate(spec, args.requests))
            rates["naive_httpx"].append(loop_rate("naive_httpx_loop.py", url, args.requests))
            rates["bare_aiohttp"].append(loop_rate("bare_aiohttp_loop.py", url, args.requests))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} req/s" for k, v in rates.items()), flush=True)
    medians = {k: round(harness.median(v), 1) for k, v in rates.items()}
    harness.report("overhead", {
        "server": server.name, "requests": args.requests, "concurrency": CONCURRENCY, "runs": args.runs,
        "requests_per_s": medians, "all_runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_to_naive_httpx": round(medians["runner"] / medians["naive_httpx"], 2),
        "ratio_to_bare_aiohttp": round(medians["runner"] / medians["bare_aiohttp"], 2),
    })


if __name__ == "__main__":
    main()
