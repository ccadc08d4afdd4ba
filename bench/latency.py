"""Latency-bound: 20,000 requests, every reply after 2 s, concurrency 1,000: the bound is 500 req/s.

    python bench/latency.py [--requests 20000] [--latency-s 2] [--concurrency 1000] [--runs 3]

The server is bench/canned_server.py with --latency-s. Rate = requests / `batchrun run` wall time
(process start to exit), compared with concurrency / latency.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    bound = args.concurrency / args.latency_s
    rates = []
    with harness.canned_server("--latency-s", str(args.latency_s)) as server:
        spec = harness.write_job(work, "latency", args.requests, server.url,
                                 limits={"concurrency": args.concurrency})
        harness.plan(spec)
        for run in range(args.runs):
            harness.reset_results(spec)
            figures = harness.run_job(spec)
            harness.check_run(figures)
            rates.append(args.requests / figures.seconds)
            print(f"run {run + 1}: {rates[-1]:,.1f} req/s ({figures.seconds:.1f} s, "
                  f"peak RSS {figures.peak_rss_mb:,.0f} MB)", flush=True)
    rate = harness.median(rates)
    harness.report("latency", {
        "requests": args.requests, "latency_s": args.latency_s, "concurrency": args.concurrency,
        "runs": args.runs, "bound_requests_per_s": bound, "requests_per_s": round(rate, 1),
        "all_runs": [round(r, 1) for r in rates], "share_of_bound": round(rate / bound, 3),
    })


if __name__ == "__main__":
    main()
