"""A shared limit on a Ray cluster: 4 workers sharing a server's 20 req/s, against one process alongside.

    python bench/ray_limit.py [--requests 900] [--workers 4] [--runs 3]

The server is bench/canned_server.py --rate-per-s 20 (a strict sliding one-second window, 429 +
RetryInfo above it), fresh for each run. The job says its limit (requests_per_minute: 1,200) and is
run with `--ray local:4`: four worker processes, each running its pool against the server, every grant
from the one limiter desk. In the same round the same job runs in one process (no --ray), so the two
are compared side by side on the same loaded machine. Figures from the server's counters: the achieved
rate (200s per second over the whole run, from the first request; the last, partial second left out)
and the share of 429s among every request it answered. The cluster's start (seconds) is not counted:
the server's clock starts at its first request. Needs pip install 'batchrun[ray]'.

    python bench/ray_limit.py --source pace-0.995=/tmp/tree-a [--source ...] [--no-one-process]

--source LABEL=DIR (repeatable) also runs the cluster job in each round with the batchrun package of
another source tree (DIR holds batchrun/, put first on PYTHONPATH for the driver and, through the
environment Ray starts them in, its worker processes): a changed constant or mechanism measured side
by side with this tree. --no-one-process leaves the one-process run out of each round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import harness

CONCURRENCY = 64


@contextlib.contextmanager
def source_tree(tree: Path | None) -> Iterator[None]:
    """Put `tree` first on PYTHONPATH for the runs made inside (the harness passes os.environ on)."""
    saved = os.environ.get("PYTHONPATH")
    if tree is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(tree), *([saved] if saved else [])])
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


CAP_USD = "1000"  # far above what the job costs: every request is reserved and settled, none refused


def one_run(work: Path, mode: str, requests: int, limit: int, workers: int) -> dict:
    with harness.canned_server("--rate-per-s", str(limit)) as server:
        limits = {"concurrency": CONCURRENCY, "requests_per_minute": limit * 60}
        spec = harness.write_job(work, f"ray-limit-{mode}", requests, server.url, limits=limits,
                                 retry={"max_attempts": 30, "max_wait_s": 5})
        harness.reset_results(spec)
        harness.plan(spec)
        extra = () if mode == "one_process" else ("--ray", f"local:{workers}")
        if mode == "ray_capped":  # the cluster's one budget: reservations at the desk, batched per worker
            extra += ("--max-cost", CAP_USD)
        figures = harness.run_job(spec, *extra)
        harness.check_run(figures)
        stats = server.stats()
    whole = stats["ok_per_second"][:-1] or stats["ok_per_second"]
    return {"rate": sum(whole) / len(whole), "share_429": stats["rate_limited"] / stats["requests"],
            "seconds": figures.seconds, "ok": stats["ok"], "rate_limited": stats["rate_limited"]}


def summary(runs: list[dict], limit: int) -> dict:
    rate = harness.median([r["rate"] for r in runs])
    return {"requests_per_s": round(rate, 2), "share_of_limit": round(rate / limit, 3),
            "share_429": round(harness.median([r["share_429"] for r in runs]), 4),
            "all_runs": [{k: round(v, 4) for k, v in r.items()} for r in runs]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=900)
    parser.add_argument("--limit", type=int, default=20, help="the server's requests per second")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--source", action="append", default=[], metavar="LABEL=DIR",
                        help="also run the cluster job with the batchrun of this source tree")
    parser.add_argument("--no-one-process", action="store_true", help="leave the one-process run out")
    parser.add_argument("--capped", action="store_true",
                        help="also run the cluster job under --max-cost (a cap it never reaches), side by side")
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    trees: dict[str, Path | None] = {"ray": None, **{label: Path(tree).resolve() for label, tree in
                                                      (source.split("=", 1) for source in args.source)}}
    if args.capped:
        trees["ray_capped"] = None
    if not args.no_one_process:
        trees["one_process"] = None
    runs: dict[str, list[dict]] = {mode: [] for mode in trees}
    for run in range(args.runs):
        for mode, tree in trees.items():
            with source_tree(tree):
                runs[mode].append(one_run(work / mode, mode, args.requests, args.limit, args.workers))
            last = runs[mode][-1]
            print(f"run {run + 1} {mode}: {last['rate']:.2f} req/s, 429s {last['share_429']:.2%} "
                  f"({last['rate_limited']} of {last['ok'] + last['rate_limited']}), {last['seconds']:.1f} s", flush=True)
    ray = summary(runs.pop("ray"), args.limit)
    others = {mode: summary(mode_runs, args.limit) for mode, mode_runs in runs.items()}
    harness.report("ray-limit", {
        "requests": args.requests, "limit_per_s": args.limit, "workers": args.workers, "concurrency": CONCURRENCY,
        "runs": args.runs, **ray, **others,
        **{f"ray_over_{mode}": round(ray["requests_per_s"] / other["requests_per_s"], 3)
           for mode, other in others.items()},
    })


if __name__ == "__main__":
    main()
