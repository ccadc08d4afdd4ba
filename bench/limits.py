"""Rate limits: a server allowing 20 req/s (429 + RetryInfo above it), with the limit known or not.

    python bench/limits.py known   [--requests 1200] [--runs 3]   # the job says 1,200 per minute
    python bench/limits.py unknown [--requests 2400] [--runs 3]   # no limit configured: adaptive
    python bench/limits.py unknown --baseline-python /tmp/venv-base/bin/python   # two versions, alternately

The server is bench/canned_server.py --rate-per-s 20 (a strict sliding one-second window), fresh for
each run; its counters give the figures: the achieved rate (200s per second, over the whole run for
`known`, after the first --settle-s seconds for `unknown`; the last, partial second left out) and the
share of 429s among every request it answered. With --baseline-python (the interpreter of another
checkout's virtual environment), each run is made with that batchrun too, right after, and its figures
are reported under "baseline".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import harness

CONCURRENCY = 64


def one_run(work: Path, mode: str, requests: int, limit: int, settle_s: int, python: str) -> dict:
    with harness.canned_server("--rate-per-s", str(limit)) as server:
        limits = {"concurrency": CONCURRENCY}
        if mode == "known":
            limits["requests_per_minute"] = limit * 60
        spec = harness.write_job(work, f"limits-{mode}", requests, server.url, limits=limits,
                                 retry={"max_attempts": 30, "max_wait_s": 5})
        harness.reset_results(spec)
        harness.plan(spec, python=python)
        figures = harness.run_job(spec, python=python)
        harness.check_run(figures)
        stats = server.stats()
    whole = stats["ok_per_second"][:-1] or stats["ok_per_second"]  # a run under a second has only a partial one
    seconds = whole[settle_s:] if mode == "unknown" and len(whole) > settle_s else whole
    rate = sum(seconds) / len(seconds)
    return {"rate": rate, "share_429": stats["rate_limited"] / stats["requests"], "seconds": figures.seconds,
            "ok": stats["ok"], "rate_limited": stats["rate_limited"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("known", "unknown"))
    parser.add_argument("--requests", type=int, default=None, help="default: 1,200 known, 2,400 unknown")
    parser.add_argument("--limit", type=int, default=20, help="the server's requests per second")
    parser.add_argument("--settle-s", type=int, default=30, help="unknown: seconds left out at the start")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-python", default=None, help="another checkout's interpreter, run alongside")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    requests = args.requests or (1200 if args.mode == "known" else 2400)
    work = harness.work_dir(args.work)
    versions = {"this": sys.executable, **({"baseline": args.baseline_python} if args.baseline_python else {})}
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for run in range(args.runs):
        for name, python in versions.items():
            runs[name].append(one_run(work / name, args.mode, requests, args.limit, args.settle_s, python))
            last = runs[name][-1]
            print(f"run {run + 1}{'' if name == 'this' else ' ' + name}: {last['rate']:.2f} req/s, "
                  f"429s {last['share_429']:.2%} ({last['rate_limited']} of {last['ok'] + last['rate_limited']}), "
                  f"{last['seconds']:.1f} s", flush=True)
    figures = {name: summary(r, args.limit) for name, r in runs.items()}
    harness.report(f"limits-{args.mode}", {
        "requests": requests, "limit_per_s": args.limit, "concurrency": CONCURRENCY, "runs": args.runs,
        "settle_s": args.settle_s if args.mode == "unknown" else 0, **figures.pop("this"), **figures,
    })


def summary(runs: list[dict], limit: int) -> dict:
    rate = harness.median([r["rate"] for r in runs])
    return {"requests_per_s": round(rate, 2), "share_of_limit": round(rate / limit, 3),
            "share_429": round(harness.median([r["share_429"] for r in runs]), 4),
            "all_runs": [{k: round(v, 4) for k, v in r.items()} for r in runs]}


if __name__ == "__main__":
    main()
