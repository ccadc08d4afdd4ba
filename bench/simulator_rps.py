"""Requests per second the simulator server sustains on this machine.

Starts `python -m batchrun.simulator --port 0` (clean profile), then drives it from one aiohttp
client with CONCURRENCY requests in flight: TEXT_COUNT small text requests, then IMAGE_COUNT 1K image
requests with distinct prompts (each image its own: drawn and encoded, not served from the image
cache; the simulator's per-colour canvases are reused once drawn). Prints the median req/s of three
runs of each. Run by hand: `python bench/simulator_rps.py` (`--text N --images N --runs N` for a
smaller run). `--baseline-source DIR` also serves the simulator of another source tree (say, an
earlier commit: `git archive COMMIT batchrun | tar -x -C DIR`) and measures the two in turn, run by
run, so that their ratio is taken in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

CONCURRENCY = 64
TEXT_COUNT = 20_000
IMAGE_COUNT = 300
RUNS = 3
TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3.1-flash-image"


def start_server(source: Path | None = None) -> tuple[subprocess.Popen, int]:
    """The simulator (of `source`, else the installed one) in a subprocess, and the port it listens on."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchrun.simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=source,
        env=env,
    )
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1])


def text_body(i: int) -> bytes:
    return json.dumps({"contents": [{"parts": [{"text": f"Say hello to visitor {i}."}]}]}).encode()


def image_body(run: int, i: int) -> bytes:
    config = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}
    prompt = f"Photograph mug {run}-{i} on a kitchen counter, soft morning light."
    return json.dumps({"contents": [{"parts": [{"text": prompt}]}], "generationConfig": config}).encode()


async def drive(url: str, bodies: list[bytes]) -> float:
    """Send every body with CONCURRENCY in flight; the achieved requests per second."""
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Content-Type": "application/json", "x-goog-api-key": "bench-key"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                async with session.post(url, data=queue.pop(), headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(bodies) / (time.perf_counter() - started)


async def measure(servers: dict[str, int], text_count: int, image_count: int, runs: int) -> dict:
    """req/s of each server, run by run: {name: {"text": [...], "image": [...]}}."""
    rates = {name: {"text": [], "image": []} for name in servers}
    base = {name: f"http://127.0.0.1:{port}/v1beta/models" for name, port in servers.items()}
    for name in servers:
        await drive(f"{base[name]}/{TEXT_MODEL}:generateContent", [text_body(i) for i in range(min(500, text_count))])
    for run in range(runs):
        for name in servers:
            url = f"{base[name]}/{TEXT_MODEL}:generateContent"
            rates[name]["text"].append(await drive(url, [text_body(i) for i in range(text_count)]))
        for name in servers:
            url = f"{base[name]}/{IMAGE_MODEL}:generateContent"
            rates[name]["image"].append(await drive(url, [image_body(run, i) for i in range(image_count)]))
    return rates


def summary(label: str, kind: str, count: int, runs: list[float]) -> str:
    what = f"requests: {count} x {len(runs)}, concurrency {CONCURRENCY}" if kind == "text" else \
        f"requests (1K PNG, each distinct): {count} x {len(runs)}"
    digits = 0 if kind == "text" else 1
    return (f"{label}{kind:<5} {what}: median {statistics.median(runs):,.{digits}f} req/s "
            f"(runs: {', '.join(f'{r:,.{digits}f}' for r in runs)})")


async def main(text_count: int = TEXT_COUNT, image_count: int = IMAGE_COUNT, runs: int = RUNS,
               baseline: Path | None = None) -> None:
    sources = {"": None, **({"baseline ": baseline} if baseline else {})}
    started = {name: start_server(source) for name, source in sources.items()}
    try:
        rates = await measure({name: port for name, (_, port) in started.items()}, text_count, image_count, runs)
    finally:
        for proc, _ in started.values():
            proc.terminate()
            proc.wait(timeout=10)
    for name in sources:
        print(summary(name, "text", text_count, rates[name]["text"]))
        print(summary(name, "image", image_count, rates[name]["image"]))
    if baseline:
        ratio = statistics.median(rates[""]["image"]) / statistics.median(rates["baseline "]["image"])
        print(f"image rate vs baseline: {ratio:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=int, default=TEXT_COUNT)
    parser.add_argument("--images", type=int, default=IMAGE_COUNT)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--baseline-source", type=Path, default=None,
                        help="a source tree holding batchrun/ whose simulator is measured alongside")
    args = parser.parse_args()
    asyncio.run(main(args.text, args.images, args.runs, args.baseline_source))
