"""Rate-independent 429s: a server refusing a steady share of requests at random, whatever the rate.

    python bench/random_429.py [--requests 1000] [--share 0.05] [--delay-s 1] [--latency-s 0.5] [--runs 3]
                               [--reference] [--baseline-python /tmp/venv-base/bin/python]

Each run sends the same job (no limit configured, so the adaptive rate; concurrency 64) to two fresh
bench/canned_server.py servers answering after --latency-s: a clean one, and one refusing --share of
the requests at random with a 429 whose RetryInfo.retryDelay is --delay-s, as Gemini's shared-capacity
429s come: unrelated to the sending rate. The figure is the ratio of the two runs' requests per second
(process start to exit, planned beforehand); the target is at least 0.8. --reference adds the job
with a requests_per_minute far above what is sent, so nothing adapts: what concurrency alone gets
through the same 429s (each still costs its request the delay). With --baseline-python (the
interpreter of another checkout's virtual environment), each run does the same with that batchrun
too, in the same minutes, so the two versions are compared side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness

CONCURRENCY = 64


UNREACHED_RPM = 10_000_000  # a configured limit nothing reaches: no adaptation, only concurrency


def timed_run(work: Path, name: str, requests: int, server_args: list[str], python: str,
              rpm: int | None = None) -> dict:
    """One job against a fresh canned server: requests per second, and what the server counted."""
    limits = {"concurrency": CONCURRENCY} if rpm is None else {"concurrency": CONCURRENCY, "requests_per_minute": rpm}
    with harness.canned_server(*server_args) as server:
        spec = harness.write_job(work, name, requests, server.url, limits=limits)
        harness.reset_results(spec)
        harness.plan(spec, python=python)
        figures = harness.run_job(spec, python=python)
        harness.check_run(figures)
        stats = server.stats()
    return {"requests_per_s": requests / figures.seconds, "seconds": figures.seconds,
            "random_429": stats["random_429"], "answers": stats["requests"]}


def one_run(work: Path, args: argparse.Namespace, python: str) -> dict:
    latency = ["--latency-s", str(args.latency_s)]
    refusing = [*latency, "--random-429", str(args.share), "--random-429-delay-s", str(args.delay_s)]
    clean = timed_run(work, "random-429-clean", args.requests, latency, python)
    adaptive = timed_run(work, "random-429", args.requests, refusing, python)
    figures = {"clean_per_s": clean["requests_per_s"], "with_429_per_s": adaptive["requests_per_s"],
               "ratio": adaptive["requests_per_s"] / clean["requests_per_s"], "seconds": adaptive["seconds"],
               "share_429": adaptive["random_429"] / adaptive["answers"]}
    if args.reference:
        fixed = timed_run(work, "random-429-fixed", args.requests, refusing, python, rpm=UNREACHED_RPM)
        figures["reference_ratio"] = fixed["requests_per_s"] / clean["requests_per_s"]
    return figures


def summary(runs: list[dict]) -> dict:
    figures = {"ratio": round(harness.median([r["ratio"] for r in runs]), 3),
               "clean_per_s": round(harness.median([r["clean_per_s"] for r in runs]), 1),
               "with_429_per_s": round(harness.median([r["with_429_per_s"] for r in runs]), 1)}
    if "reference_ratio" in runs[0]:
        figures["reference_ratio"] = round(harness.median([r["reference_ratio"] for r in runs]), 3)
    return {**figures, "all_runs": [{k: round(v, 4) for k, v in r.items()} for r in runs]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--share", type=float, default=0.05, help="share of requests refused with a 429")
    parser.add_argument("--delay-s", type=float, default=1.0, help="the retryDelay those 429s carry")
    parser.add_argument("--latency-s", type=float, default=0.5, help="the server's time to answer a request")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also the job with no adaptation")
    parser.add_argument("--baseline-python", default=None, help="another checkout's interpreter, run alongside")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    versions = {"this": sys.executable}
    if args.baseline_python:
        versions["baseline"] = args.baseline_python
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for run in range(args.runs):
        for name, python in versions.items():
            runs[name].append(one_run(work / name, args, python))
            last = runs[name][-1]
            reference = f", no adaptation {last['reference_ratio']:.0%}" if args.reference else ""
            print(f"run {run + 1} {name}: {last['with_429_per_s']:.1f} req/s with 429s, {last['clean_per_s']:.1f} "
                  f"without ({last['ratio']:.0%}{reference}), 429s {last['share_429']:.1%}, {last['seconds']:.1f} s",
                  flush=True)
    harness.report("random-429", {
        "requests": args.requests, "share": args.share, "delay_s": args.delay_s, "latency_s": args.latency_s,
        "concurrency": CONCURRENCY, "runs": args.runs, **{name: summary(r) for name, r in runs.items()},
    })


if __name__ == "__main__":
    main()
