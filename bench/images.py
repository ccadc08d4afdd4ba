"""Images: replies each carrying a 2 MB PNG (base64), concurrency 128; the runner's peak RSS.

    python bench/images.py [--small 200] [--large 2000] [--image-mb 2] [--runs 3]

The server is bench/canned_server.py --image-mb. Each run is `batchrun run` of --small requests, then
of --large ones; peak RSS is the child's own (os.wait4). Memory must be bounded by the concurrency,
not by the job: the two peaks should be the same within 10%.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness

CONCURRENCY = 128


def peak_rss(work: Path, url: str, requests: int) -> tuple[float, float]:
    """Peak RSS (MB) and seconds of one `batchrun run` of `requests` image requests."""
    spec = harness.write_job(work, f"images-{requests}", requests, url, limits={"concurrency": CONCURRENCY},
                             model=harness.IMAGE_MODEL, image=True)
    harness.reset_results(spec)
    harness.plan(spec)
    figures = harness.run_job(spec)
    harness.check_run(figures)
    counts = harness.result_counts(spec)
    if counts.get("ok") != requests:
        raise RuntimeError(f"expected {requests} ok results, got {counts}")
    return figures.peak_rss_mb, figures.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    peaks: dict[int, list[float]] = {args.small: [], args.large: []}
    with harness.canned_server("--image-mb", str(args.image_mb)) as server:
        for run in range(args.runs):
            for requests in peaks:
                peak, seconds = peak_rss(work, server.url, requests)
                peaks[requests].append(peak)
                print(f"run {run + 1}: {requests} requests: peak RSS {peak:,.0f} MB, {seconds:.1f} s", flush=True)
            harness.reset_results(harness.write_job(work, f"images-{args.large}", args.large, server.url,
                                                    limits={"concurrency": CONCURRENCY},
                                                    model=harness.IMAGE_MODEL, image=True))  # 4 GB of images
    small, large = (harness.median(peaks[n]) for n in (args.small, args.large))
    harness.report("images", {
        "image_mb": args.image_mb, "concurrency": CONCURRENCY, "runs": args.runs,
        "peak_rss_mb": {str(args.small): round(small), str(args.large): round(large)},
        "all_runs": {str(k): [round(v) for v in vs] for k, vs in peaks.items()},
        "growth": round(large / small - 1, 3),
    })


if __name__ == "__main__":
    main()
