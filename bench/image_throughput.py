"""Image throughput: images per second the runner decodes, hashes and writes, against a canned 2 MB image reply.

    python bench/image_throughput.py [--requests 1000] [--image-mb 2] [--concurrency 32] [--runs 3] [--no-nginx]
    python bench/image_throughput.py --simulator [--simulator-source DIR] [--requests 1000] [--runs 3]

The server answers every request with one fixed generateContent reply holding a PNG of --image-mb
(noise, so it does not compress; about 1.35x that in base64 JSON): nginx serving it from a file when
Debian's nginx is installed, else bench/canned_server.py --image-mb. Each run measures, against the
same server: `batchrun run` of an image job end to end (process start to exit, planned beforehand;
each reply decoded, hashed, checked, written under its name, its row written), then the bare image
loop (bench/bare_image_loop.py: decode, hash, write, nothing else). Written images are removed after
each. Prints the median of the runs of each and the runner's ratio to the loop, as one JSON line.

With --simulator the server is `batchrun simulate` instead, drawing a distinct 1K PNG for every
request (--simulator-source DIR: the simulator of another source tree, such as an earlier commit):
whether the runner or the simulator sets the pace shows in how close the runner comes to the loop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import harness
from canned_server import image_reply


def loop_rate(url: str, out: Path, requests: int, concurrency: int, ask_image: bool) -> float:
    done = subprocess.run([sys.executable, str(harness.BENCH_DIR / "bare_image_loop.py"), url, str(out),
                           "--requests", str(requests), "--concurrency", str(concurrency),
                           *(["--ask-image"] if ask_image else [])],
                          capture_output=True, text=True, check=True)
    shutil.rmtree(out)
    return json.loads(done.stdout)["images_per_s"]


def runner_rate(spec: Path, requests: int) -> tuple[float, float]:
    """Images per second of one `batchrun run`, and its peak RSS in MB."""
    harness.reset_results(spec)
    figures = harness.run_job(spec)
    harness.check_run(figures)
    counts = harness.result_counts(spec)
    harness.reset_results(spec)
    if counts.get("ok") != requests:
        raise RuntimeError(f"expected {requests} ok results, got {counts}")
    return requests / figures.seconds, figures.peak_rss_mb


def image_server(args: argparse.Namespace, body: bytes):
    if args.simulator:
        return harness.simulator_server(args.simulator_source)
    if not args.no_nginx and harness.nginx_available():
        return harness.nginx_file_server(body)
    return harness.canned_server("--image-mb", str(args.image_mb))


def measure(args: argparse.Namespace, work: Path, body: bytes) -> tuple[str, dict[str, list[float]], list[float]]:
    """The server's name, images/s of the runner and of the loop run by run, the runner's peak RSS."""
    rates: dict[str, list[float]] = {"runner": [], "bare_image_loop": []}
    peaks: list[float] = []
    with image_server(args, body) as server:
        url = f"{server.url}/v1beta/models/{harness.IMAGE_MODEL}:generateContent"
        spec = harness.write_job(work, "image-throughput", args.requests, server.url, model=harness.IMAGE_MODEL,
                                 image=True, limits={"concurrency": args.concurrency})
        harness.plan(spec)
        if args.simulator:  # untimed: the simulator draws each colour's canvas once, on first use
            loop_rate(url, work / "warm-up", min(200, args.requests), args.concurrency, True)
        for run in range(args.runs):
            rate, peak = runner_rate(spec, args.requests)
            rates["runner"].append(rate)
            peaks.append(peak)
            rates["bare_image_loop"].append(loop_rate(url, work / "bare-images", args.requests, args.concurrency,
                                                      args.simulator))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.1f} images/s" for k, v in rates.items())
                  + f", runner peak RSS {peak:,.0f} MB", flush=True)
    return server.name, rates, peaks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-nginx", action="store_true", help="use the aiohttp canned server")
    parser.add_argument("--simulator", action="store_true", help="against `batchrun simulate`, 1K images")
    parser.add_argument("--simulator-source", type=Path, default=None, help="a source tree holding batchrun/")
    args = parser.parse_args(argv)
    body = b"" if args.simulator else image_reply(args.image_mb)
    server, rates, peaks = measure(args, harness.work_dir(args.work), body)
    medians = {k: round(harness.median(v), 1) for k, v in rates.items()}
    harness.report("image-throughput", {
        "server": server, "requests": args.requests, "image_mb": None if args.simulator else args.image_mb,
        "reply_bytes": len(body) or None, "concurrency": args.concurrency, "runs": args.runs,
        "images_per_s": medians, "all_runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_to_bare_image_loop": float(f"{medians['runner'] / medians['bare_image_loop']:.3g}"),
        "runner_peak_rss_mb": round(harness.median(peaks)),
    })


if __name__ == "__main__":
    main()
