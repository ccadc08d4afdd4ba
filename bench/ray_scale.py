"""Scaling out an image job: `--ray local:2` against `--ray local:1` and one process without Ray, side by side.

    python bench/ray_scale.py [--requests 300] [--image-mb 2] [--concurrency 16] [--runs 3]

The server is bench/canned_server.py --image-mb (one fixed generateContent reply holding a PNG of
--image-mb, noise, so about 1.35x that in base64 JSON), fresh for each run. Each round runs the same
planned image job three ways, one after another: in one process (no --ray), with `--ray local:1` and
with `--ray local:2`. The rate is the server's 200s per second from its first request (a cluster's
start is not counted), the last, partial second left out; each round's ratios are of runs made
side by side on the same loaded machine. Every run is checked to end with one ok row per request.
Needs pip install 'batchrun[ray]'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness

MODES = {"one_process": (), "ray_1": ("--ray", "local:1"), "ray_2": ("--ray", "local:2")}


def served_rate(stats: dict) -> float:
    """The server's 200s per second from its first request, the last (partial) second left out."""
    whole = stats["ok_per_second"][:-1] or stats["ok_per_second"]
    return sum(whole) / len(whole)


def one_run(work: Path, mode: str, args: argparse.Namespace) -> dict:
    with harness.canned_server("--image-mb", str(args.image_mb)) as server:
        spec = harness.write_job(work, f"ray-scale-{mode}", args.requests, server.url, model=harness.IMAGE_MODEL,
                                 image=True, limits={"concurrency": args.concurrency})
        harness.reset_results(spec)
        harness.plan(spec)
        figures = harness.run_job(spec, *MODES[mode])
        harness.check_run(figures)
        stats = server.stats()
    counts = harness.result_counts(spec)
    harness.reset_results(spec)  # 2 MB images: a few hundred MB a run
    if counts.get("ok") != args.requests or counts["rows"] != args.requests:
        raise RuntimeError(f"{mode}: expected {args.requests} ok rows, got {counts}")
    return {"rate": served_rate(stats), "seconds": figures.seconds, "ok": stats["ok"]}


def one_round(work: Path, args: argparse.Namespace) -> dict[str, dict]:
    return {mode: one_run(work / mode, mode, args) for mode in MODES}


def ratios(rates: dict[str, float]) -> dict[str, float]:
    return {"ray_2_over_ray_1": rates["ray_2"] / rates["ray_1"],
            "ray_2_over_one_process": rates["ray_2"] / rates["one_process"],
            "ray_1_over_one_process": rates["ray_1"] / rates["one_process"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    rounds = []
    for number in range(args.runs):
        runs = one_round(work, args)
        rounds.append({"rates": {mode: run["rate"] for mode, run in runs.items()},
                       "seconds": {mode: run["seconds"] for mode, run in runs.items()}})
        print(f"run {number + 1}: " + ", ".join(f"{mode} {run['rate']:.1f} images/s ({run['seconds']:.1f} s)"
                                                for mode, run in runs.items()), flush=True)
    medians = {mode: harness.median([r["rates"][mode] for r in rounds]) for mode in MODES}
    per_round = [ratios(r["rates"]) for r in rounds]
    harness.report("ray-scale", {
        "requests": args.requests, "image_mb": args.image_mb, "concurrency": args.concurrency, "runs": args.runs,
        "images_per_s": {mode: round(rate, 2) for mode, rate in medians.items()},
        "median_round_ratio": {k: round(harness.median([r[k] for r in per_round]), 3) for k in per_round[0]},
        "all_runs": [{"images_per_s": {m: round(v, 2) for m, v in r["rates"].items()},
                      "seconds": {m: round(v, 1) for m, v in r["seconds"].items()},
                      "ratios": {k: round(v, 3) for k, v in q.items()}} for r, q in zip(rounds, per_round)],
    })


if __name__ == "__main__":
    main()
