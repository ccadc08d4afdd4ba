"""Requests per second the simulator server sustains on this machine.

Starts `python -m batchrun.simulator --port 0` (clean profile), then drives it from one aiohttp
client with CONCURRENCY requests in flight: TEXT_COUNT small text requests, then IMAGE_COUNT 1K image
requests with distinct prompts (each one drawn and encoded, not served from the cache). Prints the
median req/s of three runs of each. Run by hand: `python bench/simulator_rps.py`
(`--text N --images N --runs N` for a smaller run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

import aiohttp

CONCURRENCY = 64
TEXT_COUNT = 20_000
IMAGE_COUNT = 300
RUNS = 3
TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3.1-flash-image"


def start_server() -> tuple[subprocess.Popen, int]:
    """The simulator in a subprocess, and the port it listens on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchrun.simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
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


async def main(text_count: int = TEXT_COUNT, image_count: int = IMAGE_COUNT, runs: int = RUNS) -> None:
    proc, port = start_server()
    base = f"http://127.0.0.1:{port}/v1beta/models"
    try:
        await drive(f"{base}/{TEXT_MODEL}:generateContent", [text_body(i) for i in range(min(500, text_count))])
        text = [await drive(f"{base}/{TEXT_MODEL}:generateContent", [text_body(i) for i in range(text_count)])
                for _ in range(runs)]
        image = [await drive(f"{base}/{IMAGE_MODEL}:generateContent", [image_body(r, i) for i in range(image_count)])
                 for r in range(runs)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"text  requests: {text_count} x {runs}, concurrency {CONCURRENCY}: "
          f"median {statistics.median(text):,.0f} req/s (runs: {', '.join(f'{r:,.0f}' for r in text)})")
    print(f"image requests (1K PNG, uncached): {image_count} x {runs}: "
          f"median {statistics.median(image):,.1f} req/s (runs: {', '.join(f'{r:,.1f}' for r in image)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=int, default=TEXT_COUNT)
    parser.add_argument("--images", type=int, default=IMAGE_COUNT)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    asyncio.run(main(args.text, args.images, args.runs))
