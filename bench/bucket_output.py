"""Output in a bucket: an image job's wall time with `output.dir` local, in S3 (one push at the end), and in
S3 pushing every second, side by side, against moto's S3 server on 127.0.0.1; with `--gcs`, in GCS the same
two ways too, against gcp-storage-emulator on 127.0.0.1.

    python bench/bucket_output.py [--requests 200] [--image-mb 2] [--concurrency 16] [--runs 3] [--gcs]

The image server is bench/canned_server.py (one fixed reply holding a PNG of --image-mb). Each round runs
the three variants one after another, each from a planned manifest (planning is not timed); a bucket
variant starts from an empty staging folder and a fresh prefix, and its time includes the final upload
of every image, part and run record. Prints the median of each and the ratios to the local run, as one
JSON line. moto and the GCS emulator keep objects in memory: each round's prefix is deleted after it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import harness
from pyarrow import fs as pafs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
VARIANTS = {"local": None, "s3_end": "60", "s3_every_1s": "1"}  # BATCHRUN_UPLOAD_EVERY_S of each bucket variant
GCS_VARIANTS = {"gs_end": "60", "gs_every_1s": "1"}


def start_moto() -> tuple[subprocess.Popen, str]:
    port = harness.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in iter(proc.stderr.readline, ""):
        if re.search(r"Running on http://127\.0\.0\.1:\d+", line):
            # moto logs every request: a pipe nobody reads would fill up and stop it
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError("moto server did not start")


def start_gcs_emulator() -> tuple[subprocess.Popen, str]:
    port = harness.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--in-memory"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    for line in iter(proc.stderr.readline, ""):
        if "All services started" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # it logs every request, as moto
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("gcp-storage-emulator did not start: pip install gcp-storage-emulator")


@contextlib.contextmanager
def fresh_gcs_emulator(enabled: bool) -> Iterator[str | None]:
    """A new emulator for one round: it keeps deleted objects (soft delete) and rewrites the metadata of every
    object it holds at each write, so one kept for every round slows down round after round."""
    if not enabled:
        yield None
        return
    proc, host = start_gcs_emulator()
    try:
        gcs_fs(host).create_dir("bench")
        yield host
    finally:
        harness.stop(proc, 15)


def gcs_fs(host: str) -> pafs.GcsFileSystem:
    return pafs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme="http", project_id="bench")


def bucket_env(variant: str, endpoints: dict) -> dict[str, str]:
    """The standard variables that point a run at the variant's server."""
    if variant.startswith("gs_"):
        return {"STORAGE_EMULATOR_HOST": f"http://{endpoints['gs']}"}
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoints["s3"]}


def delete_prefix(variant: str, endpoints: dict, prefix: str) -> None:
    if variant.startswith("gs_"):  # delete_dir would then delete a folder marker the emulator never had: a 404
        gcs_fs(endpoints["gs"]).delete_dir_contents(prefix, missing_dir_ok=True)
    else:
        bucket_fs(endpoints["s3"]).delete_dir(prefix)


def bucket_fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                             secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                             allow_bucket_creation=True)


def timed_run(spec: Path, requests: int, env: dict[str, str]) -> float:
    """Images per second of one `batchrun run` in the environment `env` (planned first, untimed)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        harness.plan(spec)
        figures = harness.run_job(spec)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    harness.check_run(figures)
    return requests / figures.seconds


def one_round(spec: Path, args: argparse.Namespace, endpoints: dict[str, str | None], work: Path,
              number: int) -> dict[str, float]:
    rates = {}
    for variant, every in variants(args).items():
        if every is None:
            harness.reset_results(spec)
            rates[variant] = timed_run(spec, args.requests, {})
            harness.reset_results(spec)
            continue
        cache = work / f"cache-{variant}-{number}"
        scheme = "gs" if variant.startswith("gs_") else "s3"
        env = {**bucket_env(variant, endpoints), "BATCHRUN_CACHE_DIR": str(cache),
               "BATCHRUN_OUTPUT_DIR": f"{scheme}://bench/{variant}-{number}", "BATCHRUN_UPLOAD_EVERY_S": every}
        rates[variant] = timed_run(spec, args.requests, env)
        delete_prefix(variant, endpoints, f"bench/{variant}-{number}")
        shutil.rmtree(cache)
    return rates


def variants(args: argparse.Namespace) -> dict[str, str | None]:
    return {**VARIANTS, **(GCS_VARIANTS if args.gcs else {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--image-mb", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--gcs", action="store_true", help="also gs:// against gcp-storage-emulator")
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    moto, endpoint = start_moto()
    try:
        bucket_fs(endpoint).create_dir("bench")
        rates: dict[str, list[float]] = {variant: [] for variant in variants(args)}
        with harness.canned_server("--image-mb", str(args.image_mb)) as server:
            spec = harness.write_job(work, "bucket-output", args.requests, server.url, model=harness.IMAGE_MODEL,
                                     image=True, limits={"concurrency": args.concurrency})
            for number in range(args.runs):
                with fresh_gcs_emulator(args.gcs) as gcs_host:
                    round_rates = one_round(spec, args, {"s3": endpoint, "gs": gcs_host}, work, number)
                for variant, rate in round_rates.items():
                    rates[variant].append(rate)
                print(f"run {number + 1}: " + ", ".join(f"{k} {v[-1]:,.1f} images/s" for k, v in rates.items()),
                      flush=True)
    finally:
        harness.stop(moto, 15)
    medians = {k: round(harness.median(v), 1) for k, v in rates.items()}
    harness.report("bucket-output", {
        "requests": args.requests, "image_mb": args.image_mb, "concurrency": args.concurrency, "runs": args.runs,
        "images_per_s": medians, "all_runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_to_local": {k: float(f"{medians[k] / medians['local']:.3g}") for k in variants(args) if k != "local"},
    })


if __name__ == "__main__":
    main()
